//! Functions with dependencies (issue 13): requirements.txt and package.json resolved on the
//! host, built once into an image layer, shared, and offline in the sandbox; the build
//! lifecycle (pending, failed, the previous version serving meanwhile, a restart), validation
//! and the removal of images no function uses. Real pip, npm, dockerd, runc and runsc.

mod common;

use std::time::Duration;

use common::{tail, TestServer};
use serde_json::{json, Value};

const RUNTIMES: [&str; 2] = ["docker", "gvisor"];

async fn server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--prewarm", "0"];
    args.extend_from_slice(extra);
    let s = TestServer::start(&args).await;
    s.require_runtimes().await;
    s
}

/// Waits (server side) for the build of `name` to end and returns its report.
async fn wait_build(s: &TestServer, name: &str) -> Value {
    for _ in 0..5 {
        let (status, r) = s.get(&format!("/api/v1/functions/{name}/build?wait=120")).await;
        assert_eq!(status, 200, "{r}");
        if r["status"] != json!("building") {
            return r;
        }
    }
    panic!("the build of {name} did not end within 10 minutes\n{}", tail(&s.log(), 60));
}

async fn ready(s: &TestServer, name: &str) -> Value {
    let r = wait_build(s, name).await;
    assert_eq!(r["status"], json!("ready"), "build of {name}: {r}\n{}", tail(&s.log(), 40));
    r
}

/// Images of this server's dependency layers (their tags end with its instance id).
fn deps_images(instance: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &format!("label=fnbox.instance={instance}")])
        .output()
        .expect("docker images");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with("fnbox-deps-")).map(str::to_owned).collect()
}

const PY_REQUIREMENTS: &str = "# parsing and humanizing\nPyYAML==6.0.2\nhumanize\n";

/// Parses YAML with pyyaml, formats with humanize, and reports what the sandbox allows: where
/// the packages are, whether they can be changed, whether there is any network.
const PY_CODE: &str = r#"import os, socket
import yaml, humanize

def handler(event, context):
    doc = yaml.safe_load(event["yaml"])
    try:
        open(os.path.join(os.path.dirname(yaml.__file__), "planted.py"), "w").write("x = 1")
        deps_writable = True
    except OSError as e:
        deps_writable = False
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        network = True
    except OSError:
        network = False
    try:
        socket.getaddrinfo("pypi.org", 443)
        dns = True
    except OSError:
        dns = False
    return {
        "doc": doc,
        "size": humanize.naturalsize(event["bytes"]),
        "yaml_from": os.path.dirname(os.path.dirname(yaml.__file__)),
        "yaml_version": yaml.__version__,
        "deps_writable": deps_writable,
        "network": network,
        "dns": dns,
    }
"#;

const JS_PACKAGE_JSON: &str =
    r#"{"name": "my-fn", "scripts": {"postinstall": "echo never runs"}, "dependencies": {"dayjs": "^1.11.10", "lodash": "^4.17.21"}}"#;

const JS_CODE: &str = r#"const dayjs = require('dayjs');
const _ = require('lodash');
const fs = require('fs');
const net = require('net');
const dns = require('dns');
const path = require('path');

