//! Schedules against the real binary and dockerd: an every-second schedule fires 10 ± 1 times
//! in 10 s, once per tick, each an asynchronous call (`trigger: schedule`) that runs; a
//! disabled or deleted schedule stops; bad patterns are refused; and ticks missed while fnbox
//! was stopped are made up once at start, not one by one.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{tail, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const ECHO: &str = "def handler(event, context):\n    return event\n";

async fn fires(s: &TestServer, function: &str) -> Vec<Value> {
    let (status, list) = s.get(&format!("/api/v1/executions?function={function}&trigger=schedule&limit=1000")).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

/// Sleeps until just after the next whole second (ticks are whole seconds).
async fn align() {
    let ms = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_fires_once_per_tick() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    s.create("tick", "python", "docker", ECHO, json!({"concurrency": 2})).await;
    // Warm: the first fire's cold start must not blur the count.
    s.invoke("tick", &json!({})).await;

    // Refused: bad pattern, bad zone, no such function, unknown field.
    for (body, code) in [
        (json!({"cron": "* * * *"}), 422),
        (json!({"cron": "61 * * * *"}), 422),
        (json!({"cron": "0 0 30 2 *"}), 422),
        (json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}), 422),
        (json!({"cron": "* * * * *", "every": 1}), 422),
        (json!({}), 422),
    ] {
        let (status, e) = s.post("/api/v1/functions/tick/schedules", &body).await;
        assert_eq!(status, code, "{body}: {e}");
    }
    let (status, _) = s.post("/api/v1/functions/nope/schedules", &json!({"cron": "* * * * *"})).await;
    assert_eq!(status, 404);

    align().await;
    // As text: a serde_json::Value would round the number before it left.
    let (status, sched) = s
        .request(Method::POST, "/api/v1/functions/tick/schedules", Some(r#"{"cron": "* * * * * *", "input": {"k": 18446744073709551617}}"#.to_owned()))
        .await;
    assert_eq!(status, 201, "{sched}");
    let t0 = Instant::now();
    let id = sched["id"].as_str().expect("id").to_owned();
    assert_eq!((sched["timezone"].as_str(), sched["enabled"].as_bool()), (Some("UTC"), Some(true)), "{sched}");
    assert!(sched["next_run"].is_string(), "{sched}");
    let (_, listed) = s.get("/api/v1/functions/tick/schedules").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (_, all) = s.get("/api/v1/schedules").await;
    assert_eq!(all[0]["id"], json!(id));

    tokio::time::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed())).await;
    let (status, _) = s.request(Method::DELETE, &format!("/api/v1/schedules/{id}"), None).await;
    assert_eq!(status, 204);
    let n = fires(&s, "tick").await.len();
    assert!((9..=11).contains(&n), "an every-second schedule fired {n} times in 10 s\n{}", tail(&s.log(), 30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = fires(&s, "tick").await;
    assert_eq!(runs.len(), n, "no fire after the delete");
    // Each fire is its own call, and each ran with the schedule's input, exactly.
    let requests: BTreeSet<&str> = runs.iter().filter_map(|e| e["request_id"].as_str()).collect();
    assert_eq!(requests.len(), n, "one call per tick: {runs:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = fires(&s, "tick").await;
        if runs.iter().all(|e| e["status"] == json!("success")) {
            let text = reqwest::get(format!("{}/api/v1/executions?function=tick&trigger=schedule&limit=1000", s.url))
                .await
                .expect("get")
                .text()
                .await
                .expect("text");
            assert_eq!(text.matches(r#""output":{"k":18446744073709551617}"#).count(), n, "each ran with the input, exactly: {text}");
            assert!(runs.iter().all(|e| e["attempt"] == json!(1)));
            break;
        }
        assert!(Instant::now() < deadline, "scheduled calls did not all succeed: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = s.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, 404);

    // Disabled: no next run, no fire; enabled again: fires again.
    let (_, sched) = s.post("/api/v1/functions/tick/schedules", &json!({"cron": "* * * * * *", "enabled": false})).await;
    assert!(sched["next_run"].is_null(), "{sched}");
    let id = sched["id"].as_str().expect("id").to_owned();
    let before = fires(&s, "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(fires(&s, "tick").await.len(), before, "a disabled schedule does not fire");
    let (status, sched) = s.request(Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({"enabled": true}).to_string())).await;
    assert_eq!(status, 200, "{sched}");
    assert!(sched["next_run"].is_string(), "{sched}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(fires(&s, "tick").await.len() > before, "enabled again, it fires");
    let (status, e) = s.request(Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({"cron": "bad"}).to_string())).await;
    assert_eq!(status, 422, "{e}");
    // Deleting the function removes its schedules.
    let (status, _) = s.delete("/api/v1/functions/tick").await;
    assert_eq!(status, 204);
    let (status, _) = s.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(status, 404, "the function's schedules went with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_missed_while_stopped_fire_once_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    s.require_runtimes().await;
    s.create("tock", "python", "docker", ECHO, json!({})).await;
    align().await;
    let (status, sched) = s.post("/api/v1/functions/tock/schedules", &json!({"cron": "* * * * * *"})).await;
    assert_eq!(status, 201, "{sched}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // Read just before the stop: a tick between the two would make it one more (allowed for).
    let conn = fires(&s, "tock").await.len();
    s.stop();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    // Five ticks pass while it is down.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _) = s.request(Method::PATCH, &format!("/api/v1/schedules/{}", sched["id"].as_str().expect("id")), Some(json!({"enabled": false}).to_string())).await;
    assert_eq!(status, 200);
    let up = t0.elapsed().as_secs_f64();
    let after = fires(&s, "tock").await.len() - conn;
    // One catch-up fire for the five missed ticks, then one per second while up.
    let expected = 1 + up.floor() as usize;
    assert!(
        after + 1 >= expected && after <= expected + 2,
        "{after} fires after the restart ({up:.1} s up, five ticks missed): the missed ticks fire once, not one by one\n{}",
        tail(&s.log(), 30)
    );
}
