//! Per-version pools: leases, acquire and release, retiring replaced versions, concurrency.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_core::Function;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::{remove_where, PoolError, Pools};
use crate::backend::SandboxKey;
use crate::sandbox::{LoadFailure, Sandbox};

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

pub(super) struct FunctionPool {
    pub(super) name: String,
    pub(super) version: u32,
    /// The function's concurrency now; changed in place by [`Pools::set_concurrency`].
    pub(super) concurrency: AtomicUsize,
    pub(super) permits: Arc<Semaphore>,
    /// Permits to take out of circulation as running calls finish, after the concurrency was
    /// lowered below the number of calls running.
    pub(super) permit_debt: AtomicUsize,
    pub(super) waiting: AtomicUsize,
    pub(super) live: AtomicUsize,
    pub(super) idle: Mutex<Vec<Sandbox>>,
    pub(super) retired: AtomicBool,
    /// Woken (one waiter per release) when a sandbox goes back to `idle`.
    pub(super) released: Notify,
    /// Callers waiting for a busy sandbox to come free instead of starting one.
    pub(super) idle_waiters: AtomicUsize,
    /// Moving averages of how long a lease is held and how long a cold start takes, from a
    /// pre-started sandbox (a code load) or from nothing (a container start too).
    busy_us: Ewma,
    cold_prewarmed_us: Ewma,
    cold_full_us: Ewma,
}

impl FunctionPool {
    pub(super) fn new(f: &Function, retired: bool) -> FunctionPool {
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
    pub(super) fn give_back(&self, permit: OwnedSemaphorePermit) {
        let paid = self.permit_debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)).is_ok();
        if paid {
            permit.forget();
        }
    }

    /// Sets how many calls may run at once, for calls that start from now on: raising adds
    /// permits at once; lowering removes free permits at once and the rest as running calls end.
    pub(super) fn resize(&self, new: usize) {
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

    pub(super) fn is_retired(&self) -> bool {
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

/// A new sandbox costs more than its start: memory, and CPU its neighbours lose. A caller
/// waits at least this long for a busy one before starting another (measured here: 16 clients
/// of a quick gVisor function ran at 835 calls/s on 16 sandboxes and 1,380/s on one).
const MIN_WAIT_BEFORE_SCALING: Duration = Duration::from_millis(50);

/// What cold starts are assumed to cost before one has been measured for a function.
const INITIAL_PREWARMED_COLD_ESTIMATE: Duration = Duration::from_millis(20);

const INITIAL_FULL_COLD_ESTIMATE: Duration = Duration::from_millis(300);

impl Pools {
    pub(super) fn function_pool(&self, f: &Function) -> Arc<FunctionPool> {
        let retired = self.is_retired_version(f);
        let new_pool = || Arc::new(FunctionPool::new(f, retired));
        if retired {
            // A caller still holding a replaced or deleted version: a pool that serves nothing.
            return new_pool();
        }
        self.inner.functions.lock().entry((f.id, f.version)).or_insert_with(new_pool).clone()
    }

    /// Whether `f` is a version that was replaced or deleted.
    pub(super) fn is_retired_version(&self, f: &Function) -> bool {
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
    pub(super) fn cold_estimate(&self, pool: &FunctionPool, f: &Function) -> Duration {
        let key = SandboxKey::for_function(f);
        if self.has_prestarted(key) { pool.cold_prewarmed_us.get() } else { pool.cold_full_us.get() }
    }

    /// Pops a live idle sandbox of the pool, destroying on the way dead ones and ones that
    /// burnt CPU while idle (work the function left running).
    pub(super) fn take_idle(&self, pool: &FunctionPool) -> Option<Sandbox> {
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

    pub(super) async fn cold_start(&self, f: &Function, pool: &FunctionPool) -> Result<(Sandbox, bool), PoolError> {
        let key = SandboxKey::for_function(f);
        self.inner.cold_starts.fetch_add(1, Ordering::Relaxed);
        self.note_demand(key);
        let checked = self.take_checked(f);
        let prestarted = match checked {
            Some(sb) => Some(sb),
            None => self.take_prestarted(key).await,
        };
        let (mut sandbox, prewarmed) = match prestarted {
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

