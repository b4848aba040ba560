//! Bookkeeping of started executions for a store's in-flight journal, shared by the store
//! backends (the SQL that writes the journal is each backend's own).
//!
//! A started execution stays only in memory for [`INFLIGHT_GRACE`]; past it, it is due for the
//! journal, and its entry is removed again with its final record. Most calls finish within the
//! grace, so the hot path costs no extra write; a call cut short by a crash inside it was never
//! answered, so nothing acknowledged is lost.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::Execution;

pub const INFLIGHT_GRACE: Duration = Duration::from_millis(100);

/// Started executions a writer knows about: not yet journalled (with their deadline), or
/// journalled.
#[derive(Default)]
pub struct Inflight {
    pending: HashMap<Uuid, (Instant, Box<Execution>)>,
    journalled: HashSet<Uuid>,
}

/// What one flush has to write to the journal.
pub struct JournalWork {
    /// Started executions past their grace: to journal now.
    pub due: Vec<Box<Execution>>,
    /// Journalled executions whose final record is in this flush: their entries go.
    pub finished: Vec<Uuid>,
}

impl JournalWork {
    pub fn is_empty(&self) -> bool {
        self.due.is_empty() && self.finished.is_empty()
    }
}

impl Inflight {
    /// An execution started: due for the journal after the grace.
    pub fn started(&mut self, e: Box<Execution>) {
        self.pending.insert(e.id, (Instant::now() + INFLIGHT_GRACE, e));
    }

    /// When the earliest pending execution is due (the writer sleeps until then at most).
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|(at, _)| *at).min()
    }

    /// Takes what a flush writes: the executions now due, and the journalled ones among
    /// `recorded` (those whose final records are in the flush). Recorded ones still pending
    /// are simply forgotten: they never reached the journal.
    pub fn take(&mut self, recorded: impl IntoIterator<Item = Uuid>) -> JournalWork {
        let mut finished = Vec::new();
        for id in recorded {
            if self.pending.remove(&id).is_none() && self.journalled.remove(&id) {
                finished.push(id);
            }
        }
        let now = Instant::now();
        let ids: Vec<Uuid> = self.pending.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
        let due = ids.iter().filter_map(|id| self.pending.remove(id).map(|(_, e)| e)).collect();
        JournalWork { due, finished }
    }

    /// These are in the journal now.
    pub fn journalled(&mut self, ids: impl IntoIterator<Item = Uuid>) {
        self.journalled.extend(ids);
    }

    /// The journal write did not happen: the due ones wait for the next flush.
    pub fn retry(&mut self, due: Vec<Box<Execution>>) {
        for e in due {
            self.started(e);
        }
    }
}
