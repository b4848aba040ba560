//! The Docker backend: runc for `docker`, runsc for `gvisor`, over the Docker Engine API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StatsOptions,
};
use bollard::Docker;
use bytes::Bytes;
use fnbox_core::{Language, Runtime};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    Channel, CpuProbe, ExitInfo, MemoryProbe, RuntimeHealth, SandboxBackend, SandboxError, SandboxId, SandboxKey,
    SandboxSpec, TaskProbe,
};
use crate::channel::{self, ChannelKind, LineSplitter, SocketDir, SOCKET_ENV, SOCKET_MOUNT};

/// Labels that mark a container as fnbox's; `fnbox.instance` scopes clean-up to one data dir,
/// so two fnbox servers on one daemon never remove each other's sandboxes.
pub const LABEL_MANAGED: &str = "fnbox.managed";
pub const LABEL_INSTANCE: &str = "fnbox.instance";

#[derive(Debug, Clone)]
pub struct DockerConfig {
    pub python_image: String,
    pub node_image: String,
    /// Identifies this fnbox (derived from its data dir); see [`LABEL_INSTANCE`].
    pub instance: String,
    pub pids_limit: i64,
    /// CPU quota per sandbox, in billionths of a CPU.
    pub nano_cpus: i64,
    pub tmpfs_mb: u32,
    /// uid:gid the bootstrap runs as inside the sandbox.
    pub user: String,
    /// Longest protocol line accepted from a sandbox; a longer one breaks its channel.
    pub max_line_bytes: usize,
    /// Which channel to use; see [`crate::channel`].
    pub channel: ChannelPreference,
    /// Where per-sandbox socket directories live (root-only). None: attach only.
    pub socket_root: Option<PathBuf>,
    /// How long a started bootstrap may take to connect to its socket.
    pub connect_timeout: Duration,
    /// The name dockerd knows gVisor's OCI runtime by (`runsc`, Debian bookworm's; `make setup`
    /// also registers a newer one, see docs/BENCHMARKS.md "gVisor versions").
    pub gvisor_runtime: String,
}

/// `auto` takes the socket wherever the runtime can use one (runc always; runsc when dockerd
/// passes it `--host-uds=open|all`), and attach elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPreference {
    Auto,
    Attach,
    Socket,
}

impl std::str::FromStr for ChannelPreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ChannelPreference::Auto),
            "attach" => Ok(ChannelPreference::Attach),
            "socket" => Ok(ChannelPreference::Socket),
            other => Err(format!("unknown channel `{other}` (auto, attach or socket)")),
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            python_image: "fnbox-python:latest".into(),
            node_image: "fnbox-node:latest".into(),
            instance: "default".into(),
            pids_limit: 64,
            nano_cpus: 1_000_000_000,
            tmpfs_mb: 16,
            user: "65534:65534".into(),
            max_line_bytes: 8 * 1024 * 1024,
            channel: ChannelPreference::Auto,
            socket_root: None,
            connect_timeout: Duration::from_secs(30),
            gvisor_runtime: "runsc".into(),
        }
    }
}

pub struct DockerBackend {
    docker: Docker,
    config: DockerConfig,
    health: Mutex<Option<(Instant, RuntimeHealth)>>,
    /// Socket directories of created sandboxes whose bootstrap has not connected yet.
    pending: Mutex<HashMap<String, SocketDir>>,
    /// Every sandbox's socket directory, removed with the sandbox.
    socket_dirs: Mutex<HashMap<String, PathBuf>>,
}

/// Health is asked for on every invocation path; a short cache keeps dockerd out of the hot path.
const HEALTH_TTL: Duration = Duration::from_secs(2);
const STDERR_TAIL: usize = 4096;

