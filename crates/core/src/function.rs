//! A function: user code plus the sandbox settings it runs with.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::build::{Build, BuildStatus};

/// The language a function is written in; selects the runtime image and bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Javascript,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Python, Language::Javascript];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "python" | "py" => Ok(Language::Python),
            "javascript" | "js" | "node" => Ok(Language::Javascript),
            other => Err(format!("unknown language `{other}` (expected python or javascript)")),
        }
    }
}

/// The sandbox technology: plain Docker (runc) or gVisor (runsc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Gvisor,
}

impl Runtime {
    pub const ALL: [Runtime; 2] = [Runtime::Docker, Runtime::Gvisor];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Gvisor => "gvisor",
        }
    }

    /// The other runtime, for side-by-side comparisons.
    pub fn other(self) -> Runtime {
        match self {
            Runtime::Docker => Runtime::Gvisor,
            Runtime::Gvisor => Runtime::Docker,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "docker" | "runc" => Ok(Runtime::Docker),
            "gvisor" | "runsc" => Ok(Runtime::Gvisor),
            other => Err(format!("unknown runtime `{other}` (expected docker or gvisor)")),
        }
    }
}

/// Who may call a function over HTTP at `/fn/{name}` (its "function URL").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HttpAccess {
    /// No function URL: `/fn/{name}` answers 404, as for a function that does not exist.
    #[default]
    Off,
    /// Callers need an API key (admin or invoke), sent as for the API.
    Key,
    /// Anyone may call it; calls are rate-limited per client address.
    Public,
}

impl HttpAccess {
    pub const ALL: [HttpAccess; 3] = [HttpAccess::Off, HttpAccess::Key, HttpAccess::Public];

    pub fn as_str(self) -> &'static str {
        match self {
            HttpAccess::Off => "off",
            HttpAccess::Key => "key",
            HttpAccess::Public => "public",
        }
    }
}

impl fmt::Display for HttpAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HttpAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpAccess::ALL
            .into_iter()
            .find(|h| h.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown http setting `{s}` (expected off, key or public)"))
    }
}

/// The path of a function's URL, relative to the server.
pub fn function_url(name: &str) -> String {
    format!("/fn/{name}")
}

/// A stored function. `version` grows by one each time its code or settings change,
/// and every execution records the version it ran. Not an API type: responses are
/// [`FunctionInfo`], which leaves the environment's values out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub language: Language,
    pub runtime: Runtime,
    pub code: String,
    pub timeout_ms: u32,
    pub memory_mb: u32,
    /// Invocations of this function that may run at once; more wait in a queue.
    pub concurrency: u32,
    /// How many times a failed asynchronous call is tried again (0 to 5).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Secret: never serialized, so nothing that serializes a function can leak the values.
    #[serde(skip_serializing, default)]
    pub env: BTreeMap<String, String>,
    /// An example event, used by the UI to build an input form.
    pub sample_input: Option<serde_json::Value>,
    /// The text of a requirements.txt (Python) or package.json (JavaScript), as given.
    #[serde(default)]
    pub dependencies: Option<String>,
    /// The build of this version's dependencies; `None` when it has none.
    #[serde(default)]
    pub build: Option<Build>,
    /// The last version whose build was ready, kept while this one's builds or after it
    /// failed: calls run it meanwhile. `None` when this version runs.
    #[serde(default)]
    pub serving: Option<Box<Function>>,
    /// Whether `/fn/{name}` calls it, and who may.
    #[serde(default)]
    pub http: HttpAccess,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a function cannot be called now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRunnable {
    /// Its dependencies are being built and no earlier version can serve meanwhile.
    Pending,
    /// Its build failed (the message) and no earlier version can serve.
    Failed(String),
}

