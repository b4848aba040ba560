//! The conformance suite: one `pub async fn` per behaviour, each taking a [`Backend`] that
//! opens the store under test (again, on the same data, as often as a test needs: reopening
//! is how a restart is tested). Every function in [`ALL`] must be run on every backend;
//! `tests/conformance.rs` checks that its list matches.
//!
//! The tests panic on failure (they are tests): `expect` is the point here.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fnbox_core::metrics::MetricsFilter;
use fnbox_core::{
    ErrorInfo, Execution, ExecutionFilter, ExecutionStatus, Function, FunctionSpec, HttpAccess, KeyStore, Language, Limits, NewKey,
    RawJson, Role, Runtime, Store, StoreError, Trigger, TriggerFilter,
};
use uuid::Uuid;

mod queue;
mod schedules;
mod versions;
pub use queue::*;
pub use schedules::*;
pub use versions::*;

/// A store with everything a backend implements.
pub trait StoreUnderTest: Store + KeyStore {}
impl<T: Store + KeyStore> StoreUnderTest for T {}

/// A backend under test: opens its store on the same data each time.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens (or reopens) the store as cluster node `node`.
    async fn open(&self, node: &str) -> Arc<dyn StoreUnderTest>;
    /// Whether several nodes may share this backend's data at once (PostgreSQL), so that
    /// each recovers only its own interrupted executions. SQLite is one node's own.
    fn shared_by_nodes(&self) -> bool;
}

/// Every test of the suite, by name.
pub const ALL: &[&str] = &[
    "functions_round_trip_and_conflict",
    "dependencies_build_and_serving_version_round_trip",
    "http_setting_round_trips_and_http_runs_filter",
    "compare_and_swap_lets_one_writer_win",
    "unfinished_executions_become_interrupted_records_at_the_next_open",
    "recovery_is_limited_to_this_node",
    "node_is_recorded_and_read_back",
    "acknowledged_records_survive_reopen",
    "executions_survive_reopen_and_filter",
    "filters_and_paging",
    "search_finds_text_in_logs_errors_and_output",
    "a_page_of_executions_is_bounded_by_bytes",
    "comparison_runs_are_left_out_unless_asked_for",
    "last_execution_of_each_function_leaves_comparisons_out",
    "failures_carry_the_type_and_the_start_of_the_message_only",
    "samples_follow_the_metrics_filter",
    "prune_by_age_and_count",
    "comparisons_round_trip",
    "keys_insert_list_revoke_touch_and_version",
    "async_calls_are_accepted_claimed_once_retried_and_completed",
    "a_final_record_replaces_a_queued_one_never_the_reverse",
    "expired_and_released_leases_make_items_claimable_again",
    "dead_letters_are_kept_retried_and_discarded",
    "schedules_round_trip_and_come_due",
    "a_tick_fires_once_whoever_tries",
    "every_version_is_kept_with_its_function",
    "versions_are_bounded_and_go_with_their_function",
    "test_events_are_saved_bounded_and_go_with_their_function",
];

/// How long a test waits for a started execution to be journalled as in flight (both
/// backends journal after 100 ms).
const PAST_GRACE: Duration = Duration::from_millis(300);

/// How much of an error message `failures` returns.
const FAILURE_MESSAGE_CHARS: usize = 1024;

/// The exact text an output must come back as (a number past u64: no rounding allowed).
const OUTPUT: &str = r#"[1,"two",18446744073709551617,1.50]"#;

pub fn function(name: &str) -> Function {
    let spec: FunctionSpec = serde_json::from_value(serde_json::json!({
        "name": name, "language": "python", "code": "def handler(e): return e",
        "env": {"A": "1"}, "sample_input": {"n": 1, "b": [true]}
    }))
    .expect("spec");
    Function::from_spec(spec, &Limits::default(), Utc::now())
}

pub fn execution(function: &str, status: ExecutionStatus) -> Execution {
    Execution {
        id: Uuid::now_v7(),
        function: function.into(),
        version: 1,
        runtime: Runtime::Gvisor,
        language: Language::Python,
        input: "{}".into(),
        output: (status == ExecutionStatus::Success).then(|| RawJson::parse(OUTPUT.into()).expect("json")),
        output_truncated: false,
        status,
        error: (status != ExecutionStatus::Success).then(|| ErrorInfo::new("ValueError", "bad")),
        logs: "line\n".into(),
        started_at: Utc::now(),
        duration_ms: 1.5,
        exec_ms: Some(0.5),
        memory_bytes: Some(1 << 20),
        cold_start: true,
        trigger: Trigger::Api,
        node: Some("n1".into()),
        attempt: 1,
        request_id: None,
    }
}

