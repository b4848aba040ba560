//! The sandbox budget (count and memory) and eviction of idle sandboxes to make room.

use std::sync::atomic::Ordering;
use std::time::Instant;

use uuid::Uuid;

use super::{key_label, Pools};
use crate::backend::{SandboxError, SandboxKey};

/// What the live sandboxes commit, against [`PoolConfig::max_sandboxes`] and the memory budget.
#[derive(Default)]
pub(super) struct Usage {
    pub(super) sandboxes: usize,
    pub(super) memory_mb: u64,
}

/// An eviction candidate: when it was last used, which function version's pool holds it
/// (None: a generic sandbox) and its key.
type Oldest = (Instant, Option<(Uuid, u32)>, SandboxKey);

impl Pools {
    /// Takes a sandbox's share of the budget, evicting idle sandboxes (least recently used
    /// first) when `evict` allows and the budget is spent.
    pub(super) fn reserve(&self, key: SandboxKey, evict: bool) -> Result<(), SandboxError> {
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

    pub(super) fn unreserve(&self, key: SandboxKey) {
        let mut u = self.inner.usage.lock();
        u.sandboxes = u.sandboxes.saturating_sub(1);
        u.memory_mb = u.memory_mb.saturating_sub(u64::from(key.memory_mb));
    }

    /// Removes up to `n` idle sandboxes, generic or warm, least recently used first.
    /// Returns whether any was removed.
    pub(super) fn evict_idle(&self, n: usize) -> bool {
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
            // The oldest idle sandbox of all.
            let mut oldest: Option<Oldest> = None;
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
}


/// MemAvailable / MemTotal from /proc/meminfo (None where it cannot be read).
pub(super) fn available_memory_share() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok())
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| available / total)
}
