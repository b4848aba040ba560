//! Versioned schema migrations, embedded in the binary and applied in order at open.

use rusqlite::Connection;

/// (version, name, sql). Append only: a released migration is never edited.
const SQLITE: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "comparisons", include_str!("../migrations/sqlite/0002_comparisons.sql")),
    (3, "api_keys", include_str!("../migrations/sqlite/0003_api_keys.sql")),
    (4, "inflight", include_str!("../migrations/sqlite/0004_inflight.sql")),
];

pub(crate) fn run(conn: &mut Connection) -> rusqlite::Result<Vec<i64>> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in SQLITE {
        let tx = conn.transaction()?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, chrono::Utc::now().to_rfc3339()],
            )?;
            applied.push(*version);
        }
        tx.commit()?;
    }
    Ok(applied)
}
