use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use fnbox_core::{Execution, Function, FunctionInfo, FunctionPatch, FunctionSpec, LastExecution, Role};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Caller;
use crate::extract::{body_bytes, check_depth, Json, Path, Query};
use crate::{page, ApiError, AppState, ErrorBody};

/// Whether the caller may read code: admin keys, and anyone when keys are off (then there is
/// no caller). Mirrors who may change it.
pub(crate) fn reads_code(caller: &Option<Extension<Caller>>) -> bool {
    caller.as_ref().is_none_or(|Extension(c)| c.role == Role::Admin)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page: functions whose name sorts after this one; the `X-Next-After` header of a page
    /// gives the value for the next one.
    after: Option<String>,
    /// At most this many (default 100); a page also stops before its JSON passes 4 MiB.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A function as the list gives it: the function and its newest execution, so a list page
/// needs no second request (and no download of executions) to show how each last ran.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FunctionListItem {
    #[serde(flatten)]
    pub function: FunctionInfo,
    /// The newest execution (comparison runs left out), without payloads (the full record is
    /// at `GET /api/v1/executions/{id}`); `null` when it never ran.
    pub last_execution: Option<LastExecution>,
}

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// By name, paged: at most `limit`, and never more than 4 MiB of JSON (at least one function).
/// When there are more, `X-Next-After` holds the name to pass as `after`, and `Link` the next
/// page's URL. Environment values are never returned (`env_names` lists the names); `code` is
/// returned to admin keys only. Each function carries its `last_execution`.
#[utoipa::path(get, operation_id = "listFunctions", path = "/api/v1/functions", tag = "functions", params(ListQuery),
    responses((status = 200, description = "By name; a page of at most `limit` functions and 4 MiB", body = Vec<FunctionListItem>,
            headers(("X-Next-After" = String, description = "Present when there are more: pass it as `after` for the next page"),
                ("Link" = String, description = "Present when there are more: `<next page URL>; rel=\"next\"`"))),
        (status = 400, description = "Bad query parameter", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = match q.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("limit: must be between 1 and {MAX_LIMIT} (got {n})"),
            ))
        }
    } as usize;
    let with_code = reads_code(&caller);
    let all = state.engine.list_functions();
    let start = q.after.as_deref().filter(|a| !a.is_empty()).map_or(0, |a| all.partition_point(|f| f.name.as_str() <= a));
    let page_of = &all[start..all.len().min(start + limit + 1)];
    let names: Vec<String> = page_of.iter().map(|f| f.name.clone()).collect();
    let mut last = state.engine.last_executions(&names).await?;
    let rest: Vec<FunctionListItem> = page_of
        .iter()
        .map(|f| FunctionListItem { function: FunctionInfo::of(f, with_code), last_execution: last.remove(&f.name) })
        .collect();
    let (body, n) = page::json_array(&rest, limit, page::PAGE_BYTES)?;
    let next = (n < rest.len()).then(|| rest[n.saturating_sub(1)].function.name.clone());
    Ok(page::response(body, &uri, "x-next-after", "after", next.as_deref()))
}

#[utoipa::path(post, operation_id = "createFunction", path = "/api/v1/functions", tag = "functions", request_body = FunctionSpec,
    responses((status = 201, description = "Created (env values are not returned)", body = FunctionInfo),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 409, description = "A function with this name exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields (each named), or a syntax error with its line", body = ErrorBody),
        (status = 503, description = "No sandbox can be started to check the code (Retry-After)", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, Json(spec): Json<FunctionSpec>) -> Result<Response, ApiError> {
    let f = state.engine.create_function(spec).await?;
    Ok(with_etag(StatusCode::CREATED, &f, true))
}

