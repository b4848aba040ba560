//! A function's history and its saved test events (issue 16, "what the Lambda console has").
//!
//! Every version of a function is kept as an immutable snapshot, written in the same commit as
//! the function itself, so the history can never miss the version that runs. A rollback makes a
//! new version from an old one's snapshot: history only grows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::build::BuildStatus;
use crate::function::{BuildSummary, Function, HttpAccess, Language, Runtime};
use crate::validation::{FieldError, ValidationErrors};
use crate::RawJson;

/// The most versions kept per function; older ones are pruned when a new one is written (the
/// current version is always the newest, so it is never pruned). 100 snapshots of the largest
/// code allowed (256 KiB) are 25 MiB per function: bounded, and far more history than a
/// rollback needs (Lambda keeps every version, but it also charges for them).
pub const MAX_VERSIONS: u32 = 100;

/// The most saved test events per function (Lambda's limit for shareable events is 10 per
/// function; the UI lists them all in one menu, so a few dozen is plenty).
pub const MAX_TEST_EVENTS: u32 = 50;

/// The longest test event name, and the characters it may use (as Lambda's: letters, digits,
/// `.`, `_`, `-`): it is a path segment, so nothing there needs encoding.
pub const MAX_TEST_EVENT_NAME_CHARS: usize = 64;

/// One version in a function's history, as the list gives it: no code, no environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionSummary {
    pub version: u32,
    /// When this version was made (for versions older than the history, when it was last changed).
    pub created_at: DateTime<Utc>,
    pub language: Language,
    pub runtime: Runtime,
    pub timeout_ms: u32,
    pub memory_mb: u32,
    /// The size of its code in bytes (the code is at `GET …/versions/{version}`).
    pub code_bytes: u64,
    /// Whether it has dependencies.
    pub has_dependencies: bool,
    /// Its dependency build (`none` without dependencies; `building` for a version replaced
    /// before its build ended, which can then not be invoked).
    pub build: BuildStatus,
}

/// A version's full snapshot, as `GET …/versions/{version}` gives it. Environment values are
/// write-only here too: only their names come back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// The function's name.
    pub function: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub description: String,
    pub language: Language,
    pub runtime: Runtime,
    /// The handler's source; omitted for `invoke` keys, as on the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub timeout_ms: u32,
    pub memory_mb: u32,
    pub concurrency: u32,
    pub max_retries: u32,
    /// Names of its environment variables, sorted (a rollback restores their values).
    pub env_names: Vec<String>,
    pub sample_input: Option<serde_json::Value>,
    /// The requirements.txt or package.json text; omitted for `invoke` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<String>,
    pub build: BuildSummary,
    pub http: HttpAccess,
}

impl VersionInfo {
    /// What a caller sees of snapshot `f`; `with_code` for callers that may change it.
    pub fn of(f: &Function, with_code: bool) -> VersionInfo {
        VersionInfo {
            function: f.name.clone(),
            version: f.version,
            created_at: f.created_at,
            description: f.description.clone(),
            language: f.language,
            runtime: f.runtime,
            code: with_code.then(|| f.code.clone()),
            timeout_ms: f.timeout_ms,
            memory_mb: f.memory_mb,
            concurrency: f.concurrency,
            max_retries: f.max_retries,
            env_names: f.env.keys().cloned().collect(),
            sample_input: f.sample_input.clone(),
            dependencies: if with_code { f.dependencies.clone() } else { None },
            build: BuildSummary::of(f.build.as_ref()),
            http: f.http,
        }
    }
}

/// The snapshot of `f` the store keeps for its version: the function as it is, without what
/// belongs to the function rather than the version (the version serving meanwhile) and without
/// the build's logs (up to 64 KiB each, and `GET …/build` has the current ones).
pub fn snapshot_of(f: &Function) -> Function {
    let mut s = Function { serving: None, ..f.clone() };
    if let Some(b) = s.build.as_mut() {
        b.logs.clear();
    }
    s
}

/// The status of a build stored as JSON (`none` without one), read without the rest of it:
/// what a version listing needs.
pub fn build_status_of_json(build: Option<&str>) -> Result<BuildStatus, serde_json::Error> {
    #[derive(Deserialize)]
    struct Status {
        status: BuildStatus,
    }
    Ok(build.map(serde_json::from_str::<Status>).transpose()?.map_or(BuildStatus::None, |s| s.status))
}

/// A named event saved with a function, to invoke it with again (Lambda's shareable test events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestEvent {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// The event, exactly as it was saved (numbers are not rounded).
    #[schema(value_type = serde_json::Value)]
    pub event: RawJson,
    pub updated_at: DateTime<Utc>,
}

/// What saving a test event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEventSaved {
    Created,
    Replaced,
    /// The function holds the most test events already; nothing was written.
    Full,
}

/// Checks a test event's name (see [`MAX_TEST_EVENT_NAME_CHARS`]).
pub fn validate_test_event_name(name: &str) -> Result<(), ValidationErrors> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TEST_EVENT_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationErrors(vec![FieldError {
            field: "name".into(),
            message: format!("a test event's name is 1 to {MAX_TEST_EVENT_NAME_CHARS} of A-Z, a-z, 0-9, '.', '_' and '-'"),
            line: None,
            column: None,
        }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_event_names() {
        for ok in ["a", "payload-1", "Big_Event.v2", &"x".repeat(64)] {
            assert!(validate_test_event_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "..%2f", &"x".repeat(65)] {
            assert!(validate_test_event_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_keeps_the_version_not_the_function_state() {
        let spec: crate::FunctionSpec =
            serde_json::from_value(serde_json::json!({"name": "f", "language": "python", "code": "x"})).expect("spec");
        let mut f = Function::from_spec(spec, &crate::Limits::default(), Utc::now());
        f.build = Some(crate::Build::started("h".into(), 1, None, Utc::now()));
        if let Some(b) = f.build.as_mut() {
            b.logs = "lots of pip output".into();
        }
        f.serving = Some(Box::new(f.clone()));
        let s = snapshot_of(&f);
        assert!(s.serving.is_none());
        assert_eq!(s.build.as_ref().map(|b| b.logs.as_str()), Some(""));
        assert_eq!((s.code.as_str(), s.version), ("x", 1));
    }
}
