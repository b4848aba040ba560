use axum::extract::State;
use axum::Json;
use fnbox_engine::PoolStats;

use crate::AppState;

/// What the warm pools hold now: pre-started generic sandboxes per key, warm sandboxes per
/// function version, and how cold starts were served.
#[utoipa::path(get, operation_id = "poolStats", path = "/api/v1/pools", tag = "system", responses((status = 200, description = "OK", body = PoolStats)))]
pub async fn stats(State(state): State<AppState>) -> Json<PoolStats> {
    Json(state.engine.pool_stats())
}
