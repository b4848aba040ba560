//! The queue of asynchronous calls and the dead letters. Every write runs on the writer
//! thread, so a claim and the records committed before it are in one order.

use chrono::{DateTime, Utc};
use fnbox_core::{DeadLetter, Enqueued, ErrorInfo, Execution, QueueItem, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::rows::parse_err;
use crate::store::{backend, SqliteStore};
use crate::writer::insert_execution;

const ITEM_COLUMNS: &str =
    "id, function_name, input, \"trigger\", attempt, first_attempt, execution_id, enqueued_us, due_us, last_error";
const LETTER_COLUMNS: &str =
    "id, function_name, input, \"trigger\", attempts, last_error, last_execution_id, enqueued_us, failed_us";

fn uuid_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&r.get::<_, String>(i)?).map_err(|e| parse_err(i, e.to_string()))
}

fn time_col(r: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let us: i64 = r.get(i)?;
    DateTime::from_timestamp_micros(us).ok_or_else(|| parse_err(i, format!("time {us} out of range")))
}

fn error_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<ErrorInfo>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| parse_err(i, e.to_string()))
}

fn error_text(e: &Option<ErrorInfo>) -> Option<String> {
    e.as_ref().and_then(|e| serde_json::to_string(e).ok())
}

fn row_to_item(r: &Row<'_>) -> rusqlite::Result<QueueItem> {
    Ok(QueueItem {
        id: uuid_col(r, 0)?,
        function: r.get(1)?,
        input: r.get(2)?,
        trigger: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        attempt: r.get(4)?,
        first_attempt: r.get(5)?,
        execution_id: uuid_col(r, 6)?,
        enqueued_at: time_col(r, 7)?,
        due_at: time_col(r, 8)?,
        last_error: error_col(r, 9)?,
    })
}

fn row_to_letter(r: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: uuid_col(r, 0)?,
        function: r.get(1)?,
        input: r.get(2)?,
        trigger: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        attempts: r.get(4)?,
        last_error: error_col(r, 5)?,
        last_execution_id: r.get::<_, Option<String>>(6)?.map(|s| Uuid::parse_str(&s)).transpose().map_err(|e| parse_err(6, e.to_string()))?,
        enqueued_at: time_col(r, 7)?,
        failed_at: time_col(r, 8)?,
    })
}

pub(crate) fn insert_item(conn: &Connection, item: &QueueItem) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "INSERT INTO queue ({ITEM_COLUMNS}, lease_owner, lease_until_us) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,NULL,NULL)"
    ))?
    .execute(params![
        item.id.to_string(),
        item.function,
        item.input,
        item.trigger.as_str(),
        item.attempt,
        item.first_attempt,
        item.execution_id.to_string(),
        item.enqueued_at.timestamp_micros(),
        item.due_at.timestamp_micros(),
        error_text(&item.last_error),
    ])
}

pub(crate) fn depth(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0)).map(|n| n.max(0) as u64)
}

pub(crate) async fn enqueue(store: &SqliteStore, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
    let (item, queued) = (item.clone(), queued.clone());
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            if depth(&tx).map_err(backend)? >= max_depth {
                return Ok(Enqueued::Full);
            }
            insert_item(&tx, &item).map_err(backend)?;
            insert_execution(&tx, &queued).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Enqueued::Accepted)
        })
        .await
}

pub(crate) async fn claim(
    store: &SqliteStore,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<QueueItem>, StoreError> {
    let owner = owner.to_owned();
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let now_us = now.timestamp_micros();
            let items: Vec<QueueItem> = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {ITEM_COLUMNS} FROM queue
                          WHERE due_us <= ?1 AND (lease_until_us IS NULL OR lease_until_us < ?1)
                          ORDER BY due_us, id LIMIT ?2"
                    ))
                    .map_err(backend)?;
                let rows = stmt.query_map(params![now_us, i64::from(limit)], row_to_item).map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>().map_err(backend)?
            };
            for item in &items {
                tx.execute(
                    "UPDATE queue SET lease_owner = ?2, lease_until_us = ?3 WHERE id = ?1",
                    params![item.id.to_string(), owner, lease_until.timestamp_micros()],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(items)
        })
        .await
}

