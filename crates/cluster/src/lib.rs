//! The cluster layer: what a node announces about itself ([`node`]), where an invocation runs
//! ([`placement`]), the versioned messages nodes exchange ([`messages`]) and the transport
//! the engine talks to ([`transport`]). It knows no NATS: `fnbox-cluster-nats` implements
//! [`transport::Cluster`] over NATS, and a single fnbox uses [`placement::LocalOnly`].

pub mod messages;
pub mod node;
pub mod placement;
pub mod transport;

pub use messages::{Change, InvokeReply, InvokeRequest, RemoteError, RemoteErrorCode, PROTOCOL_VERSION};
pub use node::{valid_node_id, LiveNode, LIVE_WINDOW, NodeInfo, NodeRoom, NodeView, WarmEntry};
pub use placement::{LocalOnly, Placement, Rendezvous, Target, Wanted};
pub use transport::{Cluster, ForwardError, NodeHandler};
