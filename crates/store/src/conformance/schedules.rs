//! Schedules: stored as written, and a tick fired once however many nodes try.

use chrono::{Duration, DurationRound, Utc};
use fnbox_core::{Execution, ExecutionStatus, Fired, QueueItem, Schedule, Trigger};
use uuid::Uuid;

use super::{execution, Backend};

fn tick_item(function: &str) -> (QueueItem, Execution) {
    let now = Utc::now();
    let item = QueueItem {
        id: Uuid::now_v7(),
        function: function.into(),
        input: "{}".into(),
        trigger: Trigger::Schedule,
        attempt: 1,
        first_attempt: 1,
        execution_id: Uuid::now_v7(),
        enqueued_at: now,
        due_at: now,
        last_error: None,
    };
    let queued = Execution {
        id: item.execution_id,
        status: ExecutionStatus::Queued,
        output: None,
        error: None,
        trigger: Trigger::Schedule,
        request_id: Some(item.id),
        ..execution(function, ExecutionStatus::Success)
    };
    (item, queued)
}

/// Insert, read, list by function, change, due-by-time, delete (one, and a function's all).
pub async fn schedules_round_trip_and_come_due(b: &dyn Backend) {
    let store = b.open("n1").await;
    let now = Utc::now().duration_trunc(Duration::seconds(1)).expect("trunc");
    let mut a = Schedule::new("job", "* * * * * *", "Europe/Paris", r#"{"n":18446744073709551617}"#.into(), true, now).expect("schedule");
    a.next_run = Some(now + Duration::seconds(1));
    let off = Schedule::new("job", "0 9 * * 1", "UTC", "{}".into(), false, now + Duration::milliseconds(1)).expect("schedule");
    let other = Schedule::new("other", "*/5 * * * *", "UTC", "[]".into(), true, now + Duration::milliseconds(2)).expect("schedule");
    for s in [&a, &off, &other] {
        store.insert_schedule(s).await.expect("insert");
    }
    let store = b.open("n1").await;
    assert_eq!(store.get_schedule(a.id).await.expect("get"), Some(a.clone()), "as written");
    assert_eq!(store.get_schedule(Uuid::now_v7()).await.expect("get"), None);
    let ids = |v: Vec<Schedule>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_schedules(Some("job")).await.expect("list")), [a.id, off.id]);
    assert_eq!(ids(store.list_schedules(None).await.expect("list")), [a.id, off.id, other.id]);

    assert!(store.due_schedules(now, 10).await.expect("due").is_empty(), "not yet");
    let due = store.due_schedules(now + Duration::seconds(1), 10).await.expect("due");
    assert_eq!(ids(due), [a.id], "enabled, due; the disabled one never is");

    let mut changed = a.clone();
    changed.enabled = false;
    changed.next_run = None;
    changed.input = "{}".into();
    assert!(store.update_schedule(&changed).await.expect("update"));
    assert_eq!(store.get_schedule(a.id).await.expect("get"), Some(changed.clone()));
    assert!(store.due_schedules(now + Duration::seconds(10), 10).await.expect("due").is_empty());
    assert!(!store.update_schedule(&Schedule { id: Uuid::now_v7(), ..changed }).await.expect("update"), "no such schedule");

    assert!(store.delete_schedule(off.id).await.expect("delete"));
    assert!(!store.delete_schedule(off.id).await.expect("delete"));
    assert_eq!(store.delete_schedules_of("job").await.expect("delete of"), 1);
    assert_eq!(ids(store.list_schedules(None).await.expect("list")), [other.id]);
}

/// Several nodes fire the same tick at once: one advances it and queues the call (one
/// commit), the others hear `Taken` and write nothing; a full queue advances without a call.
pub async fn a_tick_fires_once_whoever_tries(b: &dyn Backend) {
    let nodes = [b.open("n1").await, b.open("n2").await, b.open("n3").await];
    let now = Utc::now().duration_trunc(Duration::seconds(1)).expect("trunc");
    let mut s = Schedule::new("job", "* * * * * *", "UTC", "{}".into(), true, now).expect("schedule");
    let tick = now + Duration::seconds(1);
    s.next_run = Some(tick);
    nodes[0].insert_schedule(&s).await.expect("insert");
    let tries: Vec<_> = nodes.iter().map(|n| (n.clone(), tick_item("job"))).collect();
    let fire = |i: usize| {
        let (n, (item, queued)) = &tries[i];
        n.fire_schedule(s.id, tick, Some(tick + Duration::seconds(1)), item, queued, 100)
    };
    let (r0, r1, r2) = tokio::join!(fire(0), fire(1), fire(2));
    let results = [r0, r1, r2];
    let fired: Vec<usize> = results.iter().enumerate().filter(|(_, r)| matches!(r, Ok(Fired::Fired))).map(|(i, _)| i).collect();
    assert_eq!(fired.len(), 1, "exactly one fire: {results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(Fired::Fired | Fired::Taken))), "{results:?}");
    assert_eq!(nodes[0].queue_depth().await.expect("depth"), 1, "one call queued");
    for (i, (_, (_, queued))) in tries.iter().enumerate() {
        let rec = nodes[0].get_execution(queued.id).await.expect("get");
        assert_eq!(rec.is_some(), i == fired[0], "only the winner's queued record exists");
    }
    let after = nodes[1].get_schedule(s.id).await.expect("get").expect("present");
    assert_eq!((after.next_run, after.last_run), (Some(tick + Duration::seconds(1)), Some(tick)));
    // The same tick again (a node late with an old read): taken.
    let (item, queued) = tick_item("job");
    assert_eq!(nodes[2].fire_schedule(s.id, tick, Some(tick + Duration::seconds(1)), &item, &queued, 100).await.expect("fire"), Fired::Taken);

    // A full queue: the tick is passed, nothing is queued.
    let next = tick + Duration::seconds(1);
    let (item, queued) = tick_item("job");
    assert_eq!(nodes[0].fire_schedule(s.id, next, Some(next + Duration::seconds(1)), &item, &queued, 1).await.expect("fire"), Fired::Skipped);
    assert_eq!(nodes[0].get_execution(queued.id).await.expect("get"), None);
    assert_eq!(nodes[0].get_schedule(s.id).await.expect("get").and_then(|s| s.next_run), Some(next + Duration::seconds(1)));
    assert_eq!(nodes[0].queue_depth().await.expect("depth"), 1);
    // A disabled schedule does not fire.
    let mut off = nodes[0].get_schedule(s.id).await.expect("get").expect("present");
    off.enabled = false;
    nodes[0].update_schedule(&off).await.expect("update");
    let at = next + Duration::seconds(1);
    let (item, queued) = tick_item("job");
    assert_eq!(nodes[0].fire_schedule(s.id, at, None, &item, &queued, 100).await.expect("fire"), Fired::Taken);
}
