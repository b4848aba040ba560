//! Runtime comparisons leave nothing behind (issue 11, item 8): a comparison whose client
//! disconnects half-way still finishes on its own task and is stored; its private copies of the
//! function are never listed, their pools and sandboxes are gone afterwards, and their runs stay
//! out of the default executions, metrics and error views and the live stream, which show them
//! only when asked (`trigger=compare` or `trigger=all`).

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tail, TestServer};
use serde_json::{json, Value};

/// Sleeps a little so the comparison is still running when its client goes; fails when asked to.
const SLOW: &str = "import time\n\ndef handler(event, context):\n    time.sleep(0.3)\n    if event.get('fail'):\n        raise ValueError('asked to fail')\n    return 1\n";
const ITERATIONS: u64 = 8;

/// Containers of this server that hold some function's code (pre-started generic sandboxes
/// carry no `fnbox.function` label).
fn function_sandboxes(s: &TestServer) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=fnbox.instance={}", s.instance()))
        .args(["--filter", "label=fnbox.function"])
        .output()
        .expect("docker ps");
    assert!(out.status.success(), "docker ps: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// Reads `execution` events of the live stream at `path` into a shared list, until aborted.
fn collect_stream(url: String, seen: Arc<Mutex<Vec<Value>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut resp = reqwest::Client::new().get(url).send().await.expect("stream");
        assert_eq!(resp.status().as_u16(), 200);
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if event.lines().any(|l| l == "event: execution") {
                    let data: String = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                    seen.lock().expect("lock").push(serde_json::from_str(&data).unwrap_or(Value::Null));
                }
            }
        }
    })
}

async fn wait_for<T>(what: &str, s: &TestServer, secs: u64, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} (waited {secs} s)\n--- server log ---\n{}", tail(&s.log(), 40));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().filter_map(|f| f["name"].as_str().map(str::to_owned)).collect()
}

