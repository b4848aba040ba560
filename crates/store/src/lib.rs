//! Storage backends for fnbox. The SQLite store is the embedded default.

mod migrate;
mod sqlite;

pub use sqlite::{SqliteStore, SyncMode};
