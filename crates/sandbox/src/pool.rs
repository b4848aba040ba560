//! Warm pools.
//!
//! Two kinds of idle sandboxes are kept:
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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_core::{ErrorInfo, Function};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::backend::{SandboxBackend, SandboxError, SandboxKey, SandboxSpec};
use crate::sandbox::{LoadFailure, Sandbox};

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

/// A sandbox checked out for one invocation. Give it back with [`Pools::release`].
pub struct Lease {
    sandbox: Option<Sandbox>,
    pub cold: bool,
    /// A cold start that found a pre-started generic sandbox.
    pub prewarmed: bool,
    pub waited: Duration,
    leased_at: Instant,
    pool: Arc<FunctionPool>,
    pools: Pools,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    pub fn sandbox(&mut self) -> Option<&mut Sandbox> {
        self.sandbox.as_mut()
    }
}

impl Drop for Lease {
    /// A lease dropped without release (a panic or a cancelled task) must not leak a sandbox
    /// that may be mid-invocation: it is destroyed.
    fn drop(&mut self) {
        if let Some(sb) = self.sandbox.take() {
            self.pool.live.fetch_sub(1, Ordering::Relaxed);
            self.pools.discard(sb);
        }
        if let Some(permit) = self.permit.take() {
            self.pool.give_back(permit);
        }
    }
}

struct FunctionPool {
    name: String,
    version: u32,
    /// The function's concurrency now; changed in place by [`Pools::set_concurrency`].
    concurrency: AtomicUsize,
    permits: Arc<Semaphore>,
    /// Permits to take out of circulation as running calls finish, after the concurrency was
    /// lowered below the number of calls running.
    permit_debt: AtomicUsize,
    waiting: AtomicUsize,
    live: AtomicUsize,
    idle: Mutex<Vec<Sandbox>>,
    retired: AtomicBool,
    /// Woken (one waiter per release) when a sandbox goes back to `idle`.
    released: Notify,
    /// Callers waiting for a busy sandbox to come free instead of starting one.
    idle_waiters: AtomicUsize,
    /// Moving averages of how long a lease is held and how long a cold start takes, from a
    /// pre-started sandbox (a code load) or from nothing (a container start too).
    busy_us: Ewma,
    cold_prewarmed_us: Ewma,
    cold_full_us: Ewma,
}

impl FunctionPool {
    fn new(f: &Function, retired: bool) -> FunctionPool {
        let concurrency = f.concurrency.max(1) as usize;
        FunctionPool {
            name: f.name.clone(),
            version: f.version,
            concurrency: AtomicUsize::new(concurrency),
            permits: Arc::new(Semaphore::new(concurrency)),
            permit_debt: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(retired),
            released: Notify::new(),
            idle_waiters: AtomicUsize::new(0),
            busy_us: Ewma::new(Duration::ZERO),
            cold_prewarmed_us: Ewma::new(INITIAL_PREWARMED_COLD_ESTIMATE),
            cold_full_us: Ewma::new(INITIAL_FULL_COLD_ESTIMATE),
        }
    }

    /// Returns a finished call's permit, or retires it while the concurrency was lowered.
    fn give_back(&self, permit: OwnedSemaphorePermit) {
        let paid = self.permit_debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)).is_ok();
        if paid {
            permit.forget();
        }
    }

    /// Sets how many calls may run at once, for calls that start from now on: raising adds
    /// permits at once; lowering removes free permits at once and the rest as running calls end.
    fn resize(&self, new: usize) {
        let old = self.concurrency.swap(new, Ordering::AcqRel);
        if new > old {
            let mut grow = new - old;
            // Cancel debt first: those permits were never forgotten.
            while grow > 0 {
                match self.permit_debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)) {
                    Ok(_) => grow -= 1,
                    Err(_) => break,
                }
            }
            self.permits.add_permits(grow);
        } else if old > new {
            let shrink = old - new;
            let forgotten = self.permits.forget_permits(shrink);
            self.permit_debt.fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// An exponentially weighted moving average (weight 1/8) kept in an atomic; racy updates
/// only lose a sample, which an estimate can afford.
struct Ewma(AtomicU64);

impl Ewma {
    fn new(initial: Duration) -> Self {
        Ewma(AtomicU64::new(initial.as_micros() as u64))
    }
    fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }
    fn add(&self, sample: Duration) {
        let old = self.0.load(Ordering::Relaxed);
        let s = sample.as_micros().min(u128::from(u64::MAX / 8)) as u64;
        let new = if old == 0 { s } else { old - old / 8 + s / 8 };
        self.0.store(new, Ordering::Relaxed);
    }
}

