//! Generic sandboxes: started ahead of demand per key, waiting for code, sized by recent cold
//! starts and refilled in the background.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{key_label, stop_in_background, Pools};
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

    /// A pre-started sandbox for `key`: one of its own size, else one of another size with the
    /// same language, runtime and image, given `key`'s memory limit. It holds no code yet, so
    /// its size is all that differs, and the host's cgroup enforces the new limit from then
    /// on: a function of any size starts from a pre-started sandbox instead of a container
    /// start (the exact size's pool fills up by demand meanwhile).
    pub(super) async fn take_prestarted(&self, key: SandboxKey) -> Option<Sandbox> {
        if let Some(sb) = self.take_generic(key) {
            return Some(sb);
        }
        let mut sb = self.take_other_size(key)?;
        let from = sb.key;
        // Its share of the budget moves to the new size (which may need room made).
        self.unreserve(from);
        if let Err(e) = self.reserve(key, true) {
            tracing::debug!(key = %key_label(&key), error = %e, "no room to resize a pre-started sandbox");
            stop_in_background(self.inner.backend.clone(), sb);
            self.refill(from);
            return None;
        }
        sb.key = key;
        self.refill(from);
        match self.inner.backend.set_memory_limit(&sb.id, key.memory_mb).await {
            Ok(()) => {
                self.inner.resized.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(sandbox = %sb.id, from = from.memory_mb, to = key.memory_mb, "pre-started sandbox resized");
                Some(sb)
            }
            Err(e) => {
                tracing::warn!(sandbox = %sb.id, error = %e, "could not resize a pre-started sandbox; starting one");
                self.discard(sb);
                None
            }
        }
    }

    /// Pops a live generic sandbox of `key`'s language, runtime and image but another memory
    /// size: the smallest larger one (lowering a limit never needs memory the sandbox does not
    /// have), else the largest smaller.
    fn take_other_size(&self, key: SandboxKey) -> Option<Sandbox> {
        let mut generic = self.inner.generic.lock();
        loop {
            let pick = generic
                .iter()
                .filter(|(k, list)| k.any_size() == key.any_size() && k.memory_mb != key.memory_mb && !list.is_empty())
                .map(|(k, _)| *k)
                .min_by_key(|k| if k.memory_mb > key.memory_mb { (0, k.memory_mb) } else { (1, u32::MAX - k.memory_mb) })?;
            let list = generic.get_mut(&pick)?;
            while let Some(sb) = list.pop() {
                if sb.is_alive() {
                    return Some(sb);
                }
                self.discard(sb);
            }
        }
    }

    /// Whether a pre-started sandbox could serve `key` now (of its size or another).
    pub(super) fn has_prestarted(&self, key: SandboxKey) -> bool {
        self.inner.generic.lock().iter().any(|(k, list)| k.any_size() == key.any_size() && !list.is_empty())
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

