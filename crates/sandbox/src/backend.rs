//! What the engine needs from a sandbox technology. Docker is the first backend; a
//! Kubernetes one would implement the same trait.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fnbox_core::{Language, Runtime};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The backend (dockerd) cannot be reached or refused the request.
    #[error("sandbox backend unavailable: {0}")]
    Unavailable(String),
    /// The runtime is not installed or registered (e.g. runsc missing from dockerd).
    #[error("runtime `{0}` is not available: {1}")]
    RuntimeMissing(Runtime, String),
    /// The sandbox started but its bootstrap did not behave.
    #[error("sandbox failed to start: {0}")]
    Start(String),
    #[error("sandbox protocol error: {0}")]
    Protocol(String),
    /// The sandbox budget (count or memory) is spent and nothing idle can make room.
    #[error("no room for another sandbox: {0}")]
    Capacity(String),
}

/// A backend's own identifier for one sandbox (a container id for Docker).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SandboxId(pub String);

impl std::fmt::Display for SandboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0[..self.0.len().min(12)])
    }
}

/// Sandboxes with the same key are interchangeable until they load code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SandboxKey {
    pub language: Language,
    pub runtime: Runtime,
    pub memory_mb: u32,
    /// The dependency layer the sandbox's image carries (`None`: the plain runtime image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deps: Option<DepsImage>,
}

impl SandboxKey {
    /// The sandbox a function version runs in: its language, runtime, memory size and, when
    /// its build is ready, its dependency image.
    pub fn for_function(f: &fnbox_core::Function) -> SandboxKey {
        let deps = f.build.as_ref().and_then(|b| b.image.as_deref()).and_then(DepsImage::parse);
        SandboxKey { language: f.language, runtime: f.runtime, memory_mb: f.memory_mb, deps }
    }

    /// The key without its memory size: sandboxes that differ only in it are interchangeable
    /// once the limit is changed ([`SandboxBackend::set_memory_limit`]).
    pub fn any_size(self) -> SandboxKey {
        SandboxKey { memory_mb: 0, ..self }
    }

    /// The same sandbox without dependencies (what compiling code needs).
    pub fn plain(self) -> SandboxKey {
        SandboxKey { deps: None, ..self }
    }
}

/// A dependency image's content address ([`fnbox_core::Build::image`]): 12 bytes, so keys
/// stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DepsImage(pub [u8; 12]);

impl DepsImage {
    pub fn parse(hex: &str) -> Option<DepsImage> {
        if hex.len() != 24 {
            return None;
        }
        let mut out = [0u8; 12];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(DepsImage(out))
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The image tag a builder gives this layer and a backend starts sandboxes from. Each
    /// fnbox instance (data dir) has its own tags, so one that removes its unused images never
    /// removes another's on the same dockerd (identical layers are still stored once).
    pub fn image_tag(&self, language: Language, instance: &str) -> String {
        let lang = match language {
            Language::Python => "python",
            Language::Javascript => "node",
        };
        format!("fnbox-deps-{lang}:{}-{instance}", self.hex())
    }
}

impl std::fmt::Debug for DepsImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for DepsImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

/// Everything a backend needs to create one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub key: SandboxKey,
    /// Extra labels, e.g. which function a sandbox serves (for operators; never trusted).
    pub labels: BTreeMap<String, String>,
}

/// How a sandbox ended, as the backend saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// Lines the bootstrap wrote on its protocol channel, in order. `Err` ends the stream.
pub type LineReceiver = mpsc::Receiver<Result<Bytes, String>>;

/// The two ends of a started sandbox's protocol channel, plus the tail of its stderr.
pub struct Channel {
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub lines: LineReceiver,
    pub stderr_tail: Arc<Mutex<Vec<u8>>>,
}

/// Whether each runtime can run sandboxes right now.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RuntimeHealth {
    pub backend_reachable: bool,
    pub backend_version: Option<String>,
    /// runtime → None when usable, Some(reason) when not.
    pub runtimes: BTreeMap<Runtime, Option<String>>,
    /// How each runtime's sandboxes talk to fnbox (`socket` or `attach`).
    pub channels: BTreeMap<Runtime, crate::channel::ChannelKind>,
}

impl RuntimeHealth {
    pub fn available(&self, runtime: Runtime) -> Result<(), SandboxError> {
        if !self.backend_reachable {
            return Err(SandboxError::Unavailable("the Docker daemon does not answer".into()));
        }
        match self.runtimes.get(&runtime) {
            Some(None) => Ok(()),
            Some(Some(why)) => Err(SandboxError::RuntimeMissing(runtime, why.clone())),
            None => Err(SandboxError::RuntimeMissing(runtime, "unknown".into())),
        }
    }
}

#[async_trait]
pub trait SandboxBackend: Send + Sync + 'static {
    /// Creates a sandbox (not yet running) with fnbox's security defaults.
    async fn create(&self, spec: &SandboxSpec) -> Result<SandboxId, SandboxError>;
    /// Starts it and returns its protocol channel (attached before start, so nothing is missed).
    async fn start(&self, id: &SandboxId) -> Result<Channel, SandboxError>;
    /// Kills and removes it. Idempotent.
    async fn stop(&self, id: &SandboxId) -> Result<(), SandboxError>;
    /// How it ended (after its channel closed).
    async fn exit_info(&self, id: &SandboxId) -> Result<ExitInfo, SandboxError>;
    /// Where to read its peak memory cheaply, if the host exposes it.
    fn memory_probe(&self, id: &SandboxId) -> Option<MemoryProbe>;
    /// Where the host can count the function's tasks (threads) itself, if it can (runc: yes;
    /// gVisor: no, its cgroup holds the sandbox kernel). Used to refuse reusing a sandbox
    /// that still runs something after a call, whatever the bootstrap claims.
    fn task_probe(&self, _id: &SandboxId, _key: &SandboxKey) -> Option<TaskProbe> {
        None
    }
    /// Where the host reads the CPU time a sandbox used (both runtimes), to catch work left
    /// running in an idle sandbox.
    fn cpu_probe(&self, _id: &SandboxId) -> Option<CpuProbe> {
        None
    }
    /// Changes a running sandbox's memory limit, enforced by the host from then on. Lets a
    /// pre-started sandbox of one size serve a function of another (it holds no code yet).
    async fn set_memory_limit(&self, id: &SandboxId, memory_mb: u32) -> Result<(), SandboxError>;
    /// Current memory usage reported by the backend (slower than a probe).
    async fn memory_usage(&self, id: &SandboxId) -> Result<Option<u64>, SandboxError>;
    /// Removes every sandbox this fnbox owns (at start and at shutdown).
    async fn remove_all(&self) -> Result<usize, SandboxError>;
    async fn health(&self) -> RuntimeHealth;
}

pub use crate::cgroup::{CpuProbe, MemoryProbe, TaskProbe};
