//! `fnbox`: the server (`fnbox serve`) and its command-line client, in one binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use fnbox_core::{Language, Limits, Role, Runtime};
use fnbox_engine::{Engine, EngineConfig};
use fnbox_sandbox::docker::instance_id;
use fnbox_sandbox::{DockerBackend, DockerConfig, PoolConfig, Pools, SandboxBackend, SandboxKey};
use fnbox_store_sqlite::SyncMode;

mod store;

#[derive(Parser)]
#[command(name = "fnbox", version, about = "Serverless functions in Docker and gVisor sandboxes")]
struct Cli {
    #[command(subcommand)]
    command: Top,
    #[command(flatten)]
    client: fnbox_cli::ClientOpts,
}

#[derive(Subcommand)]
enum Top {
    /// Run the fnbox server (API and web UI).
    Serve(ServeArgs),
    /// Manage API keys directly in a data dir (no server needed; how the first admin key is made).
    #[command(subcommand)]
    Keys(KeysCommand),
    #[command(flatten)]
    Client(fnbox_cli::Command),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FNBOX_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the SQLite database lives (created on first start).
    #[arg(long, env = "FNBOX_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The store: `sqlite` (in the data dir, the default) or a `postgres://` URL (shared by
    /// the nodes of a cluster).
    #[arg(long, env = "FNBOX_STORE")]
    store: Option<String>,
    /// Seconds an idle warm sandbox is kept.
    #[arg(long, default_value_t = 600)]
    keep_alive_secs: u64,
    /// Pre-started generic sandboxes per (language, runtime, memory) in use; 0 disables.
    #[arg(long, default_value_t = 1)]
    prewarm: usize,
    /// Most pre-started sandboxes per (language, runtime, memory) when demand is high.
    #[arg(long, default_value_t = 4)]
    prewarm_max: usize,
    /// Most sandboxes alive at once, over all functions.
    #[arg(long, default_value_t = 64)]
    max_sandboxes: usize,
    /// Most memory (MB, the sum of sandbox limits) committed at once; default: 75% of the host's.
    #[arg(long)]
    memory_budget_mb: Option<u64>,
    /// Invocations that may wait per function when it is at its concurrency limit.
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
    /// fsync every commit (`full`) or rely on WAL for crash safety (`normal`).
    #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
    sync: String,
    /// Docker image for Python sandboxes.
    #[arg(long, env = "FNBOX_PYTHON_IMAGE", default_value = "fnbox-python:latest")]
    python_image: String,
    /// Docker image for JavaScript sandboxes.
    #[arg(long, env = "FNBOX_NODE_IMAGE", default_value = "fnbox-node:latest")]
    node_image: String,
    /// How sandboxes talk to fnbox: `socket` (a Unix socket bind-mounted into each sandbox, off
    /// dockerd's path), `attach` (the container's stdio through dockerd), or `auto` (socket where
    /// the runtime allows it).
    #[arg(long, default_value = "auto", value_parser = ["auto", "socket", "attach"])]
    channel: String,
    /// The name dockerd knows gVisor's OCI runtime by: `runsc` (Debian bookworm's 20221219, ptrace)
    /// or `runsc-20240729` (Debian trixie's, systrap), both registered by `make setup`.
    #[arg(long, env = "FNBOX_GVISOR_RUNTIME", default_value = "runsc")]
    gvisor_runtime: String,
    /// Skip the create-time syntax check.
    #[arg(long)]
    no_syntax_check: bool,
    /// Execution records older than this many days are pruned (0 keeps them forever).
    #[arg(long, default_value_t = 30)]
    retention_days: u32,
    /// At most this many execution records are kept; the oldest go first (0: no limit).
    #[arg(long, default_value_t = 1_000_000)]
    retention_max: u64,
    /// Require an API key on every request even while the store holds none (keys are on
    /// anyway as soon as one non-revoked key exists).
    #[arg(long, env = "FNBOX_REQUIRE_KEYS")]
    require_keys: bool,
    /// Serve without keys on a non-loopback address (anyone who can reach it can do anything).
    #[arg(long)]
    insecure_open: bool,
    /// Requests per second per API key (token bucket, burst of the same size); 0: no limit.
    #[arg(long, default_value_t = 1000)]
    rate_limit_per_key: u32,
    /// Requests per second per client address on function URLs called without a key (`http:
    /// public` functions); 0: no limit. IPv6 clients are counted per /64.
    #[arg(long, default_value_t = 50)]
    http_rate_limit: u32,
    /// The burst those buckets allow (at least 1).
    #[arg(long, default_value_t = 100)]
    http_burst: u32,
    /// Most client connections open at once (lowered to fit the open-files limit). At the cap
    /// a new connection replaces the one idle longest; 503 only when all have a request running.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers (from opening the connection, or from
    /// the previous response on a kept-alive one).
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a connection (HTTP/2 included) may stay open without a request in flight.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Asynchronous attempts this node runs at once (each still waits for its function's
    /// sandboxes and concurrency).
    #[arg(long, env = "FNBOX_ASYNC_WORKERS", default_value_t = 16)]
    async_workers: usize,
    /// Most asynchronous calls the queue holds (waiting, backing off or running); past it
    /// `Prefer: respond-async` answers 503 `async_queue_full`.
    #[arg(long, env = "FNBOX_ASYNC_MAX_DEPTH", default_value_t = 10_000)]
    async_max_depth: u64,
    /// Milliseconds before the first retry of a failed asynchronous attempt; each further
    /// retry waits twice as long, up to --retry-cap-secs.
    #[arg(long, env = "FNBOX_RETRY_BASE_MS", default_value_t = 1000)]
    retry_base_ms: u64,
    #[arg(long, env = "FNBOX_RETRY_CAP_SECS", default_value_t = 300)]
    retry_cap_secs: u64,
    /// Join a cluster: NATS servers (JetStream on), comma-separated, e.g.
    /// `nats://10.0.0.1:4222,nats://10.0.0.2:4222`. Needs a shared `--store postgres://…`.
    #[arg(long, env = "FNBOX_CLUSTER", value_delimiter = ',')]
    cluster: Vec<String>,
    /// This node's name in the cluster (letters, digits, `-`, `_`); default: the host name.
    #[arg(long, env = "FNBOX_NODE_ID")]
    node_id: Option<String>,
    /// The URL other nodes and users reach this node's API at (shown in `fnbox cluster`);
    /// default: http://<--addr>.
    #[arg(long, env = "FNBOX_ADVERTISE")]
    advertise: Option<String>,
    /// Dependency builds that may run at once.
    #[arg(long, env = "FNBOX_MAX_BUILDS", default_value_t = 2)]
    max_builds: usize,
    /// Seconds a dependency build may take (resolve, download, install, image).
    #[arg(long = "build-timeout", env = "FNBOX_BUILD_TIMEOUT", default_value_t = 600)]
    build_timeout_secs: u64,
    /// Disk one build may use (downloads + installed packages), in MB.
    #[arg(long, env = "FNBOX_BUILD_DISK_MB", default_value_t = 2048)]
    build_disk_mb: u64,
    /// Disk all dependency images together may use, in MB.
    #[arg(long, env = "FNBOX_BUILD_CACHE_MB", default_value_t = 20480)]
    build_cache_mb: u64,
    /// Seconds a dependency image no function uses is kept before it is removed.
    #[arg(long, env = "FNBOX_IMAGE_GRACE", default_value_t = 3600)]
    image_grace_secs: u64,
    /// Seconds between looks for unused dependency images.
    #[arg(long, env = "FNBOX_IMAGE_COLLECT_EVERY", default_value_t = 60)]
    image_collect_every_secs: u64,
    /// The Python whose pip resolves dependencies (one that an unprivileged user may run).
    #[arg(long, env = "FNBOX_PIP_PYTHON", default_value = "/usr/bin/python3")]
    pip_python: PathBuf,
    /// npm for JavaScript dependencies (default: the one on PATH).
    #[arg(long, env = "FNBOX_NPM")]
    npm: Option<PathBuf>,
    /// Turn dependency builds off (functions with dependencies are then refused).
    #[arg(long)]
    no_builds: bool,
}

/// File descriptors kept for everything but client connections: sandbox channels, dockerd,
/// SQLite, the Unix sockets.
const RESERVED_FDS: u64 = 512;

/// Raises the soft open-files limit to the hard one (the default soft limit, often 1024, is
/// what a thousand idle connections exhausted) and returns the connection cap that fits in it.
fn connection_cap(wanted: usize) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS).max(64)).unwrap_or(usize::MAX);
    if fit < wanted {
        tracing::warn!(open_files = soft, max_connections = fit, "--max-connections lowered to fit the open-files limit");
    }
    wanted.min(fit).max(1)
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its token (shown this once; only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// admin (everything) or invoke (invoke functions and read).
        #[arg(long, value_parser = ["admin", "invoke"])]
        role: String,
        #[arg(long, env = "FNBOX_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// `sqlite` (the data dir's, the default) or a `postgres://` URL.
        #[arg(long, env = "FNBOX_STORE")]
        store: Option<String>,
    },
    /// List keys (never their tokens).
    List {
        #[arg(long, env = "FNBOX_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// `sqlite` (the data dir's, the default) or a `postgres://` URL.
        #[arg(long, env = "FNBOX_STORE")]
        store: Option<String>,
    },
    /// Revoke a key by id. A running server on the same data dir notices within a few seconds.
    Revoke {
        id: String,
        #[arg(long, env = "FNBOX_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// `sqlite` (the data dir's, the default) or a `postgres://` URL.
        #[arg(long, env = "FNBOX_STORE")]
        store: Option<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        // A clear one-line message and exit code 1, not a backtrace: these are users' errors.
        Top::Serve(args) => exit_on_error(rt.block_on(serve(args))),
        Top::Keys(cmd) => exit_on_error(rt.block_on(keys(cmd, cli.client.json))),
        Top::Client(cmd) => {
            let code = match rt.block_on(fnbox_cli::run(cli.client, cmd)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    1
                }
            };
            std::process::exit(code)
        }
    }
}

