//! Asynchronous invocations against the real binary and dockerd: `Prefer: respond-async`
//! answers 202 once the call is committed to the durable queue; failed attempts are retried
//! with backoff up to `max_retries`, each its own record, then the call is dead-lettered
//! (retry and discard from there); and a `kill -9` loses no accepted call.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{tail, TestServer};
use serde_json::{json, Value};

const ECHO: &str = "def handler(event, context):\n    return event\n";
const FAIL: &str = "def handler(event, context):\n    raise ValueError('always ' + str(event.get('n')))\n";
const SLOW: &str = "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 5))\n    return 1\n";
const WORK: &str = "import time\ndef handler(event, context):\n    time.sleep(0.3)\n    return event['i']\n";

/// POST with `Prefer: respond-async`: status, headers, body.
async fn accept(http: &reqwest::Client, url: &str, name: &str, body: &Value) -> Result<(u16, reqwest::header::HeaderMap, Value), reqwest::Error> {
    let r = http
        .post(format!("{url}/api/v1/functions/{name}/invoke"))
        .header("prefer", "respond-async")
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, headers, v))
}

/// Every record of one call, oldest attempt first.
async fn attempts_of(s: &TestServer, request_id: &str) -> Vec<Value> {
    let (status, list) = s.get(&format!("/api/v1/executions?request_id={request_id}&trigger=all&limit=100")).await;
    assert_eq!(status, 200, "{list}");
    let mut v = list.as_array().cloned().unwrap_or_default();
    v.sort_by_key(|e| e["attempt"].as_u64());
    v
}

