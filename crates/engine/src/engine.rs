use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fnbox_core::execution::truncate_text;
use fnbox_core::validation::{validate_function, validate_name};
use fnbox_core::{
    ErrorInfo, Execution, ExecutionFilter, ExecutionStatus, FieldError, Function, FunctionPatch, FunctionSpec, Limits,
    RawJson, Store, Trigger, ValidationErrors,
};
use fnbox_sandbox::protocol::{InvokeContext, ResultStatus};
use fnbox_sandbox::{near_memory_limit, InvokeOutcome, PoolError, PoolStats, Pools, RuntimeHealth};
use parking_lot::RwLock;
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::EngineError;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Compile code at create/update time so syntax errors are reported before the first call.
    pub check_syntax: bool,
    /// Builds functions' dependencies; without one, functions cannot have any.
    pub builder: Option<Arc<fnbox_builder::Builder>>,
    /// How often dependency images no function uses are looked for.
    pub image_collection_every: Duration,
    /// The asynchronous calls' workers, queue bound and retry backoff.
    pub queue: crate::queue::QueueConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            check_syntax: true,
            builder: None,
            image_collection_every: Duration::from_secs(60),
            queue: crate::queue::QueueConfig::default(),
        }
    }
}

/// How many times a call looks its function up again when the version it waited for was
/// replaced (each time means another update landed meanwhile).
const MAX_RETIRED_RETRIES: usize = 4;

/// Room past `max_log_bytes` for the bootstrap's `[fnbox: logs truncated]` marker.
const LOG_MARKER_ROOM: usize = 64;

/// Events the live stream keeps for a subscriber that has not read them yet; one further
/// behind gets a `lagged` event. Slots are shared by every subscriber, and each event is cut
/// to [`STREAM_TEXT_BYTES`] per text, so all subscribers together hold at most about
/// 256 × 20 KiB ≈ 5 MiB, however slowly they read.
pub const STREAM_BUFFER: usize = 256;

/// Each text of a live-stream event (input, output, logs, error type, message, stack) is cut
/// to this; the whole record is at `GET /api/v1/executions/{id}`.
pub const STREAM_TEXT_BYTES: usize = 4096;

/// Deepest nesting kept in a return value: what serde_json (and the clients built on it) can
/// parse back; a deeper one is a `SerializationError`, as it was when outputs were parsed.
const MAX_OUTPUT_DEPTH: usize = 127;

/// The platform's core service. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pools: Pools,
    pub(crate) config: EngineConfig,
    /// Every function, by name. The store is the truth; this saves a read per invocation.
    pub(crate) functions: RwLock<HashMap<String, Arc<Function>>>,
    executions: broadcast::Sender<Arc<Execution>>,
    /// Creates, updates and deletes run one at a time: each reads the current function,
    /// checks code and writes, and two interleaved would lose one update or reuse a version.
    /// (Across nodes the store's compare-and-swap decides.)
    pub(crate) writes: tokio::sync::Mutex<()>,
    /// Set once this node joins a cluster.
    pub(crate) cluster: std::sync::OnceLock<crate::cluster::Membership>,
    /// Fires when another node changed the API keys.
    pub(crate) key_changes: broadcast::Sender<()>,
    /// The logs of the builds running here, by dependencies hash (read while they run).
    pub(crate) build_logs: parking_lot::Mutex<HashMap<String, fnbox_builder::BuildLog>>,
    /// Wakes the queue's dispatcher when a call is accepted here.
    pub(crate) queue_wake: tokio::sync::Notify,
}

