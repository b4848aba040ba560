//! The fnbox domain: functions, executions, their limits and validation, and the
//! `Store` and `KeyStore` traits every storage backend implements. Nothing here knows about HTTP,
//! Docker or SQL.

pub mod build;
pub mod dependencies;
pub mod execution;
pub mod function;
pub mod inflight;
pub mod keys;
pub mod merge_patch;
pub mod metrics;
pub mod queue;
pub mod schedule;
pub mod store;
pub mod summary;
pub mod validation;
pub mod version;

pub use execution::{cap_text, ErrorInfo, Execution, ExecutionFilter, ExecutionStatus, RawJson, Trigger, TriggerFilter};
pub use build::{Build, BuildReport, BuildStatus};
pub use dependencies::Dependencies;
pub use function::{function_url, BuildSummary, Function, HttpAccess, FunctionInfo, FunctionPatch, FunctionSpec, Language, NotRunnable, Runtime};
pub use queue::{DeadLetter, Enqueued, QueueItem};
pub use schedule::{CronSpec, Fired, Schedule};
pub use store::{Failure, Store, StoreError};
pub use summary::{ErrorSummary, ExecutionSummary, LastExecution};
pub use keys::{ApiKey, KeyStore, NewKey, Role, StoredKey};
pub use version::{TestEvent, TestEventSaved, VersionInfo, VersionSummary, MAX_TEST_EVENTS, MAX_VERSIONS};
pub use validation::{json_too_deep, FieldError, Limits, ValidationErrors, MAX_JSON_DEPTH};
