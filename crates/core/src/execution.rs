//! One invocation of a function and what came of it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{Language, Limits, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    Success,
    /// The function raised, returned something unusable, or its sandbox died.
    Error,
    /// The function ran past its timeout and its sandbox was killed.
    Timeout,
    /// The function ran out of memory (the sandbox hit its memory limit).
    Oom,
    /// An asynchronous call accepted and waiting for its attempt (not run yet; not final).
    Queued,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 5] = [
        ExecutionStatus::Success,
        ExecutionStatus::Error,
        ExecutionStatus::Timeout,
        ExecutionStatus::Oom,
        ExecutionStatus::Queued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Success => "success",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::Oom => "oom",
            ExecutionStatus::Queued => "queued",
        }
    }

    /// Whether this is what an attempt came to (anything but `queued`).
    pub fn is_final(self) -> bool {
        self != ExecutionStatus::Queued
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExecutionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutionStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}` (expected success, error, timeout, oom or queued)"))
    }
}

/// What started an execution. Issue 14 adds `http`, `async` and `schedule`; the names are
/// lowercase words so they can be stored, filtered on and shown as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `POST /api/v1/functions/{name}/invoke` (and the CLI and UI, which use it).
    #[default]
    Api,
    /// One of the runs of a runtime comparison (`POST /api/v1/functions/{name}/compare`).
    Compare,
    /// A request to the function's URL (`/fn/{name}`, any method).
    Http,
    /// An attempt of an asynchronous call (`Prefer: respond-async`), run from the queue.
    Async,
    /// An asynchronous call made by one of the function's schedules.
    Schedule,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [Trigger::Api, Trigger::Compare, Trigger::Http, Trigger::Async, Trigger::Schedule];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Compare => "compare",
            Trigger::Http => "http",
            Trigger::Async => "async",
            Trigger::Schedule => "schedule",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown trigger `{s}` (expected api, compare, http, async or schedule)"))
    }
}

/// Which triggers a list or an aggregate covers. The default leaves comparison runs out: a
/// comparison makes up to 2,002 executions, which would drown the user's own calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TriggerFilter {
    /// Every trigger but `compare`.
    #[default]
    NotCompare,
    Only(Trigger),
    All,
}

impl FromStr for TriggerFilter {
    type Err = String;
    /// `""` is the default, `all` is every trigger, a trigger's name is that trigger only.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Ok(TriggerFilter::NotCompare),
            "all" => Ok(TriggerFilter::All),
            other => other.parse().map(TriggerFilter::Only).map_err(|_| {
                format!("unknown trigger `{other}` (expected api, compare, http, async, schedule or all)")
            }),
        }
    }
}

impl TriggerFilter {
    pub fn matches(self, t: Trigger) -> bool {
        match self {
            TriggerFilter::NotCompare => t != Trigger::Compare,
            TriggerFilter::Only(only) => t == only,
            TriggerFilter::All => true,
        }
    }
}

/// What went wrong, as the user should read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// Exception class or fnbox error kind, e.g. `ZeroDivisionError`, `Timeout`, `SerializationError`.
    /// Cut to 256 bytes (with a marker saying how much was cut).
    #[serde(rename = "type")]
    #[schema(max_length = 300)]
    pub kind: String,
    /// Cut to 16 KiB (with a marker).
    #[schema(max_length = 16430)]
    pub message: String,
    /// Cut to 64 KiB (with a marker).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(max_length = 65580)]
    pub stack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl ErrorInfo {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo { kind: kind.into(), message: message.into(), stack: String::new(), line: None, column: None }
    }

    /// Cuts each text to its limit: a function decides what its exception says, and an
    /// uncapped one (7.8 MB each) made listing 50 executions cost hundreds of MB.
    pub fn cap(&mut self, limits: &Limits) {
        cap_text(&mut self.kind, limits.max_error_type_bytes);
        cap_text(&mut self.message, limits.max_error_message_bytes);
        cap_text(&mut self.stack, limits.max_error_stack_bytes);
    }

    /// The sum of its texts' lengths.
    fn text_bytes(&self) -> usize {
        self.kind.len() + self.message.len() + self.stack.len()
    }
}

/// A JSON value kept as the exact text it arrived as. A parsed `serde_json::Value` would round
/// integers beyond 64 bits and long decimals to an f64 (`2**64+1` came back as
/// `1.8446744073709552e19`); the text passes through untouched, and is cheaper too: nothing is
/// parsed into a tree on the invoke path, and a clone is a reference count.
#[derive(Debug, Clone)]
pub struct RawJson(Arc<RawValue>);

impl RawJson {
    /// Parses (validates) JSON text, keeping it as it is.
    pub fn parse(text: String) -> Result<RawJson, serde_json::Error> {
        RawValue::from_string(text).map(RawJson::from)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        RawJson(Arc::from(raw))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(RawJson::from)
    }
}

/// The record of one invocation. Written to the store before the caller gets an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Execution {
    pub id: Uuid,
    pub function: String,
    pub version: u32,
    pub runtime: Runtime,
    pub language: Language,
    /// The event as JSON text, cut to the recording limit (64 KiB).
    #[schema(max_length = 65600)]
    pub input: String,
    /// The return value, exactly as the function returned it (numbers are not rounded); present
    /// only for successes. `None` with `output_truncated` when it was larger than the recording
    /// limit (64 KiB; the caller still received it in full).
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: Option<RawJson>,
    #[serde(default)]
    pub output_truncated: bool,
    pub status: ExecutionStatus,
    pub error: Option<ErrorInfo>,
    /// What the function printed, cut to 256 KiB with a marker.
    #[schema(max_length = 263300)]
    pub logs: String,
    pub started_at: DateTime<Utc>,
    /// Wall time as the platform's caller saw it, queueing and cold start included.
    pub duration_ms: f64,
    /// Time spent inside the handler, measured by the bootstrap.
    pub exec_ms: Option<f64>,
    /// Peak memory of the sandbox during the invocation, read from its cgroup.
    pub memory_bytes: Option<u64>,
    pub cold_start: bool,
    /// What started it (records made before triggers were recorded are `api`).
    #[serde(default)]
    pub trigger: Trigger,
    /// The cluster node that ran it (`None` on a single-node fnbox).
    #[serde(default)]
    pub node: Option<String>,
    /// Which attempt of its call this is: 1, then 2, … for the retries of an asynchronous call.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The asynchronous call this attempt belongs to, shared by all its attempts (`None` for a
    /// synchronous call).
    #[serde(default)]
    pub request_id: Option<Uuid>,
}

fn first_attempt() -> u32 {
    1
}

impl Execution {
    /// Cuts every text of the record to its limit (input and logs too, whatever path built it).
    pub fn cap(&mut self, limits: &Limits) {
        cap_text(&mut self.input, limits.max_recorded_bytes);
        // The bootstrap marks its own cut of the logs; leave room for that marker.
        cap_text(&mut self.logs, limits.max_log_bytes + 1024);
        if let Some(e) = &mut self.error {
            e.cap(limits);
        }
    }

    /// The bytes of its texts (input, output, logs, error, name). Its JSON form is never
    /// smaller, so a store can bound a page by this before anything is serialized.
    pub fn text_bytes(&self) -> usize {
        self.function.len()
            + self.input.len()
            + self.output.as_ref().map_or(0, |o| o.get().len())
            + self.logs.len()
            + self.error.as_ref().map_or(0, ErrorInfo::text_bytes)
    }

    /// A copy for the live stream, every text cut to `max` bytes and the output left out when
    /// it is longer: what a stream subscriber may have waiting is then bounded, whatever the
    /// functions return. The full record is at `GET /api/v1/executions/{id}`.
    pub fn for_stream(&self, max: usize) -> Execution {
        let cut = |s: &str| truncate_text(s, max).0;
        let output = self.output.as_ref().filter(|o| o.get().len() <= max).cloned();
        Execution {
            id: self.id,
            function: self.function.clone(),
            version: self.version,
            runtime: self.runtime,
            language: self.language,
            input: cut(&self.input),
            output_truncated: self.output_truncated || (self.output.is_some() && output.is_none()),
            output,
            status: self.status,
            error: self.error.as_ref().map(|e| ErrorInfo {
                kind: cut(&e.kind),
                message: cut(&e.message),
                stack: cut(&e.stack),
                line: e.line,
                column: e.column,
            }),
            logs: cut(&self.logs),
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            exec_ms: self.exec_ms,
            memory_bytes: self.memory_bytes,
            cold_start: self.cold_start,
            trigger: self.trigger,
            node: self.node.clone(),
            attempt: self.attempt,
            request_id: self.request_id,
        }
    }
}

/// The longest text an executions search takes: it is matched against every scanned record.
pub const MAX_SEARCH_CHARS: usize = 200;

/// `text` as a SQL `LIKE` pattern matching it anywhere, with `\` as the escape character
/// (`%`, `_` and `\` in it are matched literally).
pub fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Which executions to list; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionFilter {
    pub function: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub runtime: Option<Runtime>,
    pub since: Option<DateTime<Utc>>,
    /// Started before this time (with `since`, a date range).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Only executions whose logs, error or output contain this text (ASCII letters in any
    /// case); at most [`MAX_SEARCH_CHARS`].
    #[serde(default)]
    pub search: Option<String>,
    /// Only executions older than this id (ids are time-ordered UUIDv7), for paging.
    pub before: Option<Uuid>,
    #[serde(default)]
    pub trigger: TriggerFilter,
    /// Only the attempts of this asynchronous call.
    #[serde(default)]
    pub request_id: Option<Uuid>,
    pub limit: u32,
    /// Stop once the listed records' [`Execution::text_bytes`] pass this (at least two are
    /// listed when there are two, so a caller can tell a page cut by size from the last page).
    pub max_bytes: Option<usize>,
}

/// Cuts `s` to at most `max` bytes on a character boundary, saying so at the end.
pub fn truncate_text(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_owned(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}…[truncated {} bytes]", &s[..end], s.len() - end), true)
}

/// Cuts `s` in place to at most `max` bytes (plus a marker), without copying when it fits.
pub fn cap_text(s: &mut String, max: usize) {
    if s.len() > max {
        *s = truncate_text(s, max).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary() {
        let (t, cut) = truncate_text("héllo", 2);
        assert!(cut);
        assert!(t.starts_with('h'));
        assert!(t.contains("truncated"));
        assert_eq!(truncate_text("abc", 3), ("abc".to_string(), false));
    }

    #[test]
    fn caps_every_error_text() {
        let limits = Limits::default();
        let mut e = ErrorInfo::new("E".repeat(8 << 20), "m".repeat(8 << 20));
        e.stack = "s".repeat(8 << 20);
        e.cap(&limits);
        assert!(e.kind.len() < limits.max_error_type_bytes + 40, "{}", e.kind.len());
        assert!(e.message.len() < limits.max_error_message_bytes + 40);
        assert!(e.stack.len() < limits.max_error_stack_bytes + 40);
        assert!(e.message.ends_with("bytes]"));
    }

    #[test]
    fn raw_json_keeps_numbers_exact() {
        let text = r#"{"big":18446744073709551617,"pi":3.14159265358979323846264338327950288}"#;
        let v = RawJson::parse(text.to_owned()).expect("valid");
        assert_eq!(serde_json::to_string(&v).expect("serializes"), text);
        let back: RawJson = serde_json::from_str(&format!("[{text}]")).map(|v: Vec<RawJson>| v[0].clone()).expect("round trip");
        assert_eq!(back, v);
        assert!(RawJson::parse("{".to_owned()).is_err());
    }

    #[test]
    fn trigger_filter_parses_and_leaves_comparisons_out_by_default() {
        assert_eq!("".parse::<TriggerFilter>(), Ok(TriggerFilter::NotCompare));
        assert_eq!("all".parse::<TriggerFilter>(), Ok(TriggerFilter::All));
        assert_eq!("compare".parse::<TriggerFilter>(), Ok(TriggerFilter::Only(Trigger::Compare)));
        assert!("cron".parse::<TriggerFilter>().is_err());
        assert!(TriggerFilter::default().matches(Trigger::Api));
        assert!(!TriggerFilter::default().matches(Trigger::Compare));
        assert!(TriggerFilter::All.matches(Trigger::Compare));
        assert!(!TriggerFilter::Only(Trigger::Compare).matches(Trigger::Api));
        assert_eq!("http".parse::<TriggerFilter>(), Ok(TriggerFilter::Only(Trigger::Http)));
        assert!(TriggerFilter::default().matches(Trigger::Http), "HTTP calls are the user's own");
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(t));
        }
    }

    #[test]
    fn status_round_trip() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(s));
        }
    }
}
