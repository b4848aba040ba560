//! Where an invocation runs.
//!
//! In a cluster: on a node that holds an idle warm sandbox of the function version (this one
//! first), else on the function's *home* node, chosen by rendezvous (highest-random-weight)
//! hashing over the live nodes with room. Every node computes the same home from the same
//! view without talking to the others, so a function's sandboxes gather on one node and its
//! calls find them warm; when a node leaves, only the functions homed on it move.

use std::sync::Arc;

use fnbox_core::Runtime;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::node::{LiveNode, NodeView};

/// What is being placed: one call of one function version.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub function: Uuid,
    pub version: u32,
    pub runtime: Runtime,
    pub memory_mb: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Run it here.
    Local,
    /// Send it to this node.
    Node(String),
}

pub trait Placement: Send + Sync {
    /// Where a call runs. `local_idle`: this node has an idle warm sandbox of it now.
    /// `exclude`: nodes that already failed to take this call.
    fn place(&self, wanted: &Wanted, local_idle: bool, exclude: &[String]) -> Target;
}

/// A single fnbox: everything runs here.
pub struct LocalOnly;

impl Placement for LocalOnly {
    fn place(&self, _: &Wanted, _: bool, _: &[String]) -> Target {
        Target::Local
    }
}

/// Warm-first, then rendezvous hashing over the live nodes (see the module docs).
pub struct Rendezvous {
    view: Arc<dyn NodeView>,
}

impl Rendezvous {
    pub fn new(view: Arc<dyn NodeView>) -> Rendezvous {
        Rendezvous { view }
    }
}

impl Placement for Rendezvous {
    fn place(&self, wanted: &Wanted, local_idle: bool, exclude: &[String]) -> Target {
        place(self.view.me(), &self.view.live(), wanted, local_idle, exclude)
    }
}

