//! SQLite store: one writer thread that commits execution records in batches (WAL),
//! and a small pool of reader connections used from `spawn_blocking`.
//!
//! Hand-written over rusqlite rather than sqlx: the single-writer batching is the whole
//! point here, and it is simplest with a plain connection owned by one thread.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fnbox_core::metrics::{MetricsFilter, Sample};
use fnbox_core::{
    ApiKey, ErrorInfo, Execution, ExecutionFilter, Failure, Function, KeyStore, RawJson, Store, StoreError, StoredKey,
    TriggerFilter,
};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;
use uuid::Uuid;

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

/// Most records one write transaction carries; enough to amortise a commit under load
/// without holding callers back.
const MAX_BATCH: usize = 512;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long a started execution stays only in memory before it is journalled as in flight.
/// Most calls finish well within it, so the hot path costs no extra write; a call cut short
/// by a crash inside it was never answered, so nothing acknowledged is lost.
const INFLIGHT_GRACE: Duration = Duration::from_millis(100);

enum WriteCmd {
    Started(Box<Execution>),
    Record(Box<Execution>, oneshot::Sender<Result<(), StoreError>>),
    Job(Job),
}

type Batch = Vec<(Box<Execution>, oneshot::Sender<Result<(), StoreError>>)>;

/// Started executions the writer knows about: not yet journalled (with their deadline), or
/// journalled in `inflight_executions`.
#[derive(Default)]
struct Inflight {
    pending: HashMap<Uuid, (Instant, Box<Execution>)>,
    journalled: HashSet<Uuid>,
}

pub struct SqliteStore {
    writer: std_mpsc::Sender<WriteCmd>,
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

fn backend(e: rusqlite::Error) -> StoreError {
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

    async fn write<R: Send + 'static>(
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

    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

fn closed() -> StoreError {
    StoreError::Backend("the store writer has stopped".into())
}

fn writer_loop(mut conn: Connection, rx: std_mpsc::Receiver<WriteCmd>) {
    let mut batch: Batch = Vec::new();
    let mut inflight = Inflight::default();
    loop {
        // Sleep until a command arrives or the oldest started execution is due for the journal.
        let first = match inflight.pending.values().map(|(due, _)| *due).min() {
            None => match rx.recv() {
                Ok(cmd) => Some(cmd),
                Err(_) => break,
            },
            Some(due) => match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(cmd) => Some(cmd),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut next = first;
        while let Some(cmd) = next.take() {
            match cmd {
                WriteCmd::Started(e) => {
                    inflight.pending.insert(e.id, (Instant::now() + INFLIGHT_GRACE, e));
                }
                WriteCmd::Record(e, ack) => batch.push((e, ack)),
                WriteCmd::Job(job) => {
                    flush(&mut conn, &mut batch, &mut inflight);
                    job(&mut conn);
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut conn, &mut batch, &mut inflight);
    }
    flush(&mut conn, &mut batch, &mut inflight);
}

fn journal(conn: &Connection, e: &Execution) -> rusqlite::Result<usize> {
    let body = serde_json::to_string(e).map_err(|err| parse_err(0, err.to_string()))?;
    conn.prepare_cached("INSERT OR REPLACE INTO inflight_executions (id, body, started_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![e.id.to_string(), body, e.started_at.timestamp_millis()])
}

fn unjournal(conn: &Connection, id: Uuid) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM inflight_executions WHERE id = ?1")?.execute([id.to_string()])
}

/// Commits every pending record in one transaction, then acknowledges each; in the same
/// transaction, journals started executions past their grace and drops the journal entries of
/// finished ones. If the batch fails as a whole, each record is retried alone so one bad
/// record cannot sink the others.
fn flush(conn: &mut Connection, batch: &mut Batch, inflight: &mut Inflight) {
    let mut finished_journalled = Vec::new();
    for (e, _) in batch.iter() {
        if inflight.pending.remove(&e.id).is_none() && inflight.journalled.remove(&e.id) {
            finished_journalled.push(e.id);
        }
    }
    let now = Instant::now();
    let due: Vec<Uuid> = inflight.pending.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
    let to_journal: Vec<Box<Execution>> = due.iter().filter_map(|id| inflight.pending.remove(id).map(|(_, e)| e)).collect();
    if batch.is_empty() && to_journal.is_empty() && finished_journalled.is_empty() {
        return;
    }
    let journalled = (|| {
        let tx = conn.transaction()?;
        for e in &to_journal {
            journal(&tx, e)?;
        }
        for id in &finished_journalled {
            unjournal(&tx, *id)?;
        }
        tx.commit()
    })();
    match journalled {
        Ok(()) => inflight.journalled.extend(to_journal.iter().map(|e| e.id)),
        Err(err) => tracing::warn!(%err, "could not journal in-flight executions"),
    }
    if batch.is_empty() {
        return;
    }
    let result = (|| {
        let tx = conn.transaction()?;
        for (e, _) in batch.iter() {
            insert_execution(&tx, e)?;
        }
        tx.commit()
    })();
    match result {
        Ok(()) => {
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Ok(()));
            }
        }
        Err(err) => {
            tracing::warn!(%err, size = batch.len(), "batched commit failed; retrying records one by one");
            for (e, ack) in batch.drain(..) {
                let _ = ack.send(insert_execution(conn, &e).map(|_| ()).map_err(backend));
            }
        }
    }
}

fn insert_execution(conn: &Connection, e: &Execution) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO executions (id, function_name, version, runtime, language, input, output,
            output_truncated, status, error_type, error, logs, started_at, started_ms, duration_ms,
            exec_ms, memory_bytes, cold_start, \"trigger\", node)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    stmt.execute(params![
        e.id.to_string(),
        e.function,
        e.version,
        e.runtime.as_str(),
        e.language.as_str(),
        e.input,
        e.output.as_ref().map(|v| v.get()),
        e.output_truncated,
        e.status.as_str(),
        e.error.as_ref().map(|x| x.kind.clone()),
        e.error.as_ref().and_then(|x| serde_json::to_string(x).ok()),
        e.logs,
        e.started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        e.started_at.timestamp_millis(),
        e.duration_ms,
        e.exec_ms,
        e.memory_bytes.map(|m| m as i64),
        e.cold_start,
        e.trigger.as_str(),
        e.node,
    ])
}

const FUNCTION_COLUMNS: &str = "id, name, description, language, runtime, code, timeout_ms, memory_mb, \
     concurrency, env, sample_input, version, created_at, updated_at";

fn parse_err(col: usize, msg: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into().into())
}