/// A function as the API returns it, to every key. Environment values are write-only: only
/// their names come back. The code comes back only to callers that may change it (admin keys,
/// or anyone when keys are off): an `invoke` key calls functions, it does not read them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Function)]
pub struct FunctionInfo {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub language: Language,
    pub runtime: Runtime,
    /// The handler's source; omitted for `invoke` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub timeout_ms: u32,
    pub memory_mb: u32,
    /// Invocations of this function that may run at once; more wait in a queue.
    pub concurrency: u32,
    /// How many times a failed asynchronous call (`Prefer: respond-async`, schedules) is
    /// tried again, with exponential backoff, before it lands in the dead letters.
    pub max_retries: u32,
    /// Names of the function's environment variables, sorted. Their values are write-only
    /// (set with `env` on create or update) and are in no response.
    pub env_names: Vec<String>,
    /// An example event, used by the UI to build an input form.
    pub sample_input: Option<serde_json::Value>,
    /// The requirements.txt or package.json text; omitted for `invoke` keys, like the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<String>,
    /// The build of this version's dependencies (`status: none` without dependencies). Its
    /// logs are at `GET /api/v1/functions/{name}/build`.
    pub build: BuildSummary,
    /// The version calls run while this one builds or after its build failed; omitted when
    /// this version is the one that runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<u32>,
    /// Whether `/fn/{name}` calls it: `off`, `key` (an API key is needed) or `public`.
    #[serde(default)]
    pub http: HttpAccess,
    /// The function URL's path (`/fn/{name}`; any method, any subpath) when `http` is not `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A build without its logs and lock: what a function's view carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildSummary {
    pub status: BuildStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps_hash: Option<String>,
    /// `name version` of each installed package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

impl BuildSummary {
    pub fn of(build: Option<&Build>) -> BuildSummary {
        match build {
            None => BuildSummary {
                status: BuildStatus::None,
                version: None,
                deps_hash: None,
                packages: Vec::new(),
                error: None,
                started_at: None,
                finished_at: None,
                duration_ms: None,
                size_bytes: None,
            },
            Some(b) => BuildSummary {
                status: b.status,
                version: Some(b.version),
                deps_hash: Some(b.deps_hash.clone()),
                packages: b.packages.clone(),
                error: b.error.clone(),
                started_at: Some(b.started_at),
                finished_at: b.finished_at,
                duration_ms: b.duration_ms,
                size_bytes: b.size_bytes,
            },
        }
    }
}

impl FunctionInfo {
    /// What a caller sees of `f`; `with_code` for callers that may change it.
    pub fn of(f: &Function, with_code: bool) -> FunctionInfo {
        FunctionInfo {
            id: f.id,
            name: f.name.clone(),
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
            serving_version: f.serving.as_ref().map(|s| s.version),
            http: f.http,
            url: (f.http != HttpAccess::Off).then(|| function_url(&f.name)),
            version: f.version,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

/// What a user sends to create a function. Everything but name, language and code has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Lowercase letters, digits and '-', 1 to 63, not starting or ending with '-'.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    pub language: Language,
    #[serde(default = "default_runtime")]
    pub runtime: Runtime,
    /// The handler's source (at most 256 KiB); checked for syntax errors.
    #[schema(min_length = 1)]
    pub code: String,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    #[serde(default)]
    #[schema(minimum = 100, maximum = 300000)]
    pub timeout_ms: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 32, maximum = 2048)]
    pub memory_mb: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<u32>,
    /// Retries of a failed asynchronous call (default 2).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 5)]
    pub max_retries: Option<u32>,
    /// Environment variables. Write-only: responses give their names (`env_names`), never values.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub sample_input: Option<serde_json::Value>,
    /// A requirements.txt (Python) or package.json (JavaScript; its `dependencies` are used)
    /// as text, at most 64 KiB. Registry packages only. Built once into an image layer;
    /// calls wait for the build (409 `build_pending`).
    #[serde(default)]
    pub dependencies: Option<String>,
    /// Calls over HTTP at `/fn/{name}`: `off` (default), `key` or `public`.
    #[serde(default)]
    pub http: HttpAccess,
}

fn default_runtime() -> Runtime {
    Runtime::Docker
}

/// Retries of a failed asynchronous call when the function does not say (as Lambda's).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The most retries a function may ask for: an asynchronous call runs at most six times.
pub const MAX_RETRIES: u32 = 5;

fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

/// A partial update; absent fields keep their value. It also takes the read-only fields of a
/// function as `GET` returns it, so that a client can send back what it read with one field
/// changed: they are ignored, except `name`, which must be the function's (see
/// [`FunctionPatch::renames`]). Truly unknown fields are still refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionPatch {
    /// Read-only: if given, it must be the function's name (functions are not renamed).
    #[serde(default, skip_serializing)]
    #[schema(read_only)]
    pub name: Option<String>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<Uuid>)]
    pub id: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored (set variables with `env`).
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<Vec<String>>)]
    pub env_names: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<BuildSummary>)]
    pub build: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<u32>)]
    pub serving_version: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<String>)]
    pub url: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored (send `If-Match` with the `ETag` to update only an unchanged function).
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<u32>)]
    pub version: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<DateTime<Utc>>)]
    pub created_at: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<DateTime<Utc>>)]
    pub updated_at: Option<serde::de::IgnoredAny>,
    /// Read-only, ignored (what the list of functions adds to each).
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<crate::LastExecution>)]
    pub last_execution: Option<serde::de::IgnoredAny>,
    #[schema(max_length = 1024)]
    pub description: Option<String>,
    pub language: Option<Language>,
    pub runtime: Option<Runtime>,
    #[schema(min_length = 1)]
    pub code: Option<String>,
    #[schema(minimum = 100, maximum = 300000)]
    pub timeout_ms: Option<u32>,
    #[schema(minimum = 32, maximum = 2048)]
    pub memory_mb: Option<u32>,
    #[schema(minimum = 1, maximum = 64)]
    pub concurrency: Option<u32>,
    #[schema(minimum = 0, maximum = 5)]
    pub max_retries: Option<u32>,
    /// Changes to the environment variables, as a JSON merge patch: a string sets a variable,
    /// `null` removes it, a name not given keeps its value. So a client can keep the values
    /// without knowing them (they are write-only).
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// A new example event; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub sample_input: Option<Option<serde_json::Value>>,
    /// New dependencies text; `null` or `""` removes them. The version built meanwhile keeps
    /// serving until the new build is ready.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub dependencies: Option<Option<String>>,
    /// Calls over HTTP at `/fn/{name}`: `off`, `key` or `public`. Not a new version.
    pub http: Option<HttpAccess>,
}

