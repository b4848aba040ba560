//! The command-line client against a real server: dependencies from a requirements.txt, a
//! real pip build (PyYAML) followed to its end with its logs, the build in `fn get`, `fn list`
//! and `fnbox build`, a failed build (exit code 1, the previous version serving), removing the
//! dependencies, `--no-wait`, and the local checks of the dependency flags.

mod common;

use std::process::{Command, Output};

use common::TestServer;
use serde_json::{json, Value};

const YAML_PY: &str = "import yaml\n\ndef handler(event, context):\n    return yaml.safe_load(event.get('doc', ''))\n";
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
