//! The one mapping from failures to HTTP responses. Every error body has the same shape:
//! `{"error": {"code": "...", "message": "...", "fields": [...]}}`.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fnbox_core::{FieldError, StoreError};
use fnbox_engine::EngineError;
use serde::Serialize;

use crate::auth::{Denied, KeyAdminError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Vec<FieldError>,
}

/// Every error response: `{"error": {"code", "message", "fields"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_json`, `json_too_deep`, `validation_failed`, `function_not_found`,
    /// `unauthorized`, `invalid_token`, `forbidden`, `rate_limited`, `queue_full`, …
    pub code: String,
    /// For people.
    pub message: String,
    /// One entry per invalid field (validation errors only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), fields: Vec::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: format!("{field}: {message}"),
            fields: vec![FieldError { field: field.into(), message, line: None, column: None }],
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        let message = d.to_string();
        match d {
            Denied::Missing => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            Denied::Invalid => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message),
            Denied::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            Denied::RateLimited(_) | Denied::AddressRateLimited(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            }
        }
    }
}

impl From<KeyAdminError> for ApiError {
    fn from(e: KeyAdminError) -> Self {
        match e {
            KeyAdminError::InvalidName(msg) => ApiError::field("name", msg),
            KeyAdminError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "key_not_found", e.to_string()),
            KeyAdminError::Generate(_) => internal("key_generation_failed", e.to_string()),
            KeyAdminError::Store(s) => ApiError::from(s),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(EngineError::from(e))
    }
}

fn internal(code: &'static str, message: String) -> ApiError {
    tracing::error!(error = %message, code, "internal failure");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::FunctionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "function_not_found", message),
            EngineError::ExecutionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "execution_not_found", message),
            EngineError::ComparisonNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "comparison_not_found", message),
            EngineError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "function_exists", message),
            EngineError::Stale { .. } => ApiError::new(StatusCode::PRECONDITION_FAILED, "etag_mismatch", message),
            EngineError::Invalid(errors) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                message: errors.to_string(),
                fields: errors.0,
            },
            EngineError::InputTooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "input_too_large", message),
            EngineError::QueueFull(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message),
            EngineError::AsyncQueueFull(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "async_queue_full", message),
            EngineError::ScheduleNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", message),
            EngineError::DeadLetterNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "dead_letter_not_found", message),
            EngineError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "runtime_unavailable", message)
            }
            EngineError::BuildPending(_) => ApiError::new(StatusCode::CONFLICT, "build_pending", message),
            EngineError::BuildFailed { .. } => ApiError::new(StatusCode::CONFLICT, "build_failed", message),
            EngineError::VersionNotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "version_not_found", message),
            EngineError::VersionNotRunnable { .. } => ApiError::new(StatusCode::CONFLICT, "version_not_runnable", message),
            EngineError::TestEventNotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "test_event_not_found", message),
            EngineError::TooManyTestEvents { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_test_events", message)
            }
            EngineError::NodeLost(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node_unavailable", message),
            EngineError::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(error = %message, "store unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message)
            }
            EngineError::Store(_) => {
                tracing::error!(error = %message, "storage failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failure", message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message, fields: self.fields } };
        let mut resp = (self.status, axum::Json(body)).into_response();
        // Every limit here refills within a second (rate limits are at least 1/s; queues drain).
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: say which scheme, and whether a token was presented but refused.
            let challenge = if self.code == "invalid_token" {
                r#"Bearer realm="fnbox", error="invalid_token""#
            } else {
                r#"Bearer realm="fnbox""#
            };
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}

/// Stable code for an error response that did not come from an [`ApiError`].
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        s if s.is_server_error() => "internal_error",
        _ => "error",
    }
}

/// Largest non-JSON error body read back to be quoted in the JSON one (they are one-liners).
const FOREIGN_ERROR_BODY_MAX: usize = 4096;

/// The safety net: an error answered by a layer or by axum itself (a 413 from the body limit,
/// a path that does not decode, ...) has a plain-text body. This rewrites any error response
/// that is not JSON into the standard shape, quoting the original text as the message, so a
/// client never meets a second error format.
pub async fn json_errors(req: Request, next: Next) -> Response {
    // A function URL's answer is the function's own, whatever its status and type.
    if crate::auth::is_function_url(req.uri().path()) {
        return next.run(req).await;
    }
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, FOREIGN_ERROR_BODY_MAX).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut out = ApiError::new(status, code_for(status), message).into_response();
    // Keep what the original response said besides its body (Allow on a 405, Retry-After, ...).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !out.headers().contains_key(name) {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
