use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use fnbox_engine::Comparison;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::extract::Json as Body;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    #[serde(default)]
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
/// by side, with gVisor/Docker ratios. Stored; listed by `GET /api/v1/comparisons`.
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

pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    Ok(Json(s.engine.comparisons(100).await?))
}

pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "comparison_not_found", format!("comparison `{id}` not found"));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    Ok(Json(s.engine.comparison(uuid).await?))
}
