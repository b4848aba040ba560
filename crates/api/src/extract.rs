//! Body and query extractors whose failures are clear 4xx errors in fnbox's error shape
//! (axum's own rejections are plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// JSON body: a syntax error is 400 `invalid_json`; a well-formed body with a wrong or
/// unknown field is 422 naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {e}")));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde's messages end with " at line 1 column 42", which helps nobody here.
            let msg = inner.split(" at line ").next().unwrap_or(&inner).to_string();
            if path == "." {
                ApiError { code: "validation_failed", ..ApiError::field("body", msg) }
            } else {
                ApiError::field(&path, msg)
            }
        })
    }
}

pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        ApiError::new(e.status(), if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_request" }, e.body_text())
    })
}

/// Query string: unknown parameters and bad values are 400 with the reason.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Query)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("invalid query string: {e}")))
    }
}
