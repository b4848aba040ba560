//! A started sandbox and the conversation with its bootstrap.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnbox_core::ErrorInfo;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::backend::{CpuProbe, LineReceiver, MemoryProbe, SandboxBackend, SandboxError, SandboxId, SandboxKey, SandboxSpec, TaskProbe};
use crate::logs::StreamedLogs;
use crate::protocol::{self, InvokeContext, InvokeResult, Reply, Request};

/// A running sandbox whose bootstrap answers on its protocol channel. It is either
/// generic (no code yet) or loaded with exactly one function version for life.
pub struct Sandbox {
    pub id: SandboxId,
    pub key: SandboxKey,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    lines: LineReceiver,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    memory: Option<MemoryProbe>,
    /// Host-side task (thread) count and its value once the bootstrap was up (runc only).
    tasks: Option<(TaskProbe, usize)>,
    cpu: Option<CpuProbe>,
    /// When the sandbox last went idle and the CPU time (ns) it had used by then.
    idle_since: Option<(Instant, u64)>,
    pub runtime_version: String,
    pub started_at: Instant,
    pub last_used: Instant,
    pub invocations: u64,
    loaded: bool,
    /// Logs the module printed while loading; handed to the first invocation's record.
    pending_logs: String,
    /// The bound on one invocation's logs (the function's `max_log_bytes`, from `load`), kept
    /// by the host on what the bootstrap streams.
    max_log_bytes: usize,
}

/// Why a function's code did not load. `timed_out` is the host's own finding (no answer in
/// time), never something the bootstrap said.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: ErrorInfo,
    pub logs: String,
    pub timed_out: bool,
}

/// How one invocation ended, from the sandbox's point of view.
pub enum InvokeOutcome {
    /// The bootstrap answered (success or a handler error). `leftover` lists what is still
    /// running after the call (as the bootstrap reports it, and as the host counts it where it
    /// can); when it is not empty the sandbox must not serve another call.
    Completed { result: InvokeResult, memory_bytes: Option<u64>, leftover: Vec<String> },
    /// No answer before the deadline: the sandbox must be destroyed. `logs` is what the call
    /// printed before (as the bootstrap streamed it, bounded by the host).
    TimedOut { memory_bytes: Option<u64>, logs: String },
    /// The sandbox wrote something that is not the answer to this call (a message nobody asked
    /// for, another call's id): the function is writing on its bootstrap's channel. The sandbox
    /// is still running; it must be destroyed, and nothing it said is believed.
    Violated { reason: String, memory_bytes: Option<u64> },
    /// The channel closed or broke mid-invocation (crash, exit, OOM kill, garbage on the wire).
    /// `logs` is what the call printed before, as for [`InvokeOutcome::TimedOut`].
    Died { reason: String, stderr: String, memory_bytes: Option<u64>, memory_limit_hit: bool, logs: String },
}

/// An idle sandbox that used more CPU than this, and more than 1/[`IDLE_CPU_SHARE`] of the time
/// it sat idle, is running something. Idle bootstraps measured here: runc 0, gVisor about
/// 0.2 ms a second (its sandbox kernel), while work left spinning uses a whole CPU when it can
/// get one. The floor leaves room for what finishes just after a call (a garbage collector, a
/// JIT, gVisor giving back the memory of a 100 MB result); the share (5 % of a CPU, 250 times
/// gVisor's idle) keeps a long idle spell from adding up past the floor, yet still sees a
/// spinner that gets only a sliver of a CPU on a crowded host (with a quarter, a spinner went
/// unseen for 10 s, twice, in full test runs where many sandboxes share two cores).
const IDLE_CPU_FLOOR_NS: u64 = 50_000_000;
const IDLE_CPU_SHARE: u64 = 20;

/// Memory use (bytes) from which a failure counts as hitting the sandbox's limit: 90 %, since
/// cgroup figures are page-rounded and a sample taken before the kill lags a little.
pub fn near_memory_limit(memory_mb: u32) -> u64 {
    u64::from(memory_mb) * 1024 * 1024 * 9 / 10
}

