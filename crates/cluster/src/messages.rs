//! The messages nodes exchange, as JSON. Each carries `v` (= [`PROTOCOL_VERSION`]); a node
//! answers a request of a version it does not speak with [`RemoteErrorCode::Version`], and
//! ignores notices it cannot read, so nodes of two versions can run side by side during an
//! upgrade (see docs/CLUSTER.md).

use fnbox_core::{Execution, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

pub const PROTOCOL_VERSION: u32 = 1;

/// "Run this call on your node": sent by the node that received it.
#[derive(Debug, Serialize, Deserialize)]
pub struct InvokeRequest {
    pub v: u32,
    /// The function by name, and the newest version the sender knows: a receiver that knows
    /// an older one reads the function again before running it.
    pub function: String,
    pub version: u32,
    pub event: Box<RawValue>,
    pub trigger: Trigger,
    /// The node that received the call (for logs).
    pub origin: String,
}

/// The answer to an [`InvokeRequest`]: the recorded execution, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvokeReply {
    Ok(Box<Execution>),
    Err(RemoteError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteErrorCode {
    FunctionNotFound,
    QueueFull,
    InputTooLarge,
    /// No sandbox can be had there now (no room, runtime missing, dockerd down): another
    /// node may take the call.
    NoRoom,
    Unavailable,
    Store,
    /// The receiver does not speak the request's protocol version.
    Version,
    BadRequest,
    /// The function's dependencies are still building there (message: the function's name).
    BuildPending,
    /// The function's build failed (message: the package manager's).
    BuildFailed,
}

#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub code: RemoteErrorCode,
    pub message: String,
}

/// Something changed in the shared store that nodes cache: sent by the node that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// Created, updated (new version or settings) or deleted: read it again.
    Function { v: u32, name: String, id: Option<Uuid> },
    /// API keys were created or revoked: reload them.
    Keys { v: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_shape() {
        let c = Change::Function { v: 1, name: "f".into(), id: None };
        assert_eq!(serde_json::to_string(&c).expect("json"), r#"{"kind":"function","v":1,"name":"f","id":null}"#);
        let r = InvokeRequest {
            v: 1,
            function: "f".into(),
            version: 3,
            event: RawValue::from_string(r#"{"n": 12345678901234567890}"#.into()).expect("raw"),
            trigger: Trigger::Api,
            origin: "node1".into(),
        };
        let text = serde_json::to_string(&r).expect("json");
        // The event travels as the caller's exact text (big numbers are not rounded).
        assert!(text.contains(r#""event":{"n": 12345678901234567890}"#), "{text}");
        let back: InvokeRequest = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.event.get(), r#"{"n": 12345678901234567890}"#);
        let e = InvokeReply::Err(RemoteError { code: RemoteErrorCode::NoRoom, message: "full".into() });
        assert_eq!(serde_json::to_string(&e).expect("json"), r#"{"err":{"code":"no_room","message":"full"}}"#);
    }
}
