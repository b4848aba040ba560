//! Changing and deleting functions while calls are waiting or running (issue 11, items 4, 6, 7):
//! every setting takes effect for calls that start after the change answers; calls still
//! waiting after a DELETE get 404 and no sandbox is started for them; after a PUT they run the
//! new version; concurrent updates never lose one or reuse a version, and `If-Match` makes an
//! update conditional.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::future::join_all;
use serde_json::{json, Value};

/// Sleeps, and says when it ran (host and sandboxes share the clock).
const SLEEPER: &str = "import time\n\ndef handler(event, context):\n    t0 = time.time()\n    time.sleep(event.get('s', 1.0))\n    return [t0, time.time()]\n";

async fn server() -> TestServer {
    TestServer::start(&["--prewarm", "1"]).await
}

/// Runs `n` invocations at once; returns each one's (status, body).
async fn burst(s: &TestServer, name: &str, n: usize, input: Value) -> Vec<(u16, Value)> {
    let path = format!("/api/v1/functions/{name}/invoke");
    join_all((0..n).map(|_| s.post(&path, &input))).await
}

fn spans(results: &[(u16, Value)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = results
        .iter()
        .map(|(status, r)| {
            assert_eq!(*status, 200, "{r}");
            assert_eq!(r["status"], "success", "{r}");
            (r["output"][0].as_f64().unwrap_or(0.0), r["output"][1].as_f64().unwrap_or(0.0))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_change_applies_to_the_next_calls() {
    let s = server().await;
    s.create("sleeper", "python", "docker", SLEEPER, json!({"concurrency": 1})).await;
    // A warm sandbox of the function exists when the setting changes. (A 1 s call, so the pool
    // knows calls are slow and starts sandboxes for waiting calls instead of waiting for this one.)
    s.invoke("sleeper", &json!({"s": 1.0})).await;
    let (status, f) = s.put("/api/v1/functions/sleeper", &json!({"concurrency": 4})).await;
    assert_eq!((status, f["concurrency"].clone()), (200, json!(4)), "{f}");
    // 3 s calls: three of the four are cold starts, which take over a second here under load.
    let runs = spans(&burst(&s, "sleeper", 4, json!({"s": 3.0})).await);
    let last_start = runs.iter().map(|r| r.0).fold(f64::MIN, f64::max);
    let first_end = runs.iter().map(|r| r.1).fold(f64::MAX, f64::min);
    assert!(last_start < first_end, "raised to 4, the 4 calls did not all run at once: {runs:?}");

    let (status, _) = s.put("/api/v1/functions/sleeper", &json!({"concurrency": 1})).await;
    assert_eq!(status, 200);
    let runs = spans(&burst(&s, "sleeper", 3, json!({"s": 0.4})).await);
    for w in runs.windows(2) {
        assert!(w[1].0 >= w[0].1 - 0.01, "lowered to 1, two calls overlapped: {runs:?}");
    }
}

/// Waits until `n` calls of `name` are queued behind the running one.
async fn wait_queued(s: &TestServer, name: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, pools) = s.get("/api/v1/pools").await;
        let queued: u64 = pools["functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["function"] == name)
            .map(|p| p["queued"].as_u64().unwrap_or(0))
            .sum();
        if queued >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} calls never queued: {pools}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_when_a_function_is_deleted_get_404_and_start_nothing() {
    let s = server().await;
    s.create("doomed", "python", "docker", SLEEPER, json!({"concurrency": 1})).await;
    let calls = burst(&s, "doomed", 6, json!({"s": 2.0}));
    let delete = async {
        wait_queued(&s, "doomed", 5).await;
        let started = s.get("/api/v1/pools").await.1["cold_starts"].as_u64().unwrap_or(0);
        let (status, body) = s.delete("/api/v1/functions/doomed").await;
        assert_eq!(status, 204, "{body}");
        started
    };
    let (results, started_before) = tokio::join!(calls, delete);
    let ok = results.iter().filter(|(st, _)| *st == 200).count();
    let gone = results.iter().filter(|(st, r)| *st == 404 && r["error"]["code"] == "function_not_found").count();
    assert_eq!((ok, gone), (1, 5), "the running call finishes, the waiting ones get 404: {results:?}");
    // No sandbox of the deleted function is left, and none was cold-started for it after the DELETE.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let labelled = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=fnbox.instance={}", s.instance()), "--filter", "label=fnbox.function=doomed"])
            .output()
            .expect("docker ps");
        if labelled.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "a sandbox of the deleted function is still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, pools) = s.get("/api/v1/pools").await;
    let started_after = pools["cold_starts"].as_u64().unwrap_or(0);
    assert_eq!(started_after, started_before, "cold starts after the DELETE: {pools}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_when_a_function_is_updated_run_the_new_version() {
    let s = server().await;
    let v1 = "import time\n\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'v1'\n";
    let v2 = "def handler(event, context):\n    return 'v2'\n";
    s.create("evolving", "python", "docker", v1, json!({"concurrency": 1})).await;
    let calls = burst(&s, "evolving", 5, json!({"s": 2.0}));
    let update = async {
        wait_queued(&s, "evolving", 4).await;
        let (status, f) = s.put("/api/v1/functions/evolving", &json!({"code": v2})).await;
        assert_eq!(status, 200, "{f}");
        f["version"].as_u64()
    };
    let (results, version) = tokio::join!(calls, update);
    assert_eq!(version, Some(2));
    let outputs: Vec<&Value> = results.iter().map(|(_, r)| &r["output"]).collect();
    assert_eq!(outputs.iter().filter(|o| **o == "v1").count(), 1, "only the call already running runs v1: {results:?}");
    assert_eq!(outputs.iter().filter(|o| **o == "v2").count(), 4, "the waiting calls run v2: {results:?}");
    for (_, r) in results.iter().filter(|(_, r)| r["output"] == "v2") {
        assert_eq!(r["version"], 2, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_are_never_lost_and_if_match_guards_them() {
    let server = server().await;
    let s = &server;
    s.create("contested", "python", "docker", "def handler(event, context):\n    return 0\n", json!({})).await;
    let puts = (1..=8).map(|i| {
        let body = json!({"code": format!("def handler(event, context):\n    return {i}\n")});
        async move { (i, s.put("/api/v1/functions/contested", &body).await) }
    });
    let results = join_all(puts).await;
    let mut versions: Vec<u64> = results
        .iter()
        .map(|(_, (status, f))| {
            assert_eq!(*status, 200, "{f}");
            f["version"].as_u64().unwrap_or(0)
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>(), "every update got its own, growing version");
    let (_, last) = results.iter().find(|(_, (_, f))| f["version"] == 9).expect("version 9");
    let (status, headers, current) = s.request_as(None, reqwest::Method::GET, "/api/v1/functions/contested", None).await;
    assert_eq!(status, 200);
    assert_eq!(current["code"], last.1["code"], "the stored code is the last update's");
    assert_eq!(s.invoke("contested", &json!({})).await["version"], 9);

    // If-Match: the current ETag updates, a stale one is refused with 412, `*` always matches.
    let etag = headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag on GET").to_owned();
    let url = format!("{}/api/v1/functions/contested", s.url);
    let put_if = |tag: String, code: &'static str| {
        let body = json!({"code": code}).to_string();
        let url = url.clone();
        async move {
            let resp = reqwest::Client::new()
                .put(url)
                .header("content-type", "application/json")
                .header("if-match", tag)
                .body(body)
                .send()
                .await
                .expect("put");
            let status = resp.status().as_u16();
            let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (status, etag, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, new_etag, f) = put_if(etag.clone(), "def handler(event, context):\n    return 'a'\n").await;
    assert_eq!(status, 200, "{f}");
    let new_etag = new_etag.expect("ETag on PUT");
    assert_ne!(new_etag, etag);
    let (status, _, f) = put_if(etag.clone(), "def handler(event, context):\n    return 'b'\n").await;
    assert_eq!(status, 412, "a stale If-Match must be refused: {f}");
    assert_eq!(f["error"]["code"], "etag_mismatch", "{f}");
    let (status, _, f) = put_if("*".into(), "def handler(event, context):\n    return 'c'\n").await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(s.invoke("contested", &json!({})).await["output"], "c");
}

/// A request with a body of `content_type` and an optional `If-Match`; (status, ETag, body).
async fn send(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    content_type: &str,
    if_match: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", s.url))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, etag, resp.json::<Value>().await.unwrap_or(Value::Null))
}

/// Issue 16 item 14: what `GET` returns goes back through `PUT` unchanged (read-only fields
/// ignored, the name checked, env values kept though GET never shows them), and `PATCH` is a
/// JSON merge patch honouring `If-Match`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_edit_put_round_trips_and_patch_is_a_merge_patch() {
    let server = server().await;
    let s = &server;
    let code = "import os\n\ndef handler(event, context):\n    return os.environ.get('SECRET')\n";
    s.create("editable", "python", "docker", code, json!({"env": {"SECRET": "s1"}, "sample_input": {"a": 1, "b": {"c": 2}}}))
        .await;
    let path = "/api/v1/functions/editable";
    let (status, headers, doc) = s.request_as(None, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200);
    let etag = headers.get("etag").and_then(|v| v.to_str().ok()).expect("ETag").to_owned();

    // The document as it was read: nothing changes, not even the ETag.
    let (status, tag, f) = send(s, reqwest::Method::PUT, path, "application/json", Some(&etag), &doc).await;
    assert_eq!(status, 200, "PUT of what GET returned: {f}");
    assert_eq!((f["version"].clone(), tag.as_deref()), (json!(1), Some(etag.as_str())), "{f}");
    assert_eq!(f["env_names"], json!(["SECRET"]));
    // One field edited.
    let mut edited = doc.clone();
    edited["timeout_ms"] = json!(2500);
    let (status, tag, f) = send(s, reqwest::Method::PUT, path, "application/json", Some(&etag), &edited).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!((f["timeout_ms"].clone(), f["version"].clone()), (json!(2500), json!(2)), "{f}");
    let etag = tag.expect("ETag");
    assert_eq!(s.invoke("editable", &json!({})).await["output"], "s1", "the env value survived the round trip");
    // The name must be the path's; unknown fields are still refused.
    let mut renamed = doc.clone();
    renamed["name"] = json!("other");
    let (status, _, f) = send(s, reqwest::Method::PUT, path, "application/json", None, &renamed).await;
    assert_eq!(status, 422, "{f}");
    assert_eq!(f["error"]["fields"][0]["field"], "name", "{f}");
    let (status, _, f) = send(s, reqwest::Method::PUT, path, "application/json", None, &json!({"bogus": 1})).await;
    assert_eq!(status, 422, "{f}");
    assert!(f["error"]["message"].as_str().unwrap_or("").contains("bogus"), "{f}");

    // PATCH: a merge patch; the example merges, env is a merge of names, the rest is kept.
    let patch = json!({"memory_mb": 96, "sample_input": {"b": {"c": null, "d": 3}}, "env": {"NEW": "n"}, "name": "editable"});
    let (status, tag, f) = send(s, reqwest::Method::PATCH, path, "application/merge-patch+json", Some(&etag), &patch).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["memory_mb"], 96);
    assert_eq!(f["timeout_ms"], 2500, "left out, so kept");
    assert_eq!(f["sample_input"], json!({"a": 1, "b": {"d": 3}}));
    assert_eq!(f["env_names"], json!(["NEW", "SECRET"]));
    assert_eq!(f["version"], 3);
    let new_etag = tag.expect("ETag");
    // The ETag it replaced is stale now.
    let (status, _, f) = send(s, reqwest::Method::PATCH, path, "application/json", Some(&etag), &json!({"description": "x"})).await;
    assert_eq!(status, 412, "{f}");
    assert_eq!(f["error"]["code"], "etag_mismatch", "{f}");
    // null removes optional members and is refused for required ones; plain JSON works too.
    let (status, _, f) =
        send(s, reqwest::Method::PATCH, path, "application/json", Some(&new_etag), &json!({"sample_input": null, "description": "d"}))
            .await;
    assert_eq!(status, 200, "{f}");
    assert_eq!((f["sample_input"].clone(), f["description"].clone()), (Value::Null, json!("d")));
    let (status, _, f) = send(s, reqwest::Method::PATCH, path, "application/json", None, &json!({"code": null, "env": null})).await;
    assert_eq!(status, 422, "{f}");
    let mut fields: Vec<&str> = f["error"]["fields"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["code", "env"], "{f}");
    let (status, _, f) = send(s, reqwest::Method::PATCH, path, "text/plain", None, &json!({"description": "x"})).await;
    assert_eq!(status, 415, "{f}");
    let (status, _, f) = send(s, reqwest::Method::PATCH, "/api/v1/functions/nope", "application/json", None, &json!({})).await;
    assert_eq!(status, 404, "{f}");
    assert_eq!(s.invoke("editable", &json!({})).await["output"], "s1");
}
