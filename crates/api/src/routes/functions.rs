use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fnbox_core::{Execution, Function, FunctionPatch, FunctionSpec};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::extract::{body_bytes, Json};
use crate::{ApiError, AppState};

pub async fn list(State(state): State<AppState>) -> axum::Json<Vec<Arc<Function>>> {
    axum::Json(state.engine.list_functions())
}

pub async fn create(
    State(state): State<AppState>,
    Json(spec): Json<FunctionSpec>,
) -> Result<(StatusCode, axum::Json<Arc<Function>>), ApiError> {
    let f = state.engine.create_function(spec).await?;
    Ok((StatusCode::CREATED, axum::Json(f)))
}

pub async fn get(State(state): State<AppState>, Path(name): Path<String>) -> Result<axum::Json<Arc<Function>>, ApiError> {
    Ok(axum::Json(state.engine.get_function(&name)?))
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(patch): Json<FunctionPatch>,
) -> Result<axum::Json<Arc<Function>>, ApiError> {
    Ok(axum::Json(state.engine.update_function(&name, patch).await?))
}

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.engine.delete_function(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an invocation: the execution as recorded (with the full output).
#[derive(Serialize)]
pub struct InvokeResponse<'a> {
    pub execution_id: uuid::Uuid,
    pub function: &'a str,
    pub status: fnbox_core::ExecutionStatus,
    pub output: &'a Option<serde_json::Value>,
    pub logs: &'a str,
    pub error: &'a Option<fnbox_core::ErrorInfo>,
    pub duration_ms: f64,
    pub exec_ms: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub cold_start: bool,
    pub runtime: fnbox_core::Runtime,
    pub language: fnbox_core::Language,
    pub version: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl<'a> From<&'a Execution> for InvokeResponse<'a> {
    fn from(e: &'a Execution) -> Self {
        InvokeResponse {
            execution_id: e.id,
            function: &e.function,
            status: e.status,
            output: &e.output,
            logs: &e.logs,
            error: &e.error,
            duration_ms: e.duration_ms,
            exec_ms: e.exec_ms,
            memory_bytes: e.memory_bytes,
            cold_start: e.cold_start,
            runtime: e.runtime,
            language: e.language,
            version: e.version,
            started_at: e.started_at,
        }
    }
}

/// The request body is the event, any JSON value; an empty body is `{}`. The call answers
/// 200 whenever the function ran (its own failure is in `status`), with `X-Fnbox-Status`.
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(req, &()).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not UTF-8"))?;
    let text = if text.trim().is_empty() { "{}" } else { text.trim() };
    let event: Box<RawValue> = serde_json::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON input: {e}")))?;
    let exec = state.engine.invoke(&name, event).await?;
    let mut resp = axum::Json(InvokeResponse::from(&exec)).into_response();
    resp.headers_mut().insert("x-fnbox-status", HeaderValue::from_static(exec.status.as_str()));
    Ok(resp)
}
