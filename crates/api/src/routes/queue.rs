//! The asynchronous queue's state and its dead letters: calls whose every attempt failed,
//! kept with their input and last error until someone retries or discards them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use fnbox_core::DeadLetter;
use fnbox_engine::QueueStats;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::extract::{Path, Query};
use crate::{ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LettersQuery {
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    /// Newest first.
    dead_letters: Vec<DeadLetter>,
    /// How many there are in all.
    total: u64,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "dead_letter_not_found", format!("dead letter `{id}` not found")))
}

#[utoipa::path(get, operation_id = "queueStats", path = "/api/v1/queue", tag = "async",
    responses((status = 200, description = "Calls in the queue (waiting, backing off or running), dead letters, and the queue's bound", body = QueueStats)))]
pub async fn stats(State(s): State<AppState>) -> Result<Json<QueueStats>, ApiError> {
    Ok(Json(s.engine.queue_stats().await?))
}

#[utoipa::path(get, operation_id = "listDeadLetters", path = "/api/v1/dead-letters", tag = "async", params(LettersQuery),
    responses((status = 200, description = "Calls given up after their last attempt, newest first", body = DeadLetters),
        (status = 400, description = "A bad query parameter (`invalid_query`)", body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<LettersQuery>) -> Result<Json<DeadLetters>, ApiError> {
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(n) => return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", format!("limit: {n} is not within 1..=1000"))),
    };
    let dead_letters = s.engine.dead_letters(limit).await?;
    let total = s.engine.queue_stats().await?.dead_letters;
    Ok(Json(DeadLetters { dead_letters, total }))
}

#[utoipa::path(get, operation_id = "getDeadLetter", path = "/api/v1/dead-letters/{id}", tag = "async", params(("id" = String, Path)),
    responses((status = 200, description = "The dead letter: input, attempts, last error", body = DeadLetter),
        (status = 404, description = "No such dead letter", body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<DeadLetter>, ApiError> {
    Ok(Json(s.engine.dead_letter(parse_id(&id)?).await?))
}

/// Queues the call again under its request id: a new round of attempts (the function's
/// `max_retries` + 1), numbered on from the last.
#[utoipa::path(post, operation_id = "retryDeadLetter", path = "/api/v1/dead-letters/{id}/retry", tag = "async", params(("id" = String, Path)),
    responses((status = 202, description = "Back in the queue; `Location` is the next attempt's record", body = crate::routes::functions::AcceptedResponse,
            headers(("Location" = String, description = "The next attempt's execution record"))),
        (status = 404, description = "No such dead letter, or its function was deleted", body = ErrorBody),
        (status = 503, description = "The asynchronous queue is full (`async_queue_full`)", body = ErrorBody)))]
pub async fn retry(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let accepted = s.engine.retry_dead_letter(parse_id(&id)?).await?;
    Ok(crate::routes::functions::accepted_response(&accepted))
}

#[utoipa::path(delete, operation_id = "discardDeadLetter", path = "/api/v1/dead-letters/{id}", tag = "async", params(("id" = String, Path)),
    responses((status = 204, description = "Discarded (its attempts' records stay)"),
        (status = 404, description = "No such dead letter", body = ErrorBody)))]
pub async fn discard(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.engine.discard_dead_letter(parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
