//! The engine: function lifecycle and invocation. It ties the store to the sandbox pools
//! and turns whatever a sandbox did into an execution record. It knows nothing of HTTP.

mod builds;
mod cluster;
mod engine;
mod error;
mod insights;
mod queue;
mod schedule;
mod versions;
pub mod templates;

pub use engine::{Engine, EngineConfig};
pub use error::EngineError;
pub use fnbox_builder::{Builder, BuilderConfig};
pub use fnbox_cluster::LIVE_WINDOW;
pub use insights::{Comparison, ComparisonSide, ErrorGroup};
pub use queue::{Accepted, QueueConfig, QueueStats};
pub use schedule::{ScheduleChange, MAX_SCHEDULES_PER_FUNCTION};
pub use fnbox_sandbox::{PoolStats, RuntimeHealth};
