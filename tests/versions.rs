//! Versions and saved test events (issue 16), through the real server and real sandboxes:
//! an old version runs its own code and environment and its record says so, a rollback makes
//! a new version, the history lists them; test events are saved, bounded and deleted over HTTP;
//! and the CLI's `versions`, `rollback` and `invoke --version`.

mod common;

use std::process::{Command, Output};

use common::{tail, TestServer};
use serde_json::{json, Value};

fn code(n: u32) -> String {
    format!("import os\n\ndef handler(event, context):\n    return {{'v': {n}, 'greeting': os.environ.get('GREETING')}}\n")
}

async fn invoke_version(s: &TestServer, name: &str, version: u32) -> Value {
    let (status, r) = s.post(&format!("/api/v1/functions/{name}/invoke?version={version}"), &json!({})).await;
    assert_eq!(status, 200, "invoke {name} version {version}: {r}\n--- server log tail ---\n{}", tail(&s.log(), 40));
    assert_eq!(r["status"], "success", "{r}");
    r
}

/// The version an execution's stored record says it ran.
async fn recorded_version(s: &TestServer, r: &Value) -> Value {
    let (status, e) = s.get(&format!("/api/v1/executions/{}", r["execution_id"].as_str().unwrap_or_default())).await;
    assert_eq!(status, 200, "{e}");
    e["version"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_run_their_own_code_and_a_rollback_makes_a_new_version() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    let f = s.create("hist", "python", "docker", &code(1), json!({"env": {"GREETING": "one"}})).await;
    assert_eq!(f["version"], 1);
    assert_eq!(s.invoke("hist", &json!({})).await["output"], json!({"v": 1, "greeting": "one"}));
    let (status, f) = s.put("/api/v1/functions/hist", &json!({"code": code(2), "env": {"GREETING": "two"}})).await;
    assert_eq!((status, f["version"].clone()), (200, json!(2)), "{f}");

    // Twice each, so warm sandboxes exist of both: neither ever serves the other's call.
    for _ in 0..2 {
        let old = invoke_version(&s, "hist", 1).await;
        assert_eq!((old["output"].clone(), old["version"].clone()), (json!({"v": 1, "greeting": "one"}), json!(1)), "{old}");
        assert_eq!(recorded_version(&s, &old).await, 1);
        let now = s.invoke("hist", &json!({})).await;
        assert_eq!((now["output"].clone(), now["version"].clone()), (json!({"v": 2, "greeting": "two"}), json!(2)), "{now}");
        assert_eq!(recorded_version(&s, &now).await, 2);
    }
    let current = invoke_version(&s, "hist", 2).await;
    assert_eq!(current["output"]["v"], 2, "the current version by number: {current}");

    let (status, e) = s.post("/api/v1/functions/hist/invoke?version=9", &json!({})).await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("version_not_found")), "{e}");
    let (status, e) = s.post("/api/v1/functions/hist/invoke?version=one", &json!({})).await;
    assert_eq!((status, e["error"]["code"].clone()), (400, json!("invalid_query")), "{e}");
    let (status, e) = s.post("/api/v1/functions/hist/invoke?verison=1", &json!({})).await;
    assert_eq!((status, e["error"]["code"].clone()), (400, json!("invalid_query")), "a misspelt parameter is not ignored: {e}");
    let (status, _, e) = s
        .request_as(None, reqwest::Method::POST, "/api/v1/functions/nope/invoke?version=1", Some("{}".into()))
        .await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("function_not_found")), "{e}");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/functions/hist/invoke?version=1", s.url))
        .header("prefer", "respond-async")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 422, "asynchronous calls run the current version");

    // A rollback is a new version with the old code and environment.
    let (status, f) = s.post("/api/v1/functions/hist/rollback", &json!({"version": 1})).await;
    assert_eq!((status, f["version"].clone()), (200, json!(3)), "{f}");
    assert_eq!(f["code"].as_str(), Some(code(1).as_str()));
    let now = s.invoke("hist", &json!({})).await;
    assert_eq!((now["output"].clone(), now["version"].clone()), (json!({"v": 1, "greeting": "one"}), json!(3)), "{now}");
    assert_eq!(recorded_version(&s, &now).await, 3);
    let old2 = invoke_version(&s, "hist", 2).await;
    assert_eq!(old2["output"], json!({"v": 2, "greeting": "two"}), "version 2 is now an old one: {old2}");

    let (status, list) = s.get("/api/v1/functions/hist/versions").await;
    assert_eq!(status, 200, "{list}");
    let versions: Vec<Value> = list.as_array().cloned().unwrap_or_default();
    assert_eq!(versions.iter().map(|v| v["version"].clone()).collect::<Vec<_>>(), [json!(3), json!(2), json!(1)], "{list}");
    for v in &versions {
        assert!(v.get("code").is_none(), "a listing has no code: {v}");
        assert_eq!(v["code_bytes"], json!(code(1).len()), "{v}");
        assert!(v["created_at"].is_string() && v["language"] == "python" && v["build"] == "none", "{v}");
    }
    let (status, v2) = s.get("/api/v1/functions/hist/versions/2").await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!((v2["function"].clone(), v2["version"].clone()), (json!("hist"), json!(2)));
    assert_eq!(v2["code"].as_str(), Some(code(2).as_str()));
    assert_eq!(v2["env_names"], json!(["GREETING"]));
    assert!(!v2.to_string().contains("two"), "environment values are write-only: {v2}");
    let (status, e) = s.get("/api/v1/functions/hist/versions/7").await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("version_not_found")), "{e}");
    let (status, e) = s.get("/api/v1/functions/hist/versions/x").await;
    assert_eq!(status, 400, "{e}");

    for (body, want) in [(json!({"version": 42}), 404), (json!({}), 422), (json!({"version": 1, "x": 1}), 422), (json!({"version": "1"}), 422)] {
        let (status, e) = s.post("/api/v1/functions/hist/rollback", &body).await;
        assert_eq!(status, want, "{body}: {e}");
    }
    let (status, e) = s.request(reqwest::Method::POST, "/api/v1/functions/hist/rollback", Some("{".into())).await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = s.post("/api/v1/functions/nope/rollback", &json!({"version": 1})).await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("function_not_found")), "{e}");
    let (status, f) = s.get("/api/v1/functions/hist").await;
    assert_eq!((status, f["version"].clone()), (200, json!(3)), "failed rollbacks changed nothing: {f}");

    // Deleted with its function; the same name starts again at version 1.
    let (status, _) = s.delete("/api/v1/functions/hist").await;
    assert_eq!(status, 204);
    let (status, e) = s.get("/api/v1/functions/hist/versions").await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("function_not_found")), "{e}");
    let (status, e) = s.post("/api/v1/functions/hist/invoke?version=1", &json!({})).await;
    assert_eq!(status, 404, "{e}");
    s.create("hist", "python", "docker", &code(7), json!({})).await;
    let (_, list) = s.get("/api/v1/functions/hist/versions").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let again = invoke_version(&s, "hist", 1).await;
    assert_eq!(again["output"]["v"], 7, "the new function's version 1, not the old one's: {again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_events_are_saved_bounded_and_deleted_over_http() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.create("ev", "python", "docker", &code(1), json!({})).await;
    let base = "/api/v1/functions/ev/test-events";
    let (status, list) = s.get(base).await;
    assert_eq!((status, list), (200, json!([])));

    let big = r#"{"n":18446744073709551617,"x":[1.50]}"#;
    let (status, e) = s.request(reqwest::Method::PUT, &format!("{base}/big.one"), Some(format!(r#"{{"event": {big}}}"#))).await;
    assert_eq!((status, e["name"].clone()), (201, json!("big.one")), "{e}");
    assert!(e["updated_at"].is_string(), "{e}");
    let (status, e) = s.put(&format!("{base}/big.one"), &json!({"event": [1]})).await;
    assert_eq!(status, 200, "replaced: {e}");
    let (status, _) = s.request(reqwest::Method::PUT, &format!("{base}/big.one"), Some(format!(r#"{{"event": {big}}}"#))).await;
    assert_eq!(status, 200);
    let text = reqwest::get(format!("{}{base}", s.url)).await.expect("list").text().await.expect("text");
    assert!(text.contains(big), "kept exactly as sent: {text}");

    let (status, e) = s.put(&format!("{base}/a%20b"), &json!({"event": {}})).await;
    assert_eq!((status, e["error"]["code"].clone()), (422, json!("validation_failed")), "{e}");
    let (status, e) = s.put(&format!("{base}/{}", "x".repeat(65)), &json!({"event": {}})).await;
    assert_eq!(status, 422, "{e}");
    let (status, e) = s.put(&format!("{base}/ok"), &json!({"evnt": {}})).await;
    assert_eq!(status, 422, "{e}");
    let (status, e) = s.put(&format!("{base}/ok"), &json!({})).await;
    assert_eq!(status, 422, "no event: {e}");
    let (status, e) = s.request(reqwest::Method::PUT, &format!("{base}/ok"), Some("{\"event\": ".into())).await;
    assert_eq!((status, e["error"]["code"].clone()), (400, json!("invalid_json")), "{e}");
    let (status, e) = s.put("/api/v1/functions/nope/test-events/ok", &json!({"event": {}})).await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("function_not_found")), "{e}");
    let huge = json!({"event": "x".repeat(1024 * 1024 + 10)});
    let (status, e) = s.put(&format!("{base}/huge"), &huge).await;
    assert_eq!((status, e["error"]["code"].clone()), (413, json!("input_too_large")), "{e}");

    for i in 1..50 {
        let (status, e) = s.put(&format!("{base}/e{i:02}"), &json!({"event": {"i": i}})).await;
        assert_eq!(status, 201, "{i}: {e}");
    }
    let (status, e) = s.put(&format!("{base}/one-too-many"), &json!({"event": {}})).await;
    assert_eq!((status, e["error"]["code"].clone()), (422, json!("too_many_test_events")), "{e}");
    let (status, _) = s.put(&format!("{base}/e01"), &json!({"event": "replaced"})).await;
    assert_eq!(status, 200, "a replacement fits");
    let (_, list) = s.get(base).await;
    let names: Vec<String> = list.as_array().into_iter().flatten().filter_map(|e| e["name"].as_str().map(str::to_owned)).collect();
    assert_eq!(names.len(), 50);
    assert_eq!((names[0].as_str(), names[49].as_str()), ("big.one", "e49"), "by name");

    let (status, _) = s.delete(&format!("{base}/e01")).await;
    assert_eq!(status, 204);
    let (status, e) = s.delete(&format!("{base}/e01")).await;
    assert_eq!((status, e["error"]["code"].clone()), (404, json!("test_event_not_found")), "{e}");
    let (status, _) = s.put(&format!("{base}/one-more"), &json!({"event": {}})).await;
    assert_eq!(status, 201, "room again");

    // Gone with the function.
    let (status, _) = s.delete("/api/v1/functions/ev").await;
    assert_eq!(status, 204);
    let (status, _) = s.get(base).await;
    assert_eq!(status, 404);
    s.create("ev", "python", "docker", &code(1), json!({})).await;
    let (status, list) = s.get(base).await;
    assert_eq!((status, list), (200, json!([])), "a new function has none");
}

fn fnbox(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fnbox")).args(["--server", &server.url]).args(args).output().expect("run fnbox")
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_and_rollback_from_the_cli() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.create("cli-v", "python", "docker", &code(1), json!({})).await;
    let (status, _) = s.put("/api/v1/functions/cli-v", &json!({"code": code(2)})).await;
    assert_eq!(status, 200);

    let o = fnbox(&s, &["versions", "cli-v"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && out.contains("python") && out.find('2') < out.rfind('1'), "{}", show(&o));
    let o = fnbox(&s, &["versions", "cli-v", "1"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), code(1), "the code alone on stdout: {}", show(&o));

    let o = fnbox(&s, &["--json", "invoke", "cli-v", "{}", "--version", "1"]);
    assert!(o.status.success(), "{}", show(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((r["output"]["v"].clone(), r["version"].clone()), (json!(1), json!(1)), "{r}");

    let o = fnbox(&s, &["rollback", "cli-v", "1"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("now version 3"), "{}", show(&o));
    assert_eq!(s.invoke("cli-v", &json!({})).await["output"]["v"], 1);
    let o = fnbox(&s, &["rollback", "cli-v", "9"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no version 9"), "{}", show(&o));
}

/// Waits for the build of `name` to end; returns its status.
async fn build_status(s: &TestServer, name: &str) -> Value {
    for _ in 0..5 {
        let (status, r) = s.get(&format!("/api/v1/functions/{name}/build?wait=120")).await;
        assert_eq!(status, 200, "{r}");
        if r["status"] != json!("building") {
            return r["status"].clone();
        }
    }
    panic!("the build of {name} did not end\n{}", tail(&s.log(), 60));
}

/// An old version with dependencies runs with its own build; one whose build failed says why
/// it cannot run, whether it is the current version or an old one; a rollback to a version
/// with dependencies builds them again for the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_with_dependencies_run_their_own_build_or_say_why_not() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    let v1 = "import yaml\n\ndef handler(event, context):\n    return 'v1 ' + yaml.__version__\n";
    s.create("deps", "python", "docker", v1, json!({"dependencies": "pyyaml==6.0.2\n"})).await;
    assert_eq!(build_status(&s, "deps").await, "ready");
    let (status, f) = s.put("/api/v1/functions/deps", &json!({"code": code(2), "dependencies": null})).await;
    assert_eq!((status, f["version"].clone()), (200, json!(2)), "{f}");
    assert_eq!(s.invoke("deps", &json!({})).await["output"]["v"], 2);
    let old = invoke_version(&s, "deps", 1).await;
    assert_eq!((old["output"].clone(), old["version"].clone()), (json!("v1 6.0.2"), json!(1)), "{old}");
    let (_, list) = s.get("/api/v1/functions/deps/versions").await;
    assert_eq!(list[1]["build"], "ready", "{list}");
    assert_eq!((list[0]["has_dependencies"].clone(), list[1]["has_dependencies"].clone()), (json!(false), json!(true)), "{list}");

    // Version 3's build fails: calls without a version run version 2; version 3 cannot run.
    let missing = "fnbox-no-such-package-4242";
    let (status, f) = s.put("/api/v1/functions/deps", &json!({"code": code(3), "dependencies": format!("{missing}\n")})).await;
    assert_eq!((status, f["version"].clone()), (200, json!(3)), "{f}");
    assert_eq!(build_status(&s, "deps").await, "failed");
    assert_eq!(s.invoke("deps", &json!({})).await["output"]["v"], 2, "version 2 serves");
    let (status, e) = s.post("/api/v1/functions/deps/invoke?version=3", &json!({})).await;
    assert_eq!((status, e["error"]["code"].clone()), (409, json!("version_not_runnable")), "{e}");
    let (status, f) = s.put("/api/v1/functions/deps", &json!({"code": code(4), "dependencies": null})).await;
    assert_eq!((status, f["version"].clone()), (200, json!(4)), "{f}");
    let (status, e) = s.post("/api/v1/functions/deps/invoke?version=3", &json!({})).await;
    assert_eq!((status, e["error"]["code"].clone()), (409, json!("version_not_runnable")), "an old version too: {e}");
    assert!(e["error"]["message"].as_str().unwrap_or("").contains("failed to build"), "{e}");

    let (status, f) = s.post("/api/v1/functions/deps/rollback", &json!({"version": 1})).await;
    assert_eq!((status, f["version"].clone(), f["dependencies"].clone()), (200, json!(5), json!("pyyaml==6.0.2\n")), "{f}");
    assert_eq!(build_status(&s, "deps").await, "ready");
    let now = s.invoke("deps", &json!({})).await;
    assert_eq!((now["output"].clone(), now["version"].clone()), (json!("v1 6.0.2"), json!(5)), "{now}");
}
