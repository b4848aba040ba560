//! Crash safety: `kill -9` of fnbox under load, then a restart on the same data dir.
//! Every answered execution is in the store, the ones that were running become `Interrupted`
//! records, and the sandboxes the dead server left behind are removed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use std::sync::Mutex;
use serde_json::{json, Value};

const SLOW: &str = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n    return event['i']\n";
const CLIENTS: usize = 8;

fn containers_of(instance: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &format!("label=fnbox.instance={instance}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_answered_execution() {
    let mut s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    let instance = fnbox_sandbox::docker::instance_id(&s.data_dir());
    s.create("slow", "python", "docker", SLOW, json!({"concurrency": CLIENTS + 1, "timeout_ms": 10000})).await;
    assert_eq!(s.invoke("slow", &json!({"s": 0, "i": 0})).await["output"], json!(0));
    // Reach steady state first: a few rounds of 8 slow calls grow the pool to 8 sandboxes.
    let http0 = reqwest::Client::new();
    let mut warmed = 1;
    for round in 0..3 {
        let mut set = tokio::task::JoinSet::new();
        for c in 0..CLIENTS {
            let req = http0.post(format!("{}/api/v1/functions/slow/invoke", s.url)).json(&json!({"s": 0.3, "i": round * 100 + c}));
            set.spawn(async move { req.send().await.expect("invoke").status().as_u16() });
        }
        for status in set.join_all().await {
            assert_eq!(status, 200);
            warmed += 1;
        }
    }

    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, url, answered) = (http.clone(), s.url.clone(), answered.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let r = http
                        .post(format!("{url}/api/v1/functions/slow/invoke"))
                        .json(&json!({"s": 0.3, "i": c * 1000 + i}))
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    if r.status() != 200 {
                        return;
                    }
                    let Ok(body) = r.json::<Value>().await else { return };
                    assert_eq!(body["status"], json!("success"), "{body}");
                    answered.lock().expect("lock").push(body["execution_id"].as_str().expect("id").to_owned());
                }
            })
        })
        .collect();
    // One long call is surely past the in-flight journal's grace at the kill (the 8 clients
    // run in lockstep, so the kill can fall within the first 100 ms of all their calls, which
    // are then, by design, not journalled: none was answered).
    let long = {
        let req = http.post(format!("{}/api/v1/functions/slow/invoke", s.url)).json(&json!({"s": 8, "i": -1}));
        tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = s.crash();
    assert!(long.await.expect("long call task").is_err(), "the long call was cut short by the kill");
    for c in clients {
        c.await.expect("client task");
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(answered.len() >= CLIENTS, "the load ran before the crash: {} answered", answered.len());
    let left = containers_of(&instance);
    assert!(!left.is_empty(), "a killed fnbox leaves its sandboxes behind (nothing to clean up otherwise)");

    let t0 = Instant::now();
    let s = TestServer::start_in(dir, &[]).await;
    let still: Vec<&String> = left.iter().filter(|id| containers_of(&instance).contains(id)).collect();
    assert!(still.is_empty(), "sandboxes of the killed server still exist after the restart: {still:?}");
    eprintln!("restart and clean-up took {:?}", t0.elapsed());

    for id in &answered {
        let (status, e) = s.get(&format!("/api/v1/executions/{id}")).await;
        assert_eq!(status, 200, "answered execution {id} is missing after the crash: {e}");
        assert_eq!(e["status"], json!("success"), "{e}");
    }
    let (status, all) = s.get("/api/v1/executions?function=slow&limit=1000").await;
    assert_eq!(status, 200);
    let all = all.as_array().cloned().unwrap_or_default();
    let interrupted: Vec<&Value> = all.iter().filter(|e| e["error"]["type"] == json!("Interrupted")).collect();
    assert!(!interrupted.is_empty(), "the calls running at the crash are recorded as interrupted: {all:?}");
    let long_one = |e: &&&Value| serde_json::from_str::<Value>(e["input"].as_str().unwrap_or("")).is_ok_and(|i| i["i"] == json!(-1));
    assert!(interrupted.iter().any(|e| long_one(&e)), "the long call is recorded as interrupted: {interrupted:?}");
    for e in &interrupted {
        assert_eq!(e["status"], json!("error"), "{e}");
        assert!(e["error"]["message"].as_str().unwrap_or("").contains("fnbox stopped"), "{e}");
    }
    // Answered + interrupted + at most one finished-but-unanswered call per client (+ the warm-up).
    let extra = all.len() - warmed - answered.len() - interrupted.len();
    assert!(extra <= CLIENTS, "{} records, {} answered, {} interrupted", all.len(), answered.len(), interrupted.len());
    eprintln!("{} answered before kill -9, {} interrupted, {extra} finished unanswered", answered.len(), interrupted.len());

    // And it works again.
    assert_eq!(s.invoke("slow", &json!({"s": 0, "i": 7})).await["output"], json!(7));
}

/// A SIGTERM while pre-started sandboxes are still starting (gVisor takes a while) leaves
/// none of them behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_sandbox_behind() {
    for _ in 0..2 {
        let mut s = TestServer::start(&["--prewarm", "2"]).await;
        let instance = fnbox_sandbox::docker::instance_id(&s.data_dir());
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.stop();
        let left = containers_of(&instance);
        assert!(left.is_empty(), "sandboxes left after a clean stop: {left:?}\n{}", common::tail(&s.log(), 30));
    }
}