/// What the pools hold right now, for `/metrics` and the UI.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    pub functions: Vec<FunctionPoolStats>,
    pub generic: BTreeMap<String, usize>,
    /// Sandboxes that checked a new version's code, kept for that version's first call.
    pub checked: usize,
    pub sandboxes_started: u64,
    pub cold_starts: u64,
    pub prewarmed_cold_starts: u64,
    /// Sandboxes alive now (generic, idle and busy) and the memory their limits commit.
    pub sandboxes: usize,
    pub memory_committed_mb: u64,
    pub max_sandboxes: usize,
    pub memory_budget_mb: u64,
    /// Idle sandboxes removed early to make room or under memory pressure.
    pub evictions: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunctionPoolStats {
    pub function: String,
    pub version: u32,
    pub idle: usize,
    pub busy: usize,
    pub queued: usize,
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

/// What the live sandboxes commit, against [`PoolConfig::max_sandboxes`] and the memory budget.
#[derive(Default)]
struct Usage {
    sandboxes: usize,
    memory_mb: u64,
}

/// How long a retired version is remembered. A caller holds an old version only between
/// looking its function up and asking for a sandbox (retiring wakes every waiter at once), so
/// this is ample, and it keeps the marks of deleted functions and comparison copies from
/// piling up.
const RETIRED_MEMORY: Duration = Duration::from_secs(600);

/// How far back cold starts count as demand for pre-started sandboxes.
const DEMAND_WINDOW: Duration = Duration::from_secs(60);
/// Cold starts in the window per extra generic sandbox kept ready.
const COLD_STARTS_PER_PREWARM: usize = 4;

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

/// A new sandbox costs more than its start: memory, and CPU its neighbours lose. A caller
/// waits at least this long for a busy one before starting another (measured here: 16 clients
/// of a quick gVisor function ran at 835 calls/s on 16 sandboxes and 1,380/s on one).
const MIN_WAIT_BEFORE_SCALING: Duration = Duration::from_millis(50);

/// What cold starts are assumed to cost before one has been measured for a function.
const INITIAL_PREWARMED_COLD_ESTIMATE: Duration = Duration::from_millis(20);
const INITIAL_FULL_COLD_ESTIMATE: Duration = Duration::from_millis(300);

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

    fn function_pool(&self, f: &Function) -> Arc<FunctionPool> {
        let retired = self.is_retired_version(f);
        let new_pool = || Arc::new(FunctionPool::new(f, retired));
        if retired {
            // A caller still holding a replaced or deleted version: a pool that serves nothing.
            return new_pool();
        }
        self.inner.functions.lock().entry((f.id, f.version)).or_insert_with(new_pool).clone()
    }

    /// Whether `f` is a version that was replaced or deleted.
    fn is_retired_version(&self, f: &Function) -> bool {
        self.inner.retired_below.lock().get(&f.id).is_some_and(|(below, _)| f.version < *below)
    }

    /// Applies a changed concurrency to the function's pool, for calls that start from now on.
    pub fn set_concurrency(&self, f: &Function) {
        let pool = self.inner.functions.lock().get(&(f.id, f.version)).cloned();
        if let Some(pool) = pool {
            pool.resize(f.concurrency.max(1) as usize);
        }
    }

    /// Checks out a sandbox loaded with `f`: a warm one if idle, else a cold start (from a
    /// pre-started generic sandbox when one is free). Waits while the function is at its
    /// concurrency limit, up to the queue bound.
    pub async fn acquire(&self, f: &Function) -> Result<Lease, PoolError> {
        let pool = self.function_pool(f);
        let retired = || PoolError::Retired(f.name.clone());
        if pool.is_retired() {
            return Err(retired());
        }
        let t0 = Instant::now();
        let permit = match pool.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if pool.waiting.fetch_add(1, Ordering::AcqRel) >= self.inner.config.max_queue_per_function {
                    pool.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PoolError::QueueFull(f.name.clone()));
                }
                let p = pool.permits.clone().acquire_owned().await;
                pool.waiting.fetch_sub(1, Ordering::AcqRel);
                // Retiring a pool closes its semaphore: every waiter wakes up here.
                p.map_err(|_| retired())?
            }
        };
        if pool.is_retired() {
            pool.give_back(permit);
            return Err(retired());
        }
        let permit = Some(permit);
        let lease = |sandbox, cold, prewarmed| Lease {
            sandbox: Some(sandbox),
            cold,
            prewarmed,
            waited: t0.elapsed(),
            leased_at: Instant::now(),
            pool: pool.clone(),
            pools: self.clone(),
            permit,
        };
        // Wait for a busy sandbox rather than start one when that is expected to be quicker:
        // calls much shorter than a cold start are served faster by the sandboxes there are,
        // and a 2-core host is not swamped by sandboxes that would mostly sit idle.
        let mut wait_until: Option<Instant> = None;
        loop {
            let released = pool.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(sb) = self.take_idle(&pool) {
                return Ok(lease(sb, false, false));
            }
            let live = pool.live.load(Ordering::Relaxed);
            let deadline = *wait_until.get_or_insert_with(|| Instant::now() + self.cold_estimate(&pool, f).max(MIN_WAIT_BEFORE_SCALING));
            let ahead = pool.idle_waiters.load(Ordering::Relaxed) as u32 + 1;
            let busy = pool.busy_us.get();
            // A burst finds calls just begun: count a whole call per round of sandboxes.
            let expected_wait = busy * ahead.div_ceil(live.max(1) as u32);
            // No sandbox to wait for, or no idea yet how long calls take: start one.
            if live == 0 || busy.is_zero() || Instant::now() + expected_wait >= deadline {
                break;
            }
            pool.idle_waiters.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout_at(deadline.into(), released).await;
            pool.idle_waiters.fetch_sub(1, Ordering::Relaxed);
            if pool.is_retired() {
                return Err(retired());
            }
        }
        let t_cold = Instant::now();
        let (sandbox, prewarmed) = self.cold_start(f, &pool).await?;
        if prewarmed { &pool.cold_prewarmed_us } else { &pool.cold_full_us }.add(t_cold.elapsed());
        pool.live.fetch_add(1, Ordering::Relaxed);
        Ok(lease(sandbox, true, prewarmed))
    }

    /// What a cold start of `f` would cost now: a code load when a pre-started sandbox is
    /// ready for it, a container start as well when not.
    fn cold_estimate(&self, pool: &FunctionPool, f: &Function) -> Duration {
        let key = SandboxKey { language: f.language, runtime: f.runtime, memory_mb: f.memory_mb };
        let ready = self.inner.generic.lock().get(&key).is_some_and(|l| !l.is_empty());
        if ready { pool.cold_prewarmed_us.get() } else { pool.cold_full_us.get() }
    }

    /// Pops a live idle sandbox of the pool, destroying on the way dead ones and ones that
    /// burnt CPU while idle (work the function left running).
    fn take_idle(&self, pool: &FunctionPool) -> Option<Sandbox> {
        loop {
            let candidate = pool.idle.lock().pop();
            match candidate {
                Some(sb) if sb.is_alive() => match sb.busy_while_idle() {
                    None => return Some(sb),
                    Some(why) => {
                        tracing::info!(function = %pool.name, sandbox = %sb.id, %why, "sandbox discarded: busy while idle");
                        pool.live.fetch_sub(1, Ordering::Relaxed);
                        self.discard(sb);
                    }
                },
                Some(dead) => {
                    pool.live.fetch_sub(1, Ordering::Relaxed);
                    self.discard(dead);
                }
                None => return None,
            }
        }
    }

    async fn cold_start(&self, f: &Function, pool: &FunctionPool) -> Result<(Sandbox, bool), PoolError> {
        let key = SandboxKey { language: f.language, runtime: f.runtime, memory_mb: f.memory_mb };
        self.inner.cold_starts.fetch_add(1, Ordering::Relaxed);
        self.note_demand(key);
        let checked = self.take_checked(f);
        let (mut sandbox, prewarmed) = match checked.or_else(|| self.take_generic(key)) {
            Some(sb) => (sb, true),
            None => (self.launch(key, Some(f)).await?, false),
        };
        if prewarmed {
            self.inner.prewarmed_cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        self.refill(key);
        // Replaced or deleted while the sandbox started: it never receives the old code.
        if pool.is_retired() {
            self.discard(sandbox);
            return Err(PoolError::Retired(f.name.clone()));
        }
        let cfg = &self.inner.config;
        let timeout = Duration::from_millis(u64::from(f.timeout_ms));
        match sandbox.load(&f.code, &f.env, cfg.max_output_bytes, cfg.max_log_bytes, timeout).await {
            Ok(Ok(())) => Ok((sandbox, prewarmed)),
            Ok(Err(LoadFailure { error, logs, timed_out })) => {
                self.discard(sandbox);
                Err(PoolError::LoadFailed { error, logs, timed_out })
            }
            Err(e) => {
                self.discard(sandbox);
                Err(e.into())
            }
        }
    }

    /// The sandbox that checked this version's code, if it is still alive.
    fn take_checked(&self, f: &Function) -> Option<Sandbox> {
        let sb = self.inner.checked.lock().remove(&(f.id, f.version))?;
        if sb.is_alive() {
            Some(sb)
        } else {
            self.discard(sb);
            None
        }
    }

    /// Stops a sandbox (in the background) and gives its share of the budget back.
    fn discard(&self, sandbox: Sandbox) {
        self.unreserve(sandbox.key);
        stop_in_background(self.inner.backend.clone(), sandbox);
    }

    /// Takes a sandbox's share of the budget, evicting idle sandboxes (least recently used
    /// first) when `evict` allows and the budget is spent.
    fn reserve(&self, key: SandboxKey, evict: bool) -> Result<(), SandboxError> {
        let cfg = &self.inner.config;
        loop {
            {
                let mut u = self.inner.usage.lock();
                if u.sandboxes < cfg.max_sandboxes && u.memory_mb + u64::from(key.memory_mb) <= cfg.memory_budget_mb {
                    u.sandboxes += 1;
                    u.memory_mb += u64::from(key.memory_mb);
                    return Ok(());
                }
            }
            if !evict || !self.evict_idle(1) {
                let u = self.inner.usage.lock();
                return Err(SandboxError::Capacity(format!(
                    "{} sandboxes and {} MB committed of at most {} and {} MB, none idle",
                    u.sandboxes, u.memory_mb, cfg.max_sandboxes, cfg.memory_budget_mb
                )));
            }
        }
    }

    fn unreserve(&self, key: SandboxKey) {
        let mut u = self.inner.usage.lock();
        u.sandboxes = u.sandboxes.saturating_sub(1);
        u.memory_mb = u.memory_mb.saturating_sub(u64::from(key.memory_mb));
    }

    /// Removes up to `n` idle sandboxes, generic or warm, least recently used first.
    /// Returns whether any was removed.
    fn evict_idle(&self, n: usize) -> bool {
        let mut removed = 0;
        while removed < n {
            // Checked sandboxes first: each is a bet on one function's first call.
            let checked = {
                let mut checked = self.inner.checked.lock();
                let oldest = checked.iter().min_by_key(|(_, sb)| sb.last_used).map(|(k, _)| *k);
                oldest.and_then(|k| checked.remove(&k))
            };
            if let Some(sb) = checked {
                tracing::info!(sandbox = %sb.id, key = %key_label(&sb.key), "evicting a checked sandbox");
                self.inner.evictions.fetch_add(1, Ordering::Relaxed);
                self.discard(sb);
                removed += 1;
                continue;
            }
            // The oldest idle sandbox of all: (last used, where).
            let mut oldest: Option<(Instant, Option<(Uuid, u32)>, SandboxKey)> = None;
            for (k, list) in self.inner.generic.lock().iter() {
                if let Some(sb) = list.first() {
                    if oldest.as_ref().is_none_or(|(t, _, _)| sb.last_used < *t) {
                        oldest = Some((sb.last_used, None, *k));
                    }
                }
            }
            for (id, pool) in self.inner.functions.lock().iter() {
                if let Some(sb) = pool.idle.lock().first() {
                    if oldest.as_ref().is_none_or(|(t, _, _)| sb.last_used < *t) {
                        oldest = Some((sb.last_used, Some(*id), sb.key));
                    }
                }
            }
            let victim = match oldest {
                None => None,
                Some((_, None, key)) => self.inner.generic.lock().get_mut(&key).and_then(|l| (!l.is_empty()).then(|| l.remove(0))),
                Some((_, Some(id), _)) => {
                    let pool = self.inner.functions.lock().get(&id).cloned();
                    pool.and_then(|p| {
                        let mut idle = p.idle.lock();
                        (!idle.is_empty()).then(|| {
                            p.live.fetch_sub(1, Ordering::Relaxed);
                            idle.remove(0)
                        })
                    })
                }
            };
            let Some(sb) = victim else { break };
            tracing::info!(sandbox = %sb.id, key = %key_label(&sb.key), "evicting an idle sandbox");
            self.inner.evictions.fetch_add(1, Ordering::Relaxed);
            self.discard(sb);
            removed += 1;
        }
        removed > 0
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

    fn take_generic(&self, key: SandboxKey) -> Option<Sandbox> {
        let mut generic = self.inner.generic.lock();
        let list = generic.get_mut(&key)?;
        while let Some(sb) = list.pop() {
            if sb.is_alive() {
                return Some(sb);
            }
            self.discard(sb);
        }
        None
    }

    fn note_demand(&self, key: SandboxKey) {
        let now = Instant::now();
        self.inner.recent_cold.lock().entry(key).or_default().push_back(now);
        let target = self.demand_target(key, now);
        self.inner.targets.lock().insert(key, target);
    }

    /// Generic sandboxes to keep for `key`: the configured number, plus one per few recent
    /// cold starts, capped. Keys nobody has used for a while fall back to the configured base
    /// (or to none, for keys that were never configured).
    fn demand_target(&self, key: SandboxKey, now: Instant) -> usize {
        let cfg = &self.inner.config;
        let recent = {
            let mut all = self.inner.recent_cold.lock();
            let q = all.entry(key).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) > DEMAND_WINDOW) {
                q.pop_front();
            }
            q.len()
        };
        let base = if recent > 0 || self.inner.configured.lock().contains(&key) { cfg.prewarm_per_key } else { 0 };
        (base + recent / COLD_STARTS_PER_PREWARM).min(cfg.max_prewarm_per_key.max(cfg.prewarm_per_key))
    }

    /// Starts generic sandboxes for `key` in the background until its target is met.
    fn refill(&self, key: SandboxKey) {
        let target = self.inner.targets.lock().get(&key).copied().unwrap_or(0);
        let have = self.inner.generic.lock().get(&key).map_or(0, Vec::len);
        let missing = {
            let mut refilling = self.inner.refilling.lock();
            let in_flight = refilling.entry(key).or_insert(0);
            let missing = target.saturating_sub(have + *in_flight);
            *in_flight += missing;
            missing
        };
        for _ in 0..missing {
            let pools = self.clone();
            tokio::spawn(async move {
                let result = pools.launch(key, None).await;
                if let Some(n) = pools.inner.refilling.lock().get_mut(&key) {
                    *n = n.saturating_sub(1);
                }
                match result {
                    Ok(sb) => pools.inner.generic.lock().entry(key).or_default().push(sb),
                    Err(e) => tracing::debug!(key = %key_label(&key), error = %e, "could not pre-warm a sandbox"),
                }
            });
        }
    }

    /// Asks for `per_key` generic sandboxes for each key, now and after each use.
    pub fn prewarm(&self, keys: &[SandboxKey], per_key: usize) {
        self.inner.configured.lock().extend(keys.iter().copied());
        for key in keys {
            {
                let mut targets = self.inner.targets.lock();
                let t = targets.entry(*key).or_insert(0);
                *t = (*t).max(per_key);
            }
            self.refill(*key);
        }
    }

    /// Returns a sandbox after an invocation. One that timed out, crashed, or belongs to a
    /// retired version is destroyed instead of reused.
    pub fn release(&self, mut lease: Lease, reusable: bool) {
        let Some(mut sb) = lease.sandbox.take() else { return };
        lease.pool.busy_us.add(lease.leased_at.elapsed());
        if reusable && !lease.pool.is_retired() {
            sb.mark_idle();
            lease.pool.idle.lock().push(sb);
            lease.pool.released.notify_one();
        } else {
            lease.pool.live.fetch_sub(1, Ordering::Relaxed);
            self.discard(sb);
            // A waiter counting on this sandbox should think again.
            lease.pool.released.notify_one();
        }
    }

    /// Retires every version of function `id` below `below` (`u32::MAX`: the function was
    /// deleted): their idle and checked sandboxes are destroyed, busy ones when their call ends,
    /// and calls still waiting for them give up with [`PoolError::Retired`]. No sandbox is
    /// started for a retired version from now on.
    pub fn retire(&self, id: Uuid, below: u32) {
        {
            let mut marks = self.inner.retired_below.lock();
            let mark = marks.entry(id).or_insert((0, Instant::now()));
            *mark = (mark.0.max(below), Instant::now());
        }
        let old = |&(fid, v): &(Uuid, u32)| fid == id && v < below;
        let retired = remove_where(&mut self.inner.functions.lock(), |k, _| old(k));
        for pool in retired {
            pool.retired.store(true, Ordering::Release);
            pool.permits.close();
            for sb in pool.idle.lock().drain(..) {
                pool.live.fetch_sub(1, Ordering::Relaxed);
                self.discard(sb);
            }
            // Waiters for a busy sandbox look again (and see the pool retired).
            pool.released.notify_waiters();
        }
        for sb in remove_where(&mut self.inner.checked.lock(), |k, _| old(k)) {
            self.discard(sb);
        }
    }

    /// Compiles a function version's code without running it, in a sandbox of its own
    /// language, runtime and memory size. That sandbox has held the code from then on, so it
    /// never goes back to the generic pool: when the code compiles it is kept for this
    /// version's first cold start, else destroyed. `Ok(None)` means the code compiles.
    pub async fn check(&self, f: &Function) -> Result<Option<ErrorInfo>, SandboxError> {
        let key = SandboxKey { language: f.language, runtime: f.runtime, memory_mb: f.memory_mb };
        let mut sb = match self.take_generic(key) {
            Some(sb) => sb,
            None => self.launch(key, Some(f)).await?,
        };
        self.refill(key);
        let result = sb.check(&f.code, self.inner.config.check_timeout).await;
        let retired = self.is_retired_version(f);
        if matches!(result, Ok(None)) && !retired {
            sb.last_used = Instant::now();
            if let Some(old) = self.inner.checked.lock().insert((f.id, f.version), sb) {
                self.discard(old);
            }
        } else {
            self.discard(sb);
        }
        result
    }

    /// Destroys the sandbox kept from checking a version that was then not stored.
    pub fn forget_checked(&self, f: &Function) {
        let sb = self.inner.checked.lock().remove(&(f.id, f.version));
        if let Some(sb) = sb {
            self.discard(sb);
        }
    }

    /// Removes idle sandboxes past their keep-alive and tops up generic pools. Run periodically.
    pub fn maintain(&self) {
        let keep_alive = self.inner.config.keep_alive;
        let mut expired = Vec::new();
        {
            let mut map = self.inner.functions.lock();
            map.retain(|_, pool| {
                let mut idle = pool.idle.lock();
                let (old, fresh): (Vec<_>, Vec<_>) = idle.drain(..).partition(|s| {
                    if s.last_used.elapsed() > keep_alive {
                        return true;
                    }
                    // Work left running in an idle sandbox costs its neighbours CPU now, not at
                    // the next call: found here within one maintenance period.
                    match s.busy_while_idle() {
                        Some(why) => {
                            tracing::info!(function = %pool.name, sandbox = %s.id, %why, "sandbox discarded: busy while idle");
                            true
                        }
                        None => false,
                    }
                });
                *idle = fresh;
                pool.live.fetch_sub(old.len(), Ordering::Relaxed);
                expired.extend(old);
                let in_use = pool.live.load(Ordering::Relaxed) > 0
                    || pool.waiting.load(Ordering::Relaxed) > 0
                    || pool.permits.available_permits() < pool.concurrency.load(Ordering::Relaxed);
                in_use
            });
        }
        self.inner.retired_below.lock().retain(|_, (_, at)| at.elapsed() < RETIRED_MEMORY);
        expired.extend(remove_where(&mut self.inner.checked.lock(), |_, sb: &Sandbox| sb.last_used.elapsed() > keep_alive));
        for sb in expired {
            self.discard(sb);
        }
        let now = Instant::now();
        let keys: Vec<SandboxKey> = self.inner.targets.lock().keys().copied().collect();
        for key in keys {
            let target = self.demand_target(key, now);
            self.inner.targets.lock().insert(key, target);
            let extra: Vec<Sandbox> = {
                let mut generic = self.inner.generic.lock();
                let list = generic.entry(key).or_default();
                let n = list.len().saturating_sub(target);
                list.drain(..n).collect()
            };
            for sb in extra {
                self.discard(sb);
            }
            self.refill(key);
        }
        if let Some(share) = available_memory_share() {
            if share < self.inner.config.min_available_memory {
                let idle = self.inner.generic.lock().values().map(Vec::len).sum::<usize>()
                    + self.inner.functions.lock().values().map(|p| p.idle.lock().len()).sum::<usize>();
                let n = idle.div_ceil(4);
                if n > 0 {
                    tracing::warn!(available = format!("{:.0}%", share * 100.0), evicting = n, "memory pressure: reaping idle sandboxes");
                    self.evict_idle(n);
                }
            }
        }
    }

    /// Runs [`Pools::maintain`] every `period` until the pools are dropped.
    pub fn spawn_maintenance(&self, period: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Pools { inner }.maintain();
            }
        });
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

    pub fn stats(&self) -> PoolStats {
        let usage = {
            let u = self.inner.usage.lock();
            (u.sandboxes, u.memory_mb)
        };
        let functions = self
            .inner
            .functions
            .lock()
            .values()
            .map(|p| {
                let idle = p.idle.lock().len();
                FunctionPoolStats {
                    function: p.name.clone(),
                    version: p.version,
                    idle,
                    busy: p.live.load(Ordering::Relaxed).saturating_sub(idle),
                    queued: p.waiting.load(Ordering::Relaxed),
                }
            })
            .collect();
        let generic = self.inner.generic.lock().iter().map(|(k, v)| (key_label(k), v.len())).collect();
        PoolStats {
            functions,
            generic,
            checked: self.inner.checked.lock().len(),
            sandboxes_started: self.inner.sandboxes_started.load(Ordering::Relaxed),
            cold_starts: self.inner.cold_starts.load(Ordering::Relaxed),
            prewarmed_cold_starts: self.inner.prewarmed_cold_starts.load(Ordering::Relaxed),
            sandboxes: usage.0,
            memory_committed_mb: usage.1,
            max_sandboxes: self.inner.config.max_sandboxes,
            memory_budget_mb: self.inner.config.memory_budget_mb,
            evictions: self.inner.evictions.load(Ordering::Relaxed),
        }
    }
}