/// The weight of `node` for `function`: the first 8 bytes of SHA-256(function id, node id).
/// Stable across processes and versions (std's hasher is not), and cheap next to a call.
pub fn score(function: Uuid, node: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(function.as_bytes());
    h.update(node.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The placement rule on an explicit view (pure, so it is unit-tested without a network).
pub fn place(me: &str, nodes: &[LiveNode], wanted: &Wanted, local_idle: bool, exclude: &[String]) -> Target {
    if local_idle && !exclude.iter().any(|e| e == me) {
        return Target::Local;
    }
    let candidates: Vec<&LiveNode> = nodes
        .iter()
        .filter(|n| !exclude.contains(&n.info.id) && n.info.runtimes.contains(&wanted.runtime))
        .collect();
    let best = |list: &[&LiveNode]| -> Option<String> {
        list.iter().max_by_key(|n| (score(wanted.function, &n.info.id), n.info.id.clone())).map(|n| n.info.id.clone())
    };
    let to_target = |id: String| if id == me { Target::Local } else { Target::Node(id) };
    // Another node with an idle sandbox of exactly this version: no cold start anywhere.
    let warm: Vec<&LiveNode> =
        candidates.iter().copied().filter(|n| n.info.idle_of(wanted.function, wanted.version) > 0).collect();
    if let Some(id) = best(&warm) {
        return to_target(id);
    }
    // The home node among those with room for a sandbox of this size, or that already hold
    // one of this version (a call can wait there for it rather than start another).
    let roomy: Vec<&LiveNode> = candidates
        .iter()
        .copied()
        .filter(|n| n.info.room.fits(wanted.memory_mb) || n.info.holds(wanted.function, wanted.version))
        .collect();
    let home = if roomy.is_empty() { best(&candidates) } else { best(&roomy) };
    match home {
        Some(id) => to_target(id),
        // Nothing known fits (an empty view at start, or every node excluded): try here.
        None => Target::Local,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::Utc;

    use super::*;
    use crate::node::{NodeInfo, NodeRoom, WarmEntry};

    fn node(id: &str) -> LiveNode {
        LiveNode {
            info: NodeInfo {
                v: 1,
                id: id.into(),
                api_url: None,
                runtimes: vec![Runtime::Docker, Runtime::Gvisor],
                room: NodeRoom { sandboxes: 0, max_sandboxes: 64, memory_committed_mb: 0, memory_budget_mb: 8192, running: 0 },
                warm: vec![],
                images: vec![],
                started_at: Utc::now(),
                sent_at: Utc::now(),
                software: "test".into(),
            },
            seen: Instant::now(),
        }
    }

    fn wanted(function: Uuid) -> Wanted {
        Wanted { function, version: 1, runtime: Runtime::Docker, memory_mb: 128 }
    }

    fn ids(n: usize) -> Vec<LiveNode> {
        (1..=n).map(|i| node(&format!("node{i}"))).collect()
    }

    #[test]
    fn every_node_picks_the_same_home() {
        let nodes = ids(3);
        for _ in 0..50 {
            let w = wanted(Uuid::now_v7());
            let from: Vec<Target> = ["node1", "node2", "node3"].iter().map(|me| place(me, &nodes, &w, false, &[])).collect();
            let home = |me: &str, t: &Target| match t {
                Target::Local => me.to_owned(),
                Target::Node(n) => n.clone(),
            };
            let homes: Vec<String> = ["node1", "node2", "node3"].iter().zip(&from).map(|(me, t)| home(me, t)).collect();
            assert!(homes.iter().all(|h| *h == homes[0]), "{homes:?}");
        }
    }

    #[test]
    fn homes_spread_over_nodes_and_only_the_leavers_functions_move() {
        let three = ids(3);
        let two: Vec<LiveNode> = three.iter().filter(|n| n.info.id != "node3").cloned().collect();
        let mut per_node = std::collections::HashMap::new();
        let mut moved_wrongly = 0;
        for _ in 0..300 {
            let w = wanted(Uuid::now_v7());
            let before = match place("none", &three, &w, false, &[]) {
                Target::Node(n) => n,
                Target::Local => unreachable!("`none` is not a node"),
            };
            *per_node.entry(before.clone()).or_insert(0) += 1;
            let Target::Node(after) = place("none", &two, &w, false, &[]) else { unreachable!() };
            if before != "node3" && after != before {
                moved_wrongly += 1;
            }
        }
        assert_eq!(moved_wrongly, 0);
        assert_eq!(per_node.len(), 3);
        assert!(per_node.values().all(|&n| n > 60), "{per_node:?}");
    }

    #[test]
    fn an_idle_warm_sandbox_wins_here_first_then_elsewhere() {
        let f = Uuid::now_v7();
        let mut nodes = ids(3);
        let w = wanted(f);
        assert_eq!(place("node2", &nodes, &w, true, &[]), Target::Local);
        // Warm on a node that is not the home: it is used, from every node.
        let home = match place("x", &nodes, &w, false, &[]) {
            Target::Node(n) => n,
            Target::Local => unreachable!(),
        };
        let other = nodes.iter().map(|n| n.info.id.clone()).find(|id| *id != home).expect("another node");
        for n in &mut nodes {
            if n.info.id == other {
                n.info.warm.push(WarmEntry { function: f, version: 1, idle: 1, busy: 0 });
            }
        }
        assert_eq!(place("x", &nodes, &w, false, &[]), Target::Node(other.clone()));
        // A busy-only sandbox or another version does not count as warm.
        for n in &mut nodes {
            n.info.warm = vec![WarmEntry { function: f, version: 2, idle: 1, busy: 0 }];
        }
        assert_eq!(place("x", &nodes, &w, false, &[]), Target::Node(home));
    }

    #[test]
    fn full_nodes_and_excluded_nodes_are_passed_over() {
        let f = Uuid::now_v7();
        let w = wanted(f);
        let mut nodes = ids(3);
        let Target::Node(home) = place("x", &nodes, &w, false, &[]) else { unreachable!() };
        for n in &mut nodes {
            if n.info.id == home {
                n.info.room.sandboxes = 64;
            }
        }
        let Target::Node(second) = place("x", &nodes, &w, false, &[]) else { unreachable!() };
        assert_ne!(second, home);
        // Excluded (it did not answer): another one, and finally this node itself.
        let Target::Node(third) = place("x", &nodes, &w, false, &[second.clone()]) else { unreachable!() };
        assert!(third != second);
        let all: Vec<String> = nodes.iter().map(|n| n.info.id.clone()).collect();
        assert_eq!(place("node1", &nodes, &w, false, &all), Target::Local);
        // A node without the runtime is never chosen.
        for n in &mut nodes {
            n.info.runtimes = vec![Runtime::Docker];
        }
        let gv = Wanted { runtime: Runtime::Gvisor, ..w };
        assert_eq!(place("node1", &nodes, &gv, false, &[]), Target::Local);
    }
}
