//! The persistence boundary. SQLite is the first implementation; the schema avoids
//! anything PostgreSQL could not hold so a second one can follow.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{Execution, ExecutionFilter, Function};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A function with this name already exists.
    #[error("a function named `{0}` already exists")]
    Conflict(String),
    #[error("function `{0}` not found")]
    NotFound(String),
    /// The backend failed (I/O, corruption, a closed writer).
    #[error("storage failure: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Replaces the stored function with the same name.
    async fn update_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Deletes a function; its executions stay for the record.
    async fn delete_function(&self, name: &str) -> Result<bool, StoreError>;
    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError>;
    async fn list_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// Returns once the record is durable (committed); never earlier.
    async fn record_execution(&self, e: Execution) -> Result<(), StoreError>;
    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError>;
    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError>;
}
