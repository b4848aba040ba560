//! fnbox's HTTP edge: JSON REST API over axum. Requests become engine calls; engine errors
//! become HTTP errors in one place ([`error`]). Nothing here knows what a container is.

pub mod auth;
mod compression;
mod error;
mod extract;
mod function_url;
mod openapi;
mod page;
pub mod ratelimit;
mod routes;
mod serve;
mod ui;

use std::time::Duration;

use axum::Router;
use fnbox_engine::Engine;

pub use auth::{Auth, AuthConfig};
pub use ratelimit::AddressLimit;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use openapi::ApiDoc;
pub use serve::{ServeConfig, SHUTDOWN_GRACE};

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    pub auth: Auth,
    /// One permit per open live stream ([`MAX_STREAMS`]).
    pub streams: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Live execution streams open at once; each holds a connection and a subscription.
pub const MAX_STREAMS: usize = 64;

/// Buckets (seconds) for invocation latency: sub-millisecond warm calls to multi-second ones.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// The process-wide Prometheus recorder (installed once; later calls reuse it).
fn prometheus() -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("fnbox_invocation_duration_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (only in odd embeddings): expose an empty one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Request bodies above this are refused with 413 before they are read: the largest useful
/// body is a function (256 KiB of code, escaped) or an event (1 MiB).
fn body_limit(engine: &Engine) -> usize {
    let l = engine.limits();
    (l.max_code_bytes * 2).max(l.max_input_bytes) + 64 * 1024
}

/// Layers, outermost first: tracing; [`error::json_errors`] (any plain-text error becomes the
/// standard JSON body); the key check (before any body is read, so an unauthenticated caller
/// cannot make the server buffer one); the body limit.
/// At most this much of a refused body is read and dropped before the 413 goes out.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;

/// Refuses a request whose declared length is over the limit before it reaches a handler, after
/// reading (and dropping) a bounded amount of what the client is still sending: closing on
/// unread data makes the kernel reset the connection, and the client would see a broken pipe
/// instead of the 413 (the lingering close that web servers do).
async fn refuse_oversized(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(size) = declared.filter(|n| *n > limit as u64) else {
        return next.run(req).await;
    };
    let mut body = req.into_body().into_data_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut drained = 0u64;
    while drained < DRAIN_MAX.min(size) {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => drained += chunk.len() as u64,
            _ => break,
        }
    }
    let message = format!("the request body is {size} bytes; the limit is {limit} bytes");
    ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message).into_response()
}

pub fn router(engine: Engine, auth: Auth) -> Router {
    let limit = body_limit(&engine);
    let streams = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS));
    let state = AppState { engine, prometheus: prometheus(), auth: auth.clone(), streams };
    routes::routes()
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(axum::middleware::from_fn_with_state(limit, refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(auth, auth::require_key))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(compression::layer())
        .layer(TraceLayer::new_for_http())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for up to
/// [`SHUTDOWN_GRACE`]; long-lived streams are cut after that so fnbox can clean up and exit.
/// Connections are limited as [`ServeConfig`] says (header and idle timeouts, a cap).
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    auth: Auth,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    auth.spawn_maintenance();
    // Keys created or revoked on another node: reload now, not at the next poll.
    auth.follow(engine.key_changes());
    let app = router(engine, auth);
    serve::run(listener, app, config, shutdown).await
}
