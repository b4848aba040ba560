//! An in-process [`SandboxBackend`] for tests: no Docker, no processes.
//!
//! Each started sandbox is a tokio task that speaks the real bootstrap protocol
//! (docs/PROTOCOL.md) over a pair of `tokio::io::duplex` pipes: it sends `ready`, answers
//! `check`, `load` (once per sandbox) and `invoke`, and answers anything else with
//! `protocol_error`. Its lines reach the host through the same line splitter as a real
//! socket channel, so the host side runs exactly the code it runs against a container.
//!
//! Always compiled (it is small and has no dependencies of its own) so that tests of any
//! crate, and the cluster router's, can build pools on it without feature plumbing.
//!
//! # What the "function code" does
//! The code loaded into a fake sandbox picks its behaviour on `invoke` (surrounding
//! whitespace ignored):
//!
//! | code | on invoke |
//! |---|---|
//! | `echo` (and any code not below) | `success`, output = the event |
//! | `fail` | `error`, type `Error`, message `fail` |
//! | `sleep:MS` | sleeps MS milliseconds, then answers as `echo` |
//! | `die` | closes its channel without answering (a crashed sandbox; exit code 1) |
//! | `hang` | never answers (still running: the host's timeout must fire) |
//! | `leftover` | answers as `echo` with `"leftover":["process 7 (sleep)"]` |
//! | `syntax` | never runs: `check` says `SyntaxError` (line 1), `load` says `load_failed` |
//!
//! Every result's `logs` is `fake: <code>\n`; `exec_ms` is measured around the behaviour.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fnbox_core::{Language, Runtime};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{Channel, ExitInfo, MemoryProbe, RuntimeHealth, SandboxBackend, SandboxError, SandboxId, SandboxSpec};
use crate::channel::read_lines;

/// Pipe buffer per direction; a line longer than this just waits for the reader.
const PIPE_BYTES: usize = 64 * 1024;
/// Longest line the host accepts from a fake sandbox (as the Docker backend bounds them).
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Exit code recorded for a sandbox the host stopped (SIGKILL, as `docker rm -f`).
const KILLED: i64 = 137;

/// What one invocation does, decided by the loaded code (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Echo,
    Fail,
    Sleep(Duration),
    Die,
    Hang,
    Leftover,
}

impl Behaviour {
    fn of(code: &str) -> Behaviour {
        let code = code.trim();
        match code {
            "fail" => Behaviour::Fail,
            "die" => Behaviour::Die,
            "hang" => Behaviour::Hang,
            "leftover" => Behaviour::Leftover,
            _ => match code.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => Behaviour::Sleep(Duration::from_millis(ms)),
                None => Behaviour::Echo,
            },
        }
    }
}

fn does_not_compile(code: &str) -> bool {
    code.trim() == "syntax"
}

struct FakeSandbox {
    language: Language,
    /// The memory limit it has now: its key's, or what `set_memory_limit` set.
    memory_mb: u32,
    task: Option<JoinHandle<()>>,
    exit: Option<ExitInfo>,
    /// Removed by the host ([`SandboxBackend::stop`] or `remove_all`).
    removed: bool,
}

#[derive(Default)]
struct State {
    next_id: AtomicU64,
    created: AtomicU64,
    started: AtomicU64,
    stopped: AtomicU64,
    fail_creates: AtomicBool,
    fail_resizes: AtomicBool,
    ready_delay: Mutex<Duration>,
    running: AtomicUsize,
    peak_running: AtomicUsize,
    invocations: AtomicU64,
    sandboxes: Mutex<HashMap<String, FakeSandbox>>,
}

/// See the module docs. Share it as `Arc<FakeBackend>`: one clone goes to `Pools::new`, the
/// other stays with the test for its assertions.
#[derive(Default)]
pub struct FakeBackend {
    state: Arc<State>,
}

impl FakeBackend {
    pub fn new() -> FakeBackend {
        FakeBackend::default()
    }

    /// Sandboxes created so far.
    pub fn created(&self) -> u64 {
        self.state.created.load(Ordering::Relaxed)
    }

    /// Sandboxes started so far.
    pub fn started(&self) -> u64 {
        self.state.started.load(Ordering::Relaxed)
    }

