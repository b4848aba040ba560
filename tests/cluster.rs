//! Cluster mode, for real: `scripts/cluster.sh up` starts PostgreSQL, three NATS servers
//! clustered with JetStream, and three fnbox nodes, each in its own network namespace with its
//! own dockerd. The phases run in order on one cluster (bringing one up takes a while):
//! changes reach every node, examples run through every node, calls find the warm sandbox
//! wherever it is, a node killed under load, a NATS server killed, PostgreSQL restarted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::{contract, dependency_contract};

struct Cluster {
    dir: tempfile::TempDir,
    urls: Vec<String>,
    http: reqwest::Client,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh")
}

impl Cluster {
    fn ctl(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("CLUSTER_DIR", self.dir.path())
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }

    fn up() -> Cluster {
        let dir = tempfile::Builder::new().prefix("fnbox-cluster-test").tempdir().expect("tempdir");
        // PostgreSQL runs as an unprivileged user, which must reach its folder inside.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let mut c = Cluster { dir, urls: Vec::new(), http };
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .env("CLUSTER_DIR", c.dir.path())
            // Its own names and subnet: a user's `make cluster` can run beside the test.
            .env("CLUSTER_NAME", "fnboxt")
            .env("CLUSTER_SUBNET", "10.214.0")
            .env("FNBOX_BIN", env!("CARGO_BIN_EXE_fnbox"))
            .output()
            .expect("run scripts/cluster.sh up");
        assert!(
            out.status.success(),
            "cluster.sh up failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.logs()
        );
        let urls: Vec<String> = std::fs::read_to_string(c.dir.path().join("urls"))
            .expect("urls file")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        assert_eq!(urls.len(), 3, "three node URLs: {urls:?}");
        c.urls = urls;
        c
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 1..=3 {
            let text = std::fs::read_to_string(self.dir.path().join(format!("node{i}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            out.push_str(&format!("--- node{i}.log (tail) ---\n{tail}\n"));
        }
        out
    }

    async fn request(&self, node: usize, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let mut req = self.http.request(method, format!("{}{path}", self.urls[node]));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn get(&self, node: usize, path: &str) -> (u16, Value) {
        self.request(node, reqwest::Method::GET, path, None).await.unwrap_or_else(|e| panic!("GET {path} on node {node}: {e}"))
    }

    async fn post(&self, node: usize, path: &str, body: &Value) -> (u16, Value) {
        self.request(node, reqwest::Method::POST, path, Some(body))
            .await
            .unwrap_or_else(|e| panic!("POST {path} on node {node}: {e}"))
    }

    async fn create(&self, node: usize, body: Value) {
        let (status, f) = self.post(node, "/api/v1/functions", &body).await;
        assert_eq!(status, 201, "create {body}: {f}\n{}", self.logs());
    }

    async fn invoke(&self, node: usize, name: &str, input: &Value) -> Value {
        let (status, r) = self.post(node, &format!("/api/v1/functions/{name}/invoke"), input).await;
        assert_eq!(status, 200, "invoke {name} on node {node}: {r}\n{}", self.logs());
        r
    }

    /// Every recorded execution of `function`, all pages.
    async fn executions(&self, node: usize, function: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/executions?function={function}&limit=500");
            if let Some(b) = &before {
                path.push_str(&format!("&before={b}"));
            }
            let (status, page) = self.get(node, &path).await;
            assert_eq!(status, 200, "{page}");
            let page = page.as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                break;
            }
            before = page.last().and_then(|e| e["id"].as_str()).map(str::to_owned);
            all.extend(page);
        }
        all
    }

    /// The build report of `name` once it is no longer building (within `secs`).
    async fn wait_build(&self, node: usize, name: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, r) = self.get(node, &format!("/api/v1/functions/{name}/build?wait=20")).await;
            assert_eq!(status, 200, "{r}");
            if r["status"] != json!("building") {
                return r;
            }
            assert!(Instant::now() < deadline, "{name} still building after {secs} s: {r}\n{}", self.logs());
        }
    }

