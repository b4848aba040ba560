//! Every NATS name fnbox uses, in one place (all carry the protocol version, so nodes of a
//! future version can use their own subjects beside these).

/// Node heartbeats: key = node id, value = `NodeInfo` JSON.
pub const NODES_BUCKET: &str = "fnbox_nodes_v1";
/// Change notices (`Change` JSON), to every node.
pub const CHANGES: &str = "fnbox.v1.changes";
/// Recorded executions (cut for the stream), to every node's live view.
pub const EXECUTIONS: &str = "fnbox.v1.executions";
/// Header naming the node that published a notice (so it can skip its own).
pub const ORIGIN_HEADER: &str = "Fnbox-Node";

/// Where a node takes calls forwarded to it (request/reply).
pub fn invoke(node: &str) -> String {
    format!("fnbox.v1.invoke.{node}")
}
