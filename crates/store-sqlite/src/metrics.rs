//! Metrics reads: the numbers of every matching execution, and failures for grouping.

use fnbox_core::metrics::{MetricsFilter, Sample};
use fnbox_core::{ErrorInfo, Failure, StoreError};
use rusqlite::Row;
use uuid::Uuid;

use crate::executions::trigger_condition;
use crate::rows::{col_str, parse_err, parse_time};
use crate::store::SqliteStore;

/// WHERE clause and arguments for a metrics filter.
fn metrics_where(f: &MetricsFilter) -> (String, Vec<Box<dyn rusqlite::ToSql + Send>>) {
    // A queued call has not run yet: it has no figures and is no failure.
    let mut sql = String::from(" WHERE status != 'queued'");
    let mut args: Vec<Box<dyn rusqlite::ToSql + Send>> = Vec::new();
    if let Some(v) = &f.function {
        args.push(Box::new(v.clone()));
        sql.push_str(&format!(" AND function_name = ?{}", args.len()));
    }
    if let Some(v) = f.runtime {
        args.push(Box::new(v.as_str()));
        sql.push_str(&format!(" AND runtime = ?{}", args.len()));
    }
    if let Some(v) = f.language {
        args.push(Box::new(v.as_str()));
        sql.push_str(&format!(" AND language = ?{}", args.len()));
    }
    if let Some(v) = f.since {
        args.push(Box::new(v.timestamp_millis()));
        sql.push_str(&format!(" AND started_ms >= ?{}", args.len()));
    }
    sql.push_str(&trigger_condition(f.trigger));
    (sql, args)
}

/// How much of an error message [`Store::failures`] reads: errors are grouped by it.
pub(crate) const FAILURE_MESSAGE_CHARS: usize = 1024;

pub(crate) async fn samples(store: &SqliteStore, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError> {
    let (cond, args) = metrics_where(filter);
    store.read(move |conn| {
        let sql = format!(
            "SELECT function_name, runtime, language, status, error_type, started_ms, duration_ms, exec_ms,
                    memory_bytes, cold_start FROM executions{cond}"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
        // Borrowed reads: no allocation per row for the enum columns.
        let text = |r: &Row<'_>, i: usize| -> rusqlite::Result<String> {
            Ok(r.get_ref(i)?.as_str().map_err(|e| parse_err(i, e.to_string()))?.to_owned())
        };
        let rows = stmt.query_map(refs.as_slice(), |r| {
            Ok(Sample {
                function: text(r, 0)?,
                runtime: col_str(r, 1)?.parse().map_err(|e: String| parse_err(1, e))?,
                language: col_str(r, 2)?.parse().map_err(|e: String| parse_err(2, e))?,
                status: col_str(r, 3)?.parse().map_err(|e: String| parse_err(3, e))?,
                error_type: r.get(4)?,
                started_ms: r.get(5)?,
                duration_ms: r.get(6)?,
                exec_ms: r.get(7)?,
                memory_bytes: r.get::<_, Option<i64>>(8)?.map(|m| m.max(0) as u64),
                cold_start: r.get(9)?,
            })
        })?;
        rows.collect()
    })
    .await
}


pub(crate) async fn failures(store: &SqliteStore, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError> {
    let (cond, args) = metrics_where(filter);
    store.read(move |conn| {
        // Only what grouping needs: the type and the start of the message, never the stack,
        // so reading every failure costs about a kilobyte each, whatever the errors hold.
        let sql = format!(
            "SELECT id, function_name, started_at, json_extract(error, '$.type'),
                substr(json_extract(error, '$.message'), 1, {FAILURE_MESSAGE_CHARS})
             FROM executions{cond} AND status != 'success' ORDER BY id"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
        let rows = stmt.query_map(refs.as_slice(), |r| {
            let id: String = r.get(0)?;
            let kind: Option<String> = r.get(3)?;
            let message: Option<String> = r.get(4)?;
            Ok(Failure {
                id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
                function: r.get(1)?,
                started_at: parse_time(2, &r.get::<_, String>(2)?)?,
                error: kind.map(|k| ErrorInfo::new(k, message.unwrap_or_default())),
            })
        })?;
        rows.collect()
    })
    .await
}

