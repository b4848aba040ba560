//! API keys: insert and revoke bump `keys_version` in the same transaction; touches do not.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fnbox_core::{KeyStore, StoreError, StoredKey};
use rusqlite::params;
use uuid::Uuid;

use crate::rows::row_to_key;
use crate::store::{backend, SqliteStore};

fn bump_keys_version(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<usize> {
    tx.execute("UPDATE api_keys_version SET version = version + 1 WHERE id = 1", [])
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute(
                "INSERT INTO api_keys (id, name, role, token_hash, created_at, last_used_at, revoked, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, NULL)",
                params![
                    k.key.id.to_string(),
                    k.key.name,
                    k.key.role.as_str(),
                    k.token_hash,
                    k.key.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    k.key.revoked,
                ],
            )
            .map_err(backend)?;
            bump_keys_version(&tx).map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, role, token_hash, created_at, last_used_at, revoked FROM api_keys ORDER BY id",
            )?;
            let rows = stmt.query_map([], row_to_key)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_key(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = ?1)", [id.to_string()], |r| r.get(0))
                .map_err(backend)?;
            if !exists {
                return Ok(false);
            }
            let changed = tx
                .execute(
                    "UPDATE api_keys SET revoked = TRUE, revoked_at = ?2 WHERE id = ?1 AND NOT revoked",
                    params![id.to_string(), Utc::now().to_rfc3339()],
                )
                .map_err(backend)?;
            if changed > 0 {
                bump_keys_version(&tx).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn touch_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let used: Vec<(String, String)> =
            used.iter().map(|(id, t)| (id.to_string(), t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).collect();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1").map_err(backend)?;
                for (id, t) in &used {
                    stmt.execute(params![id, t]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn keys_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT version FROM api_keys_version WHERE id = 1", [], |r| r.get(0))).await
    }
}
