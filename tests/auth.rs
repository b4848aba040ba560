//! Access control against the real binary: API keys and roles, revocation (through the API and
//! through `fnbox keys` on the data dir of a running server), the per-key rate limit, the refusal
//! to serve a non-loopback address without keys, and request limits (depth, size) in the
//! standard error shape.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_key, tail, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const FN: &str = "def handler(event, context):\n    return event.get('n', 0) + 1\n";

/// A server with keys on: an admin key made with the CLI before it starts.
async fn server_with_admin(extra: &[&str]) -> (TestServer, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key(&dir.path().join("data"), "admin", "admin");
    let s = TestServer::start_in(dir, extra).await;
    (s, admin)
}

fn fnbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fnbox")).args(args).output().expect("run fnbox")
}

/// Every (method, concrete path) the OpenAPI document describes.
async fn operations(s: &TestServer, token: &str) -> Vec<(Method, String)> {
    let (status, _, doc) = s.request_as(Some(token), Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, 200, "{doc}");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        // Function URLs decide by the function's `http` setting (tests/http_trigger.rs).
        if path.starts_with("/fn/") {
            continue;
        }
        let concrete = path.replace("{name}", "no-such-fn").replace("{id}", "01a23000-0000-7000-8000-000000000000");
        for method in item.as_object().expect("item").keys() {
            ops.push((method.to_uppercase().parse().expect("method"), concrete.clone()));
        }
    }
    assert!(ops.len() >= 20, "{ops:?}");
    ops
}

fn body_for(method: &Method) -> Option<String> {
    (*method == Method::POST || *method == Method::PUT).then(|| "{}".to_string())
}

