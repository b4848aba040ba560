//! API keys: insert and revoke bump `keys_version` in the same transaction; touches do not.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fnbox_core::{KeyStore, StoreError, StoredKey};
use uuid::Uuid;

use crate::error::db;
use crate::rows::{get, row_to_key};
use crate::store::PostgresStore;

const BUMP: &str = "UPDATE api_keys_version SET version = version + 1 WHERE id = 1";

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        self.track(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            tx.execute(
                "INSERT INTO api_keys (id, name, role, token_hash, created_us, last_used_us, revoked, revoked_us)
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL)",
                &[&k.key.id, &k.key.name, &k.key.role.as_str(), &k.token_hash, &k.key.created_at.timestamp_micros(), &k.key.revoked],
            )
            .await
            .map_err(db)?;
            tx.execute(BUMP, &[]).await.map_err(db)?;
            tx.commit().await.map_err(db)
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.track(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, name, role, token_hash, created_us, last_used_us, revoked FROM api_keys ORDER BY id",
                    &[],
                )
                .await
                .map_err(db)?;
            rows.iter().map(row_to_key).collect()
        })
        .await
    }

    async fn revoke_key(&self, id: Uuid) -> Result<bool, StoreError> {
        self.track(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db)?;
            let exists = tx.query_one("SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = $1)", &[&id]).await.map_err(db)?;
            if !get::<bool>(&exists, 0)? {
                return Ok(false);
            }
            let changed = tx
                .execute(
                    "UPDATE api_keys SET revoked = TRUE, revoked_us = $2 WHERE id = $1 AND NOT revoked",
                    &[&id, &Utc::now().timestamp_micros()],
                )
                .await
                .map_err(db)?;
            if changed > 0 {
                tx.execute(BUMP, &[]).await.map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            Ok(true)
        })
        .await
    }

    async fn touch_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        // Whole seconds, as SQLite keeps them: the time is approximate anyway.
        let ids: Vec<Uuid> = used.iter().map(|(id, _)| *id).collect();
        let times: Vec<i64> = used.iter().map(|(_, t)| t.timestamp() * 1_000_000).collect();
        self.track(async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE api_keys k SET last_used_us = u.t FROM UNNEST($1::uuid[], $2::bigint[]) AS u(id, t) WHERE k.id = u.id",
                    &[&ids, &times],
                )
                .await
                .map(|_| ())
                .map_err(db)
        })
        .await
    }

    async fn keys_version(&self) -> Result<i64, StoreError> {
        self.track(async {
            let client = self.client().await?;
            let row = client.query_one("SELECT version FROM api_keys_version WHERE id = 1", &[]).await.map_err(db)?;
            get(&row, 0)
        })
        .await
    }
}
