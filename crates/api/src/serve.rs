//! The accept loop: hyper's HTTP/1 and HTTP/2 server with timeouts and a connection cap.
//!
//! * A request's headers must arrive within the header timeout of the server starting to wait
//!   for them (when the connection opens, or when the previous response ends): a client sending
//!   headers a byte a second is cut, and an idle HTTP/1 keep-alive connection is closed then.
//! * Any connection (HTTP/2 included) with no request in flight for the idle timeout is closed.
//! * At most `max_connections` are open. At the cap, a new connection takes the place of the
//!   connection idle the longest (no request in flight: opened and silent, or kept alive after
//!   an answer), which is closed; so idle connections, however many, cannot lock out a client
//!   that sends a request (`/healthz`, a keyed call). Only when every connection has a request
//!   in flight is a new one answered `503` and closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::time::Instant;
use tower::ServiceExt;

/// How connections are limited.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How long open connections (a browser's event stream, a slow client) may hold up shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// One open connection, as the accept loop sees it.
struct Conn {
    in_flight: AtomicUsize,
    /// Milliseconds since the registry's start when it last became idle.
    idle_since_ms: AtomicU64,
    /// Asked to close (evicted or shutting down); no longer counted against the cap.
    closing: AtomicBool,
    close: tokio::sync::Notify,
}

#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    start: OnceLock<Instant>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        let start = *self.start.get_or_init(Instant::now);
        start.elapsed().as_millis() as u64
    }

    /// Admits a connection, closing the longest-idle one when at the cap; `None` when every
    /// connection is busy.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Conn>)> {
        let now = self.now_ms();
        let mut conns = self.conns.lock();
        let open = conns.values().filter(|c| !c.closing.load(Ordering::Relaxed)).count();
        if open >= max {
            let victim = conns
                .values()
                .filter(|c| !c.closing.load(Ordering::Relaxed) && c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed))?;
            victim.closing.store(true, Ordering::Relaxed);
            victim.close.notify_one();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now),
            closing: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    fn close_all(&self) {
        for c in self.conns.lock().values() {
            c.closing.store(true, Ordering::Relaxed);
            c.close.notify_one();
        }
    }

    fn is_empty(&self) -> bool {
        self.conns.lock().is_empty()
    }
}

/// Marks a request in flight on its connection until its response body is gone.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn new(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { conn, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.idle_since_ms.store(self.registry.now_ms(), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a connection beyond the cap is told before it is closed.
fn refusal() -> &'static [u8] {
    static REFUSAL: OnceLock<Vec<u8>> = OnceLock::new();
    REFUSAL.get_or_init(|| {
        let body = r#"{"error":{"code":"too_many_connections","message":"every connection this server keeps is busy; try again shortly"}}"#;
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

/// Accept errors that concern one connection (it went away before it was accepted), not the
/// listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to [`SHUTDOWN_GRACE`]; long-lived streams are cut after that.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    registry.now_ms();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "accepting a connection failed; retrying");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some((id, conn)) = registry.admit(config.max_connections) else {
            // Best effort, never waiting: one write to the socket's empty buffer, then close.
            let _ = stream.try_write(refusal());
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, peer, id, conn, registry.clone(), builder.clone(), app.clone(), config.idle_timeout));
    }
    drop(listener);
    registry.close_all();
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !registry.is_empty() {
        if Instant::now() >= deadline {
            tracing::warn!("connections still open {} s after the shutdown signal; closing them", SHUTDOWN_GRACE.as_secs());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `peer` goes into each request's extensions as `ConnectInfo` (public function URLs are
/// rate-limited by it).
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    builder: Arc<hyper_util::server::conn::auto::Builder<TokioExecutor>>,
    app: Router,
    idle_timeout: Duration,
) {
    let service = {
        let (conn, registry) = (conn.clone(), registry.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let guard = InFlight::new(conn.clone(), registry.clone());
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                // The request stays in flight until its body is sent (an event stream for hours).
                Ok::<_, Infallible>(resp.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _ = &guard;
                        frame
                    }))
                }))
            }
        })
    };
    let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(served);
    let mut closing = false;
    loop {
        let idle_for = Duration::from_millis(registry.now_ms().saturating_sub(conn.idle_since_ms.load(Ordering::Relaxed)));
        let wait = if conn.in_flight.load(Ordering::Acquire) > 0 { idle_timeout } else { idle_timeout.saturating_sub(idle_for) };
        let check_at = Instant::now() + wait.max(Duration::from_millis(10));
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = conn.close.notified(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(check_at), if !closing => {
                let idle_for = registry.now_ms().saturating_sub(conn.idle_since_ms.load(Ordering::Relaxed));
                if conn.in_flight.load(Ordering::Acquire) == 0 && Duration::from_millis(idle_for) >= idle_timeout {
                    conn.closing.store(true, Ordering::Relaxed);
                    served.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    registry.remove(id);
}
