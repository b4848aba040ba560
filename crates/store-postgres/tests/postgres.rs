//! PostgreSQL-only behaviour (the shared behaviour is in `fnbox-store`'s conformance suite):
//! outages answer `Unavailable` quickly and the pool comes back by itself, migrations are
//! safe when nodes start together, and records are committed in batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fnbox_core::{ErrorInfo, Execution, ExecutionStatus, Language, RawJson, Runtime, Store, StoreError, Trigger};
use fnbox_store_postgres::PostgresStore;
use fnbox_testkit::postgres::Postgres;
use uuid::Uuid;

fn execution() -> Execution {
    Execution {
        id: Uuid::now_v7(),
        function: "f".into(),
        version: 1,
        runtime: Runtime::Docker,
        language: Language::Python,
        input: "{}".into(),
        output: Some(RawJson::parse("1".into()).expect("json")),
        output_truncated: false,
        status: ExecutionStatus::Success,
        error: None,
        logs: String::new(),
        started_at: Utc::now(),
        duration_ms: 1.0,
        exec_ms: None,
        memory_bytes: None,
        cold_start: false,
        trigger: Trigger::Api,
        node: None,
        attempt: 1,
        request_id: None,
    }
}

async fn raw(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// PostgreSQL goes down: calls fail with `Unavailable` within seconds (no hang) and
/// `available()` says so; it comes back: `available()` turns on again by itself and writes
/// succeed, with no reconnect call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_quickly_and_the_store_reconnects_by_itself() {
    let pg = Postgres::start();
    let store = PostgresStore::connect(&pg.url(), "n1").await.expect("connect");
    store.record_execution(execution()).await.expect("record while up");
    assert!(store.available().is_ok());

    pg.stop();
    let t0 = Instant::now();
    let err = store.record_execution(execution()).await.expect_err("record while down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.get_function("f").await.expect_err("read while down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(8), "answered in {:?}", t0.elapsed());
    assert!(matches!(store.available(), Err(StoreError::Unavailable(_))));
    println!("down: {err} (after {:?})", t0.elapsed());

    pg.start_again().expect("start again");
    let t1 = Instant::now();
    while store.available().is_err() {
        assert!(t1.elapsed() < Duration::from_secs(10), "available() never turned back on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("available again after {:?}", t1.elapsed());
    store.record_execution(execution()).await.expect("record after the restart");
    assert!(store.list_functions().await.expect("read after the restart").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_while_the_server_is_down_is_unavailable() {
    let pg = Postgres::start();
    pg.stop();
    let t0 = Instant::now();
    let err = PostgresStore::connect(&pg.url(), "n1").await.err().expect("no server");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(8));
}

/// Nodes starting together all connect; the schema is migrated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let pg = Postgres::start();
    let url = pg.url();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url, &format!("n{i}")).await.map(|_| ()) })
        })
        .collect();
    for h in handles {
        h.await.expect("join").expect("connect");
    }
    let client = raw(&pg).await;
    let rows = client.query("SELECT version, name FROM schema_migrations ORDER BY version", &[]).await.expect("query");
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<(i64, String)> =
        [(1, "init"), (2, "dependencies"), (3, "http"), (4, "queue"), (5, "versions")].into_iter().map(|(v, n)| (v, n.to_string())).collect();
    assert_eq!(got, names, "each migration once");
}

/// Functions made before versions existed get their current version as their history: the
/// schema is taken back to before migration 5, which then runs again at the next connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_backfilled_from_the_current_functions() {
    let pg = Postgres::start();
    let store = PostgresStore::connect(&pg.url(), "n1").await.expect("connect");
    let spec: fnbox_core::FunctionSpec = serde_json::from_value(serde_json::json!({
        "name": "old", "language": "python", "code": "def handler(e, c): return 7", "env": {"K": "v"}
    }))
    .expect("spec");
    let f = fnbox_core::Function::from_spec(spec, &fnbox_core::Limits::default(), Utc::now());
    store.insert_function(&f).await.expect("insert");
    drop(store);
    let client = raw(&pg).await;
    client
        .batch_execute(
            "DROP TABLE function_versions; DROP TABLE test_events; DELETE FROM schema_migrations WHERE version = 5;
             UPDATE functions SET version = 7",
        )
        .await
        .expect("back to migration 4");
    let store = PostgresStore::connect(&pg.url(), "n1").await.expect("connect again");
    let versions: Vec<u32> = store.list_versions("old").await.expect("list").into_iter().map(|v| v.version).collect();
    assert_eq!(versions, [7]);
    let v = store.get_version("old", 7).await.expect("get").expect("version 7");
    assert_eq!((v.code.as_str(), v.env.get("K").map(String::as_str), v.created_at), ("def handler(e, c): return 7", Some("v"), f.updated_at));
}

/// Concurrent records share commits: rows inserted by one transaction share its `xmin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_committed_in_batches() {
    let pg = Postgres::start();
    let store = Arc::new(PostgresStore::connect(&pg.url(), "n1").await.expect("connect"));
    let n = 1000;
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record_execution(execution()).await })
        })
        .collect();
    for h in handles {
        h.await.expect("join").expect("record");
    }
    let client = raw(&pg).await;
    let row = client
        .query_one("SELECT COUNT(*), COUNT(DISTINCT xmin::text) FROM executions", &[])
        .await
        .expect("query");
    let (rows, transactions): (i64, i64) = (row.get(0), row.get(1));
    println!("{rows} records in {transactions} transactions");
    assert_eq!(rows, n);
    assert!(transactions * 4 <= n, "{transactions} transactions for {n} records: not batched");
    // The store names its node on records that name none.
    let nodes = client.query_one("SELECT COUNT(*) FROM executions WHERE node = 'n1'", &[]).await.expect("query");
    assert_eq!(nodes.get::<_, i64>(0), n);
}

/// A record repeating the id of a final one (a late duplicate) is left out, the first record
/// staying as it was, and it does not sink the others in its batch. (Only an asynchronous
/// attempt's `queued` placeholder is ever replaced: see the conformance suite.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_record_does_not_sink_its_batch() {
    let pg = Postgres::start();
    let store = Arc::new(PostgresStore::connect(&pg.url(), "n1").await.expect("connect"));
    let dup = execution();
    store.record_execution(dup.clone()).await.expect("first");
    let mut handles = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let e = if i == 25 { Execution { logs: "a late duplicate".into(), ..dup.clone() } } else { execution() };
        handles.push(tokio::spawn(async move { store.record_execution(e).await }));
    }
    let results: Vec<_> = futures_join(handles).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let client = raw(&pg).await;
    let row = client.query_one("SELECT COUNT(*) FROM executions", &[]).await.expect("count");
    assert_eq!(row.get::<_, i64>(0), 50);
    let kept = store.get_execution(dup.id).await.expect("get").expect("present");
    assert_eq!(kept.logs, dup.logs, "the first record stays");
}

/// Logs may hold NUL (PostgreSQL text cannot): the record is kept, the NUL shown as U+FFFD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_logs_does_not_lose_the_record() {
    let pg = Postgres::start();
    let store = PostgresStore::connect(&pg.url(), "n1").await.expect("connect");
    let mut e = execution();
    e.logs = "a\0b".into();
    e.status = ExecutionStatus::Error;
    e.error = Some(ErrorInfo::new("E\0", "m\0"));
    store.record_execution(e.clone()).await.expect("record");
    let got = store.get_execution(e.id).await.expect("get").expect("present");
    assert_eq!(got.logs, "a\u{FFFD}b");
    assert_eq!(got.error.map(|x| x.message), Some("m\0".to_string()), "the JSON keeps it escaped");
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}
