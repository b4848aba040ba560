//! Metrics reads: the numbers of every matching execution, and failures for grouping.

use fnbox_core::metrics::{MetricsFilter, Sample};
use fnbox_core::{ErrorInfo, Failure, StoreError};
use tokio_postgres::Row;

use crate::error::{corrupt, db};
use crate::executions::{push_eq, refs, trigger_condition, Args};
use crate::rows::{from_micros, get};
use crate::store::PostgresStore;

/// WHERE clause and arguments for a metrics filter.
fn metrics_where(f: &MetricsFilter) -> (String, Args) {
    // A queued call has not run yet: it has no figures and is no failure.
    let mut sql = String::from(" WHERE status != 'queued'");
    let mut args: Args = Vec::new();
    if let Some(v) = &f.function {
        push_eq(&mut sql, &mut args, "function_name =", v.clone());
    }
    if let Some(v) = f.runtime {
        push_eq(&mut sql, &mut args, "runtime =", v.as_str());
    }
    if let Some(v) = f.language {
        push_eq(&mut sql, &mut args, "language =", v.as_str());
    }
    if let Some(v) = f.since {
        push_eq(&mut sql, &mut args, "started_ms >=", v.timestamp_millis());
    }
    sql.push_str(&trigger_condition(f.trigger));
    (sql, args)
}

fn parsed<T: std::str::FromStr<Err = String>>(r: &Row, i: usize, what: &str) -> Result<T, StoreError> {
    get::<&str>(r, i)?.parse().map_err(|e: String| corrupt(what, e))
}

pub(crate) async fn samples(store: &PostgresStore, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError> {
    let (cond, args) = metrics_where(filter);
    let sql = format!(
        "SELECT function_name, runtime, language, status, error_type, started_ms, duration_ms, exec_ms,
                memory_bytes, cold_start FROM executions{cond}"
    );
    let client = store.client().await?;
    let rows = client.query(&sql, &refs(&args)).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(Sample {
                function: get(r, 0)?,
                runtime: parsed(r, 1, "runtime")?,
                language: parsed(r, 2, "language")?,
                status: parsed(r, 3, "status")?,
                error_type: get(r, 4)?,
                started_ms: get(r, 5)?,
                duration_ms: get(r, 6)?,
                exec_ms: get(r, 7)?,
                memory_bytes: get::<Option<i64>>(r, 8)?.map(|m| u64::try_from(m).unwrap_or(0)),
                cold_start: get(r, 9)?,
            })
        })
        .collect()
}

pub(crate) async fn failures(store: &PostgresStore, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError> {
    let (cond, args) = metrics_where(filter);
    // Only what grouping needs: the type and the start of the message (kept in its own column
    // at insert), never the stack, so reading every failure costs about a kilobyte each.
    let sql = format!(
        "SELECT id, function_name, started_us, error_type, error_head FROM executions{cond}
          AND status != 'success' ORDER BY id"
    );
    let client = store.client().await?;
    let rows = client.query(&sql, &refs(&args)).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            let kind: Option<String> = get(r, 3)?;
            let message: Option<String> = get(r, 4)?;
            Ok(Failure {
                id: get(r, 0)?,
                function: get(r, 1)?,
                started_at: from_micros(get(r, 2)?)?,
                error: kind.map(|k| ErrorInfo::new(k, message.unwrap_or_default())),
            })
        })
        .collect()
}
