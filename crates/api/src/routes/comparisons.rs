use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use fnbox_engine::Comparison;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::extract::{Json as Body, Path};
use crate::{ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// The event (default: the function's sample input).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    input: Option<Box<RawValue>>,
    #[serde(default = "default_iterations")]
    iterations: u32,
    #[serde(default = "default_concurrency")]
    concurrency: u32,
}

fn default_iterations() -> u32 {
    20
}
fn default_concurrency() -> u32 {
    1
}

/// Runs the function's code and input on Docker and on gVisor and returns the figures side
/// by side, with gVisor/Docker ratios. Stored; listed by `GET /api/v1/comparisons`. Each side
/// runs on a private copy of the function that is never listed and whose sandboxes are removed
/// afterwards; its runs are recorded with `trigger: compare` (left out of the default executions
/// and metrics views). A client that disconnects does not stop it: it runs to the end and is stored.
#[utoipa::path(post, operation_id = "compareRuntimes", path = "/api/v1/functions/{name}/compare", tag = "metrics", params(("name" = String, Path)),
    request_body = CompareRequest,
    responses((status = 201, description = "Created", body = Comparison),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "iterations or concurrency out of range", body = ErrorBody),
        (status = 503, description = "A runtime is unavailable", body = ErrorBody)))]
pub async fn compare(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<CompareRequest>,
) -> Result<(StatusCode, Json<Comparison>), ApiError> {
    let input = match req.input {
        Some(i) => i,
        None => {
            let f = s.engine.get_function(&name)?;
            let sample = f.sample_input.clone().unwrap_or_else(|| serde_json::json!({}));
            RawValue::from_string(sample.to_string()).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
    };
    let c = s.engine.compare(&name, input, req.iterations, req.concurrency).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, operation_id = "listComparisons", path = "/api/v1/comparisons", tag = "metrics", responses((status = 200, description = "OK", body = Vec<Comparison>)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    Ok(Json(s.engine.comparisons(100).await?))
}

#[utoipa::path(get, operation_id = "getComparison", path = "/api/v1/comparisons/{id}", tag = "metrics", params(("id" = String, Path)),
    responses((status = 200, description = "OK", body = Comparison), (status = 404, description = "No such comparison", body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "comparison_not_found", format!("comparison `{id}` not found"));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    Ok(Json(s.engine.comparison(uuid).await?))
}
