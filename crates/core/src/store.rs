//! The persistence boundary: SQLite (embedded, the default) and PostgreSQL (shared by the
//! nodes of a cluster) implement it, and `fnbox-store`'s conformance suite holds both to it.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::metrics::{MetricsFilter, Sample};
use crate::{
    DeadLetter, Enqueued, ErrorInfo, Execution, ExecutionFilter, Fired, Function, LastExecution, QueueItem, Schedule, TestEvent,
    TestEventSaved, VersionSummary,
};

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

    /// Inserts a function and, in the same commit, the snapshot of its version.
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError>;
    /// Replaces the stored function with the same name, only if it is still the one last
    /// updated at `expected_updated_at` (compare-and-swap: several nodes may write), else
    /// [`StoreError::Stale`]. In the same commit: a new version gets its snapshot
    /// ([`crate::version::snapshot_of`]; versions past [`crate::MAX_VERSIONS`] are pruned,
    /// oldest first), and the same version gets its build recorded on its snapshot (the only
    /// part of a snapshot that changes: a build ends after its version was made).
    async fn update_function(&self, f: &Function, expected_updated_at: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError>;
    /// Deletes a function with its versions and test events (one commit); its executions stay
    /// for the record.
    async fn delete_function(&self, name: &str) -> Result<bool, StoreError>;
    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError>;
    async fn list_functions(&self) -> Result<Vec<Function>, StoreError>;

    /// The versions kept of function `name`, newest first (empty when there is no such function).
    async fn list_versions(&self, name: &str) -> Result<Vec<VersionSummary>, StoreError>;
    /// The snapshot of one version of `name`, its `created_at` and `updated_at` the version's time.
    async fn get_version(&self, name: &str, version: u32) -> Result<Option<Function>, StoreError>;

    /// The test events saved with function `name`, by name.
    async fn list_test_events(&self, name: &str) -> Result<Vec<TestEvent>, StoreError>;
    /// Creates or replaces test event `event.name` of function `name` (one commit), unless it
    /// is new and the function holds `max` already ([`TestEventSaved::Full`]).
    /// [`StoreError::NotFound`] when there is no such function.
    async fn put_test_event(&self, name: &str, event: &TestEvent, max: u32) -> Result<TestEventSaved, StoreError>;
    async fn delete_test_event(&self, name: &str, event_name: &str) -> Result<bool, StoreError>;

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
    /// The most recent execution of each of `functions` that has one, comparison runs left
    /// out, without payloads: one indexed read per function (the list of functions shows it).
    async fn last_executions(&self, functions: &[String]) -> Result<HashMap<String, LastExecution>, StoreError>;

    /// The numbers of every matching execution (no payloads), for aggregates.
    async fn samples(&self, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError>;
    /// Failed executions (any status but success), oldest first, for grouping: each with its
    /// error's type and the first kilobyte of its message (no stack).
    async fn failures(&self, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError>;
    /// Deletes executions started before `before`, then the oldest beyond `keep_max`.
    async fn prune_executions(&self, before: Option<chrono::DateTime<chrono::Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError>;

    /// Accepts an asynchronous call: its queue item and its first attempt's `queued` record in
    /// one commit, unless the queue holds `max_depth` items already ([`Enqueued::Full`]).
    async fn enqueue(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError>;
    /// Leases up to `limit` items due at `now` (oldest due first) that no live lease holds, to
    /// `owner` until `lease_until`. An item whose lease expired (its worker died) is claimable.
    async fn claim_queued(
        &self,
        owner: &str,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<QueueItem>, StoreError>;
    /// Writes a claimed item back as `item` (its next attempt, due time, last error), lease
    /// dropped; with `queued`, that attempt's `queued` record in the same commit.
    async fn requeue(&self, item: &QueueItem, queued: Option<&Execution>) -> Result<(), StoreError>;
    /// Removes an item whose last attempt is recorded.
    async fn complete_queued(&self, id: Uuid) -> Result<(), StoreError>;
    /// Moves an item to the dead letters (one commit).
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError>;
    /// Drops the leases `owner` holds (every lease with `None`): at a node's start, since the
    /// process that took them is gone.
    async fn release_leases(&self, owner: Option<&str>) -> Result<u64, StoreError>;
    /// Drops every lease whose owner is not in `live` (nodes that died without restarting),
    /// so their calls run elsewhere before the leases expire.
    async fn release_leases_except(&self, live: &[String]) -> Result<u64, StoreError>;
    /// Items in the queue (due or waiting for their backoff, leased or not).
    async fn queue_depth(&self) -> Result<u64, StoreError>;
    /// Dead letters, newest first.
    async fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
    async fn count_dead_letters(&self) -> Result<u64, StoreError>;
    async fn get_dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError>;
    async fn delete_dead_letter(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Takes dead letter `item.id` back into the queue as `item`, with its `queued` record, in
    /// one commit ([`Enqueued::NotFound`] when there is no such dead letter).
    async fn retry_dead_letter(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError>;

    async fn insert_schedule(&self, s: &Schedule) -> Result<(), StoreError>;
    /// A function's schedules (every function's with `None`), oldest first.
    async fn list_schedules(&self, function: Option<&str>) -> Result<Vec<Schedule>, StoreError>;
    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError>;
    /// Replaces a schedule's cron, time zone, input, enabled and next run (false: no such
    /// schedule).
    async fn update_schedule(&self, s: &Schedule) -> Result<bool, StoreError>;
    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Removes a function's schedules (the function is being deleted).
    async fn delete_schedules_of(&self, function: &str) -> Result<u64, StoreError>;
    /// Enabled schedules whose next run is at or before `now`, soonest first.
    async fn due_schedules(&self, now: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError>;
    /// Fires tick `tick` of schedule `id`, in one commit: advances its next run from `tick`
    /// to `next` (only if it is still `tick`, so one caller wins) and accepts the tick's call
    /// (`item` and its `queued` record) unless the queue holds `max_depth` calls.
    async fn fire_schedule(
        &self,
        id: Uuid,
        tick: chrono::DateTime<chrono::Utc>,
        next: Option<chrono::DateTime<chrono::Utc>>,
        item: &QueueItem,
        queued: &Execution,
        max_depth: u64,
    ) -> Result<Fired, StoreError>;

    /// Comparisons are stored as opaque JSON documents with an id, a function and a time.
    async fn insert_comparison(&self, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError>;
    async fn list_comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, StoreError>;
    async fn get_comparison(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError>;
}
