//! Which store the binary opens: SQLite in the data dir (the default) or, for a cluster,
//! PostgreSQL named by a `postgres://` URL (`--store`, `FNBOX_STORE`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fnbox_core::{KeyStore, Store};
use fnbox_store_postgres::PostgresStore;
use fnbox_store_sqlite::{SqliteStore, SyncMode};

/// The opened store, once as each trait the server needs (the same object twice: trait
/// upcasting needs a newer Rust than the workspace's minimum).
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeyStore>,
    /// For logs and messages: the data dir, or the URL without its password.
    pub description: String,
}

/// Opens the store `spec` names: absent or `sqlite` is SQLite in `data_dir` (with `sync`);
/// `postgres://…` or `postgresql://…` is PostgreSQL, with this process as cluster node `node`.
pub async fn open_store(spec: Option<&str>, data_dir: &Path, sync: SyncMode, node: &str) -> Result<OpenedStore> {
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("sqlite") => {
            let store = SqliteStore::open(data_dir, sync).with_context(|| format!("opening the store in {}", data_dir.display()))?;
            let store = Arc::new(store);
            Ok(OpenedStore { store: store.clone(), keys: store, description: format!("sqlite in {}", data_dir.display()) })
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let shown = redact(url);
            let store = PostgresStore::connect(url, node).await.with_context(|| format!("connecting to {shown}"))?;
            let store = Arc::new(store);
            Ok(OpenedStore { store: store.clone(), keys: store, description: shown })
        }
        Some(other) => bail!("--store: `{}` is neither `sqlite` nor a postgres:// URL", redact(other)),
    }
}

/// The URL with any password replaced, so it can be logged.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match tail {
        Some(t) => format!("{scheme}://{authority}/{t}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("postgres://u:secret@db:5432/fnbox"), "postgres://u:***@db:5432/fnbox");
        assert_eq!(redact("postgres://u@db/fnbox"), "postgres://u@db/fnbox");
        assert_eq!(redact("postgresql://db"), "postgresql://db");
    }
}