fn parse_time(col: usize, s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| parse_err(col, e.to_string()))
}

fn row_to_function(r: &Row<'_>) -> rusqlite::Result<Function> {
    let id: String = r.get(0)?;
    let env: String = r.get(9)?;
    let sample: Option<String> = r.get(10)?;
    Ok(Function {
        id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
        name: r.get(1)?,
        description: r.get(2)?,
        language: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        runtime: r.get::<_, String>(4)?.parse().map_err(|e: String| parse_err(4, e))?,
        code: r.get(5)?,
        timeout_ms: r.get(6)?,
        memory_mb: r.get(7)?,
        concurrency: r.get(8)?,
        env: serde_json::from_str(&env).map_err(|e| parse_err(9, e.to_string()))?,
        sample_input: sample.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| parse_err(10, e.to_string()))?,
        version: r.get(11)?,
        created_at: parse_time(12, &r.get::<_, String>(12)?)?,
        updated_at: parse_time(13, &r.get::<_, String>(13)?)?,
    })
}

const EXECUTION_COLUMNS: &str = "id, function_name, version, runtime, language, input, output, output_truncated, \
     status, error, logs, started_at, duration_ms, exec_ms, memory_bytes, cold_start, \"trigger\", node";

fn row_to_execution(r: &Row<'_>) -> rusqlite::Result<Execution> {
    let id: String = r.get(0)?;
    let output: Option<String> = r.get(6)?;
    let error: Option<String> = r.get(9)?;
    Ok(Execution {
        id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
        function: r.get(1)?,
        version: r.get(2)?,
        runtime: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        language: r.get::<_, String>(4)?.parse().map_err(|e: String| parse_err(4, e))?,
        input: r.get(5)?,
        output: output.map(RawJson::parse).transpose().map_err(|e| parse_err(6, e.to_string()))?,
        output_truncated: r.get(7)?,
        status: r.get::<_, String>(8)?.parse().map_err(|e: String| parse_err(8, e))?,
        error: error
            .map(|s| serde_json::from_str::<ErrorInfo>(&s))
            .transpose()
            .map_err(|e| parse_err(9, e.to_string()))?,
        logs: r.get(10)?,
        started_at: parse_time(11, &r.get::<_, String>(11)?)?,
        duration_ms: r.get(12)?,
        exec_ms: r.get(13)?,
        memory_bytes: r.get::<_, Option<i64>>(14)?.map(|m| m.max(0) as u64),
        cold_start: r.get(15)?,
        trigger: r.get::<_, String>(16)?.parse().map_err(|e: String| parse_err(16, e))?,
        node: r.get(17)?,
    })
}

