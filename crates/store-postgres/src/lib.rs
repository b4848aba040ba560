//! PostgreSQL store for fnbox: several nodes share one database (cluster mode).
//!
//! Over tokio-postgres with a deadpool pool. Execution records go through one writer task per
//! store that commits them in batches, like the SQLite writer; reads use the pool directly.
//! While the server cannot be reached every call fails fast with
//! [`fnbox_core::StoreError::Unavailable`], and the pool reconnects by itself once it is back.

mod comparisons;
mod error;
mod executions;
mod functions;
mod keys;
mod metrics;
mod migrate;
mod queue;
mod rows;
mod schedules;
mod store;
mod versions;
mod writer;

pub use store::PostgresStore;
