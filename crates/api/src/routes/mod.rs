//! One file per API resource.

mod executions;
mod functions;
mod health;
mod pools;
mod templates;

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/v1/functions", get(functions::list).post(functions::create))
        .route("/api/v1/functions/{name}", get(functions::get).put(functions::update).delete(functions::delete))
        .route("/api/v1/functions/{name}/invoke", post(functions::invoke))
        .route("/api/v1/executions", get(executions::list))
        .route("/api/v1/executions/stream", get(executions::stream))
        .route("/api/v1/executions/{id}", get(executions::get))
        .route("/api/v1/templates", get(templates::list))
        .route("/api/v1/pools", get(pools::stats))
        .route("/", get(crate::ui::index))
        .route("/ui/{*path}", get(crate::ui::file))
        .fallback(|| async { crate::ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
}