/// Removes and returns the entries of `map` that `pred` picks (a stable `HashMap::extract_if`
/// is newer than this workspace's minimum Rust).
fn remove_where<K: Copy + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, pred: impl Fn(&K, &V) -> bool) -> Vec<V> {
    let keys: Vec<K> = map.iter().filter(|(k, v)| pred(k, v)).map(|(k, _)| *k).collect();
    keys.into_iter().filter_map(|k| map.remove(&k)).collect()
}

/// MemAvailable / MemTotal from /proc/meminfo (None where it cannot be read).
fn available_memory_share() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok())
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| available / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(concurrency: u32) -> FunctionPool {
        let spec = serde_json::json!({"name": "f", "language": "python", "code": "x", "concurrency": concurrency});
        let spec: fnbox_core::FunctionSpec = serde_json::from_value(spec).expect("spec");
        FunctionPool::new(&Function::from_spec(spec, &fnbox_core::Limits::default(), chrono::Utc::now()), false)
    }

    fn take(p: &FunctionPool, n: usize) -> Vec<OwnedSemaphorePermit> {
        (0..n).map(|_| p.permits.clone().try_acquire_owned().expect("a free permit")).collect()
    }

    #[test]
    fn lowering_concurrency_takes_permits_out_as_running_calls_end() {
        let p = pool(4);
        let running = take(&p, 3);
        p.resize(1);
        assert_eq!(p.permits.available_permits(), 0, "the one free permit goes at once");
        let mut running = running.into_iter();
        for permit in running.by_ref().take(2) {
            p.give_back(permit);
            assert_eq!(p.permits.available_permits(), 0, "still paying off the lowered concurrency");
        }
        for permit in running {
            p.give_back(permit);
        }
        assert_eq!(p.permits.available_permits(), 1);
    }

    #[test]
    fn raising_concurrency_cancels_debt_before_adding_permits() {
        let p = pool(4);
        let running = take(&p, 4);
        p.resize(1);
        assert_eq!(p.permit_debt.load(Ordering::Relaxed), 3);
        p.resize(3);
        assert_eq!(p.permit_debt.load(Ordering::Relaxed), 1);
        assert_eq!(p.permits.available_permits(), 0);
        for permit in running {
            p.give_back(permit);
        }
        assert_eq!(p.permits.available_permits(), 3, "four calls ended, concurrency is 3");
        p.resize(5);
        assert_eq!(p.permits.available_permits(), 5);
    }
}
