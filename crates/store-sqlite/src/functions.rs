//! Functions: insert (a name is unique), compare-and-swap update, delete and reads. Each
//! write keeps the function's version history ([`crate::versions`]) in the same transaction.

use chrono::{DateTime, Utc};
use fnbox_core::{Function, StoreError};
use rusqlite::OptionalExtension;

use crate::rows::{function_params, row_to_function, time_text, FUNCTION_COLUMNS};
use crate::store::{backend, SqliteStore};
use crate::versions::{delete_history, keep_version};

pub(crate) async fn insert(store: &SqliteStore, f: &Function) -> Result<(), StoreError> {
    let p = function_params(f)?;
    let snapshot = keep_version(f)?;
    let name = f.name.clone();
    store.write(move |conn| {
        let tx = conn.transaction().map_err(backend)?;
        let sql = format!("INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19)");
        let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
        match tx.execute(&sql, refs.as_slice()) {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                return Err(StoreError::Conflict(name))
            }
            Err(e) => return Err(backend(e)),
        }
        snapshot.write(&tx).map_err(backend)?;
        tx.commit().map_err(backend)
    })
    .await
}


pub(crate) async fn update(store: &SqliteStore, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
    let mut p = function_params(f)?;
    p.push(Box::new(time_text(expected_updated_at)));
    let snapshot = keep_version(f)?;
    let name = f.name.clone();
    store.write(move |conn| {
        let tx = conn.transaction().map_err(backend)?;
        let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
        let n = tx
            .execute(
                "UPDATE functions SET id=?1, description=?3, language=?4, runtime=?5, code=?6, timeout_ms=?7,
                    memory_mb=?8, concurrency=?9, env=?10, sample_input=?11, version=?12, created_at=?13,
                    updated_at=?14, dependencies=?15, build=?16, serving=?17, http=?18, max_retries=?19 WHERE name=?2 AND updated_at=?20",
                refs.as_slice(),
            )
            .map_err(backend)?;
        if n > 0 {
            snapshot.write(&tx).map_err(backend)?;
            return tx.commit().map_err(backend);
        }
        let exists: bool = tx
            .query_row("SELECT EXISTS(SELECT 1 FROM functions WHERE name = ?1)", [&name], |r| r.get(0))
            .map_err(backend)?;
        if exists {
            Err(StoreError::Stale(name))
        } else {
            Err(StoreError::NotFound(name))
        }
    })
    .await
}


pub(crate) async fn delete(store: &SqliteStore, name: &str) -> Result<bool, StoreError> {
    let name = name.to_owned();
    store.write(move |conn| {
        let tx = conn.transaction().map_err(backend)?;
        delete_history(&tx, &name).map_err(backend)?;
        let deleted = tx.execute("DELETE FROM functions WHERE name = ?1", [name]).map(|n| n > 0).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(deleted)
    })
    .await
}


pub(crate) async fn get(store: &SqliteStore, name: &str) -> Result<Option<Function>, StoreError> {
    let name = name.to_owned();
    store.read(move |conn| {
        conn.query_row(&format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE name = ?1"), [name], row_to_function)
            .optional()
    })
    .await
}


pub(crate) async fn list(store: &SqliteStore) -> Result<Vec<Function>, StoreError> {
    store.read(|conn| {
        let mut stmt = conn.prepare_cached(&format!("SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY name"))?;
        let rows = stmt.query_map([], row_to_function)?;
        rows.collect()
    })
    .await
}

