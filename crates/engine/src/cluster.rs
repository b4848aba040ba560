//! The engine in a cluster: where a call runs, what this node does for the others, and how
//! the functions it caches follow changes made on other nodes.
//!
//! Consistency (docs/CLUSTER.md): the store is the truth. Each node caches functions; a node
//! that writes one announces it and the others read it again (within milliseconds), every
//! node also re-reads all of them every [`RESYNC`] (a lost notice heals), and a call for a
//! function a node does not know yet reads it from the store first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use fnbox_cluster::{
    Change, Cluster, ForwardError, InvokeRequest, NodeHandler, NodeInfo, NodeRoom, Placement, RemoteError, RemoteErrorCode,
    Rendezvous, Target, WarmEntry, Wanted, PROTOCOL_VERSION,
};
use fnbox_core::{Execution, Function, Runtime, Trigger};
use serde_json::value::RawValue;

use crate::builds::runnable_version;
use crate::{Engine, EngineError};

/// How often every node re-reads every function from the store.
pub const RESYNC: Duration = Duration::from_secs(5);

/// Nodes a call is offered to before it runs here: the chosen one and one more.
const MAX_FORWARDS: usize = 2;

/// A forwarded call may cold-start (up to the timeout) and then run (up to the timeout) on the
/// other node; past twice the timeout and this margin it is given up. A node that dies is given
/// up much sooner: when its heartbeats stop.
const FORWARD_MARGIN: Duration = Duration::from_secs(5);

/// What the engine keeps of the cluster it joined.
pub(crate) struct Membership {
    pub cluster: Arc<dyn Cluster>,
    pub placement: Box<dyn Placement>,
    pub api_url: Option<String>,
    pub started_at: chrono::DateTime<Utc>,
    pub runtimes: parking_lot::RwLock<Vec<Runtime>>,
}