function tryConnect() {
  return new Promise((resolve) => {
    const s = net.connect({ host: '1.1.1.1', port: 53 });
    // Answered once the socket is closed: an open handle after the call is leftover work.
    let ok = false;
    s.on('close', () => resolve(ok));
    const done = (connected) => { ok = connected; s.destroy(); };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

exports.handler = async (event) => {
  const dir = path.dirname(require.resolve('dayjs'));
  let depsWritable = true;
  try { fs.writeFileSync(path.join(dir, 'planted.js'), 'x'); } catch (e) { depsWritable = false; }
  const dnsOk = await new Promise((resolve) => dns.lookup('registry.npmjs.org', (err) => resolve(!err)));
  return {
    day: dayjs(event.date).add(1, 'day').format('YYYY-MM-DD'),
    chunks: _.chunk(event.items, 2),
    dayjs_from: dir,
    deps_writable: depsWritable,
    network: await tryConnect(),
    dns: dnsOk,
  };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_run_on_both_runtimes_read_only_and_offline() {
    let s = server(&[]).await;
    let instance = s.instance();
    let mut images = Vec::new();
    for (lang, code, deps) in [("python", PY_CODE, PY_REQUIREMENTS), ("javascript", JS_CODE, JS_PACKAGE_JSON)] {
        for (i, rt) in RUNTIMES.into_iter().enumerate() {
            let name = format!("deps-{lang}-{rt}");
            let f = s.create(&name, lang, rt, code, json!({"dependencies": deps, "timeout_ms": 10000})).await;
            assert_eq!(f["dependencies"], json!(deps), "the text is kept as given: {f}");
            let report = if i == 0 {
                assert_eq!(f["build"]["status"], json!("building"), "created at once, built after: {f}");
                let r = ready(&s, &name).await;
                let b = &r["build"];
                assert!(b["duration_ms"].as_u64().is_some(), "{r}");
                assert!(b["size_bytes"].as_u64().unwrap_or(0) > 0, "{r}");
                assert!(b["lock"].as_str().is_some_and(|l| !l.is_empty()), "{r}");
                r
            } else {
                // The same dependencies (written the same way): the first one's build is shared.
                assert_eq!(f["build"]["status"], json!("ready"), "a shared build is ready at once: {f}");
                let (_, r) = s.get(&format!("/api/v1/functions/{name}/build")).await;
                assert!(r["build"]["logs"].as_str().unwrap_or("").contains("shared"), "{r}");
                r
            };
            let packages: Vec<String> = report["build"]["packages"]
                .as_array()
                .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let expected: &[&str] = if lang == "python" { &["pyyaml 6.0.2", "humanize "] } else { &["dayjs ", "lodash "] };
            for p in expected {
                assert!(packages.iter().any(|x| x.starts_with(p)), "{p} in {packages:?}");
            }
            images.push(report["build"]["image"].as_str().unwrap_or_default().to_owned());
            for call in 0..2 {
                let r = if lang == "python" {
                    s.invoke(&name, &json!({"yaml": "name: fnbox\nitems: [1, 2]\nnested: {a: true}", "bytes": 123456789})).await
                } else {
                    s.invoke(&name, &json!({"date": "2024-02-28", "items": [1, 2, 3, 4, 5]})).await
                };
                assert_eq!(r["status"], json!("success"), "{lang} on {rt}: {r}\n{}", tail(&s.log(), 30));
                assert_eq!(r["cold_start"], json!(call == 0), "{r}");
                let o = &r["output"];
                if lang == "python" {
                    assert_eq!(o["doc"], json!({"name": "fnbox", "items": [1, 2], "nested": {"a": true}}), "{r}");
                    assert_eq!(o["size"], json!("123.5 MB"), "{r}");
                    assert_eq!(o["yaml_version"], json!("6.0.2"), "{r}");
                    assert_eq!(o["yaml_from"], json!("/opt/fnbox/deps/python"), "{r}");
                } else {
                    assert_eq!(o["day"], json!("2024-02-29"), "{r}");
                    assert_eq!(o["chunks"], json!([[1, 2], [3, 4], [5]]), "{r}");
                    assert!(o["dayjs_from"].as_str().unwrap_or("").starts_with("/opt/fnbox/deps/node/node_modules/dayjs"), "{r}");
                }
                assert_eq!(o["deps_writable"], json!(false), "the packages are read-only: {r}");
                assert_eq!(o["network"], json!(false), "no network in the sandbox: {r}");
                assert_eq!(o["dns"], json!(false), "no name resolution in the sandbox: {r}");
            }
        }
    }
    assert_eq!(images[0], images[1], "python on both runtimes: one image");
    assert_eq!(images[2], images[3], "javascript on both runtimes: one image");
    let mut tags = deps_images(&instance);
    tags.sort();
    assert_eq!(tags.len(), 2, "one image per set of dependencies: {tags:?}");
    for digest in [&images[0], &images[2]] {
        assert!(tags.iter().any(|t| t.contains(digest.as_str())), "{digest} in {tags:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_failed_builds_answer_409_and_the_previous_version_keeps_serving() {
    let s = server(&[]).await;
    // A package that does not exist: the build fails with pip's message naming it.
    let missing = "fnbox-no-such-package-4242";
    s.create(
        "broken",
        "python",
        "docker",
        "def handler(e, c):\n    return 1\n",
        json!({"dependencies": format!("{missing}==1.0\n")}),
    )
    .await;
    let (status, r) = s.post("/api/v1/functions/broken/invoke", &json!({})).await;
    assert_eq!(status, 409, "{r}");
    assert!(["build_pending", "build_failed"].contains(&r["error"]["code"].as_str().unwrap_or("")), "{r}");
    let report = wait_build(&s, "broken").await;
    assert_eq!(report["status"], json!("failed"), "{report}");
    let error = report["build"]["error"].as_str().unwrap_or("");
    assert!(error.contains(missing), "the error names the package: {report}");
    assert!(report["build"]["logs"].as_str().unwrap_or("").contains(missing), "{report}");
    let (status, r) = s.post("/api/v1/functions/broken/invoke", &json!({})).await;
    assert_eq!(status, 409, "{r}");
    assert_eq!(r["error"]["code"], json!("build_failed"), "{r}");
    assert!(r["error"]["message"].as_str().unwrap_or("").contains(missing), "{r}");

    // Version 1 builds and serves; version 2 (new code, a package that does not exist) fails:
    // calls keep running version 1 all along.
    let v1 = "import yaml\ndef handler(e, c):\n    return 'v1 ' + yaml.__version__\n";
    s.create("steady", "python", "gvisor", v1, json!({"dependencies": "pyyaml==6.0.2"})).await;
    ready(&s, "steady").await;
    assert_eq!(s.invoke("steady", &json!({})).await["output"], json!("v1 6.0.2"));
    let v2 = "import yaml\ndef handler(e, c):\n    return 'v2'\n";
    let (status, f) = s
        .put("/api/v1/functions/steady", &json!({"code": v2, "dependencies": format!("pyyaml==6.0.2\n{missing}\n")}))
        .await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["version"], json!(2), "{f}");
    assert_eq!(f["build"]["status"], json!("building"), "{f}");
    assert_eq!(f["serving_version"], json!(1), "{f}");
    let r = s.invoke("steady", &json!({})).await;
    assert_eq!((r["output"].clone(), r["version"].clone()), (json!("v1 6.0.2"), json!(1)), "v1 serves while v2 builds: {r}");
    let report = wait_build(&s, "steady").await;
    assert_eq!(report["status"], json!("failed"), "{report}");
    assert_eq!(report["serving_version"], json!(1), "{report}");
    for _ in 0..3 {
        let r = s.invoke("steady", &json!({})).await;
        assert_eq!((r["output"].clone(), r["version"].clone()), (json!("v1 6.0.2"), json!(1)), "a failed update keeps v1: {r}");
    }
    let (_, f) = s.get("/api/v1/functions/steady").await;
    assert_eq!(f["serving_version"], json!(1), "{f}");
    assert_eq!(f["build"]["status"], json!("failed"), "{f}");
    // Fixed: version 3 builds and takes over.
    let (status, f) = s.put("/api/v1/functions/steady", &json!({"dependencies": "pyyaml==6.0.2\nhumanize\n"})).await;
    assert_eq!(status, 200, "{f}");
    ready(&s, "steady").await;
    let r = s.invoke("steady", &json!({})).await;
    assert_eq!((r["output"].clone(), r["version"].clone()), (json!("v2"), json!(3)), "{r}");
    let (_, f) = s.get("/api/v1/functions/steady").await;
    assert!(f.get("serving_version").is_none(), "the current version serves: {f}");
    // Without dependencies again: no build at all.
    let (status, f) = s.put("/api/v1/functions/steady", &json!({"dependencies": null, "code": "def handler(e, c):\n    return 'plain'\n"})).await;
    assert_eq!(status, 200, "{f}");
    assert_eq!(f["build"]["status"], json!("none"), "{f}");
    assert_eq!(s.invoke("steady", &json!({})).await["output"], json!("plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_are_validated_before_anything_is_built() {
    let s = server(&[]).await;
    let code = "def handler(e, c):\n    return 1\n";
    for (lang, deps, expect) in [
        ("python", "--index-url http://10.0.0.1/simple\nrequests\n", "pip options"),
        ("python", "requests @ https://example.invalid/r.whl\n", "direct reference"),
        ("python", "/etc/passwd\n", "direct reference"),
        ("javascript", "{\"dependencies\": {\"x\": \"file:../../etc\"}}", "not a version range"),
        ("javascript", "{\"dependencies\": {,}}", "not a valid package.json"),
    ] {
        let code = if lang == "python" { code.to_owned() } else { "exports.handler = async () => 1;".to_owned() };
        let (status, r) = s
            .post("/api/v1/functions", &json!({"name": "bad-deps", "language": lang, "code": code, "dependencies": deps}))
            .await;
        assert_eq!(status, 422, "{deps}: {r}");
        let field = &r["error"]["fields"][0];
        assert_eq!(field["field"], json!("dependencies"), "{r}");
        assert!(field["message"].as_str().unwrap_or("").contains(expect), "{deps}: {r}");
        assert_eq!(s.get("/api/v1/functions/bad-deps").await.0, 404, "nothing was created");
    }
    let (status, r) = s.get("/api/v1/functions/bad-deps/build?wait=301").await;
    assert!(status == 400 || status == 404, "{r}");
    s.create("plain", "python", "docker", code, json!({})).await;
    let (status, r) = s.get("/api/v1/functions/plain/build?wait=1").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], json!("none"), "{r}");
    let (status, r) = s.get("/api/v1/functions/plain/build?wait=301").await;
    assert_eq!(status, 400, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_cut_short_by_a_crash_resumes_at_the_next_start() {
    let mut s = server(&[]).await;
    let code = "import humanize\ndef handler(e, c):\n    return humanize.intcomma(1234567)\n";
    let f = s.create("resumed", "python", "docker", code, json!({"dependencies": "humanize==4.9.0\n"})).await;
    assert_eq!(f["build"]["status"], json!("building"), "{f}");
    let dir = s.crash();
    let s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    let report = ready(&s, "resumed").await;
    assert!(report["build"]["packages"].as_array().is_some_and(|p| p.contains(&json!("humanize 4.9.0"))), "{report}");
    assert_eq!(s.invoke("resumed", &json!({})).await["output"], json!("1,234,567"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_no_function_uses_are_removed_after_the_grace_period() {
    let s = server(&["--image-grace-secs", "0", "--image-collect-every-secs", "1"]).await;
    let instance = s.instance();
    let code = "import humanize\ndef handler(e, c):\n    return humanize.ordinal(3)\n";
    s.create("kept", "python", "docker", code, json!({"dependencies": "humanize==4.8.0\n"})).await;
    s.create("dropped", "python", "docker", code, json!({"dependencies": "humanize==4.7.0\n"})).await;
    for name in ["kept", "dropped"] {
        ready(&s, name).await;
        assert_eq!(s.invoke(name, &json!({})).await["output"], json!("3rd"));
    }
    assert_eq!(deps_images(&instance).len(), 2, "{:?}", deps_images(&instance));
    assert_eq!(s.delete("/api/v1/functions/dropped").await.0, 204);
    // A fresh image is left alone for 30 s (so it is recorded before it can be collected);
    // then the unused one goes within a few rounds and the used one stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let left = deps_images(&instance);
        if left.len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the unused image was not removed: {left:?}\n{}", tail(&s.log(), 30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(s.invoke("kept", &json!({})).await["output"], json!("3rd"), "the image in use stays");
}

/// numpy: a large wheel with a C extension, matched to the image's Python and glibc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numpy_runs_on_both_runtimes() {
    let s = server(&[]).await;
    let code = "import numpy as np\ndef handler(e, c):\n    a = np.arange(12).reshape(3, 4)\n    \
                return {'sum': a.sum(axis=0).tolist(), 'det': round(float(np.linalg.det(np.array([[2.0, 1.0], [1.0, 3.0]]))), 6), 'version': np.__version__}\n";
    for rt in RUNTIMES {
        let name = format!("numpy-{rt}");
        s.create(&name, "python", rt, code, json!({"dependencies": "numpy\n", "memory_mb": 256, "timeout_ms": 30000})).await;
        let report = ready(&s, &name).await;
        assert!(report["build"]["packages"].as_array().is_some_and(|p| p.iter().any(|x| x.as_str().unwrap_or("").starts_with("numpy "))), "{report}");
        for call in 0..2 {
            let r = s.invoke(&name, &json!({})).await;
            assert_eq!(r["status"], json!("success"), "numpy on {rt}: {r}");
            // No BLAS thread pool left after the call: the sandbox is reused.
            assert_eq!(r["cold_start"], json!(call == 0), "numpy on {rt}: {r}");
            assert_eq!(r["output"]["sum"], json!([12, 15, 18, 21]), "{r}");
            assert_eq!(r["output"]["det"], json!(5.0), "{r}");
        }
    }
}

/// A build past its time limit or its disk budget fails with that reason, and fnbox goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_bounded_in_time_and_disk() {
    for (flag, value, deps, reason) in [
        ("--build-timeout", "1", "numpy\npandas\n", "time limit"),
        ("--build-disk-mb", "1", "pyyaml==6.0.2\n", "disk budget"),
    ] {
        let s = server(&[flag, value]).await;
        s.create("bounded", "python", "docker", "def handler(e, c):\n    return 1\n", json!({"dependencies": deps})).await;
        let report = wait_build(&s, "bounded").await;
        assert_eq!(report["status"], json!("failed"), "{flag} {value}: {report}");
        assert!(report["build"]["error"].as_str().unwrap_or("").contains(reason), "{flag} {value}: {report}");
        s.create("still-fine", "python", "docker", "def handler(e, c):\n    return 2\n", json!({})).await;
        assert_eq!(s.invoke("still-fine", &json!({})).await["output"], json!(2));
    }
}
