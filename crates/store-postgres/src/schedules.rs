//! Schedules, shared by every node. Firing a tick is one transaction: the compare-and-swap of
//! the next run (only one node's UPDATE matches the tick) and the tick's queued call.

use chrono::{DateTime, Utc};
use fnbox_core::{Execution, Fired, QueueItem, Schedule, StoreError};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::db;
use crate::queue::{depth, insert_item};
use crate::rows::{from_micros, get, insert_executions};
use crate::store::PostgresStore;

const COLUMNS: &str = "id, function_name, cron, timezone, input, enabled, created_us, next_run_us, last_run_us";

fn row_to_schedule(r: &Row) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        id: get(r, 0)?,
        function: get(r, 1)?,
        cron: get(r, 2)?,
        timezone: get(r, 3)?,
        input: get(r, 4)?,
        enabled: get(r, 5)?,
        created_at: from_micros(get(r, 6)?)?,
        next_run: get::<Option<i64>>(r, 7)?.map(from_micros).transpose()?,
        last_run: get::<Option<i64>>(r, 8)?.map(from_micros).transpose()?,
    })
}

fn micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

pub(crate) async fn insert(store: &PostgresStore, s: &Schedule) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            &format!("INSERT INTO schedules ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)"),
            &[&s.id, &s.function, &s.cron, &s.timezone, &s.input, &s.enabled, &s.created_at.timestamp_micros(), &micros(s.next_run), &micros(s.last_run)],
        )
        .await
        .map(|_| ())
        .map_err(db)
}

pub(crate) async fn list(store: &PostgresStore, function: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM schedules WHERE ($1::text IS NULL OR function_name = $1) ORDER BY created_us, id"), &[&function])
        .await
        .map_err(db)?;
    rows.iter().map(row_to_schedule).collect()
}

pub(crate) async fn find(store: &PostgresStore, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    let client = store.client().await?;
    let row = client.query_opt(&format!("SELECT {COLUMNS} FROM schedules WHERE id = $1"), &[&id]).await.map_err(db)?;
    row.as_ref().map(row_to_schedule).transpose()
}

pub(crate) async fn update(store: &PostgresStore, s: &Schedule) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let n = client
        .execute(
            "UPDATE schedules SET cron = $2, timezone = $3, input = $4, enabled = $5, next_run_us = $6 WHERE id = $1",
            &[&s.id, &s.cron, &s.timezone, &s.input, &s.enabled, &micros(s.next_run)],
        )
        .await
        .map_err(db)?;
    Ok(n > 0)
}

pub(crate) async fn delete(store: &PostgresStore, id: Uuid) -> Result<bool, StoreError> {
    let client = store.client().await?;
    Ok(client.execute("DELETE FROM schedules WHERE id = $1", &[&id]).await.map_err(db)? > 0)
}

pub(crate) async fn delete_of(store: &PostgresStore, function: &str) -> Result<u64, StoreError> {
    let client = store.client().await?;
    client.execute("DELETE FROM schedules WHERE function_name = $1", &[&function]).await.map_err(db)
}

pub(crate) async fn due(store: &PostgresStore, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM schedules WHERE enabled AND next_run_us IS NOT NULL AND next_run_us <= $1
                  ORDER BY next_run_us, id LIMIT $2"
            ),
            &[&now.timestamp_micros(), &i64::from(limit.max(1))],
        )
        .await
        .map_err(db)?;
    rows.iter().map(row_to_schedule).collect()
}

pub(crate) async fn fire(
    store: &PostgresStore,
    id: Uuid,
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    item: &QueueItem,
    queued: &Execution,
    max_depth: u64,
) -> Result<Fired, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    // Row-locking UPDATE: a second node's identical statement waits for this commit, then
    // finds next_run_us moved and matches nothing.
    let moved = tx
        .execute(
            "UPDATE schedules SET next_run_us = $3, last_run_us = $2 WHERE id = $1 AND enabled AND next_run_us = $2",
            &[&id, &tick.timestamp_micros(), &micros(next)],
        )
        .await
        .map_err(db)?;
    if moved == 0 {
        return Ok(Fired::Taken);
    }
    let fired = if depth(&*tx).await? >= max_depth {
        Fired::Skipped
    } else {
        insert_item(&*tx, item).await?;
        insert_executions(&*tx, &[&store.on_this_node(queued)]).await?;
        Fired::Fired
    };
    tx.commit().await.map_err(db)?;
    Ok(fired)
}
