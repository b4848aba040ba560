use axum::extract::State;
use axum::Json;
use fnbox_engine::PoolStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// This node's pools in full, and in a cluster every node's warm sandboxes as its last
/// heartbeat reported them.
#[derive(Serialize, ToSchema)]
pub struct PoolsView {
    #[serde(flatten)]
    pub local: PoolStats,
    /// Present in a cluster: one entry per node, this one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodePools>>,
}

#[derive(Serialize, ToSchema)]
pub struct NodePools {
    pub node: String,
    pub live: bool,
    pub sandboxes: u32,
    pub memory_committed_mb: u64,
    pub running: u32,
    pub functions: Vec<NodeFunctionPool>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeFunctionPool {
    /// The function's name (its id when this node no longer knows it).
    pub function: String,
    pub version: u32,
    pub idle: u32,
    pub busy: u32,
}

/// What the warm pools hold now: pre-started generic sandboxes per key, warm sandboxes per
/// function version, and how cold starts were served; in a cluster, also per node.
#[utoipa::path(get, operation_id = "poolStats", path = "/api/v1/pools", tag = "system", responses((status = 200, description = "OK", body = PoolsView)))]
pub async fn stats(State(state): State<AppState>) -> Json<PoolsView> {
    let engine = &state.engine;
    let nodes = engine.cluster_nodes().map(|nodes| {
        let names: std::collections::HashMap<uuid::Uuid, String> =
            engine.list_functions().iter().map(|f| (f.id, f.name.clone())).collect();
        nodes
            .into_iter()
            .map(|(n, age)| NodePools {
                live: age < fnbox_engine::LIVE_WINDOW,
                sandboxes: n.room.sandboxes,
                memory_committed_mb: n.room.memory_committed_mb,
                running: n.room.running,
                functions: n
                    .warm
                    .iter()
                    .map(|w| NodeFunctionPool {
                        function: names.get(&w.function).cloned().unwrap_or_else(|| w.function.to_string()),
                        version: w.version,
                        idle: w.idle,
                        busy: w.busy,
                    })
                    .collect(),
                node: n.id,
            })
            .collect()
    });
    Json(PoolsView { local: engine.pool_stats(), nodes })
}
