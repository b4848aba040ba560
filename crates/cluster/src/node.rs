//! What each node announces in its heartbeat, and the live view built from them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fnbox_core::Runtime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Idle sandboxes a node holds of one function version (only versions with at least one
/// sandbox are listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmEntry {
    pub function: Uuid,
    pub version: u32,
    pub idle: u32,
    pub busy: u32,
}

/// How full a node is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRoom {
    pub sandboxes: u32,
    pub max_sandboxes: u32,
    pub memory_committed_mb: u64,
    pub memory_budget_mb: u64,
    /// Invocations running on the node now.
    pub running: u32,
}

impl NodeRoom {
    /// Whether one more sandbox of `memory_mb` fits.
    pub fn fits(&self, memory_mb: u32) -> bool {
        self.sandboxes < self.max_sandboxes && self.memory_committed_mb + u64::from(memory_mb) <= self.memory_budget_mb
    }
}

/// One heartbeat: everything other nodes need to route to this one and to show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Message format version ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    pub id: String,
    /// Where the node serves the API and web UI.
    pub api_url: Option<String>,
    /// Runtimes its dockerd can run now.
    pub runtimes: Vec<Runtime>,
    pub room: NodeRoom,
    pub warm: Vec<WarmEntry>,
    /// Digests of the dependency images ready on the node (a node that misses one builds it
    /// from the function's lock before its first call there). Absent from older nodes.
    #[serde(default)]
    pub images: Vec<String>,
    pub started_at: DateTime<Utc>,
    /// When the node sent this heartbeat (its own clock; liveness uses the receiver's).
    pub sent_at: DateTime<Utc>,
    /// fnbox's version on that node.
    pub software: String,
}

impl NodeInfo {
    pub fn idle_of(&self, function: Uuid, version: u32) -> u32 {
        self.warm.iter().find(|w| w.function == function && w.version == version).map_or(0, |w| w.idle)
    }

    pub fn holds(&self, function: Uuid, version: u32) -> bool {
        self.warm.iter().any(|w| w.function == function && w.version == version)
    }
}

/// A node not heard from for this long is left out of routing and shown as gone. Three
/// heartbeats: one late or lost heartbeat does not drop a node, and a dead one is passed over
/// within about 3 s.
pub const LIVE_WINDOW: Duration = Duration::from_secs(3);

/// A heartbeat and when this node received it.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub info: NodeInfo,
    pub seen: Instant,
}

impl LiveNode {
    pub fn age(&self) -> Duration {
        self.seen.elapsed()
    }
}

/// The nodes a node knows of, as last heard.
pub trait NodeView: Send + Sync {
    /// This node's id.
    fn me(&self) -> &str;
    /// Every node heard from within the liveness window, this one included.
    fn live(&self) -> Arc<Vec<LiveNode>>;
}

/// Node ids go into NATS subjects and KV keys: letters, digits, `-` and `_`, 1 to 64.
pub fn valid_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("node id `{id}`: use 1 to 64 letters, digits, `-` or `_`"));
    }
    Ok(())
}