/// How often a running invocation's peak memory is sampled (see `recv_sampling_memory`).
const MEMORY_SAMPLE: Duration = Duration::from_millis(25);

enum RecvError {
    Closed(String),
    Timeout,
}

impl Sandbox {
    /// Creates and starts a sandbox and waits for its bootstrap's `ready`. On failure
    /// everything started is stopped again.
    pub async fn launch(
        backend: &dyn SandboxBackend,
        spec: &SandboxSpec,
        ready_timeout: Duration,
    ) -> Result<Sandbox, SandboxError> {
        let id = backend.create(spec).await?;
        match Self::start(backend, spec, id.clone(), ready_timeout).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Err(stop_err) = backend.stop(&id).await {
                    tracing::warn!(sandbox = %id, %stop_err, "could not remove a sandbox that failed to start");
                }
                Err(e)
            }
        }
    }

    async fn start(
        backend: &dyn SandboxBackend,
        spec: &SandboxSpec,
        id: SandboxId,
        ready_timeout: Duration,
    ) -> Result<Sandbox, SandboxError> {
        let channel = backend.start(&id).await?;
        let now = Instant::now();
        let mut sandbox = Sandbox {
            memory: backend.memory_probe(&id),
            cpu: backend.cpu_probe(&id),
            idle_since: None,
            tasks: None,
            id,
            key: spec.key,
            input: channel.input,
            lines: channel.lines,
            stderr_tail: channel.stderr_tail,
            runtime_version: String::new(),
            started_at: now,
            last_used: now,
            invocations: 0,
            loaded: false,
            pending_logs: String::new(),
            max_log_bytes: 0,
        };
        match sandbox.recv(ready_timeout).await {
            Ok(Reply::Ready { runtime_version, .. }) => {
                sandbox.runtime_version = runtime_version;
                sandbox.tasks =
                    backend.task_probe(&sandbox.id, &sandbox.key).and_then(|p| p.tasks().map(|n| (p, n)));
                Ok(sandbox)
            }
            Ok(other) => Err(SandboxError::Start(format!("expected `ready`, got {other:?}"))),
            Err(RecvError::Timeout) => {
                Err(SandboxError::Start(format!("no `ready` within {} ms", ready_timeout.as_millis())))
            }
            Err(RecvError::Closed(why)) => {
                Err(SandboxError::Start(format!("{why}; stderr: {}", sandbox.stderr_excerpt())))
            }
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    pub fn stderr_excerpt(&self) -> String {
        let tail = self.stderr_tail.lock();
        String::from_utf8_lossy(&tail).trim().to_owned()
    }

    async fn send(&mut self, req: &Request<'_>) -> Result<(), String> {
        let line = protocol::encode(req);
        self.input.write_all(&line).await.map_err(|e| format!("write to sandbox failed: {e}"))?;
        self.input.flush().await.map_err(|e| format!("write to sandbox failed: {e}"))
    }

    /// [`Self::recv`] for an invocation: a call that runs longer than [`MEMORY_SAMPLE`] has its
    /// peak memory sampled every period, so that a sandbox killed for memory still has a figure
    /// (its cgroup can be gone by the time the channel closes). Quick calls pay nothing.
    async fn recv_sampling_memory(&mut self, timeout: Duration) -> (Result<Reply, RecvError>, Option<u64>) {
        let deadline = Instant::now() + timeout;
        let mut sampled = None;
        loop {
            let step = deadline.min(Instant::now() + MEMORY_SAMPLE);
            // mpsc::Receiver::recv is cancel-safe: a timed-out wait loses no line.
            match tokio::time::timeout_at(step.into(), self.lines.recv()).await {
                Ok(None) => return (Err(RecvError::Closed("the sandbox closed its channel".into())), sampled),
                Ok(Some(Err(e))) => return (Err(RecvError::Closed(e)), sampled),
                Ok(Some(Ok(line))) => return (protocol::decode(&line).map_err(RecvError::Closed), sampled),
                Err(_) if Instant::now() >= deadline => return (Err(RecvError::Timeout), sampled),
                Err(_) => sampled = sampled.max(self.memory.as_ref().and_then(MemoryProbe::peak)),
            }
        }
    }

    async fn recv(&mut self, timeout: Duration) -> Result<Reply, RecvError> {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Err(_) => Err(RecvError::Timeout),
            Ok(None) => Err(RecvError::Closed("the sandbox closed its channel".into())),
            Ok(Some(Err(e))) => Err(RecvError::Closed(e)),
            Ok(Some(Ok(line))) => protocol::decode(&line).map_err(RecvError::Closed),
        }
    }

    /// Compiles code without running it. `Ok(None)` means it compiles.
    pub async fn check(&mut self, code: &str, timeout: Duration) -> Result<Option<ErrorInfo>, SandboxError> {
        self.send(&Request::Check { code }).await.map_err(SandboxError::Protocol)?;
        match self.recv(timeout).await {
            Ok(Reply::Checked { ok: true, .. }) => Ok(None),
            Ok(Reply::Checked { ok: false, error }) => {
                Ok(Some(error.unwrap_or_else(|| ErrorInfo::new("SyntaxError", "the code does not compile"))))
            }
            Ok(other) => Err(SandboxError::Protocol(format!("expected `checked`, got {other:?}"))),
            Err(RecvError::Timeout) => Err(SandboxError::Protocol("check timed out".into())),
            Err(RecvError::Closed(why)) => Err(SandboxError::Protocol(why)),
        }
    }

    /// Loads a function's code: the sandbox is specialised from now on. `Ok(Err(..))` is
    /// the function's own failure (syntax error, exception at import, missing handler, or
    /// taking longer than `timeout`, the function's own timeout).
    pub async fn load(
        &mut self,
        code: &str,
        env: &BTreeMap<String, String>,
        max_output_bytes: usize,
        max_log_bytes: usize,
        timeout: Duration,
    ) -> Result<Result<(), LoadFailure>, SandboxError> {
        self.loaded = true;
        self.max_log_bytes = max_log_bytes;
        let req = Request::Load { code, handler: "handler", env, max_output_bytes, max_log_bytes, stream_logs: true };
        self.send(&req).await.map_err(SandboxError::Protocol)?;
        match self.recv(timeout).await {
            Ok(Reply::Loaded { logs }) => {
                self.pending_logs = logs;
                Ok(Ok(()))
            }
            Ok(Reply::LoadFailed { error, logs }) => Ok(Err(LoadFailure { error, logs, timed_out: false })),
            Ok(other) => Err(SandboxError::Protocol(format!("expected `loaded`, got {other:?}"))),
            Err(RecvError::Timeout) => Ok(Err(LoadFailure {
                error: ErrorInfo::new(
                    "Timeout",
                    format!("loading the code took longer than the function's timeout of {} ms", timeout.as_millis()),
                ),
                logs: String::new(),
                timed_out: true,
            })),
            Err(RecvError::Closed(why)) => Ok(Err(LoadFailure {
                error: ErrorInfo::new("SandboxExited", format!("the sandbox died while loading the code: {why}")),
                logs: self.stderr_excerpt(),
                timed_out: false,
            })),
        }
    }

    /// Runs one invocation. Peak memory covers exactly this call.
    pub async fn invoke(
        &mut self,
        id: &str,
        event: &RawValue,
        context: &InvokeContext,
        timeout: Duration,
    ) -> InvokeOutcome {
        self.invocations += 1;
        self.idle_since = None;
        if let Some(p) = &self.memory {
            p.reset_peak();
        }
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let sent = self.send(&Request::Invoke { id, event, context }).await;
        // What the call prints arrives as `log` messages before its answer; the load's logs
        // come first.
        let mut streamed = StreamedLogs::new(self.max_log_bytes);
        streamed.push(&std::mem::take(&mut self.pending_logs));
        let mut peak = None;
        let (reply, sampled) = match sent {
            Ok(()) => loop {
                let (reply, sampled) = self.recv_sampling_memory(deadline.saturating_duration_since(Instant::now())).await;
                peak = peak.max(sampled);
                match reply {
                    Ok(Reply::Log { id: of, logs }) if of == id => streamed.push(&logs),
                    reply => break (reply, peak),
                }
            },
            Err(e) => (Err(RecvError::Closed(e)), None),
        };
        // A sandbox killed for memory may have lost its cgroup before this read: then the
        // last sample taken during the call is the best figure there is.
        let memory_bytes = self.memory.as_ref().and_then(MemoryProbe::peak).max(sampled);
        let near_limit = memory_bytes.is_some_and(|m| m >= near_memory_limit(self.key.memory_mb));
        self.last_used = Instant::now();
        match reply {
            Ok(Reply::Result(mut result)) if result.id == id => {
                result.logs = streamed.finish(&result.logs);
                // The bootstrap shares its process with the function, which can write a result
                // of its own: its timing is believed only within what the host measured.
                let host_ms = t0.elapsed().as_secs_f64() * 1000.0;
                result.exec_ms = result.exec_ms.map(|ms| if ms.is_finite() { ms.clamp(0.0, host_ms) } else { host_ms });
                let mut leftover = result.leftover.take().unwrap_or_default();
                leftover.extend(self.extra_tasks());
                InvokeOutcome::Completed { result, memory_bytes, leftover }
            }
            Ok(other) => {
                let mut shown = format!("{other:?}");
                if let Some((cut, _)) = shown.char_indices().nth(200) {
                    shown.truncate(cut);
                    shown.push('…');
                }
                InvokeOutcome::Violated { reason: format!("unexpected message on the sandbox's channel: {shown}"), memory_bytes }
            }
            Err(RecvError::Timeout) => InvokeOutcome::TimedOut { memory_bytes, logs: streamed.finish("") },
            Err(RecvError::Closed(reason)) => {
                // Give the reader a moment to collect the last stderr bytes of a dying process.
                tokio::time::sleep(Duration::from_millis(20)).await;
                InvokeOutcome::Died {
                    reason,
                    stderr: self.stderr_excerpt(),
                    memory_bytes,
                    memory_limit_hit: near_limit || self.memory.as_ref().is_some_and(MemoryProbe::hit_limit),
                    logs: streamed.finish(""),
                }
            }
        }
    }
}

