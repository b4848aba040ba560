//! Schedules. Firing a tick is one transaction on the writer thread: the compare-and-swap of
//! the next run and the tick's queued call commit together or not at all.

use chrono::{DateTime, Utc};
use fnbox_core::{Execution, Fired, QueueItem, Schedule, StoreError};
use rusqlite::{params, OptionalExtension, Row};
use uuid::Uuid;

use crate::queue::{depth, insert_item};
use crate::rows::parse_err;
use crate::store::{backend, SqliteStore};
use crate::writer::insert_execution;

const COLUMNS: &str = "id, function_name, cron, timezone, input, enabled, created_us, next_run_us, last_run_us";

fn time_at(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<i64>>(i)?
        .map(|us| DateTime::from_timestamp_micros(us).ok_or_else(|| parse_err(i, format!("time {us} out of range"))))
        .transpose()
}

fn row_to_schedule(r: &Row<'_>) -> rusqlite::Result<Schedule> {
    Ok(Schedule {
        id: Uuid::parse_str(&r.get::<_, String>(0)?).map_err(|e| parse_err(0, e.to_string()))?,
        function: r.get(1)?,
        cron: r.get(2)?,
        timezone: r.get(3)?,
        input: r.get(4)?,
        enabled: r.get(5)?,
        created_at: time_at(r, 6)?.ok_or_else(|| parse_err(6, "no creation time"))?,
        next_run: time_at(r, 7)?,
        last_run: time_at(r, 8)?,
    })
}

pub(crate) async fn insert(store: &SqliteStore, s: &Schedule) -> Result<(), StoreError> {
    let s = s.clone();
    store
        .write(move |conn| {
            conn.execute(
                &format!("INSERT INTO schedules ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
                params![
                    s.id.to_string(),
                    s.function,
                    s.cron,
                    s.timezone,
                    s.input,
                    s.enabled,
                    s.created_at.timestamp_micros(),
                    s.next_run.map(|t| t.timestamp_micros()),
                    s.last_run.map(|t| t.timestamp_micros()),
                ],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
}

pub(crate) async fn list(store: &SqliteStore, function: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
    let function = function.map(str::to_owned);
    store
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM schedules WHERE (?1 IS NULL OR function_name = ?1) ORDER BY created_us, id"
            ))?;
            let rows = stmt.query_map([function], row_to_schedule)?;
            rows.collect()
        })
        .await
}

pub(crate) async fn get(store: &SqliteStore, id: Uuid) -> Result<Option<Schedule>, StoreError> {
    store
        .read(move |conn| {
            conn.query_row(&format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"), [id.to_string()], row_to_schedule).optional()
        })
        .await
}

pub(crate) async fn update(store: &SqliteStore, s: &Schedule) -> Result<bool, StoreError> {
    let s = s.clone();
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE schedules SET cron = ?2, timezone = ?3, input = ?4, enabled = ?5, next_run_us = ?6 WHERE id = ?1",
                params![s.id.to_string(), s.cron, s.timezone, s.input, s.enabled, s.next_run.map(|t| t.timestamp_micros())],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
}

pub(crate) async fn delete(store: &SqliteStore, id: Uuid) -> Result<bool, StoreError> {
    store
        .write(move |conn| conn.execute("DELETE FROM schedules WHERE id = ?1", [id.to_string()]).map(|n| n > 0).map_err(backend))
        .await
}

pub(crate) async fn delete_of(store: &SqliteStore, function: &str) -> Result<u64, StoreError> {
    let function = function.to_owned();
    store
        .write(move |conn| conn.execute("DELETE FROM schedules WHERE function_name = ?1", [function]).map(|n| n as u64).map_err(backend))
        .await
}

pub(crate) async fn due(store: &SqliteStore, now: DateTime<Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError> {
    store
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM schedules WHERE enabled AND next_run_us IS NOT NULL AND next_run_us <= ?1
                  ORDER BY next_run_us, id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now.timestamp_micros(), i64::from(limit.max(1))], row_to_schedule)?;
            rows.collect()
        })
        .await
}

pub(crate) async fn fire(
    store: &SqliteStore,
    id: Uuid,
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    item: &QueueItem,
    queued: &Execution,
    max_depth: u64,
) -> Result<Fired, StoreError> {
    let (item, queued) = (item.clone(), queued.clone());
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let moved = tx
                .execute(
                    "UPDATE schedules SET next_run_us = ?3, last_run_us = ?2
                      WHERE id = ?1 AND enabled AND next_run_us = ?2",
                    params![id.to_string(), tick.timestamp_micros(), next.map(|t| t.timestamp_micros())],
                )
                .map_err(backend)?;
            if moved == 0 {
                return Ok(Fired::Taken);
            }
            let fired = if depth(&tx).map_err(backend)? >= max_depth {
                Fired::Skipped
            } else {
                insert_item(&tx, &item).map_err(backend)?;
                insert_execution(&tx, &queued).map_err(backend)?;
                Fired::Fired
            };
            tx.commit().map_err(backend)?;
            Ok(fired)
        })
        .await
}
