//! Access control: API keys with roles, and a token-bucket rate limit per key.
//!
//! Keys are ON when the store holds at least one non-revoked key, or when the server was told
//! to require them. Then every request but `/healthz` and the web UI's static shell needs
//! `Authorization: Bearer <token>`; the execution stream also takes `?access_token=` because a
//! browser's `EventSource` cannot set headers.
//!
//! The hot path costs one SHA-256 of the presented token, one hash-map lookup under a read lock
//! and one short mutex for the key's bucket: no database access. The key ring is rebuilt from
//! the store when this server changes a key, and when the store's key version changes (polled
//! every [`POLL_INTERVAL`], so `fnbox keys` run against the data dir takes effect in seconds).
//! `last_used_at` is kept in memory and written in one batch at most every [`TOUCH_INTERVAL`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fnbox_core::keys::{hash_token, validate_key_name};
use fnbox_core::{ApiKey, KeyStore, NewKey, Role, StoreError};
use parking_lot::{Mutex, RwLock};

use crate::ratelimit::{AddressLimiter, Bucket};
use uuid::Uuid;

/// How often the store's key version is checked for changes made by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often `last_used_at` is written back (only for keys used since the last write).
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// The one route that also accepts the token as `?access_token=` (EventSource sets no headers).
pub const STREAM_PATH: &str = "/api/v1/executions/stream";

#[derive(Debug, Clone, Copy)]
pub struct AuthConfig {
    /// Keys are required even when the store holds none (then nothing but `/healthz` and the UI
    /// shell answers until a key is created with `fnbox keys create`).
    pub require_keys: bool,
    /// Requests per second per key, with a burst of the same size; 0 disables the limit.
    pub rate_limit_per_key: u32,
    /// Requests per second and burst per client address on public function URLs.
    pub public_limit: crate::ratelimit::AddressLimit,
}

/// Why a request was turned away. Mapped to HTTP in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("an API key is required: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the API key is not valid (unknown or revoked)")]
    Invalid,
    #[error("this API key has role `{0}`, which may not do this (it needs role admin)")]
    Forbidden(Role),
    #[error("rate limit of {0} requests per second for this API key exceeded")]
    RateLimited(u32),
    #[error("rate limit of {0} requests per second for this client address exceeded")]
    AddressRateLimited(u32),
}

/// Failures of key management (the `/api/v1/keys` routes and the CLI).
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("name: {0}")]
    InvalidName(String),
    #[error("API key `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    Generate(#[from] fnbox_core::keys::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who made a request; put in the request's extensions when keys are on.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Uuid,
    pub role: Role,
}

struct Entry {
    id: Uuid,
    role: Role,
    bucket: Mutex<Bucket>,
    /// Unix seconds of the last use seen by this server (0: none).
    last_used: AtomicI64,
    /// What was last written to the store.
    persisted: AtomicI64,
}

#[derive(Default)]
struct Ring {
    by_hash: HashMap<String, Arc<Entry>>,
}

struct Inner {
    store: Arc<dyn KeyStore>,
    config: AuthConfig,
    ring: RwLock<Ring>,
    /// Non-revoked keys exist (or keys are required): checked on every request.
    enabled: AtomicBool,
    seen_version: AtomicI64,
    reloading: tokio::sync::Mutex<()>,
    /// Buckets per client address for public function URLs.
    addresses: AddressLimiter,
}

