//! Pre-warmed cold starts, parallel invocations, back-pressure and no lost records.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

/// The tests that judge how the pool scales, and the one that loads the machine most, take
/// turns: 16-way load beside it makes quick calls slow, and the pool then rightly scales out.
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn generic_ready(s: &TestServer, key: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, p) = s.get("/api/v1/pools").await;
        if p["generic"][key].as_u64().unwrap_or(0) >= want {
            return;
        }
        assert!(Instant::now() < deadline, "pool {key} never reached {want}: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_takes_a_prewarmed_sandbox() {
    let s = TestServer::start(&["--prewarm", "1"]).await;
    s.require_runtimes().await;
    // Let the start-up pre-warming of every key finish, so only the invocations start sandboxes.
    for key in ["python/docker/128mb", "python/gvisor/128mb", "javascript/docker/128mb", "javascript/gvisor/128mb"] {
        generic_ready(&s, key, 1).await;
    }
    for (rt, key) in [("docker", "python/docker/128mb"), ("gvisor", "python/gvisor/128mb")] {
        generic_ready(&s, key, 1).await;
        let (_, before) = s.get("/api/v1/pools").await;
        let name = format!("pre-{rt}");
        s.create(&name, "python", rt, "def handler(e, c):\n    return 'ok'\n", json!({})).await;
        // The create-time syntax check borrows a runc sandbox and gives it back; it must not
        // have consumed this key's pre-started one.
        let (_, mid) = s.get("/api/v1/pools").await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["cold_start"], json!(true), "{r}");
        assert_eq!(r["output"], json!("ok"));
        let (_, after) = s.get("/api/v1/pools").await;
        let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        assert_eq!(n(&after, "prewarmed_cold_starts"), n(&before, "prewarmed_cold_starts") + 1, "{before} → {after}");
        assert_eq!(
            n(&after, "sandboxes_started"),
            n(&mid, "sandboxes_started"),
            "the cold start must not have started a container of its own: {mid} → {after}"
        );
        // The pool refills in the background.
        generic_ready(&s, key, 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429_with_retry_after() {
    let s = TestServer::start(&["--max-queue", "2", "--prewarm", "0"]).await;
    s.require_runtimes().await;
    s.create("slow", "python", "docker", "import time\ndef handler(e, c):\n    time.sleep(1.5)\n    return 'done'\n", json!({"concurrency": 1})).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/functions/slow/invoke", s.url);
    let calls = (0..6).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let r = client.post(url).body("{}").send().await.expect("send");
            (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string()))
        })
    });
    // Spawn them all before awaiting any (the iterator is lazy).
    let calls: Vec<_> = calls.collect();
    let mut ok = 0;
    let mut limited = 0;
    for c in calls {
        match c.await.expect("join") {
            (200, _) => ok += 1,
            (429, retry) => {
                assert_eq!(retry.as_deref(), Some("1"), "429 carries Retry-After");
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // One runs, two wait, the other three are turned away.
    assert_eq!((ok, limited), (3, 3), "ok={ok} limited={limited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_execution_is_lost_under_16_way_concurrency() {
    let _turn = LOAD.lock().await;
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    for rt in ["docker", "gvisor"] {
        let name = format!("par-{rt}");
        s.create(&name, "javascript", rt, "exports.handler = async (e) => e.i * 2;\n", json!({"concurrency": 16})).await;
        let client = reqwest::Client::new();
        let url = format!("{}/api/v1/functions/{name}/invoke", s.url);
        let workers = (0..16).map(|w| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut answered = 0u64;
                for i in 0..25 {
                    let v = w * 100 + i;
                    let r = client.post(&url).body(json!({"i": v}).to_string()).send().await.expect("send");
                    assert_eq!(r.status().as_u16(), 200);
                    let body: Value = r.json().await.expect("json");
                    assert_eq!(body["output"], json!(v * 2), "{body}");
                    answered += 1;
                }
                answered
            })
        });
        let workers: Vec<_> = workers.collect();
        let mut answered = 0;
        for w in workers {
            answered += w.await.expect("join");
        }
        let (_, recorded) = s.get(&format!("/api/v1/executions?function={name}&limit=1000")).await;
        let recorded = recorded.as_array().map_or(0, Vec::len) as u64;
        assert_eq!(answered, 400);
        assert_eq!(recorded, answered, "every answered call is in the store on {rt}");
        let (_, pools) = s.get("/api/v1/pools").await;
        let fp = pools["functions"].as_array().and_then(|a| a.iter().find(|p| p["function"] == json!(name)).cloned());
        let fp = fp.unwrap_or_default();
        let sandboxes = fp["idle"].as_u64().unwrap_or(0) + fp["busy"].as_u64().unwrap_or(0);
        assert!((2..=16).contains(&sandboxes), "parallel calls used several sandboxes, within the limit: {fp}");
    }
}

