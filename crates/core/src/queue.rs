//! Asynchronous calls: what the durable queue holds, what lands in the dead letters, and the
//! retry backoff. The store keeps both lists (so an accepted call survives a `kill -9`); the
//! engine's workers run them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorInfo, Trigger};

/// One accepted asynchronous call, waiting for (or running) its next attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// The call's request id, shared by the execution records of all its attempts.
    pub id: Uuid,
    pub function: String,
    /// The event as JSON text, in full (bounded by the input limit at accept time).
    pub input: String,
    pub trigger: Trigger,
    /// The attempt to run next, 1 for the first.
    pub attempt: u32,
    /// The first attempt of this round: the call is given up after attempt
    /// `first_attempt + max_retries` (a retry from the dead letters starts a new round).
    pub first_attempt: u32,
    /// The id of that attempt's execution record (`queued` until it has run): a worker that
    /// finds it final knows the attempt ran before a crash and only its follow-up was lost.
    pub execution_id: Uuid,
    pub enqueued_at: DateTime<Utc>,
    /// Not claimed before this (the backoff of a retry).
    pub due_at: DateTime<Utc>,
    /// The error of the previous attempt, for the dead letter.
    pub last_error: Option<ErrorInfo>,
}

/// A call whose every attempt failed (or that could not run at all), kept for a person to
/// retry or discard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The call's request id (its attempts' records carry it as `request_id`).
    pub id: Uuid,
    pub function: String,
    /// The event as JSON text.
    pub input: String,
    pub trigger: Trigger,
    /// How many attempts ran.
    pub attempts: u32,
    pub last_error: Option<ErrorInfo>,
    /// The last attempt's execution record.
    pub last_execution_id: Option<Uuid>,
    /// When the call was accepted.
    pub enqueued_at: DateTime<Utc>,
    /// When it was given up.
    pub failed_at: DateTime<Utc>,
}

/// What became of a request to queue a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted,
    /// The queue holds its limit already; nothing was written.
    Full,
    /// There was nothing to queue (no such dead letter).
    NotFound,
}

/// The wait before attempt `next` (2 for the first retry): `base`, doubling each time, capped
/// at `cap`.
pub fn backoff(base: Duration, cap: Duration, next: u32) -> Duration {
    let doublings = next.saturating_sub(2).min(20);
    base.saturating_mul(1u32 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(5);
        assert_eq!(backoff(base, cap, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, cap, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, cap, 4), Duration::from_secs(4));
        assert_eq!(backoff(base, cap, 5), cap);
        assert_eq!(backoff(base, cap, u32::MAX), cap);
    }
}