/// The server's key ring. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl Auth {
    /// Loads the keys from the store.
    pub async fn load(store: Arc<dyn KeyStore>, config: AuthConfig) -> Result<Auth, StoreError> {
        let auth = Auth {
            inner: Arc::new(Inner {
                store,
                config,
                ring: RwLock::new(Ring::default()),
                enabled: AtomicBool::new(config.require_keys),
                seen_version: AtomicI64::new(-1),
                reloading: tokio::sync::Mutex::new(()),
                addresses: AddressLimiter::new(config.public_limit),
            }),
        };
        auth.reload().await?;
        Ok(auth)
    }

    /// True when requests need a key.
    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Non-revoked keys in the ring.
    pub fn active_keys(&self) -> usize {
        self.inner.ring.read().by_hash.len()
    }

    /// Rebuilds the ring from the store; buckets and last-use times of kept keys carry over.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        // Read the version first: a change landing between the two reads is seen next poll.
        let version = self.inner.store.keys_version().await?;
        let keys = self.inner.store.list_keys().await?;
        let rate = self.inner.config.rate_limit_per_key;
        let mut ring = Ring::default();
        {
            let old = self.inner.ring.read();
            let old_by_id: HashMap<Uuid, &Arc<Entry>> = old.by_hash.values().map(|e| (e.id, e)).collect();
            for k in keys.into_iter().filter(|k| !k.key.revoked) {
                let entry = match old_by_id.get(&k.key.id) {
                    Some(e) => Arc::clone(e),
                    None => {
                        let used = k.key.last_used_at.map(|t| t.timestamp()).unwrap_or(0);
                        Arc::new(Entry {
                            id: k.key.id,
                            role: k.key.role,
                            bucket: Mutex::new(Bucket::full(rate, Instant::now())),
                            last_used: AtomicI64::new(used),
                            persisted: AtomicI64::new(used),
                        })
                    }
                };
                ring.by_hash.insert(k.token_hash, entry);
            }
        }
        let active = ring.by_hash.len();
        *self.inner.ring.write() = ring;
        self.inner.enabled.store(self.inner.config.require_keys || active > 0, Ordering::Relaxed);
        let before = self.inner.seen_version.swap(version, Ordering::Relaxed);
        if before != version && before >= 0 {
            tracing::info!(active_keys = active, keys_required = self.enabled(), "API keys reloaded");
        }
        Ok(())
    }

    /// Polls the store's key version and writes `last_used_at` back, until the process ends.
    pub fn spawn_maintenance(&self) {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_touch = Instant::now();
            loop {
                tick.tick().await;
                match auth.inner.store.keys_version().await {
                    Ok(v) if v != auth.inner.seen_version.load(Ordering::Relaxed) => {
                        if let Err(e) = auth.reload().await {
                            tracing::warn!(error = %e, "reloading API keys failed; keeping the current ones");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the API key version"),
                }
                if last_touch.elapsed() >= TOUCH_INTERVAL {
                    last_touch = Instant::now();
                    auth.flush_last_used().await;
                }
            }
        });
    }

    /// Reloads the keys each time `changes` fires (another node changed them).
    pub fn follow(&self, mut changes: tokio::sync::broadcast::Receiver<()>) {
        let auth = self.clone();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(e) = auth.reload().await {
                            tracing::warn!(error = %e, "reloading API keys failed; the next poll retries");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// Writes the last-use times that changed since the last write, in one transaction.
    pub async fn flush_last_used(&self) {
        let pending: Vec<(Arc<Entry>, i64)> = self
            .inner
            .ring
            .read()
            .by_hash
            .values()
            .filter_map(|e| {
                let used = e.last_used.load(Ordering::Relaxed);
                (used > e.persisted.load(Ordering::Relaxed)).then(|| (Arc::clone(e), used))
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let batch: Vec<(Uuid, DateTime<Utc>)> =
            pending.iter().filter_map(|(e, t)| DateTime::from_timestamp(*t, 0).map(|t| (e.id, t))).collect();
        match self.inner.store.touch_keys(&batch).await {
            Ok(()) => pending.iter().for_each(|(e, t)| e.persisted.store(*t, Ordering::Relaxed)),
            Err(e) => tracing::warn!(error = %e, "cannot record API keys' last use"),
        }
    }

    /// Checks a presented token and charges its bucket.
    fn check(&self, token: Option<&str>) -> Result<Caller, Denied> {
        let hash = hash_token(token.ok_or(Denied::Missing)?);
        let entry = self.inner.ring.read().by_hash.get(&hash).cloned().ok_or(Denied::Invalid)?;
        let rate = self.inner.config.rate_limit_per_key;
        if rate > 0 && entry.bucket.lock().take(rate, rate, Instant::now()).is_err() {
            return Err(Denied::RateLimited(rate));
        }
        entry.last_used.store(Utc::now().timestamp(), Ordering::Relaxed);
        Ok(Caller { key_id: entry.id, role: entry.role })
    }

    /// The caller of a function URL, by the key it sent as for the API (`Authorization:
    /// Bearer`): `Ok(None)` when it sent none. A key is checked (and its bucket charged) even
    /// when keys are off for the API: a `key` function URL is never open.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Option<Caller>, Denied> {
        match bearer(headers) {
            None => Ok(None),
            Some(token) => self.check(Some(token)).map(Some),
        }
    }

    /// Charges a request from `ip` to a public function URL.
    pub(crate) fn charge_address(&self, ip: std::net::IpAddr) -> Result<(), Denied> {
        self.inner.addresses.check(ip).map_err(|_| Denied::AddressRateLimited(self.inner.addresses.limit().rate))
    }

    // ----- key management (API and CLI share the store; the API reloads at once) -----

    pub async fn create_key(&self, name: &str, role: Role) -> Result<(ApiKey, String), KeyAdminError> {
        validate_key_name(name).map_err(KeyAdminError::InvalidName)?;
        let new = NewKey::generate(name, role, Utc::now())?;
        self.inner.store.insert_key(&new.stored).await?;
        self.reload().await?;
        Ok((new.stored.key, new.token))
    }

    /// Every key, revoked ones included, with last-use times this server has not written yet.
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, KeyAdminError> {
        let mut keys: Vec<ApiKey> = self.inner.store.list_keys().await?.into_iter().map(|k| k.key).collect();
        let ring = self.inner.ring.read();
        let used: HashMap<Uuid, i64> = ring.by_hash.values().map(|e| (e.id, e.last_used.load(Ordering::Relaxed))).collect();
        for k in &mut keys {
            if let Some(t) = used.get(&k.id).filter(|t| **t > 0).and_then(|t| DateTime::from_timestamp(*t, 0)) {
                if k.last_used_at.is_none_or(|old| old < t) {
                    k.last_used_at = Some(t);
                }
            }
        }
        Ok(keys)
    }

    pub async fn revoke_key(&self, id: &str) -> Result<(), KeyAdminError> {
        let uuid = Uuid::parse_str(id).map_err(|_| KeyAdminError::NotFound(id.to_owned()))?;
        if !self.inner.store.revoke_key(uuid).await? {
            return Err(KeyAdminError::NotFound(id.to_owned()));
        }
        self.reload().await?;
        Ok(())
    }
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive, as RFC 7235 says).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The `access_token` query parameter (tokens are hex with a prefix: no decoding needed).
fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("access_token=")).filter(|t| !t.is_empty())
}

