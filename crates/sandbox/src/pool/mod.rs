//! Warm pools.
//!
//! Three kinds of idle sandboxes are kept:
//! * **generic** ones per [`SandboxKey`] (language, runtime, memory): started, bootstrap
//!   waiting for code. A cold start takes one and only loads code into it, so it costs a
//!   code load instead of a container start. They are refilled in the background.
//! * **specialised** ones per function version: code loaded, ready for the next call (a
//!   warm start). Reaped after the keep-alive; never handed to another function or version.
//! * **checked** ones per function version: the sandbox that compiled a new version's code
//!   at create/update time. It has held that code, so it may only ever serve that version: it
//!   is kept for its first cold start (which then only loads code) and destroyed otherwise.
//!
//! The rule behind all three: a sandbox that has held anything of one function (its code, a
//! check of it, its input) is never handed to another function.
//!
//! The code is split by job; every part is an `impl Pools` block over the shared [`Inner`]:
//! * this file — configuration, errors, the shared state, launching and discarding sandboxes;
//! * [`function`] — per-version pools, leases, acquire/release, retire, concurrency;
//! * [`checked`] — sandboxes kept from a version's code check;
//! * [`generic`] — pre-started sandboxes and their sizing by demand;
//! * [`budget`] — the count/memory budget and eviction of idle sandboxes;
//! * [`maintain`] — keep-alive, idle-CPU checks and refills, run periodically;
//! * [`stats`] — what the pools hold, for `/metrics`, the UI and the cluster router.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_core::{ErrorInfo, Function};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::backend::{SandboxBackend, SandboxError, SandboxKey, SandboxSpec};
use crate::sandbox::Sandbox;

mod budget;
mod checked;
mod function;
mod generic;
mod maintain;
mod stats;
#[cfg(test)]
mod tests;

use budget::Usage;
use function::FunctionPool;
pub use function::Lease;
pub use stats::{FunctionPoolStats, PoolStats, Room, WarmVersion};

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Idle specialised sandboxes older than this are removed.
    pub keep_alive: Duration,
    /// Generic sandboxes kept ready per key that has seen demand (or was pre-warmed at start).
    pub prewarm_per_key: usize,
    /// Invocations that may wait for a busy function before new ones get `QueueFull`.
    pub max_queue_per_function: usize,
    pub ready_timeout: Duration,
    pub check_timeout: Duration,
    pub max_output_bytes: usize,
    pub max_log_bytes: usize,
    /// Most sandboxes (generic, idle and busy) alive at once, over all functions.
    pub max_sandboxes: usize,
    /// Most memory (sum of the sandboxes' limits, MB) committed at once.
    pub memory_budget_mb: u64,
    /// Most generic sandboxes kept per key when demand is high.
    pub max_prewarm_per_key: usize,
    /// Idle sandboxes are reaped while the host's available memory is below this share.
    pub min_available_memory: f64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            keep_alive: Duration::from_secs(600),
            prewarm_per_key: 1,
            max_queue_per_function: 256,
            ready_timeout: Duration::from_secs(30),
            check_timeout: Duration::from_secs(5),
            max_output_bytes: 6 * 1024 * 1024,
            max_log_bytes: 256 * 1024,
            max_sandboxes: 64,
            memory_budget_mb: 8192,
            max_prewarm_per_key: 4,
            min_available_memory: 0.10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Too many invocations of this function are already waiting.
    #[error("too many queued invocations of `{0}`; retry later")]
    QueueFull(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The function's own code failed to load (syntax error, exception at import, no handler,
    /// or longer than its timeout: `timed_out`, as the host measured it).
    #[error("the function failed to load: {}", .error.message)]
    LoadFailed { error: ErrorInfo, logs: String, timed_out: bool },
    /// This version of the function was replaced or deleted while the call waited: the caller
    /// looks the function up again (and gets the new version, or "not found").
    #[error("the function `{0}` changed or was deleted while the call waited")]
    Retired(String),
}

struct Inner {
    backend: Arc<dyn SandboxBackend>,
    config: PoolConfig,
    functions: Mutex<HashMap<(Uuid, u32), Arc<FunctionPool>>>,
    /// Per function id: versions below this number were replaced (or, at `u32::MAX`, the
    /// function was deleted); no pool is made for them again and no sandbox started. Marks are
    /// forgotten after [`RETIRED_MEMORY`] (see there).
    retired_below: Mutex<HashMap<Uuid, (u32, Instant)>>,
    /// The sandbox that checked a version's code, kept for that version's first cold start.
    checked: Mutex<HashMap<(Uuid, u32), Sandbox>>,
    generic: Mutex<HashMap<SandboxKey, Vec<Sandbox>>>,
    targets: Mutex<HashMap<SandboxKey, usize>>,
    refilling: Mutex<HashMap<SandboxKey, usize>>,
    sandboxes_started: AtomicU64,
    cold_starts: AtomicU64,
    prewarmed_cold_starts: AtomicU64,
    /// Pre-started sandboxes given another memory size for the function that took them.
    resized: AtomicU64,
    usage: Mutex<Usage>,
    evictions: AtomicU64,
    /// Set by [`Pools::shutdown`]: no sandbox may be started any more.
    closing: AtomicBool,
    /// Sandboxes being started right now; shutdown waits for them so none is left behind.
    launching: AtomicUsize,
    /// Cold starts per key in the last [`DEMAND_WINDOW`], to size the generic pools.
    recent_cold: Mutex<HashMap<SandboxKey, std::collections::VecDeque<Instant>>>,
    /// Keys pre-warmed from configuration (kept at `prewarm_per_key` even without demand).
    configured: Mutex<std::collections::HashSet<SandboxKey>>,
}

