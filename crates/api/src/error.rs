//! The one mapping from failures to HTTP responses. Every error body has the same shape:
//! `{"error": {"code": "...", "message": "...", "fields": [...]}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fnbox_core::FieldError;
use fnbox_engine::EngineError;
use serde::Serialize;

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
    /// Stable, machine-readable: `invalid_json`, `validation_failed`, `function_not_found`, `queue_full`, …
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

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::FunctionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "function_not_found", message),
            EngineError::ExecutionNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "execution_not_found", message),
            EngineError::ComparisonNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "comparison_not_found", message),
            EngineError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "function_exists", message),
            EngineError::Invalid(errors) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "validation_failed",
                message: errors.to_string(),
                fields: errors.0,
            },
            EngineError::InputTooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "input_too_large", message),
            EngineError::QueueFull(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message),
            EngineError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "runtime_unavailable", message)
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
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
