//! Versioned schema migrations, embedded in the binary and applied at connect. Several nodes
//! may start at once: the whole run is one transaction holding a transaction-level advisory
//! lock, so one node migrates and the others then find nothing left to do.

use deadpool_postgres::Pool;
use fnbox_core::StoreError;

use crate::error;

/// (version, name, sql). Append only: a released migration is never edited.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "dependencies", include_str!("../migrations/0002_dependencies.sql")),
    (3, "http", include_str!("../migrations/0003_http.sql")),
    (4, "queue", include_str!("../migrations/0004_queue.sql")),
    (5, "versions", include_str!("../migrations/0005_versions.sql")),
];

/// The advisory lock key of fnbox's migrations (any constant other tools are unlikely to use).
const LOCK_KEY: i64 = 0x666e_626f_785f_6d67; // "fnbox_mg"

/// Applies the pending migrations; returns their versions.
pub(crate) async fn run(pool: &Pool) -> Result<Vec<i64>, StoreError> {
    let mut client = pool.get().await.map_err(error::pool)?;
    let tx = client.transaction().await.map_err(error::db)?;
    tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})")).await.map_err(error::db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(error::db)?;
    let done: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(error::db)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(error::db)?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| !done.contains(v)) {
        tx.batch_execute(sql).await.map_err(|e| migration_failed(*version, name, e))?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])
            .await
            .map_err(error::db)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(error::db)?;
    Ok(applied)
}

fn migration_failed(version: i64, name: &str, e: tokio_postgres::Error) -> StoreError {
    match error::db(e) {
        StoreError::Backend(m) => StoreError::Backend(format!("migration {version} ({name}) failed: {m}")),
        other => other,
    }
}
