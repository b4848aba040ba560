//! Functions: insert (a name is unique), compare-and-swap update, delete and reads.

use chrono::{DateTime, Utc};
use fnbox_core::{Function, StoreError};

use crate::error::{db, is_unique_violation};
use crate::rows::{get, nanos, row_to_function, FunctionRow, FUNCTION_COLUMNS};
use crate::store::PostgresStore;
use crate::versions::{delete_history, keep_version};

pub(crate) async fn insert(store: &PostgresStore, f: &Function) -> Result<(), StoreError> {
    let row = FunctionRow::new(f)?;
    let snapshot = keep_version(f)?;
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let sql = format!("INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)");
    match tx.execute(&sql, &row.params()).await {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict(f.name.clone())),
        Err(e) => return Err(db(e)),
    }
    snapshot.write(&*tx).await?;
    tx.commit().await.map_err(db)
}

pub(crate) async fn update(store: &PostgresStore, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
    let row = FunctionRow::new(f)?;
    let expected = nanos(expected_updated_at)?;
    let mut params = row.params().to_vec();
    params.push(&expected);
    let snapshot = keep_version(f)?;
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let n = tx
        .execute(
            "UPDATE functions SET id=$1, description=$3, language=$4, runtime=$5, code=$6, timeout_ms=$7,
                memory_mb=$8, concurrency=$9, env=$10, sample_input=$11, version=$12, created_ns=$13,
                updated_ns=$14, dependencies=$15, build=$16, serving=$17, http=$18, max_retries=$19 WHERE name=$2 AND updated_ns=$20",
            &params,
        )
        .await
        .map_err(db)?;
    if n > 0 {
        snapshot.write(&*tx).await?;
        return tx.commit().await.map_err(db);
    }
    let exists = tx
        .query_one("SELECT EXISTS(SELECT 1 FROM functions WHERE name = $1)", &[&f.name])
        .await
        .map_err(db)?;
    if get::<bool>(&exists, 0)? {
        Err(StoreError::Stale(f.name.clone()))
    } else {
        Err(StoreError::NotFound(f.name.clone()))
    }
}

pub(crate) async fn delete(store: &PostgresStore, name: &str) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    delete_history(&*tx, name).await?;
    let deleted = tx.execute("DELETE FROM functions WHERE name = $1", &[&name]).await.map(|n| n > 0).map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(deleted)
}

pub(crate) async fn get_one(store: &PostgresStore, name: &str) -> Result<Option<Function>, StoreError> {
    let client = store.client().await?;
    let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE name = $1");
    client.query_opt(&sql, &[&name]).await.map_err(db)?.as_ref().map(row_to_function).transpose()
}

pub(crate) async fn list(store: &PostgresStore) -> Result<Vec<Function>, StoreError> {
    let client = store.client().await?;
    let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY name");
    client.query(&sql, &[]).await.map_err(db)?.iter().map(row_to_function).collect()
}