impl Engine {
    /// Joins a cluster: this node starts taking forwarded calls and change notices,
    /// heartbeats, and from now on routes calls by [`Rendezvous`] placement.
    pub async fn join_cluster(&self, cluster: Arc<dyn Cluster>, api_url: Option<String>) -> Result<(), EngineError> {
        let health = self.health().await;
        let runtimes = Runtime::ALL.into_iter().filter(|r| health.available(*r).is_ok()).collect();
        let membership = Membership {
            placement: Box::new(Rendezvous::new(cluster.view())),
            cluster: cluster.clone(),
            api_url,
            started_at: Utc::now(),
            runtimes: parking_lot::RwLock::new(runtimes),
        };
        if self.inner.cluster.set(membership).is_err() {
            return Err(EngineError::Unavailable("this node already joined a cluster".into()));
        }
        cluster
            .start(Arc::new(ThisNode(self.clone())))
            .await
            .map_err(|e| EngineError::Unavailable(format!("cannot join the cluster: {e}")))?;
        // Builds this node started before a restart (known now that it has its name).
        self.resume_builds();
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RESYNC);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                engine.resync().await;
            }
        });
        Ok(())
    }

    /// Leaves the cluster at shutdown (other nodes stop routing here at once).
    pub async fn leave_cluster(&self) {
        if let Some(m) = self.inner.cluster.get() {
            m.cluster.leave().await;
        }
    }

    /// This node's id in a cluster.
    pub fn node_id(&self) -> Option<&str> {
        self.inner.cluster.get().map(|m| m.cluster.node_id())
    }

    /// Every node this one knows of with its last heartbeat and how old it is; `None` on a
    /// single fnbox.
    pub fn cluster_nodes(&self) -> Option<Vec<(NodeInfo, Duration)>> {
        let m = self.inner.cluster.get()?;
        let mut nodes = m.cluster.nodes();
        // This node as of now (its own heartbeat may be a second old).
        nodes.retain(|(n, _)| n.id != m.cluster.node_id());
        nodes.push((self.heartbeat_info(m), Duration::ZERO));
        nodes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Some(nodes)
    }

    pub(crate) fn announce(&self, change: Change) {
        if let Some(m) = self.inner.cluster.get() {
            m.cluster.announce(change);
        }
    }

    pub(crate) fn announce_function(&self, f: &Function) {
        self.announce(Change::Function { v: PROTOCOL_VERSION, name: f.name.clone(), id: Some(f.id) });
    }

    /// API keys were created or revoked on this node: tells the others to reload theirs.
    pub fn keys_changed(&self) {
        self.announce(Change::Keys { v: PROTOCOL_VERSION });
    }

    /// Fires when another node changed the API keys.
    pub fn key_changes(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.inner.key_changes.subscribe()
    }

    pub(crate) fn publish_execution(&self, e: &Execution) {
        if let Some(m) = self.inner.cluster.get() {
            m.cluster.publish_execution(e);
        }
    }

    /// The function by name: cached, or (in a cluster, where another node may just have
    /// created it) read from the store.
    pub async fn find_function(&self, name: &str) -> Result<Arc<Function>, EngineError> {
        self.resolve_function(name).await
    }

    pub(crate) async fn resolve_function(&self, name: &str) -> Result<Arc<Function>, EngineError> {
        match self.get_function(name) {
            Ok(f) => Ok(f),
            Err(e) if self.inner.cluster.get().is_none() => Err(e),
            Err(e) => self.refresh_function(name).await?.ok_or(e),
        }
    }

    /// Reads one function from the store and brings the cache (and the pools) in line.
    pub(crate) async fn refresh_function(&self, name: &str) -> Result<Option<Arc<Function>>, EngineError> {
        let stored = self.store().get_function(name).await?;
        Ok(self.apply_stored(name, stored, None))
    }

    /// Re-reads every function (heals lost notices and writes made behind fnbox's back).
    async fn resync(&self) {
        let started = Utc::now();
        match self.store().list_functions().await {
            Ok(all) => {
                let mut stored: std::collections::HashMap<String, Function> =
                    all.into_iter().map(|f| (f.name.clone(), f)).collect();
                let names: Vec<String> = self.inner.functions.read().keys().cloned().collect();
                for name in names {
                    let f = stored.remove(&name);
                    self.apply_stored(&name, f, Some(started));
                }
                for (name, f) in stored {
                    self.apply_stored(&name, Some(f), Some(started));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot re-read functions"),
        }
        self.adopt_lost_builds();
        if let Some(m) = self.inner.cluster.get() {
            let health = self.health().await;
            *m.runtimes.write() = Runtime::ALL.into_iter().filter(|r| health.available(*r).is_ok()).collect();
        }
    }

    /// Puts what the store says about `name` in the cache, newest wins: a read older than
    /// what is cached (a notice overtaken by a later write) changes nothing. `listed_at`: the
    /// read was a full listing started then, so a function missing from it is deleted only if
    /// it was cached before that.
    fn apply_stored(
        &self,
        name: &str,
        stored: Option<Function>,
        listed_at: Option<chrono::DateTime<Utc>>,
    ) -> Option<Arc<Function>> {
        enum Then {
            Nothing,
            Retire(uuid::Uuid, u32),
            Resize(Arc<Function>),
        }
        let (now, then) = {
            let mut cache = self.inner.functions.write();
            let cached = cache.get(name).cloned();
            match (cached, stored) {
                (None, None) => (None, Then::Nothing),
                (Some(old), None) => {
                    if listed_at.is_some_and(|t| old.updated_at >= t) {
                        (Some(old), Then::Nothing)
                    } else {
                        cache.remove(name);
                        (None, Then::Retire(old.id, u32::MAX))
                    }
                }
                (None, Some(new)) => {
                    let new = Arc::new(new);
                    cache.insert(name.to_owned(), new.clone());
                    (Some(new), Then::Nothing)
                }
                (Some(old), Some(new)) => {
                    if new.id != old.id {
                        if new.created_at >= old.created_at {
                            let new = Arc::new(new);
                            cache.insert(name.to_owned(), new.clone());
                            (Some(new), Then::Retire(old.id, u32::MAX))
                        } else {
                            (Some(old), Then::Nothing)
                        }
                    } else if new.version > old.version {
                        let new = Arc::new(new);
                        cache.insert(name.to_owned(), new.clone());
                        // While the new version builds, the one serving meanwhile stays.
                        let version = runnable_version(&new);
                        (Some(new), Then::Retire(old.id, version))
                    } else if new.version == old.version && new.updated_at > old.updated_at {
                        let resize = new.concurrency != old.concurrency;
                        let (was, now) = (runnable_version(&old), runnable_version(&new));
                        let new = Arc::new(new);
                        cache.insert(name.to_owned(), new.clone());
                        let then = if now > was {
                            // Its build became ready: the version that served meanwhile goes.
                            Then::Retire(new.id, now)
                        } else if resize {
                            Then::Resize(new.clone())
                        } else {
                            Then::Nothing
                        };
                        (Some(new), then)
                    } else {
                        (Some(old), Then::Nothing)
                    }
                }
            }
        };
        match then {
            Then::Nothing => {}
            Then::Retire(id, u32::MAX) => self.retire_function(id),
            Then::Retire(id, below) => self.pools().retire(id, below),
            Then::Resize(f) => self.pools().set_concurrency(&f),
        }
        now
    }

    /// Runs a call where placement says: here, or forwarded to another node (which records it).
    pub(crate) async fn route(&self, f: Arc<Function>, event: Box<RawValue>, trigger: Trigger) -> Result<Execution, EngineError> {
        let Some(m) = self.inner.cluster.get() else {
            return self.invoke_as(f, event, trigger).await;
        };
        let wanted = Wanted { function: f.id, version: f.version, runtime: f.runtime, memory_mb: f.memory_mb };
        let mut exclude: Vec<String> = Vec::new();
        for _ in 0..MAX_FORWARDS {
            let local_idle = self.pools().has_idle(f.id, f.version);
            let Target::Node(node) = m.placement.place(&wanted, local_idle, &exclude) else { break };
            let request = InvokeRequest {
                v: PROTOCOL_VERSION,
                function: f.name.clone(),
                version: f.version,
                event: event.clone(),
                trigger,
                origin: m.cluster.node_id().to_owned(),
            };
            let timeout = self.forward_timeout(m, &f, &node);
            match m.cluster.forward(&node, request, timeout).await {
                Ok(e) => return Ok(e),
                // It never got the call (gone, no room, the bus is down here): another may take it.
                Err(ForwardError::Gone(_)) => {
                    tracing::info!(function = %f.name, %node, "cluster: node gone; placing the call again");
                    exclude.push(node);
                }
                Err(ForwardError::Remote(e)) if e.code == RemoteErrorCode::NoRoom || e.code == RemoteErrorCode::Version => {
                    tracing::info!(function = %f.name, %node, reason = %e.message, "cluster: node declined; placing the call again");
                    exclude.push(node);
                }
                Err(ForwardError::Transport(reason)) => {
                    tracing::warn!(function = %f.name, %node, %reason, "cluster: cannot forward; running here");
                    break;
                }
                Err(ForwardError::Remote(e)) => return Err(from_remote(&f.name, e)),
                // It may have run there: never run it twice.
                Err(e @ ForwardError::NoAnswer { .. }) => {
                    return Err(EngineError::NodeLost(format!(
                        "{e}; the call may or may not have run there (see GET /api/v1/executions)"
                    )))
                }
            }
        }
        self.invoke_as(f, event, trigger).await
    }

    /// How long a call forwarded to `node` may take: a cold start and the run, plus, when the
    /// node has not announced the function's dependency image, the build of it from the lock.
    fn forward_timeout(&self, m: &Membership, f: &Function, node: &str) -> Duration {
        let call = Duration::from_millis(2 * u64::from(f.timeout_ms)) + FORWARD_MARGIN;
        let Some(digest) = f.build.as_ref().and_then(|b| b.image.as_deref()) else { return call };
        let has_image = m.cluster.view().live().iter().any(|n| n.info.id == node && n.info.images.iter().any(|i| i == digest));
        match self.inner.config.builder.as_ref() {
            Some(b) if !has_image => call + b.config().timeout,
            _ => call,
        }
    }

    fn heartbeat_info(&self, m: &Membership) -> NodeInfo {
        let room = self.pools().room();
        NodeInfo {
            v: PROTOCOL_VERSION,
            id: m.cluster.node_id().to_owned(),
            api_url: m.api_url.clone(),
            runtimes: m.runtimes.read().clone(),
            room: NodeRoom {
                sandboxes: room.sandboxes,
                max_sandboxes: room.max_sandboxes,
                memory_committed_mb: room.memory_committed_mb,
                memory_budget_mb: room.memory_budget_mb,
                running: room.running,
            },
            warm: self
                .pools()
                .warm()
                .into_iter()
                .map(|w| WarmEntry { function: w.function, version: w.version, idle: w.idle, busy: w.busy })
                .collect(),
            images: self.dependency_images(),
            started_at: m.started_at,
            sent_at: Utc::now(),
            software: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

fn from_remote(function: &str, e: RemoteError) -> EngineError {
    match e.code {
        RemoteErrorCode::BuildPending => EngineError::BuildPending(function.to_owned()),
        RemoteErrorCode::BuildFailed => EngineError::BuildFailed { name: function.to_owned(), message: e.message },
        RemoteErrorCode::FunctionNotFound => EngineError::FunctionNotFound(e.message),
        RemoteErrorCode::QueueFull => EngineError::QueueFull(e.message),
        RemoteErrorCode::InputTooLarge => EngineError::Unavailable(e.message),
        RemoteErrorCode::Store => EngineError::Store(fnbox_core::StoreError::Unavailable(e.message)),
        _ => EngineError::NodeLost(e.message),
    }
}

fn to_remote(e: EngineError) -> RemoteError {
    let code = match &e {
        EngineError::FunctionNotFound(_) => RemoteErrorCode::FunctionNotFound,
        EngineError::QueueFull(_) => RemoteErrorCode::QueueFull,
        EngineError::InputTooLarge { .. } => RemoteErrorCode::InputTooLarge,
        // No sandbox here (no room, runtime or dockerd down): another node may have one.
        EngineError::Unavailable(_) => RemoteErrorCode::NoRoom,
        EngineError::Store(_) => RemoteErrorCode::Store,
        EngineError::BuildPending(_) => RemoteErrorCode::BuildPending,
        EngineError::BuildFailed { .. } => RemoteErrorCode::BuildFailed,
        _ => RemoteErrorCode::Unavailable,
    };
    // The function's name is what the caller's error message names, as on a single node.
    let message = match &e {
        EngineError::FunctionNotFound(name) | EngineError::QueueFull(name) | EngineError::BuildPending(name) => name.clone(),
        EngineError::BuildFailed { message, .. } => message.clone(),
        other => other.to_string(),
    };
    RemoteError { code, message }
}

/// This node as the other nodes see it.
struct ThisNode(Engine);

#[async_trait]
impl NodeHandler for ThisNode {
    async fn invoke_here(&self, request: InvokeRequest) -> Result<Execution, RemoteError> {
        let engine = &self.0;
        let mut f = engine.resolve_function(&request.function).await.map_err(to_remote)?;
        if runnable_version(&f) < request.version {
            // The sender knows a newer version than this node's cache: read it now.
            f = engine
                .refresh_function(&request.function)
                .await
                .map_err(to_remote)?
                .ok_or_else(|| to_remote(EngineError::FunctionNotFound(request.function.clone())))?;
        }
        let limit = engine.limits().max_input_bytes;
        if request.event.get().len() > limit {
            return Err(to_remote(EngineError::InputTooLarge { size: request.event.get().len(), limit }));
        }
        engine.store().available().map_err(|e| to_remote(e.into()))?;
        let f = engine.runnable_now(f).await.map_err(to_remote)?;
        engine.invoke_as(f, request.event, request.trigger).await.map_err(to_remote)
    }

    async fn changed(&self, change: Change) {
        match change {
            Change::Function { name, .. } => match self.0.refresh_function(&name).await {
                // A ready build made on another node: its image is made here from the lock.
                Ok(Some(f)) => self.0.prefetch(&f),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(function = %name, error = %e, "cluster: cannot read a changed function; the next re-read will");
                }
            },
            Change::Keys { .. } => {
                let _ = self.0.inner.key_changes.send(());
            }
        }
    }

    fn remote_execution(&self, execution: Execution) {
        self.0.stream(Arc::new(execution));
    }

    fn heartbeat(&self) -> NodeInfo {
        match self.0.inner.cluster.get() {
            Some(m) => self.0.heartbeat_info(m),
            None => unreachable_info(),
        }
    }
}

/// Only reachable if the transport calls before `join_cluster` stored the membership, which
/// it cannot (start is called after): an empty heartbeat rather than a panic.
fn unreachable_info() -> NodeInfo {
    NodeInfo {
        v: PROTOCOL_VERSION,
        id: String::new(),
        api_url: None,
        runtimes: Vec::new(),
        room: NodeRoom::default(),
        warm: Vec::new(),
        images: Vec::new(),
        started_at: Utc::now(),
        sent_at: Utc::now(),
        software: env!("CARGO_PKG_VERSION").to_owned(),
    }
}
