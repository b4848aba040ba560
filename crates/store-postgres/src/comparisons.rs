//! Comparisons: opaque JSON documents with an id, a function and a time.

use chrono::Utc;
use fnbox_core::StoreError;
use uuid::Uuid;

use crate::error::{corrupt, db};
use crate::rows::get;
use crate::store::PostgresStore;

pub(crate) async fn insert(store: &PostgresStore, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO comparisons (id, function, created_us, body) VALUES ($1, $2, $3, $4)",
            &[&id, &function, &Utc::now().timestamp_micros(), &body.to_string()],
        )
        .await
        .map(|_| ())
        .map_err(db)
}

fn body(r: &tokio_postgres::Row) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(get::<&str>(r, 0)?).map_err(|e| corrupt("comparison", e))
}

pub(crate) async fn list(store: &PostgresStore, limit: u32) -> Result<Vec<serde_json::Value>, StoreError> {
    let client = store.client().await?;
    let rows = client.query("SELECT body FROM comparisons ORDER BY id DESC LIMIT $1", &[&i64::from(limit)]).await.map_err(db)?;
    rows.iter().map(body).collect()
}

pub(crate) async fn get_one(store: &PostgresStore, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
    let client = store.client().await?;
    client.query_opt("SELECT body FROM comparisons WHERE id = $1", &[&id]).await.map_err(db)?.as_ref().map(body).transpose()
}
