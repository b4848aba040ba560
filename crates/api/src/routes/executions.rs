use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use fnbox_core::{Execution, ExecutionFilter, TriggerFilter};
use serde::Deserialize;
use uuid::Uuid;

use crate::extract::{Path, Query};
use crate::{page, ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this function's executions (empty: all).
    function: Option<String>,
    /// success, error, timeout, oom or queued (an asynchronous attempt not run yet; empty: all).
    #[param(pattern = "^(success|error|timeout|oom|queued)?$")]
    status: Option<String>,
    /// docker or gvisor (also runc, runsc; empty: all).
    #[param(pattern = "^(docker|gvisor|runc|runsc)?$")]
    runtime: Option<String>,
    /// Started at or after this RFC 3339 time.
    since: Option<String>,
    /// Started before this RFC 3339 time (with `since`, a date range).
    until: Option<String>,
    /// Only executions whose logs, error or output contain this text (ASCII letters in any
    /// case; at most 200 characters).
    #[param(max_length = 200)]
    search: Option<String>,
    /// Page: executions older than this execution id (UUID); the `X-Next-Before` header of a
    /// page gives the value for the next one.
    before: Option<String>,
    /// What started them: `api`, `http` (a function URL), `async` (`Prefer: respond-async`),
    /// `schedule`, `compare` (the runs of a runtime comparison) or `all` (empty: every trigger
    /// but `compare`).
    #[param(pattern = "^(api|http|async|schedule|compare|all)?$")]
    trigger: Option<String>,
    /// Only the attempts of this asynchronous call (its `request_id`, a UUID).
    request_id: Option<String>,
    /// At most this many (default 50); a page also stops before its JSON passes 4 MiB.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `full` (the default): whole records. `summary`: records without input, output, logs
    /// and error stack (an `ExecutionSummary` each), for lists that show figures and status.
    #[param(pattern = "^(full|summary)?$")]
    view: Option<String>,
}

/// An item of the executions list: a whole record, or with `view=summary` one without payloads.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only describes the answer: items are serialized as one type or the other
pub enum ListedExecution {
    Full(Execution),
    Summary(fnbox_core::ExecutionSummary),
}

const MAX_LIMIT: u32 = 1000;

/// The `trigger` query parameter of the executions and metrics routes.
pub(crate) fn parse_trigger(v: Option<&str>) -> Result<TriggerFilter, ApiError> {
    v.unwrap_or("")
        .parse()
        .map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", format!("trigger: {e}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The API key, for clients that cannot set `Authorization` (EventSource).
    #[allow(dead_code)]
    access_token: Option<String>,
    /// As for the list: `api`, `http`, `async`, `schedule`, `compare` or `all` (empty: every
    /// trigger but `compare`).
    #[param(pattern = "^(api|http|async|schedule|compare|all)?$")]
    trigger: Option<String>,
}

impl ListQuery {
    /// Whether `view=summary` was asked for.
    fn summary(&self) -> Result<bool, ApiError> {
        match self.view.as_deref().unwrap_or("") {
            "" | "full" => Ok(false),
            "summary" => Ok(true),
            other => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("view: unknown view `{other}` (expected full or summary)"),
            )),
        }
    }

    fn into_filter(self) -> Result<ExecutionFilter, ApiError> {
        let bad = |name: &str, msg: String| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", format!("{name}: {msg}"));
        let time = |name: &str, v: Option<String>| {
            v.filter(|s| !s.is_empty())
                .map(|s| chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&chrono::Utc)))
                .transpose()
                .map_err(|e| bad(name, format!("expected an RFC 3339 time ({e})")))
        };
        let search = self.search.filter(|s| !s.is_empty());
        if let Some(s) = &search {
            let max = fnbox_core::execution::MAX_SEARCH_CHARS;
            if s.chars().count() > max {
                return Err(bad("search", format!("at most {max} characters")));
            }
        }
        Ok(ExecutionFilter {
            until: time("until", self.until)?,
            search,
            function: self.function.filter(|f| !f.is_empty()),
            status: self.status.filter(|s| !s.is_empty()).map(|s| s.parse()).transpose().map_err(|e| bad("status", e))?,
            runtime: self.runtime.filter(|s| !s.is_empty()).map(|s| s.parse()).transpose().map_err(|e| bad("runtime", e))?,
            since: time("since", self.since)?,
            before: self.before.filter(|s| !s.is_empty()).map(|s| Uuid::parse_str(&s)).transpose().map_err(|e| bad("before", e.to_string()))?,
            trigger: parse_trigger(self.trigger.as_deref())?,
            request_id: self.request_id.filter(|s| !s.is_empty()).map(|s| Uuid::parse_str(&s)).transpose().map_err(|e| bad("request_id", e.to_string()))?,
            limit: match self.limit {
                None => 50,
                Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
                Some(n) => return Err(bad("limit", format!("must be between 1 and {MAX_LIMIT} (got {n})"))),
            },
            max_bytes: None,
        })
    }
}

