//! Invocation behaviour against real sandboxes: warm reuse, timeouts, errors, logs,
//! out-of-memory, versions and the execution record — on runc and on runsc.

mod common;

use std::time::Instant;

use common::TestServer;
use serde_json::json;

const RUNTIMES: [&str; 2] = ["docker", "gvisor"];

async fn server() -> TestServer {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_start_reuses_the_sandbox_and_is_faster() {
    let s = server().await;
    for rt in RUNTIMES {
        for (lang, code) in [
            ("python", "def handler(event, context):\n    return {'pid_ok': True, 'n': event.get('n', 0) + 1}\n"),
            ("javascript", "exports.handler = async (event) => ({ pid_ok: true, n: (event.n || 0) + 1 });\n"),
        ] {
            let name = format!("warm-{lang}-{rt}");
            s.create(&name, lang, rt, code, json!({})).await;
            let first = s.invoke(&name, &json!({"n": 1})).await;
            let second = s.invoke(&name, &json!({"n": 2})).await;
            assert_eq!(first["output"], json!({"pid_ok": true, "n": 2}), "{first}");
            assert_eq!(second["output"], json!({"pid_ok": true, "n": 3}), "{second}");
            assert_eq!(first["cold_start"], json!(true), "{first}");
            assert_eq!(second["cold_start"], json!(false), "{second}");
            // One warm sample can hit a scheduling hiccup on a busy 2-core machine: compare the
            // cold call with the median of the second call and four more warm ones.
            let mut warm = vec![second["duration_ms"].as_f64().unwrap_or(f64::MAX)];
            for n in 3..7 {
                let r = s.invoke(&name, &json!({"n": n})).await;
                assert_eq!(r["cold_start"], json!(false), "{r}");
                warm.push(r["duration_ms"].as_f64().unwrap_or(f64::MAX));
            }
            warm.sort_by(f64::total_cmp);
            let (d1, d2) = (first["duration_ms"].as_f64().unwrap_or(0.0), warm[warm.len() / 2]);
            assert!(d2 < d1, "warm (median {d2} ms of {warm:?}) should be faster than cold ({d1} ms) on {rt}/{lang}");
            assert!(second["exec_ms"].as_f64().is_some(), "{second}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_and_the_next_call_works() {
    let s = server().await;
    for rt in RUNTIMES {
        for (lang, code) in [
            ("python", "def handler(event, context):\n    if event.get('spin'):\n        while True:\n            pass\n    return 'done'\n"),
            ("javascript", "exports.handler = (event) => { if (event.spin) { while (true) {} } return 'done'; };\n"),
        ] {
            let name = format!("spin-{lang}-{rt}");
            s.create(&name, lang, rt, code, json!({"timeout_ms": 1000})).await;
            let t0 = Instant::now();
            let r = s.invoke(&name, &json!({"spin": true})).await;
            let took = t0.elapsed();
            assert_eq!(r["status"], json!("timeout"), "{r}");
            assert_eq!(r["error"]["type"], json!("Timeout"), "{r}");
            assert!(took.as_millis() < 2000, "timeout answered after {took:?} on {rt}/{lang}");
            assert!(took.as_millis() >= 1000, "answered before the timeout: {took:?}");
            let next = s.invoke(&name, &json!({})).await;
            assert_eq!(next["status"], json!("success"), "{next}");
            assert_eq!(next["output"], json!("done"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_and_recorded() {
    let s = server().await;
    for rt in RUNTIMES {
        // An exception: type, message and a stack that points at the user's code.
        let name = format!("raise-py-{rt}");
        s.create(&name, "python", rt, "def handler(event, context):\n    return 1 / 0\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["status"], json!("error"), "{r}");
        assert_eq!(r["error"]["type"], json!("ZeroDivisionError"), "{r}");
        assert!(r["error"]["message"].as_str().unwrap_or("").contains("division by zero"), "{r}");
        assert!(r["error"]["stack"].as_str().unwrap_or("").contains("line 2"), "{r}");
        let rec = s.get(&format!("/api/v1/executions/{}", r["execution_id"].as_str().unwrap_or(""))).await.1;
        assert_eq!(rec["status"], json!("error"));
        assert_eq!(rec["error"]["type"], json!("ZeroDivisionError"));

        let name = format!("raise-js-{rt}");
        s.create(&name, "javascript", rt, "exports.handler = async () => { throw new TypeError('nope'); };\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["status"], json!("error"), "{r}");
        assert_eq!(r["error"]["type"], json!("TypeError"), "{r}");
        assert_eq!(r["error"]["message"], json!("nope"), "{r}");

        // A value JSON cannot carry.
        let name = format!("set-py-{rt}");
        s.create(&name, "python", rt, "def handler(event, context):\n    return {1, 2}\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["status"], json!("error"), "{r}");
        assert_eq!(r["error"]["type"], json!("SerializationError"), "{r}");
        let name = format!("bigint-js-{rt}");
        s.create(&name, "javascript", rt, "exports.handler = () => 10n;\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["error"]["type"], json!("SerializationError"), "{r}");

        // An exception while loading the module is the invocation's error.
        let name = format!("import-fail-{rt}");
        s.create(&name, "python", rt, "import no_such_module\ndef handler(e):\n    return 1\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["status"], json!("error"), "{r}");
        assert_eq!(r["error"]["type"], json!("ModuleNotFoundError"), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_are_refused_at_create_with_their_line() {
    let s = server().await;
    let (status, body) = s
        .post(
            "/api/v1/functions",
            &json!({"name": "bad-py", "language": "python", "code": "def handler(event):\n    return (1 +\n\nx = 2\n"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let field = &body["error"]["fields"][0];
    assert_eq!(field["field"], json!("code"), "{body}");
    assert!(field["message"].as_str().unwrap_or("").contains("SyntaxError"), "{body}");
    assert!(field["line"].as_u64().is_some(), "{body}");

    let (status, body) = s
        .post(
            "/api/v1/functions",
            &json!({"name": "bad-js", "language": "javascript", "code": "exports.handler = () => {\n  return 1 +;\n};\n"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let field = &body["error"]["fields"][0];
    assert!(field["message"].as_str().unwrap_or("").contains("SyntaxError"), "{body}");
    assert_eq!(field["line"], json!(2), "{body}");
    // Nothing was created.
    assert_eq!(s.get("/api/v1/functions/bad-js").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_separate_from_output() {
    let s = server().await;
    for rt in RUNTIMES {
        let name = format!("logs-py-{rt}");
        s.create(&name, "python", rt, "import sys\nprint('loading')\ndef handler(event, context):\n    print('hello from the log')\n    print('to stderr', file=sys.stderr)\n    return 'result'\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["output"], json!("result"), "{r}");
        let logs = r["logs"].as_str().unwrap_or("");
        assert!(logs.contains("hello from the log") && logs.contains("to stderr"), "{r}");
        assert!(logs.contains("loading"), "module-level output belongs to the first call: {r}");
        let r2 = s.invoke(&name, &json!({})).await;
        assert!(!r2["logs"].as_str().unwrap_or("").contains("loading"), "{r2}");

        let name = format!("logs-js-{rt}");
        s.create(&name, "javascript", rt, "exports.handler = async () => { console.log('hello from the log'); console.error('oops'); return 'result'; };\n", json!({})).await;
        let r = s.invoke(&name, &json!({})).await;
        assert_eq!(r["output"], json!("result"), "{r}");
        let logs = r["logs"].as_str().unwrap_or("");
        assert!(logs.contains("hello from the log") && logs.contains("oops"), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_oom_and_the_next_call_works() {
    let s = server().await;
    for rt in RUNTIMES {
        let name = format!("hog-{rt}");
        let code = "def handler(event, context):\n    if event.get('hog'):\n        blocks = []\n        while True:\n            blocks.append(bytearray(8 * 1024 * 1024))\n    return 'fine'\n";
        s.create(&name, "python", rt, code, json!({"memory_mb": 64, "timeout_ms": 20000})).await;
        let r = s.invoke(&name, &json!({"hog": true})).await;
        assert_eq!(r["status"], json!("oom"), "{rt}: {r}");
        let next = s.invoke(&name, &json!({})).await;
        assert_eq!(next["status"], json!("success"), "{next}");
        assert_eq!(next["cold_start"], json!(true), "a sandbox that ran out of memory is not reused: {next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_versions_and_execution_records() {
    let s = server().await;
    let f = s.create("versioned", "python", "docker", "def handler(e):\n    return 'v1'\n", json!({"description": "first"})).await;
    assert_eq!(f["version"], json!(1));
    assert_eq!(f["timeout_ms"], json!(5000));
    assert_eq!(f["memory_mb"], json!(128));
    assert_eq!(s.invoke("versioned", &json!({})).await["output"], json!("v1"));

    // Description only: same version.
    let (st, f) = s.put("/api/v1/functions/versioned", &json!({"description": "second"})).await;
    assert_eq!(st, 200, "{f}");
    assert_eq!(f["version"], json!(1));
    // New code: new version, and the next call runs it.
    let (st, f) = s.put("/api/v1/functions/versioned", &json!({"code": "def handler(e):\n    return 'v2'\n"})).await;
    assert_eq!(st, 200, "{f}");
    assert_eq!(f["version"], json!(2));
    let r = s.invoke("versioned", &json!({})).await;
    assert_eq!(r["output"], json!("v2"));
    assert_eq!(r["version"], json!(2));
    assert_eq!(r["cold_start"], json!(true));

    let (_, list) = s.get("/api/v1/executions?function=versioned").await;
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["version"], json!(2), "newest first");
    assert_eq!(list[1]["version"], json!(1));
    for e in &list {
        for k in ["id", "function", "version", "runtime", "language", "input", "status", "logs", "started_at", "duration_ms", "exec_ms", "memory_bytes", "cold_start"] {
            assert!(e.get(k).is_some(), "record has {k}: {e}");
        }
    }
    let (_, ok) = s.get("/api/v1/executions?function=versioned&status=success&limit=1").await;
    assert_eq!(ok.as_array().map(Vec::len), Some(1));

    let (_, fs) = s.get("/api/v1/functions").await;
    assert!(fs.as_array().is_some_and(|a| a.iter().any(|f| f["name"] == json!("versioned"))));
    assert_eq!(s.delete("/api/v1/functions/versioned").await.0, 204);
    assert_eq!(s.get("/api/v1/functions/versioned").await.0, 404);
    assert_eq!(s.post("/api/v1/functions/versioned/invoke", &json!({})).await.0, 404);
    // The record of what ran stays.
    let (_, after) = s.get("/api/v1/executions?function=versioned").await;
    assert_eq!(after.as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    // Unknown function.
    let (st, b) = s.post("/api/v1/functions/nope/invoke", &json!({})).await;
    assert_eq!(st, 404, "{b}");
    assert_eq!(b["error"]["code"], json!("function_not_found"));
    // Malformed JSON: 400 with the parse error.
    let (st, b) = s.request(reqwest::Method::POST, "/api/v1/functions", Some("{\"name\": ".into())).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["code"], json!("invalid_json"));
    assert!(b["error"]["message"].as_str().unwrap_or("").contains("EOF"), "{b}");
    // Every broken rule is named.
    let (st, b) = s
        .post("/api/v1/functions", &json!({"name": "Bad Name", "language": "python", "code": "x", "timeout_ms": 5, "memory_mb": 1}))
        .await;
    assert_eq!(st, 422, "{b}");
    let fields: Vec<&str> = b["error"]["fields"].as_array().into_iter().flatten().filter_map(|f| f["field"].as_str()).collect();
    assert_eq!(fields, ["name", "timeout_ms", "memory_mb"], "{b}");
    // A value of the wrong type names its field.
    let (st, b) = s.post("/api/v1/functions", &json!({"name": "x", "language": "cobol", "code": "x"})).await;
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["fields"][0]["field"], json!("language"), "{b}");
    let (st, b) = s.post("/api/v1/functions", &json!({"name": "x", "language": "python", "code": "x", "bogus": 1})).await;
    assert_eq!(st, 422, "{b}");
    // Bad query parameters.
    assert_eq!(s.get("/api/v1/executions?status=maybe").await.0, 400);
    assert_eq!(s.get("/api/v1/executions?limit=0").await.0, 400);
    assert_eq!(s.get("/api/v1/executions/not-a-uuid").await.0, 404);
}
