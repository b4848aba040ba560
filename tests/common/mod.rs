//! A real fnbox server for integration tests: the built binary, its own data dir and port,
//! talking to the real dockerd. Stopped (SIGTERM, so it removes its sandboxes) on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct TestServer {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer` by the helpers below when set (servers with keys on).
    pub token: Option<String>,
}

/// Runs `fnbox keys create` against a data dir and returns the token it printed.
pub fn create_key(data_dir: &std::path::Path, name: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fnbox"))
        .args(["keys", "create", "--name", name, "--role", role, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run fnbox keys create");
    assert!(out.status.success(), "keys create failed: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("fnbox_"), "unexpected token output: {token:?}");
    token
}

impl TestServer {
    pub async fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra).await
    }

    /// Starts a server on an existing data dir (to test restarts).
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestServer {
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_fnbox"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("RUST_LOG", "info,fnbox_sandbox=debug")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn fnbox serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(pos) = text.find("listening on http://") {
                let rest = &text[pos + "listening on ".len()..];
                let url: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                // Strip ANSI colour codes that the log formatter may add.
                break url.split('\u{1b}').next().unwrap_or(&url).to_string();
            }
            assert!(Instant::now() < deadline, "fnbox did not start within 30 s:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client");
        TestServer { child: Some(child), url, dir, http, token: None }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<String>) -> (u16, Value) {
        let (status, _, v) = self.request_as(self.token.as_deref(), method, path, body).await;
        (status, v)
    }

    /// A request with the given token (or none), returning the headers too.
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body.to_string())).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body.to_string())).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// Fails the test, saying what is missing, unless both runc and runsc can run sandboxes.
    pub async fn require_runtimes(&self) {
        let (status, h) = self.get("/healthz").await;
        for rt in ["docker", "gvisor"] {
            assert_eq!(
                h["runtimes"][rt]["available"],
                json!(true),
                "runtime {rt} is not available ({status}): {h}. `make test` runs `make setup`, which installs and starts what is missing."
            );
        }
    }

    pub async fn create(&self, name: &str, language: &str, runtime: &str, code: &str, extra: Value) -> Value {
        let mut body = json!({"name": name, "language": language, "runtime": runtime, "code": code});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, f) = self.post("/api/v1/functions", &body).await;
        assert_eq!(status, 201, "create {name}: {f}");
        f
    }

    pub async fn invoke(&self, name: &str, input: &Value) -> Value {
        let (status, r) = self.post(&format!("/api/v1/functions/{name}/invoke"), input).await;
        assert_eq!(status, 200, "invoke {name}: {r}\n--- server log tail ---\n{}", tail(&self.log(), 40));
        r
    }

    /// Waits (`GET …/build?wait=`) for the function's dependency build to end; fails the test
    /// unless it is ready.
    pub async fn wait_build_ready(&self, name: &str, wait_secs: u32) -> Value {
        let (status, r) = self.get(&format!("/api/v1/functions/{name}/build?wait={wait_secs}")).await;
        assert_eq!(status, 200, "build of {name}: {r}");
        assert_eq!(
            r["status"],
            json!("ready"),
            "the build of {name} is not ready after {wait_secs} s: {}\n--- build logs ---\n{}",
            r["build"]["error"],
            tail(r["build"]["logs"].as_str().unwrap_or(""), 30)
        );
        r
    }

    pub async fn templates(&self) -> Vec<Value> {
        let (status, t) = self.get("/api/v1/templates").await;
        assert_eq!(status, 200);
        t.as_array().cloned().unwrap_or_default()
    }

    /// SIGTERM and wait: the server removes its sandboxes on the way out.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// kill -9, as a crash would.
    pub fn crash(&mut self) -> tempfile::TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl TestServer {
    /// The server process's pid (to read its memory from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// The `fnbox.instance` label of this server's sandboxes (as `fnbox_sandbox::docker::instance_id`
    /// computes it: FNV-1a of the canonical data dir).
    pub fn instance(&self) -> String {
        let dir = self.data_dir();
        let path = dir.canonicalize().unwrap_or(dir);
        let mut h: u64 = 0xcbf29ce484222325;
        for b in path.to_string_lossy().as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    /// Ids of every container this server owns right now (through the docker CLI).
    pub fn containers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--no-trunc", "--filter"])
            .arg(format!("label=fnbox.instance={}", self.instance()))
            .output()
            .expect("docker ps");
        assert!(out.status.success(), "docker ps failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }
}

/// The contract from the original description: each example's input and its exact output.
pub fn contract() -> Vec<(&'static str, Value, Value)> {
    vec![
        ("hello", json!({"name": "Bob"}), json!("Hello, Bob!")),
        ("calculator", json!({"operation": "add", "num1": 10, "num2": 5}), json!(15)),
        ("fibonacci", json!({"n": 10}), json!(55)),
        ("strings", json!({"text": "Hello World", "operation": "uppercase"}), json!("HELLO WORLD")),
        ("json", json!({"data": {"name": "John", "age": 30}, "operation": "keys"}), json!(["name", "age"])),
        ("arrays", json!({"array": [1, 5, 3, 9, 2], "operation": "sum"}), json!(20)),
        ("dates", json!({"date": "2023-01-15T12:30:45Z", "format": "iso"}), json!("2023-01-15T12:30:45Z")),
        // A Lambda function URL handler, called here with its event as the input.
        ("webhook", webhook_event(), webhook_answer()),
    ]
}

/// The examples with dependencies, each in its one language: (slug, language, input, output).
/// They are created with their template's `dependencies` and called once the build is ready.
pub fn dependency_contract() -> Vec<(&'static str, &'static str, Value, Value)> {
    vec![
        (
            "yaml",
            "python",
            json!({"yaml": "service: checkout\nreplicas: 3\nrequests_per_day: 1234567\ncache_bytes: 268435456\n"}),
            json!({"document": {"service": "checkout", "replicas": 3, "requests_per_day": 1234567, "cache_bytes": 268435456},
                   "humanized": {"replicas": "3", "requests_per_day": "1.2 million", "cache_bytes": "268.4 MB"}, "size": "79 Bytes"}),
        ),
        (
            "timeline",
            "javascript",
            json!({"events": [{"name": "deploy", "at": "2024-03-01T10:00:00Z"}, {"name": "rollback", "at": "2024-03-01T09:15:00Z"},
                              {"name": "release", "at": "2024-03-03T16:45:00Z"}]}),
            json!({"days": {"2024-03-01": ["09:15 rollback", "10:00 deploy"], "2024-03-03": ["16:45 release"]},
                   "first": "Fri, 1 Mar 2024 09:15", "last": "Sun, 3 Mar 2024 16:45", "span_hours": 55}),
        ),
    ]
}

/// The webhook example's event (Lambda function URL format 2.0, trimmed to what it reads).
pub fn webhook_event() -> Value {
    json!({"version": "2.0", "routeKey": "$default", "rawPath": "/hello", "rawQueryString": "name=Ada", "queryStringParameters": {"name": "Ada"}, "headers": {"content-type": "text/plain"}, "requestContext": {"http": {"method": "POST", "path": "/hello"}}, "body": "hi", "isBase64Encoded": false})
}

/// What the webhook example answers to [`webhook_event`].
pub fn webhook_answer() -> Value {
    json!({"statusCode": 201, "headers": {"content-type": "application/json", "x-handled-by": "webhook"}, "body": "{\"method\":\"POST\",\"path\":\"/hello\",\"query\":{\"name\":\"Ada\"},\"greeting\":\"Hello, Ada!\",\"received\":\"hi\",\"contentType\":\"text/plain\"}"})
}