async fn wait_dead_letter(s: &TestServer, request_id: &str, attempts: u64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, l) = s.get(&format!("/api/v1/dead-letters/{request_id}")).await;
        if status == 200 && l["attempts"] == json!(attempts) {
            return l;
        }
        assert!(Instant::now() < deadline, "no dead letter with {attempts} attempts for {request_id}: {l}\n{}", tail(&s.log(), 30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_calls_run_and_failures_are_retried_then_dead_lettered() {
    let s = TestServer::start(&["--retry-base-ms", "100", "--prewarm", "0"]).await;
    s.require_runtimes().await;
    let http = reqwest::Client::new();
    s.create("echo", "python", "docker", ECHO, json!({})).await;
    let f = s.create("fail", "python", "docker", FAIL, json!({"max_retries": 2})).await;
    assert_eq!(f["max_retries"], json!(2), "{f}");
    let d = s.create("dflt", "python", "gvisor", ECHO, json!({})).await;
    assert_eq!(d["max_retries"], json!(2), "the default is Lambda's: {d}");
    let (status, bad) = s.post("/api/v1/functions", &json!({"name": "x", "language": "python", "code": ECHO, "max_retries": 6})).await;
    assert_eq!(status, 422, "{bad}");

    // Accepted: 202, the ids, Location naming the first attempt's record.
    // Sent and read as text: a serde_json::Value would round the number before it left.
    let big = "18446744073709551617";
    let r = http
        .post(format!("{}/api/v1/functions/echo/invoke", s.url))
        .header("prefer", "respond-async")
        .body(format!(r#"{{"n":{big},"s":"é"}}"#))
        .send()
        .await
        .expect("accept");
    let (status, h) = (r.status().as_u16(), r.headers().clone());
    let a: Value = r.json().await.expect("body");
    assert_eq!(status, 202, "{a}");
    assert_eq!(a["status"], json!("queued"), "{a}");
    let (id, request) = (a["execution_id"].as_str().expect("id").to_owned(), a["request_id"].as_str().expect("request").to_owned());
    assert_eq!(h.get("location").and_then(|v| v.to_str().ok()), Some(format!("/api/v1/executions/{id}").as_str()));
    assert_eq!(h.get("preference-applied").and_then(|v| v.to_str().ok()), Some("respond-async"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (status, e) = s.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(status, 200, "the record exists from acceptance on: {e}");
        if e["status"] != json!("queued") {
            break e;
        }
        assert!(Instant::now() < deadline, "still queued after 30 s: {e}\n{}", tail(&s.log(), 30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], json!("success"), "{done}");
    let text = http.get(format!("{}/api/v1/executions/{id}", s.url)).send().await.expect("get").text().await.expect("text");
    assert!(text.contains(&format!(r#""output":{{"n":{big},"s":"é"}}"#)), "the output is exact: {text}");
    assert_eq!((done["trigger"].as_str(), done["attempt"].as_u64(), done["request_id"].as_str()), (Some("async"), Some(1), Some(request.as_str())));

    // Filterable by trigger: the async run is not among the api runs, and is among async ones.
    s.invoke("echo", &json!({"sync": true})).await;
    let (_, asyncs) = s.get("/api/v1/executions?function=echo&trigger=async").await;
    assert_eq!(asyncs.as_array().map(Vec::len), Some(1), "{asyncs}");
    let (_, apis) = s.get("/api/v1/executions?function=echo&trigger=api").await;
    assert_eq!(apis.as_array().map(|v| v.iter().all(|e| e["trigger"] == json!("api"))), Some(true), "{apis}");

    // Failing every time: exactly max_retries + 1 attempts, each its own record, then a dead letter.
    let (status, _, a) = accept(&http, &s.url, "fail", &json!({"n": 7})).await.expect("accept");
    assert_eq!(status, 202);
    let request = a["request_id"].as_str().expect("request").to_owned();
    let letter = wait_dead_letter(&s, &request, 3, Duration::from_secs(60)).await;
    assert_eq!(letter["function"], json!("fail"));
    assert_eq!(serde_json::from_str::<Value>(letter["input"].as_str().expect("input")).expect("json"), json!({"n": 7}));
    assert_eq!(letter["last_error"]["type"], json!("ValueError"), "{letter}");
    assert!(letter["last_error"]["message"].as_str().unwrap_or("").contains("always 7"), "{letter}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let tries = attempts_of(&s, &request).await;
    let numbers: Vec<u64> = tries.iter().filter_map(|e| e["attempt"].as_u64()).collect();
    assert_eq!(numbers, [1, 2, 3], "max_retries + 1 attempts, no more: {tries:?}");
    assert!(tries.iter().all(|e| e["status"] == json!("error") && e["trigger"] == json!("async")), "{tries:?}");
    assert_eq!(letter["last_execution_id"], tries[2]["id"]);
    let (_, listed) = s.get("/api/v1/dead-letters").await;
    assert_eq!(listed["total"], json!(1), "{listed}");
    assert_eq!(listed["dead_letters"][0]["id"], json!(request));

    // Retry from the dead letters: a new round of three attempts under the same request id.
    let r = http.post(format!("{}/api/v1/dead-letters/{request}/retry", s.url)).send().await.expect("retry");
    assert_eq!(r.status().as_u16(), 202);
    let letter = wait_dead_letter(&s, &request, 6, Duration::from_secs(60)).await;
    assert_eq!(letter["attempts"], json!(6));
    let numbers: Vec<u64> = attempts_of(&s, &request).await.iter().filter_map(|e| e["attempt"].as_u64()).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    // Discard: gone, and its records stay.
    let (status, _) = s.delete(&format!("/api/v1/dead-letters/{request}")).await;
    assert_eq!(status, 204);
    let (status, e) = s.get(&format!("/api/v1/dead-letters/{request}")).await;
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("dead_letter_not_found")));
    assert_eq!(attempts_of(&s, &request).await.len(), 6);
    let (status, _) = s.get("/api/v1/dead-letters/not-a-uuid").await;
    assert_eq!(status, 404);

    // A timeout is a failed attempt too (max_retries 1: two attempts).
    s.create("slow", "python", "docker", SLOW, json!({"timeout_ms": 300, "max_retries": 1})).await;
    let (_, _, a) = accept(&http, &s.url, "slow", &json!({})).await.expect("accept");
    let request = a["request_id"].as_str().expect("request").to_owned();
    let letter = wait_dead_letter(&s, &request, 2, Duration::from_secs(60)).await;
    assert_eq!(letter["last_error"]["type"], json!("Timeout"), "{letter}");
    let statuses: Vec<Value> = attempts_of(&s, &request).await.iter().map(|e| e["status"].clone()).collect();
    assert_eq!(statuses, [json!("timeout"), json!("timeout")]);

    // Refusals are synchronous and clear.
    let (status, _, e) = accept(&http, &s.url, "nope", &json!({})).await.expect("accept");
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("function_not_found")), "{e}");
    let r = http
        .post(format!("{}/api/v1/functions/echo/invoke", s.url))
        .header("prefer", "respond-async")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);

    // The queue's figures: empty now, on /api/v1/queue and /metrics.
    let (_, q) = s.get("/api/v1/queue").await;
    assert_eq!((q["depth"].as_u64(), q["dead_letters"].as_u64()), (Some(0), Some(1)), "{q}");
    let metrics = http.get(format!("{}/metrics", s.url)).send().await.expect("metrics").text().await.expect("text");
    for name in ["fnbox_async_queue_depth 0", "fnbox_async_dead_letters 1", "fnbox_async_retries_total", "fnbox_async_dead_lettered_total", "fnbox_async_accepted_total"] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
}

/// 200 accepted calls with a `kill -9` of fnbox while they are accepted and run: after the
/// restart every accepted call ends with exactly one success, and nothing stays queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_call_is_lost_to_kill_9() {
    const TOTAL: usize = 200;
    const CLIENTS: usize = 8;
    let mut s = TestServer::start(&["--retry-base-ms", "100"]).await;
    s.require_runtimes().await;
    s.create("work", "python", "docker", WORK, json!({"concurrency": 8, "timeout_ms": 5000})).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    // Accept from 8 clients until the server dies (killed once half are accepted).
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, i64>::new()));
    // Each client sends one call every 10 ms until the server dies or `cap` are accepted.
    let send_until_dead = |url: String, from: usize, count: usize, cap: usize| {
        let (http, accepted) = (http.clone(), accepted.clone());
        tokio::spawn(async move {
            for k in 0..count {
                if accepted.lock().expect("lock").len() >= cap {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                let i = (from + k) as i64;
                let Ok((status, _, a)) = accept(&http, &url, "work", &json!({"i": i})).await else { return };
                if status != 202 {
                    return;
                }
                accepted.lock().expect("lock").insert(a["request_id"].as_str().expect("request").to_owned(), i);
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS).map(|c| send_until_dead(s.url.clone(), c * 1000, 1000, TOTAL * 3 / 4)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.lock().expect("lock").len() < TOTAL / 2 {
        assert!(Instant::now() < deadline, "100 calls were not accepted within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Kill in the steady state: eight attempts of 0.3 s each always running, started at
    // different times, so some are past the 100 ms after which a running call is journalled
    // (and become `Interrupted` records, then retries), others not (run again as they were).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, done) = s.get("/api/v1/executions?function=work&trigger=async&status=success&limit=100").await;
        if done.as_array().map_or(0, Vec::len) >= 2 * CLIENTS {
            break;
        }
        assert!(Instant::now() < deadline, "the queue did not start running: {done}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let dir = s.crash();
    for c in clients {
        c.await.expect("client");
    }
    let before = accepted.lock().expect("lock").len();
    let s = TestServer::start_in(dir, &["--retry-base-ms", "100"]).await;
    // The rest of the 200 after the restart.
    let rest: Vec<_> = (0..CLIENTS)
        .map(|c| send_until_dead(s.url.clone(), 100_000 + c * 1000, 1000, TOTAL))
        .collect();
    for c in rest {
        c.await.expect("client");
    }
    let accepted = accepted.lock().expect("lock").clone();
    assert!(accepted.len() >= TOTAL && accepted.len() < TOTAL + CLIENTS, "{} accepted", accepted.len());

    // Every accepted call comes to exactly one success, with its own output.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, all) = s.get("/api/v1/executions?function=work&trigger=all&limit=1000").await;
        assert_eq!(status, 200);
        let all = all.as_array().cloned().unwrap_or_default();
        let mut by_request: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in all {
            if let Some(r) = e["request_id"].as_str() {
                by_request.entry(r.to_owned()).or_default().push(e);
            }
        }
        let finished = accepted.keys().filter(|r| by_request.get(*r).is_some_and(|v| v.iter().any(|e| e["status"] == json!("success")))).count();
        if finished == accepted.len() {
            for (r, i) in &accepted {
                let records = &by_request[r];
                let ok: Vec<&Value> = records.iter().filter(|e| e["status"] == json!("success")).collect();
                assert_eq!(ok.len(), 1, "one success per call: {records:?}");
                assert_eq!(ok[0]["output"], json!(i), "{records:?}");
                assert!(records.iter().all(|e| e["status"] != json!("queued")), "nothing left queued: {records:?}");
                for e in records.iter().filter(|e| e["status"] != json!("success")) {
                    assert_eq!(e["error"]["type"], json!("Interrupted"), "only the kill failed an attempt: {e}");
                }
            }
            let retried = accepted.keys().filter(|r| by_request[*r].len() > 1).count();
            assert!(retried >= 1, "the kill interrupted running attempts, which were retried");
            eprintln!("{} accepted ({before} before kill -9), {retried} retried after an interrupted attempt", accepted.len());
            break;
        }
        assert!(Instant::now() < deadline, "{finished} of {} accepted calls finished after 120 s\n{}", accepted.len(), tail(&s.log(), 40));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, q) = s.get("/api/v1/queue").await;
    assert_eq!((q["depth"].as_u64(), q["dead_letters"].as_u64()), (Some(0), Some(0)), "{q}");
}