impl Sandbox {
    /// What the host sees running beyond the bootstrap itself, whatever the bootstrap said
    /// (the function shares its interpreter and could silence its report).
    fn extra_tasks(&self) -> Option<String> {
        let (probe, baseline) = self.tasks.as_ref()?;
        let now = probe.tasks()?;
        (now > *baseline).then(|| {
            format!("{} thread(s) besides the bootstrap's, counted in the sandbox's cgroup", now - baseline)
        })
    }

    /// Starts the idle clock: from now on the sandbox should use (almost) no CPU.
    pub fn mark_idle(&mut self) {
        let used = self.cpu.as_ref().and_then(CpuProbe::used_ns);
        self.idle_since = used.map(|ns| (Instant::now(), ns));
    }

    /// Some(why) when the sandbox used more CPU while idle than an idle bootstrap does: the
    /// function left work running (a thread, a timer) that its bootstrap did not report. Read
    /// from the host's cgroup, so it holds on gVisor too.
    pub fn busy_while_idle(&self) -> Option<String> {
        let (since, used_then) = self.idle_since?;
        let used = self.cpu.as_ref()?.used_ns()?.saturating_sub(used_then);
        let idle_ns = since.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        (used > IDLE_CPU_FLOOR_NS && used > idle_ns / IDLE_CPU_SHARE).then(|| {
            format!("used {} ms of CPU in {} ms idle", used / 1_000_000, idle_ns / 1_000_000)
        })
    }

    /// False once the sandbox's channel has closed (it exited, or the daemon went away), or
    /// when it wrote something nobody asked for: either way it cannot be trusted with a call.
    pub fn is_alive(&self) -> bool {
        !self.lines.is_closed() && self.lines.is_empty()
    }
}
