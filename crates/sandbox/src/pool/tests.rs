//! Pool logic on the in-process [`FakeBackend`]: no Docker, each test well under two seconds.
//! The fake's counters and sandbox ids are the evidence: which sandbox served which call,
//! how many were started and removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fnbox_core::{Function, Language, Runtime};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::*;
use crate::backend::SandboxId;
use crate::fake::FakeBackend;
use crate::protocol::{InvokeContext, ResultStatus};
use crate::sandbox::InvokeOutcome;

/// No pre-started sandboxes unless a test asks (they would blur the counts), no reaping for
/// the host's memory, short start timeouts.
fn config() -> PoolConfig {
    PoolConfig {
        prewarm_per_key: 0,
        max_prewarm_per_key: 0,
        max_queue_per_function: 16,
        ready_timeout: Duration::from_secs(2),
        check_timeout: Duration::from_secs(2),
        min_available_memory: 0.0,
        ..PoolConfig::default()
    }
}

fn setup(config: PoolConfig) -> (Arc<FakeBackend>, Pools) {
    let fake = Arc::new(FakeBackend::new());
    let pools = Pools::new(fake.clone(), config);
    (fake, pools)
}

fn function(name: &str, code: &str, concurrency: u32) -> Function {
    let now = chrono::Utc::now();
    Function {
        id: Uuid::now_v7(),
        name: name.into(),
        description: String::new(),
        language: Language::Python,
        runtime: Runtime::Docker,
        code: code.into(),
        timeout_ms: 1000,
        memory_mb: 128,
        concurrency,
        max_retries: 2,
        env: BTreeMap::new(),
        sample_input: None,
        dependencies: None,
        build: None,
        serving: None,
        http: Default::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn next_version(f: &Function) -> Function {
    Function { version: f.version + 1, ..f.clone() }
}

fn key(f: &Function) -> SandboxKey {
    SandboxKey::for_function(f)
}

struct Called {
    id: SandboxId,
    cold: bool,
    prewarmed: bool,
}

/// One invocation as the engine makes it: the sandbox goes back for reuse only when the call
/// completed cleanly.
async fn call(pools: &Pools, f: &Function) -> Called {
    let mut lease = pools.acquire(f).await.unwrap_or_else(|e| panic!("acquire `{}`: {e}", f.name));
    let (cold, prewarmed) = (lease.cold, lease.prewarmed);
    let (id, outcome) = invoke(&mut lease, f).await;
    let reusable = matches!(&outcome, InvokeOutcome::Completed { result, leftover, .. }
        if result.status == ResultStatus::Success && leftover.is_empty());
    pools.release(lease, reusable);
    Called { id, cold, prewarmed }
}

async fn invoke(lease: &mut Lease, f: &Function) -> (SandboxId, InvokeOutcome) {
    let event = RawValue::from_string(r#"{"n":1}"#.into()).expect("raw event");
    let ctx = InvokeContext {
        execution_id: Uuid::now_v7().to_string(),
        function: f.name.clone(),
        version: f.version,
        memory_mb: f.memory_mb,
        timeout_ms: f.timeout_ms,
        deadline_ms: 0,
    };
    let sb = lease.sandbox().expect("a lease holds a sandbox");
    let id = sb.id.clone();
    let outcome = sb.invoke(&ctx.execution_id, &event, &ctx, Duration::from_millis(u64::from(f.timeout_ms))).await;
    (id, outcome)
}

/// Waits (up to 2 s) for something the pools do in the background (stopping, refilling).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

fn stats_for(pools: &Pools, f: &Function) -> Option<FunctionPoolStats> {
    pools.stats().functions.into_iter().find(|s| s.function == f.name && s.version == f.version)
}

#[tokio::test]
async fn warm_sandbox_serves_only_its_own_function_version() {
    let (fake, pools) = setup(config());
    let f = function("f", "echo", 1);
    let first = call(&pools, &f).await;
    assert!(first.cold && !first.prewarmed);
    let again = call(&pools, &f).await;
    assert!(!again.cold, "the second call is warm");
    assert_eq!(again.id, first.id);

    let g = function("g", "echo", 1);
    let other = call(&pools, &g).await;
    assert!(other.cold, "another function never gets f's sandbox");
    assert_ne!(other.id, first.id);

    let f2 = next_version(&f);
    let v2 = call(&pools, &f2).await;
    assert!(v2.cold, "a new version never gets the old version's sandbox");
    assert!(v2.id != first.id && v2.id != other.id);
    assert_eq!(call(&pools, &f2).await.id, v2.id);
    assert_eq!((fake.created(), fake.started(), fake.stopped()), (3, 3, 0));
    assert_eq!(pools.stats().cold_starts, 3);
}

#[tokio::test]
async fn prewarmed_generic_sandbox_serves_a_first_call_and_is_refilled() {
    let (fake, pools) = setup(PoolConfig { prewarm_per_key: 1, max_prewarm_per_key: 1, ..config() });
    let f = function("f", "echo", 1);
    let label = key_label(&key(&f));
    let generic = |p: &Pools| p.stats().generic.get(&label).copied().unwrap_or(0);
    pools.prewarm(&[key(&f)], 1);
    eventually("one generic sandbox is up", || generic(&pools) == 1).await;
    let pre = fake.live_ids();
    assert_eq!(pre.len(), 1);

    let first = call(&pools, &f).await;
    assert!(first.cold && first.prewarmed, "a cold start from a pre-started sandbox");
    assert_eq!(first.id, pre[0]);
    eventually("the generic pool is refilled", || generic(&pools) == 1 && fake.started() == 2).await;
    let stats = pools.stats();
    assert_eq!((stats.cold_starts, stats.prewarmed_cold_starts), (1, 1));
    let refilled: Vec<_> = fake.live_ids().into_iter().filter(|id| *id != first.id).collect();
    assert_eq!(refilled.len(), 1, "one new generic sandbox besides the warm one");
}

#[tokio::test]
async fn retire_fails_waiting_calls_and_reuses_no_old_sandbox() {
    let (fake, pools) = setup(config());
    let f = function("f", "echo", 1);
    let mut lease = pools.acquire(&f).await.expect("acquire");
    let (old_id, _) = invoke(&mut lease, &f).await;
    let waiter = tokio::spawn({
        let (pools, f) = (pools.clone(), f.clone());
        async move { pools.acquire(&f).await.map(|_| ()) }
    });
    eventually("the second call waits", || stats_for(&pools, &f).is_some_and(|s| s.queued == 1)).await;

    pools.retire(f.id, 2);
    let waited = waiter.await.expect("join");
    assert!(matches!(waited, Err(PoolError::Retired(_))), "the waiting call gives up: {waited:?}");
    pools.release(lease, true);
    eventually("the old version's sandbox is removed", || fake.is_removed(&old_id)).await;
    assert!(matches!(pools.acquire(&f).await, Err(PoolError::Retired(_))), "the old version starts nothing");

    let f2 = next_version(&f);
    let v2 = call(&pools, &f2).await;
    assert!(v2.cold);
    assert_ne!(v2.id, old_id);
    assert_eq!(fake.created(), 2);
    assert!(!pools.has_idle(f.id, 1) && pools.has_idle(f.id, 2));
}

#[tokio::test]
async fn raising_concurrency_lets_calls_overlap_and_lowering_serialises_them() {
    let (fake, pools) = setup(config());
    // Calls longer than a cold start is expected to take, so the pool starts sandboxes
    // instead of waiting for the busy one.
    let one = function("f", "sleep:300", 1);
    let calls = |f: Function, n: usize| {
        let pools = pools.clone();
        async move { futures_util::future::join_all((0..n).map(|_| call(&pools, &f))).await }
    };
    calls(one.clone(), 2).await;
    assert_eq!(fake.peak_running(), 1, "concurrency 1: no overlap");

    let four = Function { concurrency: 4, ..one.clone() };
    pools.set_concurrency(&four);
    fake.reset_peak();
    let served = calls(four.clone(), 4).await;
    assert_eq!(fake.peak_running(), 4, "concurrency 4: four calls at once");
    let distinct: std::collections::HashSet<_> = served.iter().map(|c| c.id.clone()).collect();
    assert_eq!(distinct.len(), 4);

    pools.set_concurrency(&one);
    fake.reset_peak();
    calls(one.clone(), 2).await;
    assert_eq!(fake.peak_running(), 1, "back to 1: no overlap again");
}

#[tokio::test]
async fn queue_full_past_the_bound() {
    let (_fake, pools) = setup(PoolConfig { max_queue_per_function: 1, ..config() });
    let f = function("f", "echo", 1);
    let mut lease = pools.acquire(&f).await.expect("acquire");
    let (held, _) = invoke(&mut lease, &f).await;
    let waiter = tokio::spawn({
        let (pools, f) = (pools.clone(), f.clone());
        async move { call(&pools, &f).await }
    });
    eventually("one call waits", || stats_for(&pools, &f).is_some_and(|s| s.queued == 1)).await;
    assert!(matches!(pools.acquire(&f).await, Err(PoolError::QueueFull(_))), "a second waiter is refused");
    pools.release(lease, true);
    let waited = waiter.await.expect("join");
    assert!(!waited.cold, "the waiter got the released sandbox");
    assert_eq!(waited.id, held);
}

#[tokio::test]
async fn maintain_removes_sandboxes_past_their_keep_alive() {
    let (fake, pools) = setup(PoolConfig { keep_alive: Duration::from_millis(150), ..config() });
    let f = function("f", "echo", 1);
    let g = function("g", "echo", 1);
    let warm = call(&pools, &f).await;
    assert_eq!(pools.check(&g).await.expect("check"), None);
    pools.maintain();
    assert!(pools.has_idle(f.id, 1), "still within the keep-alive");
    assert_eq!(pools.stats().checked, 1);
    assert_eq!(fake.stopped(), 0);

    tokio::time::sleep(Duration::from_millis(200)).await;
    pools.maintain();
    assert!(!pools.has_idle(f.id, 1));
    let stats = pools.stats();
    assert!(stats.functions.is_empty(), "the unused pool is dropped too");
    assert_eq!((stats.checked, stats.sandboxes), (0, 0));
    eventually("both expired sandboxes are removed", || fake.stopped() == 2 && fake.live() == 0).await;
    assert!(fake.is_removed(&warm.id));
}

/// Two sandboxes fit; `a`'s is idle and `b`'s busy. A call of `c` evicts `a`'s, then a call
/// of `d` finds nothing idle to evict and is refused.
async fn budget_scenario(config: PoolConfig) {
    let (fake, pools) = setup(config);
    let (a, b, c, d) = (function("a", "echo", 1), function("b", "echo", 1), function("c", "echo", 1), function("d", "echo", 1));
    let idle = call(&pools, &a).await;
    let _busy_b = pools.acquire(&b).await.expect("b fits");
    let _busy_c = pools.acquire(&c).await.expect("c fits once a's idle sandbox is evicted");
    assert_eq!(pools.stats().evictions, 1);
    assert!(!pools.has_idle(a.id, 1));
    eventually("a's idle sandbox is removed", || fake.is_removed(&idle.id)).await;
    match pools.acquire(&d).await {
        Err(PoolError::Sandbox(SandboxError::Capacity(_))) => {}
        Err(e) => panic!("expected Capacity, got {e}"),
        Ok(_) => panic!("d got a sandbox past the budget"),
    }
    let room = pools.room();
    assert_eq!((room.sandboxes, room.running, room.memory_committed_mb), (2, 2, 256));
    assert_eq!(fake.created(), 3, "nothing was started for d");
}

#[tokio::test]
async fn count_budget_evicts_idle_sandboxes_of_other_functions_before_refusing() {
    budget_scenario(PoolConfig { max_sandboxes: 2, ..config() }).await;
}

#[tokio::test]
async fn memory_budget_evicts_idle_sandboxes_of_other_functions_before_refusing() {
    budget_scenario(PoolConfig { memory_budget_mb: 300, ..config() }).await;
}

#[tokio::test]
async fn a_sandbox_that_timed_out_or_died_is_never_reused() {
    let (fake, pools) = setup(config());
    let hang = Function { timeout_ms: 50, ..function("hang", "hang", 1) };
    let mut lease = pools.acquire(&hang).await.expect("acquire");
    let (timed_out, outcome) = invoke(&mut lease, &hang).await;
    assert!(matches!(outcome, InvokeOutcome::TimedOut { .. }));
    pools.release(lease, false);
    eventually("the timed-out sandbox is removed", || fake.is_removed(&timed_out)).await;
    let mut lease = pools.acquire(&hang).await.expect("acquire");
    assert!(lease.cold);
    assert_ne!(lease.sandbox().expect("sandbox").id, timed_out);
    drop(lease);

    // Released as reusable by a careless caller: the pool still sees the channel closed.
    let die = function("die", "die", 1);
    let mut lease = pools.acquire(&die).await.expect("acquire");
    let (died, outcome) = invoke(&mut lease, &die).await;
    assert!(matches!(outcome, InvokeOutcome::Died { .. }));
    pools.release(lease, true);
    assert!(!pools.has_idle(die.id, 1), "a dead sandbox does not count as idle");
    let lease = pools.acquire(&die).await.expect("acquire");
    assert!(lease.cold, "the dead sandbox was not handed out again");
    drop(lease);
    eventually("the dead sandbox is removed", || fake.is_removed(&died)).await;

    // Crashed while idle (an OOM kill between calls).
    let f = function("f", "echo", 1);
    let warm = call(&pools, &f).await;
    assert!(fake.kill(&warm.id));
    eventually("the killed sandbox no longer counts as idle", || !pools.has_idle(f.id, 1)).await;
    let next = call(&pools, &f).await;
    assert!(next.cold);
    assert_ne!(next.id, warm.id);
    eventually("the killed sandbox is removed", || fake.is_removed(&warm.id)).await;
}

#[tokio::test]
async fn a_checked_sandbox_serves_only_its_own_versions_first_call() {
    let (fake, pools) = setup(config());
    let f = function("f", "echo", 1);
    assert_eq!(pools.check(&f).await.expect("check"), None);
    let checked = fake.live_ids();
    assert_eq!((checked.len(), pools.stats().checked), (1, 1));
    assert!(!pools.has_idle(f.id, 1), "a checked sandbox is not a warm one");
    assert!(pools.warm().is_empty());

    let g = function("g", "echo", 1);
    assert_ne!(call(&pools, &g).await.id, checked[0], "another function never gets it");
    assert_ne!(call(&pools, &next_version(&f)).await.id, checked[0], "nor another version");
    assert_eq!(pools.stats().checked, 1);

    let first = call(&pools, &f).await;
    assert_eq!(first.id, checked[0], "its own version's first call takes it");
    assert!(first.cold && first.prewarmed);
    assert_eq!(pools.stats().checked, 0);

    let bad = function("bad", "syntax", 1);
    let err = pools.check(&bad).await.expect("check").expect("does not compile");
    assert_eq!(err.kind, "SyntaxError");
    assert_eq!(pools.stats().checked, 0, "code that does not compile keeps no sandbox");
    eventually("its sandbox is removed", || fake.stopped() == 1).await;
    assert_eq!(fake.created(), 4);
}

#[tokio::test]
async fn cluster_queries_report_idle_warm_versions_and_room() {
    let (_fake, pools) = setup(config());
    assert_eq!(pools.room(), Room { sandboxes: 0, max_sandboxes: 64, memory_committed_mb: 0, memory_budget_mb: 8192, running: 0 });
    let f = function("f", "echo", 2);
    let g = function("g", "echo", 1);

    let lease = pools.acquire(&f).await.expect("acquire");
    assert!(!pools.has_idle(f.id, 1), "a busy sandbox is not idle");
    assert_eq!(pools.warm(), vec![WarmVersion { function: f.id, version: 1, idle: 0, busy: 1 }]);
    assert_eq!((pools.room().sandboxes, pools.room().running, pools.room().memory_committed_mb), (1, 1, 128));
    pools.release(lease, true);
    assert!(pools.has_idle(f.id, 1));
    assert!(!pools.has_idle(f.id, 2) && !pools.has_idle(g.id, 1), "exactly that function version");
    assert_eq!(pools.room().running, 0);

    let _busy_g = pools.acquire(&g).await.expect("acquire");
    let mut expected = vec![
        WarmVersion { function: f.id, version: 1, idle: 1, busy: 0 },
        WarmVersion { function: g.id, version: 1, idle: 0, busy: 1 },
    ];
    expected.sort_by_key(|w| (w.function, w.version));
    assert_eq!(pools.warm(), expected);
    let room = pools.room();
    assert_eq!((room.sandboxes, room.running, room.memory_committed_mb), (2, 1, 256));

    pools.retire(f.id, 2);
    assert!(!pools.has_idle(f.id, 1));
    assert_eq!(pools.warm(), vec![WarmVersion { function: g.id, version: 1, idle: 0, busy: 1 }]);
    assert_eq!(pools.room().sandboxes, 1, "the retired version's sandbox gave its room back");

    let json = serde_json::to_string(&pools.warm()).expect("serialize");
    assert_eq!(serde_json::from_str::<Vec<WarmVersion>>(&json).expect("deserialize"), pools.warm());
    let json = serde_json::to_string(&pools.room()).expect("serialize");
    assert_eq!(serde_json::from_str::<Room>(&json).expect("deserialize"), pools.room());
}

#[tokio::test]
async fn failed_and_slow_starts_give_their_room_back() {
    let (fake, pools) = setup(PoolConfig { ready_timeout: Duration::from_millis(50), ..config() });
    let f = function("f", "echo", 1);
    fake.fail_creates(true);
    assert!(matches!(pools.acquire(&f).await, Err(PoolError::Sandbox(SandboxError::Unavailable(_)))));
    assert_eq!(pools.room().sandboxes, 0);
    fake.fail_creates(false);

    fake.delay_ready(Duration::from_millis(300));
    assert!(matches!(pools.acquire(&f).await, Err(PoolError::Sandbox(SandboxError::Start(_)))));
    assert_eq!(pools.room().sandboxes, 0);
    assert_eq!((fake.created(), fake.stopped(), fake.live()), (1, 1, 0), "the slow sandbox was removed");

    fake.delay_ready(Duration::ZERO);
    assert!(call(&pools, &f).await.cold);
    assert_eq!(pools.stats().sandboxes_started, 1);
}

fn sized(name: &str, memory_mb: u32) -> Function {
    Function { memory_mb, ..function(name, "echo", 1) }
}

#[tokio::test]
async fn a_function_of_any_size_starts_from_a_pre_started_sandbox_given_its_limit() {
    let (fake, pools) = setup(PoolConfig { prewarm_per_key: 1, max_prewarm_per_key: 1, ..config() });
    let (small, big) = (sized("small", 128), sized("big", 1024));
    pools.prewarm(&[key(&small), key(&big)], 1);
    eventually("two generic sandboxes are up", || pools.stats().generic.values().sum::<usize>() == 2).await;
    let by_size = |mb: u32| fake.live_ids().into_iter().find(|id| fake.memory_limit(id) == Some(mb)).expect("a sandbox of that size");
    let (was_128, was_1024) = (by_size(128), by_size(1024));

    // 448 MB: no sandbox of that size; the smallest larger one is lowered to it.
    let odd = sized("odd", 448);
    let first = call(&pools, &odd).await;
    assert!(first.cold && first.prewarmed, "a cold start from a pre-started sandbox");
    assert_eq!(first.id, was_1024, "the smallest larger size is taken");
    assert_eq!(fake.memory_limit(&first.id), Some(448), "its limit is the function's now");
    // 2048 MB: nothing larger; the largest smaller one is raised.
    let huge = sized("huge", 2048);
    let second = call(&pools, &huge).await;
    assert!(second.prewarmed);
    assert_eq!(fake.memory_limit(&second.id), Some(2048));
    assert!(second.id == was_128 || fake.memory_limit(&was_128) == Some(128), "the 128 MB one or its refill");

    let stats = pools.stats();
    assert_eq!(stats.resized_sandboxes, 2);
    assert_eq!((stats.cold_starts, stats.prewarmed_cold_starts), (2, 2));
    // The budget counts each sandbox at the limit it has now.
    eventually("the taken sizes are refilled", || pools.stats().generic.values().sum::<usize>() >= 2).await;
    let committed: u64 = fake.live_ids().iter().filter_map(|id| fake.memory_limit(id)).map(u64::from).sum();
    assert_eq!(pools.stats().memory_committed_mb, committed);
    // Warm calls keep the resized sandbox.
    assert_eq!(call(&pools, &odd).await.id, first.id);
}

#[tokio::test]
async fn a_sandbox_that_cannot_be_resized_is_removed_and_a_new_one_started() {
    let (fake, pools) = setup(PoolConfig { prewarm_per_key: 1, max_prewarm_per_key: 1, ..config() });
    let base = sized("base", 128);
    pools.prewarm(&[key(&base)], 1);
    eventually("a generic sandbox is up", || pools.stats().generic.values().sum::<usize>() == 1).await;
    let pre = fake.live_ids()[0].clone();
    fake.fail_resizes(true);
    let odd = sized("odd", 320);
    let first = call(&pools, &odd).await;
    assert!(first.cold && !first.prewarmed, "a full start after the failed resize");
    assert_ne!(first.id, pre);
    assert_eq!(fake.memory_limit(&first.id), Some(320));
    eventually("the sandbox that kept its old limit is removed", || fake.is_removed(&pre)).await;
    let label = key_label(&key(&base));
    eventually("the 128 MB pool is refilled", || pools.stats().generic.get(&label) == Some(&1)).await;
    let committed: u64 = fake.live_ids().iter().filter_map(|id| fake.memory_limit(id)).map(u64::from).sum();
    assert_eq!(pools.stats().memory_committed_mb, committed);
}

#[tokio::test]
async fn new_functions_count_as_demand_and_their_first_calls_need_no_start() {
    let (_fake, pools) = setup(PoolConfig { prewarm_per_key: 1, max_prewarm_per_key: 4, ..config() });
    let fs: Vec<Function> = (0..8).map(|i| function(&format!("new-{i}"), "echo", 1)).collect();
    pools.prewarm(&[key(&fs[0])], 1);
    eventually("a generic sandbox is up", || pools.stats().generic.values().sum::<usize>() == 1).await;
    for f in &fs {
        assert_eq!(pools.check(f).await.expect("check"), None);
    }
    // Eight creates in a row: the generic pool grows past its base for what comes next.
    eventually("the generic pool grows with the creates", || pools.stats().generic.values().sum::<usize>() == 3).await;
    for f in &fs {
        let first = call(&pools, f).await;
        assert!(first.cold && first.prewarmed, "{}: its first call took the sandbox that checked it", f.name);
    }
    assert_eq!(pools.stats().checked, 0);
    assert_eq!(pools.stats().prewarmed_cold_starts, 8);
}
