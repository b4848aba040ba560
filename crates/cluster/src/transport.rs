//! The two sides of the transport between nodes: [`Cluster`] is what the engine calls,
//! [`NodeHandler`] is what the transport calls on the engine for messages from other nodes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fnbox_core::Execution;

use crate::messages::{Change, InvokeRequest, RemoteError};
use crate::node::{NodeInfo, NodeView};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nobody listens for that node (it stopped or never was): the call never reached it, so
    /// another node may run it.
    #[error("node `{0}` is not there")]
    Gone(String),
    /// It got the call and did not answer in time, or left while running it: the call may
    /// have run, so it is not run again elsewhere.
    #[error("node `{node}` did not answer within {waited_ms} ms")]
    NoAnswer { node: String, waited_ms: u64 },
    /// It answered with an error.
    #[error(transparent)]
    Remote(RemoteError),
    /// The message bus itself failed (no connection).
    #[error("cluster transport: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Cluster: Send + Sync + 'static {
    fn node_id(&self) -> &str;
    /// The live view routing decides on.
    fn view(&self) -> Arc<dyn NodeView>;
    /// Every node known, live or recently gone, with its last heartbeat (for `GET /cluster`).
    fn nodes(&self) -> Vec<(NodeInfo, Duration)>;
    /// Runs a call on another node and returns its recorded execution. Waits at most
    /// `timeout`, and less if the node leaves the live view meanwhile.
    async fn forward(&self, node: &str, request: InvokeRequest, timeout: Duration) -> Result<Execution, ForwardError>;
    /// Tells every other node that something cached changed (fire and forget; nodes also
    /// re-read everything periodically, so a lost notice heals).
    fn announce(&self, change: Change);
    /// Shares a recorded execution (already cut for the stream) with the other nodes' live views.
    fn publish_execution(&self, execution: &Execution);
    /// Starts serving other nodes' requests and notices with `handler`, and heartbeats.
    async fn start(&self, handler: Arc<dyn NodeHandler>) -> Result<(), ForwardError>;
    /// Leaves the cluster (removes this node's heartbeat at once, so nobody waits for its TTL).
    async fn leave(&self);
}

/// What a node does for the others. Implemented by the engine.
#[async_trait]
pub trait NodeHandler: Send + Sync + 'static {
    /// Runs a forwarded call here (never forwards it again) and returns its execution, recorded.
    async fn invoke_here(&self, request: InvokeRequest) -> Result<Execution, RemoteError>;
    /// Another node changed something this node caches.
    async fn changed(&self, change: Change);
    /// An execution another node recorded, for this node's live stream.
    fn remote_execution(&self, execution: Execution);
    /// This node's heartbeat, as of now.
    fn heartbeat(&self) -> NodeInfo;
}
