//! Cold starts from pre-started sandboxes, against real dockerd with runc and runsc: a new
//! function's sandbox is up before its first call, a burst of new functions is served from
//! pre-started sandboxes, and a function whose memory size has no pre-started sandbox gets one
//! of another size with its own limit set and enforced by the host.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const RUNTIMES: [&str; 2] = ["docker", "gvisor"];

/// Allocates and touches `mb` MiB (a bytearray's pages are only committed when written).
const ALLOC: &str = "def handler(event, context):\n    b = bytearray(event['mb'] * 1048576)\n    for i in range(0, len(b), 4096):\n        b[i] = 1\n    return len(b) // 1048576\n";

async fn pools(s: &TestServer) -> Value {
    let (status, p) = s.get("/api/v1/pools").await;
    assert_eq!(status, 200, "{p}");
    p
}

fn counter(p: &Value, name: &str) -> u64 {
    p[name].as_u64().unwrap_or_else(|| panic!("pools report `{name}`: {p}"))
}

/// Waits until the pre-started pool of `label` (`python/gvisor/128mb`) holds a sandbox.
async fn wait_generic(s: &TestServer, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = pools(s).await;
        if p["generic"][label].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "no pre-started {label} sandbox in 30 s: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_functions_have_their_sandboxes_before_their_first_calls() {
    let s = TestServer::start(&["--prewarm", "1"]).await;
    s.require_runtimes().await;
    for rt in RUNTIMES {
        wait_generic(&s, &format!("python/{rt}/128mb")).await;
        // Eight created back to back, then called: each first call finds the sandbox that
        // compiled its code at create time (loaded, no container start).
        let names: Vec<String> = (0..8).map(|i| format!("burst-{rt}-{i}")).collect();
        for name in &names {
            s.create(name, "python", rt, "def handler(event, context):\n    return event\n", json!({})).await;
        }
        let before = pools(&s).await;
        assert!(counter(&before, "checked") >= names.len() as u64, "each new function has its sandbox: {before}");
        for (i, name) in names.iter().enumerate() {
            let r = s.invoke(name, &json!({"i": i})).await;
            assert_eq!(r["output"], json!({"i": i}), "{r}");
            assert_eq!(r["cold_start"], json!(true), "{r}");
        }
        let after = pools(&s).await;
        let cold = counter(&after, "cold_starts") - counter(&before, "cold_starts");
        let prestarted = counter(&after, "prewarmed_cold_starts") - counter(&before, "prewarmed_cold_starts");
        assert_eq!((cold, prestarted), (8, 8), "{rt}: every first call started from a pre-started sandbox: {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusual_memory_size_is_served_pre_started_with_its_own_limit_enforced() {
    // Code checks off: the first call itself must find the sandbox of another size.
    let s = TestServer::start(&["--prewarm", "1", "--no-syntax-check"]).await;
    s.require_runtimes().await;
    for rt in RUNTIMES {
        // (memory_mb, an allocation that fits, one beyond the limit): lowered from 128 MB and raised.
        for (mb, fits, beyond) in [(96, 30, 150), (320, 200, 400)] {
            let label = format!("python/{rt}/128mb");
            wait_generic(&s, &label).await;
            let name = format!("odd-{rt}-{mb}");
            s.create(&name, "python", rt, ALLOC, json!({"memory_mb": mb, "timeout_ms": 20000})).await;
            let before = pools(&s).await;
            let r = s.invoke(&name, &json!({"mb": fits})).await;
            assert_eq!((r["status"].clone(), r["output"].clone()), (json!("success"), json!(fits)), "{rt}/{mb} MB: {r}");
            assert_eq!(r["cold_start"], json!(true), "{r}");
            let after = pools(&s).await;
            assert_eq!(
                counter(&after, "resized_sandboxes") - counter(&before, "resized_sandboxes"),
                1,
                "{rt}/{mb} MB: the first call took a pre-started 128 MB sandbox and set its limit: {after}"
            );
            assert_eq!(counter(&after, "prewarmed_cold_starts") - counter(&before, "prewarmed_cold_starts"), 1, "{after}");
            // The warm sandbox (the resized one) refuses what its own size does not allow.
            let r = s.invoke(&name, &json!({"mb": beyond})).await;
            assert_eq!(r["cold_start"], json!(false), "{r}");
            assert_eq!(r["status"], json!("oom"), "{rt}/{mb} MB: {beyond} MiB must not fit: {r}");
        }
    }
}
