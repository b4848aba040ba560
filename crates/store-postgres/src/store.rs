//! The store: a pool of connections, one writer task for execution records, and a watch on
//! whether the server can be reached. The SQL of each job lives in its own module.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use fnbox_core::metrics::{MetricsFilter, Sample};
use fnbox_core::{ErrorInfo, Execution, ExecutionFilter, Failure, Function, Store, StoreError};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::writer::{self, WriteCmd};
use crate::{comparisons, error, executions, functions, metrics, migrate};

/// How long a call waits for a connection (or for one to be opened) before answering
/// `Unavailable`: short, so a PostgreSQL that is down makes a 503 at once rather than a hang.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per store (per node).
const POOL_SIZE: usize = 16;
/// How often the store retries the server while it is down, so [`Store::available`] turns
/// back on even when nothing else calls the store meanwhile.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pub(crate) pool: Pool,
    /// This node's name: recorded on its executions and its in-flight journal entries.
    pub(crate) node: Arc<str>,
    writer: mpsc::UnboundedSender<WriteCmd>,
    pub(crate) health: Arc<Health>,
}

/// Whether the last attempt to reach the server failed (and why), with no later success.
#[derive(Default)]
pub(crate) struct Health {
    down: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    /// Notes what a call's outcome says about the server, and passes it on.
    pub(crate) fn observe<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Err(StoreError::Unavailable(why)) => {
                if !self.down.swap(true, Ordering::SeqCst) {
                    tracing::warn!(reason = %why, "PostgreSQL unreachable");
                }
                *self.reason.lock() = why.clone();
            }
            // Any answer from the server, even an error, means it is reachable.
            _ => {
                if self.down.swap(false, Ordering::SeqCst) {
                    tracing::info!("PostgreSQL reachable again");
                }
            }
        }
        r
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(self.reason.lock().clone()))
        } else {
            Ok(())
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`, no TLS) as node `node`, and
    /// applies pending migrations (several nodes starting at once take turns).
    pub async fn connect(url: &str, node: &str) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        config.connect_timeout(POOL_TIMEOUT);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name(format!("fnbox {node}"));
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the PostgreSQL pool: {e}")))?;
        let applied = migrate::run(&pool).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied PostgreSQL schema migrations");
        }
        let health = Arc::new(Health::default());
        let node: Arc<str> = Arc::from(node);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(pool.clone(), rx, node.clone(), health.clone()));
        tokio::spawn(probe(pool.clone(), Arc::downgrade(&health)));
        Ok(PostgresStore { pool, node, writer: tx, health })
    }

    /// Runs a call, noting whether it reached the server.
    pub(crate) async fn track<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        self.health.observe(call.await)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(error::pool)
    }

    /// The execution as this node records it: with its node's name unless it names one.
    fn on_this_node(&self, e: &Execution) -> Execution {
        let mut e = e.clone();
        if e.node.is_none() {
            e.node = Some(self.node.to_string());
        }
        e
    }
}

/// While the server is marked down, tries it every [`PROBE_INTERVAL`]; ends with the store.
async fn probe(pool: Pool, health: Weak<Health>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(health) = health.upgrade() else { return };
        if health.check().is_ok() {
            continue;
        }
        let attempt = async {
            let client = pool.get().await.map_err(error::pool)?;
            client.simple_query("SELECT 1").await.map_err(error::db).map(|_| ())
        };
        let outcome = tokio::time::timeout(POOL_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("PostgreSQL did not answer a probe in time".into())));
        let _ = health.observe(outcome);
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store writer has stopped".into())
}

#[async_trait]
impl Store for PostgresStore {
    fn available(&self) -> Result<(), StoreError> {
        self.health.check()
    }

    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        self.track(functions::insert(self, f)).await
    }

    async fn update_function(&self, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.track(functions::update(self, f, expected_updated_at)).await
    }

    async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        self.track(functions::delete(self, name)).await
    }

    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        self.track(functions::get_one(self, name)).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.track(functions::list(self)).await
    }

    fn execution_started(&self, e: &Execution) {
        let _ = self.writer.send(WriteCmd::Started(Box::new(self.on_this_node(e))));
    }

    async fn record_execution(&self, e: Execution) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(WriteCmd::Record(Box::new(self.on_this_node(&e)), tx)).map_err(|_| closed())?;
        // The writer notes the server's health itself.
        rx.await.map_err(|_| closed())?
    }

    async fn recover_interrupted(&self, error: ErrorInfo) -> Result<u64, StoreError> {
        self.track(executions::recover_interrupted(self, error)).await
    }

    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        self.track(executions::get_one(self, id)).await
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
        self.track(executions::list(self, filter)).await
    }

    async fn samples(&self, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError> {
        self.track(metrics::samples(self, filter)).await
    }

    async fn failures(&self, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError> {
        self.track(metrics::failures(self, filter)).await
    }

    async fn prune_executions(&self, before: Option<DateTime<Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError> {
        self.track(executions::prune(self, before, keep_max)).await
    }

    async fn insert_comparison(&self, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError> {
        self.track(comparisons::insert(self, id, function, body)).await
    }

    async fn list_comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, StoreError> {
        self.track(comparisons::list(self, limit)).await
    }

    async fn get_comparison(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
        self.track(comparisons::get_one(self, id)).await
    }
}