fn ids(es: &[Execution]) -> Vec<Uuid> {
    es.iter().map(|e| e.id).collect()
}

async fn list(store: &dyn StoreUnderTest, filter: ExecutionFilter) -> Vec<Uuid> {
    ids(&store.list_executions(&filter).await.expect("list"))
}

pub async fn functions_round_trip_and_conflict(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut f = function("a");
    store.insert_function(&f).await.expect("insert");
    assert!(matches!(store.insert_function(&f).await, Err(StoreError::Conflict(_))));
    let mut other = function("a");
    other.id = Uuid::now_v7();
    assert!(matches!(store.insert_function(&other).await, Err(StoreError::Conflict(_))), "names are unique");
    assert_eq!(store.get_function("a").await.expect("get"), Some(f.clone()));
    assert_eq!(store.get_function("nope").await.expect("get"), None);
    let read_at = f.updated_at;
    f.version = 2;
    f.code = "x".into();
    f.updated_at = read_at + chrono::Duration::milliseconds(5);
    store.update_function(&f, read_at).await.expect("update");
    // A second writer that read the same state loses: the row changed under it.
    assert!(matches!(store.update_function(&f, read_at).await, Err(StoreError::Stale(_))));
    assert_eq!(store.get_function("a").await.expect("get"), Some(f.clone()));
    store.insert_function(&function("b")).await.expect("insert b");
    let names: Vec<String> = store.list_functions().await.expect("list").into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["a", "b"], "by name");
    assert!(store.delete_function("a").await.expect("delete"));
    assert!(!store.delete_function("a").await.expect("delete"));
    assert!(matches!(store.update_function(&f, f.updated_at).await, Err(StoreError::NotFound(_))));
}

/// A function's dependencies, its build (lock, logs, status) and the version kept serving
/// (its environment values included, which a function's own serialization leaves out) come
/// back as written.
pub async fn dependencies_build_and_serving_version_round_trip(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut serving = function("deps");
    serving.dependencies = Some("pyyaml==6.0.1\n".into());
    let mut ready = fnbox_core::Build::started("h1".into(), 1, Some("n1".into()), Utc::now());
    ready.status = fnbox_core::BuildStatus::Ready;
    ready.lock = Some("pyyaml==6.0.1 --hash=sha256:00\n".into());
    ready.image = Some("0123456789abcdef01234567".into());
    ready.packages = vec!["pyyaml 6.0.1".into()];
    ready.size_bytes = Some(4096);
    ready.duration_ms = Some(1234);
    ready.finished_at = Some(Utc::now());
    serving.build = Some(ready);
    serving.env.insert("SECRET".into(), "s3cr3t".into());
    let mut f = serving.clone();
    f.version = 2;
    f.dependencies = Some("pyyaml==6.0.2\nnosuchpackage\n".into());
    let mut failed = fnbox_core::Build::started("h2".into(), 2, None, Utc::now());
    failed.status = fnbox_core::BuildStatus::Failed;
    failed.error = Some("ERROR: No matching distribution found for nosuchpackage".into());
    failed.logs = "é".repeat(100);
    f.build = Some(failed);
    f.serving = Some(Box::new(serving.clone()));
    store.insert_function(&f).await.expect("insert");
    let back = store.get_function("deps").await.expect("get").expect("some");
    assert_eq!(back, f);
    let kept = back.serving.as_deref().expect("serving");
    assert_eq!(kept.env.get("SECRET").map(String::as_str), Some("s3cr3t"), "the serving version keeps its environment");
    assert_eq!(back.runnable().map(|r| r.version), Ok(1), "version 1 serves while 2 failed");
    let mut plain = back.clone();
    plain.dependencies = None;
    plain.build = None;
    plain.serving = None;
    plain.version = 3;
    plain.updated_at = back.updated_at + chrono::Duration::milliseconds(1);
    store.update_function(&plain, back.updated_at).await.expect("update");
    assert_eq!(store.get_function("deps").await.expect("get"), Some(plain), "the columns can be cleared");
}