/// A field that is present (even as `null`) is `Some`, so `null` can mean "remove".
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl FunctionPatch {
    /// When the patch names a function other than `name`: the refusal's message. A function
    /// is not renamed by an update; the name in the body is only checked.
    pub fn renames(&self, name: &str) -> Option<String> {
        self.name.as_deref().filter(|n| *n != name).map(|n| {
            format!("`{n}` is not this function's name (`{name}`); a function cannot be renamed")
        })
    }
}

impl Function {
    /// A strong HTTP entity tag for this state of the function: its version and a hash of
    /// everything a client can change, so it moves with every change (a description edit
    /// too) and is the same after a restart. Env values are not hashed (only names): the tag
    /// is returned to every key, and a hash of a secret is an oracle for guessing it. A change
    /// of value still moves the tag, because it makes a new version.
    pub fn etag(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // serde_json of this struct cannot fail (strings, numbers, maps, JSON values).
        let settings = serde_json::to_vec(&(
            &self.id,
            &self.description,
            self.language,
            self.runtime,
            &self.code,
            self.timeout_ms,
            self.memory_mb,
            self.concurrency,
            self.max_retries,
            self.env.keys().collect::<Vec<_>>(),
            &self.sample_input,
            &self.dependencies,
            self.build.as_ref().map(|b| b.status),
            self.http,
        ))
        .unwrap_or_default();
        h.update(&settings);
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("\"{}-{hex}\"", self.version)
    }

    /// The version that calls run now: this one when it has no build or its build is ready,
    /// else the version kept serving meanwhile, else why nothing can run.
    pub fn runnable(&self) -> Result<&Function, NotRunnable> {
        match &self.build {
            None => Ok(self),
            Some(b) if b.status == BuildStatus::Ready || b.status == BuildStatus::None => Ok(self),
            Some(b) => match &self.serving {
                Some(prev) => Ok(prev),
                None if b.status == BuildStatus::Failed => {
                    Err(NotRunnable::Failed(b.error.clone().unwrap_or_else(|| "the build failed".into())))
                }
                None => Err(NotRunnable::Pending),
            },
        }
    }

