//! A function's versions (history, snapshots, rollback) and its saved test events.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use fnbox_core::{FunctionInfo, TestEvent, VersionInfo, VersionSummary};
use serde_json::value::RawValue;

use super::functions::{if_match, reads_code, with_etag};
use crate::auth::Caller;
use crate::extract::{body_bytes, check_content_type, check_depth, Json, Path};
use crate::{ApiError, AppState, ErrorBody};

/// The versions kept (at most 100, the oldest pruned), newest first, without code: a new one
/// is made by every create, every update that changes code or a version setting, and every
/// rollback. The full snapshot of one is at `GET …/versions/{version}`.
#[utoipa::path(get, operation_id = "listFunctionVersions", path = "/api/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 200, description = "Newest first", body = Vec<VersionSummary>),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(state.engine.versions(&name).await?).into_response())
}

/// One version's snapshot: its code (admin keys only, as on the function), settings and the
/// names of its environment variables (never their values). Two of them are what a diff needs.
#[utoipa::path(get, operation_id = "getFunctionVersion", path = "/api/v1/functions/{name}/versions/{version}", tag = "functions",
    params(("name" = String, Path), ("version" = u32, Path, minimum = 1)),
    responses((status = 200, description = "The snapshot", body = VersionInfo),
        (status = 404, description = "No such function (`function_not_found`) or version (`version_not_found`: never made, or pruned)", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path((name, version)): Path<(String, u32)>,
) -> Result<Response, ApiError> {
    let v = state.engine.version(&name, version).await?;
    Ok(axum::Json(VersionInfo::of(&v, reads_code(&caller))).into_response())
}

/// The version to roll back to.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[schema(minimum = 1)]
    pub version: u32,
}

/// Makes a new version (the current one plus one: history is never rewritten) whose code and
/// version settings (language, runtime, code, timeout, memory, environment values,
/// dependencies) are those of `version`. Description, concurrency, retries, sample input and
/// the function URL setting are the function's, not a version's, and stay as they are. Answers
/// as `PUT` does.
#[utoipa::path(post, operation_id = "rollbackFunction", path = "/api/v1/functions/{name}/rollback", tag = "functions",
    params(("name" = String, Path),
        ("if-match" = Option<String>, Header, description = "Roll back only if the function's ETag is still this one (else 412)")),
    request_body = RollbackRequest,
    responses((status = 200, description = "The function at its new version", body = FunctionInfo,
            headers(("etag" = String, description = "The function's new ETag"))),
        (status = 400, description = "Malformed or empty JSON", body = ErrorBody),
        (status = 404, description = "No such function (`function_not_found`) or version (`version_not_found`)", body = ErrorBody),
        (status = 412, description = "`If-Match` names an older state of the function (`etag_mismatch`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A bad or unknown field, or the old version breaks today's limits", body = ErrorBody),
        (status = 503, description = "No sandbox can be started to check the code (Retry-After)", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(req): Json<RollbackRequest>,
) -> Result<Response, ApiError> {
    let f = state.engine.rollback(&name, req.version, if_match(&headers)?).await?;
    Ok(with_etag(StatusCode::OK, &f, true))
}

/// The test events saved with the function, by name.
#[utoipa::path(get, operation_id = "listTestEvents", path = "/api/v1/functions/{name}/test-events", tag = "functions",
    params(("name" = String, Path)),
    responses((status = 200, description = "By name", body = Vec<TestEvent>),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn list_events(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(state.engine.test_events(&name).await?).into_response())
}

/// A test event to save.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveTestEvent {
    /// The event: any JSON value, at most the invoke input limit (1 MiB); kept exactly as sent.
    #[schema(value_type = serde_json::Value)]
    pub event: Box<RawValue>,
}

/// Saves a test event under `event_name` (1 to 64 of `A-Z a-z 0-9 . _ -`), replacing one of
/// that name. A function keeps at most 50; they are deleted with it.
#[utoipa::path(put, operation_id = "saveTestEvent", path = "/api/v1/functions/{name}/test-events/{event_name}", tag = "functions",
    params(("name" = String, Path), ("event_name" = String, Path, description = "1 to 64 of A-Z a-z 0-9 . _ -")),
    request_body = SaveTestEvent,
    responses((status = 200, description = "Replaced", body = TestEvent),
        (status = 201, description = "Created", body = TestEvent),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "The event is larger than the input limit (`input_too_large`), or the body too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A bad event name or body (`validation_failed`), or 50 events saved already (`too_many_test_events`)", body = ErrorBody)))]
pub async fn save_event(
    State(state): State<AppState>,
    Path((name, event_name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    check_content_type(req.headers())?;
    let bytes = body_bytes(req, &()).await?;
    check_depth(&bytes, state.engine.limits().max_json_depth)?;
    // Parsed here rather than by `Json`: the event is kept as its exact text (a number past
    // 64 bits is not rounded), which needs serde_json's own deserializer.
    let body: SaveTestEvent = serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            let msg = e.to_string();
            ApiError::field("body", msg.split(" at line ").next().unwrap_or(&msg).to_string())
        }
        _ if bytes.iter().all(u8::is_ascii_whitespace) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is empty; send a JSON object")
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {e}")),
    })?;
    let (saved, created) = state.engine.save_test_event(&name, &event_name, body.event).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(saved)).into_response())
}

#[utoipa::path(delete, operation_id = "deleteTestEvent", path = "/api/v1/functions/{name}/test-events/{event_name}", tag = "functions",
    params(("name" = String, Path), ("event_name" = String, Path)),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such function (`function_not_found`) or test event (`test_event_not_found`)", body = ErrorBody)))]
pub async fn delete_event(
    State(state): State<AppState>,
    Path((name, event_name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_test_event(&name, &event_name).await?;
    Ok(StatusCode::NO_CONTENT)
}
