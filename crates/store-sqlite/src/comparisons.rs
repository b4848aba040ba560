//! Comparisons: opaque JSON documents with an id, a function and a time.

use chrono::Utc;
use fnbox_core::StoreError;
use rusqlite::{params, OptionalExtension};
use uuid::Uuid;

use crate::rows::parse_err;
use crate::store::{backend, SqliteStore};

pub(crate) async fn insert(store: &SqliteStore, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError> {
    let (id, function, body) = (id.to_string(), function.to_owned(), body.to_string());
    store.write(move |conn| {
        conn.execute(
            "INSERT INTO comparisons (id, function, created_at, body) VALUES (?1, ?2, ?3, ?4)",
            params![id, function, Utc::now().to_rfc3339(), body],
        )
        .map(|_| ())
        .map_err(backend)
    })
    .await
}


pub(crate) async fn list(store: &SqliteStore, limit: u32) -> Result<Vec<serde_json::Value>, StoreError> {
    store.read(move |conn| {
        let mut stmt = conn.prepare_cached("SELECT body FROM comparisons ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([i64::from(limit)], |r| {
            let body: String = r.get(0)?;
            serde_json::from_str(&body).map_err(|e| parse_err(0, e.to_string()))
        })?;
        rows.collect()
    })
    .await
}


pub(crate) async fn get(store: &SqliteStore, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
    store.read(move |conn| {
        conn.query_row("SELECT body FROM comparisons WHERE id = ?1", [id.to_string()], |r| {
            let body: String = r.get(0)?;
            serde_json::from_str(&body).map_err(|e| parse_err(0, e.to_string()))
        })
        .optional()
    })
    .await
}
