use fnbox_core::{StoreError, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("function `{0}` not found")]
    FunctionNotFound(String),
    #[error("execution `{0}` not found")]
    ExecutionNotFound(String),
    #[error("comparison `{0}` not found")]
    ComparisonNotFound(String),
    #[error("a function named `{0}` already exists")]
    Conflict(String),
    /// `If-Match` named an older state of the function than the current one.
    #[error("function `{name}` changed since that ETag was read; it is now {etag}")]
    Stale { name: String, etag: String },
    /// The request broke one or more rules; each names its field.
    #[error("invalid request: {0}")]
    Invalid(ValidationErrors),
    /// The event is larger than the input limit.
    #[error("the input is {size} bytes; the limit is {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// The function is at its concurrency limit and its queue is full.
    #[error("too many invocations of `{0}` are queued; retry later")]
    QueueFull(String),
    /// The queue of asynchronous calls holds its limit.
    #[error("the queue of asynchronous calls is full ({0} calls waiting); retry later")]
    AsyncQueueFull(u64),
    /// No such schedule.
    #[error("schedule `{0}` not found")]
    ScheduleNotFound(String),
    /// No such dead letter.
    #[error("dead letter `{0}` not found")]
    DeadLetterNotFound(String),
    /// No sandbox can be started right now (daemon down, runtime missing).
    #[error("{0}")]
    Unavailable(String),
    /// The call was forwarded to another node that stopped answering: it may have run there.
    #[error("{0}")]
    NodeLost(String),
    /// The function's dependencies are still being built and no earlier version can serve.
    #[error("`{0}` is still building its dependencies; retry when its build is ready (GET /api/v1/functions/{0}/build?wait=60)")]
    BuildPending(String),
    /// The function's build failed and no earlier version can serve.
    #[error("the dependencies of `{name}` failed to build: {message}")]
    BuildFailed { name: String, message: String },
    /// The function has no such version (never made, or pruned from its history).
    #[error("function `{name}` has no version {version}")]
    VersionNotFound { name: String, version: u32 },
    /// That version exists but cannot be invoked.
    #[error("version {version} of `{name}` cannot run: {reason}")]
    VersionNotRunnable { name: String, version: u32, reason: String },
    #[error("function `{name}` has no test event `{event}`")]
    TestEventNotFound { name: String, event: String },
    /// The function holds the most test events already.
    #[error("function `{name}` has {max} test events, the most it may keep; delete one first")]
    TooManyTestEvents { name: String, max: u32 },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(name) => EngineError::Conflict(name),
            StoreError::NotFound(name) => EngineError::FunctionNotFound(name),
            // Another node changed it between our read and our write; our ETag-less caller
            // sees the same answer as one whose If-Match no longer matches.
            StoreError::Stale(name) => EngineError::Stale { name, etag: String::new() },
            other => EngineError::Store(other),
        }
    }
}

impl From<ValidationErrors> for EngineError {
    fn from(e: ValidationErrors) -> Self {
        EngineError::Invalid(e)
    }
}