fn unavailable(e: bollard::errors::Error) -> SandboxError {
    SandboxError::Unavailable(e.to_string())
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

impl DockerBackend {
    /// Connects to the local daemon (DOCKER_HOST or /var/run/docker.sock). A daemon that is
    /// down now is not an error: health says so and requests fail until it is back.
    pub async fn connect(config: DockerConfig) -> Result<DockerBackend, SandboxError> {
        let docker = Docker::connect_with_local_defaults().map_err(unavailable)?;
        let docker = match docker.clone().negotiate_version().await {
            Ok(d) => {
                tracing::info!(api_version = %d.client_version(), "connected to the Docker daemon");
                d
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Docker daemon does not answer yet");
                docker
            }
        };
        Ok(DockerBackend {
            docker,
            config,
            health: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            socket_dirs: Mutex::new(HashMap::new()),
        })
    }

    fn image(&self, language: Language) -> &str {
        match language {
            Language::Python => &self.config.python_image,
            Language::Javascript => &self.config.node_image,
        }
    }

    fn oci_runtime(&self, runtime: Runtime) -> &str {
        match runtime {
            Runtime::Docker => "runc",
            Runtime::Gvisor => &self.config.gvisor_runtime,
        }
    }

    async fn probe_health(&self) -> RuntimeHealth {
        let mut health = RuntimeHealth::default();
        let version = match self.docker.version().await {
            Ok(v) => v,
            Err(e) => {
                for r in Runtime::ALL {
                    health.runtimes.insert(r, Some(format!("the Docker daemon does not answer: {e}")));
                }
                return health;
            }
        };
        health.backend_reachable = true;
        health.backend_version = version.version;
        let registered: HashMap<String, Vec<String>> = match self.docker.info().await {
            Ok(info) => info
                .runtimes
                .map(|r| r.into_iter().map(|(k, v)| (k, v.runtime_args.unwrap_or_default())).collect())
                .unwrap_or_default(),
            Err(_) => HashMap::new(),
        };
        let mut missing_images = Vec::new();
        for lang in Language::ALL {
            let image = self.image(lang);
            if self.docker.inspect_image(image).await.is_err() {
                missing_images.push(image.to_owned());
            }
        }
        for r in Runtime::ALL {
            let oci = self.oci_runtime(r);
            let reason = if !registered.contains_key(oci) {
                Some(format!("`{oci}` is not registered with dockerd (run `make setup`)"))
            } else if !missing_images.is_empty() {
                Some(format!("image(s) {} missing (run `make setup`)", missing_images.join(", ")))
            } else {
                None
            };
            health.runtimes.insert(r, reason);
            let args = registered.get(oci).map(Vec::as_slice).unwrap_or_default();
            health.channels.insert(r, self.channel_kind(r, args));
        }
        health
    }

    /// The channel sandboxes of `runtime` get, given the args dockerd passes to its OCI runtime.
    fn channel_kind(&self, runtime: Runtime, oci_args: &[String]) -> ChannelKind {
        if self.config.socket_root.is_none() {
            return ChannelKind::Attach;
        }
        let socket_ok = match runtime {
            Runtime::Docker => true,
            // gVisor refuses to connect to host sockets unless told it may.
            Runtime::Gvisor => oci_args.iter().any(|a| {
                matches!(a.as_str(), "--host-uds=open" | "--host-uds=all" | "--fsgofer-host-uds" | "--fsgofer-host-uds=true")
            }),
        };
        match self.config.channel {
            ChannelPreference::Attach => ChannelKind::Attach,
            ChannelPreference::Socket | ChannelPreference::Auto if socket_ok => ChannelKind::Socket,
            ChannelPreference::Socket => {
                tracing::warn!(%runtime, "socket channel asked for, but runsc lacks --host-uds=open; using attach");
                ChannelKind::Attach
            }
            ChannelPreference::Auto => ChannelKind::Attach,
        }
    }

    fn remove_socket_dir(&self, id: &SandboxId) {
        self.pending.lock().remove(&id.0);
        if let Some(dir) = self.socket_dirs.lock().remove(&id.0) {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove a socket directory");
                }
            }
        }
    }
}

