//! Asynchronous calls: accepted into the store's durable queue before the caller hears 202,
//! then run by a dispatcher that leases due items and runs each on the normal invoke path.
//! An item leaves the queue only after its attempt's record is committed, so a `kill -9`
//! loses nothing accepted: at the next start the leases are dropped and every item is taken
//! again; an attempt that was running then is recorded `Interrupted` by the in-flight
//! recovery (a failed attempt, retried), one that had not started yet runs with its id.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fnbox_core::execution::truncate_text;
use fnbox_core::queue::backoff;
use fnbox_core::validation::validate_name;
use fnbox_core::{
    DeadLetter, Enqueued, ErrorInfo, Execution, ExecutionStatus, Function, QueueItem, RawJson, Trigger,
};
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::engine::Attempt;
use crate::{Engine, EngineError};

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Attempts that run at once on this node (each still waits for its function's sandboxes).
    pub workers: usize,
    /// Most calls the queue holds (waiting, backing off or running); past it a call is refused.
    pub max_depth: u64,
    /// The wait before the first retry; each further one doubles it, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// How often an idle dispatcher looks for due items it was not woken for (retries whose
    /// backoff ended, calls another node accepted).
    pub poll: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 16,
            max_depth: 10_000,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            poll: Duration::from_millis(250),
        }
    }
}

/// A lease outlives the longest call (the timeout's maximum, 300 s) with room to record it; a
/// node that died holding one frees it at its next start, or anyone after this.
const LEASE: Duration = Duration::from_secs(360);

/// The wait before trying again an attempt that could not start (no sandbox, store down, a
/// build pending): it did not run, so it is not counted as an attempt.
const NOT_STARTED_WAIT: Duration = Duration::from_millis(500);

/// What the caller of an asynchronous invocation gets back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub execution_id: Uuid,
    pub request_id: Uuid,
}

/// The queue's figures for `/metrics` and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Calls in the queue: waiting, backing off between attempts or running.
    pub depth: u64,
    pub dead_letters: u64,
    pub max_depth: u64,
}

/// What an attempt came to, for the queue.
enum Outcome {
    /// A final record: success or a failure that counts as an attempt.
    Ran(Box<Execution>),
    /// It could not start; try the same attempt again later.
    NotStarted(String),
    /// It can never run (its function is gone): recorded as failed and given up at once.
    Refused(ErrorInfo),
}