/// A function as the answer (see [`FunctionInfo`]: no env values; code if `with_code`), with
/// its `ETag` (for a later `If-Match`).
pub(crate) fn with_etag(status: StatusCode, f: &Function, with_code: bool) -> Response {
    let etag = HeaderValue::from_str(&f.etag()).ok();
    let mut resp = (status, axum::Json(FunctionInfo::of(f, with_code))).into_response();
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

#[utoipa::path(get, operation_id = "getFunction", path = "/api/v1/functions/{name}", tag = "functions", params(("name" = String, Path)),
    responses((status = 200, description = "OK, with the function's `ETag` (send it back as `If-Match` to update safely). Env values are never returned, code only to admin keys", body = FunctionInfo,
            headers(("etag" = String, description = "Changes with every change to the function"))),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    // In a cluster another node may have created it a moment ago: the store is asked then.
    let f = state.engine.find_function(&name).await?;
    Ok(with_etag(StatusCode::OK, &f, reads_code(&caller)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BuildQuery {
    /// Wait up to this many seconds for a running build to end (at most 300; default 0).
    #[param(minimum = 0, maximum = 300)]
    wait: Option<u32>,
}

/// Longest `?wait=` on a build.
const MAX_BUILD_WAIT_S: u32 = 300;

/// The current version's dependency build: status, packages, time, logs (live while it runs)
/// and lock. With `?wait=N` the answer comes when the build ends or after N seconds. Logs and
/// lock go to callers that may read code (they name the dependencies).
#[utoipa::path(get, operation_id = "getFunctionBuild", path = "/api/v1/functions/{name}/build", tag = "functions",
    params(("name" = String, Path), BuildQuery),
    responses((status = 200, description = "The build (`status: none` without dependencies)", body = fnbox_core::BuildReport),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn build(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    Query(q): Query<BuildQuery>,
) -> Result<Response, ApiError> {
    let wait = q.wait.unwrap_or(0);
    if wait > MAX_BUILD_WAIT_S {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("wait: must be between 0 and {MAX_BUILD_WAIT_S} seconds (got {wait})"),
        ));
    }
    let mut report = state.engine.wait_build(&name, std::time::Duration::from_secs(u64::from(wait))).await?;
    if !reads_code(&caller) {
        if let Some(b) = report.build.as_mut() {
            b.logs.clear();
            b.lock = None;
        }
    }
    Ok(axum::Json(report).into_response())
}

#[utoipa::path(put, operation_id = "updateFunction", path = "/api/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path),
        ("if-match" = Option<String>, Header, description = "Update only if the function's ETag is still this one (else 412)")),
    request_body(content = FunctionPatch, description = "The fields to change; the others keep their value. What `GET` returns is accepted as it is (read-only fields are ignored, `name` must be the function's), so a client can read, edit and send back"),
    responses((status = 200, description = "Updated; a change to code or settings makes a new version. Versions only grow, and concurrent updates apply one after the other (env values are not returned)", body = FunctionInfo,
            headers(("etag" = String, description = "The function's new ETag"))),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 412, description = "`If-Match` names an older state of the function (`etag_mismatch`)", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, or a `name` that is not the function's", body = ErrorBody),
        (status = 503, description = "No sandbox can be started to check the code (Retry-After)", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(patch): Json<FunctionPatch>,
) -> Result<Response, ApiError> {
    let f = state.engine.update_function(&name, patch, if_match(&headers)?).await?;
    Ok(with_etag(StatusCode::OK, &f, true))
}

/// The `If-Match` header, if any, as text.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str().map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_header", "If-Match is not a valid entity tag list"))
        })
        .transpose()
}

/// A JSON merge patch (RFC 7396) of the function as `GET` returns it: members given change,
/// members left out are kept, `null` removes an optional one (`sample_input`, `dependencies`;
/// `description` becomes empty, `http` off). `sample_input` merges into the current example and
/// `env` sets (a string) or removes (`null`) variables, keeping the others. Read-only members
/// are ignored; `name`, if given, must be the function's. Sent as
/// `application/merge-patch+json` or `application/json`.
#[utoipa::path(patch, operation_id = "patchFunction", path = "/api/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path),
        ("if-match" = Option<String>, Header, description = "Update only if the function's ETag is still this one (else 412)")),
    request_body(content = FunctionPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "Updated, as by PUT (a change to code or settings makes a new version)", body = FunctionInfo,
            headers(("etag" = String, description = "The function's new ETag"))),
        (status = 400, description = "Malformed or empty JSON, or nested too deep (`json_too_deep`)", body = ErrorBody),
        (status = 404, description = "No such function", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 412, description = "`If-Match` names an older state of the function (`etag_mismatch`)", body = ErrorBody),
        (status = 415, description = "The body is not JSON (`application/merge-patch+json` or `application/json`)", body = ErrorBody),
        (status = 422, description = "Invalid members (each named), a required one removed, or another `name`", body = ErrorBody),
        (status = 503, description = "No sandbox can be started to check the code (Retry-After)", body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(merge_patch): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let f = state.engine.patch_function(&name, merge_patch, if_match(&headers)?).await?;
    Ok(with_etag(StatusCode::OK, &f, true))
}

#[utoipa::path(delete, operation_id = "deleteFunction", path = "/api/v1/functions/{name}", tag = "functions", params(("name" = String, Path)),
    responses((status = 204, description = "Deleted; its executions stay on record"),
        (status = 404, description = "No such function", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.engine.delete_function(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an invocation: the execution as recorded (with the full output).
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvokeResponse<'a> {
    pub execution_id: uuid::Uuid,
    pub function: &'a str,
    pub status: fnbox_core::ExecutionStatus,
    /// The return value in full, exactly as the function returned it (numbers are not rounded).
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: &'a Option<fnbox_core::RawJson>,
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
    /// The cluster node that ran it (absent on a single fnbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: &'a Option<String>,
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
            node: &e.node,
        }
    }
}

/// The answer to an asynchronous invocation: the call is committed to the durable queue and
/// will run (retried on failure up to the function's `max_retries`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptedResponse {
    /// The first attempt's execution record: `queued` now, final once it ran.
    pub execution_id: uuid::Uuid,
    /// The call, shared by the records of all its attempts (`request_id` on each).
    pub request_id: uuid::Uuid,
    /// Always `queued`.
    pub status: &'static str,
}

