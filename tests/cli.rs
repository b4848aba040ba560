//! The command-line client against a real server: dependencies from a requirements.txt, a
//! real pip build (PyYAML) followed to its end with its logs, the build in `fn get`, `fn list`
//! and `fnbox build`, a failed build (exit code 1, the previous version serving), removing the
//! dependencies, `--no-wait`, and the local checks of the dependency flags. Issue 14:
//! asynchronous calls (`invoke --async [--wait]`), `--max-retries`, `executions --request-id`,
//! the dead letters (list, get, retry, discard), the queue, and schedules.

mod common;

use std::process::{Command, Output};

use common::{tail, TestServer};
use serde_json::{json, Value};

const YAML_PY: &str = "import yaml\n\ndef handler(event, context):\n    return yaml.safe_load(event.get('doc', ''))\n";
const FAIL_PY: &str = "def handler(event, context):\n    raise ValueError('always')\n";
const ECHO_PY: &str = "def handler(event, context):\n    return event\n";
const HELLO_PY: &str = "def handler(event, context):\n    return 'hello'\n";

fn fnbox(server: &TestServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fnbox")).args(["--server", &server.url]).args(args).output().expect("run fnbox")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn show(o: &Output) -> String {
    format!("exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", o.status.code(), stdout(o), String::from_utf8_lossy(&o.stderr))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_from_the_cli() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let code = write(dir.path(), "handler.py", YAML_PY);
    let hello = write(dir.path(), "hello.py", HELLO_PY);
    let reqs = write(dir.path(), "requirements.txt", "# the parser\npyyaml==6.0.2\n");
    let bad = write(dir.path(), "bad.txt", "nosuchpkg-fnbox-cli-test==1.0\n");

    // Create with a requirements.txt: the CLI follows the build, printing its logs as they come
    // (each once) and a last line with the outcome.
    let o = fnbox(&s, &["fn", "create", "yml", "--file", &code, "--requirements", &reqs]);
    assert!(o.status.success(), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.starts_with("created yml (python on docker, version 1)\n"), "{}", show(&o));
    assert!(out.contains("building dependencies of yml version 1"), "{}", show(&o));
    assert_eq!(out.matches("[fnbox] resolving").count(), 1, "the logs are printed once: {}", show(&o));
    assert!(out.contains("pyyaml"), "pip's output is shown: {}", show(&o));
    let last = out.lines().last().unwrap_or("");
    assert!(last.starts_with("build ready in ") && last.ends_with("(1 package: pyyaml 6.0.2)"), "last line: {last:?}\n{}", show(&o));

    // The function runs with its package.
    let o = fnbox(&s, &["invoke", "yml", r#"{"doc": "a: [1, 2]"}"#]);
    assert!(o.status.success(), "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json output");
    assert_eq!(v, json!({"a": [1, 2]}));

    // The build in fn get, fn list and fnbox build.
    let o = fnbox(&s, &["fn", "get", "yml"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", show(&o));
    assert!(out.contains("v1: ready in ") && out.contains("pyyaml 6.0.2"), "{out}");
    assert!(out.contains("dependencies") && out.contains("pyyaml==6.0.2"), "the dependencies text: {out}");
    let o = fnbox(&s, &["fn", "list"]);
    let row = stdout(&o).lines().find(|l| l.contains(" yml ")).unwrap_or_default().to_string();
    assert!(row.contains("ready"), "build column: {}", stdout(&o));
    let o = fnbox(&s, &["build", "yml"]);
    assert!(o.status.success(), "{}", show(&o));
    let out = stdout(&o);
    for want in ["ready", "pyyaml 6.0.2", "duration", "size", "--- logs ---", "Successfully"] {
        assert!(out.contains(want), "fnbox build shows {want}: {out}");
    }
    let o = fnbox(&s, &["--json", "build", "yml", "--lock"]);
    let report: Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!((report["status"].clone(), report["version"].clone()), (json!("ready"), json!(1)), "{report}");
    assert_eq!(report["build"]["packages"], json!(["pyyaml 6.0.2"]), "{report}");
    let o = fnbox(&s, &["build", "yml", "--lock"]);
    assert!(stdout(&o).contains("--- lock ---") && stdout(&o).contains("--hash=sha256:"), "{}", show(&o));

    // A package that does not exist: the build fails, the CLI says why and exits 1, and
    // version 1 keeps serving.
    let o = fnbox(&s, &["fn", "update", "yml", "--requirements", &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("build failed: ") && out.contains("nosuchpkg-fnbox-cli-test"), "{}", show(&o));
    assert!(out.contains("version 1 keeps serving calls"), "{}", show(&o));
    let o = fnbox(&s, &["invoke", "yml", r#"{"doc": "b: 2"}"#]);
    assert!(o.status.success(), "version 1 serves: {}", show(&o));
    let o = fnbox(&s, &["fn", "list"]);
    assert!(stdout(&o).contains("failed (v1 serves)"), "{}", show(&o));
    let o = fnbox(&s, &["fn", "get", "yml"]);
    assert!(stdout(&o).contains("version 1 serves while version 2 failed"), "{}", show(&o));
    let o = fnbox(&s, &["build", "yml"]);
    assert_eq!(o.status.code(), Some(1), "fnbox build exits 1 on a failed build: {}", show(&o));
    assert!(stdout(&o).contains("No matching distribution"), "{}", show(&o));

    // --no-dependencies removes them: no build, and the code runs without the package.
    let o = fnbox(&s, &["fn", "update", "yml", "--no-dependencies", "--file", &hello]);
    assert!(o.status.success(), "{}", show(&o));
    let (_, f) = s.get("/api/v1/functions/yml").await;
    assert_eq!((f["build"]["status"].clone(), f.get("dependencies").cloned()), (json!("none"), None), "{f}");
    let o = fnbox(&s, &["build", "yml"]);
    assert!(o.status.success() && stdout(&o).contains("yml has no dependencies"), "{}", show(&o));
    let o = fnbox(&s, &["invoke", "yml"]);
    assert!(o.status.success() && stdout(&o).contains("hello"), "{}", show(&o));

    // --no-wait answers at once (building, or ready when the build is shared), --json prints
    // one document; `fnbox build --follow` waits for the end.
    let o = fnbox(&s, &["--json", "fn", "create", "yml2", "--file", &code, "--requirements", &reqs, "--no-wait"]);
    assert!(o.status.success(), "{}", show(&o));
    let f: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("one JSON document ({e}): {}", show(&o)));
    assert!(f["build"]["status"] == json!("building") || f["build"]["status"] == json!("ready"), "{f}");
    let o = fnbox(&s, &["build", "yml2", "--follow"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(stdout(&o).contains("build ready in ") && stdout(&o).contains("pyyaml 6.0.2"), "{}", show(&o));
    // --json without --no-wait prints the function once its build ended.
    let o = fnbox(&s, &["--json", "fn", "update", "yml2", "--description", "again", "--requirements", &reqs]);
    let f: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("one JSON document ({e}): {}", show(&o)));
    assert_eq!(f["build"]["status"], json!("ready"), "{f}");

    // Checked before anything is sent, and by the server.
    let o = fnbox(&s, &["fn", "create", "js", "--file", &hello, "--language", "javascript", "--requirements", &reqs]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--requirements is for python functions"), "{}", show(&o));
    let o = fnbox(&s, &["fn", "create", "nodeps", "--file", &hello, "--no-dependencies"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--no-dependencies is for `fn update`"), "{}", show(&o));
    let opts = write(dir.path(), "opts.txt", "--index-url https://example.com/simple\npyyaml\n");
    let o = fnbox(&s, &["fn", "create", "opts", "--file", &code, "--requirements", &opts]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("dependencies: line 1"), "the field and line: {}", show(&o));
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The request id in `… (request <uuid>)`.
fn request_id_in(text: &str) -> String {
    let from = text.find("(request ").map(|i| i + "(request ".len()).unwrap_or_else(|| panic!("no request id in {text:?}"));
    text[from..].chars().take_while(|c| c.is_ascii_hexdigit() || *c == '-').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_dead_letters_and_schedules_from_the_cli() {
    let s = TestServer::start(&["--retry-base-ms", "100", "--prewarm", "0"]).await;
    s.require_runtimes().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fail = write(dir.path(), "fail.py", FAIL_PY);
    let echo = write(dir.path(), "echo.py", ECHO_PY);

    // --max-retries on create and update, shown by fn get; checked before anything is sent.
    let o = fnbox(&s, &["fn", "create", "fail", "--file", &fail, "--max-retries", "0"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = fnbox(&s, &["fn", "update", "fail", "--max-retries", "1"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = fnbox(&s, &["fn", "get", "fail"]);
    let row = stdout(&o).lines().find(|l| l.contains("max_retries")).unwrap_or_default().to_string();
    assert!(row.contains('1'), "{}", show(&o));
    let o = fnbox(&s, &["fn", "update", "fail", "--max-retries", "6"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses 6: {}", show(&o));

    // --async answers at once with the ids.
    let o = fnbox(&s, &["invoke", "fail", "--async"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(stdout(&o).starts_with("queued: execution "), "{}", show(&o));
    let first = request_id_in(&stdout(&o));
    let o = fnbox(&s, &["--json", "invoke", "fail", "--async"]);
    let accepted: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("one JSON document ({e}): {}", show(&o)));
    assert_eq!(accepted["status"], json!("queued"), "{accepted}");

    // --wait follows the attempts: 1 fails and is retried, 2 fails and the call is given up.
    let o = fnbox(&s, &["invoke", "fail", "--async", "--wait", "--wait-timeout", "120"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", show(&o), tail(&s.log(), 30));
    let err = stderr(&o);
    assert!(err.contains("attempt 1: error") && err.contains("given up after attempt 2"), "{}", show(&o));
    assert!(err.contains("ValueError: always"), "{}", show(&o));
    let waited = request_id_in(&err);

    // Its two attempts, by request id.
    let o = fnbox(&s, &["executions", "--request-id", &waited]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(stdout(&o).contains("async #2") && stdout(&o).matches(" async ").count() >= 1, "{}", show(&o));
    let o = fnbox(&s, &["--json", "executions", "--request-id", &waited]);
    let list: Value = serde_json::from_slice(&o.stdout).expect("json list");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    for t in ["async", "schedule", "http"] {
        let o = fnbox(&s, &["executions", "--trigger", t]);
        assert!(o.status.success(), "--trigger {t}: {}", show(&o));
    }

    // The first call lands in the dead letters too; list, get, retry (a new round of 2
    // attempts under the same request id), discard.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while s.get(&format!("/api/v1/dead-letters/{first}")).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "no dead letter for {first}\n{}", tail(&s.log(), 30));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let o = fnbox(&s, &["dead-letters", "list"]);
    assert!(o.status.success() && stdout(&o).contains(&first) && stdout(&o).contains(&waited), "{}", show(&o));
    let o = fnbox(&s, &["dead-letters", "get", &first]);
    assert!(o.status.success() && stdout(&o).contains("ValueError: always"), "{}", show(&o));
    let o = fnbox(&s, &["dead-letters", "retry", &first]);
    assert!(o.status.success() && stdout(&o).starts_with("queued again: execution "), "{}", show(&o));
    let o = fnbox(&s, &["dead-letters", "discard", &waited]);
    assert!(o.status.success() && stdout(&o).contains("discarded"), "{}", show(&o));
    assert_eq!(s.get(&format!("/api/v1/dead-letters/{waited}")).await.0, 404);
    let o = fnbox(&s, &["dead-letters", "get", &waited]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = fnbox(&s, &["queue"]);
    assert!(o.status.success() && stdout(&o).contains("dead letters"), "{}", show(&o));

    // A call that succeeds: --wait prints its output and exits 0.
    let o = fnbox(&s, &["fn", "create", "echo", "--file", &echo]);
    assert!(o.status.success(), "{}", show(&o));
    let o = fnbox(&s, &["invoke", "echo", r#"{"a": 1}"#, "--async", "--wait"]);
    assert!(o.status.success(), "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json output ({e}): {}", show(&o)));
    assert_eq!(v, json!({"a": 1}));

    // Schedules: create (disabled), list, enable, disable, delete; a bad cron is refused.
    let o = fnbox(&s, &["--json", "schedules", "create", "echo", "--cron", "0 9 * * *", "--timezone", "Europe/Paris", "--input", r#"{"b": 2}"#, "--disabled"]);
    assert!(o.status.success(), "{}", show(&o));
    let sc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json schedule ({e}): {}", show(&o)));
    assert_eq!((sc["enabled"].clone(), sc["timezone"].clone(), sc["input"].clone()), (json!(false), json!("Europe/Paris"), json!({"b": 2})), "{sc}");
    let id = sc["id"].as_str().expect("schedule id").to_string();
    let o = fnbox(&s, &["schedules", "list", "echo"]);
    assert!(o.status.success() && stdout(&o).contains(&id) && stdout(&o).contains("0 9 * * *"), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "enable", &id]);
    assert!(o.status.success() && stdout(&o).contains("enabled, next run 20"), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "disable", &id]);
    assert!(o.status.success() && stdout(&o).contains(": disabled"), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "list"]);
    assert!(o.status.success() && stdout(&o).contains(&id), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "delete", &id]);
    assert!(o.status.success(), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "get", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let o = fnbox(&s, &["schedules", "create", "echo", "--cron", "not a cron"]);
    assert!(!o.status.success() && stderr(&o).contains("(422)"), "{}", show(&o));
}