/// How a function's times are stored; the compare-and-swap on `updated_at` compares this text.
fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

fn function_params(f: &Function) -> Result<Vec<Box<dyn rusqlite::ToSql + Send>>, StoreError> {
    let env = serde_json::to_string(&f.env).map_err(|e| StoreError::Backend(e.to_string()))?;
    let sample = f.sample_input.as_ref().map(|v| v.to_string());
    Ok(vec![
        Box::new(f.id.to_string()),
        Box::new(f.name.clone()),
        Box::new(f.description.clone()),
        Box::new(f.language.as_str()),
        Box::new(f.runtime.as_str()),
        Box::new(f.code.clone()),
        Box::new(f.timeout_ms),
        Box::new(f.memory_mb),
        Box::new(f.concurrency),
        Box::new(env),
        Box::new(sample),
        Box::new(f.version),
        Box::new(time_text(f.created_at)),
        Box::new(time_text(f.updated_at)),
    ])
}

fn col_str<'a>(r: &'a Row<'_>, i: usize) -> rusqlite::Result<&'a str> {
    r.get_ref(i).and_then(|v| v.as_str().map_err(|e| parse_err(i, e.to_string())))
}

/// The SQL condition for a trigger filter (the values are fixed words, never user text).
fn trigger_condition(t: TriggerFilter) -> String {
    match t {
        TriggerFilter::NotCompare => " AND \"trigger\" != 'compare'".to_owned(),
        TriggerFilter::Only(t) => format!(" AND \"trigger\" = '{}'", t.as_str()),
        TriggerFilter::All => String::new(),
    }
}

/// WHERE clause and arguments for a metrics filter.
fn metrics_where(f: &MetricsFilter) -> (String, Vec<Box<dyn rusqlite::ToSql + Send>>) {
    let mut sql = String::from(" WHERE 1=1");
    let mut args: Vec<Box<dyn rusqlite::ToSql + Send>> = Vec::new();
    if let Some(v) = &f.function {
        args.push(Box::new(v.clone()));
        sql.push_str(&format!(" AND function_name = ?{}", args.len()));
    }
    if let Some(v) = f.runtime {
        args.push(Box::new(v.as_str()));
        sql.push_str(&format!(" AND runtime = ?{}", args.len()));
    }
    if let Some(v) = f.language {
        args.push(Box::new(v.as_str()));
        sql.push_str(&format!(" AND language = ?{}", args.len()));
    }
    if let Some(v) = f.since {
        args.push(Box::new(v.timestamp_millis()));
        sql.push_str(&format!(" AND started_ms >= ?{}", args.len()));
    }
    sql.push_str(&trigger_condition(f.trigger));
    (sql, args)
}

/// How much of an error message [`Store::failures`] reads: errors are grouped by it.
const FAILURE_MESSAGE_CHARS: usize = 1024;