/// A function's HTTP setting comes back as written and can be changed; executions started by
/// its URL are recorded as `http`, listed by default (they are the user's own calls) and
/// selected alone by their trigger.
pub async fn http_setting_round_trips_and_http_runs_filter(b: &dyn Backend) {
    let store = b.open("n1").await;
    let off = function("plain");
    store.insert_function(&off).await.expect("insert");
    assert_eq!(store.get_function("plain").await.expect("get").map(|f| f.http), Some(HttpAccess::Off));
    let mut f = function("web");
    f.http = HttpAccess::Public;
    store.insert_function(&f).await.expect("insert");
    assert_eq!(store.get_function("web").await.expect("get"), Some(f.clone()));
    let mut keyed = f.clone();
    keyed.http = HttpAccess::Key;
    keyed.updated_at = f.updated_at + chrono::Duration::milliseconds(1);
    store.update_function(&keyed, f.updated_at).await.expect("update");
    assert_eq!(store.get_function("web").await.expect("get").map(|f| f.http), Some(HttpAccess::Key));
    let listed: Vec<HttpAccess> = store.list_functions().await.expect("list").into_iter().map(|f| f.http).collect();
    assert_eq!(listed, [HttpAccess::Off, HttpAccess::Key], "by name: plain, web");

    let api = execution("web", ExecutionStatus::Success);
    let http = Execution { id: Uuid::now_v7(), trigger: Trigger::Http, ..execution("web", ExecutionStatus::Success) };
    store.record_execution(api.clone()).await.expect("record");
    store.record_execution(http.clone()).await.expect("record");
    let by = |trigger| ExecutionFilter { trigger, function: Some("web".into()), limit: 10, ..Default::default() };
    assert_eq!(list(&*store, by(TriggerFilter::default())).await, [http.id, api.id]);
    assert_eq!(list(&*store, by(TriggerFilter::Only(Trigger::Http))).await, [http.id]);
    assert_eq!(list(&*store, by(TriggerFilter::Only(Trigger::Api))).await, [api.id]);
    assert_eq!(store.get_execution(http.id).await.expect("get").map(|e| e.trigger), Some(Trigger::Http));
}

/// Two writers (two nodes, where the backend has them) read the same state and both update:
/// exactly one wins, the other hears `Stale`, and the winner's version is what stays.
pub async fn compare_and_swap_lets_one_writer_win(b: &dyn Backend) {
    let (one, two) = (b.open("n1").await, b.open("n2").await);
    let f = function("cas");
    one.insert_function(&f).await.expect("insert");
    let read = two.get_function("cas").await.expect("get").expect("present");
    let change = |code: &str, ms| {
        let mut g = read.clone();
        g.code = code.into();
        g.version += 1;
        g.updated_at = read.updated_at + chrono::Duration::milliseconds(ms);
        g
    };
    let (a, c) = (change("from one", 1), change("from two", 2));
    let (ra, rc) = tokio::join!(one.update_function(&a, read.updated_at), two.update_function(&c, read.updated_at));
    let won: Vec<&str> = [(&ra, "from one"), (&rc, "from two")].iter().filter(|(r, _)| r.is_ok()).map(|(_, c)| *c).collect();
    assert_eq!(won.len(), 1, "exactly one writer wins: {ra:?} {rc:?}");
    assert!(matches!(ra, Err(StoreError::Stale(_))) || matches!(rc, Err(StoreError::Stale(_))));
    let now = one.get_function("cas").await.expect("get").expect("present");
    assert_eq!(now.code, won[0]);
    // Sub-millisecond times compare exactly: a state read back is a state that can be swapped.
    let mut next = now.clone();
    next.updated_at = Utc::now();
    one.update_function(&next, now.updated_at).await.expect("swap from what was read back");
}

