//! The build of a function version's dependencies into an image layer, as the store keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a version's dependencies are. A version without dependencies has no build
/// (`none` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    None,
    Building,
    Ready,
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::None => "none",
            BuildStatus::Building => "building",
            BuildStatus::Ready => "ready",
            BuildStatus::Failed => "failed",
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, BuildStatus::Ready | BuildStatus::Failed | BuildStatus::None)
    }
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The build logs kept in the record; the package managers' output past this is cut at the
/// front (the end is where the error is).
pub const MAX_BUILD_LOG_BYTES: usize = 64 * 1024;

/// One build of a function's dependencies. Functions whose dependencies normalize the same
/// ([`crate::Dependencies::hash`]) share it: the same lock and the same image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Build {
    pub status: BuildStatus,
    /// Hash of the language and normalized dependencies.
    pub deps_hash: String,
    /// The function version this build is for.
    pub version: u32,
    /// The exact packages resolved (pip `name==version --hash=sha256:…` lines, or npm's
    /// package-lock.json): every node installs from this, so all run the same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Content address of the installed packages (24 hex digits of SHA-256 over the language
    /// and the lock): names the image layer on every node, so functions with the same lock
    /// share one image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `name version` of every package installed, dependencies of dependencies included.
    #[serde(default)]
    pub packages: Vec<String>,
    /// The package managers' output (the last [`MAX_BUILD_LOG_BYTES`]).
    #[serde(default)]
    pub logs: String,
    /// Why it failed, naming the package when the package manager does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Size of the installed packages, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The node that resolved it (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Build {
    /// A build that is about to start.
    pub fn started(deps_hash: String, version: u32, node: Option<String>, now: DateTime<Utc>) -> Build {
        Build {
            status: BuildStatus::Building,
            deps_hash,
            version,
            lock: None,
            image: None,
            packages: Vec::new(),
            logs: String::new(),
            error: None,
            started_at: now,
            finished_at: None,
            duration_ms: None,
            size_bytes: None,
            node,
        }
    }
}

/// Keeps the last `max` bytes of `logs` (on a character boundary), marking the cut.
pub fn tail_logs(logs: &str, max: usize) -> String {
    if logs.len() <= max {
        return logs.to_owned();
    }
    let mut start = logs.len() - max;
    while !logs.is_char_boundary(start) {
        start += 1;
    }
    format!("[… {start} bytes cut …]\n{}", &logs[start..])
}

/// The content address of a lock ([`Build::image`]).
pub fn image_digest(language: crate::Language, lock: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(language.as_str().as_bytes());
    h.update(b"\n");
    h.update(lock.as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/v1/functions/{name}/build`: the current version's build with its logs (live
/// while it runs) and lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildReport {
    pub function: String,
    /// The function's current version (the one this build is for).
    pub version: u32,
    pub status: BuildStatus,
    /// The version calls run meanwhile, when it is not `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<u32>,
    /// `None` when the version has no dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
}