#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
}

fn stop_in_background(backend: Arc<dyn SandboxBackend>, sandbox: Sandbox) {
    tokio::spawn(async move {
        if let Err(e) = backend.stop(&sandbox.id).await {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "could not remove sandbox");
        }
    });
}

fn key_label(k: &SandboxKey) -> String {
    format!("{}/{}/{}mb", k.language, k.runtime, k.memory_mb)
}

impl Pools {
    pub fn new(backend: Arc<dyn SandboxBackend>, config: PoolConfig) -> Pools {
        Pools {
            inner: Arc::new(Inner {
                backend,
                config,
                functions: Mutex::new(HashMap::new()),
                retired_below: Mutex::new(HashMap::new()),
                checked: Mutex::new(HashMap::new()),
                generic: Mutex::new(HashMap::new()),
                targets: Mutex::new(HashMap::new()),
                refilling: Mutex::new(HashMap::new()),
                sandboxes_started: AtomicU64::new(0),
                cold_starts: AtomicU64::new(0),
                prewarmed_cold_starts: AtomicU64::new(0),
                resized: AtomicU64::new(0),
                usage: Mutex::new(Usage::default()),
                evictions: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                launching: AtomicUsize::new(0),
                recent_cold: Mutex::new(HashMap::new()),
                configured: Mutex::new(std::collections::HashSet::new()),
            }),
        }
    }

    pub fn backend(&self) -> &Arc<dyn SandboxBackend> {
        &self.inner.backend
    }

    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Stops a sandbox (in the background) and gives its share of the budget back.
    fn discard(&self, sandbox: Sandbox) {
        self.unreserve(sandbox.key);
        stop_in_background(self.inner.backend.clone(), sandbox);
    }

    async fn launch(&self, key: SandboxKey, f: Option<&Function>) -> Result<Sandbox, SandboxError> {
        self.inner.backend.health().await.available(key.runtime)?;
        // Sandboxes for a call may evict idle ones; pre-started ones only use what is free.
        self.reserve(key, f.is_some())?;
        self.inner.launching.fetch_add(1, Ordering::AcqRel);
        let launched = if self.inner.closing.load(Ordering::Acquire) {
            Err(SandboxError::Unavailable("fnbox is shutting down".into()))
        } else {
            self.launch_reserved(key, f).await
        };
        // Shutdown began while this one started: it must not outlive the server.
        let launched = match launched {
            Ok(sb) if self.inner.closing.load(Ordering::Acquire) => {
                let _ = self.inner.backend.stop(&sb.id).await;
                Err(SandboxError::Unavailable("fnbox is shutting down".into()))
            }
            other => other,
        };
        self.inner.launching.fetch_sub(1, Ordering::AcqRel);
        if launched.is_err() {
            self.unreserve(key);
        }
        launched
    }

    async fn launch_reserved(&self, key: SandboxKey, f: Option<&Function>) -> Result<Sandbox, SandboxError> {
        let mut labels = BTreeMap::new();
        if let Some(f) = f {
            labels.insert("fnbox.function".to_string(), f.name.clone());
        }
        let spec = SandboxSpec { key, labels };
        let sb = Sandbox::launch(self.inner.backend.as_ref(), &spec, self.inner.config.ready_timeout).await?;
        self.inner.sandboxes_started.fetch_add(1, Ordering::Relaxed);
        Ok(sb)
    }

    /// Removes every idle sandbox and everything this instance left in the backend.
    pub async fn shutdown(&self) -> Result<usize, SandboxError> {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.targets.lock().clear();
        // Sandboxes being started finish and remove themselves (bounded by the ready timeout).
        let deadline = Instant::now() + self.inner.config.ready_timeout;
        while self.inner.launching.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.functions.lock().clear();
        self.inner.checked.lock().clear();
        self.inner.generic.lock().clear();
        self.inner.backend.remove_all().await
    }
}


/// Removes and returns the entries of `map` that `pred` picks (a stable `HashMap::extract_if`
/// is newer than this workspace's minimum Rust).
fn remove_where<K: Copy + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, pred: impl Fn(&K, &V) -> bool) -> Vec<V> {
    let keys: Vec<K> = map.iter().filter(|(k, v)| pred(k, v)).map(|(k, _)| *k).collect();
    keys.into_iter().filter_map(|k| map.remove(&k)).collect()
}