    /// Sandboxes the host removed so far (each counted once, however often it was stopped).
    pub fn stopped(&self) -> u64 {
        self.state.stopped.load(Ordering::Relaxed)
    }

    /// Sandboxes created and not removed yet (dead ones included, as a dead container is
    /// until it is removed).
    pub fn live(&self) -> usize {
        self.state.sandboxes.lock().values().filter(|s| !s.removed).count()
    }

    /// The ids of [`Self::live`] sandboxes, in creation order.
    pub fn live_ids(&self) -> Vec<SandboxId> {
        let mut ids: Vec<String> =
            self.state.sandboxes.lock().iter().filter(|(_, s)| !s.removed).map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.into_iter().map(SandboxId).collect()
    }

    /// Whether the host removed this sandbox.
    pub fn is_removed(&self, id: &SandboxId) -> bool {
        self.state.sandboxes.lock().get(&id.0).is_some_and(|s| s.removed)
    }

    /// Invocations answered or being handled so far.
    pub fn invocations(&self) -> u64 {
        self.state.invocations.load(Ordering::Relaxed)
    }

    /// Invocations running in all sandboxes right now.
    pub fn running(&self) -> usize {
        self.state.running.load(Ordering::Relaxed)
    }

    /// The most invocations that ran at once since the last [`Self::reset_peak`].
    pub fn peak_running(&self) -> usize {
        self.state.peak_running.load(Ordering::Relaxed)
    }

    pub fn reset_peak(&self) {
        self.state.peak_running.store(self.running(), Ordering::Relaxed);
    }

    /// The memory limit a sandbox has now (MB), as the host would enforce it.
    pub fn memory_limit(&self, id: &SandboxId) -> Option<u32> {
        self.state.sandboxes.lock().get(&id.0).map(|s| s.memory_mb)
    }

    /// Makes every `set_memory_limit` fail from now on (a cgroup that refuses), or work again.
    pub fn fail_resizes(&self, fail: bool) {
        self.state.fail_resizes.store(fail, Ordering::Relaxed);
    }

    /// Makes every `create` fail from now on (a daemon that went away), or work again.
    pub fn fail_creates(&self, fail: bool) {
        self.state.fail_creates.store(fail, Ordering::Relaxed);
    }

    /// Delays the `ready` of sandboxes started from now on (a slow cold start).
    pub fn delay_ready(&self, delay: Duration) {
        *self.state.ready_delay.lock() = delay;
    }

    /// Crashes a started sandbox from outside (as an OOM kill of an idle container would):
    /// its channel closes. It stays until the host removes it. False if it was not running.
    pub fn kill(&self, id: &SandboxId) -> bool {
        let mut all = self.state.sandboxes.lock();
        let Some(sb) = all.get_mut(&id.0) else { return false };
        let Some(task) = sb.task.take() else { return false };
        task.abort();
        sb.exit.get_or_insert(ExitInfo { exit_code: Some(KILLED), oom_killed: false });
        true
    }

