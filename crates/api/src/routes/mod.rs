//! One file per API resource.

pub(crate) mod cluster;
pub(crate) mod comparisons;
pub(crate) mod executions;
pub(crate) mod functions;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod metrics;
pub(crate) mod pools;
pub(crate) mod queue;
pub(crate) mod schedules;
pub(crate) mod templates;
pub(crate) mod versions;

use axum::routing::{any, delete, get, post, put};
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/v1/functions", get(functions::list).post(functions::create))
        .route("/api/v1/functions/{name}", get(functions::get).put(functions::update).patch(functions::patch).delete(functions::delete))
        .route("/api/v1/functions/{name}/invoke", post(functions::invoke))
        .route("/api/v1/functions/{name}/build", get(functions::build))
        .route("/api/v1/functions/{name}/versions", get(versions::list))
        .route("/api/v1/functions/{name}/versions/{version}", get(versions::get))
        .route("/api/v1/functions/{name}/rollback", post(versions::rollback))
        .route("/api/v1/functions/{name}/test-events", get(versions::list_events))
        .route("/api/v1/functions/{name}/test-events/{event_name}", put(versions::save_event).delete(versions::delete_event))
        .route("/api/v1/executions", get(executions::list))
        .route("/api/v1/executions/stream", get(executions::stream))
        .route("/api/v1/executions/{id}", get(executions::get))
        .route("/api/v1/functions/{name}/schedules", get(schedules::list_of).post(schedules::create))
        .route("/api/v1/schedules", get(schedules::list))
        .route("/api/v1/schedules/{id}", get(schedules::get).patch(schedules::update).delete(schedules::delete))
        .route("/api/v1/queue", get(queue::stats))
        .route("/api/v1/dead-letters", get(queue::list))
        .route("/api/v1/dead-letters/{id}", get(queue::get).delete(queue::discard))
        .route("/api/v1/dead-letters/{id}/retry", post(queue::retry))
        .route("/api/v1/templates", get(templates::list))
        .route("/api/v1/pools", get(pools::stats))
        .route("/api/v1/cluster", get(cluster::view))
        .route("/api/v1/functions/{name}/compare", post(comparisons::compare))
        .route("/api/v1/comparisons", get(comparisons::list))
        .route("/api/v1/comparisons/{id}", get(comparisons::get))
        .route("/api/v1/metrics/summary", get(metrics::summary))
        .route("/api/v1/metrics/timeseries", get(metrics::timeseries))
        .route("/api/v1/errors", get(metrics::errors))
        .route("/metrics", get(metrics::prometheus))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", delete(keys::revoke))
        .route("/fn/{name}", any(crate::function_url::call_root))
        .route("/fn/{name}/", any(crate::function_url::call_root))
        .route("/fn/{name}/{*path}", any(crate::function_url::call_path))
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/api/docs")
                .url("/api/openapi.json", <crate::ApiDoc as utoipa::OpenApi>::openapi()),
        )
        .route("/", get(crate::ui::index))
        .route("/ui/{*path}", get(crate::ui::file))
        .fallback(|| async { crate::ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            crate::ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
}
