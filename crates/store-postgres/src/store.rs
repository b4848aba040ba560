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
use fnbox_core::{
    DeadLetter, Enqueued, ErrorInfo, Execution, ExecutionFilter, Failure, Fired, Function, QueueItem, Schedule, Store, StoreError,
    TestEvent, TestEventSaved, VersionSummary,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::writer::{self, WriteCmd};
use crate::{comparisons, error, executions, functions, metrics, migrate, queue, schedules, versions};

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
    pub(crate) fn on_this_node(&self, e: &Execution) -> Execution {
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

    async fn list_versions(&self, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
        self.track(versions::list(self, name)).await
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<Function>, StoreError> {
        self.track(versions::get_one(self, name, version)).await
    }

    async fn list_test_events(&self, name: &str) -> Result<Vec<TestEvent>, StoreError> {
        self.track(versions::list_events(self, name)).await
    }

    async fn put_test_event(&self, name: &str, event: &TestEvent, max: u32) -> Result<TestEventSaved, StoreError> {
        self.track(versions::put_event(self, name, event, max)).await
    }

    async fn delete_test_event(&self, name: &str, event_name: &str) -> Result<bool, StoreError> {
        self.track(versions::delete_event(self, name, event_name)).await
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

    async fn last_executions(&self, functions: &[String]) -> Result<std::collections::HashMap<String, fnbox_core::LastExecution>, StoreError> {
        self.track(executions::last(self, functions)).await
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

    async fn enqueue(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
        self.track(queue::enqueue(self, item, queued, max_depth)).await
    }

    async fn claim_queued(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueueItem>, StoreError> {
        self.track(queue::claim(self, owner, now, lease_until, limit)).await
    }

    async fn requeue(&self, item: &QueueItem, queued: Option<&Execution>) -> Result<(), StoreError> {
        self.track(queue::requeue(self, item, queued)).await
    }

    async fn complete_queued(&self, id: Uuid) -> Result<(), StoreError> {
        self.track(queue::complete(self, id)).await
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        self.track(queue::dead_letter(self, letter)).await
    }

    async fn release_leases(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        self.track(queue::release_leases(self, owner)).await
    }

    async fn release_leases_except(&self, live: &[String]) -> Result<u64, StoreError> {
        self.track(queue::release_leases_except(self, live)).await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        self.track(queue::queue_depth(self)).await
    }

    async fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.track(queue::list_letters(self, limit)).await
    }

    async fn count_dead_letters(&self) -> Result<u64, StoreError> {
        self.track(queue::count_letters(self)).await
    }

    async fn get_dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        self.track(queue::get_letter(self, id)).await
    }

    async fn delete_dead_letter(&self, id: Uuid) -> Result<bool, StoreError> {
        self.track(queue::delete_letter(self, id)).await
    }

    async fn retry_dead_letter(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
        self.track(queue::retry_letter(self, item, queued, max_depth)).await
    }

    async fn insert_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        self.track(schedules::insert(self, s)).await
    }

    async fn list_schedules(&self, function: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        self.track(schedules::list(self, function)).await
    }

    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        self.track(schedules::find(self, id)).await
    }

    async fn update_schedule(&self, s: &Schedule) -> Result<bool, StoreError> {
        self.track(schedules::update(self, s)).await
    }

    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError> {
        self.track(schedules::delete(self, id)).await
    }

    async fn delete_schedules_of(&self, function: &str) -> Result<u64, StoreError> {
        self.track(schedules::delete_of(self, function)).await
    }

    async fn due_schedules(&self, now: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        self.track(schedules::due(self, now, limit)).await
    }

    async fn fire_schedule(
        &self,
        id: Uuid,
        tick: chrono::DateTime<chrono::Utc>,
        next: Option<chrono::DateTime<chrono::Utc>>,
        item: &QueueItem,
        queued: &Execution,
        max_depth: u64,
    ) -> Result<Fired, StoreError> {
        self.track(schedules::fire(self, id, tick, next, item, queued, max_depth)).await
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
