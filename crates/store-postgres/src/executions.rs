//! Execution reads (one, a filtered page bounded by count and bytes), recovery of this node's
//! executions a crash cut short, and pruning.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fnbox_core::{ErrorInfo, Execution, ExecutionFilter, ExecutionStatus, LastExecution, StoreError, TriggerFilter};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::db;
use crate::rows::{from_micros, get, insert_executions, parsed, row_to_execution, EXECUTION_COLUMNS};
use crate::store::PostgresStore;

/// Rows fetched at a time while a page is bounded by bytes.
const PAGE_CHUNK: i32 = 16;

pub(crate) type Args = Vec<Box<dyn ToSql + Sync + Send>>;

pub(crate) fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
}

/// Appends `AND <column> = $n` for a value.
pub(crate) fn push_eq(sql: &mut String, args: &mut Args, cond: &str, v: impl ToSql + Sync + Send + 'static) {
    args.push(Box::new(v));
    sql.push_str(&format!(" AND {cond} ${}", args.len()));
}

/// The SQL condition for a trigger filter (the values are fixed words, never user text).
pub(crate) fn trigger_condition(t: TriggerFilter) -> String {
    match t {
        TriggerFilter::NotCompare => " AND \"trigger\" != 'compare'".to_owned(),
        TriggerFilter::Only(t) => format!(" AND \"trigger\" = '{}'", t.as_str()),
        TriggerFilter::All => String::new(),
    }
}

pub(crate) async fn recover_interrupted(store: &PostgresStore, error: ErrorInfo) -> Result<u64, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    // Only this node's: the other nodes' entries are calls they are running now.
    let rows = tx
        .query("SELECT body FROM inflight_executions WHERE node = $1 ORDER BY id FOR UPDATE", &[&&*store.node])
        .await
        .map_err(db)?;
    let mut interrupted = Vec::new();
    for r in &rows {
        let Ok(mut e) = serde_json::from_str::<Execution>(get::<&str>(r, 0)?) else { continue };
        e.status = ExecutionStatus::Error;
        e.error = Some(error.clone());
        interrupted.push(e);
    }
    let n = if interrupted.is_empty() {
        0
    } else {
        // A final record may have been committed just before the crash: keep it.
        insert_executions(&*tx, &interrupted.iter().collect::<Vec<_>>()).await?
    };
    tx.execute("DELETE FROM inflight_executions WHERE node = $1", &[&&*store.node]).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(n)
}

pub(crate) async fn get_one(store: &PostgresStore, id: Uuid) -> Result<Option<Execution>, StoreError> {
    let client = store.client().await?;
    let sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1");
    client.query_opt(&sql, &[&id]).await.map_err(db)?.as_ref().map(row_to_execution).transpose()
}

pub(crate) async fn list(store: &PostgresStore, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
    let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1=1");
    let mut args: Args = Vec::new();
    if let Some(f) = &filter.function {
        push_eq(&mut sql, &mut args, "function_name =", f.clone());
    }
    if let Some(s) = filter.status {
        push_eq(&mut sql, &mut args, "status =", s.as_str());
    }
    if let Some(r) = filter.runtime {
        push_eq(&mut sql, &mut args, "runtime =", r.as_str());
    }
    if let Some(since) = filter.since {
        push_eq(&mut sql, &mut args, "started_ms >=", since.timestamp_millis());
    }
    if let Some(until) = filter.until {
        push_eq(&mut sql, &mut args, "started_ms <", until.timestamp_millis());
    }
    if let Some(text) = filter.search.as_deref().filter(|t| !t.is_empty()) {
        args.push(Box::new(fnbox_core::execution::like_pattern(text)));
        let n = args.len();
        sql.push_str(&format!(" AND (logs ILIKE ${n} ESCAPE '\\' OR error ILIKE ${n} ESCAPE '\\' OR output ILIKE ${n} ESCAPE '\\')"));
    }
    if let Some(before) = filter.before {
        push_eq(&mut sql, &mut args, "id <", before);
    }
    if let Some(r) = filter.request_id {
        push_eq(&mut sql, &mut args, "request_id =", r);
    }
    sql.push_str(&trigger_condition(filter.trigger));
    args.push(Box::new(i64::from(filter.limit.max(1))));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));

    let mut client = store.client().await?;
    let Some(max_bytes) = filter.max_bytes else {
        return client.query(&sql, &refs(&args)).await.map_err(db)?.iter().map(row_to_execution).collect();
    };
    // Bounded by size as well as count: records can be large, and only what a page can hold
    // (plus one, so the caller sees there is more) is fetched, a few rows at a time.
    let tx = client.build_transaction().read_only(true).start().await.map_err(db)?;
    let stmt = tx.prepare(&sql).await.map_err(db)?;
    let portal = tx.bind(&stmt, &refs(&args)).await.map_err(db)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    'fetch: loop {
        let rows = tx.query_portal(&portal, PAGE_CHUNK).await.map_err(db)?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let e = row_to_execution(r)?;
            bytes = bytes.saturating_add(e.text_bytes());
            out.push(e);
            if bytes > max_bytes && out.len() >= 2 {
                break 'fetch;
            }
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(out)
}

/// Each function's newest non-comparison execution, in one statement: per name, a walk down
/// `executions_by_function` (function, id) from its newest id (a lateral join).
pub(crate) async fn last(store: &PostgresStore, functions: &[String]) -> Result<HashMap<String, LastExecution>, StoreError> {
    if functions.is_empty() {
        return Ok(HashMap::new());
    }
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT f.name, e.id, e.status, e.started_us, e.duration_ms, e.\"trigger\"
             FROM UNNEST($1::text[]) AS f(name)
             CROSS JOIN LATERAL (SELECT id, status, started_us, duration_ms, \"trigger\" FROM executions
                 WHERE function_name = f.name AND \"trigger\" != 'compare' ORDER BY id DESC LIMIT 1) e",
            &[&functions],
        )
        .await
        .map_err(db)?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let last = LastExecution {
            id: get(r, 1)?,
            status: parsed(r, 2, "status")?,
            started_at: from_micros(get(r, 3)?)?,
            duration_ms: get(r, 4)?,
            trigger: parsed(r, 5, "trigger")?,
        };
        out.insert(get::<String>(r, 0)?, last);
    }
    Ok(out)
}

pub(crate) async fn prune(store: &PostgresStore, before: Option<DateTime<Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let mut n = 0;
    if let Some(t) = before {
        n += client.execute("DELETE FROM executions WHERE started_ms < $1", &[&t.timestamp_millis()]).await.map_err(db)?;
    }
    if let Some(max) = keep_max {
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        n += client
            .execute("DELETE FROM executions WHERE id IN (SELECT id FROM executions ORDER BY id DESC OFFSET $1)", &[&keep])
            .await
            .map_err(db)?;
    }
    Ok(n)
}