impl Engine {
    pub async fn new(store: Arc<dyn Store>, pools: Pools, config: EngineConfig) -> Result<Engine, EngineError> {
        let interrupted = store
            .recover_interrupted(ErrorInfo::new(
                "Interrupted",
                "fnbox stopped (crashed or was killed) while this execution was running; its result is unknown",
            ))
            .await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "executions cut short by the previous run were recorded as failed");
        }
        let functions = store.list_functions().await?;
        let functions = functions.into_iter().map(|f| (f.name.clone(), Arc::new(f))).collect();
        let (tx, _) = broadcast::channel(STREAM_BUFFER);
        let collect_every = config.image_collection_every;
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                pools,
                config,
                functions: RwLock::new(functions),
                executions: tx,
                writes: tokio::sync::Mutex::new(()),
                cluster: std::sync::OnceLock::new(),
                key_changes: broadcast::channel(16).0,
                build_logs: parking_lot::Mutex::new(HashMap::new()),
                queue_wake: tokio::sync::Notify::new(),
            }),
        };
        engine.resume_builds();
        engine.spawn_image_collector(collect_every);
        Ok(engine)
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    pub fn pools(&self) -> &Pools {
        &self.inner.pools
    }

    pub async fn health(&self) -> RuntimeHealth {
        self.inner.pools.backend().health().await
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pools.stats()
    }

    /// Every recorded execution, as it is recorded (for live views), cut for the stream
    /// ([`Execution::for_stream`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Execution>> {
        self.inner.executions.subscribe()
    }

    pub fn list_functions(&self) -> Vec<Arc<Function>> {
        let mut all: Vec<_> = self.inner.functions.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn get_function(&self, name: &str) -> Result<Arc<Function>, EngineError> {
        self.inner.functions.read().get(name).cloned().ok_or_else(|| EngineError::FunctionNotFound(name.to_owned()))
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub async fn create_function(&self, spec: FunctionSpec) -> Result<Arc<Function>, EngineError> {
        self.create(spec, true).await
    }

    async fn create(&self, spec: FunctionSpec, check: bool) -> Result<Arc<Function>, EngineError> {
        let mut f = Function::from_spec(spec, &self.inner.config.limits, Utc::now());
        validate_function(&f, &self.inner.config.limits)?;
        if let Some(deps) = self.dependencies_of(&f)? {
            f.build = Some(self.plan_build(&deps, f.version));
        }
        let _writing = self.inner.writes.lock().await;
        if self.inner.functions.read().contains_key(&f.name) {
            return Err(EngineError::Conflict(f.name));
        }
        if check {
            self.check_code(&f).await?;
        }
        if let Err(e) = self.inner.store.insert_function(&f).await {
            self.inner.pools.forget_checked(&f);
            return Err(e.into());
        }
        let f = Arc::new(f);
        self.inner.functions.write().insert(f.name.clone(), f.clone());
        self.announce_function(&f);
        self.after_write(&f);
        tracing::info!(function = %f.name, language = %f.language, runtime = %f.runtime, "function created");
        Ok(f)
    }

    /// Applies a partial update. With `if_match` (an ETag from [`Function::etag`]), the update
    /// happens only if the function has not changed since that ETag was read.
    pub async fn update_function(
        &self,
        name: &str,
        patch: FunctionPatch,
        if_match: Option<&str>,
    ) -> Result<Arc<Function>, EngineError> {
        self.update_function_with(name, if_match, false, |_| Ok(patch)).await
    }

    /// Applies a JSON merge patch (RFC 7396) of the function's document, read against the
    /// current function under the same write lock as the update, so no concurrent change is
    /// merged over.
    pub async fn patch_function(
        &self,
        name: &str,
        merge_patch: serde_json::Value,
        if_match: Option<&str>,
    ) -> Result<Arc<Function>, EngineError> {
        self.update_function_with(name, if_match, false, |current| Ok(FunctionPatch::from_merge_patch(current, merge_patch)?))
            .await
    }

    /// An update: `make_patch` gets the current function (after the `If-Match` check). With
    /// `always_new_version` the update makes a new version even when nothing that runs changed
    /// (a rollback: history only grows, and the answer's version says which one runs).
    pub(crate) async fn update_function_with(
        &self,
        name: &str,
        if_match: Option<&str>,
        always_new_version: bool,
        make_patch: impl FnOnce(&Function) -> Result<FunctionPatch, EngineError>,
    ) -> Result<Arc<Function>, EngineError> {
        let _writing = self.inner.writes.lock().await;
        let current = if self.inner.cluster.get().is_some() {
            // Another node may have changed it a moment ago: start from the store's copy.
            self.refresh_function(name).await?.ok_or_else(|| EngineError::FunctionNotFound(name.to_owned()))?
        } else {
            self.get_function(name)?
        };
        if let Some(expected) = if_match {
            let etag = current.etag();
            if !etag_matches(expected, &etag) {
                return Err(EngineError::Stale { name: name.to_owned(), etag });
            }
        }
        let patch = make_patch(&current)?;
        if let Some(msg) = patch.renames(name) {
            return Err(EngineError::Invalid(fnbox_core::ValidationErrors::single("name", msg)));
        }
        let mut f = (*current).clone();
        let code_changed = patch.code.as_ref().is_some_and(|c| *c != f.code) || patch.language.is_some_and(|l| l != f.language);
        let now = Utc::now();
        let mut new_version = f.apply(patch, now);
        if always_new_version && !new_version {
            f.version += 1;
            f.updated_at = now;
            new_version = true;
        }
        validate_function(&f, &self.inner.config.limits)?;
        if new_version {
            // New dependencies (or another language) need a new build; the same ones keep
            // theirs, whatever its state.
            let deps = self.dependencies_of(&f)?;
            let same = match (&deps, &current.build) {
                (Some(d), Some(b)) => d.hash() == b.deps_hash,
                _ => false,
            };
            if same {
                if let Some(b) = f.build.as_mut() {
                    b.version = f.version;
                }
            } else {
                f.build = deps.map(|d| self.plan_build(&d, f.version));
            }
            Self::plan_serving(&mut f, Some(&current));
        }
        if code_changed || (new_version && self.inner.config.check_syntax) {
            // A new version gets its own checked sandbox (of its runtime and memory size),
            // ready for its first call; only changed code can fail the check.
            self.check_code(&f).await?;
        }
        if let Err(e) = self.inner.store.update_function(&f, current.updated_at).await {
            self.inner.pools.forget_checked(&f);
            return Err(e.into());
        }
        let f = Arc::new(f);
        self.inner.functions.write().insert(f.name.clone(), f.clone());
        self.announce_function(&f);
        if new_version {
            self.after_write(&f);
            // Sandboxes of the old version finish their current call and are not reused;
            // calls still waiting for one run the new version instead (or, while it builds,
            // the version that serves meanwhile).
            self.inner.pools.retire(f.id, crate::builds::runnable_version(&f));
            tracing::info!(function = %f.name, version = f.version, "function updated to a new version");
        } else if f.concurrency != current.concurrency {
            self.inner.pools.set_concurrency(&f);
        }
        Ok(f)
    }

    pub async fn delete_function(&self, name: &str) -> Result<(), EngineError> {
        let _writing = self.inner.writes.lock().await;
        let f = self.get_function(name)?;
        if !self.inner.store.delete_function(name).await? {
            return Err(EngineError::FunctionNotFound(name.to_owned()));
        }
        self.inner.functions.write().remove(name);
        // Its schedules go with it (a tick that finds the function gone also removes its own).
        if let Err(e) = self.inner.store.delete_schedules_of(name).await {
            tracing::warn!(function = %name, error = %e, "cannot remove the deleted function's schedules");
        }
        self.announce_function(&f);
        // Calls still waiting for a sandbox of it answer "not found"; none is started for it
        // (nor for any of its versions called by number).
        self.retire_function(f.id);
        tracing::info!(function = %name, "function deleted");
        Ok(())
    }

    /// Compiles the code in a sandbox (without running it). When no sandbox can be had the
    /// check is skipped: the error then shows at the first invocation instead.
    async fn check_code(&self, f: &Function) -> Result<(), EngineError> {
        if !self.inner.config.check_syntax {
            return Ok(());
        }
        match self.inner.pools.check(f).await {
            Ok(None) => Ok(()),
            Ok(Some(err)) => {
                let at = match (err.line, err.column) {
                    (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
                    (Some(l), None) => format!(" (line {l})"),
                    _ => String::new(),
                };
                Err(EngineError::Invalid(ValidationErrors(vec![FieldError {
                    field: "code".into(),
                    message: format!("{}: {}{at}", err.kind, err.message),
                    line: err.line,
                    column: err.column,
                }])))
            }
            Err(e) => {
                tracing::warn!(function = %f.name, error = %e, "syntax check skipped");
                Ok(())
            }
        }
    }

    pub async fn executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, EngineError> {
        Ok(self.inner.store.list_executions(filter).await?)
    }

    /// The newest execution of each named function that ran (comparison runs left out).
    pub async fn last_executions(
        &self,
        functions: &[String],
    ) -> Result<std::collections::HashMap<String, fnbox_core::LastExecution>, EngineError> {
        Ok(self.inner.store.last_executions(functions).await?)
    }

    pub async fn execution(&self, id: Uuid) -> Result<Execution, EngineError> {
        self.inner.store.get_execution(id).await?.ok_or_else(|| EngineError::ExecutionNotFound(id.to_string()))
    }

    /// Invokes a function with a JSON event and returns its execution, already recorded.
    /// The work runs on its own task: a caller that goes away cannot cut an execution short
    /// or lose its record.
    pub async fn invoke(&self, name: &str, event: Box<RawValue>) -> Result<Execution, EngineError> {
        self.invoke_by(name, event, Trigger::Api).await
    }

    /// [`Engine::invoke`] for another trigger (the function URL's calls are `http`): the same
    /// checks and the same path, in a cluster too, with `trigger` on the record.
    pub async fn invoke_by(&self, name: &str, event: Box<RawValue>, trigger: Trigger) -> Result<Execution, EngineError> {
        // A store that cannot be reached could not record the call: 503 at once, run nothing.
        self.inner.store.available()?;
        validate_name(name).map_err(|_| EngineError::FunctionNotFound(name.to_owned()))?;
        let f = self.resolve_function(name).await?;
        let f = self.runnable_now(f).await?;
        let limit = self.inner.config.limits.max_input_bytes;
        if event.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: event.get().len(), limit });
        }
        self.route(f, event, trigger).await
    }

    /// Runs `f` (which need not be in the function list: a comparison's copy) on its own task.
    pub(crate) async fn invoke_as(&self, f: Arc<Function>, event: Box<RawValue>, trigger: Trigger) -> Result<Execution, EngineError> {
        self.invoke_attempt(f, event, trigger, Attempt::fresh()).await
    }

    /// Runs `f` on its own task as the given attempt (its record's id, number and call).
    pub(crate) async fn invoke_attempt(
        &self,
        f: Arc<Function>,
        event: Box<RawValue>,
        trigger: Trigger,
        attempt: Attempt,
    ) -> Result<Execution, EngineError> {
        let this = self.clone();
        tokio::spawn(async move { this.run(f, event, trigger, attempt).await })
            .await
            .map_err(|e| EngineError::Unavailable(format!("invocation task failed: {e}")))?
    }

    async fn run(&self, f: Arc<Function>, event: Box<RawValue>, trigger: Trigger, attempt: Attempt) -> Result<Execution, EngineError> {
        let t0 = Instant::now();
        let started_at = Utc::now();
        let id = attempt.id;
        let limits = &self.inner.config.limits;
        // A call that waited while its function was replaced runs the new version; one whose
        // function was deleted meanwhile is "not found". Each retry means another write
        // happened, so a few are plenty; past them the call answers 503.
        let mut f = f;
        let mut acquired = None;
        for _ in 0..MAX_RETIRED_RETRIES {
            self.ensure_image(&f).await?;
            match self.inner.pools.acquire(&f).await {
                // A comparison's copy is not in the function list: its name is the compared
                // function's, which must not be run in its place.
                // Nor does a call of one given version run another.
                Err(PoolError::Retired(_)) if trigger != Trigger::Compare && !attempt.pinned => {
                    f = self.runnable_of(self.get_function(&f.name)?)?
                }
                other => {
                    acquired = Some(other);
                    break;
                }
            }
        }
        let acquired = acquired
            .ok_or_else(|| EngineError::Unavailable(format!("`{}` kept changing while this call waited; retry", f.name)))?;
        let mut exec = Execution {
            id,
            function: f.name.clone(),
            version: f.version,
            runtime: f.runtime,
            language: f.language,
            input: truncate_text(event.get(), limits.max_recorded_bytes).0,
            output: None,
            output_truncated: false,
            status: ExecutionStatus::Success,
            error: None,
            logs: String::new(),
            started_at,
            duration_ms: 0.0,
            exec_ms: None,
            memory_bytes: None,
            cold_start: false,
            trigger,
            node: self.node_id().map(str::to_owned),
            attempt: attempt.number,
            request_id: attempt.request_id,
        };
        let mut lease = match acquired {
            Ok(lease) => lease,
            Err(PoolError::QueueFull(name)) => return Err(EngineError::QueueFull(name)),
            Err(PoolError::Sandbox(e)) => return Err(EngineError::Unavailable(e.to_string())),
            Err(PoolError::Retired(name)) => return Err(EngineError::Unavailable(format!("`{name}` changed while this call waited; retry"))),
            Err(PoolError::LoadFailed { error, logs, timed_out }) => {
                exec.cold_start = true;
                exec.status = if timed_out { ExecutionStatus::Timeout } else { ExecutionStatus::Error };
                exec.error = Some(error);
                exec.logs = truncate_text(&logs, limits.max_log_bytes).0;
                return self.finish(exec, t0).await;
            }
        };
        exec.cold_start = lease.cold;
        self.inner.store.execution_started(&exec);
        let ctx = InvokeContext {
            execution_id: id.to_string(),
            function: f.name.clone(),
            version: f.version,
            memory_mb: f.memory_mb,
            timeout_ms: f.timeout_ms,
            deadline_ms: started_at.timestamp_millis() + i64::from(f.timeout_ms),
        };
        let timeout = Duration::from_millis(u64::from(f.timeout_ms));
        let Some(sandbox) = lease.sandbox() else {
            return Err(EngineError::Unavailable("lease without sandbox".into()));
        };
        let sandbox_id = sandbox.id.clone();
        let outcome = sandbox.invoke(&ctx.execution_id, &event, &ctx, timeout).await;
        let mut leftover = Vec::new();
        let reusable = match outcome {
            InvokeOutcome::Completed { result, memory_bytes, leftover: left } => {
                leftover = left;
                exec.memory_bytes = memory_bytes;
                exec.exec_ms = result.exec_ms;
                // The bootstrap caps logs at max_log_bytes and marks the cut itself; cutting again
                // here would replace its marker with a confusing "[truncated 24 bytes]".
                exec.logs = truncate_text(&result.logs, limits.max_log_bytes + LOG_MARKER_ROOM).0;
                match result.status {
                    ResultStatus::Success => {
                        // Kept as the exact text the function returned: parsing it into a tree
                        // would round big numbers (and cost time on every call).
                        let raw = result.output.unwrap_or_default();
                        if fnbox_core::json_too_deep(raw.get().as_bytes(), MAX_OUTPUT_DEPTH) {
                            exec.status = ExecutionStatus::Error;
                            exec.error = Some(ErrorInfo::new(
                                "SerializationError",
                                format!("the return value nests arrays and objects deeper than {MAX_OUTPUT_DEPTH} levels"),
                            ));
                        } else {
                            exec.output = Some(RawJson::from(raw));
                        }
                        true
                    }
                    ResultStatus::Error => {
                        let error = result.error.unwrap_or_else(|| ErrorInfo::new("Error", "the function failed"));
                        // An interpreter that ran out of memory is not trusted with another call.
                        // Whether it was the limit is the host's finding, not the bootstrap's
                        // (the function can raise MemoryError itself, or write this result).
                        let memory_error = error.kind == "MemoryError";
                        let at_limit = memory_error && memory_bytes.is_some_and(|m| m >= near_memory_limit(f.memory_mb));
                        exec.status = if at_limit { ExecutionStatus::Oom } else { ExecutionStatus::Error };
                        exec.error = Some(error);
                        !memory_error
                    }
                }
            }
            InvokeOutcome::TimedOut { memory_bytes, logs } => {
                // What it printed before it was stopped (streamed by the bootstrap).
                exec.logs = logs;
                exec.memory_bytes = memory_bytes;
                exec.status = ExecutionStatus::Timeout;
                exec.error = Some(ErrorInfo::new(
                    "Timeout",
                    format!("the function did not finish within its timeout of {} ms", f.timeout_ms),
                ));
                false
            }
            InvokeOutcome::Violated { reason, memory_bytes } => {
                // Still running: no exit to wait for. Destroyed on release.
                exec.memory_bytes = memory_bytes;
                exec.status = ExecutionStatus::Error;
                exec.error = Some(ErrorInfo::new(
                    "ProtocolViolation",
                    format!("the function wrote on its sandbox's control channel, so its sandbox was destroyed: {reason}"),
                ));
                false
            }
            InvokeOutcome::Died { reason, stderr, memory_bytes, memory_limit_hit, logs } => {
                exec.logs = logs;
                exec.memory_bytes = memory_bytes;
                let exit = self.inner.pools.backend().exit_info(&sandbox_id).await.unwrap_or_default();
                if exit.oom_killed || memory_limit_hit {
                    exec.status = ExecutionStatus::Oom;
                    exec.error = Some(ErrorInfo::new(
                        "OutOfMemory",
                        format!("the function exceeded its memory limit of {} MB and was killed", f.memory_mb),
                    ));
                } else {
                    exec.status = ExecutionStatus::Error;
                    let code = exit.exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                    let mut err = ErrorInfo::new(
                        "SandboxExited",
                        format!("the function's sandbox stopped during the call (exit code {code}): {reason}"),
                    );
                    err.stack = stderr;
                    exec.error = Some(err);
                }
                false
            }
        };
        // Work the call left running (a process, a thread, a timer) would act during the next
        // call and could write into its logs or answer in its place: that sandbox is not reused.
        let reusable = reusable && leftover.is_empty();
        if !leftover.is_empty() {
            tracing::info!(function = %f.name, sandbox = %sandbox_id, leftover = ?leftover, "sandbox discarded: work left running");
            note_leftover(&mut exec.logs, &leftover);
        }
        self.inner.pools.release(lease, reusable);
        self.finish(exec, t0).await
    }

    /// Records the execution (durably) and only then hands it back.
    async fn finish(&self, mut exec: Execution, t0: Instant) -> Result<Execution, EngineError> {
        exec.duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
        // The answer and the record carry the same capped texts; only the output goes to the
        // caller in full.
        exec.cap(&self.inner.config.limits);
        let max = self.inner.config.limits.max_recorded_bytes;
        let oversized = exec.output.as_ref().is_some_and(|v| v.get().len() > max);
        let record = if oversized {
            Execution { output: None, output_truncated: true, ..exec.clone() }
        } else {
            exec.clone()
        };
        let record = Arc::new(record);
        self.inner.store.record_execution((*record).clone()).await?;
        let labels = [
            ("function", record.function.clone()),
            ("runtime", record.runtime.to_string()),
            ("language", record.language.to_string()),
            ("status", record.status.to_string()),
            ("start", if record.cold_start { "cold" } else { "warm" }.to_string()),
            ("trigger", record.trigger.to_string()),
        ];
        metrics::counter!("fnbox_invocations_total", &labels).increment(1);
        metrics::histogram!("fnbox_invocation_duration_seconds", &labels).record(record.duration_ms / 1000.0);
        if self.inner.executions.receiver_count() > 0 || self.inner.cluster.get().is_some() {
            let event = Arc::new(record.for_stream(STREAM_TEXT_BYTES));
            self.publish_execution(&event);
            self.stream(event);
        }
        Ok(exec)
    }

    /// Hands an execution to this node's live-stream subscribers, if any.
    pub(crate) fn stream(&self, e: Arc<Execution>) {
        if self.inner.executions.receiver_count() > 0 {
            let _ = self.inner.executions.send(e);
        }
    }
}

