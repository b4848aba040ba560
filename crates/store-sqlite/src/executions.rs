//! Execution reads (one, a filtered page bounded by count and bytes), recovery of those a
//! crash cut short, and pruning.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fnbox_core::{ErrorInfo, Execution, ExecutionFilter, LastExecution, StoreError, TriggerFilter};
use rusqlite::OptionalExtension;
use uuid::Uuid;

use crate::rows::{parse_err, parse_time, row_to_execution, EXECUTION_COLUMNS};
use crate::store::{backend, SqliteStore};
use crate::writer::insert_execution;

/// The SQL condition for a trigger filter (the values are fixed words, never user text).
pub(crate) fn trigger_condition(t: TriggerFilter) -> String {
    match t {
        TriggerFilter::NotCompare => " AND \"trigger\" != 'compare'".to_owned(),
        TriggerFilter::Only(t) => format!(" AND \"trigger\" = '{}'", t.as_str()),
        TriggerFilter::All => String::new(),
    }
}

pub(crate) async fn recover_interrupted(store: &SqliteStore, error: ErrorInfo) -> Result<u64, StoreError> {
    store.write(move |conn| {
        let tx = conn.transaction().map_err(backend)?;
        let bodies: Vec<String> = {
            let mut stmt = tx.prepare("SELECT body FROM inflight_executions ORDER BY id").map_err(backend)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)?
        };
        let mut n = 0;
        for body in bodies {
            let Ok(mut e) = serde_json::from_str::<Execution>(&body) else { continue };
            e.status = fnbox_core::ExecutionStatus::Error;
            e.error = Some(error.clone());
            // A final record may have been committed just before the crash: keep it (a
            // `queued` placeholder of an asynchronous attempt is replaced).
            n += insert_execution(&tx, &e).map_err(backend)? as u64;
        }
        tx.execute("DELETE FROM inflight_executions", []).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(n)
    })
    .await
}


pub(crate) async fn get(store: &SqliteStore, id: Uuid) -> Result<Option<Execution>, StoreError> {
    store.read(move |conn| {
        conn.query_row(
            &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"),
            [id.to_string()],
            row_to_execution,
        )
        .optional()
    })
    .await
}


pub(crate) async fn list(store: &SqliteStore, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
    let filter = filter.clone();
    store.read(move |conn| {
        let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1=1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(f) = filter.function {
            args.push(Box::new(f));
            sql.push_str(&format!(" AND function_name = ?{}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(Box::new(s.as_str()));
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(r) = filter.runtime {
            args.push(Box::new(r.as_str()));
            sql.push_str(&format!(" AND runtime = ?{}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(Box::new(since.timestamp_millis()));
            sql.push_str(&format!(" AND started_ms >= ?{}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(Box::new(until.timestamp_millis()));
            sql.push_str(&format!(" AND started_ms < ?{}", args.len()));
        }
        if let Some(text) = filter.search.as_deref().filter(|t| !t.is_empty()) {
            args.push(Box::new(fnbox_core::execution::like_pattern(text)));
            let n = args.len();
            sql.push_str(&format!(" AND (logs LIKE ?{n} ESCAPE '\\' OR error LIKE ?{n} ESCAPE '\\' OR output LIKE ?{n} ESCAPE '\\')"));
        }
        if let Some(before) = filter.before {
            args.push(Box::new(before.to_string()));
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
        if let Some(r) = filter.request_id {
            args.push(Box::new(r.to_string()));
            sql.push_str(&format!(" AND request_id = ?{}", args.len()));
        }
        sql.push_str(&trigger_condition(filter.trigger));
        args.push(Box::new(i64::from(filter.limit.max(1))));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut stmt = conn.prepare_cached(&sql)?;
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let rows = stmt.query_map(refs.as_slice(), row_to_execution)?;
        let Some(max_bytes) = filter.max_bytes else { return rows.collect() };
        // Bounded by size as well as count: records can be large, and only what a page
        // can hold (plus one, so the caller sees there is more) is read into memory.
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for row in rows {
            let e = row?;
            bytes = bytes.saturating_add(e.text_bytes());
            out.push(e);
            if bytes > max_bytes && out.len() >= 2 {
                break;
            }
        }
        Ok(out)
    })
    .await
}


/// Each function's newest non-comparison execution: a walk down `executions_by_function`
/// (function, id) from the function's newest id, per function.
pub(crate) async fn last(store: &SqliteStore, functions: &[String]) -> Result<HashMap<String, LastExecution>, StoreError> {
    let functions = functions.to_vec();
    store.read(move |conn| {
        let mut stmt = conn.prepare_cached(
            "SELECT id, status, started_at, duration_ms, \"trigger\" FROM executions
             WHERE function_name = ?1 AND \"trigger\" != 'compare' ORDER BY id DESC LIMIT 1",
        )?;
        let mut out = HashMap::with_capacity(functions.len());
        for name in functions {
            let last = stmt
                .query_row([&name], |r| {
                    let id: String = r.get(0)?;
                    Ok(LastExecution {
                        id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
                        status: r.get::<_, String>(1)?.parse().map_err(|e: String| parse_err(1, e))?,
                        started_at: parse_time(2, &r.get::<_, String>(2)?)?,
                        duration_ms: r.get(3)?,
                        trigger: r.get::<_, String>(4)?.parse().map_err(|e: String| parse_err(4, e))?,
                    })
                })
                .optional()?;
            if let Some(last) = last {
                out.insert(name, last);
            }
        }
        Ok(out)
    })
    .await
}

pub(crate) async fn prune(store: &SqliteStore, before: Option<DateTime<Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError> {
    store.write(move |conn| {
        let mut n = 0;
        if let Some(t) = before {
            n += conn.execute("DELETE FROM executions WHERE started_ms < ?1", [t.timestamp_millis()]).map_err(backend)?;
        }
        if let Some(max) = keep_max {
            n += conn
                .execute(
                    "DELETE FROM executions WHERE id IN (SELECT id FROM executions ORDER BY id DESC LIMIT -1 OFFSET ?1)",
                    [max as i64],
                )
                .map_err(backend)?;
        }
        Ok(n as u64)
    })
    .await
}