/// Paths that answer without a key: health (for load balancers) and the UI's static shell,
/// which holds no data and asks the user for a key.
fn is_public(path: &str) -> bool {
    path == "/healthz" || path == "/" || path.starts_with("/ui/")
}

/// Function URLs check their callers themselves: who may call depends on the function's
/// `http` setting, which the handler reads.
pub fn is_function_url(path: &str) -> bool {
    path.starts_with("/fn/")
}

/// What an `invoke` key may do: read (GET/HEAD, but not the key list) and invoke. Everything
/// else is for admins, so a route added later is admin-only until it is listed here.
pub fn invoke_role_may(method: &Method, path: &str) -> bool {
    if is_function_url(path) {
        return true;
    }
    if *method == Method::GET || *method == Method::HEAD {
        return !(path == "/api/v1/keys" || path.starts_with("/api/v1/keys/"));
    }
    *method == Method::POST
        && path
            .strip_prefix("/api/v1/functions/")
            .and_then(|rest| rest.strip_suffix("/invoke"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// The middleware: lets public paths through, then (when keys are on) checks the key, its
/// rate limit and its role.
pub async fn require_key(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if is_public(path) || is_function_url(path) || !auth.enabled() {
        return next.run(req).await;
    }
    let token = bearer(req.headers()).or_else(|| if path == STREAM_PATH { query_token(req.uri().query()) } else { None });
    let caller = match auth.check(token) {
        Ok(c) => c,
        Err(denied) => return crate::ApiError::from(denied).into_response(),
    };
    if caller.role != Role::Admin && !invoke_role_may(req.method(), path) {
        return crate::ApiError::from(Denied::Forbidden(caller.role)).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_role_permissions() {
        assert!(invoke_role_may(&Method::GET, "/api/v1/functions"));
        assert!(invoke_role_may(&Method::GET, "/metrics"));
        assert!(invoke_role_may(&Method::POST, "/api/v1/functions/hello/invoke"));
        assert!(!invoke_role_may(&Method::POST, "/api/v1/functions"));
        assert!(!invoke_role_may(&Method::PUT, "/api/v1/functions/hello"));
        assert!(!invoke_role_may(&Method::PATCH, "/api/v1/functions/hello"));
        assert!(!invoke_role_may(&Method::DELETE, "/api/v1/functions/hello"));
        assert!(!invoke_role_may(&Method::POST, "/api/v1/functions/hello/compare"));
        assert!(!invoke_role_may(&Method::POST, "/api/v1/functions//invoke"));
        assert!(!invoke_role_may(&Method::POST, "/api/v1/functions/a/b/invoke"));
        assert!(!invoke_role_may(&Method::GET, "/api/v1/keys"));
        assert!(!invoke_role_may(&Method::POST, "/api/v1/keys"));
        assert!(invoke_role_may(&Method::DELETE, "/fn/hello/a/b"), "function URLs: any method, either role");
    }

    #[test]
    fn token_extraction() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer fnbox_abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("fnbox_abc"));
        h.insert(header::AUTHORIZATION, "bearer  fnbox_abc ".parse().expect("header"));
        assert_eq!(bearer(&h), Some("fnbox_abc"));
        h.insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        assert_eq!(query_token(Some("a=1&access_token=fnbox_x")), Some("fnbox_x"));
        assert_eq!(query_token(Some("access_token=")), None);
        assert_eq!(query_token(None), None);
    }
}
