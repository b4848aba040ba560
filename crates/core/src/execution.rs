//! One invocation of a function and what came of it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Language, Runtime};

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
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 4] =
        [ExecutionStatus::Success, ExecutionStatus::Error, ExecutionStatus::Timeout, ExecutionStatus::Oom];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Success => "success",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Timeout => "timeout",
            ExecutionStatus::Oom => "oom",
        }
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
            .ok_or_else(|| format!("unknown status `{s}` (expected success, error, timeout or oom)"))
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
}

impl Trigger {
    pub const ALL: [Trigger; 2] = [Trigger::Api, Trigger::Compare];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Compare => "compare",
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
            .ok_or_else(|| format!("unknown trigger `{s}` (expected api or compare)"))
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
                format!("unknown trigger `{other}` (expected api, compare or all)")
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
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
}

/// The record of one invocation. Written to the store before the caller gets an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Execution {
    pub id: Uuid,
    pub function: String,
    pub version: u32,
    pub runtime: Runtime,
    pub language: Language,
    /// The event as JSON text, cut to the recording limit.
    pub input: String,
    /// The return value; present only for successes. `None` with `output_truncated`
    /// when it was too large to record (the caller still received it in full).
    pub output: Option<serde_json::Value>,
    #[serde(default)]
    pub output_truncated: bool,
    pub status: ExecutionStatus,
    pub error: Option<ErrorInfo>,
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
}

/// Which executions to list; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionFilter {
    pub function: Option<String>,
    pub status: Option<ExecutionStatus>,
    pub runtime: Option<Runtime>,
    pub since: Option<DateTime<Utc>>,
    /// Only executions older than this id (ids are time-ordered UUIDv7), for paging.
    pub before: Option<Uuid>,
    #[serde(default)]
    pub trigger: TriggerFilter,
    pub limit: u32,
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
    fn trigger_filter_parses_and_leaves_comparisons_out_by_default() {
        assert_eq!("".parse::<TriggerFilter>(), Ok(TriggerFilter::NotCompare));
        assert_eq!("all".parse::<TriggerFilter>(), Ok(TriggerFilter::All));
        assert_eq!("compare".parse::<TriggerFilter>(), Ok(TriggerFilter::Only(Trigger::Compare)));
        assert!("cron".parse::<TriggerFilter>().is_err());
        assert!(TriggerFilter::default().matches(Trigger::Api));
        assert!(!TriggerFilter::default().matches(Trigger::Compare));
        assert!(TriggerFilter::All.matches(Trigger::Compare));
        assert!(!TriggerFilter::Only(Trigger::Compare).matches(Trigger::Api));
    }

    #[test]
    fn status_round_trip() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(s));
        }
    }
}
