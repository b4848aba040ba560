//! Versions and test events. A version's snapshot is written with the function, in the
//! transaction of [`crate::functions`]; both tables are keyed by the function's id.

use fnbox_core::version::{build_status_of_json, snapshot_of};
use fnbox_core::{Function, RawJson, StoreError, TestEvent, TestEventSaved, VersionSummary, MAX_VERSIONS};
use rusqlite::{params, OptionalExtension, Transaction};

use crate::rows::{function_params, parse_err, parse_time, row_to_function, FUNCTION_COLUMNS};
use crate::store::{backend, SqliteStore};

/// What a function write keeps of its version, ready to be written in its transaction.
pub(crate) struct KeptVersion {
    params: Vec<Box<dyn rusqlite::ToSql + Send>>,
    id: String,
    version: u32,
    build: Option<String>,
}

/// The snapshot of `f`'s version, made at `f.updated_at` (the write that made the version).
pub(crate) fn keep_version(f: &Function) -> Result<KeptVersion, StoreError> {
    let mut s = snapshot_of(f);
    s.created_at = f.updated_at;
    let build = s.build.as_ref().map(serde_json::to_string).transpose().map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(KeptVersion { params: function_params(&s)?, id: f.id.to_string(), version: f.version, build })
}

impl KeptVersion {
    /// A new version's snapshot is inserted (the bound pruned); a known one gets only its build.
    pub(crate) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let refs: Vec<&dyn rusqlite::ToSql> = self.params.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
        let inserted = tx.execute(
            &format!(
                "INSERT OR IGNORE INTO function_versions ({FUNCTION_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)"
            ),
            refs.as_slice(),
        )?;
        if inserted == 0 {
            tx.execute("UPDATE function_versions SET build = ?3 WHERE id = ?1 AND version = ?2", params![self.id, self.version, self.build])?;
            return Ok(());
        }
        tx.execute(
            "DELETE FROM function_versions WHERE id = ?1 AND version NOT IN
                (SELECT version FROM function_versions WHERE id = ?1 ORDER BY version DESC LIMIT ?2)",
            params![self.id, MAX_VERSIONS],
        )?;
        Ok(())
    }
}

/// Removes the versions and test events of function `name` (it is being deleted).
pub(crate) fn delete_history(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM function_versions WHERE id IN (SELECT id FROM functions WHERE name = ?1)", [name])?;
    tx.execute("DELETE FROM test_events WHERE function_id IN (SELECT id FROM functions WHERE name = ?1)", [name])?;
    Ok(())
}

pub(crate) async fn list(store: &SqliteStore, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, created_at, language, runtime, timeout_ms, memory_mb, length(CAST(code AS BLOB)),
                        dependencies IS NOT NULL, build
                   FROM function_versions WHERE id = (SELECT id FROM functions WHERE name = ?1) ORDER BY version DESC",
            )?;
            let rows = stmt.query_map([name], |r| {
                Ok(VersionSummary {
                    version: r.get(0)?,
                    created_at: parse_time(1, &r.get::<_, String>(1)?)?,
                    language: r.get::<_, String>(2)?.parse().map_err(|e: String| parse_err(2, e))?,
                    runtime: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
                    timeout_ms: r.get(4)?,
                    memory_mb: r.get(5)?,
                    code_bytes: r.get::<_, i64>(6)?.max(0) as u64,
                    has_dependencies: r.get(7)?,
                    build: build_status_of_json(r.get::<_, Option<String>>(8)?.as_deref()).map_err(|e| parse_err(8, e.to_string()))?,
                })
            })?;
            rows.collect()
        })
        .await
}

pub(crate) async fn get(store: &SqliteStore, name: &str, version: u32) -> Result<Option<Function>, StoreError> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {FUNCTION_COLUMNS} FROM function_versions WHERE id = (SELECT id FROM functions WHERE name = ?1) AND version = ?2"
                ),
                params![name, version],
                row_to_function,
            )
            .optional()
        })
        .await
}

pub(crate) async fn list_events(store: &SqliteStore, name: &str) -> Result<Vec<TestEvent>, StoreError> {
    let name = name.to_owned();
    store
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, event, updated_us FROM test_events
                  WHERE function_id = (SELECT id FROM functions WHERE name = ?1) ORDER BY name",
            )?;
            let rows = stmt.query_map([name], |r| {
                let us: i64 = r.get(2)?;
                Ok(TestEvent {
                    name: r.get(0)?,
                    event: RawJson::parse(r.get(1)?).map_err(|e| parse_err(1, e.to_string()))?,
                    updated_at: chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| parse_err(2, format!("time {us} out of range")))?,
                })
            })?;
            rows.collect()
        })
        .await
}

pub(crate) async fn put_event(store: &SqliteStore, name: &str, event: &TestEvent, max: u32) -> Result<TestEventSaved, StoreError> {
    let (name, event) = (name.to_owned(), event.clone());
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let id: Option<String> =
                tx.query_row("SELECT id FROM functions WHERE name = ?1", [&name], |r| r.get(0)).optional().map_err(backend)?;
            let Some(id) = id else { return Err(StoreError::NotFound(name)) };
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM test_events WHERE function_id = ?1 AND name = ?2)", params![id, event.name], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            if !exists {
                let n: i64 =
                    tx.query_row("SELECT COUNT(*) FROM test_events WHERE function_id = ?1", [&id], |r| r.get(0)).map_err(backend)?;
                if n >= i64::from(max) {
                    return Ok(TestEventSaved::Full);
                }
            }
            tx.execute(
                "INSERT INTO test_events (function_id, name, event, updated_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (function_id, name) DO UPDATE SET event = excluded.event, updated_us = excluded.updated_us",
                params![id, event.name, event.event.get(), event.updated_at.timestamp_micros()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(if exists { TestEventSaved::Replaced } else { TestEventSaved::Created })
        })
        .await
}

pub(crate) async fn delete_event(store: &SqliteStore, name: &str, event_name: &str) -> Result<bool, StoreError> {
    let (name, event_name) = (name.to_owned(), event_name.to_owned());
    store
        .write(move |conn| {
            conn.execute(
                "DELETE FROM test_events WHERE function_id = (SELECT id FROM functions WHERE name = ?1) AND name = ?2",
                params![name, event_name],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
}
