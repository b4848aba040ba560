//! Versions and test events, as SQLite's: a version's snapshot is written with the function,
//! in the transaction of [`crate::functions`]; both tables are keyed by the function's id.

use fnbox_core::version::{build_status_of_json, snapshot_of};
use fnbox_core::{Function, RawJson, StoreError, TestEvent, TestEventSaved, VersionSummary, MAX_VERSIONS};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::{corrupt, db};
use crate::rows::{from_micros, get, parsed, row_to_function, FunctionRow, FUNCTION_COLUMNS};
use crate::store::PostgresStore;

/// What a function write keeps of its version, ready to be written in its transaction.
pub(crate) struct KeptVersion {
    row: FunctionRow,
    id: Uuid,
    version: i64,
    build: Option<String>,
}

/// The snapshot of `f`'s version, made at `f.updated_at` (the write that made the version).
pub(crate) fn keep_version(f: &Function) -> Result<KeptVersion, StoreError> {
    let mut s = snapshot_of(f);
    s.created_at = f.updated_at;
    let build = s.build.as_ref().map(serde_json::to_string).transpose().map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(KeptVersion { row: FunctionRow::new(&s)?, id: f.id, version: i64::from(f.version), build })
}

impl KeptVersion {
    /// A new version's snapshot is inserted (the bound pruned); a known one gets only its build.
    pub(crate) async fn write(&self, tx: &impl GenericClient) -> Result<(), StoreError> {
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO function_versions ({FUNCTION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)
                     ON CONFLICT (id, version) DO NOTHING"
                ),
                &self.row.params(),
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            tx.execute("UPDATE function_versions SET build = $3 WHERE id = $1 AND version = $2", &[&self.id, &self.version, &self.build])
                .await
                .map_err(db)?;
            return Ok(());
        }
        tx.execute(
            "DELETE FROM function_versions WHERE id = $1 AND version NOT IN
                (SELECT version FROM function_versions WHERE id = $1 ORDER BY version DESC LIMIT $2)",
            &[&self.id, &i64::from(MAX_VERSIONS)],
        )
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// Removes the versions and test events of function `name` (it is being deleted).
pub(crate) async fn delete_history(tx: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM function_versions WHERE id IN (SELECT id FROM functions WHERE name = $1)", &[&name]).await.map_err(db)?;
    tx.execute("DELETE FROM test_events WHERE function_id IN (SELECT id FROM functions WHERE name = $1)", &[&name]).await.map_err(db)?;
    Ok(())
}

fn u32_at(r: &tokio_postgres::Row, i: usize, what: &str) -> Result<u32, StoreError> {
    u32::try_from(get::<i64>(r, i)?).map_err(|e| corrupt(what, e))
}

pub(crate) async fn list(store: &PostgresStore, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT version, created_ns, language, runtime, timeout_ms, memory_mb, octet_length(code)::BIGINT,
                    dependencies IS NOT NULL, build
               FROM function_versions WHERE id = (SELECT id FROM functions WHERE name = $1) ORDER BY version DESC",
            &[&name],
        )
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(VersionSummary {
                version: u32_at(r, 0, "version")?,
                created_at: chrono::DateTime::from_timestamp_nanos(get(r, 1)?),
                language: parsed(r, 2, "language")?,
                runtime: parsed(r, 3, "runtime")?,
                timeout_ms: u32_at(r, 4, "timeout")?,
                memory_mb: u32_at(r, 5, "memory")?,
                code_bytes: u64::try_from(get::<i64>(r, 6)?).unwrap_or(0),
                has_dependencies: get(r, 7)?,
                build: build_status_of_json(get::<Option<&str>>(r, 8)?).map_err(|e| corrupt("build", e))?,
            })
        })
        .collect()
}

pub(crate) async fn get_one(store: &PostgresStore, name: &str, version: u32) -> Result<Option<Function>, StoreError> {
    let client = store.client().await?;
    let sql = format!(
        "SELECT {FUNCTION_COLUMNS} FROM function_versions WHERE id = (SELECT id FROM functions WHERE name = $1) AND version = $2"
    );
    client.query_opt(&sql, &[&name, &i64::from(version)]).await.map_err(db)?.as_ref().map(row_to_function).transpose()
}

pub(crate) async fn list_events(store: &PostgresStore, name: &str) -> Result<Vec<TestEvent>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT name, event, updated_us FROM test_events
              WHERE function_id = (SELECT id FROM functions WHERE name = $1) ORDER BY name",
            &[&name],
        )
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(TestEvent {
                name: get(r, 0)?,
                event: RawJson::parse(get::<String>(r, 1)?).map_err(|e| corrupt("test event", e))?,
                updated_at: from_micros(get(r, 2)?)?,
            })
        })
        .collect()
}

pub(crate) async fn put_event(store: &PostgresStore, name: &str, event: &TestEvent, max: u32) -> Result<TestEventSaved, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    // The function's row is locked, so two saves of new events cannot both pass the bound.
    let Some(row) = tx.query_opt("SELECT id FROM functions WHERE name = $1 FOR UPDATE", &[&name]).await.map_err(db)? else {
        return Err(StoreError::NotFound(name.to_owned()));
    };
    let id: Uuid = get(&row, 0)?;
    let exists: bool = get(
        &tx.query_one("SELECT EXISTS(SELECT 1 FROM test_events WHERE function_id = $1 AND name = $2)", &[&id, &event.name])
            .await
            .map_err(db)?,
        0,
    )?;
    if !exists {
        let n: i64 = get(&tx.query_one("SELECT COUNT(*) FROM test_events WHERE function_id = $1", &[&id]).await.map_err(db)?, 0)?;
        if n >= i64::from(max) {
            return Ok(TestEventSaved::Full);
        }
    }
    tx.execute(
        "INSERT INTO test_events (function_id, name, event, updated_us) VALUES ($1, $2, $3, $4)
         ON CONFLICT (function_id, name) DO UPDATE SET event = excluded.event, updated_us = excluded.updated_us",
        &[&id, &event.name, &event.event.get(), &event.updated_at.timestamp_micros()],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(if exists { TestEventSaved::Replaced } else { TestEventSaved::Created })
}

pub(crate) async fn delete_event(store: &PostgresStore, name: &str, event_name: &str) -> Result<bool, StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "DELETE FROM test_events WHERE function_id = (SELECT id FROM functions WHERE name = $1) AND name = $2",
            &[&name, &event_name],
        )
        .await
        .map(|n| n > 0)
        .map_err(db)
}
