//! The live view: the last heartbeat of every node, as received.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_cluster::{LiveNode, NodeInfo, NodeView, LIVE_WINDOW};
use parking_lot::RwLock;

/// Nodes gone for longer than this are forgotten (they stay listed as gone until then).
const FORGET_AFTER: Duration = Duration::from_secs(600);

pub struct View {
    me: String,
    nodes: RwLock<HashMap<String, LiveNode>>,
    /// Snapshot of the live nodes, rebuilt when a heartbeat arrives or a node ages out.
    live: RwLock<Arc<Vec<LiveNode>>>,
}

impl View {
    pub fn new(me: &str) -> View {
        View { me: me.to_owned(), nodes: RwLock::new(HashMap::new()), live: RwLock::new(Arc::new(Vec::new())) }
    }

    pub fn heard(&self, info: NodeInfo) {
        let mut nodes = self.nodes.write();
        nodes.insert(info.id.clone(), LiveNode { info, seen: Instant::now() });
        self.rebuild(&mut nodes);
    }

    pub fn left(&self, id: &str) {
        let mut nodes = self.nodes.write();
        nodes.remove(id);
        self.rebuild(&mut nodes);
    }

    pub fn is_live(&self, id: &str) -> bool {
        self.nodes.read().get(id).is_some_and(|n| n.age() < LIVE_WINDOW)
    }

    pub fn all(&self) -> Vec<(NodeInfo, Duration)> {
        let mut all: Vec<_> = self.nodes.read().values().map(|n| (n.info.clone(), n.age())).collect();
        all.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        all
    }

    fn rebuild(&self, nodes: &mut HashMap<String, LiveNode>) {
        nodes.retain(|_, n| n.age() < FORGET_AFTER);
        let mut live: Vec<LiveNode> = nodes.values().filter(|n| n.age() < LIVE_WINDOW).cloned().collect();
        live.sort_by(|a, b| a.info.id.cmp(&b.info.id));
        *self.live.write() = Arc::new(live);
    }
}

impl NodeView for View {
    fn me(&self) -> &str {
        &self.me
    }

    fn live(&self) -> Arc<Vec<LiveNode>> {
        let snapshot = self.live.read().clone();
        if snapshot.iter().all(|n| n.age() < LIVE_WINDOW) {
            return snapshot;
        }
        // A node aged out since the last heartbeat arrived: drop it now, not at the next one.
        let mut nodes = self.nodes.write();
        self.rebuild(&mut nodes);
        self.live.read().clone()
    }
}