    fn remove(&self, id: &str) -> bool {
        let mut all = self.state.sandboxes.lock();
        let Some(sb) = all.get_mut(id) else { return false };
        if sb.removed {
            return false;
        }
        sb.removed = true;
        if let Some(task) = sb.task.take() {
            task.abort();
            sb.exit.get_or_insert(ExitInfo { exit_code: Some(KILLED), oom_killed: false });
        }
        self.state.stopped.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[async_trait]
impl SandboxBackend for FakeBackend {
    async fn create(&self, spec: &SandboxSpec) -> Result<SandboxId, SandboxError> {
        if self.state.fail_creates.load(Ordering::Relaxed) {
            return Err(SandboxError::Unavailable("fake backend told to fail creates".into()));
        }
        let n = self.state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("fake-{n:06}");
        let sb = FakeSandbox { language: spec.key.language, memory_mb: spec.key.memory_mb, task: None, exit: None, removed: false };
        self.state.sandboxes.lock().insert(id.clone(), sb);
        self.state.created.fetch_add(1, Ordering::Relaxed);
        Ok(SandboxId(id))
    }

    async fn start(&self, id: &SandboxId) -> Result<Channel, SandboxError> {
        let (host_in, box_in) = tokio::io::duplex(PIPE_BYTES);
        let (box_out, host_out) = tokio::io::duplex(PIPE_BYTES);
        let (tx, lines) = mpsc::channel(64);
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        {
            let mut all = self.state.sandboxes.lock();
            let sb = match all.get_mut(&id.0) {
                Some(sb) if !sb.removed && sb.task.is_none() && sb.exit.is_none() => sb,
                _ => return Err(SandboxError::Start(format!("fake sandbox {id} is not startable"))),
            };
            let boot = Bootstrap {
                id: id.0.clone(),
                language: sb.language,
                state: self.state.clone(),
                stderr: stderr_tail.clone(),
                ready_delay: *self.state.ready_delay.lock(),
            };
            sb.task = Some(tokio::spawn(boot.run(box_in, box_out)));
        }
        tokio::spawn(read_lines(host_out, tx, MAX_LINE));
        self.state.started.fetch_add(1, Ordering::Relaxed);
        Ok(Channel { input: Box::pin(host_in), lines, stderr_tail })
    }

    async fn stop(&self, id: &SandboxId) -> Result<(), SandboxError> {
        self.remove(&id.0);
        Ok(())
    }

    async fn exit_info(&self, id: &SandboxId) -> Result<ExitInfo, SandboxError> {
        Ok(self.state.sandboxes.lock().get(&id.0).and_then(|s| s.exit.clone()).unwrap_or_default())
    }

    fn memory_probe(&self, _id: &SandboxId) -> Option<MemoryProbe> {
        None
    }

    async fn set_memory_limit(&self, id: &SandboxId, memory_mb: u32) -> Result<(), SandboxError> {
        if self.state.fail_resizes.load(Ordering::Relaxed) {
            return Err(SandboxError::Unavailable("fake backend told to fail resizes".into()));
        }
        match self.state.sandboxes.lock().get_mut(&id.0) {
            Some(sb) if !sb.removed => {
                sb.memory_mb = memory_mb;
                Ok(())
            }
            _ => Err(SandboxError::Unavailable(format!("fake sandbox {id} is gone"))),
        }
    }

    async fn memory_usage(&self, _id: &SandboxId) -> Result<Option<u64>, SandboxError> {
        Ok(None)
    }

    async fn remove_all(&self) -> Result<usize, SandboxError> {
        let ids: Vec<String> = self.state.sandboxes.lock().keys().cloned().collect();
        Ok(ids.iter().filter(|id| self.remove(id)).count())
    }

    /// Both runtimes usable, always: a failing daemon is simulated by [`FakeBackend::fail_creates`]
    /// (the Docker backend caches its health too, so a create can fail under a good report).
    async fn health(&self) -> RuntimeHealth {
        RuntimeHealth {
            backend_reachable: true,
            backend_version: Some("fake".into()),
            runtimes: Runtime::ALL.into_iter().map(|r| (r, None)).collect(),
            channels: Default::default(),
        }
    }
}

/// Counts an invocation as running for as long as it is alive, aborted tasks included.
struct Running(Arc<State>);

impl Running {
    fn new(state: &Arc<State>) -> Running {
        let now = state.running.fetch_add(1, Ordering::Relaxed) + 1;
        state.peak_running.fetch_max(now, Ordering::Relaxed);
        state.invocations.fetch_add(1, Ordering::Relaxed);
        Running(state.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The fake's side of one sandbox: what bootstrap.py / bootstrap.js do, minus the language.
struct Bootstrap {
    id: String,
    language: Language,
    state: Arc<State>,
    stderr: Arc<Mutex<Vec<u8>>>,
    ready_delay: Duration,
}

impl Bootstrap {
    async fn run(self, input: DuplexStream, mut out: DuplexStream) {
        if !self.ready_delay.is_zero() {
            tokio::time::sleep(self.ready_delay).await;
        }
        let ready = json!({"type": "ready", "language": self.language.as_str(), "runtime_version": "fake", "pid": 1});
        if !send(&mut out, &ready).await {
            return;
        }
        let mut lines = BufReader::new(input).lines();
        let mut loaded: Option<String> = None;
        // EOF (or a broken pipe) on the input ends the bootstrap, exit 0.
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = match serde_json::from_str::<Value>(&line) {
                Err(e) => protocol_error(format!("unparsable message: {e}")),
                Ok(msg) => match msg.get("type").and_then(Value::as_str) {
                    Some("check") => check(msg.get("code").and_then(Value::as_str).unwrap_or("")),
                    Some("load") => self.load(&msg, &mut loaded),
                    Some("invoke") => match self.invoke(&msg, loaded.as_deref()).await {
                        Some(reply) => reply,
                        None => return,
                    },
                    other => protocol_error(format!("unknown message type {other:?}")),
                },
            };
            if !send(&mut out, &reply).await {
                return;
            }
        }
        self.exited(0);
    }

    fn load(&self, msg: &Value, loaded: &mut Option<String>) -> Value {
        if loaded.is_some() {
            return json!({"type": "load_failed", "logs": "",
                "error": {"type": "ProtocolError", "message": "this sandbox already loaded code"}});
        }
        let code = msg.get("code").and_then(Value::as_str).unwrap_or("");
        if does_not_compile(code) {
            return json!({"type": "load_failed", "logs": "", "error": syntax_error()});
        }
        *loaded = Some(code.to_owned());
        json!({"type": "loaded", "logs": ""})
    }

    /// The reply to an invocation; None when the sandbox dies instead of answering.
    async fn invoke(&self, msg: &Value, loaded: Option<&str>) -> Option<Value> {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(code) = loaded else {
            return Some(json!({"type": "result", "id": id, "status": "error", "logs": "", "exec_ms": 0.0,
                "error": {"type": "ProtocolError", "message": "invoke before load"}}));
        };
        let _running = Running::new(&self.state);
        let t0 = Instant::now();
        let event = msg.get("event").cloned().unwrap_or(Value::Null);
        let logs = format!("fake: {code}\n");
        let behaviour = Behaviour::of(code);
        let mut reply = match behaviour {
            Behaviour::Die => {
                self.stderr.lock().extend_from_slice(b"fake: died on purpose\n");
                self.exited(1);
                return None;
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Fail => json!({"type": "result", "id": id, "status": "error", "logs": logs,
                "error": {"type": "Error", "message": "fail"}}),
            Behaviour::Sleep(d) => {
                tokio::time::sleep(d).await;
                json!({"type": "result", "id": id, "status": "success", "output": event, "logs": logs})
            }
            Behaviour::Echo | Behaviour::Leftover => {
                json!({"type": "result", "id": id, "status": "success", "output": event, "logs": logs})
            }
        };
        if behaviour == Behaviour::Leftover {
            reply["leftover"] = json!(["process 7 (sleep)"]);
        }
        reply["exec_ms"] = json!(t0.elapsed().as_secs_f64() * 1000.0);
        Some(reply)
    }

    fn exited(&self, code: i64) {
        if let Some(sb) = self.state.sandboxes.lock().get_mut(&self.id) {
            sb.exit.get_or_insert(ExitInfo { exit_code: Some(code), oom_killed: false });
        }
    }
}

fn check(code: &str) -> Value {
    if does_not_compile(code) {
        json!({"type": "checked", "ok": false, "error": syntax_error()})
    } else {
        json!({"type": "checked", "ok": true})
    }
}

fn syntax_error() -> Value {
    json!({"type": "SyntaxError", "message": "invalid syntax (fake)", "stack": "", "line": 1})
}

fn protocol_error(message: String) -> Value {
    json!({"type": "protocol_error", "message": message})
}

/// Writes one protocol line; false when the host's end is gone.
async fn send(out: &mut DuplexStream, msg: &Value) -> bool {
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    out.write_all(&line).await.is_ok() && out.flush().await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fnbox_core::Language;
    use serde_json::value::RawValue;

    use super::*;
    use crate::backend::SandboxKey;
    use crate::protocol::{InvokeContext, ResultStatus};
    use crate::sandbox::{InvokeOutcome, Sandbox};

    fn spec() -> SandboxSpec {
        SandboxSpec {
            key: SandboxKey { language: Language::Python, runtime: Runtime::Docker, memory_mb: 128, deps: None },
            labels: BTreeMap::new(),
        }
    }

    fn ctx() -> InvokeContext {
        InvokeContext {
            execution_id: "e1".into(),
            function: "f".into(),
            version: 1,
            memory_mb: 128,
            timeout_ms: 1000,
            deadline_ms: 0,
        }
    }

    async fn loaded(fake: &FakeBackend, code: &str) -> Sandbox {
        let mut sb = Sandbox::launch(fake, &spec(), Duration::from_secs(1)).await.expect("launch");
        sb.load(code, &BTreeMap::new(), 1 << 20, 1 << 16, Duration::from_secs(1)).await.expect("io").expect("loads");
        sb
    }

    #[tokio::test]
    async fn speaks_the_protocol() {
        let fake = FakeBackend::new();
        let mut sb = loaded(&fake, "echo").await;
        assert_eq!(sb.runtime_version, "fake");
        let event = RawValue::from_string(r#"{"a":1}"#.into()).expect("raw");
        match sb.invoke("e1", &event, &ctx(), Duration::from_secs(1)).await {
            InvokeOutcome::Completed { result, leftover, .. } => {
                assert_eq!(result.status, ResultStatus::Success);
                assert_eq!(result.output.expect("output").get(), r#"{"a":1}"#);
                assert_eq!(result.logs, "fake: echo\n");
                assert!(leftover.is_empty());
            }
            _ => panic!("echo completes"),
        }
        let second = sb.load("echo", &BTreeMap::new(), 1, 1, Duration::from_secs(1)).await.expect("io");
        assert!(matches!(second, Err(f) if f.error.kind == "ProtocolError"), "a second load is refused");
        assert_eq!((fake.created(), fake.started(), fake.stopped(), fake.live()), (1, 1, 0, 1));
        assert_eq!(fake.remove_all().await.expect("remove_all"), 1);
        assert_eq!((fake.stopped(), fake.live()), (1, 0));
        for _ in 0..100 {
            if !sb.is_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!sb.is_alive(), "a removed sandbox's channel closes");
    }

    #[tokio::test]
    async fn check_fail_die_hang_leftover() {
        let fake = FakeBackend::new();
        let mut sb = Sandbox::launch(&fake, &spec(), Duration::from_secs(1)).await.expect("launch");
        let err = sb.check("syntax", Duration::from_secs(1)).await.expect("io").expect("does not compile");
        assert_eq!((err.kind.as_str(), err.line), ("SyntaxError", Some(1)));
        assert!(sb.check("echo", Duration::from_secs(1)).await.expect("io").is_none());

        let event = RawValue::from_string("1".into()).expect("raw");
        let mut sb = loaded(&fake, "fail").await;
        let out = sb.invoke("e1", &event, &ctx(), Duration::from_secs(1)).await;
        assert!(matches!(out, InvokeOutcome::Completed { result, .. } if result.status == ResultStatus::Error));

        let mut sb = loaded(&fake, "leftover").await;
        let out = sb.invoke("e1", &event, &ctx(), Duration::from_secs(1)).await;
        assert!(matches!(out, InvokeOutcome::Completed { leftover, .. } if leftover == ["process 7 (sleep)"]));

        let mut sb = loaded(&fake, "hang").await;
        let out = sb.invoke("e1", &event, &ctx(), Duration::from_millis(30)).await;
        assert!(matches!(out, InvokeOutcome::TimedOut { .. }));
        assert_eq!(fake.running(), 1, "a hung call still runs");
        fake.stop(&sb.id).await.expect("stop");
        for _ in 0..100 {
            if fake.running() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fake.running(), 0, "stopping the sandbox ends it");

        let mut sb = loaded(&fake, "die").await;
        let out = sb.invoke("e1", &event, &ctx(), Duration::from_secs(1)).await;
        assert!(matches!(out, InvokeOutcome::Died { ref stderr, .. } if stderr.contains("died on purpose")));
        assert_eq!(fake.exit_info(&sb.id).await.expect("exit").exit_code, Some(1));
        assert!(!sb.is_alive());
    }

    #[tokio::test]
    async fn failed_creates_and_slow_ready() {
        let fake = FakeBackend::new();
        fake.fail_creates(true);
        assert!(matches!(Sandbox::launch(&fake, &spec(), Duration::from_secs(1)).await, Err(SandboxError::Unavailable(_))));
        fake.fail_creates(false);
        fake.delay_ready(Duration::from_millis(200));
        let slow = Sandbox::launch(&fake, &spec(), Duration::from_millis(20)).await;
        assert!(matches!(slow, Err(SandboxError::Start(_))), "no ready within the ready timeout");
        assert_eq!((fake.created(), fake.started(), fake.stopped(), fake.live()), (1, 1, 1, 0));
    }
}
