//! SQLite store for fnbox, the embedded default: one writer thread that commits execution
//! records in batches (WAL), and a small pool of reader connections.
//!
//! Hand-written over rusqlite rather than sqlx: the single-writer batching is the whole
//! point here, and it is simplest with a plain connection owned by one thread.

mod comparisons;
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

pub use store::{SqliteStore, SyncMode};

#[cfg(test)]
mod tests;
