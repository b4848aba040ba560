//! Which failures mean "the server cannot be reached now" (503, retry later) and which are
//! real failures of a statement.

use fnbox_core::StoreError;
use tokio_postgres::error::SqlState;

/// A failure of the pool or of a statement, mapped onto the store's errors.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        // Class 08 (connection exception) and the shutdown codes of class 57.
        let unreachable = code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
        return if unreachable {
            StoreError::Unavailable(format!("PostgreSQL: {e}"))
        } else {
            StoreError::Backend(format!("PostgreSQL: {}", e.as_db_error().map_or_else(|| e.to_string(), ToString::to_string)))
        };
    }
    // No SQL state: the connection itself failed (refused, reset, closed, timed out).
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let text = e.to_string();
    if e.is_closed() || io || text.starts_with("error connecting") || text.contains("timeout") {
        StoreError::Unavailable(format!("cannot reach PostgreSQL: {}", full(&e)))
    } else {
        StoreError::Backend(format!("PostgreSQL: {}", full(&e)))
    }
}

pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Timeout(what) => {
            StoreError::Unavailable(format!("cannot reach PostgreSQL: no connection within the pool's timeout ({what:?})"))
        }
        PoolError::Backend(e) => match db(e) {
            // Opening a connection failed in a way that is not about reaching the server (bad
            // password, unknown database): still nothing this process can do but wait.
            StoreError::Backend(m) => StoreError::Unavailable(m),
            other => other,
        },
        other => StoreError::Backend(format!("PostgreSQL pool: {other}")),
    }
}

pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The error and its causes on one line ("error connecting to server: Connection refused").
fn full(e: &tokio_postgres::Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A row that does not read back as what was written.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable {what}: {e}"))
}