pub async fn unfinished_executions_become_interrupted_records_at_the_next_open(b: &dyn Backend) {
    let (a, bb, c) =
        (execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success), execution("f", ExecutionStatus::Success));
    {
        let store = b.open("n1").await;
        store.execution_started(&a);
        store.execution_started(&bb);
        // Past the grace: both are journalled as in flight.
        tokio::time::sleep(PAST_GRACE).await;
        store.record_execution(a.clone()).await.expect("record a");
        // Finished within the grace: never journalled at all.
        store.execution_started(&c);
        store.record_execution(c.clone()).await.expect("record c");
        // bb never finishes: the process "crashes" here.
    }
    let store = b.open("n1").await;
    let n = store.recover_interrupted(ErrorInfo::new("Interrupted", "cut short")).await.expect("recover");
    assert_eq!(n, 1);
    let got = store.get_execution(bb.id).await.expect("get").expect("bb recorded");
    assert_eq!(got.status, ExecutionStatus::Error);
    assert_eq!(got.error.map(|e| e.kind), Some("Interrupted".to_string()));
    assert_eq!(got.function, "f");
    assert_eq!(store.get_execution(a.id).await.expect("get").map(|e| e.status), Some(ExecutionStatus::Success));
    assert_eq!(store.get_execution(c.id).await.expect("get").map(|e| e.status), Some(ExecutionStatus::Success));
    assert_eq!(store.recover_interrupted(ErrorInfo::new("Interrupted", "again")).await.expect("recover"), 0);
}

/// Two nodes on the same data: one restarting recovers its own unfinished calls only; the
/// other's are running right now.
pub async fn recovery_is_limited_to_this_node(b: &dyn Backend) {
    if !b.shared_by_nodes() {
        return;
    }
    let (one, two) = (b.open("node-a").await, b.open("node-b").await);
    let mut x = execution("f", ExecutionStatus::Success);
    x.node = Some("node-a".into());
    let mut y = execution("f", ExecutionStatus::Success);
    y.node = Some("node-b".into());
    one.execution_started(&x);
    two.execution_started(&y);
    tokio::time::sleep(PAST_GRACE).await;
    // Journal writes are fire-and-forget; a record through each writer orders after them.
    one.record_execution(execution("sync", ExecutionStatus::Success)).await.expect("record");
    two.record_execution(execution("sync", ExecutionStatus::Success)).await.expect("record");
    drop(two);
    let two = b.open("node-b").await;
    assert_eq!(two.recover_interrupted(ErrorInfo::new("Interrupted", "b restarted")).await.expect("recover"), 1);
    assert!(two.get_execution(y.id).await.expect("get").is_some());
    assert!(two.get_execution(x.id).await.expect("get").is_none(), "node-a's call is still running");
    // node-a finishes its call normally: its record is the final one.
    one.record_execution(x.clone()).await.expect("record x");
    let got = two.get_execution(x.id).await.expect("get").expect("x");
    assert_eq!(got.status, ExecutionStatus::Success);
    assert_eq!(one.recover_interrupted(ErrorInfo::new("Interrupted", "a")).await.expect("recover"), 0);
}

