//! Environment values are secrets (issue 11, item 9): write-only. No response to an admin key or
//! an invoke key carries them (function create, get, list and update, invocations, executions,
//! the live stream, the CLI), yet the function receives them at run time; an update without
//! `env` keeps them, and `env` in an update is a merge patch. Invoke keys do not see code.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{create_key, tail, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// Returns digests of its variables, so the test can check what it got without the values
/// being in any output.
const CODE: &str = "import hashlib, os\n\ndef digest(name):\n    v = os.environ.get(name)\n    return None if v is None else hashlib.sha256(v.encode()).hexdigest()\n\ndef handler(event, context):\n    return {n: digest(n) for n in ['SECRET_TOKEN', 'OTHER', 'ADDED']}\n";

fn sha256_hex(s: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())", s])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Reads the live stream's raw text into a shared buffer, until aborted.
fn collect_stream(url: String, text: Arc<Mutex<String>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut resp = reqwest::Client::new().get(url).send().await.expect("stream");
        assert_eq!(resp.status().as_u16(), 200);
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.lock().expect("lock").push_str(&String::from_utf8_lossy(&chunk));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_values_are_never_returned_yet_reach_the_function() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = create_key(&dir.path().join("data"), "admin", "admin");
    let invoke = create_key(&dir.path().join("data"), "caller", "invoke");
    let mut s = TestServer::start_in(dir, &[]).await;
    s.token = Some(admin.clone());
    s.require_runtimes().await;
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    let (secret, other, added) = (format!("tok-{nonce}"), format!("oth-{nonce}"), format!("add-{nonce}"));
    let secrets = [secret.as_str(), other.as_str(), added.as_str()];

    let streams: Vec<(Arc<Mutex<String>>, tokio::task::JoinHandle<()>)> = [&admin, &invoke]
        .into_iter()
        .flat_map(|key| {
            ["", "&trigger=all"].map(|extra| {
                let text = Arc::new(Mutex::new(String::new()));
                let url = format!("{}/api/v1/executions/stream?access_token={key}{extra}", s.url);
                (text.clone(), collect_stream(url, text))
            })
        })
        .collect();
    // Every answer either key gets, raw.
    let mut seen: Vec<(String, Value)> = Vec::new();
    let as_key = async |key: &str, method: Method, path: &str, body: Option<Value>| {
        let (status, _, v) = s.request_as(Some(key), method.clone(), path, body.map(|b| b.to_string())).await;
        assert!(status < 300, "{method} {path}: {status} {v}\n{}", tail(&s.log(), 30));
        (format!("{method} {path}"), v)
    };

    let created = s.create("sec", "python", "docker", CODE, json!({"env": {"SECRET_TOKEN": secret, "OTHER": other}})).await;
    assert_eq!(created["env_names"], json!(["OTHER", "SECRET_TOKEN"]), "{created}");
    assert!(created.get("env").is_none(), "{created}");
    seen.push(("create".into(), created));

    let expect = |names: &[(&str, &str)]| -> Value {
        let mut m = serde_json::Map::new();
        for n in ["SECRET_TOKEN", "OTHER", "ADDED"] {
            let v = names.iter().find(|(k, _)| *k == n).map_or(Value::Null, |(_, v)| json!(sha256_hex(v)));
            m.insert(n.into(), v);
        }
        Value::Object(m)
    };

    // The function gets them, called with either key.
    for key in [&admin, &invoke] {
        let (what, r) = as_key(key, Method::POST, "/api/v1/functions/sec/invoke", Some(json!({}))).await;
        assert_eq!(r["output"], expect(&[("SECRET_TOKEN", &secret), ("OTHER", &other)]), "{r}");
        seen.push((what, r));
    }

    // An update without env keeps them; a merge patch sets, removes and keeps.
    let (what, r) = as_key(&admin, Method::PUT, "/api/v1/functions/sec", Some(json!({"timeout_ms": 4000}))).await;
    assert_eq!(r["env_names"], json!(["OTHER", "SECRET_TOKEN"]), "{r}");
    seen.push((what, r));
    let (what, r) = as_key(&invoke, Method::POST, "/api/v1/functions/sec/invoke", Some(json!({}))).await;
    assert_eq!(r["output"], expect(&[("SECRET_TOKEN", &secret), ("OTHER", &other)]), "kept after a PUT without env: {r}");
    seen.push((what, r));
    let (what, r) =
        as_key(&admin, Method::PUT, "/api/v1/functions/sec", Some(json!({"env": {"OTHER": null, "ADDED": added}}))).await;
    assert_eq!(r["env_names"], json!(["ADDED", "SECRET_TOKEN"]), "{r}");
    seen.push((what, r));
    let (what, r) = as_key(&invoke, Method::POST, "/api/v1/functions/sec/invoke", Some(json!({}))).await;
    assert_eq!(r["output"], expect(&[("SECRET_TOKEN", &secret), ("ADDED", &added)]), "{r}");
    seen.push((what, r));

    // Reads by both keys; only admin keys see the code.
    for (key, sees_code) in [(&admin, true), (&invoke, false)] {
        for path in ["/api/v1/functions/sec", "/api/v1/functions", "/api/v1/executions?trigger=all", "/api/v1/pools"] {
            seen.push(as_key(key, Method::GET, path, None).await);
        }
        let (_, f) = as_key(key, Method::GET, "/api/v1/functions/sec", None).await;
        assert_eq!(f["code"].is_string(), sees_code, "{f}");
        assert_eq!(f["env_names"], json!(["ADDED", "SECRET_TOKEN"]), "{f}");
        let (_, list) = as_key(key, Method::GET, "/api/v1/functions", None).await;
        assert_eq!(list[0]["code"].is_string(), sees_code, "{list}");
    }
    let (_, execs) = as_key(&invoke, Method::GET, "/api/v1/executions", None).await;
    for e in execs.as_array().into_iter().flatten() {
        let id = e["id"].as_str().unwrap_or_default();
        seen.push(as_key(&invoke, Method::GET, &format!("/api/v1/executions/{id}"), None).await);
    }

    // The CLI with an admin key shows the names, masked.
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["fn", "get", "sec", "--server", &s.url])
        .env("FNBOX_API_KEY", &admin)
        .output()
        .expect("fnbox fn get");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(cli.contains("SECRET_TOKEN=••••••") && cli.contains("ADDED=••••••"), "{cli}");
    seen.push(("fnbox fn get".into(), Value::String(cli)));

    // Each stream saw the four calls.
    let deadline = Instant::now() + Duration::from_secs(30);
    while streams.iter().any(|(t, _)| t.lock().expect("lock").matches("event: execution").count() < 4) {
        assert!(Instant::now() < deadline, "streams: {:?}", streams.iter().map(|(t, _)| t.lock().expect("lock").clone()).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, (text, h)) in streams.into_iter().enumerate() {
        h.abort();
        seen.push((format!("stream {i}"), Value::String(text.lock().expect("lock").clone())));
    }

    assert!(seen.len() >= 24, "{}", seen.len());
    for (what, v) in &seen {
        let text = v.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{what} returned an env value: {text}");
        }
    }
}
