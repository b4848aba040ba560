//! Functions: insert (a name is unique), compare-and-swap update, delete and reads.

use chrono::{DateTime, Utc};
use fnbox_core::{Function, StoreError};

use crate::error::{db, is_unique_violation};
use crate::rows::{get, nanos, row_to_function, FunctionRow, FUNCTION_COLUMNS};
use crate::store::PostgresStore;

pub(crate) async fn insert(store: &PostgresStore, f: &Function) -> Result<(), StoreError> {
    let row = FunctionRow::new(f)?;
    let client = store.client().await?;
    let sql = format!("INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)");
    match client.execute(&sql, &row.params()).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(f.name.clone())),
        Err(e) => Err(db(e)),
    }
}

pub(crate) async fn update(store: &PostgresStore, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
    let row = FunctionRow::new(f)?;
    let expected = nanos(expected_updated_at)?;
    let mut params = row.params().to_vec();
    params.push(&expected);
    let client = store.client().await?;
    let n = client
        .execute(
            "UPDATE functions SET id=$1, description=$3, language=$4, runtime=$5, code=$6, timeout_ms=$7,
                memory_mb=$8, concurrency=$9, env=$10, sample_input=$11, version=$12, created_ns=$13,
                updated_ns=$14, dependencies=$15, build=$16, serving=$17, http=$18, max_retries=$19 WHERE name=$2 AND updated_ns=$20",
            &params,
        )
        .await
        .map_err(db)?;
    if n > 0 {
        return Ok(());
    }
    let exists = client
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
    let client = store.client().await?;
    client.execute("DELETE FROM functions WHERE name = $1", &[&name]).await.map(|n| n > 0).map_err(db)
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