/// `fnbox keys ...`: works on the data dir's store directly, with or without a running server.
fn exit_on_error(r: Result<()>) -> Result<()> {
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, json: bool) -> Result<()> {
    let open = |spec: Option<String>, dir: PathBuf| async move {
        store::open_store(spec.as_deref(), &dir, SyncMode::Full, "local").await.map(|s| s.keys)
    };
    match cmd {
        KeysCommand::Create { name, role, data_dir, store } => {
            fnbox_core::keys::validate_key_name(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let store = open(store, data_dir).await?;
            let new = fnbox_core::NewKey::generate(&name, role, chrono::Utc::now())?;
            store.insert_key(&new.stored).await?;
            let k = &new.stored.key;
            if json {
                println!("{}", serde_json::json!({"key": k, "token": new.token}));
            } else {
                // The token alone on stdout (`TOKEN=$(fnbox keys create ...)`), the rest on stderr.
                eprintln!("created {} key `{}` (id {}); the token is shown only now:", k.role, k.name, k.id);
                println!("{}", new.token);
            }
        }
        KeysCommand::List { data_dir, store } => {
            let keys: Vec<_> = open(store, data_dir).await?.list_keys().await?.into_iter().map(|k| k.key).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no API keys (the server is open on loopback, and refuses other addresses)");
            } else {
                println!("{:<36}  {:<7}  {:<8}  {:<25}  {:<25}  name", "id", "role", "state", "created", "last used");
                for k in keys {
                    let t = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|| "-".into())
                    };
                    let state = if k.revoked { "revoked" } else { "active" };
                    println!("{}  {:<7}  {:<8}  {:<25}  {:<25}  {}", k.id, k.role.as_str(), state, t(Some(k.created_at)), t(k.last_used_at), k.name);
                }
            }
        }
        KeysCommand::Revoke { id, data_dir, store } => {
            let uuid = uuid::Uuid::parse_str(&id).map_err(|_| anyhow::anyhow!("`{id}` is not a key id (see `fnbox keys list`)"))?;
            let place = store.clone().unwrap_or_else(|| data_dir.display().to_string());
            if !open(store, data_dir).await?.revoke_key(uuid).await? {
                bail!("no key with id {id} in {place}");
            }
            if !json {
                println!("revoked {id} (a running server notices within {} s)", fnbox_api::auth::POLL_INTERVAL.as_secs());
            }
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=off,bollard=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let sync = if args.sync == "full" { SyncMode::Full } else { SyncMode::Normal };
    // In a cluster the store keys this node's in-flight journal by its id; alone it is `local`.
    let node = if args.cluster.is_empty() { "local".to_owned() } else { node_id(args.node_id.as_deref())? };
    if !args.cluster.is_empty() && !args.store.as_deref().is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        bail!("--cluster needs a store every node shares: pass --store postgres://… (SQLite is one node's file)");
    }
    let opened = store::open_store(args.store.as_deref(), &args.data_dir, sync, &node).await?;
    let (store, key_store) = (opened.store, opened.keys);
    tracing::info!(store = %opened.description, "store ready");

    // Access control is decided before anything else starts, so a refusal is quick and clear.
    // Off loopback (without --insecure-open) keys stay required even if every key is later
    // revoked: the server then locks rather than opens.
    let loopback = args.addr.ip().is_loopback();
    let auth = fnbox_api::Auth::load(
        key_store,
        fnbox_api::AuthConfig {
            require_keys: args.require_keys || (!loopback && !args.insecure_open),
            rate_limit_per_key: args.rate_limit_per_key,
            public_limit: fnbox_api::AddressLimit { rate: args.http_rate_limit, burst: args.http_burst.max(1) },
        },
    )
    .await
    .context("loading API keys")?;
    if auth.active_keys() == 0 {
        if !loopback && !args.insecure_open {
            bail!(
                "refusing to serve {} without API keys: anyone who can reach it could run code. \
                 Create a key first (`fnbox keys create --name admin --role admin --data-dir {}`), \
                 listen on 127.0.0.1, or pass --insecure-open if this really should be open",
                args.addr,
                args.data_dir.display()
            );
        }
        if auth.enabled() {
            tracing::warn!("API keys are required but none exists yet: create one with `fnbox keys create`");
        } else {
            tracing::warn!(
                addr = %args.addr,
                "no API keys: the API is OPEN to anyone who can reach this address (create one with `fnbox keys create` to turn keys on)"
            );
        }
    } else {
        tracing::info!(active_keys = auth.active_keys(), rate_limit_per_key = args.rate_limit_per_key, "API keys required");
    }

    let limits = Limits::default();
    let docker = DockerBackend::connect(DockerConfig {
        python_image: args.python_image.clone(),
        node_image: args.node_image.clone(),
        instance: instance_id(&args.data_dir),
        channel: args.channel.parse().map_err(anyhow::Error::msg)?,
        socket_root: Some(socket_root(&args.data_dir)),
        gvisor_runtime: args.gvisor_runtime.clone(),
        ..DockerConfig::default()
    })
    .await?;
    let backend: Arc<dyn SandboxBackend> = Arc::new(docker);
    match backend.remove_all().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed sandboxes left by a previous run"),
        Err(e) => tracing::warn!(error = %e, "could not clean up old sandboxes"),
    }
    let health = backend.health().await;
    for (runtime, why) in &health.runtimes {
        let channel = health.channels.get(runtime).map(ToString::to_string).unwrap_or_default();
        match why {
            None => tracing::info!(%runtime, %channel, "runtime available"),
            Some(reason) => tracing::warn!(%runtime, %reason, "runtime unavailable"),
        }
    }
    let pools = Pools::new(
        backend,
        PoolConfig {
            keep_alive: Duration::from_secs(args.keep_alive_secs),
            prewarm_per_key: args.prewarm,
            max_queue_per_function: args.max_queue,
            max_output_bytes: limits.max_output_bytes,
            max_log_bytes: limits.max_log_bytes,
            max_prewarm_per_key: args.prewarm_max,
            max_sandboxes: args.max_sandboxes,
            memory_budget_mb: args.memory_budget_mb.unwrap_or_else(default_memory_budget_mb),
            ..PoolConfig::default()
        },
    );
    if args.prewarm > 0 {
        let keys: Vec<SandboxKey> = Runtime::ALL
            .into_iter()
            .filter(|r| health.available(*r).is_ok())
            .flat_map(|runtime| {
                Language::ALL.into_iter().map(move |language| SandboxKey { language, runtime, memory_mb: limits.default_memory_mb, deps: None })
            })
            .collect();
        pools.prewarm(&keys, args.prewarm);
    }
    // Every second: besides keep-alive and refills, this is how soon an idle sandbox that burns
    // CPU (work its function left running) is found and destroyed.
    pools.spawn_maintenance(Duration::from_secs(1));
    let builder = if args.no_builds {
        None
    } else {
        let mut c = fnbox_engine::BuilderConfig::new(args.data_dir.join("builds"));
        c.max_builds = args.max_builds.max(1);
        c.timeout = Duration::from_secs(args.build_timeout_secs.max(1));
        c.max_build_bytes = args.build_disk_mb << 20;
        c.max_cache_bytes = args.build_cache_mb << 20;
        c.gc_grace = Duration::from_secs(args.image_grace_secs);
        c.python_image = args.python_image.clone();
        c.node_image = args.node_image.clone();
        c.pip_python = args.pip_python.clone();
        c.instance = instance_id(&args.data_dir);
        if let Some(npm) = &args.npm {
            c.npm = npm.clone();
        }
        Some(fnbox_engine::Builder::new(c).map_err(|e| anyhow::anyhow!("dependency builder: {e}"))?)
    };
    let engine = Engine::new(
        store,
        pools.clone(),
        EngineConfig {
            limits,
            check_syntax: !args.no_syntax_check,
            builder,
            image_collection_every: Duration::from_secs(args.image_collect_every_secs.max(1)),
            queue: fnbox_engine::QueueConfig {
                workers: args.async_workers.max(1),
                max_depth: args.async_max_depth.max(1),
                retry_base: Duration::from_millis(args.retry_base_ms.max(1)),
                retry_cap: Duration::from_secs(args.retry_cap_secs.max(1)),
                ..fnbox_engine::QueueConfig::default()
            },
        },
    )
    .await?;

    if !args.cluster.is_empty() {
        let cluster = fnbox_cluster_nats::NatsCluster::connect(&args.cluster, &node)
            .await
            .context("joining the cluster")?;
        let advertise = args.advertise.clone().unwrap_or_else(|| format!("http://{}", args.addr));
        engine.join_cluster(Arc::new(cluster), Some(advertise)).await.context("joining the cluster")?;
        tracing::info!(node = %node, nats = %args.cluster.join(","), "cluster node ready");
    }

    // After joining: a cluster node leases under its node id, and its previous run's leases
    // are dropped first (that process is gone).
    engine.start_queue().await.context("starting the asynchronous queue")?;
    spawn_retention(engine.clone(), args.retention_days, args.retention_max);

    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    tracing::info!("fnbox listening on http://{}", listener.local_addr()?);
    let serve_config = fnbox_api::ServeConfig {
        max_connections: connection_cap(args.max_connections),
        header_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
    };
    tracing::info!(max_connections = serve_config.max_connections, "connections limited");
    fnbox_api::serve(listener, engine.clone(), auth, serve_config, shutdown_signal()).await?;
    engine.leave_cluster().await;
    tracing::info!("shutting down: removing sandboxes");
    match pools.shutdown().await {
        Ok(n) => tracing::info!(removed = n, "sandboxes removed"),
        Err(e) => tracing::warn!(error = %e, "could not remove all sandboxes"),
    }
    Ok(())
}

