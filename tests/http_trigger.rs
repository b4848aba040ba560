//! Function URLs against the real binary and dockerd: any method on `/fn/{name}[/{path}]`
//! calls a function whose `http` setting is `key` or `public` with a Lambda function URL event
//! (payload 2.0), and its result is the HTTP answer. Access (`off`, `key`, `public`), the
//! per-address rate limit, failures (502 without a stack, 504), bodies in and out (text and
//! base64), the record (`trigger: http`, filterable), and the Lambda-style examples unchanged.

mod common;

use std::time::Duration;

use common::{create_key, tail, webhook_answer, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const ECHO: &str = r#"
import time

def handler(event, context):
    q = event.get("queryStringParameters") or {}
    if event.get("isBase64Encoded"):
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": event["body"], "isBase64Encoded": True}
    if "plain" in q:
        return {"plain": True, "n": 18446744073709551617}
    if "raise" in q:
        raise ValueError("bad input")
    if "sleep" in q:
        time.sleep(10)
    if "badheader" in q:
        return {"statusCode": 200, "headers": {"bad name": "x"}, "body": ""}
    return {"statusCode": 201,
            "headers": {"x-echo": event["headers"].get("x-test", ""), "content-type": "text/plain"},
            "cookies": ["s=1; Path=/"],
            "body": "got " + (event.get("body") or "")}
"#;

/// A request to a function URL: status, headers, body bytes.
async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", s.url)).timeout(Duration::from_secs(60));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.expect("request");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.bytes().await.expect("body").to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The event the function saw: the input of the execution named by the answer's header.
async fn event_of(s: &TestServer, headers: &reqwest::header::HeaderMap) -> (Value, Value) {
    let id = headers.get("x-fnbox-execution-id").and_then(|v| v.to_str().ok()).expect("execution id header");
    let (status, e) = s.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(status, 200, "{e}");
    let input: Value = serde_json::from_str(e["input"].as_str().expect("input")).expect("event JSON");
    (input, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_urls_give_lambda_events_and_send_what_the_function_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key(&dir.path().join("data"), "admin", "admin");
    let mut s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    s.token = Some(admin.clone());
    s.require_runtimes().await;
    let f = s.create("echo", "python", "docker", ECHO, json!({"http": "public", "timeout_ms": 1500})).await;
    assert_eq!((f["http"].as_str(), f["url"].as_str()), (Some("public"), Some("/fn/echo")), "{f}");

    // A text body, a subpath, a query, a header, cookies: a handler-chosen 201.
    let (status, h, body) = call(&s, Method::POST, "/fn/echo/a/b?x=1&y=2&x=3", None,
        &[("x-test", "1"), ("content-type", "text/plain"), ("cookie", "c1=a; c2=b")], b"hello text".to_vec()).await;
    assert_eq!(status, 201, "{}\n{}", String::from_utf8_lossy(&body), tail(&s.log(), 30));
    assert_eq!(body, b"got hello text");
    assert_eq!(h["x-echo"], "1");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["set-cookie"], "s=1; Path=/");
    let (ev, record) = event_of(&s, &h).await;
    assert_eq!(record["trigger"], "http", "{record}");
    assert_eq!(ev["version"], "2.0");
    assert_eq!(ev["routeKey"], "$default");
    assert_eq!(ev["rawPath"], "/a/b");
    assert_eq!(ev["rawQueryString"], "x=1&y=2&x=3");
    assert_eq!(ev["queryStringParameters"], json!({"x": "1,3", "y": "2"}));
    assert_eq!(ev["headers"]["x-test"], "1");
    assert_eq!(ev["cookies"], json!(["c1=a", "c2=b"]));
    assert!(ev["headers"].get("cookie").is_none(), "{ev}");
    assert_eq!((ev["body"].as_str(), ev["isBase64Encoded"].as_bool()), (Some("hello text"), Some(false)));
    let http = &ev["requestContext"]["http"];
    assert_eq!((http["method"].as_str(), http["path"].as_str(), http["sourceIp"].as_str()), (Some("POST"), Some("/a/b"), Some("127.0.0.1")));
    assert_eq!(ev["requestContext"]["stage"], "$default");
    assert!(ev["requestContext"]["timeEpoch"].as_i64().unwrap_or(0) > 1_700_000_000_000, "{ev}");
    assert!(ev["requestContext"]["requestId"].as_str().is_some_and(|r| !r.is_empty()));

    // Any method, and the bare URL: rawPath "/".
    let (status, h, _) = call(&s, Method::DELETE, "/fn/echo", None, &[], Vec::new()).await;
    assert_eq!(status, 201);
    let (ev, _) = event_of(&s, &h).await;
    assert_eq!((ev["rawPath"].as_str(), ev["requestContext"]["http"]["method"].as_str()), (Some("/"), Some("DELETE")));
    assert!(ev.get("body").is_none(), "no body, no body field: {ev}");

    // A binary body goes in as base64 and comes back as the same bytes.
    let bytes: Vec<u8> = (0..=255).collect();
    let (status, h, body) = call(&s, Method::PUT, "/fn/echo/bin", None, &[("content-type", "application/octet-stream")], bytes.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, bytes);
    assert_eq!(h["content-type"], "application/octet-stream");
    let (ev, _) = event_of(&s, &h).await;
    assert_eq!(ev["isBase64Encoded"], true);

    // A result without statusCode is JSON with 200, exactly as returned.
    let (status, h, body) = call(&s, Method::GET, "/fn/echo?plain", None, &[], Vec::new()).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "application/json");
    assert!(String::from_utf8_lossy(&body).contains("18446744073709551617"), "numbers are not rounded");
    assert_eq!(json_of(&body)["plain"], true);

    // A raising handler: 502 with its type and message, no stack.
    let (status, _, body) = call(&s, Method::GET, "/fn/echo?raise", None, &[], Vec::new()).await;
    let v = json_of(&body);
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "function_error");
    let message = v["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("ValueError") && message.contains("bad input"), "{v}");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("Traceback") && !text.contains("handler.py") && !text.contains("line "), "no stack: {text}");

    // An answer that cannot be sent (a bad header name): 502, the server carries on.
    let (status, _, body) = call(&s, Method::GET, "/fn/echo?badheader", None, &[], Vec::new()).await;
    assert_eq!((status, json_of(&body)["error"]["code"].as_str()), (502, Some("bad_function_response")), "{}", String::from_utf8_lossy(&body));

    // A timeout: 504.
    let (status, _, body) = call(&s, Method::GET, "/fn/echo?sleep", None, &[], Vec::new()).await;
    assert_eq!((status, json_of(&body)["error"]["code"].as_str()), (504, Some("function_timeout")));

    // A body over the input limit: 413 before the function runs.
    let (status, _, _) = call(&s, Method::POST, "/fn/echo", None, &[], vec![b'a'; 1_600_000]).await;
    assert_eq!(status, 413);

    // `key`: 401 without a key or with a wrong one; admin and invoke keys call it, and the
    // key is not in the event.
    s.create("secret", "python", "docker", ECHO, json!({"http": "key"})).await;
    let (status, h, body) = call(&s, Method::GET, "/fn/secret", None, &[], Vec::new()).await;
    assert_eq!((status, json_of(&body)["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert!(h.get("www-authenticate").is_some());
    let wrong = "fnbox_0000000000000000000000000000000000000000000000000000000000000000";
    let (status, _, body) = call(&s, Method::GET, "/fn/secret", Some(wrong), &[], Vec::new()).await;
    assert_eq!((status, json_of(&body)["error"]["code"].as_str()), (401, Some("invalid_token")));
    let (status, key) = s.post("/api/v1/keys", &json!({"name": "caller", "role": "invoke"})).await;
    assert_eq!(status, 201, "{key}");
    let invoke = key["token"].as_str().expect("token").to_owned();
    for token in [&admin, &invoke] {
        let (status, h, body) = call(&s, Method::POST, "/fn/secret/x", Some(token), &[("x-test", "k")], b"b".to_vec()).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let (ev, record) = event_of(&s, &h).await;
        assert!(ev["headers"].get("authorization").is_none(), "the key stays with fnbox: {ev}");
        assert!(!record["input"].as_str().unwrap_or("").contains(token.as_str()));
    }

    // `off` (and no function at all): 404, the same answer with or without a key.
    s.create("hidden", "python", "docker", ECHO, json!({})).await;
    for (path, token) in [("/fn/hidden", None), ("/fn/hidden/x", Some(admin.as_str())), ("/fn/nope", None), ("/fn/NOT..valid", None)] {
        let (status, _, body) = call(&s, Method::GET, path, token, &[], Vec::new()).await;
        assert_eq!((status, json_of(&body)["error"]["code"].as_str()), (404, Some("not_found")), "{path}");
    }
    // Switching the URL off takes effect at once and makes no new version.
    let (status, f) = s.put("/api/v1/functions/echo", &json!({"http": "off"})).await;
    assert_eq!((status, f["version"].as_u64(), f.get("url")), (200, Some(1), None), "{f}");
    let (status, _, _) = call(&s, Method::GET, "/fn/echo", None, &[], Vec::new()).await;
    assert_eq!(status, 404);
    let (status, v) = s.put("/api/v1/functions/echo", &json!({"http": "open"})).await;
    assert_eq!(status, 422, "{v}");

    // The records: trigger http, filterable; API calls stay `api`.
    s.invoke("echo", &json!({})).await;
    let (_, http_runs) = s.get("/api/v1/executions?function=echo&trigger=http&limit=100").await;
    let runs = http_runs.as_array().expect("list");
    assert!(runs.len() >= 7 && runs.iter().all(|e| e["trigger"] == "http"), "{http_runs}");
    let (_, api_runs) = s.get("/api/v1/executions?function=echo&trigger=api").await;
    assert_eq!(api_runs.as_array().map(Vec::len), Some(1), "{api_runs}");
    let (_, all) = s.get("/api/v1/executions?function=echo&limit=100").await;
    assert_eq!(all.as_array().map(Vec::len), Some(runs.len() + 1), "HTTP calls are listed by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_urls_are_rate_limited_per_client_address() {
    let s = TestServer::start(&["--prewarm", "0", "--http-rate-limit", "1", "--http-burst", "3"]).await;
    s.require_runtimes().await;
    s.create("open", "python", "docker", "def handler(event, context):\n    return 'ok'\n", json!({"http": "public"})).await;
    s.invoke("open", &json!({})).await; // warm: the API call is not charged to the address
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, h, _) = call(&s, Method::GET, "/fn/open", None, &[], Vec::new()).await;
        if status == 429 {
            retry_after = h.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "the burst of 3 is spent: {statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = call(&s, Method::GET, "/fn/open", None, &[], Vec::new()).await;
    assert_eq!(status, 200, "a token a second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_style_examples_answer_over_http_on_both_runtimes() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let templates = s.templates().await;
    let expected: Value = serde_json::from_str(webhook_answer()["body"].as_str().expect("body")).expect("reply");
    for language in ["python", "javascript"] {
        let t = templates
            .iter()
            .find(|t| t["slug"] == "webhook" && t["language"] == language)
            .unwrap_or_else(|| panic!("webhook/{language} template"));
        for runtime in ["docker", "gvisor"] {
            let name = format!("webhook-{}-{runtime}", &language[..2]);
            s.create(&name, language, runtime, t["code"].as_str().expect("code"), json!({"http": "public"})).await;
            let (status, h, body) =
                call(&s, Method::POST, &format!("/fn/{name}/hello?name=Ada"), None, &[("content-type", "text/plain")], b"hi".to_vec()).await;
            assert_eq!(status, 201, "{name}: {}\n{}", String::from_utf8_lossy(&body), tail(&s.log(), 30));
            assert_eq!(h["x-handled-by"], "webhook", "{name}");
            assert_eq!(json_of(&body), expected, "{name}");
            let (status, _, body) = call(&s, Method::GET, &format!("/fn/{name}/"), None, &[], Vec::new()).await;
            assert_eq!(status, 200, "{name}");
            let reply = json_of(&body);
            assert_eq!((reply["method"].as_str(), reply["path"].as_str(), reply["greeting"].as_str()), (Some("GET"), Some("/"), Some("Hello, world!")), "{name}: {reply}");
        }
    }
}
