//! The sandbox engine: where functions actually run.
//!
//! * [`backend`] — the `SandboxBackend` trait (create, start, channel, stop, stats) that the
//!   rest of fnbox sees; [`docker`] implements it on the Docker Engine API for runc and runsc.
//! * [`sandbox`] — a started sandbox and the framed protocol spoken with its bootstrap.
//! * [`fake`] — an in-process backend speaking the bootstrap protocol, for tests.
//! * [`pool`] — warm pools: sandboxes kept alive per function version, plus pre-started
//!   generic sandboxes per (language, runtime, memory) waiting for code.

pub mod backend;
mod cgroup;
pub mod channel;
pub mod docker;
pub mod fake;
mod logs;
pub mod pool;
pub mod protocol;
pub mod sandbox;

pub use backend::{DepsImage, ExitInfo, RuntimeHealth, SandboxBackend, SandboxError, SandboxId, SandboxKey, SandboxSpec};
pub use channel::ChannelKind;
pub use docker::{ChannelPreference, DockerBackend, DockerConfig};
pub use fake::FakeBackend;
pub use pool::{Lease, PoolConfig, PoolError, PoolStats, Pools, Room, WarmVersion};
pub use sandbox::{near_memory_limit, InvokeOutcome, LoadFailure, Sandbox};
