//! The persistence boundary: SQLite (embedded, the default) and PostgreSQL (shared by the
//! nodes of a cluster) implement it, and `fnbox-store`'s conformance suite holds both to it.

use async_trait::async_trait;
use uuid::Uuid;

use crate::metrics::{MetricsFilter, Sample};
use crate::{ErrorInfo, Execution, ExecutionFilter, Function};

/// A failed execution, for grouping errors.
#[derive(Debug, Clone)]
pub struct Failure {
    pub id: Uuid,
    pub function: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub error: Option<ErrorInfo>,
}

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
    /// The backend cannot be reached right now (a database server down or restarting); the
    /// store reconnects by itself, so the same request can succeed later.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A conditional write found the row changed since it was read (another writer, perhaps
    /// on another node, got there first).
    #[error("`{0}` was changed by another writer meanwhile")]
    Stale(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the store can be reached, as far as it knows without trying (no I/O): callers
    /// refuse work at once with [`StoreError::Unavailable`] while a database server is down,
    /// rather than run it and fail to record it. An embedded store is always available.
    fn available(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn insert_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Replaces the stored function with the same name, only if it is still the one last
    /// updated at `expected_updated_at` (compare-and-swap: several nodes may write), else
    /// [`StoreError::Stale`].
    async fn update_function(&self, f: &Function, expected_updated_at: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError>;
    /// Deletes a function; its executions stay for the record.
    async fn delete_function(&self, name: &str) -> Result<bool, StoreError>;
    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError>;
    async fn list_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// Notes that an execution has started, so that a crash cannot make it vanish: one still
    /// unfinished at the next start becomes an `Interrupted` record. Best effort and
    /// fire-and-forget: nothing was acknowledged for it yet.
    fn execution_started(&self, e: &Execution);
    /// Returns once the record is durable (committed); never earlier.
    async fn record_execution(&self, e: Execution) -> Result<(), StoreError>;
    /// Turns every execution left unfinished by a previous run into a failed record with
    /// `error` (at start, before any new execution). Returns how many.
    async fn recover_interrupted(&self, error: ErrorInfo) -> Result<u64, StoreError>;
    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError>;
    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError>;

    /// The numbers of every matching execution (no payloads), for aggregates.
    async fn samples(&self, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError>;
    /// Failed executions (any status but success), oldest first, for grouping: each with its
    /// error's type and the first kilobyte of its message (no stack).
    async fn failures(&self, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError>;
    /// Deletes executions started before `before`, then the oldest beyond `keep_max`.
    async fn prune_executions(&self, before: Option<chrono::DateTime<chrono::Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError>;

    /// Comparisons are stored as opaque JSON documents with an id, a function and a time.
    async fn insert_comparison(&self, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError>;
    async fn list_comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, StoreError>;
    async fn get_comparison(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError>;
}
