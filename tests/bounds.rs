//! What one caller can make the server hold is bounded: error texts are capped, lists are
//! paged by size as well as count, the live stream keeps little for a subscriber that does not
//! read and has a subscriber limit; parameters are parsed with checked arithmetic, and numbers
//! pass through exactly (issue 11, items 2 and 11).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// A plain GET returning status, headers and the raw body text (no JSON tree, so nothing in it
/// is rounded by the test itself).
async fn get_raw(s: &TestServer, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = reqwest::get(format!("{}{path}", s.url)).await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_texts_are_capped_and_lists_are_paged_by_size() {
    let s = TestServer::start(&["--no-syntax-check"]).await;
    s.require_runtimes().await;

    // A function chooses its exception's type, message and stack: megabytes of each.
    let py = "def handler(event, context):\n    E = type('E' * 200000, (Exception,), {})\n    raise E('m' * 3000000)\n";
    let js = "exports.handler = () => { const e = new Error('m'.repeat(3000000)); e.name = 'E'.repeat(200000); throw e; };\n";
    for (lang, code) in [("python", py), ("javascript", js)] {
        let name = format!("huge-error-{lang}");
        s.create(&name, lang, "docker", code, json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["status"], json!("error"), "{lang}");
        let (_, stored) = s.get(&format!("/api/v1/executions/{}", r["execution_id"].as_str().unwrap_or(""))).await;
        for (what, e) in [("answer", &r["error"]), ("record", &stored["error"])] {
            let len = |k: &str| e[k].as_str().map_or(0, str::len);
            assert!(len("type") > 100 && len("type") <= 300, "{lang} {what}: type of {} bytes", len("type"));
            assert!(len("message") > 1000 && len("message") <= 16 * 1024 + 64, "{lang} {what}: message of {} bytes", len("message"));
            assert!(len("stack") <= 64 * 1024 + 64, "{lang} {what}: stack of {} bytes", len("stack"));
            assert!(e["message"].as_str().unwrap_or("").contains("truncated"), "{lang} {what}: the cut is marked");
        }
    }

    // 20 records of ~250 KB (logs) are 5 MB: a page holds less than that, and says where the
    // next one starts; following the pages lists every record once.
    s.create("big-logs", "python", "docker", "def handler(event, context):\n    print('x' * 250000)\n    return event['i']\n", json!({})).await;
    let mut ids = HashSet::new();
    for i in 0..20 {
        let r = s.invoke("big-logs", &json!({"i": i})).await;
        ids.insert(r["execution_id"].as_str().unwrap_or("").to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/executions?function=big-logs&limit=1000".to_owned();
    let mut pages = 0;
    loop {
        let (status, h, body) = get_raw(&s, &path).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.len() <= 4 * 1024 * 1024, "a page of {} bytes", body.len());
        let page: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
        eprintln!("executions page {pages}: {} records, {} bytes", page.len(), body.len());
        pages += 1;
        seen.extend(page.iter().map(|e| e["id"].as_str().unwrap_or("").to_owned()));
        match header(&h, "x-next-before") {
            Some(next) => {
                let link = header(&h, "link").unwrap_or("");
                assert!(link.contains(&format!("before={next}")) && link.contains("function=big-logs"), "{link}");
                path = format!("/api/v1/executions?function=big-logs&limit=1000&before={next}");
            }
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    assert!(pages >= 2, "5 MB of records should not fit in one page");
    assert_eq!(seen.len(), 20, "every record once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids);

    // Functions too: 30 of 200 KB are 6 MB. Pages by size, by `limit`, and the CLI lists all.
    let pad = format!("# {}\n", "p".repeat(200_000));
    for i in 0..30 {
        s.create(&format!("wide-{i:02}"), "python", "docker", &format!("{pad}def handler(event, context):\n    return {i}\n"), json!({})).await;
    }
    let mut names = Vec::new();
    let mut path = "/api/v1/functions?limit=1000".to_owned();
    loop {
        let (status, h, body) = get_raw(&s, &path).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.len() <= 4 * 1024 * 1024, "a page of {} bytes", body.len());
        let page: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
        eprintln!("functions page: {} functions, {} bytes", page.len(), body.len());
        names.extend(page.iter().map(|f| f["name"].as_str().unwrap_or("").to_owned()));
        match header(&h, "x-next-after") {
            Some(next) => path = format!("/api/v1/functions?limit=1000&after={next}"),
            None => break,
        }
        assert!(names.len() < 1000, "paging does not end");
    }
    assert_eq!(names.len(), 33, "{names:?}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "by name, each once: {names:?}");
    let (_, h, body) = get_raw(&s, "/api/v1/functions?limit=2").await;
    let two: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(two.len(), 2);
    assert_eq!(header(&h, "x-next-after"), two[1]["name"].as_str());
    let (status, _, body) = get_raw(&s, "/api/v1/functions?limit=0").await;
    assert_eq!(status, 400, "{body}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["--server", &s.url, "--json", "fn", "list"])
        .output()
        .expect("run fnbox fn list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON from the CLI");
    assert_eq!(listed.len(), 33, "the CLI follows the pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_stream_subscriber_holds_little_and_streams_are_limited() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    s.create("chatty", "python", "docker", "def handler(event, context):\n    print('x' * 250000)\n    return 1\n", json!({})).await;
    s.invoke("chatty", &json!({})).await;

    // A subscriber that never reads: a tiny receive buffer, and no reads.
    let addr = s.url.trim_start_matches("http://").to_owned();
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stuck = sock.connect(addr.parse().expect("addr")).await.expect("connect");
    stuck.write_all(b"GET /api/v1/executions/stream HTTP/1.1\r\nHost: fnbox\r\n\r\n").await.expect("request");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = s.rss_bytes().expect("rss");
    // 600 records with 250 KB of logs each: 150 MB if the stream kept them for the subscriber.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = format!("{}/api/v1/functions/chatty/invoke", s.url);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..150 {
                let r = http.post(&url).body("{}").send().await.expect("invoke");
                assert_eq!(r.status().as_u16(), 200);
                r.bytes().await.expect("body");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let grown = s.rss_bytes().expect("rss").saturating_sub(before);
    eprintln!("RSS grew by {:.1} MiB over 600 calls of 250 KB logs with a stuck subscriber", grown as f64 / 1048576.0);
    assert!(grown < 60 << 20, "a stuck subscriber made the server grow by {} MiB", grown >> 20);

    // At most 64 streams at once; the next is refused with the standard error body.
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..63 {
        let r = http.get(format!("{}/api/v1/executions/stream", s.url)).send().await.expect("stream");
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let r = http.get(format!("{}/api/v1/executions/stream", s.url)).send().await.expect("stream");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], json!("too_many_streams"), "{body}");
    drop(stuck);
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_numbers_pass_through_exactly_and_bucket_parsing_is_checked() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;

    // Overflowed into 384 ms buckets before (18446744073709552 * 1000 wraps).
    let (status, _, body) = get_raw(&s, "/api/v1/metrics/timeseries?bucket=18446744073709552s").await;
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(v["error"]["code"], json!("invalid_query"));
    assert!(v["error"]["message"].as_str().unwrap_or("").contains("at most 999999999"), "{body}");
    let (status, _, body) = get_raw(&s, "/api/v1/metrics/timeseries?bucket=999999999d").await;
    assert_eq!(status, 200, "{body}");

    let code = "def handler(event, context):\n    return {'big': 2**64 + 1, 'huge': 10**30 + 7, 'neg': -(2**70), 'echo': event['n']}\n";
    s.create("bignum", "python", "docker", code, json!({})).await;
    // The stream first, so the record's event is on it.
    let mut stream = reqwest::get(format!("{}/api/v1/executions/stream", s.url)).await.expect("stream");
    let input = r#"{"n": 123456789012345678901234567890}"#;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/functions/bignum/invoke", s.url))
        .header("content-type", "application/json")
        .body(input)
        .send()
        .await
        .expect("invoke");
    let answer = resp.text().await.expect("body");
    let exact = r#"{"big":18446744073709551617,"huge":1000000000000000000000000000007,"neg":-1180591620717411303424,"echo":123456789012345678901234567890}"#;
    assert!(answer.contains(&format!("\"output\":{exact}")), "invoke answer: {answer}");
    let v: Value = serde_json::from_str(&answer).expect("JSON");
    let id = v["execution_id"].as_str().expect("id").to_owned();
    let (_, _, record) = get_raw(&s, &format!("/api/v1/executions/{id}")).await;
    assert!(record.contains(&format!("\"output\":{exact}")), "stored record: {record}");
    let (_, _, list) = get_raw(&s, "/api/v1/executions?function=bignum").await;
    assert!(list.contains(&format!("\"output\":{exact}")), "listed record: {list}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut events = String::new();
    while !events.contains(&id) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => events.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no stream event for {id}: {other:?}; got {events}"),
        }
    }
    assert!(events.contains(&format!("\"output\":{exact}")), "stream event: {events}");
}