#[async_trait]
impl Store for SqliteStore {
    async fn insert_function(&self, f: &Function) -> Result<(), StoreError> {
        let p = function_params(f)?;
        let name = f.name.clone();
        self.write(move |conn| {
            let sql = format!("INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)");
            let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
            match conn.execute(&sql, refs.as_slice()) {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Conflict(name))
                }
                Err(e) => Err(backend(e)),
            }
        })
        .await
    }

    async fn update_function(&self, f: &Function, expected_updated_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut p = function_params(f)?;
        p.push(Box::new(time_text(expected_updated_at)));
        let name = f.name.clone();
        self.write(move |conn| {
            let refs: Vec<&dyn rusqlite::ToSql> = p.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
            let n = conn
                .execute(
                    "UPDATE functions SET id=?1, description=?3, language=?4, runtime=?5, code=?6, timeout_ms=?7,
                        memory_mb=?8, concurrency=?9, env=?10, sample_input=?11, version=?12, created_at=?13,
                        updated_at=?14 WHERE name=?2 AND updated_at=?15",
                    refs.as_slice(),
                )
                .map_err(backend)?;
            if n > 0 {
                return Ok(());
            }
            let exists: bool = conn
                .query_row("SELECT EXISTS(SELECT 1 FROM functions WHERE name = ?1)", [&name], |r| r.get(0))
                .map_err(backend)?;
            if exists {
                Err(StoreError::Stale(name))
            } else {
                Err(StoreError::NotFound(name))
            }
        })
        .await
    }

    async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.execute("DELETE FROM functions WHERE name = ?1", [name]).map(|n| n > 0).map_err(backend)
        })
        .await
    }

    async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.query_row(&format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE name = ?1"), [name], row_to_function)
                .optional()
        })
        .await
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY name"))?;
            let rows = stmt.query_map([], row_to_function)?;
            rows.collect()
        })
        .await
    }

    fn execution_started(&self, e: &Execution) {
        let _ = self.writer.send(WriteCmd::Started(Box::new(e.clone())));
    }

    async fn recover_interrupted(&self, error: ErrorInfo) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let bodies: Vec<String> = {
                let mut stmt = tx.prepare("SELECT body FROM inflight_executions ORDER BY id").map_err(backend)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
                rows.collect::<rusqlite::Result<_>>().map_err(backend)?
            };
            let mut n = 0;
            for body in bodies {
                let Ok(mut e) = serde_json::from_str::<Execution>(&body) else { continue };
                e.status = fnbox_core::ExecutionStatus::Error;
                e.error = Some(error.clone());
                // A final record may have been committed just before the crash: keep it.
                let exists: bool = tx
                    .query_row("SELECT EXISTS(SELECT 1 FROM executions WHERE id = ?1)", [e.id.to_string()], |r| r.get(0))
                    .map_err(backend)?;
                if !exists {
                    insert_execution(&tx, &e).map_err(backend)?;
                    n += 1;
                }
            }
            tx.execute("DELETE FROM inflight_executions", []).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n)
        })
        .await
    }

    async fn record_execution(&self, e: Execution) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(WriteCmd::Record(Box::new(e), tx)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn get_execution(&self, id: Uuid) -> Result<Option<Execution>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"),
                [id.to_string()],
                row_to_execution,
            )
            .optional()
        })
        .await
    }

    async fn list_executions(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1=1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(f) = filter.function {
                args.push(Box::new(f));
                sql.push_str(&format!(" AND function_name = ?{}", args.len()));
            }
            if let Some(s) = filter.status {
                args.push(Box::new(s.as_str()));
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(r) = filter.runtime {
                args.push(Box::new(r.as_str()));
                sql.push_str(&format!(" AND runtime = ?{}", args.len()));
            }
            if let Some(since) = filter.since {
                args.push(Box::new(since.timestamp_millis()));
                sql.push_str(&format!(" AND started_ms >= ?{}", args.len()));
            }
            if let Some(before) = filter.before {
                args.push(Box::new(before.to_string()));
                sql.push_str(&format!(" AND id < ?{}", args.len()));
            }
            sql.push_str(&trigger_condition(filter.trigger));
            args.push(Box::new(i64::from(filter.limit.max(1))));
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare_cached(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
            let rows = stmt.query_map(refs.as_slice(), row_to_execution)?;
            let Some(max_bytes) = filter.max_bytes else { return rows.collect() };
            // Bounded by size as well as count: records can be large, and only what a page
            // can hold (plus one, so the caller sees there is more) is read into memory.
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for row in rows {
                let e = row?;
                bytes = bytes.saturating_add(e.text_bytes());
                out.push(e);
                if bytes > max_bytes && out.len() >= 2 {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn samples(&self, filter: &MetricsFilter) -> Result<Vec<Sample>, StoreError> {
        let (cond, args) = metrics_where(filter);
        self.read(move |conn| {
            let sql = format!(
                "SELECT function_name, runtime, language, status, error_type, started_ms, duration_ms, exec_ms,
                        memory_bytes, cold_start FROM executions{cond}"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
            // Borrowed reads: no allocation per row for the enum columns.
            let text = |r: &Row<'_>, i: usize| -> rusqlite::Result<String> {
                Ok(r.get_ref(i)?.as_str().map_err(|e| parse_err(i, e.to_string()))?.to_owned())
            };
            let rows = stmt.query_map(refs.as_slice(), |r| {
                Ok(Sample {
                    function: text(r, 0)?,
                    runtime: col_str(r, 1)?.parse().map_err(|e: String| parse_err(1, e))?,
                    language: col_str(r, 2)?.parse().map_err(|e: String| parse_err(2, e))?,
                    status: col_str(r, 3)?.parse().map_err(|e: String| parse_err(3, e))?,
                    error_type: r.get(4)?,
                    started_ms: r.get(5)?,
                    duration_ms: r.get(6)?,
                    exec_ms: r.get(7)?,
                    memory_bytes: r.get::<_, Option<i64>>(8)?.map(|m| m.max(0) as u64),
                    cold_start: r.get(9)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn failures(&self, filter: &MetricsFilter) -> Result<Vec<Failure>, StoreError> {
        let (cond, args) = metrics_where(filter);
        self.read(move |conn| {
            // Only what grouping needs: the type and the start of the message, never the stack,
            // so reading every failure costs about a kilobyte each, whatever the errors hold.
            let sql = format!(
                "SELECT id, function_name, started_at, json_extract(error, '$.type'),
                    substr(json_extract(error, '$.message'), 1, {FAILURE_MESSAGE_CHARS})
                 FROM executions{cond} AND status != 'success' ORDER BY id"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref() as &dyn rusqlite::ToSql).collect();
            let rows = stmt.query_map(refs.as_slice(), |r| {
                let id: String = r.get(0)?;
                let kind: Option<String> = r.get(3)?;
                let message: Option<String> = r.get(4)?;
                Ok(Failure {
                    id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
                    function: r.get(1)?,
                    started_at: parse_time(2, &r.get::<_, String>(2)?)?,
                    error: kind.map(|k| ErrorInfo::new(k, message.unwrap_or_default())),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn prune_executions(&self, before: Option<DateTime<Utc>>, keep_max: Option<u64>) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let mut n = 0;
            if let Some(t) = before {
                n += conn.execute("DELETE FROM executions WHERE started_ms < ?1", [t.timestamp_millis()]).map_err(backend)?;
            }
            if let Some(max) = keep_max {
                n += conn
                    .execute(
                        "DELETE FROM executions WHERE id IN (SELECT id FROM executions ORDER BY id DESC LIMIT -1 OFFSET ?1)",
                        [max as i64],
                    )
                    .map_err(backend)?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn insert_comparison(&self, id: Uuid, function: &str, body: &serde_json::Value) -> Result<(), StoreError> {
        let (id, function, body) = (id.to_string(), function.to_owned(), body.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO comparisons (id, function, created_at, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, function, Utc::now().to_rfc3339(), body],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn list_comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT body FROM comparisons ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map([i64::from(limit)], |r| {
                let body: String = r.get(0)?;
                serde_json::from_str(&body).map_err(|e| parse_err(0, e.to_string()))
            })?;
            rows.collect()
        })
        .await
    }

    async fn get_comparison(&self, id: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
        self.read(move |conn| {
            conn.query_row("SELECT body FROM comparisons WHERE id = ?1", [id.to_string()], |r| {
                let body: String = r.get(0)?;
                serde_json::from_str(&body).map_err(|e| parse_err(0, e.to_string()))
            })
            .optional()
        })
        .await
    }
}

fn row_to_key(r: &Row<'_>) -> rusqlite::Result<StoredKey> {
    let id: String = r.get(0)?;
    let last_used: Option<String> = r.get(5)?;
    Ok(StoredKey {
        key: ApiKey {
            id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
            name: r.get(1)?,
            role: r.get::<_, String>(2)?.parse().map_err(|e: String| parse_err(2, e))?,
            created_at: parse_time(4, &r.get::<_, String>(4)?)?,
            last_used_at: last_used.map(|t| parse_time(5, &t)).transpose()?,
            revoked: r.get(6)?,
        },
        token_hash: r.get(3)?,
    })
}

fn bump_keys_version(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<usize> {
    tx.execute("UPDATE api_keys_version SET version = version + 1 WHERE id = 1", [])
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, k: &StoredKey) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute(
                "INSERT INTO api_keys (id, name, role, token_hash, created_at, last_used_at, revoked, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, NULL)",
                params![
                    k.key.id.to_string(),
                    k.key.name,
                    k.key.role.as_str(),
                    k.token_hash,
                    k.key.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    k.key.revoked,
                ],
            )
            .map_err(backend)?;
            bump_keys_version(&tx).map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, role, token_hash, created_at, last_used_at, revoked FROM api_keys ORDER BY id",
            )?;
            let rows = stmt.query_map([], row_to_key)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_key(&self, id: Uuid) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM api_keys WHERE id = ?1)", [id.to_string()], |r| r.get(0))
                .map_err(backend)?;
            if !exists {
                return Ok(false);
            }
            let changed = tx
                .execute(
                    "UPDATE api_keys SET revoked = TRUE, revoked_at = ?2 WHERE id = ?1 AND NOT revoked",
                    params![id.to_string(), Utc::now().to_rfc3339()],
                )
                .map_err(backend)?;
            if changed > 0 {
                bump_keys_version(&tx).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn touch_keys(&self, used: &[(Uuid, DateTime<Utc>)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let used: Vec<(String, String)> =
            used.iter().map(|(id, t)| (id.to_string(), t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).collect();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1").map_err(backend)?;
                for (id, t) in &used {
                    stmt.execute(params![id, t]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn keys_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT version FROM api_keys_version WHERE id = 1", [], |r| r.get(0))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnbox_core::{ExecutionStatus, FunctionSpec, Language, Limits, Runtime};

    fn function(name: &str) -> Function {
        let spec: FunctionSpec = serde_json::from_value(serde_json::json!({
            "name": name, "language": "python", "code": "def handler(e): return e",
            "env": {"A": "1"}, "sample_input": {"n": 1}
        }))
        .expect("spec");
        Function::from_spec(spec, &Limits::default(), Utc::now())
    }

    fn execution(function: &str, status: ExecutionStatus) -> Execution {
        Execution {
            id: Uuid::now_v7(),
            function: function.into(),
            version: 1,
            runtime: Runtime::Gvisor,
            language: Language::Python,
            input: "{}".into(),
            output: Some(RawJson::parse(r#"[1,"two",18446744073709551617]"#.into()).expect("json")),
            output_truncated: false,
            status,
            error: (status != ExecutionStatus::Success).then(|| ErrorInfo::new("ValueError", "bad")),
            logs: "line\n".into(),
            started_at: Utc::now(),
            duration_ms: 1.5,
            exec_ms: Some(0.5),
            memory_bytes: Some(1 << 20),
            cold_start: true,
            trigger: fnbox_core::Trigger::Api,
            node: None,
        }
    }

    #[tokio::test]
    async fn functions_round_trip_and_conflict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        let mut f = function("a");
        store.insert_function(&f).await.expect("insert");
        assert!(matches!(store.insert_function(&f).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.get_function("a").await.expect("get"), Some(f.clone()));
        let read_at = f.updated_at;
        f.version = 2;
        f.code = "x".into();
        f.updated_at = read_at + chrono::Duration::milliseconds(5);
        store.update_function(&f, read_at).await.expect("update");
        // A second writer that read the same state loses: the row changed under it.
        assert!(matches!(store.update_function(&f, read_at).await, Err(StoreError::Stale(_))));
        assert_eq!(store.get_function("a").await.expect("get").map(|f| f.version), Some(2));
        assert_eq!(store.list_functions().await.expect("list").len(), 1);
        assert!(store.delete_function("a").await.expect("delete"));
        assert!(!store.delete_function("a").await.expect("delete"));
        assert!(matches!(store.update_function(&f, f.updated_at).await, Err(StoreError::NotFound(_))));
    }

    #[tokio::test]
    async fn unfinished_executions_become_interrupted_records_at_the_next_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success));
        {
            let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
            store.execution_started(&a);
            store.execution_started(&b);
            // Past the grace: both are journalled as in flight.
            tokio::time::sleep(INFLIGHT_GRACE * 3).await;
            store.record_execution(a.clone()).await.expect("record a");
            // Finished within the grace: never journalled at all.
            store.execution_started(&c);
            store.record_execution(c.clone()).await.expect("record c");
            let journalled: i64 = store
                .write(|conn| conn.query_row("SELECT COUNT(*) FROM inflight_executions", [], |r| r.get(0)).map_err(backend))
                .await
                .expect("count");
            assert_eq!(journalled, 1, "only b is still in flight");
            // b never finishes: the process "crashes" here.
        }
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("reopen");
        let n = store.recover_interrupted(ErrorInfo::new("Interrupted", "cut short")).await.expect("recover");
        assert_eq!(n, 1);
        let got_b = store.get_execution(b.id).await.expect("get").expect("b recorded");
        assert_eq!(got_b.status, ExecutionStatus::Error);
        assert_eq!(got_b.error.map(|e| e.kind), Some("Interrupted".to_string()));
        assert_eq!(store.get_execution(a.id).await.expect("get").map(|e| e.status), Some(ExecutionStatus::Success));
        assert_eq!(store.get_execution(c.id).await.expect("get").map(|e| e.status), Some(ExecutionStatus::Success));
        assert_eq!(store.recover_interrupted(ErrorInfo::new("Interrupted", "again")).await.expect("recover"), 0);
    }

    #[tokio::test]
    async fn keys_insert_list_revoke_touch_and_version() {
        use fnbox_core::{NewKey, Role};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        assert_eq!(store.keys_version().await.expect("version"), 0);
        let a = NewKey::generate("ci", Role::Admin, Utc::now()).expect("key");
        let b = NewKey::generate("grafana", Role::Invoke, Utc::now()).expect("key");
        store.insert_key(&a.stored).await.expect("insert");
        store.insert_key(&b.stored).await.expect("insert");
        assert_eq!(store.keys_version().await.expect("version"), 2);
        let keys = store.list_keys().await.expect("list");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key.name, "ci");
        assert_eq!(keys[0].token_hash, a.stored.token_hash);
        assert_eq!(keys[1].key.role, Role::Invoke);

        let t = Utc::now();
        store.touch_keys(&[(a.stored.key.id, t)]).await.expect("touch");
        assert_eq!(store.keys_version().await.expect("version"), 2, "a touch is not a change");
        assert!(store.revoke_key(b.stored.key.id).await.expect("revoke"));
        assert!(store.revoke_key(b.stored.key.id).await.expect("revoke twice"));
        assert!(!store.revoke_key(Uuid::now_v7()).await.expect("revoke unknown"));
        assert_eq!(store.keys_version().await.expect("version"), 3);

        drop(store);
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("reopen");
        let keys = store.list_keys().await.expect("list");
        assert!(keys[1].key.revoked && !keys[0].key.revoked);
        assert_eq!(keys[0].key.last_used_at.map(|x| x.timestamp()), Some(t.timestamp()));
    }

    #[tokio::test]
    async fn a_page_of_executions_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        for _ in 0..20 {
            let mut e = execution("big", ExecutionStatus::Success);
            e.logs = "x".repeat(100_000);
            store.record_execution(e).await.expect("recorded");
        }
        let page = |max_bytes| ExecutionFilter { limit: 1000, max_bytes, ..Default::default() };
        assert_eq!(store.list_executions(&page(None)).await.expect("list").len(), 20);
        // 350 kB: three records fit, the fourth passes the budget and is the one read ahead.
        let cut = store.list_executions(&page(Some(350_000))).await.expect("list");
        assert_eq!(cut.len(), 4);
        // A budget smaller than one record still gives two: the page's one, and one read ahead.
        assert_eq!(store.list_executions(&page(Some(10))).await.expect("list").len(), 2);
    }

    #[tokio::test]
    async fn comparison_runs_are_left_out_unless_asked_for() {
        use fnbox_core::{Trigger, TriggerFilter};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        let api = execution("f", ExecutionStatus::Success);
        let cmp = Execution { id: Uuid::now_v7(), trigger: Trigger::Compare, ..execution("f", ExecutionStatus::Error) };
        store.record_execution(api.clone()).await.expect("record");
        store.record_execution(cmp.clone()).await.expect("record");
        let list = |trigger| {
            let store = &store;
            async move {
                let f = ExecutionFilter { trigger, limit: 10, ..Default::default() };
                store.list_executions(&f).await.expect("list").into_iter().map(|e| e.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(list(TriggerFilter::default()).await, [api.id]);
        assert_eq!(list(TriggerFilter::Only(Trigger::Compare)).await, [cmp.id]);
        assert_eq!(list(TriggerFilter::All).await, [cmp.id, api.id]);
        assert_eq!(store.get_execution(cmp.id).await.expect("get").map(|e| e.trigger), Some(Trigger::Compare));
        let samples = |trigger| {
            let store = &store;
            async move { store.samples(&MetricsFilter { trigger, ..Default::default() }).await.expect("samples").len() }
        };
        assert_eq!((samples(TriggerFilter::default()).await, samples(TriggerFilter::All).await), (1, 2));
        let failures = store.failures(&MetricsFilter::default()).await.expect("failures");
        assert!(failures.is_empty(), "the comparison's failure is not among the user's errors");
        let only_compare = MetricsFilter { trigger: TriggerFilter::Only(Trigger::Compare), ..Default::default() };
        assert_eq!(store.failures(&only_compare).await.expect("failures").len(), 1);
    }

    #[tokio::test]
    async fn failures_carry_the_type_and_the_start_of_the_message_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path(), SyncMode::Normal).expect("open");
        let mut e = execution("f", ExecutionStatus::Error);
        let mut err = ErrorInfo::new("ValueError", "m".repeat(10_000));
        err.stack = "s".repeat(10_000);
        e.error = Some(err);
        store.record_execution(e).await.expect("record");
        let failures = store.failures(&MetricsFilter::default()).await.expect("failures");
        let got = failures[0].error.as_ref().expect("error");
        assert_eq!(got.kind, "ValueError");
        assert_eq!(got.message.len(), FAILURE_MESSAGE_CHARS);
        assert!(got.stack.is_empty(), "grouping never reads the stack");
    }

    #[tokio::test]
    async fn executions_survive_reopen_and_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = {
            let store = Arc::new(SqliteStore::open(dir.path(), SyncMode::Normal).expect("open"));
            let mut handles = Vec::new();
            for i in 0..200 {
                let store = store.clone();
                let status = if i % 4 == 0 { ExecutionStatus::Error } else { ExecutionStatus::Success };
                let e = execution(if i % 2 == 0 { "even" } else { "odd" }, status);
                handles.push(tokio::spawn(async move {
                    let id = e.id;
                    store.record_execution(e).await.map(|_| id)
                }));
            }
            let mut ids = Vec::new();
            for h in handles {
                ids.push(h.await.expect("join").expect("recorded"));
            }
            ids
        };
        let store = SqliteStore::open(dir.path(), SyncMode::Full).expect("reopen");
        let all = store.list_executions(&ExecutionFilter { limit: 1000, ..Default::default() }).await.expect("list");
        assert_eq!(all.len(), ids.len());
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let errors = store
            .list_executions(&ExecutionFilter {
                function: Some("even".into()),
                status: Some(ExecutionStatus::Error),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(errors.len(), 50);
        let one = store.get_execution(ids[7]).await.expect("get").expect("present");
        assert_eq!(one.output.as_ref().map(RawJson::get), Some(r#"[1,"two",18446744073709551617]"#));
        assert_eq!(one.memory_bytes, Some(1 << 20));
    }
}

#[cfg(test)]
mod scale {
    use super::*;
    use fnbox_core::{ExecutionStatus, Language, Runtime};
    use std::time::Instant;

    /// The summary over 100,000 recorded executions must answer in under 200 ms (release).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn summary_over_100k_executions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(dir.path(), SyncMode::Normal).expect("open"));
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for chunk in 0..100 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..1000u32 {
                    let n = chunk * 1000 + i;
                    let status = if n % 10 == 0 { ExecutionStatus::Error } else { ExecutionStatus::Success };
                    let e = Execution {
                        id: Uuid::now_v7(),
                        function: format!("f{}", n % 20),
                        version: 1,
                        runtime: if n % 2 == 0 { Runtime::Docker } else { Runtime::Gvisor },
                        language: Language::Python,
                        input: "{\"n\":1}".into(),
                        output: Some(RawJson::parse(n.to_string()).expect("json")),
                        output_truncated: false,
                        status,
                        error: (status == ExecutionStatus::Error).then(|| ErrorInfo::new("ValueError", "bad")),
                        logs: "a log line\n".into(),
                        started_at: Utc::now(),
                        duration_ms: f64::from(n % 997) / 10.0,
                        exec_ms: Some(0.05),
                        memory_bytes: Some(8 << 20),
                        cold_start: n % 100 == 0,
                        trigger: fnbox_core::Trigger::Api,
                        node: None,
                    };
                    store.record_execution(e).await.expect("record");
                }
            }));
        }
        for h in handles {
            h.await.expect("join");
        }
        let write_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let samples = store.samples(&fnbox_core::metrics::MetricsFilter::default()).await.expect("samples");
        let fetch_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let summary = fnbox_core::metrics::summarize(&samples);
        let ms = t1.elapsed().as_secs_f64() * 1000.0;
        println!(
            "recorded 100000 executions in {write_s:.2} s ({:.0}/s); summary over them in {ms:.1} ms ({fetch_ms:.1} ms reading)",
            100000.0 / write_s
        );
        assert_eq!(samples.len(), 100_000);
        assert_eq!(summary.len(), 20);
        assert_eq!(summary.iter().map(|s| s.invocations).sum::<usize>(), 100_000);
        let limit = if cfg!(debug_assertions) { 2000.0 } else { 200.0 };
        assert!(ms < limit, "summary took {ms:.1} ms");
    }
}
