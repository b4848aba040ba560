//! The durable queue of asynchronous calls and its dead letters.

use chrono::{Duration, SubsecRound, Utc};
use fnbox_core::{DeadLetter, Enqueued, ErrorInfo, Execution, ExecutionStatus, QueueItem, Trigger};
use uuid::Uuid;

use super::{execution, Backend};

fn item(function: &str) -> QueueItem {
    // Stores keep microseconds.
    let now = Utc::now().trunc_subsecs(6);
    QueueItem {
        id: Uuid::now_v7(),
        function: function.into(),
        input: r#"{"n":18446744073709551617}"#.into(),
        trigger: Trigger::Async,
        attempt: 1,
        first_attempt: 1,
        execution_id: Uuid::now_v7(),
        enqueued_at: now,
        due_at: now,
        last_error: None,
    }
}

fn queued(item: &QueueItem) -> Execution {
    Execution {
        id: item.execution_id,
        status: ExecutionStatus::Queued,
        output: None,
        error: None,
        trigger: item.trigger,
        attempt: item.attempt,
        request_id: Some(item.id),
        ..execution(&item.function, ExecutionStatus::Success)
    }
}

/// An accepted call is readable as a `queued` record at once; one claimer gets it, another
/// does not while the lease holds; a retry waits for its due time; completing removes it; the
/// depth bound refuses without writing.
pub async fn async_calls_are_accepted_claimed_once_retried_and_completed(b: &dyn Backend) {
    let (one, two) = (b.open("n1").await, b.open("n2").await);
    let a = item("job");
    assert_eq!(one.enqueue(&a, &queued(&a), 2).await.expect("enqueue"), Enqueued::Accepted);
    let rec = one.get_execution(a.execution_id).await.expect("get").expect("queued record");
    assert_eq!((rec.status, rec.attempt, rec.request_id), (ExecutionStatus::Queued, 1, Some(a.id)));
    let b2 = item("job");
    assert_eq!(one.enqueue(&b2, &queued(&b2), 2).await.expect("enqueue"), Enqueued::Accepted);
    let c = item("job");
    assert_eq!(one.enqueue(&c, &queued(&c), 2).await.expect("enqueue"), Enqueued::Full);
    assert_eq!(one.get_execution(c.execution_id).await.expect("get"), None, "a refused call writes nothing");
    assert_eq!(one.queue_depth().await.expect("depth"), 2);

    let now = Utc::now().trunc_subsecs(6) + Duration::milliseconds(5);
    let lease = now + Duration::seconds(60);
    let got = one.claim_queued("n1", now, lease, 1).await.expect("claim");
    assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), [a.id], "oldest due first, at most the limit");
    assert_eq!(got[0], a, "the item comes back as it went in");
    let rest = two.claim_queued("n2", now, lease, 10).await.expect("claim");
    assert_eq!(rest.iter().map(|i| i.id).collect::<Vec<_>>(), [b2.id], "a leased item is nobody else's");
    assert!(one.claim_queued("n1", now, lease, 10).await.expect("claim").is_empty());

    // A failed attempt: the next one waits for its backoff, with its own queued record.
    let next = QueueItem {
        attempt: 2,
        execution_id: Uuid::now_v7(),
        due_at: now + Duration::seconds(30),
        last_error: Some(ErrorInfo::new("ValueError", "bad")),
        ..a.clone()
    };
    one.requeue(&next, Some(&queued(&next))).await.expect("requeue");
    assert!(two.claim_queued("n2", now, lease, 10).await.expect("claim").is_empty(), "not due yet");
    let later = now + Duration::seconds(31);
    let again = two.claim_queued("n2", later, later + Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(again, [next.clone()], "due: claimed with its attempt, record id and last error");
    let second = two.get_execution(next.execution_id).await.expect("get").expect("second attempt queued");
    assert_eq!((second.status, second.attempt, second.request_id), (ExecutionStatus::Queued, 2, Some(a.id)));

    one.complete_queued(a.id).await.expect("complete");
    one.complete_queued(b2.id).await.expect("complete");
    assert_eq!(one.queue_depth().await.expect("depth"), 0);
}

/// A final record replaces an attempt's `queued` placeholder; nothing replaces a final record
/// (a late duplicate or a replayed placeholder leaves it as it is).
pub async fn a_final_record_replaces_a_queued_one_never_the_reverse(b: &dyn Backend) {
    let store = b.open("n1").await;
    let a = item("job");
    store.enqueue(&a, &queued(&a), 10).await.expect("enqueue");
    let done = Execution { id: a.execution_id, attempt: 1, request_id: Some(a.id), trigger: Trigger::Async, ..execution("job", ExecutionStatus::Error) };
    store.record_execution(done.clone()).await.expect("record");
    let got = store.get_execution(a.execution_id).await.expect("get").expect("present");
    assert_eq!((got.status, got.error.clone()), (ExecutionStatus::Error, done.error.clone()));
    store.record_execution(queued(&a)).await.expect("record");
    let success = Execution { status: ExecutionStatus::Success, error: None, ..done.clone() };
    store.record_execution(success).await.expect("record");
    let got = store.get_execution(a.execution_id).await.expect("get").expect("present");
    assert_eq!(got.status, ExecutionStatus::Error, "the first final record stays");
    let filter = fnbox_core::ExecutionFilter { request_id: Some(a.id), limit: 10, trigger: fnbox_core::TriggerFilter::All, ..Default::default() };
    assert_eq!(store.list_executions(&filter).await.expect("list").len(), 1, "one record per attempt");
}

