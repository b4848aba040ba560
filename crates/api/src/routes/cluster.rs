use axum::extract::State;
use axum::Json;
use fnbox_core::Runtime;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// The nodes serving this API.
#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// `single` (one fnbox) or `cluster`.
    pub mode: &'static str,
    /// The node that answered.
    pub node: Option<String>,
    pub nodes: Vec<ClusterNode>,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterNode {
    pub id: String,
    /// Where it serves the API and web UI.
    pub api_url: Option<String>,
    /// Runtimes it can run now.
    pub runtimes: Vec<Runtime>,
    /// Heard from within the last 3 s (calls are routed to it).
    pub live: bool,
    /// Milliseconds since its last heartbeat arrived here.
    pub last_heartbeat_ms: u64,
    pub sandboxes: u32,
    pub max_sandboxes: u32,
    /// Idle warm sandboxes, over all function versions.
    pub idle_sandboxes: u32,
    /// Function versions it holds sandboxes of.
    pub warm_versions: u32,
    /// Invocations running there now.
    pub running: u32,
    pub memory_committed_mb: u64,
    pub memory_budget_mb: u64,
    /// Digests of the dependency images ready there (see docs/DEPENDENCIES.md).
    pub dependency_images: Vec<String>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub software: String,
}

/// The nodes of the cluster with their load and last heartbeat (one entry on a single fnbox).
#[utoipa::path(get, operation_id = "cluster", path = "/api/v1/cluster", tag = "system",
    responses((status = 200, description = "Nodes", body = ClusterView)))]
pub async fn view(State(state): State<AppState>) -> Json<ClusterView> {
    let engine = &state.engine;
    let Some(nodes) = engine.cluster_nodes() else {
        let warm = engine.pools().warm();
        let health = engine.health().await;
        let runtimes = Runtime::ALL.into_iter().filter(|r| health.available(*r).is_ok()).collect();
        let room = engine.pools().room();
        return Json(ClusterView {
            mode: "single",
            node: None,
            nodes: vec![ClusterNode {
                id: "local".into(),
                api_url: None,
                runtimes,
                live: true,
                last_heartbeat_ms: 0,
                sandboxes: room.sandboxes,
                max_sandboxes: room.max_sandboxes,
                idle_sandboxes: warm.iter().map(|w| w.idle).sum(),
                warm_versions: u32::try_from(warm.len()).unwrap_or(u32::MAX),
                running: room.running,
                memory_committed_mb: room.memory_committed_mb,
                memory_budget_mb: room.memory_budget_mb,
                dependency_images: engine.dependency_images(),
                started_at: None,
                software: env!("CARGO_PKG_VERSION").into(),
            }],
        });
    };
    let nodes = nodes
        .into_iter()
        .map(|(n, age)| ClusterNode {
            live: age < fnbox_engine::LIVE_WINDOW,
            last_heartbeat_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            idle_sandboxes: n.warm.iter().map(|w| w.idle).sum(),
            warm_versions: u32::try_from(n.warm.len()).unwrap_or(u32::MAX),
            sandboxes: n.room.sandboxes,
            max_sandboxes: n.room.max_sandboxes,
            running: n.room.running,
            memory_committed_mb: n.room.memory_committed_mb,
            memory_budget_mb: n.room.memory_budget_mb,
            dependency_images: n.images,
            started_at: Some(n.started_at),
            api_url: n.api_url,
            runtimes: n.runtimes,
            software: n.software,
            id: n.id,
        })
        .collect();
    Json(ClusterView { mode: "cluster", node: engine.node_id().map(str::to_owned), nodes })
}