#[async_trait]
impl SandboxBackend for DockerBackend {
    async fn create(&self, spec: &SandboxSpec) -> Result<SandboxId, SandboxError> {
        let mut labels: HashMap<String, String> =
            spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_INSTANCE.into(), self.config.instance.clone());
        labels.insert("fnbox.language".into(), spec.key.language.to_string());
        labels.insert("fnbox.runtime".into(), spec.key.runtime.to_string());
        let memory = i64::from(spec.key.memory_mb) * 1024 * 1024;
        let kind = self.health().await.channels.get(&spec.key.runtime).copied().unwrap_or(ChannelKind::Attach);
        let socket = match (kind, &self.config.socket_root) {
            (ChannelKind::Socket, Some(root)) => match SocketDir::create(root, &uuid::Uuid::now_v7().simple().to_string()) {
                Ok(sd) => Some(sd),
                Err(e) => {
                    tracing::warn!(error = %e, "could not make a socket directory; this sandbox uses attach");
                    None
                }
            },
            _ => None,
        };
        let stdin = socket.is_none();
        let host_config = HostConfig {
            binds: socket.as_ref().map(|sd| vec![sd.bind()]),
            runtime: Some(self.oci_runtime(spec.key.runtime).into()),
            network_mode: Some("none".into()),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(self.config.nano_cpus),
            pids_limit: Some(self.config.pids_limit),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,nosuid,nodev,noexec,size={}m", self.config.tmpfs_mb),
            )])),
            // /dev/shm is the other world-writable place; as small as /tmp.
            shm_size: Some(i64::from(self.config.tmpfs_mb) * 1024 * 1024),
            // Whatever the function writes to fd 2 reaches fnbox through the attach stream (which
            // keeps only a tail); a logging driver would also store all of it on the host's disk.
            log_config: Some(HostConfigLogConfig { typ: Some("none".into()), config: None }),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(match spec.key.deps {
                Some(deps) => deps.image_tag(spec.key.language, &self.config.instance),
                None => self.image(spec.key.language).into(),
            }),
            labels: Some(labels),
            user: Some(self.config.user.clone()),
            env: socket.as_ref().map(|_| vec![format!("{SOCKET_ENV}={SOCKET_MOUNT}/ch.sock")]),
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(stdin),
            stdin_once: Some(false),
            tty: Some(false),
            network_disabled: Some(true),
            // A sandbox holds nothing worth a graceful stop, and the bootstrap is pid 1 (which
            // ignores SIGTERM): without this, dockerd's own shutdown waits 10 s per sandbox.
            stop_signal: Some("SIGKILL".into()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = self.docker.create_container(None::<CreateContainerOptions>, body).await;
        let created = match (created, socket) {
            (Ok(c), Some(sd)) => {
                self.socket_dirs.lock().insert(c.id.clone(), sd.dir.clone());
                self.pending.lock().insert(c.id.clone(), sd);
                Ok(c)
            }
            (Ok(c), None) => Ok(c),
            (Err(e), sd) => {
                if let Some(sd) = sd {
                    let _ = std::fs::remove_dir_all(&sd.dir);
                }
                Err(e)
            }
        };
        let created = created.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { status_code: 404, message } => {
                    SandboxError::Start(format!("{message} (run `make setup` to build the runtime images)"))
                }
                bollard::errors::Error::DockerResponseServerError { message, .. } => SandboxError::Start(message),
                other => unavailable(other),
            })?;
        Ok(SandboxId(created.id))
    }

    async fn start(&self, id: &SandboxId) -> Result<Channel, SandboxError> {
        let socket = self.pending.lock().remove(&id.0);
        let attach = AttachContainerOptions {
            stdin: socket.is_none(),
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            detach_keys: None,
        };
        let attached = self.docker.attach_container(&id.0, Some(attach)).await.map_err(unavailable)?;
        self.docker.start_container(&id.0, None).await.map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => SandboxError::Start(message),
            other => unavailable(other),
        })?;
        let (tx, rx) = mpsc::channel(16);
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let max_line = self.config.max_line_bytes;
        let Some(socket) = socket else {
            tokio::spawn(read_frames(attached.output, Some(tx), stderr_tail.clone(), max_line, None));
            return Ok(Channel { input: attached.input, lines: rx, stderr_tail });
        };
        // Socket: stdio carries only stderr now; a sandbox that dies before it connects ends
        // that stream, which ends the wait.
        let (ended_tx, ended_rx) = oneshot::channel();
        tokio::spawn(read_frames(attached.output, None, stderr_tail.clone(), max_line, Some(ended_tx)));
        let stream = tokio::select! {
            s = socket.accept(self.config.connect_timeout) => s.map_err(SandboxError::Start)?,
            _ = ended_rx => {
                // Let the last stderr bytes arrive for the message.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let tail = String::from_utf8_lossy(&stderr_tail.lock()).trim().to_owned();
                return Err(SandboxError::Start(format!("the sandbox exited before its bootstrap connected; stderr: {tail}")));
            }
        };
        let (read, write) = stream.into_split();
        tokio::spawn(channel::read_lines(read, tx, max_line));
        Ok(Channel { input: Box::pin(write), lines: rx, stderr_tail })
    }

    async fn stop(&self, id: &SandboxId) -> Result<(), SandboxError> {
        let opts = RemoveContainerOptions { force: true, v: true, link: false };
        let result = match self.docker.remove_container(&id.0, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // A removal already under way (e.g. after a kill) is fine too.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        };
        if result.is_ok() {
            self.remove_socket_dir(id);
        }
        result
    }

    async fn exit_info(&self, id: &SandboxId) -> Result<ExitInfo, SandboxError> {
        // On the socket channel the bootstrap's end closes as its process dies, which can be
        // before dockerd has seen the container stop: wait (briefly) for the final state.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let info = self.docker.inspect_container(&id.0, None).await.map_err(unavailable)?;
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) || Instant::now() >= deadline {
                return Ok(ExitInfo { exit_code: state.exit_code, oom_killed: state.oom_killed.unwrap_or(false) });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn memory_probe(&self, id: &SandboxId) -> Option<MemoryProbe> {
        MemoryProbe::find_docker(&id.0)
    }

    fn task_probe(&self, id: &SandboxId, key: &SandboxKey) -> Option<TaskProbe> {
        match key.runtime {
            Runtime::Docker => TaskProbe::find_docker(&id.0),
            Runtime::Gvisor => None,
        }
    }

    fn cpu_probe(&self, id: &SandboxId) -> Option<CpuProbe> {
        CpuProbe::find_docker(&id.0)
    }

    async fn set_memory_limit(&self, id: &SandboxId, memory_mb: u32) -> Result<(), SandboxError> {
        crate::cgroup::set_docker_memory_limit(&id.0, u64::from(memory_mb) * 1024 * 1024)
            .map_err(|e| SandboxError::Unavailable(format!("cannot set the memory limit of sandbox {id}: {e}")))
    }

    async fn memory_usage(&self, id: &SandboxId) -> Result<Option<u64>, SandboxError> {
        let opts = StatsOptions { stream: false, one_shot: true };
        let mut stream = self.docker.stats(&id.0, Some(opts));
        match stream.next().await {
            Some(Ok(stats)) => Ok(stats.memory_stats.and_then(|m| m.usage)),
            Some(Err(e)) => Err(unavailable(e)),
            None => Ok(None),
        }
    }

    async fn remove_all(&self) -> Result<usize, SandboxError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_INSTANCE}={}", self.config.instance)],
        )]);
        let opts = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let containers = self.docker.list_containers(Some(opts)).await.map_err(unavailable)?;
        let ids: Vec<SandboxId> = containers.into_iter().filter_map(|c| c.id.map(SandboxId)).collect();
        let n = ids.len();
        let results = futures_util::future::join_all(ids.iter().map(|id| self.stop(id))).await;
        for (id, r) in ids.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(sandbox = %id, error = %e, "could not remove a leftover sandbox");
            }
        }
        if let Some(root) = &self.config.socket_root {
            // Directories of sandboxes that were never started or whose ids we no longer know.
            self.pending.lock().clear();
            self.socket_dirs.lock().clear();
            if let Err(e) = channel::prepare_socket_root(root) {
                tracing::warn!(root = %root.display(), error = %e, "could not clear the socket directories");
            }
        }
        Ok(n)
    }

    async fn health(&self) -> RuntimeHealth {
        if let Some((at, h)) = self.health.lock().as_ref() {
            if at.elapsed() < HEALTH_TTL {
                return h.clone();
            }
        }
        let h = self.probe_health().await;
        *self.health.lock() = Some((Instant::now(), h.clone()));
        h
    }
}