/// A lease left by a worker that died is free once it expires, or at once when its owner
/// drops its leases at its next start; another owner's leases are left alone.
pub async fn expired_and_released_leases_make_items_claimable_again(b: &dyn Backend) {
    let store = b.open("n1").await;
    let (x, y) = (item("job"), item("job"));
    store.enqueue(&x, &queued(&x), 10).await.expect("enqueue");
    store.enqueue(&y, &queued(&y), 10).await.expect("enqueue");
    let now = Utc::now().trunc_subsecs(6) + Duration::milliseconds(5);
    assert_eq!(store.claim_queued("dead", now, now + Duration::seconds(1), 1).await.expect("claim").len(), 1);
    assert_eq!(store.claim_queued("alive", now, now + Duration::seconds(60), 1).await.expect("claim").len(), 1);
    assert!(store.claim_queued("n1", now, now + Duration::seconds(60), 10).await.expect("claim").is_empty());
    let after = now + Duration::seconds(2);
    let got = store.claim_queued("n1", after, after + Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(got.len(), 1, "the expired lease is taken again, the live one is not");
    assert_eq!(store.release_leases(Some("n1")).await.expect("release"), 1);
    assert_eq!(store.claim_queued("n3", after, after + Duration::seconds(60), 10).await.expect("claim").len(), 1);
    assert!(store.claim_queued("n4", after, after + Duration::seconds(60), 10).await.expect("claim").is_empty());
    // The leases of owners not live are dropped; the live ones' stay.
    assert_eq!(store.release_leases_except(&["n3".to_owned()]).await.expect("release"), 1, "alive's lease goes");
    assert_eq!(store.claim_queued("n4", after, after + Duration::seconds(60), 10).await.expect("claim").len(), 1);
    assert_eq!(store.release_leases_except(&["n3".to_owned(), "n4".to_owned()]).await.expect("release"), 0);
    // Every owner's leases are dropped with `None`.
    assert_eq!(store.release_leases(None).await.expect("release"), 2);
    assert_eq!(store.claim_queued("n5", after, after + Duration::seconds(60), 10).await.expect("claim").len(), 2);
}

/// A call given up lands in the dead letters with its input, attempts and last error (and
/// leaves the queue in the same commit); it can be retried (back in the queue under its
/// request id, with a new queued record) or discarded; both survive a reopen.
pub async fn dead_letters_are_kept_retried_and_discarded(b: &dyn Backend) {
    let store = b.open("n1").await;
    let (x, y) = (item("job"), item("other"));
    for i in [&x, &y] {
        store.enqueue(i, &queued(i), 10).await.expect("enqueue");
    }
    let letter = |i: &QueueItem, attempts: u32, ms: i64| DeadLetter {
        id: i.id,
        function: i.function.clone(),
        input: i.input.clone(),
        trigger: i.trigger,
        attempts,
        last_error: Some(ErrorInfo::new("Timeout", "took too long")),
        last_execution_id: Some(i.execution_id),
        enqueued_at: i.enqueued_at,
        failed_at: Utc::now() + Duration::milliseconds(ms),
    };
    let (lx, ly) = (letter(&x, 3, 0), letter(&y, 1, 10));
    store.dead_letter(&lx).await.expect("dead letter");
    store.dead_letter(&ly).await.expect("dead letter");
    assert_eq!(store.queue_depth().await.expect("depth"), 0, "a dead letter is out of the queue");
    let store = b.open("n1").await;
    assert_eq!(store.count_dead_letters().await.expect("count"), 2);
    let listed = store.list_dead_letters(10).await.expect("list");
    assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), [y.id, x.id], "newest first");
    let got = store.get_dead_letter(x.id).await.expect("get").expect("present");
    assert_eq!((got.input.as_str(), got.attempts, got.last_error.clone()), (x.input.as_str(), 3, lx.last_error.clone()));
    assert_eq!(store.get_dead_letter(Uuid::now_v7()).await.expect("get"), None);

    let retry = QueueItem { attempt: 4, first_attempt: 4, execution_id: Uuid::now_v7(), ..x.clone() };
    assert_eq!(store.retry_dead_letter(&retry, &queued(&retry), 10).await.expect("retry"), Enqueued::Accepted);
    assert_eq!(store.retry_dead_letter(&retry, &queued(&retry), 10).await.expect("retry"), Enqueued::NotFound, "once");
    assert_eq!(store.get_dead_letter(x.id).await.expect("get"), None);
    let now = Utc::now().trunc_subsecs(6) + Duration::milliseconds(5);
    let claimed = store.claim_queued("n1", now, now + Duration::seconds(60), 10).await.expect("claim");
    assert_eq!(claimed, [retry.clone()]);
    assert_eq!(store.get_execution(retry.execution_id).await.expect("get").map(|e| (e.status, e.attempt)), Some((ExecutionStatus::Queued, 4)));

    assert!(store.delete_dead_letter(y.id).await.expect("discard"));
    assert!(!store.delete_dead_letter(y.id).await.expect("discard"), "gone");
    assert_eq!(store.count_dead_letters().await.expect("count"), 0);
}