/// The node id from `--node-id`, else the host name (checked: it goes into NATS subjects).
fn node_id(flag: Option<&str>) -> Result<String> {
    let id = match flag {
        Some(id) => id.to_owned(),
        None => std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default(),
    };
    fnbox_cluster::valid_node_id(&id).map_err(|e| anyhow::anyhow!("--node-id: {e}"))?;
    Ok(id)
}

/// Three quarters of the host's memory, leaving room for fnbox, dockerd and the rest.
fn default_memory_budget_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or(8192, |kb| kb / 1024 * 3 / 4)
}

/// Per-sandbox socket directories: under /run (a tmpfs, short paths) when we may write there,
/// else in the data dir. One folder per fnbox instance.
fn socket_root(data_dir: &std::path::Path) -> PathBuf {
    let instance = instance_id(data_dir);
    let run = PathBuf::from("/run/fnbox");
    if std::fs::create_dir_all(&run).is_ok() {
        return run.join(&instance[..12]);
    }
    data_dir.join("sockets")
}

/// Prunes old execution records now and every ten minutes.
fn spawn_retention(engine: Engine, days: u32, max: u64) {
    let age = (days > 0).then(|| chrono::Duration::days(i64::from(days)));
    let max = (max > 0).then_some(max);
    if age.is_none() && max.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match engine.prune(age, max).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned old execution records"),
                Err(e) => tracing::warn!(error = %e, "pruning execution records failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
