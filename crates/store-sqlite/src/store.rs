//! The store itself: one writer thread (see [`crate::writer`]) and a small pool of read-only
//! connections used from `spawn_blocking`. The [`Store`] methods are thin: the SQL of each
//! job lives in its own module.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fnbox_core::metrics::{MetricsFilter, Sample};
use fnbox_core::{
    DeadLetter, Enqueued, ErrorInfo, Execution, ExecutionFilter, Failure, Fired, Function, QueueItem, Schedule, Store, StoreError,
    TestEvent, TestEventSaved, VersionSummary,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::writer::{writer_loop, Job, WriteCmd};
use crate::{comparisons, executions, functions, metrics, queue, schedules, versions};

/// How hard SQLite pushes a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// WAL + synchronous=NORMAL: a commit survives a crash of fnbox (kill -9); an OS crash
    /// or power cut may lose the last commits. The default, as in most embedded setups.
    #[default]
    Normal,
    /// synchronous=FULL: every commit is fsynced before it is acknowledged.
    Full,
}

pub struct SqliteStore {
    pub(crate) writer: std_mpsc::Sender<WriteCmd>,
    readers: Arc<ReaderPool>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, StoreError> {
        let conn = match self.idle.lock().pop() {
            Some(c) => c,
            None => open_reader(&self.path).map_err(backend)?,
        };
        let out = f(&conn).map_err(backend);
        let mut idle = self.idle.lock();
        if idle.len() < 8 {
            idle.push(conn);
        }
        out
    }
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `fnbox.db` in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path, sync: SyncMode) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("fnbox.db");
        let mut conn = Connection::open(&path).map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        let applied = crate::migrate::run(&mut conn).map_err(backend)?;
        if !applied.is_empty() {
            tracing::info!(?applied, path = %path.display(), "applied schema migrations");
        }
        let (tx, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("fnbox-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start writer thread: {e}")))?;
        Ok(SqliteStore { writer: tx, readers: Arc::new(ReaderPool { path, idle: Mutex::new(Vec::new()) }) })
    }


    /// Runs `f` on the writer thread, after every record queued before it is committed.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.writer.send(WriteCmd::Job(job)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }


    pub(crate) async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

pub(crate) fn closed() -> StoreError {
    StoreError::Backend("the store writer has stopped".into())
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        functions::insert(self, f).await
    }

    async fn update_function(&self, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
        functions::update(self, f, expected_updated_at).await
    }

    async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        functions::delete(self, name).await
    }

    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        functions::get(self, name).await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        functions::list(self).await
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
        versions::list(self, name).await
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<Function>, StoreError> {
        versions::get(self, name, version).await
    }

    async fn list_test_events(&self, name: &str) -> Result<Vec<TestEvent>, StoreError> {
        versions::list_events(self, name).await
    }

    async fn put_test_event(&self, name: &str, event: &TestEvent, max: u32) -> Result<TestEventSaved, StoreError> {
        versions::put_event(self, name, event, max).await
    }

    async fn delete_test_event(&self, name: &str, event_name: &str) -> Result<bool, StoreError> {
        versions::delete_event(self, name, event_name).await
    }

    fn execution_started(&self, e: &Execution) {
        let _ = self.writer.send(WriteCmd::Started(Box::new(e.clone())));
    }

    async fn record_execution(&self, e: Execution) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(WriteCmd::Record(Box::new(e), tx)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn recover_interrupted(&self, error: ErrorInfo) -> Result<u64, StoreError> {
        executions::recover_interrupted(self, error).await
    }

    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        executions::get(self, id).await
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
        executions::list(self, filter).await
    }

    async fn last_executions(&self, functions: &[String]) -> Result<std::collections::HashMap<String, fnbox_core::LastExecution>, StoreError> {
        executions::last(self, functions).await
    }

    async fn samples(&self, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError> {
        metrics::samples(self, filter).await
    }

    async fn failures(&self, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError> {
        metrics::failures(self, filter).await
    }

    async fn prune_executions(&self, before: Option<DateTime<Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError> {
        executions::prune(self, before, keep_max).await
    }

    async fn enqueue(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
        queue::enqueue(self, item, queued, max_depth).await
    }

    async fn claim_queued(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueueItem>, StoreError> {
        queue::claim(self, owner, now, lease_until, limit).await
    }

    async fn requeue(&self, item: &QueueItem, queued: Option<&Execution>) -> Result<(), StoreError> {
        queue::requeue(self, item, queued).await
    }

    async fn complete_queued(&self, id: Uuid) -> Result<(), StoreError> {
        queue::complete(self, id).await
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        queue::dead_letter(self, letter).await
    }

    async fn release_leases(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        queue::release_leases(self, owner).await
    }

    async fn release_leases_except(&self, live: &[String]) -> Result<u64, StoreError> {
        queue::release_leases_except(self, live).await
    }

    async fn queue_depth(&self) -> Result<u64, StoreError> {
        queue::queue_depth(self).await
    }

    async fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        queue::list_letters(self, limit).await
    }

    async fn count_dead_letters(&self) -> Result<u64, StoreError> {
        queue::count_letters(self).await
    }

    async fn get_dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        queue::get_letter(self, id).await
    }

    async fn delete_dead_letter(&self, id: Uuid) -> Result<bool, StoreError> {
        queue::delete_letter(self, id).await
    }

    async fn retry_dead_letter(&self, item: &QueueItem, queued: &Execution, max_depth: u64) -> Result<Enqueued, StoreError> {
        queue::retry_letter(self, item, queued, max_depth).await
    }

    async fn insert_schedule(&self, s: &Schedule) -> Result<(), StoreError> {
        schedules::insert(self, s).await
    }

    async fn list_schedules(&self, function: Option<&str>) -> Result<Vec<Schedule>, StoreError> {
        schedules::list(self, function).await
    }

    async fn get_schedule(&self, id: Uuid) -> Result<Option<Schedule>, StoreError> {
        schedules::get(self, id).await
    }

    async fn update_schedule(&self, s: &Schedule) -> Result<bool, StoreError> {
        schedules::update(self, s).await
    }

    async fn delete_schedule(&self, id: Uuid) -> Result<bool, StoreError> {
        schedules::delete(self, id).await
    }

    async fn delete_schedules_of(&self, function: &str) -> Result<u64, StoreError> {
        schedules::delete_of(self, function).await
    }

    async fn due_schedules(&self, now: chrono::DateTime<chrono::Utc>, limit: u32) -> Result<Vec<Schedule>, StoreError> {
        schedules::due(self, now, limit).await
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
        schedules::fire(self, id, tick, next, item, queued, max_depth).await
    }

    async fn insert_comparison(&self, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError> {
        comparisons::insert(self, id, function, body).await
    }

    async fn list_comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, StoreError> {
        comparisons::list(self, limit).await
    }

    async fn get_comparison(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
        comparisons::get(self, id).await
    }
}