/// Newest first, paged: at most `limit`, and never more than 4 MiB of JSON (at least one
/// execution). When there are more, `X-Next-Before` holds the id to pass as `before`, and
/// `Link` the next page's URL. With `view=summary` each is an `ExecutionSummary` (no input,
/// output, logs or stack).
#[utoipa::path(get, operation_id = "listExecutions", path = "/api/v1/executions", tag = "executions", params(ListQuery),
    responses((status = 200, description = "Newest first; a page of at most `limit` executions and 4 MiB (`Execution`s, or `ExecutionSummary`s with `view=summary`)", body = Vec<ListedExecution>,
            headers(("X-Next-Before" = String, description = "Present when there are more: pass it as `before` for the next page"),
                ("Link" = String, description = "Present when there are more: `<next page URL>; rel=\"next\"`"))),
        (status = 400, description = "Bad query parameter", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, uri: Uri, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let summary = q.summary()?;
    let mut filter = q.into_filter()?;
    let limit = filter.limit as usize;
    // One more than the page, and a store-side bound on size, so a page that is cut by either
    // is told apart from the last one without reading more than a page into memory.
    filter.limit += 1;
    filter.max_bytes = Some(page::PAGE_BYTES);
    // The store still bounds what it reads by the full records' size (so memory stays bounded
    // whatever the view); a summary page may then hold fewer than `limit`, with the cursor.
    let rows = state.engine.executions(&filter).await?;
    let (body, n) = if summary {
        let brief: Vec<fnbox_core::ExecutionSummary> = rows.iter().map(Into::into).collect();
        page::json_array(&brief, limit, page::PAGE_BYTES)?
    } else {
        page::json_array(&rows, limit, page::PAGE_BYTES)?
    };
    let next = (n < rows.len()).then(|| rows[n.saturating_sub(1)].id.to_string());
    Ok(page::response(body, &uri, "x-next-before", "before", next.as_deref()))
}

#[utoipa::path(get, operation_id = "getExecution", path = "/api/v1/executions/{id}", tag = "executions", params(("id" = String, Path)),
    responses((status = 200, description = "OK", body = Execution), (status = 404, description = "No such execution", body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Execution>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(axum::http::StatusCode::NOT_FOUND, "execution_not_found", format!("execution `{id}` not found")))?;
    Ok(Json(state.engine.execution(id).await?))
}

/// Server-sent events: one `execution` event per recorded execution, as it is recorded
/// (comparison runs only with `trigger=compare` or `trigger=all`), with each text (input,
/// output, logs, error type, message, stack) cut to 4 KiB and an output longer than that left
/// out (`output_truncated`); the full record is at `GET /api/v1/executions/{id}`. A subscriber
/// more than 256 events behind gets a `lagged` event with the number it missed. At most 64
/// streams are open at once (503 beyond).
/// When keys are on, the key may also be given as `?access_token=` on this route only, because
/// a browser's `EventSource` cannot send headers.
#[utoipa::path(get, operation_id = "streamExecutions", path = "/api/v1/executions/stream", tag = "executions",
    params(StreamQuery),
    responses((status = 200, description = "text/event-stream: an `execution` event (an Execution, texts cut to 4 KiB) per recorded execution", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 503, description = "Too many streams are open (`too_many_streams`, Retry-After)", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let triggers = parse_trigger(q.trigger.as_deref())?;
    // Held by the stream for as long as it is open.
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{} live streams are open, the most this server keeps; try again later", crate::MAX_STREAMS),
        )
    })?;
    let rx = state.engine.subscribe();
    let events = futures_util::stream::unfold((rx, permit), move |(mut rx, permit)| async move {
        let event = loop {
            match rx.recv().await {
                Ok(e) if !triggers.matches(e.trigger) => continue,
                Ok(e) => {
                    break Event::default().event("execution").json_data(&*e).unwrap_or_else(|_| Event::default().comment("unserializable"))
                }
                Err(RecvError::Lagged(n)) => break Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            }
        };
        Some((Ok(event), (rx, permit)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
