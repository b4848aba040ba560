//! What the web UI's lists need without downloading payloads (issue 16, item 8): each function
//! in the list carries its `last_execution`, executions list without input/output/logs with
//! `view=summary`, and answers are compressed (gzip, br) for clients that ask, live streams and
//! function URL answers excepted.

mod common;

use std::io::Read;
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

const HELLO: &str = "def handler(event, context):\n    print('x' * 2000)\n    return event\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_carry_their_last_execution_and_executions_have_a_summary_view() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.create("ran", "python", "docker", HELLO, json!({})).await;
    s.create("idle", "python", "docker", HELLO, json!({})).await;
    s.invoke("ran", &json!({"n": 1})).await;
    let last = s.invoke("ran", &json!({"n": 2})).await;
    // A comparison's runs are not the function's last execution.
    let (status, c) = s.post("/api/v1/functions/ran/compare", &json!({"input": {}, "iterations": 1})).await;
    assert_eq!(status, 201, "{c}");

    let (status, list) = s.get("/api/v1/functions").await;
    assert_eq!(status, 200, "{list}");
    let by = |name: &str| list.as_array().into_iter().flatten().find(|f| f["name"] == name).cloned().expect(name);
    assert_eq!(by("idle")["last_execution"], Value::Null, "never ran: {list}");
    let le = &by("ran")["last_execution"];
    assert_eq!(le["id"], last["execution_id"], "{le}");
    assert_eq!((le["status"].clone(), le["trigger"].clone()), (json!("success"), json!("api")), "{le}");
    assert!(le["duration_ms"].as_f64().is_some_and(|d| d > 0.0) && le["started_at"].is_string(), "{le}");
    // What the list returns can be sent back as an update.
    let (status, f) = s.put("/api/v1/functions/ran", &by("ran")).await;
    assert_eq!(status, 200, "{f}");

    let (status, full) = s.get("/api/v1/executions?function=ran").await;
    assert_eq!(status, 200);
    let (status, summary) = s.get("/api/v1/executions?function=ran&view=summary").await;
    assert_eq!(status, 200, "{summary}");
    let summary = summary.as_array().cloned().unwrap_or_default();
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert_eq!(summary[0]["id"], last["execution_id"]);
    for e in &summary {
        for payload in ["input", "output", "logs"] {
            assert!(e.get(payload).is_none(), "{payload} in a summary: {e}");
        }
        assert_eq!(e["status"], "success");
    }
    assert!(full.to_string().len() > 2 * summary.iter().map(|e| e.to_string().len()).sum::<usize>(), "a summary is smaller");
    let (status, e) = s.get("/api/v1/executions?view=tiny").await;
    assert_eq!((status, e["error"]["code"].clone()), (400, json!("invalid_query")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_but_streams_and_function_urls_are_not() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.create("echo", "python", "docker", HELLO, json!({"http": "public"})).await;
    for i in 0..5 {
        s.invoke("echo", &json!({"i": i})).await;
    }
    let http = reqwest::Client::new();
    let get = |path: &str, enc: &'static str| {
        http.get(format!("{}{path}", s.url)).header("accept-encoding", enc).send()
    };
    let plain = get("/api/v1/executions", "identity").await.expect("get");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("body");

    let gz = get("/api/v1/executions", "gzip").await.expect("get");
    assert_eq!(gz.headers().get("content-encoding").map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    let packed = gz.bytes().await.expect("body");
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut unpacked).expect("gunzip");
    let (a, b): (Value, Value) = (serde_json::from_slice(&unpacked).expect("json"), serde_json::from_slice(&plain).expect("json"));
    assert_eq!(a, b, "the same answer");
    assert!(packed.len() * 4 < plain.len(), "{} bytes gzipped of {}", packed.len(), plain.len());

    let br = get("/ui/app.js", "br;q=1.0, gzip;q=0.5").await.expect("get");
    assert_eq!(br.headers().get("content-encoding").map(|v| v.as_bytes()), Some(&b"br"[..]));

    // A function URL answer goes out as the function made it.
    let fu = get("/fn/echo", "gzip, br").await.expect("get");
    assert_eq!(fu.status(), 200);
    assert!(fu.headers().get("content-encoding").is_none(), "{:?}", fu.headers());

    // The live stream is not compressed, and each event arrives when it is sent.
    let mut stream = get("/api/v1/executions/stream", "gzip, br").await.expect("stream");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers().get("content-encoding").is_none(), "{:?}", stream.headers());
    let event = json!({"live": true});
    let call = s.invoke("echo", &event);
    let read = async {
        let mut seen = String::new();
        while !seen.contains("event: execution") {
            match stream.chunk().await {
                Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("the stream ended: {other:?}; so far {seen}"),
            }
        }
        seen
    };
    let (r, seen) = tokio::join!(call, tokio::time::timeout(Duration::from_secs(20), read));
    let seen = seen.expect("an event within 20 s");
    assert!(seen.contains(r["execution_id"].as_str().unwrap_or("?")), "{seen}");
}