/// Whether a `Prefer` header (RFC 7240) asks for `respond-async`.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|p| {
        p.split(';').next().is_some_and(|token| token.trim().eq_ignore_ascii_case("respond-async"))
    })
}

/// Which version an invocation runs.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvokeQuery {
    /// Run this version (see `GET …/versions`) instead of the current one: an old version runs
    /// its own code, settings and environment, in sandboxes that serve no other version, and its
    /// record says its version. Not with `Prefer: respond-async`.
    #[param(minimum = 1)]
    version: Option<u32>,
}

/// The request body is the event, any JSON value; an empty body is `{}`. The call answers
/// 200 whenever the function ran (its own failure is in `status`), with `X-Fnbox-Status`.
/// Any content type is accepted (`curl -d` sends form-urlencoded); the body must be JSON.
///
/// With `Prefer: respond-async` the call is only accepted: 202 as soon as it is committed to
/// the durable queue, with `Location` naming its first attempt's execution (`queued` until it
/// ran). A failed attempt (error, timeout, oom) is retried with exponential backoff up to the
/// function's `max_retries`; after the last the call lands in `GET /api/v1/dead-letters`.
#[utoipa::path(post, operation_id = "invokeFunction", path = "/api/v1/functions/{name}/invoke", tag = "functions",
    params(("name" = String, Path), InvokeQuery, ("Prefer" = Option<String>, Header, description = "`respond-async`: accept the call into the durable queue and answer 202 at once")),
    request_body(content = serde_json::Value, description = "The event: any JSON value (empty body = {})"),
    responses((status = 200, description = "The function ran; its own outcome is in `status`", body = InvokeResponse),
        (status = 202, description = "Accepted (`Prefer: respond-async`): it will run; `Location` is its first attempt's record", body = AcceptedResponse,
            headers(("Location" = String, description = "The first attempt's execution record"),
                ("Preference-Applied" = String, description = "`respond-async`"))),
        (status = 400, description = "Malformed JSON input, or nested too deep (`json_too_deep`), or a bad query parameter", body = ErrorBody),
        (status = 404, description = "No such function (`function_not_found`) or version (`version_not_found`)", body = ErrorBody),
        (status = 413, description = "Input too large", body = ErrorBody),
        (status = 409, description = "Its dependencies are still building (`build_pending`) or failed to build (`build_failed`, with the package manager's message) and no earlier version can serve; or the `version` asked for never finished its build (`version_not_runnable`)", body = ErrorBody),
        (status = 422, description = "`version` with `Prefer: respond-async` (asynchronous calls run the current version)", body = ErrorBody),
        (status = 429, description = "The function's queue is full (Retry-After)", body = ErrorBody),
        (status = 503, description = "No sandbox can be started, or the asynchronous queue is full (`async_queue_full`) (Retry-After)", body = ErrorBody)))]
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<InvokeQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let asynchronous = prefers_async(req.headers());
    if asynchronous && q.version.is_some() {
        return Err(ApiError::field("version", "asynchronous calls run the current version; call without `Prefer: respond-async`"));
    }
    let bytes = body_bytes(req, &()).await?;
    check_depth(&bytes, state.engine.limits().max_json_depth)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", "the body is not UTF-8"))?;
    let text = if text.trim().is_empty() { "{}" } else { text.trim() };
    let event: Box<RawValue> = serde_json::from_str(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON input: {e}")))?;
    if asynchronous {
        let accepted = state.engine.invoke_async(&name, event).await?;
        return Ok(accepted_response(&accepted));
    }
    let exec = match q.version {
        Some(v) => state.engine.invoke_version(&name, v, event, fnbox_core::Trigger::Api).await?,
        None => state.engine.invoke(&name, event).await?,
    };
    let mut resp = axum::Json(InvokeResponse::from(&exec)).into_response();
    resp.headers_mut().insert("x-fnbox-status", HeaderValue::from_static(exec.status.as_str()));
    Ok(resp)
}

/// 202 with the call's ids and `Location` (shared by dead-letter retries).
pub(crate) fn accepted_response(a: &fnbox_engine::Accepted) -> Response {
    let body = AcceptedResponse { execution_id: a.execution_id, request_id: a.request_id, status: "queued" };
    let mut resp = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/executions/{}", a.execution_id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert("preference-applied", HeaderValue::from_static("respond-async"));
    resp
}

#[cfg(test)]
mod prefer_tests {
    use super::*;

    #[test]
    fn respond_async_is_found_among_preferences() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("prefer", HeaderValue::from_str(v).expect("header"));
            m
        };
        assert!(prefers_async(&h("respond-async")));
        assert!(prefers_async(&h("wait=10, Respond-Async")));
        assert!(prefers_async(&h("respond-async; foo=bar")));
        assert!(!prefers_async(&h("return=minimal")));
        assert!(!prefers_async(&h("respond-asyncx")));
        assert!(!prefers_async(&HeaderMap::new()));
    }
}
