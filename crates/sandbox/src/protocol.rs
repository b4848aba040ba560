//! Host side of the bootstrap protocol (docs/PROTOCOL.md): one JSON object per line.

use std::collections::BTreeMap;

use fnbox_core::ErrorInfo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    Check {
        code: &'a str,
    },
    Load {
        code: &'a str,
        handler: &'a str,
        env: &'a BTreeMap<String, String>,
        max_output_bytes: usize,
        max_log_bytes: usize,
        /// Asks the bootstrap to send what an invocation prints as it is printed (`log`
        /// messages) rather than with its `result`: then a call that never answers (killed at
        /// its timeout or for memory) still has its logs. Older bootstraps ignore it.
        stream_logs: bool,
    },
    Invoke {
        id: &'a str,
        event: &'a RawValue,
        context: &'a InvokeContext,
    },
}

/// What the handler sees as its `context`.
#[derive(Debug, Clone, Serialize)]
pub struct InvokeContext {
    pub execution_id: String,
    pub function: String,
    pub version: u32,
    pub memory_mb: u32,
    pub timeout_ms: u32,
    /// Unix milliseconds after which the platform kills the invocation.
    pub deadline_ms: i64,
}

/// A message from the bootstrap. Decoded in two steps (the `type` first, then the body),
/// because serde's internally tagged enums cannot carry a borrowed/raw JSON value.
#[derive(Debug)]
pub enum Reply {
    Ready { language: String, runtime_version: String },
    Checked { ok: bool, error: Option<ErrorInfo> },
    Loaded { logs: String },
    LoadFailed { error: ErrorInfo, logs: String },
    Result(InvokeResult),
    /// Part of what invocation `id` printed, sent as it was printed (with `stream_logs`).
    Log { id: String, logs: String },
    ProtocolError { message: String },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReadyMsg {
    #[serde(default)]
    language: String,
    #[serde(default)]
    runtime_version: String,
}

#[derive(Deserialize)]
struct CheckedMsg {
    ok: bool,
    #[serde(default)]
    error: Option<ErrorInfo>,
}

#[derive(Deserialize)]
struct LoadedMsg {
    #[serde(default)]
    logs: String,
}

#[derive(Deserialize)]
struct LoadFailedMsg {
    error: ErrorInfo,
    #[serde(default)]
    logs: String,
}

#[derive(Deserialize)]
struct LogMsg {
    id: String,
    #[serde(default)]
    logs: String,
}

#[derive(Deserialize)]
struct ProtocolErrorMsg {
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
pub struct InvokeResult {
    pub id: String,
    pub status: ResultStatus,
    #[serde(default)]
    pub output: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    #[serde(default)]
    pub logs: String,
    #[serde(default)]
    pub exec_ms: Option<f64>,
    /// What the bootstrap found still running after the call that it did not start itself
    /// (processes, threads, timers). Optional: older bootstraps never send it.
    #[serde(default)]
    pub leftover: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Success,
    Error,
}

/// Serializes a request as one protocol line.
pub fn encode(req: &Request<'_>) -> Vec<u8> {
    // Serializing these types cannot fail: every field is a string, number, map or raw JSON.
    let mut line = serde_json::to_vec(req).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

pub fn decode(line: &[u8]) -> Result<Reply, String> {
    let unreadable = |e: serde_json::Error| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
        format!("unreadable message from bootstrap ({e}): {shown}")
    };
    let env: Envelope<'_> = serde_json::from_slice(line).map_err(unreadable)?;
    Ok(match env.kind.as_ref() {
        "result" => Reply::Result(serde_json::from_slice(line).map_err(unreadable)?),
        "log" => {
            let m: LogMsg = serde_json::from_slice(line).map_err(unreadable)?;
            Reply::Log { id: m.id, logs: m.logs }
        }
        "ready" => {
            let m: ReadyMsg = serde_json::from_slice(line).map_err(unreadable)?;
            Reply::Ready { language: m.language, runtime_version: m.runtime_version }
        }
        "checked" => {
            let m: CheckedMsg = serde_json::from_slice(line).map_err(unreadable)?;
            Reply::Checked { ok: m.ok, error: m.error }
        }
        "loaded" => Reply::Loaded { logs: serde_json::from_slice::<LoadedMsg>(line).map_err(unreadable)?.logs },
        "load_failed" => {
            let m: LoadFailedMsg = serde_json::from_slice(line).map_err(unreadable)?;
            Reply::LoadFailed { error: m.error, logs: m.logs }
        }
        "protocol_error" => Reply::ProtocolError {
            message: serde_json::from_slice::<ProtocolErrorMsg>(line).map_err(unreadable)?.message,
        },
        other => return Err(format!("unknown message type `{other}` from bootstrap")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_invoke_as_one_line() {
        let event = RawValue::from_string(r#"{"a":"x\ny"}"#.into()).expect("raw");
        let ctx = InvokeContext {
            execution_id: "e".into(),
            function: "f".into(),
            version: 1,
            memory_mb: 128,
            timeout_ms: 1000,
            deadline_ms: 0,
        };
        let line = encode(&Request::Invoke { id: "e", event: &event, context: &ctx });
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(line.starts_with(br#"{"type":"invoke","id":"e","event":{"a":"x\ny"}"#));
    }

    #[test]
    fn decodes_replies() {
        let r = decode(br#"{"type":"result","id":"1","status":"success","output":[1,2],"logs":"hi\n","exec_ms":0.1}"#)
            .expect("decodes");
        match r {
            Reply::Result(res) => {
                assert_eq!(res.status, ResultStatus::Success);
                assert_eq!(res.output.expect("output").get(), "[1,2]");
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = decode(br#"{"type":"load_failed","error":{"type":"SyntaxError","message":"bad","line":3}}"#)
            .expect("decodes");
        assert!(matches!(r, Reply::LoadFailed { error, .. } if error.line == Some(3)));
        assert!(decode(b"garbage").is_err());
        let r = decode(br#"{"type":"log","id":"7","logs":"hi\n"}"#).expect("decodes");
        assert!(matches!(r, Reply::Log { id, logs } if id == "7" && logs == "hi\n"));
        assert!(decode(br#"{"type":"log","logs":"no id"}"#).is_err());
    }

    #[test]
    fn leftover_is_optional() {
        let r = decode(br#"{"type":"result","id":"1","status":"success","output":1,"leftover":["process 7 (sleep)"]}"#)
            .expect("decodes");
        assert!(matches!(r, Reply::Result(res) if res.leftover == Some(vec!["process 7 (sleep)".to_string()])));
        let r = decode(br#"{"type":"result","id":"1","status":"success","output":1}"#).expect("decodes");
        assert!(matches!(r, Reply::Result(res) if res.leftover.is_none()));
    }
}
