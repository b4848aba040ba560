//! The writer task: execution records queue up on a channel while a commit runs and go in the
//! next one together (one transaction, one INSERT for up to [`MAX_BATCH`] records), each
//! acknowledged only after that commit. Started executions are journalled as in flight, with
//! this node's name, once they outlive [`INFLIGHT_GRACE`](fnbox_core::inflight::INFLIGHT_GRACE); a record's commit drops its entry in
//! the same transaction, so a journalled execution is never both recorded and in flight.

use std::sync::Arc;

use deadpool_postgres::Pool;
use fnbox_core::inflight::{Inflight, JournalWork};
use fnbox_core::{Execution, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{self, db};
use crate::rows::insert_executions;
use crate::store::Health;

/// Most records one transaction carries: enough to amortise a commit (and its round trips)
/// under load without holding callers back.
pub(crate) const MAX_BATCH: usize = 512;


pub(crate) enum WriteCmd {
    Started(Box<Execution>),
    Record(Box<Execution>, oneshot::Sender<Result<(), StoreError>>),
}

type Batch = Vec<(Box<Execution>, oneshot::Sender<Result<(), StoreError>>)>;


pub(crate) async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<WriteCmd>, node: Arc<str>, health: Arc<Health>) {
    let mut inflight = Inflight::default();
    let mut batch: Batch = Vec::new();
    loop {
        // Sleep until a command arrives or the oldest started execution is due for the journal.
        let due = inflight.next_due().map(Instant::from_std);
        let first = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => Some(cmd),
                None => break,
            },
            () = sleep_until(due) => None,
        };
        let mut next = first;
        while let Some(cmd) = next.take() {
            match cmd {
                WriteCmd::Started(e) => inflight.started(e),
                WriteCmd::Record(e, ack) => batch.push((e, ack)),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush(&pool, &mut batch, &mut inflight, &node, &health).await;
    }
    flush(&pool, &mut batch, &mut inflight, &node, &health).await;
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Commits every pending record, the journal entries now due and the removal of finished
/// ones' entries in one transaction, then acknowledges each record. If that fails while the
/// server answers, each record is retried alone so one bad record cannot sink the others.
async fn flush(pool: &Pool, batch: &mut Batch, inflight: &mut Inflight, node: &str, health: &Health) {
    let JournalWork { due: to_journal, finished } = inflight.take(batch.iter().map(|(e, _)| e.id));
    if batch.is_empty() && to_journal.is_empty() && finished.is_empty() {
        return;
    }
    let records: Vec<&Execution> = batch.iter().map(|(e, _)| e.as_ref()).collect();
    let outcome = health.observe(commit(pool, &records, &to_journal, &finished, node).await);
    match outcome {
        Ok(()) => {
            inflight.journalled(to_journal.iter().map(|e| e.id));
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Ok(()));
            }
        }
        Err(StoreError::Unavailable(why)) => {
            // Nothing reached the server: the records fail (their callers hear 503), the
            // started ones wait for the next flush, the finished ones stay journalled (so a
            // crash now still leaves an `Interrupted` record rather than nothing).
            inflight.retry(to_journal);
            inflight.journalled(finished);
            for (_, ack) in batch.drain(..) {
                let _ = ack.send(Err(StoreError::Unavailable(why.clone())));
            }
        }
        Err(err) => {
            tracing::warn!(%err, size = batch.len(), "batched commit failed; retrying records one by one");
            match health.observe(commit(pool, &[], &to_journal, &[], node).await) {
                Ok(()) => inflight.journalled(to_journal.iter().map(|e| e.id)),
                Err(err) => tracing::warn!(%err, "could not journal in-flight executions"),
            }
            for (e, ack) in batch.drain(..) {
                let unjournal: &[Uuid] = if finished.contains(&e.id) { &[e.id] } else { &[] };
                let _ = ack.send(health.observe(commit(pool, &[e.as_ref()], &[], unjournal, node).await));
            }
        }
    }
}

async fn commit(
    pool: &Pool,
    records: &[&Execution],
    to_journal: &[Box<Execution>],
    finished: &[Uuid],
    node: &str,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(error::pool)?;
    let tx = client.transaction().await.map_err(db)?;
    if !to_journal.is_empty() {
        let mut ids = Vec::with_capacity(to_journal.len());
        let mut bodies = Vec::with_capacity(to_journal.len());
        let mut started = Vec::with_capacity(to_journal.len());
        for e in to_journal {
            ids.push(e.id);
            bodies.push(serde_json::to_string(e).map_err(|x| StoreError::Backend(x.to_string()))?);
            started.push(e.started_at.timestamp_millis());
        }
        tx.execute(
            "INSERT INTO inflight_executions (id, node, body, started_ms)
             SELECT id, $2, body, started_ms FROM UNNEST($1::uuid[], $3::text[], $4::bigint[]) AS j(id, body, started_ms)
             ON CONFLICT (id) DO UPDATE SET node = EXCLUDED.node, body = EXCLUDED.body, started_ms = EXCLUDED.started_ms",
            &[&ids, &node, &bodies, &started],
        )
        .await
        .map_err(db)?;
    }
    if !finished.is_empty() {
        tx.execute("DELETE FROM inflight_executions WHERE id = ANY($1)", &[&finished]).await.map_err(db)?;
    }
    if !records.is_empty() {
        insert_executions(&*tx, records).await?;
    }
    tx.commit().await.map_err(db)
}