pub(crate) async fn requeue(store: &SqliteStore, item: &QueueItem, queued: Option<&Execution>) -> Result<(), StoreError> {
    let (item, queued) = (item.clone(), queued.cloned());
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute(
                "UPDATE queue SET attempt = ?2, first_attempt = ?3, execution_id = ?4, due_us = ?5, last_error = ?6,
                    lease_owner = NULL, lease_until_us = NULL WHERE id = ?1",
                params![
                    item.id.to_string(),
                    item.attempt,
                    item.first_attempt,
                    item.execution_id.to_string(),
                    item.due_at.timestamp_micros(),
                    error_text(&item.last_error),
                ],
            )
            .map_err(backend)?;
            if let Some(e) = &queued {
                insert_execution(&tx, e).map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
}

pub(crate) async fn complete(store: &SqliteStore, id: Uuid) -> Result<(), StoreError> {
    store.write(move |conn| conn.execute("DELETE FROM queue WHERE id = ?1", [id.to_string()]).map(|_| ()).map_err(backend)).await
}

pub(crate) async fn dead_letter(store: &SqliteStore, letter: &DeadLetter) -> Result<(), StoreError> {
    let l = letter.clone();
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute("DELETE FROM queue WHERE id = ?1", [l.id.to_string()]).map_err(backend)?;
            tx.execute(
                &format!("INSERT OR REPLACE INTO dead_letters ({LETTER_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
                params![
                    l.id.to_string(),
                    l.function,
                    l.input,
                    l.trigger.as_str(),
                    l.attempts,
                    error_text(&l.last_error),
                    l.last_execution_id.map(|i| i.to_string()),
                    l.enqueued_at.timestamp_micros(),
                    l.failed_at.timestamp_micros(),
                ],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
}

pub(crate) async fn release_leases(store: &SqliteStore, owner: Option<&str>) -> Result<u64, StoreError> {
    let owner = owner.map(str::to_owned);
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_until_us = NULL
                  WHERE lease_owner IS NOT NULL AND (?1 IS NULL OR lease_owner = ?1)",
                [owner],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
}

pub(crate) async fn queue_depth(store: &SqliteStore) -> Result<u64, StoreError> {
    store.read(depth).await
}

pub(crate) async fn list_letters(store: &SqliteStore, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
    store
        .read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY failed_us DESC, id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([i64::from(limit.max(1))], row_to_letter)?;
            rows.collect()
        })
        .await
}

pub(crate) async fn count_letters(store: &SqliteStore) -> Result<u64, StoreError> {
    store.read(|conn| conn.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get::<_, i64>(0)).map(|n| n.max(0) as u64)).await
}

pub(crate) async fn get_letter(store: &SqliteStore, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
    store
        .read(move |conn| {
            conn.query_row(&format!("SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"), [id.to_string()], row_to_letter)
                .optional()
        })
        .await
}

pub(crate) async fn delete_letter(store: &SqliteStore, id: Uuid) -> Result<bool, StoreError> {
    store
        .write(move |conn| conn.execute("DELETE FROM dead_letters WHERE id = ?1", [id.to_string()]).map(|n| n > 0).map_err(backend))
        .await
}

pub(crate) async fn retry_letter(store: &SqliteStore, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
    let (item, queued) = (item.clone(), queued.clone());
    store
        .write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            if tx.execute("DELETE FROM dead_letters WHERE id = ?1", [item.id.to_string()]).map_err(backend)? == 0 {
                return Ok(Enqueued::NotFound);
            }
            if depth(&tx).map_err(backend)? >= max_depth {
                return Ok(Enqueued::Full);
            }
            insert_item(&tx, &item).map_err(backend)?;
            insert_execution(&tx, &queued).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Enqueued::Accepted)
        })
        .await
}

pub(crate) async fn release_leases_except(store: &SqliteStore, live: &[String]) -> Result<u64, StoreError> {
    // SQLite has no array parameter; the live set is a JSON array read by json_each.
    let live = serde_json::to_string(live).map_err(|e| StoreError::Backend(e.to_string()))?;
    store
        .write(move |conn| {
            conn.execute(
                "UPDATE queue SET lease_owner = NULL, lease_until_us = NULL
                  WHERE lease_owner IS NOT NULL AND lease_owner NOT IN (SELECT value FROM json_each(?1))",
                [live],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
}
