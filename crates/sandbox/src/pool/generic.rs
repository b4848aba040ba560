//! Generic sandboxes: started ahead of demand per key, waiting for code, sized by recent cold
//! starts and refilled in the background.

use std::time::{Duration, Instant};

use super::{key_label, Pools};
use crate::backend::SandboxKey;
use crate::sandbox::Sandbox;

/// How far back cold starts count as demand for pre-started sandboxes.
const DEMAND_WINDOW: Duration = Duration::from_secs(60);

/// Cold starts in the window per extra generic sandbox kept ready.
const COLD_STARTS_PER_PREWARM: usize = 4;

impl Pools {
    pub(super) fn take_generic(&self, key: SandboxKey) -> Option<Sandbox> {
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

    pub(super) fn note_demand(&self, key: SandboxKey) {
        let now = Instant::now();
        self.inner.recent_cold.lock().entry(key).or_default().push_back(now);
        let target = self.demand_target(key, now);
        self.inner.targets.lock().insert(key, target);
    }

    /// Generic sandboxes to keep for `key`: the configured number, plus one per few recent
    /// cold starts, capped. Keys nobody has used for a while fall back to the configured base
    /// (or to none, for keys that were never configured).
    pub(super) fn demand_target(&self, key: SandboxKey, now: Instant) -> usize {
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
    pub(super) fn refill(&self, key: SandboxKey) {
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
}

