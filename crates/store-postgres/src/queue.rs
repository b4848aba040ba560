//! The queue of asynchronous calls and the dead letters, shared by every node: a claim takes
//! due rows with `FOR UPDATE SKIP LOCKED`, so two nodes never lease the same row and neither
//! waits for the other.

use chrono::{DateTime, Utc};
use fnbox_core::{DeadLetter, Enqueued, ErrorInfo, Execution, QueueItem, StoreError};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{corrupt, db};
use crate::rows::{from_micros, get, insert_executions};
use crate::store::PostgresStore;

const ITEM_COLUMNS: &str =
    "id, function_name, input, \"trigger\", attempt, first_attempt, execution_id, enqueued_us, due_us, last_error";
const LETTER_COLUMNS: &str =
    "id, function_name, input, \"trigger\", attempts, last_error, last_execution_id, enqueued_us, failed_us";

fn u32_at(r: &Row, i: usize, what: &str) -> Result<u32, StoreError> {
    u32::try_from(get::<i64>(r, i)?).map_err(|e| corrupt(what, e))
}

fn error_at(r: &Row, i: usize) -> Result<Option<ErrorInfo>, StoreError> {
    get::<Option<&str>>(r, i)?.map(serde_json::from_str).transpose().map_err(|e| corrupt("last error", e))
}

fn error_text(e: &Option<ErrorInfo>) -> Option<String> {
    e.as_ref().and_then(|e| serde_json::to_string(e).ok())
}

fn row_to_item(r: &Row) -> Result<QueueItem, StoreError> {
    Ok(QueueItem {
        id: get(r, 0)?,
        function: get(r, 1)?,
        input: get(r, 2)?,
        trigger: get::<&str>(r, 3)?.parse().map_err(|e: String| corrupt("trigger", e))?,
        attempt: u32_at(r, 4, "attempt")?,
        first_attempt: u32_at(r, 5, "first attempt")?,
        execution_id: get(r, 6)?,
        enqueued_at: from_micros(get(r, 7)?)?,
        due_at: from_micros(get(r, 8)?)?,
        last_error: error_at(r, 9)?,
    })
}

fn row_to_letter(r: &Row) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: get(r, 0)?,
        function: get(r, 1)?,
        input: get(r, 2)?,
        trigger: get::<&str>(r, 3)?.parse().map_err(|e: String| corrupt("trigger", e))?,
        attempts: u32_at(r, 4, "attempts")?,
        last_error: error_at(r, 5)?,
        last_execution_id: get(r, 6)?,
        enqueued_at: from_micros(get(r, 7)?)?,
        failed_at: from_micros(get(r, 8)?)?,
    })
}

pub(crate) async fn insert_item(c: &impl GenericClient, item: &QueueItem) -> Result<(), StoreError> {
    c.execute(
        &format!("INSERT INTO queue ({ITEM_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"),
        &[
            &item.id,
            &item.function,
            &item.input,
            &item.trigger.as_str(),
            &i64::from(item.attempt),
            &i64::from(item.first_attempt),
            &item.execution_id,
            &item.enqueued_at.timestamp_micros(),
            &item.due_at.timestamp_micros(),
            &error_text(&item.last_error),
        ],
    )
    .await
    .map(|_| ())
    .map_err(db)
}

pub(crate) async fn depth(c: &impl GenericClient) -> Result<u64, StoreError> {
    let row = c.query_one("SELECT COUNT(*) FROM queue", &[]).await.map_err(db)?;
    Ok(u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
}

pub(crate) async fn enqueue(store: &PostgresStore, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    if depth(&*tx).await? >= max_depth {
        return Ok(Enqueued::Full);
    }
    insert_item(&*tx, item).await?;
    insert_executions(&*tx, &[&store.on_this_node(queued)]).await?;
    tx.commit().await.map_err(db)?;
    Ok(Enqueued::Accepted)
}

pub(crate) async fn claim(
    store: &PostgresStore,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<QueueItem>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!(
                "UPDATE queue SET lease_owner = $1, lease_until_us = $2 WHERE id IN (
                    SELECT id FROM queue WHERE due_us <= $3 AND (lease_until_us IS NULL OR lease_until_us < $3)
                     ORDER BY due_us, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING {ITEM_COLUMNS}"
            ),
            &[&owner, &lease_until.timestamp_micros(), &now.timestamp_micros(), &i64::from(limit)],
        )
        .await
        .map_err(db)?;
    let mut items = rows.iter().map(row_to_item).collect::<Result<Vec<_>, _>>()?;
    items.sort_by_key(|i| (i.due_at, i.id));
    Ok(items)
}

