//! fnbox's HTTP edge: JSON REST API over axum. Requests become engine calls; engine errors
//! become HTTP errors in one place ([`error`]). Nothing here knows what a container is.

mod error;
mod extract;
mod routes;
mod ui;

use std::time::Duration;

use axum::Router;
use fnbox_engine::Engine;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
}

/// Request bodies above this are refused with 413 before they are read: the largest useful
/// body is a function (256 KiB of code, escaped) or an event (1 MiB).
fn body_limit(engine: &Engine) -> usize {
    let l = engine.limits();
    (l.max_code_bytes * 2).max(l.max_input_bytes) + 64 * 1024
}

pub fn router(engine: Engine) -> Router {
    let limit = body_limit(&engine);
    let state = AppState { engine };
    routes::routes()
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TraceLayer::new_for_http())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish (up to 30 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Engine,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(engine);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    tokio::select! {
        r = server => r,
        // Only reached if graceful shutdown hangs; long-polls must not hold the process forever.
        _ = async { std::future::pending::<()>().await; tokio::time::sleep(Duration::from_secs(30)).await } => Ok(()),
    }
}
