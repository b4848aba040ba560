//! The writer thread: the only connection that writes. Execution records queue up while a
//! commit runs and go in the next one together (one transaction for up to [`MAX_BATCH`]),
//! each acknowledged only after its commit. Started executions are journalled as in flight
//! (after a grace, see [`INFLIGHT_GRACE`](fnbox_core::inflight::INFLIGHT_GRACE)) so a crash cannot make them vanish.

use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use fnbox_core::inflight::{Inflight, JournalWork};
use fnbox_core::{Execution, StoreError};
use rusqlite::{params, Connection};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::rows::parse_err;
use crate::store::backend;

/// Most records one write transaction carries; enough to amortise a commit under load
/// without holding callers back.
pub(crate) const MAX_BATCH: usize = 512;

pub(crate) type Job = Box<dyn FnOnce(&mut Connection) + Send>;



pub(crate) enum WriteCmd {
    Started(Box<Execution>),
    Record(Box<Execution>, oneshot::Sender<Result<(), StoreError>>),
    Job(Job),
}

type Batch = Vec<(Box<Execution>, oneshot::Sender<Result<(), StoreError>>)>;


pub(crate) fn writer_loop(mut conn: Connection, rx: std_mpsc::Receiver<WriteCmd>) {
    let mut batch: Batch = Vec::new();
    let mut inflight = Inflight::default();
    loop {
        // Sleep until a command arrives or the oldest started execution is due for the journal.
        let first = match inflight.next_due() {
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
                WriteCmd::Started(e) => inflight.started(e),
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
    let JournalWork { due: to_journal, finished: finished_journalled } = inflight.take(batch.iter().map(|(e, _)| e.id));
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
        Ok(()) => inflight.journalled(to_journal.iter().map(|e| e.id)),
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

/// Inserts a record; one with the same id replaces only a `queued` record (an asynchronous
/// attempt's placeholder), never a final one (returns 0 then).
pub(crate) fn insert_execution(conn: &Connection, e: &Execution) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO executions (id, function_name, version, runtime, language, input, output,
            output_truncated, status, error_type, error, logs, started_at, started_ms, duration_ms,
            exec_ms, memory_bytes, cold_start, \"trigger\", node, attempt, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
         ON CONFLICT (id) DO UPDATE SET function_name = excluded.function_name, version = excluded.version,
            runtime = excluded.runtime, language = excluded.language, input = excluded.input,
            output = excluded.output, output_truncated = excluded.output_truncated, status = excluded.status,
            error_type = excluded.error_type, error = excluded.error, logs = excluded.logs,
            started_at = excluded.started_at, started_ms = excluded.started_ms, duration_ms = excluded.duration_ms,
            exec_ms = excluded.exec_ms, memory_bytes = excluded.memory_bytes, cold_start = excluded.cold_start,
            \"trigger\" = excluded.\"trigger\", node = excluded.node, attempt = excluded.attempt,
            request_id = excluded.request_id
          WHERE executions.status = 'queued'",
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
        e.attempt,
        e.request_id.map(|r| r.to_string()),
    ])
}