    /// Ids of node `i`'s images labelled with dependency digest `digest` (1-based).
    fn dependency_images(&self, i: usize, digest: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args(["images", "-q", "--filter", &format!("label=fnbox.deps={digest}")])
            .env("DOCKER_HOST", format!("unix://{}/node{i}/docker.sock", self.dir.path().display()))
            .output()
            .expect("docker images");
        assert!(out.status.success(), "docker images on node {i}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }

    /// Container ids in node `i`'s own dockerd (1-based).
    fn containers(&self, i: usize) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--no-trunc"])
            .env("DOCKER_HOST", format!("unix://{}/node{i}/docker.sock", self.dir.path().display()))
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("down").env("CLUSTER_DIR", self.dir.path()).status();
    }
}

const SLEEPY_PY: &str = "import time\ndef handler(event, context):\n    time.sleep(event.get('ms', 0) / 1000)\n    return {'n': event.get('n')}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_in_namespaces_on_postgres_and_nats() {
    let c = Cluster::up();
    for node in 0..3 {
        let (status, h) = c.get(node, "/healthz").await;
        assert_eq!(status, 200, "node {node}: {h}");
        assert_eq!(h["runtimes"]["docker"]["available"], json!(true), "{h}");
        assert_eq!(h["runtimes"]["gvisor"]["available"], json!(true), "{h}");
    }
    // Every node sees all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = c.get(2, "/api/v1/cluster").await;
        let live = v["nodes"].as_array().map_or(0, |n| n.iter().filter(|n| n["live"] == json!(true)).count());
        if live == 3 {
            assert_eq!(v["mode"], json!("cluster"));
            break;
        }
        assert!(Instant::now() < deadline, "three live nodes expected: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    changes_reach_every_node_within_a_second(&c).await;
    examples_through_every_node(&c).await;
    dependencies_on_every_node(&c).await;
    schedules_and_async_calls_across_nodes(&c).await;
    calls_find_the_warm_sandbox_wherever_it_is(&c).await;
    the_live_stream_covers_the_cluster(&c).await;
    a_nats_server_killed(&c).await;
    postgres_restarted(&c).await;
    a_node_killed_under_load(&c).await;
}

async fn changes_reach_every_node_within_a_second(c: &Cluster) {
    c.create(0, json!({"name": "spread", "language": "python", "runtime": "docker", "code": SLEEPY_PY})).await;
    let created = Instant::now();
    // Readable through the others at once (a node that does not know a name asks the store).
    for node in [1, 2] {
        let (status, f) = c.get(node, "/api/v1/functions/spread").await;
        assert_eq!(status, 200, "node {node}: {f}");
    }
    for node in [1, 2] {
        loop {
            let (status, r) = c.post(node, "/api/v1/functions/spread/invoke", &json!({"n": node})).await;
            if status == 200 {
                assert_eq!(r["output"], json!({"n": node}), "{r}");
                break;
            }
            assert_eq!(status, 404, "{r}");
            assert!(created.elapsed() < Duration::from_secs(1), "node {node} did not know `spread` within 1 s: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A settings change made on node 2 is what node 3 then shows.
    let (status, f) = c
        .request(1, reqwest::Method::PUT, "/api/v1/functions/spread", Some(&json!({"timeout_ms": 4321})))
        .await
        .expect("PUT");
    assert_eq!(status, 200, "{f}");
    let changed = Instant::now();
    loop {
        let (_, f) = c.get(2, "/api/v1/functions/spread").await;
        if f["timeout_ms"] == json!(4321) {
            break;
        }
        assert!(changed.elapsed() < Duration::from_secs(1), "node 3 still shows {f}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Keys: one created on node 1 works on node 3 within a second.
    let (status, k) = c.post(0, "/api/v1/keys", &json!({"name": "cluster-test", "role": "admin"})).await;
    assert_eq!(status, 201, "{k}");
    let token = k["token"].as_str().expect("token").to_owned();
    let made = Instant::now();
    loop {
        let resp = c
            .http
            .get(format!("{}/api/v1/functions", c.urls[2]))
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET with key");
        // Keys are on everywhere now: without one, node 3 refuses.
        let without = c.http.get(format!("{}/api/v1/functions", c.urls[2])).send().await.expect("GET");
        if resp.status() == 200 && without.status() == 401 {
            break;
        }
        assert!(made.elapsed() < Duration::from_secs(1), "node 3: with key {}, without {}", resp.status(), without.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second key, made with the first; revoking the first through node 2 shuts it out of
    // node 3 within a second.
    let resp = c
        .http
        .post(format!("{}/api/v1/keys", c.urls[0]))
        .bearer_auth(&token)
        .json(&json!({"name": "cluster-test-2", "role": "admin"}))
        .send()
        .await
        .expect("POST key");
    assert_eq!(resp.status(), 201);
    let k2: Value = resp.json().await.expect("key json");
    let token2 = k2["token"].as_str().expect("token").to_owned();
    let id = k["key"]["id"].as_str().expect("id");
    let made = Instant::now();
    loop {
        let resp = c.http.delete(format!("{}/api/v1/keys/{id}", c.urls[1])).bearer_auth(&token2).send().await.expect("DELETE");
        if resp.status() == 204 {
            break;
        }
        assert_eq!(resp.status(), 401, "node 2 does not know the new key yet");
        assert!(made.elapsed() < Duration::from_secs(1), "node 2 did not take the new key within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revoked = Instant::now();
    loop {
        let old = c.http.get(format!("{}/api/v1/functions", c.urls[2])).bearer_auth(&token).send().await.expect("GET");
        if old.status() == 401 {
            break;
        }
        assert!(revoked.elapsed() < Duration::from_secs(1), "node 3 still takes the revoked key: {}", old.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last key goes through the CLI on the shared store (no notice: the nodes' 2 s poll
    // of the key version finds it); then the rest of the test runs without keys.
    let store_url = std::fs::read_to_string(c.dir.path().join("store_url")).expect("store_url");
    let id2 = k2["key"]["id"].as_str().expect("id");
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["keys", "revoke", id2, "--store", store_url.trim()])
        .output()
        .expect("fnbox keys revoke");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let revoked = Instant::now();
    for node in 0..3 {
        loop {
            let without = c.http.get(format!("{}/api/v1/functions", c.urls[node])).send().await.expect("GET");
            if without.status() == 200 {
                break;
            }
            assert!(revoked.elapsed() < Duration::from_secs(5), "node {node} still requires keys");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn examples_through_every_node(c: &Cluster) {
    let (_, templates) = c.get(0, "/api/v1/templates").await;
    let templates = templates.as_array().cloned().unwrap_or_default();
    let mut ran_on: HashSet<String> = HashSet::new();
    for runtime in ["docker", "gvisor"] {
        for language in ["python", "javascript"] {
            for (i, (slug, input, expected)) in contract().into_iter().enumerate() {
                let t = templates
                    .iter()
                    .find(|t| t["slug"] == json!(slug) && t["language"] == json!(language))
                    .unwrap_or_else(|| panic!("template {slug}/{language}"));
                let name = format!("ex-{slug}-{}-{runtime}", &language[..2]);
                c.create(i % 3, json!({"name": name, "language": language, "runtime": runtime, "code": t["code"]})).await;
                for node in 0..3 {
                    let r = c.invoke(node, &name, &input).await;
                    assert_eq!(r["status"], json!("success"), "{name} via node {node}: {r}");
                    assert_eq!(r["output"], expected, "{name} via node {node}: {r}");
                    assert_eq!(r["runtime"], json!(runtime));
                    let ran = r["node"].as_str().unwrap_or_else(|| panic!("the record names its node: {r}"));
                    ran_on.insert(ran.to_owned());
                }
            }
        }
    }
    // 28 functions homed by hashing: every node served some.
    assert_eq!(ran_on.len(), 3, "functions ran on {ran_on:?}");
}

/// A function with dependencies built on one node runs through every node: each builds the
/// same image (same digest) from the resolved lock, announces it in its heartbeat, and the
/// example gives its exact output everywhere. A second function with the same dependencies,
/// created through another node, shares the build at once.
async fn dependencies_on_every_node(c: &Cluster) {
    let (_, templates) = c.get(0, "/api/v1/templates").await;
    let templates = templates.as_array().cloned().unwrap_or_default();
    for (i, (runtime, (slug, language, input, expected))) in ["docker", "gvisor"].into_iter().zip(dependency_contract()).enumerate() {
        let t = templates
            .iter()
            .find(|t| t["slug"] == json!(slug) && t["language"] == json!(language))
            .unwrap_or_else(|| panic!("template {slug}/{language}"));
        let deps = t["dependencies"].as_str().unwrap_or_else(|| panic!("template {slug} has dependencies: {t}"));
        let name = format!("deps-{slug}");
        let home = i % 3;
        c.create(home, json!({"name": name, "language": language, "runtime": runtime, "code": t["code"], "dependencies": deps})).await;
        let report = c.wait_build(home, &name, 300).await;
        assert_eq!(report["status"], json!("ready"), "{name}: {report}\n{}", c.logs());
        let digest = report["build"]["image"].as_str().unwrap_or_else(|| panic!("a ready build names its image: {report}")).to_owned();
        // Every node makes the image from the lock once it hears the build is ready, and says so.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let (_, v) = c.get((home + 1) % 3, "/api/v1/cluster").await;
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            let with: Vec<&Value> = nodes
                .iter()
                .filter(|n| n["dependency_images"].as_array().is_some_and(|d| d.iter().any(|d| d == &json!(digest))))
                .collect();
            if with.len() == 3 {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: not every node announces image {digest}: {v}\n{}", c.logs());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for node in 1..=3 {
            assert_eq!(c.dependency_images(node, &digest).len(), 1, "node {node}'s dockerd holds one image of {digest}");
        }
        let mut ran_on = HashSet::new();
        for node in 0..3 {
            let r = c.invoke(node, &name, &input).await;
            assert_eq!(r["status"], json!("success"), "{name} via node {node}: {r}");
            assert_eq!(r["output"], expected, "{name} via node {node}: {r}");
            assert_eq!(r["runtime"], json!(runtime));
            ran_on.insert(r["node"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(ran_on.len(), 1, "{name}: the calls found the warm sandbox: {ran_on:?}");
        // The same dependencies through another node: the build is shared, nothing is resolved again.
        let twin = format!("{name}-twin");
        let other = (home + 2) % 3;
        c.create(other, json!({"name": twin, "language": language, "runtime": runtime, "code": t["code"], "dependencies": deps})).await;
        let shared = c.wait_build(other, &twin, 30).await;
        assert_eq!(shared["status"], json!("ready"), "{twin}: {shared}");
        assert_eq!(shared["build"]["image"], json!(digest), "{twin} shares the image: {shared}");
        assert!(shared["build"]["duration_ms"].as_u64().is_some_and(|ms| ms <= 1000), "{twin}'s build ends within 1 s: {shared}");
        for node in 0..3 {
            let r = c.invoke(node, &twin, &input).await;
            assert_eq!(r["output"], expected, "{twin} via node {node}: {r}");
        }
    }
}

/// An every-second schedule fires 10 ± 1 times in 10 s with three nodes ticking (one fire per
/// tick: the nodes race on the same compare-and-swap), and asynchronous calls accepted by any
/// node all run once, from the queue the nodes share.
async fn schedules_and_async_calls_across_nodes(c: &Cluster) {
    c.create(0, json!({"name": "cron", "language": "python", "runtime": "docker", "code": "def handler(event, context):\n    return event\n", "concurrency": 4})).await;
    c.invoke(1, "cron", &json!({})).await;
    let ms = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 100)).await;
    let (status, sched) = c.post(1, "/api/v1/functions/cron/schedules", &json!({"cron": "* * * * * *", "input": {"via": "schedule"}})).await;
    assert_eq!(status, 201, "{sched}");
    let t0 = Instant::now();
    let id = sched["id"].as_str().expect("id").to_owned();
    for node in 0..3 {
        let (status, s) = c.get(node, &format!("/api/v1/schedules/{id}")).await;
        assert_eq!(status, 200, "every node reads it: {s}");
    }
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed())).await;
    let (status, _) = c.request(2, reqwest::Method::DELETE, &format!("/api/v1/schedules/{id}"), None).await.expect("delete");
    assert_eq!(status, 204);
    async fn scheduled(c: &Cluster) -> Vec<Value> {
        let (status, v) = c.get(0, "/api/v1/executions?function=cron&trigger=schedule&limit=500").await;
        assert_eq!(status, 200, "{v}");
        v.as_array().cloned().unwrap_or_default()
    }
    let n = scheduled(c).await.len();
    assert!((9..=11).contains(&n), "three nodes fired an every-second schedule {n} times in 10 s\n{}", c.logs());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fired = scheduled(c).await;
        assert_eq!(fired.len(), n, "no fire after the delete");
        if fired.iter().all(|e| e["status"] == json!("success")) {
            let requests: std::collections::BTreeSet<&str> = fired.iter().filter_map(|e| e["request_id"].as_str()).collect();
            assert_eq!(requests.len(), n, "one call per tick");
            assert!(fired.iter().all(|e| e["output"] == json!({"via": "schedule"})), "{fired:?}");
            let nodes: std::collections::BTreeSet<&str> = fired.iter().filter_map(|e| e["node"].as_str()).collect();
            eprintln!("schedule: {n} fires in 10 s, run on nodes {nodes:?}");
            break;
        }
        assert!(Instant::now() < deadline, "scheduled calls did not all run: {fired:?}\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Asynchronous calls accepted round-robin by the three nodes: each runs exactly once.
    let mut accepted = Vec::new();
    for i in 0..30 {
        let r = c
            .http
            .post(format!("{}/api/v1/functions/cron/invoke", c.urls[i % 3]))
            .header("prefer", "respond-async")
            .json(&json!({"i": i}))
            .send()
            .await
            .expect("accept");
        assert_eq!(r.status().as_u16(), 202);
        let body: Value = r.json().await.expect("body");
        accepted.push((body["request_id"].as_str().expect("request").to_owned(), i));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = c.get(2, "/api/v1/executions?function=cron&trigger=async&limit=500").await;
        let all = v.as_array().cloned().unwrap_or_default();
        let done = accepted
            .iter()
            .filter(|(r, i)| {
                let mine: Vec<&Value> = all.iter().filter(|e| e["request_id"] == json!(r)).collect();
                mine.len() == 1 && mine[0]["status"] == json!("success") && mine[0]["output"] == json!({"i": i})
            })
            .count();
        if done == accepted.len() {
            let nodes: std::collections::BTreeSet<&str> = all.iter().filter_map(|e| e["node"].as_str()).collect();
            eprintln!("async: 30 calls accepted through three nodes ran once each, on nodes {nodes:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{done} of 30 asynchronous calls ran once\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn calls_find_the_warm_sandbox_wherever_it_is(c: &Cluster) {
    for runtime in ["docker", "gvisor"] {
        let name = format!("roundrobin-{runtime}");
        c.create(0, json!({"name": name, "language": "python", "runtime": runtime, "code": SLEEPY_PY})).await;
        let mut cold = 0;
        let mut nodes = HashSet::new();
        for i in 0..60 {
            let r = c.invoke(i % 3, &name, &json!({"n": i})).await;
            assert_eq!(r["output"], json!({"n": i}), "{r}");
            if r["cold_start"] == json!(true) {
                cold += 1;
            }
            nodes.insert(r["node"].as_str().unwrap_or_default().to_owned());
        }
        assert_eq!(cold, 1, "{name}: 60 round-robin calls started {cold} sandboxes (ran on {nodes:?})");
        assert_eq!(nodes.len(), 1, "{name}: all calls ran where the warm sandbox is: {nodes:?}");
        let records = c.executions(1, &name).await;
        assert_eq!(records.len(), 60, "one record per call");
        // Every node's pools view shows where that sandbox is (from the heartbeats).
        let holder = nodes.iter().next().cloned().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (_, pools) = c.get(2, "/api/v1/pools").await;
            let shown = pools["nodes"].as_array().into_iter().flatten().any(|n| {
                n["node"] == json!(holder)
                    && n["functions"].as_array().into_iter().flatten().any(|f| f["function"] == json!(name) && f["idle"] == json!(1))
            });
            if shown {
                break;
            }
            assert!(Instant::now() < deadline, "node 3's pools view lacks {name} on {holder}: {pools}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn the_live_stream_covers_the_cluster(c: &Cluster) {
    // A subscriber on each node sees calls that ran on the others.
    let mut streams = Vec::new();
    for node in 0..3 {
        let resp = c.http.get(format!("{}/api/v1/executions/stream", c.urls[node])).send().await.expect("stream");
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for node in 0..3 {
        let r = c.invoke(node, "spread", &json!({"n": 100 + node})).await;
        ids.push(r["execution_id"].as_str().expect("id").to_owned());
    }
    for (node, stream) in streams.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = String::new();
        while !ids.iter().all(|id| events.contains(id.as_str())) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.chunk()).await {
                Ok(Ok(Some(chunk))) => events.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("node {node}'s stream lacks some of {ids:?}: {other:?}; got {events}"),
            }
        }
        // Each execution once per subscriber, from whichever node ran it.
        for id in &ids {
            assert_eq!(events.matches(&format!("\"id\":\"{id}\"")).count(), 1, "node {node}: {events}");
        }
    }
}

async fn a_nats_server_killed(c: &Cluster) {
    c.ctl(&["kill-nats", "2"]);
    // Clients connected to it move to the others; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..30 {
        let r = c.invoke(i % 3, "spread", &json!({"n": i})).await;
        assert_eq!(r["output"], json!({"n": i}), "{r}");
    }
    // A change still reaches every node.
    c.create(2, json!({"name": "after-nats", "language": "javascript", "runtime": "docker",
        "code": "exports.handler = async (e) => ({ok: e.n});"}))
    .await;
    let r = c.invoke(0, "after-nats", &json!({"n": 7})).await;
    assert_eq!(r["output"], json!({"ok": 7}));
    c.ctl(&["start-nats", "2"]);
}

async fn postgres_restarted(c: &Cluster) {
    let mut acknowledged = Vec::new();
    for i in 0..9 {
        let r = c.invoke(i % 3, "spread", &json!({"n": i})).await;
        acknowledged.push(r["execution_id"].as_str().expect("id").to_owned());
    }
    c.ctl(&["stop-pg"]);
    // Meanwhile: a clear 503 from every node (not a hang, not a 500).
    for node in 0..3 {
        let started = Instant::now();
        let mut saw = None;
        while started.elapsed() < Duration::from_secs(10) {
            let (status, r) = c.post(node, "/api/v1/functions/spread/invoke", &json!({"n": 1})).await;
            if status == 503 {
                saw = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = saw.unwrap_or_else(|| panic!("node {node}: no 503 while PostgreSQL is down"));
        assert_eq!(r["error"]["code"], json!("store_unavailable"), "{r}");
    }
    c.ctl(&["start-pg"]);
    // Recovery without restarting any node.
    for node in 0..3 {
        let started = Instant::now();
        loop {
            let (status, r) = c.post(node, "/api/v1/functions/spread/invoke", &json!({"n": 5})).await;
            if status == 200 {
                acknowledged.push(r["execution_id"].as_str().expect("id").to_owned());
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "node {node} did not recover: {status} {r}\n{}", c.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for id in &acknowledged {
        let (status, e) = c.get(0, &format!("/api/v1/executions/{id}")).await;
        assert_eq!(status, 200, "acknowledged execution {id} lost: {e}");
    }
}

async fn a_node_killed_under_load(c: &Cluster) {
    let timeout_ms = 2000u64;
    c.create(0, json!({"name": "load", "language": "python", "runtime": "docker", "code": SLEEPY_PY,
        "timeout_ms": timeout_ms, "concurrency": 8}))
    .await;
    // Warm the function where it lives, and find that node: it is the one to kill (calls on it
    // are in flight when it dies).
    let r = c.invoke(0, "load", &json!({"n": 0})).await;
    let victim_id = r["node"].as_str().expect("node").to_owned();
    let (_, view) = c.get(0, "/api/v1/cluster").await;
    let victim_url = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == json!(victim_id)))
        .and_then(|n| n["api_url"].as_str())
        .expect("victim url")
        .to_owned();
    let victim = c.urls.iter().position(|u| u.trim_end_matches('/') == victim_url.trim_end_matches('/')).expect("victim index");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let old_containers = c.containers(victim + 1);
    assert!(!old_containers.is_empty(), "the victim runs sandboxes");

    // 8 clients, spread over the three nodes until the kill, then over the two left.
    let killed_at = std::sync::Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..8usize {
        let http = c.http.clone();
        let urls = c.urls.clone();
        let survivors = survivors.clone();
        let killed = killed_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..40usize {
                let node = if killed.load(Ordering::SeqCst) { survivors[(client + i) % 2] } else { (client + i) % 3 };
                let t0 = Instant::now();
                let resp = http
                    .post(format!("{}/api/v1/functions/load/invoke", urls[node]))
                    .json(&json!({"n": i, "ms": 150}))
                    .send()
                    .await;
                let took = t0.elapsed();
                let outcome = match resp {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        Ok((status, body))
                    }
                    Err(e) => Err(e.to_string()),
                };
                results.push((node, took, outcome));
            }
            results
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.ctl(&["kill-node", &(victim + 1).to_string()]);
    killed_at.store(true, Ordering::SeqCst);
    let killed = Instant::now();
    let mut answered: HashMap<String, usize> = HashMap::new();
    let mut unavailable = 0;
    for t in tasks {
        for (node, took, outcome) in t.await.expect("client task") {
            match outcome {
                Ok((200, body)) => {
                    assert_eq!(body["status"], json!("success"), "{body}");
                    *answered.entry(body["execution_id"].as_str().expect("id").to_owned()).or_default() += 1;
                }
                Ok((503, body)) => {
                    unavailable += 1;
                    assert!(
                        took <= Duration::from_millis(timeout_ms + 2000),
                        "a 503 after {took:?} (bound: timeout + 2 s): {body}"
                    );
                }
                Ok((status, body)) => panic!("unexpected {status} from node {node}: {body}"),
                // Calls sent to the killed node itself lose their connection.
                Err(e) => assert_eq!(node, victim, "a survivor failed a request: {e}"),
            }
            assert!(took <= Duration::from_millis(timeout_ms + 2000), "a call took {took:?} (bound: timeout + 2 s)");
        }
    }
    assert!(answered.len() > 100, "most calls answered: {} (503: {unavailable})", answered.len());
    // Every answered call is recorded exactly once.
    let survivor = survivors[0];
    let records = c.executions(survivor, "load").await;
    let mut recorded: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *recorded.entry(r["id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    for (id, n) in &answered {
        assert_eq!(*n, 1, "answered twice: {id}");
        assert_eq!(recorded.get(id), Some(&1), "answered call {id} recorded {:?} times", recorded.get(id));
    }
    // The others stopped routing to it within 5 s.
    let wait = Duration::from_secs(5).saturating_sub(killed.elapsed());
    tokio::time::sleep(wait).await;
    for &s in &survivors {
        let (_, v) = c.get(s, "/api/v1/cluster").await;
        let dead = v["nodes"].as_array().and_then(|n| n.iter().find(|n| n["id"] == json!(victim_id))).cloned();
        assert!(dead.is_none_or(|d| d["live"] == json!(false)), "node {s} still routes to {victim_id}: {v}");
        for i in 0..6 {
            let r = c.invoke(s, "load", &json!({"n": i})).await;
            assert_ne!(r["node"], json!(victim_id), "{r}");
        }
    }
    // Restarted, it starts clean: none of its old sandboxes are left.
    c.ctl(&["start-node", &(victim + 1).to_string()]);
    let now = c.containers(victim + 1);
    let left: Vec<&String> = old_containers.iter().filter(|id| now.contains(id)).collect();
    assert!(left.is_empty(), "sandboxes of the killed node survived its restart: {left:?}");
    let r = c.invoke(victim, "load", &json!({"n": 1})).await;
    assert_eq!(r["output"], json!({"n": 1}));
}