fn assert_error_shape(v: &Value, code: &str, what: &str) {
    assert_eq!(v["error"]["code"], json!(code), "{what}: {v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_a_valid_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin = create_key(&data, "admin", "admin");
    let revoked = create_key(&data, "old", "admin");
    let list = fnbox(&["keys", "list", "--json", "--data-dir", data.to_str().expect("path")]);
    let keys: Value = serde_json::from_slice(&list.stdout).expect("keys list --json");
    let old_id = keys.as_array().and_then(|k| k.iter().find(|k| k["name"] == "old")).expect("old key")["id"].clone();
    let out = fnbox(&["keys", "revoke", old_id.as_str().expect("id"), "--data-dir", data.to_str().expect("path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    assert!(s.log().contains("API keys required"), "{}", s.log());

    let wrong = "fnbox_0000000000000000000000000000000000000000000000000000000000000000";
    for (method, path) in operations(&s, &admin).await {
        if path == "/healthz" {
            let (status, _, _) = s.request_as(None, method, &path, None).await;
            assert!(status == 200 || status == 503, "healthz answers without a key ({status})");
            continue;
        }
        for (token, code) in [(None, "unauthorized"), (Some(wrong), "invalid_token"), (Some(revoked.as_str()), "invalid_token")] {
            let (status, headers, v) = s.request_as(token, method.clone(), &path, body_for(&method)).await;
            let what = format!("{method} {path} with {token:?}");
            assert_eq!(status, 401, "{what}: {v}");
            assert_error_shape(&v, code, &what);
            let challenge = headers.get("www-authenticate").and_then(|h| h.to_str().ok()).unwrap_or("");
            assert!(challenge.starts_with("Bearer"), "{what}: WWW-Authenticate = {challenge:?}");
        }
    }
    // Not in the OpenAPI document, behind the key too: the docs, unknown paths.
    for path in ["/api/docs/", "/no/such/route"] {
        let (status, _, v) = s.request_as(None, Method::GET, path, None).await;
        assert_eq!(status, 401, "{path}: {v}");
    }
    // The UI's static shell holds no data and loads without a key (it then asks for one).
    for path in ["/", "/ui/app.js", "/ui/style.css"] {
        let (status, _, _) = s.request_as(None, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}");
    }
    // The event stream takes the key as ?access_token= (EventSource cannot set headers) ...
    let resp = reqwest::get(format!("{}/api/v1/executions/stream?access_token={admin}", s.url)).await.expect("stream");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("text/event-stream"));
    drop(resp);
    // ... and only that route does.
    let resp = reqwest::get(format!("{}/api/v1/functions?access_token={admin}", s.url)).await.expect("list");
    assert_eq!(resp.status().as_u16(), 401);
    // The admin key works everywhere it is sent.
    let (status, _, _) = s.request_as(Some(&admin), Method::GET, "/metrics", None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_key_reads_and_invokes_but_cannot_change_anything() {
    let (mut s, admin) = server_with_admin(&["--prewarm", "0"]).await;
    s.token = Some(admin.clone());
    s.require_runtimes().await;
    s.create("inc", "python", "docker", FN, json!({})).await;
    // An admin creates an invoke key over the API; it works at once.
    let (status, created) = s.post("/api/v1/keys", &json!({"name": "grafana", "role": "invoke"})).await;
    assert_eq!(status, 201, "{created}");
    let invoke = created["token"].as_str().expect("token").to_string();
    assert_eq!(created["key"]["role"], "invoke");
    assert!(created["key"].get("token_hash").is_none(), "{created}");

    let r = s.request_as(Some(&invoke), Method::POST, "/api/v1/functions/inc/invoke", Some(r#"{"n": 41}"#.into())).await;
    assert_eq!(r.0, 200, "{}", r.2);
    assert_eq!(r.2["output"], json!(42));

    for (method, path) in operations(&s, &admin).await {
        let is_invoke = method == Method::POST && path.ends_with("/invoke");
        let what = format!("{method} {path} with the invoke key");
        if method == Method::GET && path.starts_with("/api/v1/keys") {
            let (status, _, v) = s.request_as(Some(&invoke), method, &path, None).await;
            assert_eq!(status, 403, "{what}: {v}");
            continue;
        }
        if method == Method::GET {
            if path.ends_with("/stream") {
                let resp = reqwest::Client::new().get(format!("{}{path}", s.url)).bearer_auth(&invoke).send().await.expect("stream");
                assert_eq!(resp.status().as_u16(), 200, "{what}");
                continue;
            }
            let (status, _, v) = s.request_as(Some(&invoke), method, &path, None).await;
            assert!(status != 401 && status != 403, "{what}: {status} {v}");
            continue;
        }
        if is_invoke {
            continue;
        }
        let (status, _, v) = s.request_as(Some(&invoke), method.clone(), &path, body_for(&method)).await;
        assert_eq!(status, 403, "{what}: {v}");
        assert_error_shape(&v, "forbidden", &what);
    }
    // Concretely, on a function that exists: no create, update, delete or compare.
    for (method, path, body) in [
        (Method::POST, "/api/v1/functions", json!({"name": "x", "language": "python", "code": FN}).to_string()),
        (Method::PUT, "/api/v1/functions/inc", json!({"description": "changed"}).to_string()),
        (Method::DELETE, "/api/v1/functions/inc", String::new()),
        (Method::POST, "/api/v1/functions/inc/compare", json!({"iterations": 1}).to_string()),
    ] {
        let (status, _, v) = s.request_as(Some(&invoke), method.clone(), path, Some(body)).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
    }
    // The admin key does all of it.
    let (status, f) = s.put("/api/v1/functions/inc", &json!({"description": "changed"})).await;
    assert_eq!(status, 200, "{f}");
    let (status, c) = s.post("/api/v1/functions/inc/compare", &json!({"iterations": 1})).await;
    assert_eq!(status, 201, "{c}");
    let (status, keys) = s.get("/api/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    let (status, _) = s.delete("/api/v1/functions/inc").await;
    assert_eq!(status, 204);

    // Revoked over the API: refused at once. A key cannot revoke itself.
    let my_id = keys.as_array().and_then(|k| k.iter().find(|k| k["role"] == "admin")).expect("admin")["id"].as_str().expect("id").to_string();
    let (status, v) = s.delete(&format!("/api/v1/keys/{my_id}")).await;
    assert_eq!(status, 409, "{v}");
    assert_error_shape(&v, "key_in_use", "self-revoke");
    let id = created["key"]["id"].as_str().expect("id");
    let (status, _) = s.delete(&format!("/api/v1/keys/{id}")).await;
    assert_eq!(status, 204);
    let (status, _, v) = s.request_as(Some(&invoke), Method::GET, "/api/v1/functions", None).await;
    assert_eq!(status, 401, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_and_revoked_with_the_cli_take_effect_on_a_running_server() {
    let (s, admin) = server_with_admin(&["--prewarm", "0"]).await;
    let data = s.data_dir();
    let data = data.to_str().expect("path");
    let token = create_key(s.data_dir().as_path(), "laptop", "invoke");
    let wait_for = |want: u16, token: String| {
        let s = &s;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (status, _, _) = s.request_as(Some(&token), Method::GET, "/api/v1/functions", None).await;
                if status == want {
                    return;
                }
                assert!(Instant::now() < deadline, "still {status}, not {want}, after 10 s:\n{}", tail(&s.log(), 20));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_for(200, token.clone()).await;

    // The client commands send --api-key (or FNBOX_API_KEY).
    let out = fnbox(&["--server", &s.url, "--api-key", &token, "fn", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["--server", &s.url, "templates", "--json"])
        .env("FNBOX_API_KEY", &admin)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fnbox(&["--server", &s.url, "fn", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));

    let list = fnbox(&["keys", "list", "--json", "--data-dir", data]);
    let keys: Value = serde_json::from_slice(&list.stdout).expect("json");
    let id = keys.as_array().and_then(|k| k.iter().find(|k| k["name"] == "laptop")).expect("laptop")["id"].as_str().expect("id").to_string();
    let out = fnbox(&["keys", "revoke", &id, "--data-dir", data]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(401, token).await;
    // Unknown ids are an error, not a silent success.
    let out = fnbox(&["keys", "revoke", "01a23000-0000-7000-8000-000000000000", "--data-dir", data]);
    assert!(!out.status.success());
    // The listing never shows a token or its hash.
    let listing = String::from_utf8_lossy(&fnbox(&["keys", "list", "--data-dir", data]).stdout).to_string();
    assert!(listing.contains("laptop") && listing.contains("revoked"), "{listing}");
    assert!(!listing.contains("fnbox_"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_key_answers_429_with_retry_after() {
    let (s, admin) = server_with_admin(&["--prewarm", "0", "--rate-limit-per-key", "5"]).await;
    let mut limited = None;
    for _ in 0..30 {
        let (status, headers, v) = s.request_as(Some(&admin), Method::GET, "/api/v1/templates", None).await;
        if status == 429 {
            limited = Some((headers, v));
            break;
        }
        assert_eq!(status, 200, "{v}");
    }
    let (headers, v) = limited.expect("30 quick requests at 5/s were never limited");
    assert_error_shape(&v, "rate_limited", "429");
    let retry: u64 = headers.get("retry-after").and_then(|h| h.to_str().ok()).and_then(|h| h.parse().ok()).expect("Retry-After");
    assert!((1..=5).contains(&retry), "{retry}");
    // Another key has its own bucket; this one refills.
    let (status, _, _) = s.request_as(None, Method::GET, "/healthz", None).await;
    assert!(status == 200 || status == 503);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, v) = s.request_as(Some(&admin), Method::GET, "/api/v1/templates", None).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_without_keys_refuses_to_start_unless_insecure_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["serve", "--addr", "0.0.0.0:0", "--prewarm", "0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fnbox served 0.0.0.0 without keys");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(stderr.contains("refusing to serve 0.0.0.0:0 without API keys") && stderr.contains("--insecure-open"), "{stderr}");

    // With --insecure-open it starts, open, and says so.
    let log_path = dir.path().join("open.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["serve", "--addr", "0.0.0.0:0", "--insecure-open", "--prewarm", "0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(pos) = text.find("listening on http://0.0.0.0:") {
            let rest = &text[pos + "listening on http://0.0.0.0:".len()..];
            break rest.chars().take_while(char::is_ascii_digit).collect::<String>();
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--insecure-open did not start:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/functions")).await;
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(resp.expect("request").status().as_u16(), 200);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(text.contains("OPEN"), "no warning that the API is open:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_without_keys_is_open_and_warns() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    assert!(s.log().contains("OPEN"), "{}", s.log());
    let (status, _) = s.get("/api/v1/functions").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_in_the_standard_shape() {
    let (s, admin) = server_with_admin(&["--prewarm", "0"]).await;
    let t = Some(admin.as_str());
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(1000), "}".repeat(1000));
    for (path, body) in [
        ("/api/v1/functions", deep.clone()),
        ("/api/v1/functions", deep_obj.clone()),
        ("/api/v1/functions/any/invoke", deep.clone()),
        ("/api/v1/functions/any/invoke", deep_obj),
        ("/api/v1/functions/any/compare", format!(r#"{{"input": {deep}}}"#)),
        ("/api/v1/keys", deep.clone()),
    ] {
        let (status, _, v) = s.request_as(t, Method::POST, path, Some(body)).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_error_shape(&v, "json_too_deep", path);
        assert!(v["error"]["message"].as_str().unwrap_or("").contains("64"), "{v}");
    }
    // 64 levels are fine (the function just does not exist).
    let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let (status, _, v) = s.request_as(t, Method::POST, "/api/v1/functions/any/invoke", Some(ok)).await;
    assert_eq!(status, 404, "{v}");

    // Over the body limit: 413, JSON, whether or not the length is announced.
    let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(3 * 1024 * 1024));
    let (status, _, v) = s.request_as(t, Method::POST, "/api/v1/functions/any/invoke", Some(big.clone())).await;
    assert_eq!(status, 413, "{v}");
    assert_error_shape(&v, "body_too_large", "413");
    let (status, v) = chunked_post(&s.url, "/api/v1/functions", &admin, big.as_bytes()).await;
    assert_eq!(status, 413, "{v}");
    assert_error_shape(&v, "body_too_large", "chunked 413");

    // (method, path, body, content type, expected status, expected code)
    type Case<'a> = (Method, &'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (Method::POST, "/api/v1/functions", Some(""), None, 400, "invalid_json"),
        (Method::POST, "/api/v1/functions", Some("{"), None, 400, "invalid_json"),
        (Method::POST, "/api/v1/functions", Some(r#"{"name": 1}"#), None, 422, "validation_failed"),
        (Method::POST, "/api/v1/functions", Some("{}"), Some("text/plain"), 415, "unsupported_media_type"),
        (Method::POST, "/api/v1/keys", Some(r#"{"name": "x", "role": "root"}"#), None, 422, "validation_failed"),
        (Method::POST, "/api/v1/keys", Some(r#"{"name": " x", "role": "admin"}"#), None, 422, "validation_failed"),
        (Method::PATCH, "/api/v1/functions", None, None, 405, "method_not_allowed"),
        (Method::GET, "/api/v1/executions/not-a-uuid", None, None, 404, "execution_not_found"),
        (Method::GET, "/api/v1/executions/%FF", None, None, 400, "invalid_path"),
        (Method::GET, "/api/v1/executions?limit=abc", None, None, 400, "invalid_query"),
        (Method::GET, "/api/v1/executions?nope=1", None, None, 400, "invalid_query"),
        (Method::GET, "/api/v1/metrics/summary?runtime=vmware", None, None, 400, "invalid_query"),
        (Method::DELETE, "/api/v1/keys/not-a-uuid", None, None, 404, "key_not_found"),
        (Method::GET, "/api/v1/comparisons/zzz", None, None, 404, "comparison_not_found"),
    ];
    for (method, path, body, ct, want, code) in cases {
        let mut req = reqwest::Client::new().request(method.clone(), format!("{}{path}", s.url)).bearer_auth(&admin);
        if let Some(b) = body {
            req = req.header("content-type", ct.unwrap_or("application/json")).body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let is_json = resp.headers().get("content-type").and_then(|h| h.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{method} {path}: {v}");
        assert!(is_json, "{method} {path}: not JSON");
        assert_error_shape(&v, code, &format!("{method} {path}"));
    }
}

/// POSTs a body with `Transfer-Encoding: chunked` (no Content-Length, so the limit is hit
/// while reading), over a raw connection; returns the status and the JSON body.
async fn chunked_post(url: &str, path: &str, token: &str, body: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the whole body is sent.
        if conn.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // The body may itself be chunked: take the JSON object inside.
    let json = body.find('{').and_then(|a| body.rfind('}').map(|b| &body[a..=b])).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}