impl Engine {
    /// Accepts an asynchronous call of `name`: once this returns, the call and its first
    /// attempt's `queued` record are committed, and it will run.
    pub async fn invoke_async(&self, name: &str, event: Box<RawValue>) -> Result<Accepted, EngineError> {
        self.store().available()?;
        validate_name(name).map_err(|_| EngineError::FunctionNotFound(name.to_owned()))?;
        let f = self.resolve_function(name).await?;
        let limit = self.limits().max_input_bytes;
        if event.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: event.get().len(), limit });
        }
        let now = Utc::now();
        let item = QueueItem {
            id: Uuid::now_v7(),
            function: f.name.clone(),
            input: event.get().to_owned(),
            trigger: Trigger::Async,
            attempt: 1,
            first_attempt: 1,
            execution_id: Uuid::now_v7(),
            enqueued_at: now,
            due_at: now,
            last_error: None,
        };
        let queued = self.queued_record(&f, &item);
        let max = self.inner.config.queue.max_depth;
        match self.store().enqueue(&item, &queued, max).await? {
            Enqueued::Accepted => {}
            Enqueued::Full | Enqueued::NotFound => return Err(EngineError::AsyncQueueFull(max)),
        }
        metrics::counter!("fnbox_async_accepted_total", "function" => f.name.clone()).increment(1);
        self.inner.queue_wake.notify_one();
        Ok(Accepted { execution_id: item.execution_id, request_id: item.id })
    }

    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, EngineError> {
        Ok(self.store().list_dead_letters(limit).await?)
    }

    pub async fn dead_letter(&self, id: Uuid) -> Result<DeadLetter, EngineError> {
        self.store().get_dead_letter(id).await?.ok_or_else(|| EngineError::DeadLetterNotFound(id.to_string()))
    }

    pub async fn discard_dead_letter(&self, id: Uuid) -> Result<(), EngineError> {
        if self.store().delete_dead_letter(id).await? {
            Ok(())
        } else {
            Err(EngineError::DeadLetterNotFound(id.to_string()))
        }
    }

    /// Queues a dead letter again: a new round of attempts (the function's `max_retries` + 1),
    /// numbered on from the last, under the same request id.
    pub async fn retry_dead_letter(&self, id: Uuid) -> Result<Accepted, EngineError> {
        self.store().available()?;
        let letter = self.dead_letter(id).await?;
        let f = self.resolve_function(&letter.function).await?;
        let now = Utc::now();
        let next = letter.attempts.saturating_add(1);
        let item = QueueItem {
            id: letter.id,
            function: letter.function.clone(),
            input: letter.input.clone(),
            trigger: letter.trigger,
            attempt: next,
            first_attempt: next,
            execution_id: Uuid::now_v7(),
            enqueued_at: now,
            due_at: now,
            last_error: letter.last_error.clone(),
        };
        let queued = self.queued_record(&f, &item);
        let max = self.inner.config.queue.max_depth;
        match self.store().retry_dead_letter(&item, &queued, max).await? {
            Enqueued::Accepted => {}
            Enqueued::Full => return Err(EngineError::AsyncQueueFull(max)),
            Enqueued::NotFound => return Err(EngineError::DeadLetterNotFound(id.to_string())),
        }
        self.inner.queue_wake.notify_one();
        Ok(Accepted { execution_id: item.execution_id, request_id: item.id })
    }

    pub async fn queue_stats(&self) -> Result<QueueStats, EngineError> {
        Ok(QueueStats {
            depth: self.store().queue_depth().await?,
            dead_letters: self.store().count_dead_letters().await?,
            max_depth: self.inner.config.queue.max_depth,
        })
    }

    /// Starts the dispatcher and the schedules' ticker (once the node knows whether it is in a
    /// cluster). Leases held by
    /// this node's previous run are dropped first: that process is gone.
    pub async fn start_queue(&self) -> Result<(), EngineError> {
        let owner = self.queue_owner();
        let released = self.store().release_leases(Some(&owner)).await?;
        if released > 0 {
            tracing::warn!(released, "asynchronous calls left running by the previous run are taken again");
        }
        let this = self.clone();
        tokio::spawn(async move { this.dispatch(owner).await });
        self.start_scheduler();
        Ok(())
    }

    /// Who holds a lease: the node id in a cluster (stable across its restarts), else this
    /// single node.
    fn queue_owner(&self) -> String {
        self.node_id().unwrap_or("local").to_owned()
    }

    async fn dispatch(self, owner: String) {
        let config = self.inner.config.queue.clone();
        let workers = Arc::new(Semaphore::new(config.workers.max(1)));
        let mut last_gauges = std::time::Instant::now() - Duration::from_secs(10);
        loop {
            if last_gauges.elapsed() >= Duration::from_secs(1) {
                self.update_queue_gauges().await;
                self.release_dead_leases().await;
                last_gauges = std::time::Instant::now();
            }
            // Wait for a free worker, then claim as many items as there are free workers.
            let Ok(first) = workers.clone().acquire_owned().await else { return };
            let free = u32::try_from(workers.available_permits() + 1).unwrap_or(u32::MAX);
            let now = Utc::now();
            let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_else(|_| chrono::Duration::minutes(6));
            let items = match self.store().claim_queued(&owner, now, lease_until, free).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim asynchronous calls");
                    drop(first);
                    tokio::time::sleep(config.poll).await;
                    continue;
                }
            };
            if items.is_empty() {
                drop(first);
                let _ = tokio::time::timeout(config.poll, self.inner.queue_wake.notified()).await;
                continue;
            }
            let mut permit = Some(first);
            for item in items {
                let permit = match permit.take() {
                    Some(p) => p,
                    None => match workers.clone().try_acquire_owned() {
                        Ok(p) => p,
                        // Cannot happen (only this loop takes permits), but never run unbounded.
                        Err(_) => match workers.clone().acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => return,
                        },
                    },
                };
                let this = self.clone();
                tokio::spawn(async move {
                    this.process(item).await;
                    drop(permit);
                });
            }
        }
    }

    /// In a cluster: the calls leased by nodes no longer live (killed, not restarted) are
    /// freed for the others at once instead of after the lease. Only once this node has been
    /// in the cluster a liveness window (before, a live node may not have been heard yet).
    async fn release_dead_leases(&self) {
        let Some(m) = self.inner.cluster.get() else { return };
        if (Utc::now() - m.started_at).to_std().map_or(true, |t| t < fnbox_cluster::LIVE_WINDOW) {
            return;
        }
        let live: Vec<String> =
            m.cluster.view().live().iter().map(|n| n.info.id.clone()).chain([m.cluster.node_id().to_owned()]).collect();
        match self.store().release_leases_except(&live).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(released = n, "asynchronous calls leased by nodes that are gone are taken again"),
            Err(e) => tracing::debug!(error = %e, "cannot release the leases of dead nodes"),
        }
    }

    async fn update_queue_gauges(&self) {
        if let Ok(s) = self.queue_stats().await {
            metrics::gauge!("fnbox_async_queue_depth").set(s.depth as f64);
            metrics::gauge!("fnbox_async_dead_letters").set(s.dead_letters as f64);
        }
    }

    /// One claimed item: run (or account for) its attempt, then complete, retry or give it up.
    async fn process(&self, item: QueueItem) {
        let outcome = self.attempt(&item).await;
        let result = match outcome {
            Outcome::NotStarted(why) => {
                tracing::info!(request = %item.id, function = %item.function, reason = %why, "asynchronous attempt could not start; later");
                let due = Utc::now() + chrono::Duration::from_std(NOT_STARTED_WAIT).unwrap_or_default();
                self.store().requeue(&QueueItem { due_at: due, ..item.clone() }, None).await
            }
            Outcome::Ran(e) if e.status == ExecutionStatus::Success => self.store().complete_queued(item.id).await,
            Outcome::Ran(e) => self.after_failure(&item, e.error.clone(), false).await,
            Outcome::Refused(error) => self.after_failure(&item, Some(error), true).await,
        };
        if let Err(e) = result {
            // The lease expires (or the next start drops it) and the item is taken again.
            tracing::warn!(request = %item.id, error = %e, "cannot update the queue after an attempt");
        }
    }

    /// Runs the item's attempt, unless its record shows it already ran (the process died before
    /// the queue heard of it, or the in-flight recovery recorded it as interrupted).
    async fn attempt(&self, item: &QueueItem) -> Outcome {
        match self.store().get_execution(item.execution_id).await {
            Ok(Some(e)) if e.status.is_final() => return Outcome::Ran(Box::new(e)),
            Ok(_) => {}
            Err(e) => return Outcome::NotStarted(e.to_string()),
        }
        let f = match self.resolve_function(&item.function).await {
            Ok(f) => f,
            Err(EngineError::FunctionNotFound(name)) => {
                let error = ErrorInfo::new("FunctionNotFound", format!("function `{name}` was deleted before this call ran"));
                return self.refuse(item, error).await;
            }
            Err(e) => return Outcome::NotStarted(e.to_string()),
        };
        let runnable = match self.runnable_now(f).await {
            Ok(f) => f,
            // Its dependencies failed to build and no earlier version serves: no attempt can
            // run until someone changes the function, so the call is given up at once.
            Err(EngineError::BuildFailed { message, .. }) => {
                let error = ErrorInfo::new("BuildFailed", format!("the function's dependencies failed to build: {message}"));
                return self.refuse(item, error).await;
            }
            Err(e) => return Outcome::NotStarted(e.to_string()),
        };
        let Ok(event) = RawValue::from_string(item.input.clone()) else {
            let error = ErrorInfo::new("InvalidInput", "the queued event is not JSON");
            return self.refuse(item, error).await;
        };
        let attempt = Attempt { id: item.execution_id, number: item.attempt, request_id: Some(item.id), pinned: false };
        // Run here, not forwarded: in a cluster every node claims from the shared queue, and
        // the record must keep the id the caller was given.
        match self.invoke_attempt(runnable, event, item.trigger, attempt).await {
            Ok(e) => Outcome::Ran(Box::new(e)),
            Err(EngineError::FunctionNotFound(name)) => {
                let error = ErrorInfo::new("FunctionNotFound", format!("function `{name}` was deleted before this call ran"));
                self.refuse(item, error).await
            }
            Err(e) => Outcome::NotStarted(e.to_string()),
        }
    }

    /// Records an attempt that could not run at all as failed, and gives the call up.
    async fn refuse(&self, item: &QueueItem, error: ErrorInfo) -> Outcome {
        match self.record_refused(item, &error).await {
            Ok(()) => Outcome::Refused(error),
            Err(e) => Outcome::NotStarted(e.to_string()),
        }
    }

    /// The final record of an attempt that could not run at all.
    async fn record_refused(&self, item: &QueueItem, error: &ErrorInfo) -> Result<(), EngineError> {
        let mut e = match self.store().get_execution(item.execution_id).await? {
            Some(e) => e,
            // Its function is gone: the record names what the queue knew.
            None => self.placeholder(item, item.function.clone(), 0, fnbox_core::Runtime::Docker, fnbox_core::Language::Python),
        };
        e.status = ExecutionStatus::Error;
        e.error = Some(error.clone());
        e.started_at = Utc::now();
        self.store().record_execution(e).await?;
        Ok(())
    }

    /// After a failed attempt: the next one after its backoff, or the dead letters.
    async fn after_failure(&self, item: &QueueItem, error: Option<ErrorInfo>, refused: bool) -> Result<(), fnbox_core::StoreError> {
        let f = self.get_function(&item.function).ok();
        let budget = f.as_ref().map_or(0, |f| f.max_retries);
        let last = item.first_attempt.saturating_add(budget);
        if refused || item.attempt >= last {
            metrics::counter!("fnbox_async_dead_lettered_total", "function" => item.function.clone()).increment(1);
            tracing::info!(request = %item.id, function = %item.function, attempts = item.attempt, "asynchronous call dead-lettered");
            return self
                .store()
                .dead_letter(&DeadLetter {
                    id: item.id,
                    function: item.function.clone(),
                    input: item.input.clone(),
                    trigger: item.trigger,
                    attempts: item.attempt,
                    last_error: error,
                    last_execution_id: Some(item.execution_id),
                    enqueued_at: item.enqueued_at,
                    failed_at: Utc::now(),
                })
                .await;
        }
        let config = &self.inner.config.queue;
        let next_attempt = item.attempt + 1;
        let wait = backoff(config.retry_base, config.retry_cap, next_attempt - item.first_attempt + 1);
        let next = QueueItem {
            attempt: next_attempt,
            execution_id: Uuid::now_v7(),
            due_at: Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
            last_error: error,
            ..item.clone()
        };
        let queued = f.map(|f| self.queued_record(&f, &next));
        metrics::counter!("fnbox_async_retries_total", "function" => item.function.clone()).increment(1);
        self.store().requeue(&next, queued.as_ref()).await?;
        Ok(())
    }

    /// The `queued` placeholder of an attempt, replaced by its final record once it ran.
    pub(crate) fn queued_record(&self, f: &Function, item: &QueueItem) -> Execution {
        self.placeholder(item, f.name.clone(), f.version, f.runtime, f.language)
    }

    fn placeholder(&self, item: &QueueItem, function: String, version: u32, runtime: fnbox_core::Runtime, language: fnbox_core::Language) -> Execution {
        Execution {
            id: item.execution_id,
            function,
            version,
            runtime,
            language,
            input: truncate_text(&item.input, self.limits().max_recorded_bytes).0,
            output: None::<RawJson>,
            output_truncated: false,
            status: ExecutionStatus::Queued,
            error: None,
            logs: String::new(),
            started_at: Utc::now(),
            duration_ms: 0.0,
            exec_ms: None,
            memory_bytes: None,
            cold_start: false,
            trigger: item.trigger,
            node: self.node_id().map(str::to_owned),
            attempt: item.attempt,
            request_id: Some(item.id),
        }
    }
}
