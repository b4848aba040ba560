//! Body, path and query extractors whose failures are clear 4xx errors in fnbox's error shape
//! (axum's own rejections are plain text).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// JSON body: a wrong content type is 415, nesting deeper than the limit is 400
/// `json_too_deep`, a syntax error is 400 `invalid_json`; a well-formed body with a wrong or
/// unknown field is 422 naming the field.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        check_depth(&bytes, state.engine.limits().max_json_depth)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is empty; send a JSON object"));
        }
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

/// A body given as something other than JSON is refused; no content type at all is accepted
/// (curl without `-H`, hand-written scripts).
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be application/json (got `{}`)", value.to_str().unwrap_or("?")),
        ))
    }
}

/// 400 `json_too_deep` when arrays/objects nest deeper than `max` (checked before parsing).
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), ApiError> {
    if fnbox_core::json_too_deep(bytes, max) {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "json_too_deep",
            format!("the JSON body nests arrays and objects deeper than the limit of {max} levels"),
        ))
    } else {
        Ok(())
    }
}

pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        ApiError::new(e.status(), if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_request" }, e.body_text())
    })
}

/// A path parameter that does not decode (bad percent-encoding, not UTF-8) is 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))
    }
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
