//! What the pools hold: statistics for `/metrics` and the UI, and the cheap queries the
//! cluster router asks on every invocation and in each heartbeat.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{key_label, FunctionPool, Pools};

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
    /// Pre-started sandboxes set to another memory size for the function that took them.
    pub resized_sandboxes: u64,
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

/// A function version with live sandboxes on this node, as the node's heartbeat reports it
/// to the cluster router (which sends that version's calls where sandboxes are warm).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WarmVersion {
    pub function: Uuid,
    pub version: u32,
    /// Sandboxes with the code loaded, waiting for a call.
    pub idle: u32,
    /// Sandboxes serving a call now.
    pub busy: u32,
}

/// How much room this node has for more sandboxes, and how busy it is: what the cluster
/// router weighs when no node has a warm sandbox for a call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Room {
    /// Sandboxes alive or being started (generic, checked, idle and busy).
    pub sandboxes: u32,
    pub max_sandboxes: u32,
    /// The sum of those sandboxes' memory limits.
    pub memory_committed_mb: u64,
    pub memory_budget_mb: u64,
    /// Calls holding a sandbox now (of versions still current: a call of a version retired
    /// while it ran is not counted; it ends soon and none starts after it).
    pub running: u32,
}

/// A pool's idle and busy sandboxes. `live` and `idle` are read one after the other, not
/// together, so `busy` may be off by one while a sandbox changes hands.
fn idle_busy(p: &FunctionPool) -> (usize, usize) {
    let idle = p.idle.lock().len();
    (idle, p.live.load(Ordering::Relaxed).saturating_sub(idle))
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Pools {
    /// Whether an idle warm sandbox of exactly this function version is here now, for the
    /// cluster router's choice of node on every call: one map lookup and one short lock.
    /// Checked sandboxes (code compiled, not loaded) and generic ones do not count. It is a
    /// hint: another call may take that sandbox before this one arrives.
    pub fn has_idle(&self, function: Uuid, version: u32) -> bool {
        let pool = self.inner.functions.lock().get(&(function, version)).cloned();
        pool.is_some_and(|p| !p.is_retired() && p.idle.lock().iter().any(|sb| sb.is_alive()))
    }

    /// Every current (not retired) function version with live sandboxes, idle or busy, sorted
    /// by function and version: the node's heartbeat. Checked sandboxes are left out.
    pub fn warm(&self) -> Vec<WarmVersion> {
        let mut warm: Vec<WarmVersion> = self
            .inner
            .functions
            .lock()
            .iter()
            .filter(|(_, p)| !p.is_retired())
            .filter_map(|(&(function, version), p)| {
                let (idle, busy) = idle_busy(p);
                (idle + busy > 0).then(|| WarmVersion { function, version, idle: saturating_u32(idle), busy: saturating_u32(busy) })
            })
            .collect();
        warm.sort_by_key(|w| (w.function, w.version));
        warm
    }

    /// What is left of the sandbox budget and how many calls run now (see [`Room`]).
    pub fn room(&self) -> Room {
        let (sandboxes, memory_committed_mb) = {
            let u = self.inner.usage.lock();
            (u.sandboxes, u.memory_mb)
        };
        let running: usize = self.inner.functions.lock().values().map(|p| idle_busy(p).1).sum();
        Room {
            sandboxes: saturating_u32(sandboxes),
            max_sandboxes: saturating_u32(self.inner.config.max_sandboxes),
            memory_committed_mb,
            memory_budget_mb: self.inner.config.memory_budget_mb,
            running: saturating_u32(running),
        }
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
                let (idle, busy) = idle_busy(p);
                FunctionPoolStats {
                    function: p.name.clone(),
                    version: p.version,
                    idle,
                    busy,
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
            resized_sandboxes: self.inner.resized.load(Ordering::Relaxed),
            sandboxes: usage.0,
            memory_committed_mb: usage.1,
            max_sandboxes: self.inner.config.max_sandboxes,
            memory_budget_mb: self.inner.config.memory_budget_mb,
            evictions: self.inner.evictions.load(Ordering::Relaxed),
        }
    }
}