    /// This function as JSON with its environment's values: for the store only (the
    /// `serving` copy is kept in one column). [`Function`]'s own serialization leaves them out.
    pub fn to_stored_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let (Some(obj), Ok(env)) = (v.as_object_mut(), serde_json::to_value(&self.env)) {
            obj.insert("env".into(), env);
            if let (Some(serving), Some(s)) = (self.serving.as_ref(), obj.get_mut("serving")) {
                if let (Ok(inner), Some(o)) = (serde_json::from_str::<serde_json::Value>(&serving.to_stored_json()), s.as_object_mut()) {
                    if let Some(inner) = inner.as_object() {
                        *o = inner.clone();
                    }
                }
            }
        }
        v.to_string()
    }

    /// Reads what [`Function::to_stored_json`] wrote.
    pub fn from_stored_json(text: &str) -> Result<Function, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Builds a new function (version 1) from a validated spec.
    pub fn from_spec(spec: FunctionSpec, limits: &crate::Limits, now: DateTime<Utc>) -> Function {
        Function {
            id: Uuid::now_v7(),
            name: spec.name,
            description: spec.description,
            language: spec.language,
            runtime: spec.runtime,
            code: spec.code,
            timeout_ms: spec.timeout_ms.unwrap_or(limits.default_timeout_ms),
            memory_mb: spec.memory_mb.unwrap_or(limits.default_memory_mb),
            concurrency: spec.concurrency.unwrap_or(limits.default_concurrency),
            max_retries: spec.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            env: spec.env,
            sample_input: spec.sample_input,
            dependencies: spec.dependencies.filter(|d| !d.trim().is_empty()),
            build: None,
            serving: None,
            http: spec.http,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies a patch. Returns true when something that affects execution changed,
    /// in which case the version was bumped.
    pub fn apply(&mut self, patch: FunctionPatch, now: DateTime<Utc>) -> bool {
        let before = self.clone();
        if let Some(v) = patch.description {
            self.description = v;
        }
        if let Some(v) = patch.language {
            self.language = v;
        }
        if let Some(v) = patch.runtime {
            self.runtime = v;
        }
        if let Some(v) = patch.code {
            self.code = v;
        }
        if let Some(v) = patch.timeout_ms {
            self.timeout_ms = v;
        }
        if let Some(v) = patch.memory_mb {
            self.memory_mb = v;
        }
        if let Some(v) = patch.concurrency {
            self.concurrency = v;
        }
        if let Some(v) = patch.max_retries {
            self.max_retries = v;
        }
        for (name, value) in patch.env.into_iter().flatten() {
            match value {
                Some(v) => self.env.insert(name, v),
                None => self.env.remove(&name),
            };
        }
        if let Some(v) = patch.sample_input {
            self.sample_input = v;
        }
        if let Some(v) = patch.dependencies {
            self.dependencies = v.filter(|d| !d.trim().is_empty());
        }
        if let Some(v) = patch.http {
            self.http = v;
        }
        let runs_differently = self.language != before.language
            || self.runtime != before.runtime
            || self.code != before.code
            || self.timeout_ms != before.timeout_ms
            || self.memory_mb != before.memory_mb
            || self.env != before.env
            || self.dependencies != before.dependencies;
        if runs_differently {
            self.version += 1;
        }
        if *self != before {
            self.updated_at = now;
        }
        runs_differently
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FunctionSpec {
        serde_json::from_value(serde_json::json!({
            "name": "hello", "language": "python", "code": "def handler(e): return 1"
        }))
        .expect("valid spec")
    }

    #[test]
    fn defaults_apply() {
        let f = Function::from_spec(spec(), &crate::Limits::default(), Utc::now());
        assert_eq!(f.runtime, Runtime::Docker);
        assert_eq!(f.timeout_ms, 5000);
        assert_eq!(f.memory_mb, 128);
        assert_eq!(f.version, 1);
    }

    #[test]
    fn code_change_bumps_version_description_does_not() {
        let mut f = Function::from_spec(spec(), &crate::Limits::default(), Utc::now());
        let changed = f.apply(FunctionPatch { description: Some("x".into()), ..Default::default() }, Utc::now());
        assert!(!changed);
        assert_eq!(f.version, 1);
        let changed = f.apply(FunctionPatch { code: Some("def handler(e): return 2".into()), ..Default::default() }, Utc::now());
        assert!(changed);
        assert_eq!(f.version, 2);
    }

    #[test]
    fn env_patch_sets_removes_and_keeps_and_values_never_serialize() {
        let mut f = Function::from_spec(spec(), &crate::Limits::default(), Utc::now());
        f.env = BTreeMap::from([("KEEP".into(), "k-secret".into()), ("DROP".into(), "d-secret".into())]);
        let patch: FunctionPatch = serde_json::from_value(serde_json::json!({"env": {"DROP": null, "NEW": "n-secret"}}))
            .expect("patch");
        assert!(f.apply(patch, Utc::now()), "an env change makes a new version");
        assert_eq!(f.env, BTreeMap::from([("KEEP".into(), "k-secret".into()), ("NEW".into(), "n-secret".into())]));
        assert!(!f.apply(FunctionPatch { description: Some("d".into()), ..Default::default() }, Utc::now()));
        assert_eq!(f.env.len(), 2, "a patch without env keeps every variable");
        let shown = serde_json::to_string(&FunctionInfo::of(&f, true)).expect("json");
        let raw = serde_json::to_string(&f).expect("json");
        for text in [&shown, &raw] {
            assert!(!text.contains("secret"), "{text}");
        }
        assert!(shown.contains(r#""env_names":["KEEP","NEW"]"#), "{shown}");
        assert!(shown.contains(r#""code""#));
        assert!(!serde_json::to_string(&FunctionInfo::of(&f, false)).expect("json").contains(r#""code""#));
    }

    #[test]
    fn etag_moves_with_an_env_value_but_does_not_hash_it() {
        let mut f = Function::from_spec(spec(), &crate::Limits::default(), Utc::now());
        f.env.insert("K".into(), "one".into());
        let before = f.etag();
        let mut same_but_value = f.clone();
        same_but_value.env.insert("K".into(), "two".into());
        assert_eq!(same_but_value.etag(), before, "the value is not in the hash");
        let patch = FunctionPatch { env: Some(BTreeMap::from([("K".into(), Some("two".into()))])), ..Default::default() };
        assert!(f.apply(patch, Utc::now()));
        assert_ne!(f.etag(), before, "a new value is a new version, so a new tag");
    }

    #[test]
    fn http_setting_defaults_off_changes_no_version_and_shows_the_url() {
        let mut f = Function::from_spec(spec(), &crate::Limits::default(), Utc::now());
        assert_eq!(f.http, HttpAccess::Off);
        assert_eq!(FunctionInfo::of(&f, false).url, None);
        let tag = f.etag();
        assert!(!f.apply(FunctionPatch { http: Some(HttpAccess::Public), ..Default::default() }, Utc::now()));
        assert_eq!((f.version, f.http), (1, HttpAccess::Public));
        assert_ne!(f.etag(), tag, "the setting is part of the entity tag");
        assert_eq!(FunctionInfo::of(&f, false).url.as_deref(), Some("/fn/hello"));
        assert_eq!("KEY".parse::<HttpAccess>(), Ok(HttpAccess::Key));
        assert!("open".parse::<HttpAccess>().is_err());
        assert!(serde_json::from_value::<FunctionPatch>(serde_json::json!({"http": "open"})).is_err());
        let old: Function = serde_json::from_str(&f.to_stored_json().replace(r#","http":"public""#, "")).expect("old record");
        assert_eq!(old.http, HttpAccess::Off, "records stored before the setting existed are off");
    }

    #[test]
    fn parses_aliases() {
        assert_eq!("runsc".parse::<Runtime>(), Ok(Runtime::Gvisor));
        assert_eq!("JS".parse::<Language>(), Ok(Language::Javascript));
        assert!("ruby".parse::<Language>().is_err());
    }

    /// The bounds written in the OpenAPI schema attributes above are the default limits.
    #[test]
    fn documented_bounds_match_the_default_limits() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(FunctionSpec::schema()).expect("schema");
        let l = crate::Limits::default();
        let p = &schema["properties"];
        assert_eq!(p["timeout_ms"]["minimum"], l.min_timeout_ms);
        assert_eq!(p["timeout_ms"]["maximum"], l.max_timeout_ms);
        assert_eq!(p["memory_mb"]["minimum"], l.min_memory_mb);
        assert_eq!(p["memory_mb"]["maximum"], l.max_memory_mb);
        assert_eq!(p["concurrency"]["maximum"], l.max_concurrency);
        assert_eq!(p["description"]["maxLength"], l.max_description_chars);
    }
}