/// Who an execution record is: its id, which attempt of its call, and the call (asynchronous
/// calls only). A synchronous call is attempt 1 of no call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    pub(crate) id: Uuid,
    pub(crate) number: u32,
    pub(crate) request_id: Option<Uuid>,
    /// A call of one given version (`?version=N`): it runs that version or fails, never the
    /// version that replaced it.
    pub(crate) pinned: bool,
}

impl Attempt {
    pub(crate) fn fresh() -> Attempt {
        Attempt { id: Uuid::now_v7(), number: 1, request_id: None, pinned: false }
    }
}

/// Whether an `If-Match` header value names `etag` (a list, `*`, or weak forms are accepted).
fn etag_matches(if_match: &str, etag: &str) -> bool {
    if_match.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Appends a line to an execution's logs saying its sandbox was discarded for leftover work.
fn note_leftover(logs: &mut String, leftover: &[String]) {
    const MAX_CHARS: usize = 512;
    let mut what = leftover.join(", ");
    if let Some((cut, _)) = what.char_indices().nth(MAX_CHARS) {
        what.truncate(cut);
        what.push('…');
    }
    if !logs.is_empty() && !logs.ends_with('\n') {
        logs.push('\n');
    }
    logs.push_str(&format!("[fnbox: still running after the call, so its sandbox was discarded: {what}]"));
}

#[cfg(test)]
mod tests {
    use super::note_leftover;

    #[test]
    fn leftover_note_goes_on_its_own_line_and_is_bounded() {
        let mut logs = String::from("hello");
        note_leftover(&mut logs, &["process 7 (sleep)".into(), "1 active Timeout".into()]);
        assert_eq!(
            logs,
            "hello\n[fnbox: still running after the call, so its sandbox was discarded: process 7 (sleep), 1 active Timeout]"
        );
        let mut logs = String::new();
        note_leftover(&mut logs, &["é".repeat(2000)]);
        assert!(logs.starts_with("[fnbox: still running"));
        assert!(logs.chars().count() < 700, "{}", logs.len());
    }
}
