//! dockerd goes away while fnbox runs: `/healthz` says so, invocations answer 503 with a
//! reason meanwhile, and fnbox recovers by itself when dockerd is back. Stops and starts the
//! machine's dockerd through scripts/dockerd.sh (which only touches a daemon that systemd or
//! scripts/setup.sh started), so it lives in a test binary of its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

fn dockerd(action: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dockerd.sh");
    Command::new("bash").arg(script).arg(action).status().map(|s| s.success()).unwrap_or(false)
}

/// Starts dockerd again however the test ends, so the tests after it find it running.
struct Restart;
impl Drop for Restart {
    fn drop(&mut self) {
        if !dockerd("start") {
            eprintln!("could not start dockerd again: run `make setup`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerd_restart_is_reported_and_recovered_from() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    let hello = "def handler(event, context):\n    return 'Hello, %s!' % event['name']\n";
    s.create("hello", "python", "docker", hello, json!({})).await;
    assert_eq!(s.invoke("hello", &json!({"name": "Bob"})).await["output"], json!("Hello, Bob!"));

    let _restart = Restart;
    let t0 = Instant::now();
    assert!(dockerd("stop"), "scripts/dockerd.sh stop failed");
    eprintln!("dockerd stopped in {:?}", t0.elapsed());

    // Down: health says so, and invocations get a clear 503.
    let deadline = Instant::now() + Duration::from_secs(15);
    let health = loop {
        let (status, h) = s.get("/healthz").await;
        if status == 503 {
            break h;
        }
        assert!(Instant::now() < deadline, "/healthz still {status} with dockerd down: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["docker"]["reachable"], json!(false), "{health}");
    assert_eq!(health["runtimes"]["docker"]["available"], json!(false), "{health}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let down = loop {
        let (status, r) = s.post("/api/v1/functions/hello/invoke", &json!({"name": "Bob"})).await;
        if status == 503 {
            break r;
        }
        assert!(status == 200, "with dockerd down an invocation answers 200 (a sandbox still alive) or 503, not {status}: {r}");
        assert!(Instant::now() < deadline, "invocations still succeed 15 s after dockerd stopped: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(down["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "503 says why: {down}");
    // The server itself is fine: reads still work.
    assert_eq!(s.get("/api/v1/functions/hello").await.0, 200);

    // Back: fnbox recovers on its own.
    let t1 = Instant::now();
    assert!(dockerd("start"), "scripts/dockerd.sh start failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, r) = s.post("/api/v1/functions/hello/invoke", &json!({"name": "Ann"})).await;
        if status == 200 {
            assert_eq!(r["output"], json!("Hello, Ann!"), "{r}");
            break;
        }
        assert_eq!(status, 503, "{r}");
        assert!(Instant::now() < deadline, "fnbox did not recover within 60 s of dockerd's return: {r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("invocations work again {:?} after dockerd was started", t1.elapsed());
    let (status, h) = s.get("/healthz").await;
    assert_eq!(status, 200, "{h}");
    s.require_runtimes().await;
}
