//! Schedules: a cron pattern (5 fields, or 6 with seconds first) in a time zone that makes one
//! asynchronous call of its function per tick, with the function's retries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use fnbox_core::{RawJson, Schedule};
use fnbox_engine::ScheduleChange;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::extract::{Json as Body, Path};
use crate::{ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// 5 fields (minute hour day-of-month month day-of-week, as cron reads them: `*/5 * * * *`),
    /// or 6 with seconds first (`*/10 * * * * *`).
    #[schema(min_length = 1, max_length = 200)]
    cron: String,
    /// An IANA time zone the fields are read in (default `UTC`).
    #[serde(default)]
    #[schema(max_length = 64)]
    timezone: Option<String>,
    /// The event of each call (default `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    input: Option<Box<RawValue>>,
    /// Default true.
    #[serde(default)]
    enabled: Option<bool>,
}

/// A change: absent fields keep their value; the next run is worked out again from now.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    cron: Option<String>,
    #[serde(default)]
    #[schema(max_length = 64)]
    timezone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    input: Option<Box<RawValue>>,
    #[serde(default)]
    enabled: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleInfo {
    id: Uuid,
    function: String,
    cron: String,
    timezone: String,
    /// The event each call gets.
    #[schema(value_type = Object)]
    input: Option<RawJson>,
    enabled: bool,
    /// The next tick (absent while disabled).
    next_run: Option<DateTime<Utc>>,
    /// The last tick fired.
    last_run: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<Schedule> for ScheduleInfo {
    fn from(s: Schedule) -> Self {
        ScheduleInfo {
            id: s.id,
            input: RawJson::parse(s.input).ok(),
            function: s.function,
            cron: s.cron,
            timezone: s.timezone,
            enabled: s.enabled,
            next_run: s.next_run,
            last_run: s.last_run,
            created_at: s.created_at,
        }
    }
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "schedule_not_found", format!("schedule `{id}` not found")))
}

fn too_long(field: &str, v: &Option<String>, max: usize) -> Result<(), ApiError> {
    match v {
        Some(s) if s.len() > max => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_schedule",
            format!("{field}: at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// Each tick makes one asynchronous call (`trigger: schedule`, retried up to the function's
/// `max_retries`), once per tick whatever the number of nodes. Ticks missed while fnbox was
/// down are not made up one by one: the one that was due fires once at start.
#[utoipa::path(post, operation_id = "createSchedule", path = "/api/v1/functions/{name}/schedules", tag = "async", params(("name" = String, Path)),
    request_body = CreateSchedule,
    responses((status = 201, description = "Created, with its next run", body = ScheduleInfo),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "Body or input too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A cron pattern or time zone that does not parse or never fires, or too many schedules", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Body(req): Body<CreateSchedule>,
) -> Result<(StatusCode, Json<ScheduleInfo>), ApiError> {
    too_long("timezone", &req.timezone, 64)?;
    let change = ScheduleChange { cron: Some(req.cron), timezone: req.timezone, input: req.input, enabled: req.enabled };
    let created = s.engine.create_schedule(&name, change).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, operation_id = "listFunctionSchedules", path = "/api/v1/functions/{name}/schedules", tag = "async", params(("name" = String, Path)),
    responses((status = 200, description = "The function's schedules, oldest first, with their next run", body = Vec<ScheduleInfo>),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn list_of(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<Vec<ScheduleInfo>>, ApiError> {
    Ok(Json(s.engine.schedules(Some(&name)).await?.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, operation_id = "listSchedules", path = "/api/v1/schedules", tag = "async",
    responses((status = 200, description = "Every function's schedules, oldest first", body = Vec<ScheduleInfo>)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<Vec<ScheduleInfo>>, ApiError> {
    Ok(Json(s.engine.schedules(None).await?.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, operation_id = "getSchedule", path = "/api/v1/schedules/{id}", tag = "async", params(("id" = String, Path)),
    responses((status = 200, description = "The schedule", body = ScheduleInfo),
        (status = 404, description = "No such schedule", body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<ScheduleInfo>, ApiError> {
    Ok(Json(s.engine.schedule(parse_id(&id)?).await?.into()))
}

#[utoipa::path(patch, operation_id = "updateSchedule", path = "/api/v1/schedules/{id}", tag = "async", params(("id" = String, Path)),
    request_body = UpdateSchedule,
    responses((status = 200, description = "Changed, with its next run worked out again from now", body = ScheduleInfo),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 413, description = "Body or input too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A cron pattern or time zone that does not parse or never fires", body = ErrorBody)))]
pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<UpdateSchedule>,
) -> Result<Json<ScheduleInfo>, ApiError> {
    too_long("timezone", &req.timezone, 64)?;
    too_long("cron", &req.cron, fnbox_core::schedule::MAX_CRON_LEN)?;
    let change = ScheduleChange { cron: req.cron, timezone: req.timezone, input: req.input, enabled: req.enabled };
    Ok(Json(s.engine.update_schedule(parse_id(&id)?, change).await?.into()))
}

#[utoipa::path(delete, operation_id = "deleteSchedule", path = "/api/v1/schedules/{id}", tag = "async", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted: no further tick fires (calls already queued still run)"),
        (status = 404, description = "No such schedule", body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.engine.delete_schedule(parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