fn count(list: &Value, key: &str) -> u64 {
    list.as_array().into_iter().flatten().filter_map(|x| x[key].as_u64()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_comparison_finishes_cleans_up_and_stays_out_of_default_views() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    s.create("slow", "python", "docker", SLOW, json!({})).await;
    // The function's own sandboxes (the one its code was checked in waits for its first call).
    let own = function_sandboxes(&s);

    let default_stream = Arc::new(Mutex::new(Vec::new()));
    let compare_stream = Arc::new(Mutex::new(Vec::new()));
    let streams = [
        collect_stream(format!("{}/api/v1/executions/stream", s.url), default_stream.clone()),
        collect_stream(format!("{}/api/v1/executions/stream?trigger=compare", s.url), compare_stream.clone()),
    ];

    // Start a comparison and drop its client once it is under way.
    let url = format!("{}/api/v1/functions/slow/compare", s.url);
    let client = tokio::spawn(async move {
        reqwest::Client::new().post(url).json(&json!({"iterations": ITERATIONS, "input": {"fail": true}})).send().await
    });
    wait_for("comparison runs recorded", &s, 120, async || {
        let (st, list) = s.get("/api/v1/executions?function=slow&trigger=compare").await;
        assert_eq!(st, 200, "{list}");
        (list.as_array().map_or(0, Vec::len) >= 2).then_some(())
    })
    .await;
    let (_, stored) = s.get("/api/v1/comparisons").await;
    assert_eq!(stored, json!([]), "the comparison is still running");
    let (_, fns) = s.get("/api/v1/functions").await;
    assert_eq!(names(&fns), ["slow"], "a comparison's copies are never listed as functions");
    client.abort();
    assert!(client.await.is_err_and(|e| e.is_cancelled()), "the client went away before the answer");

    // It still finishes and is stored; then nothing of it is left.
    let comparison = wait_for("the dropped comparison stored", &s, 180, async || {
        let (_, list) = s.get("/api/v1/comparisons").await;
        list.as_array().and_then(|l| l.first().cloned())
    })
    .await;
    assert_eq!(comparison["function"], json!("slow"));
    for rt in ["docker", "gvisor"] {
        assert_eq!(comparison[rt]["invocations"], json!(ITERATIONS + 1), "{comparison}");
    }
    let (_, fns) = s.get("/api/v1/functions").await;
    assert_eq!(names(&fns), ["slow"], "no temporary function remains");
    let (_, pools) = s.get("/api/v1/pools").await;
    assert_eq!(pools["functions"], json!([]), "no pool remains for the copies: {pools}");
    wait_for("the copies' sandboxes removed", &s, 30, async || {
        function_sandboxes(&s).iter().all(|c| own.contains(c)).then_some(())
    })
    .await;

    // The function's own call, after it.
    let r = s.invoke("slow", &json!({})).await;
    assert_eq!(r["status"], json!("success"), "{r}");
    let runs = 2 * (ITERATIONS + 1);

    // Executions: by default only the function's own call; comparison runs when asked.
    let (_, own) = s.get("/api/v1/executions?function=slow").await;
    assert_eq!(own.as_array().map(Vec::len), Some(1), "{own}");
    assert_eq!(own[0]["trigger"], json!("api"));
    assert_eq!(own[0]["id"], r["execution_id"]);
    let (_, all_default) = s.get("/api/v1/executions").await;
    assert_eq!(all_default.as_array().map(Vec::len), Some(1), "{all_default}");
    let (_, cmp) = s.get("/api/v1/executions?trigger=compare&limit=100").await;
    let cmp = cmp.as_array().cloned().unwrap_or_default();
    assert_eq!(cmp.len() as u64, runs);
    assert!(cmp.iter().all(|e| e["trigger"] == json!("compare") && e["function"] == json!("slow") && e["status"] == json!("error")));
    let (_, every) = s.get("/api/v1/executions?trigger=all&limit=100").await;
    assert_eq!(every.as_array().map(Vec::len), Some(runs as usize + 1));
    let (_, api_only) = s.get("/api/v1/executions?trigger=api").await;
    assert_eq!(api_only.as_array().map(Vec::len), Some(1));
    assert_eq!(s.get("/api/v1/executions?trigger=cron").await.0, 400);

    // Metrics: summary, time series and errors likewise.
    let (_, summary) = s.get("/api/v1/metrics/summary").await;
    assert_eq!(count(&summary, "invocations"), 1, "{summary}");
    let (_, summary) = s.get("/api/v1/metrics/summary?trigger=compare").await;
    assert_eq!(count(&summary, "invocations"), runs, "{summary}");
    assert_eq!(summary.as_array().map(Vec::len), Some(2), "one row per runtime: {summary}");
    let (_, ts) = s.get("/api/v1/metrics/timeseries?bucket=1h").await;
    assert_eq!(count(&ts, "count"), 1, "{ts}");
    let (_, ts) = s.get("/api/v1/metrics/timeseries?bucket=1h&trigger=all").await;
    assert_eq!(count(&ts, "count"), runs + 1, "{ts}");
    let (_, errors) = s.get("/api/v1/errors").await;
    assert_eq!(errors, json!([]), "the comparison's failures are not the user's errors");
    let (_, errors) = s.get("/api/v1/errors?trigger=compare").await;
    assert_eq!(count(&errors, "count"), runs, "{errors}");

    // The live stream: comparison runs only where asked for.
    wait_for("the call on the default stream", &s, 30, async || (!default_stream.lock().expect("lock").is_empty()).then_some(())).await;
    let seen = default_stream.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["id"], r["execution_id"]);
    let seen = compare_stream.lock().expect("lock").clone();
    assert_eq!(seen.len() as u64, runs, "{seen:?}");
    assert!(seen.iter().all(|e| e["trigger"] == json!("compare")));
    for h in streams {
        h.abort();
    }
}