pub(crate) async fn requeue(store: &PostgresStore, item: &QueueItem, queued: Option<&Execution>) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "UPDATE queue SET attempt = $2, first_attempt = $3, execution_id = $4, due_us = $5, last_error = $6,
            lease_owner = NULL, lease_until_us = NULL WHERE id = $1",
        &[
            &item.id,
            &i64::from(item.attempt),
            &i64::from(item.first_attempt),
            &item.execution_id,
            &item.due_at.timestamp_micros(),
            &error_text(&item.last_error),
        ],
    )
    .await
    .map_err(db)?;
    if let Some(e) = queued {
        insert_executions(&*tx, &[&store.on_this_node(e)]).await?;
    }
    tx.commit().await.map_err(db)
}

pub(crate) async fn complete(store: &PostgresStore, id: Uuid) -> Result<(), StoreError> {
    let client = store.client().await?;
    client.execute("DELETE FROM queue WHERE id = $1", &[&id]).await.map(|_| ()).map_err(db)
}

pub(crate) async fn dead_letter(store: &PostgresStore, l: &DeadLetter) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("DELETE FROM queue WHERE id = $1", &[&l.id]).await.map_err(db)?;
    tx.execute(
        &format!(
            "INSERT INTO dead_letters ({LETTER_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
             ON CONFLICT (id) DO UPDATE SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error,
                last_execution_id = EXCLUDED.last_execution_id, failed_us = EXCLUDED.failed_us"
        ),
        &[
            &l.id,
            &l.function,
            &l.input,
            &l.trigger.as_str(),
            &i64::from(l.attempts),
            &error_text(&l.last_error),
            &l.last_execution_id,
            &l.enqueued_at.timestamp_micros(),
            &l.failed_at.timestamp_micros(),
        ],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)
}

pub(crate) async fn release_leases(store: &PostgresStore, owner: Option<&str>) -> Result<u64, StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE queue SET lease_owner = NULL, lease_until_us = NULL
              WHERE lease_owner IS NOT NULL AND ($1::text IS NULL OR lease_owner = $1)",
            &[&owner],
        )
        .await
        .map_err(db)
}

pub(crate) async fn queue_depth(store: &PostgresStore) -> Result<u64, StoreError> {
    let client = store.client().await?;
    depth(&**client).await
}

pub(crate) async fn list_letters(store: &PostgresStore, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            &format!("SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY failed_us DESC, id DESC LIMIT $1"),
            &[&i64::from(limit.max(1))],
        )
        .await
        .map_err(db)?;
    rows.iter().map(row_to_letter).collect()
}

pub(crate) async fn count_letters(store: &PostgresStore) -> Result<u64, StoreError> {
    let client = store.client().await?;
    let row = client.query_one("SELECT COUNT(*) FROM dead_letters", &[]).await.map_err(db)?;
    Ok(u64::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
}

pub(crate) async fn get_letter(store: &PostgresStore, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
    let client = store.client().await?;
    let sql = format!("SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = $1");
    client.query_opt(&sql, &[&id]).await.map_err(db)?.as_ref().map(row_to_letter).transpose()
}

pub(crate) async fn delete_letter(store: &PostgresStore, id: Uuid) -> Result<bool, StoreError> {
    let client = store.client().await?;
    client.execute("DELETE FROM dead_letters WHERE id = $1", &[&id]).await.map(|n| n > 0).map_err(db)
}

pub(crate) async fn retry_letter(store: &PostgresStore, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    if tx.execute("DELETE FROM dead_letters WHERE id = $1", &[&item.id]).await.map_err(db)? == 0 {
        return Ok(Enqueued::NotFound);
    }
    if depth(&*tx).await? >= max_depth {
        return Ok(Enqueued::Full);
    }
    insert_item(&*tx, item).await?;
    insert_executions(&*tx, &[&store.on_this_node(queued)]).await?;
    tx.commit().await.map_err(db)?;
    Ok(Enqueued::Accepted)
}

pub(crate) async fn release_leases_except(store: &PostgresStore, live: &[String]) -> Result<u64, StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE queue SET lease_owner = NULL, lease_until_us = NULL
              WHERE lease_owner IS NOT NULL AND NOT (lease_owner = ANY($1))",
            &[&live],
        )
        .await
        .map_err(db)
}
