//! Periodic upkeep: keep-alive expiry, idle sandboxes that burn CPU, generic refills and
//! reaping under memory pressure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::budget::available_memory_share;
use super::{remove_where, Pools};
use crate::backend::SandboxKey;
use crate::sandbox::Sandbox;

/// How long a retired version is remembered. A caller holds an old version only between
/// looking its function up and asking for a sandbox (retiring wakes every waiter at once), so
/// this is ample, and it keeps the marks of deleted functions and comparison copies from
/// piling up.
const RETIRED_MEMORY: Duration = Duration::from_secs(600);

impl Pools {
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
                // Kept while in use.
                pool.live.load(Ordering::Relaxed) > 0
                    || pool.waiting.load(Ordering::Relaxed) > 0
                    || pool.permits.available_permits() < pool.concurrency.load(Ordering::Relaxed)
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
}

