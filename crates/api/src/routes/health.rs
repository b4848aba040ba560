use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

/// Liveness plus which runtimes can run functions right now. 200 when at least one can,
/// 503 when none can (fnbox itself is up either way, and says why).
#[utoipa::path(get, operation_id = "health", path = "/healthz", tag = "system",
    responses((status = 200, description = "At least one runtime can run functions", body = Object),
        (status = 503, description = "No runtime can run functions right now (reasons given)", body = Object)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let h = state.engine.health().await;
    let runtimes: serde_json::Map<String, Value> = h
        .runtimes
        .iter()
        .map(|(r, why)| {
            let channel = h.channels.get(r).map(ToString::to_string);
            let v = match why {
                None => json!({"available": true, "channel": channel}),
                Some(reason) => json!({"available": false, "reason": reason, "channel": channel}),
            };
            (r.to_string(), v)
        })
        .collect();
    let any = h.runtimes.values().any(Option::is_none);
    let status = if any { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if any { "ok" } else { "degraded" },
        "docker": {"reachable": h.backend_reachable, "version": h.backend_version},
        "runtimes": runtimes,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, Json(body))
}