/// Sandboxes per function grow with what the calls need: quick calls share the warm sandboxes
/// there are (a cold start would take longer than the wait), slow ones get a sandbox each, up
/// to the function's concurrency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_follows_call_duration() {
    let _turn = LOAD.lock().await;
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    let code = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n    return event['s']\n";
    s.create("elastic", "python", "docker", code, json!({"concurrency": 8})).await;
    let live = |p: &Value| {
        p["functions"].as_array().into_iter().flatten().filter(|f| f["function"] == json!("elastic")).map(|f| f["idle"].as_u64().unwrap_or(0) + f["busy"].as_u64().unwrap_or(0)).sum::<u64>()
    };
    let http = reqwest::Client::new();
    let burst = |secs: f64, n: usize| {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let req = http.post(format!("{}/api/v1/functions/elastic/invoke", s.url)).json(&json!({"s": secs}));
            set.spawn(async move {
                let r = req.send().await.expect("invoke");
                (r.status().as_u16(), r.json::<Value>().await.expect("json"))
            });
        }
        set.join_all()
    };
    // Teach the pool that calls are quick: a few sequential ones.
    for _ in 0..10 {
        assert_eq!(s.invoke("elastic", &json!({"s": 0})).await["status"], json!("success"));
    }
    for _ in 0..5 {
        for (status, r) in burst(0.0, 8).await {
            assert_eq!(status, 200, "{r}");
        }
    }
    let (_, p) = s.get("/api/v1/pools").await;
    let quick = live(&p);
    assert!(quick < 8, "8-way bursts of ~0 ms calls should not need 8 sandboxes: {p}");

    // Slow calls: once the pool has seen them, each is worth a sandbox of its own, and 8 of
    // 300 ms run side by side (8 in a row would take 2.4 s).
    let mut took = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        for (status, r) in burst(0.3, 8).await {
            assert_eq!(status, 200, "{r}");
        }
        took.push(t0.elapsed());
    }
    let (_, p) = s.get("/api/v1/pools").await;
    assert!(live(&p) > quick, "slow calls grew the pool ({quick} → {}): {p}", live(&p));
    assert!(took[2] < Duration::from_millis(1000), "8 slow calls took {took:?}: they did not run in parallel");
}

/// A global budget keeps the host safe: idle sandboxes of other functions are evicted (least
/// recently used first) to make room, and when every sandbox is busy a new one is refused
/// with a 503 that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_budget_evicts_idle_ones_then_refuses() {
    let s = TestServer::start(&["--max-sandboxes", "3", "--prewarm", "0", "--no-syntax-check"]).await;
    s.require_runtimes().await;
    let code = "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'ok'\n";
    for name in ["b1", "b2", "b3", "b4", "slow", "late"] {
        s.create(name, "python", "docker", code, json!({"concurrency": 3})).await;
    }
    for name in ["b1", "b2", "b3"] {
        assert_eq!(s.invoke(name, &json!({})).await["output"], json!("ok"));
    }
    let (_, p) = s.get("/api/v1/pools").await;
    assert_eq!(p["sandboxes"], json!(3), "{p}");
    assert_eq!(p["evictions"], json!(0), "{p}");
    // A fourth function: the least recently used idle sandbox (b1's) makes room.
    assert_eq!(s.invoke("b4", &json!({})).await["output"], json!("ok"));
    let (_, p) = s.get("/api/v1/pools").await;
    assert_eq!(p["sandboxes"], json!(3), "{p}");
    assert_eq!(p["evictions"], json!(1), "{p}");
    let idle_of = |p: &Value, name: &str| {
        p["functions"].as_array().into_iter().flatten().filter(|f| f["function"] == json!(name)).map(|f| f["idle"].as_u64().unwrap_or(0)).sum::<u64>()
    };
    assert_eq!(idle_of(&p, "b1"), 0, "b1 was the least recently used: {p}");
    assert_eq!(idle_of(&p, "b4"), 1, "{p}");

    // Three long calls take every sandbox; one more function cannot get one.
    let http = reqwest::Client::new();
    let mut busy = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let req = http.post(format!("{}/api/v1/functions/slow/invoke", s.url)).json(&json!({"s": 3}));
        busy.spawn(async move { req.send().await.expect("invoke").status().as_u16() });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, p) = s.get("/api/v1/pools").await;
        let busy_slow: u64 = p["functions"].as_array().into_iter().flatten().filter(|f| f["function"] == json!("slow")).map(|f| f["busy"].as_u64().unwrap_or(0)).sum();
        if busy_slow == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the slow calls never all ran: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, r) = s.post("/api/v1/functions/late/invoke", &json!({})).await;
    assert_eq!(status, 503, "{r}");
    assert!(r["error"]["message"].as_str().unwrap_or("").contains("no room for another sandbox"), "{r}");
    for status in busy.join_all().await {
        assert_eq!(status, 200);
    }
    // Once they are done, there is room again.
    assert_eq!(s.invoke("late", &json!({})).await["output"], json!("ok"));
}