/// Drains the container's attached output: stdout frames become protocol lines (attach
/// channel only), stderr's tail is kept for diagnostics. `ended` fires when the stream ends.
async fn read_frames(
    mut output: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    tx: Option<mpsc::Sender<Result<Bytes, String>>>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    max_line: usize,
    ended: Option<oneshot::Sender<()>>,
) {
    let mut splitter = LineSplitter::new(max_line);
    let mut lines = Vec::new();
    while let Some(item) = output.next().await {
        match item {
            Ok(LogOutput::StdOut { message }) => {
                let Some(tx) = &tx else { continue };
                let pushed = splitter.push(&message, &mut lines);
                if !channel::forward(tx, &mut lines).await {
                    break;
                }
                if let Err(e) = pushed {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
            Ok(LogOutput::StdErr { message }) => {
                let mut tail = stderr_tail.lock();
                tail.extend_from_slice(&message);
                if tail.len() > STDERR_TAIL {
                    let cut = tail.len() - STDERR_TAIL;
                    tail.drain(..cut);
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Some(tx) = &tx {
                    let _ = tx.send(Err(format!("the sandbox channel broke: {e}"))).await;
                }
                break;
            }
        }
    }
    if let Some(ended) = ended {
        let _ = ended.send(());
    }
}

/// A short, stable id for the fnbox instance that owns `data_dir`.
pub fn instance_id(data_dir: &std::path::Path) -> String {
    // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
    let path = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    let mut h: u64 = 0xcbf29ce484222325;
    for b in path.to_string_lossy().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