pub async fn node_is_recorded_and_read_back(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut e = execution("f", ExecutionStatus::Success);
    e.node = Some("node-7".into());
    store.record_execution(e.clone()).await.expect("record");
    let got = store.get_execution(e.id).await.expect("get").expect("present");
    assert_eq!(got.node.as_deref(), Some("node-7"));
    let listed = store.list_executions(&ExecutionFilter { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(listed[0].node.as_deref(), Some("node-7"));
}

/// Every record acknowledged (many at once, so they share commits) is there after a reopen,
/// exactly as written.
pub async fn acknowledged_records_survive_reopen(b: &dyn Backend) {
    let written: Vec<Execution> = {
        let store = b.open("n1").await;
        let mut handles = Vec::new();
        for i in 0..300u32 {
            let store = store.clone();
            let mut e = execution(&format!("f{}", i % 3), if i % 5 == 0 { ExecutionStatus::Error } else { ExecutionStatus::Success });
            e.logs = format!("log {i}\n");
            handles.push(tokio::spawn(async move { store.record_execution(e.clone()).await.map(|()| e) }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("join").expect("acknowledged"));
        }
        out
    };
    let store = b.open("n1").await;
    for e in &written {
        let got = store.get_execution(e.id).await.expect("get").expect("acknowledged record present");
        assert_eq!(got.output.as_ref().map(RawJson::get), e.output.as_ref().map(RawJson::get));
        assert_eq!((got.logs.as_str(), got.status, got.function.as_str()), (e.logs.as_str(), e.status, e.function.as_str()));
        assert_eq!(got.started_at.timestamp_micros(), e.started_at.timestamp_micros());
        assert_eq!((got.duration_ms, got.exec_ms, got.memory_bytes, got.cold_start), (e.duration_ms, e.exec_ms, e.memory_bytes, e.cold_start));
        assert_eq!(got.error.as_ref().map(|x| &x.message), e.error.as_ref().map(|x| &x.message));
    }
}

pub async fn executions_survive_reopen_and_filter(b: &dyn Backend) {
    let ids = {
        let store = b.open("n1").await;
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
    let store = b.open("n1").await;
    let all = store.list_executions(&ExecutionFilter { limit: 1000, ..Default::default() }).await.expect("list");
    assert_eq!(all.len(), ids.len());
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let errors = list(
        &*store,
        ExecutionFilter { function: Some("even".into()), status: Some(ExecutionStatus::Error), limit: 1000, ..Default::default() },
    )
    .await;
    assert_eq!(errors.len(), 50);
    let one = store.get_execution(ids[7]).await.expect("get").expect("present");
    assert_eq!(one.output.as_ref().map(RawJson::get), Some(OUTPUT));
    assert_eq!(one.memory_bytes, Some(1 << 20));
}

/// Each filter of a list, alone and together, and paging with `before`.
pub async fn filters_and_paging(b: &dyn Backend) {
    let store = b.open("n1").await;
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let mut all = Vec::new();
    for i in 0..12i64 {
        let mut e = execution(if i % 2 == 0 { "p" } else { "q" }, if i % 3 == 0 { ExecutionStatus::Timeout } else { ExecutionStatus::Success });
        e.runtime = if i < 6 { Runtime::Docker } else { Runtime::Gvisor };
        e.started_at = t0 + chrono::Duration::minutes(10 * i);
        e.trigger = if i == 11 { Trigger::Compare } else { Trigger::Api };
        store.record_execution(e.clone()).await.expect("record");
        all.push(e);
    }
    let newest_first = |pick: &dyn Fn(&Execution) -> bool| -> Vec<Uuid> { all.iter().rev().filter(|e| pick(e)).map(|e| e.id).collect() };
    let api = |e: &Execution| e.trigger != Trigger::Compare;
    let f = |g: ExecutionFilter| ExecutionFilter { limit: 100, ..g };
    assert_eq!(list(&*store, f(ExecutionFilter::default())).await, newest_first(&api));
    assert_eq!(list(&*store, f(ExecutionFilter { function: Some("p".into()), ..Default::default() })).await, newest_first(&|e| api(e) && e.function == "p"));
    assert_eq!(
        list(&*store, f(ExecutionFilter { status: Some(ExecutionStatus::Timeout), ..Default::default() })).await,
        newest_first(&|e| api(e) && e.status == ExecutionStatus::Timeout)
    );
    assert_eq!(
        list(&*store, f(ExecutionFilter { runtime: Some(Runtime::Docker), ..Default::default() })).await,
        newest_first(&|e| api(e) && e.runtime == Runtime::Docker)
    );
    let since = all[4].started_at;
    assert_eq!(
        list(&*store, f(ExecutionFilter { since: Some(since), ..Default::default() })).await,
        newest_first(&|e| api(e) && e.started_at >= since)
    );
    let until = all[8].started_at;
    assert_eq!(
        list(&*store, f(ExecutionFilter { since: Some(since), until: Some(until), ..Default::default() })).await,
        newest_first(&|e| api(e) && e.started_at >= since && e.started_at < until),
        "a date range"
    );
    assert_eq!(
        list(&*store, f(ExecutionFilter { trigger: TriggerFilter::All, function: Some("q".into()), runtime: Some(Runtime::Gvisor), ..Default::default() })).await,
        newest_first(&|e| e.function == "q" && e.runtime == Runtime::Gvisor)
    );
    // Pages of 4 with `before`: the same records, in the same order, none twice.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = list(&*store, ExecutionFilter { before, limit: 4, ..Default::default() }).await;
        if page.is_empty() {
            break;
        }
        before = page.last().copied();
        paged.extend(page);
    }
    assert_eq!(paged, newest_first(&api));
    assert_eq!(list(&*store, ExecutionFilter { limit: 0, ..Default::default() }).await.len(), 1, "a limit of 0 reads one");
}

/// `search` matches logs, error and output, in any ASCII case, with `%` and `_` taken literally.
pub async fn search_finds_text_in_logs_errors_and_output(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut logged = execution("s", ExecutionStatus::Success);
    logged.logs = "fetching invoice 42\nDone\n".into();
    let mut failed = execution("s", ExecutionStatus::Error);
    failed.error = Some(ErrorInfo::new("KeyError", "no Invoice here"));
    let mut returned = execution("s", ExecutionStatus::Success);
    returned.output = Some(RawJson::parse(r#"{"note":"100% invoiced_ok"}"#.into()).expect("json"));
    let plain = execution("s", ExecutionStatus::Success);
    for e in [&logged, &failed, &returned, &plain] {
        store.record_execution(e.clone()).await.expect("record");
    }
    let search = |text: &str| ExecutionFilter { search: Some(text.into()), limit: 100, ..Default::default() };
    assert_eq!(list(&*store, search("INVOICE")).await, vec![returned.id, failed.id, logged.id], "logs, error and output, any case");
    assert_eq!(list(&*store, search("100%")).await, vec![returned.id]);
    assert_eq!(list(&*store, search("0% i")).await, vec![returned.id]);
    assert_eq!(list(&*store, search("d_o")).await, vec![returned.id]);
    assert_eq!(list(&*store, search("invoic_")).await, Vec::<Uuid>::new(), "_ is a character, not a wildcard");
    assert_eq!(list(&*store, search("x%y")).await, Vec::<Uuid>::new(), "% is a character, not a wildcard");
    assert_eq!(list(&*store, ExecutionFilter { status: Some(ExecutionStatus::Error), ..search("invoice") }).await, vec![failed.id]);
}

pub async fn a_page_of_executions_is_bounded_by_bytes(b: &dyn Backend) {
    let store = b.open("n1").await;
    for _ in 0..20 {
        let mut e = execution("big", ExecutionStatus::Success);
        e.logs = "x".repeat(100_000);
        store.record_execution(e).await.expect("recorded");
    }
    let page = |max_bytes| ExecutionFilter { limit: 1000, max_bytes, ..Default::default() };
    assert_eq!(store.list_executions(&page(None)).await.expect("list").len(), 20);
    // 350 kB: three records fit, the fourth passes the budget and is the one read ahead.
    assert_eq!(store.list_executions(&page(Some(350_000))).await.expect("list").len(), 4);
    // A budget smaller than one record still gives two: the page's one, and one read ahead.
    assert_eq!(store.list_executions(&page(Some(10))).await.expect("list").len(), 2);
    // A budget larger than everything gives everything.
    assert_eq!(store.list_executions(&page(Some(100_000_000))).await.expect("list").len(), 20);
}

pub async fn comparison_runs_are_left_out_unless_asked_for(b: &dyn Backend) {
    let store = b.open("n1").await;
    let api = execution("f", ExecutionStatus::Success);
    let cmp = Execution { id: Uuid::now_v7(), trigger: Trigger::Compare, ..execution("f", ExecutionStatus::Error) };
    store.record_execution(api.clone()).await.expect("record");
    store.record_execution(cmp.clone()).await.expect("record");
    let by = |trigger| ExecutionFilter { trigger, limit: 10, ..Default::default() };
    assert_eq!(list(&*store, by(TriggerFilter::default())).await, [api.id]);
    assert_eq!(list(&*store, by(TriggerFilter::Only(Trigger::Compare))).await, [cmp.id]);
    assert_eq!(list(&*store, by(TriggerFilter::All)).await, [cmp.id, api.id]);
    assert_eq!(store.get_execution(cmp.id).await.expect("get").map(|e| e.trigger), Some(Trigger::Compare));
    let samples = |trigger| MetricsFilter { trigger, ..Default::default() };
    assert_eq!(store.samples(&samples(TriggerFilter::default())).await.expect("samples").len(), 1);
    assert_eq!(store.samples(&samples(TriggerFilter::All)).await.expect("samples").len(), 2);
    let failures = store.failures(&MetricsFilter::default()).await.expect("failures");
    assert!(failures.is_empty(), "the comparison's failure is not among the user's errors");
    let only_compare = MetricsFilter { trigger: TriggerFilter::Only(Trigger::Compare), ..Default::default() };
    assert_eq!(store.failures(&only_compare).await.expect("failures").len(), 1);
}

pub async fn last_execution_of_each_function_leaves_comparisons_out(b: &dyn Backend) {
    let store = b.open("n1").await;
    let names = |ns: &[&str]| ns.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert!(store.last_executions(&names(&["f", "g"])).await.expect("last").is_empty(), "nothing ran yet");
    let old = execution("f", ExecutionStatus::Success);
    let newest = Execution { id: Uuid::now_v7(), duration_ms: 7.25, trigger: Trigger::Http, ..execution("f", ExecutionStatus::Timeout) };
    let cmp = Execution { id: Uuid::now_v7(), trigger: Trigger::Compare, ..execution("f", ExecutionStatus::Error) };
    let other = Execution { id: Uuid::now_v7(), ..execution("g", ExecutionStatus::Error) };
    let many: Vec<Execution> = (0..30).map(|_| Execution { id: Uuid::now_v7(), ..execution("h", ExecutionStatus::Success) }).collect();
    for e in [&old, &newest, &cmp, &other].into_iter().chain(&many) {
        store.record_execution(e.clone()).await.expect("record");
    }
    let last = store.last_executions(&names(&["f", "g", "h", "never-ran"])).await.expect("last");
    assert_eq!(last.len(), 3, "{last:?}");
    let f = &last["f"];
    assert_eq!((f.id, f.status, f.trigger, f.duration_ms), (newest.id, ExecutionStatus::Timeout, Trigger::Http, 7.25));
    assert_eq!(f.started_at.timestamp_micros(), newest.started_at.timestamp_micros());
    assert_eq!(last["g"].id, other.id);
    assert_eq!(last["h"].id, many[29].id, "the newest of many");
    assert!(store.last_executions(&[]).await.expect("last").is_empty());
}

pub async fn failures_carry_the_type_and_the_start_of_the_message_only(b: &dyn Backend) {
    let store = b.open("n1").await;
    let mut e = execution("f", ExecutionStatus::Error);
    // Multi-byte characters: the cut is by characters, not bytes.
    let mut err = ErrorInfo::new("ValueError", "é".repeat(10_000));
    err.stack = "s".repeat(10_000);
    e.error = Some(err);
    store.record_execution(e.clone()).await.expect("record");
    store.record_execution(execution("f", ExecutionStatus::Success)).await.expect("record");
    let mut older = execution("g", ExecutionStatus::Timeout);
    older.id = Uuid::now_v7();
    store.record_execution(older.clone()).await.expect("record");
    let failures = store.failures(&MetricsFilter::default()).await.expect("failures");
    assert_eq!(failures.iter().map(|f| f.id).collect::<Vec<_>>(), [e.id, older.id], "failures only, oldest first");
    let got = failures[0].error.as_ref().expect("error");
    assert_eq!(got.kind, "ValueError");
    assert_eq!(got.message.chars().count(), FAILURE_MESSAGE_CHARS);
    assert!(got.message.chars().all(|c| c == 'é'));
    assert!(got.stack.is_empty(), "grouping never reads the stack");
    assert_eq!(failures[0].function, "f");
    assert_eq!(failures[0].started_at.timestamp_micros(), e.started_at.timestamp_micros());
    let only_g = MetricsFilter { function: Some("g".into()), ..Default::default() };
    assert_eq!(store.failures(&only_g).await.expect("failures").len(), 1);
}

pub async fn samples_follow_the_metrics_filter(b: &dyn Backend) {
    let store = b.open("n1").await;
    let old = Utc::now() - chrono::Duration::days(1);
    for i in 0..8u32 {
        let mut e = execution(if i < 4 { "a" } else { "b" }, ExecutionStatus::Success);
        e.language = if i % 2 == 0 { Language::Python } else { Language::Javascript };
        e.runtime = if i % 4 < 2 { Runtime::Docker } else { Runtime::Gvisor };
        e.duration_ms = f64::from(i) + 0.25;
        e.memory_bytes = (i != 3).then_some(u64::from(i) << 20);
        if i == 7 {
            e.started_at = old;
        }
        store.record_execution(e).await.expect("record");
    }
    let n = |f: MetricsFilter| {
        let store = store.clone();
        async move { store.samples(&f).await.expect("samples").len() }
    };
    assert_eq!(n(MetricsFilter::default()).await, 8);
    assert_eq!(n(MetricsFilter { function: Some("a".into()), ..Default::default() }).await, 4);
    assert_eq!(n(MetricsFilter { language: Some(Language::Javascript), ..Default::default() }).await, 4);
    assert_eq!(n(MetricsFilter { runtime: Some(Runtime::Gvisor), function: Some("b".into()), ..Default::default() }).await, 2);
    assert_eq!(n(MetricsFilter { since: Some(old + chrono::Duration::seconds(1)), ..Default::default() }).await, 7);
    let mut all = store.samples(&MetricsFilter::default()).await.expect("samples");
    all.sort_by(|x, y| x.duration_ms.total_cmp(&y.duration_ms));
    assert_eq!(all[3].memory_bytes, None);
    assert_eq!(all[5].memory_bytes, Some(5 << 20));
    assert_eq!((all[0].function.as_str(), all[0].duration_ms, all[0].exec_ms, all[0].cold_start), ("a", 0.25, Some(0.5), true));
}

pub async fn prune_by_age_and_count(b: &dyn Backend) {
    let store = b.open("n1").await;
    let old = Utc::now() - chrono::Duration::days(40);
    let mut kept = Vec::new();
    for i in 0..10 {
        let mut e = execution("f", ExecutionStatus::Success);
        if i < 3 {
            e.started_at = old;
        } else {
            kept.push(e.id);
        }
        store.record_execution(e).await.expect("record");
    }
    let cutoff = Utc::now() - chrono::Duration::days(30);
    assert_eq!(store.prune_executions(Some(cutoff), None).await.expect("prune"), 3);
    assert_eq!(store.prune_executions(None, Some(4)).await.expect("prune"), 3);
    let left = list(&*store, ExecutionFilter { limit: 100, ..Default::default() }).await;
    assert_eq!(left, kept.iter().rev().take(4).copied().collect::<Vec<_>>(), "the newest four stay");
    assert_eq!(store.prune_executions(Some(cutoff), Some(4)).await.expect("prune"), 0);
}

pub async fn comparisons_round_trip(b: &dyn Backend) {
    let store = b.open("n1").await;
    let (a, c) = (Uuid::now_v7(), Uuid::now_v7());
    let body = |n: u32| serde_json::json!({"z": n, "a": [1.5, "x"], "m": {"k": null}});
    store.insert_comparison(a, "f", &body(1)).await.expect("insert");
    store.insert_comparison(c, "g", &body(2)).await.expect("insert");
    assert_eq!(store.get_comparison(a).await.expect("get"), Some(body(1)));
    assert_eq!(store.get_comparison(Uuid::now_v7()).await.expect("get"), None);
    assert_eq!(store.list_comparisons(10).await.expect("list"), [body(2), body(1)], "newest first");
    assert_eq!(store.list_comparisons(1).await.expect("list"), [body(2)]);
    // Key order is kept (the UI shows documents as they were written).
    let listed = store.get_comparison(a).await.expect("get").expect("present");
    assert_eq!(listed.to_string(), body(1).to_string());
}

pub async fn keys_insert_list_revoke_touch_and_version(b: &dyn Backend) {
    let store = b.open("n1").await;
    assert_eq!(store.keys_version().await.expect("version"), 0);
    let a = NewKey::generate("ci", Role::Admin, Utc::now()).expect("key");
    let k = NewKey::generate("grafana", Role::Invoke, Utc::now()).expect("key");
    store.insert_key(&a.stored).await.expect("insert");
    store.insert_key(&k.stored).await.expect("insert");
    assert_eq!(store.keys_version().await.expect("version"), 2);
    let keys = store.list_keys().await.expect("list");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key.name, "ci");
    assert_eq!(keys[0].token_hash, a.stored.token_hash);
    assert_eq!(keys[0].key.created_at.timestamp_micros(), a.stored.key.created_at.timestamp_micros());
    assert_eq!(keys[1].key.role, Role::Invoke);
    assert!(keys[0].key.last_used_at.is_none());

    let t = Utc::now();
    store.touch_keys(&[(a.stored.key.id, t)]).await.expect("touch");
    store.touch_keys(&[]).await.expect("touch nothing");
    assert_eq!(store.keys_version().await.expect("version"), 2, "a touch is not a change");
    assert!(store.revoke_key(k.stored.key.id).await.expect("revoke"));
    assert!(store.revoke_key(k.stored.key.id).await.expect("revoke twice"));
    assert!(!store.revoke_key(Uuid::now_v7()).await.expect("revoke unknown"));
    assert_eq!(store.keys_version().await.expect("version"), 3, "revoking twice bumps once");

    drop(store);
    let store = b.open("n1").await;
    let keys = store.list_keys().await.expect("list");
    assert!(keys[1].key.revoked && !keys[0].key.revoked);
    assert_eq!(keys[0].key.last_used_at.map(|x| x.timestamp()), Some(t.timestamp()));
}
