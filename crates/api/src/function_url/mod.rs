//! Function URLs: any method on `/fn/{name}` and `/fn/{name}/{*path}` calls the function with
//! a Lambda function URL event (payload format 2.0, [`event`]) and answers with what it
//! returned ([`response`]). Only functions whose `http` setting is `key` or `public` have one;
//! for the others (and unknown names) the answer is 404.
//!
//! Callers: `key` needs an API key (admin or invoke, `Authorization: Bearer` as for the API,
//! whether or not keys are on for the API); `public` needs none. Every call without a valid
//! key is charged to its client address's token bucket before the function is looked up, so
//! an anonymous flood is held back before it costs a store read. The call goes through the
//! engine's normal invoke path (forwarded in a cluster) with trigger `http`.

pub mod event;
pub mod response;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use fnbox_core::{ExecutionStatus, HttpAccess, Trigger};
use fnbox_engine::EngineError;
use http_body_util::BodyExt;
use serde_json::value::RawValue;

use crate::auth::Denied;
use crate::{ApiError, AppState, ErrorBody};

/// The execution's id, on every answer that ran the function.
pub const EXECUTION_HEADER: &str = "x-fnbox-execution-id";

fn not_found(name: &str) -> ApiError {
    // The same answer for an unknown name and for a function with `http: off`: an anonymous
    // caller learns nothing about which functions exist.
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no function URL at /fn/{name}"))
}

/// Any method on `/fn/{name}`: calls the function with the request as a Lambda function URL
/// event (payload format 2.0; `rawPath` is `/`). A result with `statusCode` sets the status,
/// `headers`, `cookies`, `body` (base64 when `isBase64Encoded`); any other JSON value is the
/// body of a 200 `application/json` answer. The execution is recorded with trigger `http`;
/// its id is in `X-Fnbox-Execution-Id`.
#[utoipa::path(method(get, post, put, patch, delete), operation_id = "callFunctionUrl", path = "/fn/{name}", tag = "function URLs",
    params(("name" = String, Path, description = "A function whose `http` setting is `key` or `public`")),
    request_body(content = String, content_type = "application/octet-stream",
        description = "Any body (at most the input limit); text types are passed as text, others base64"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What the function answered: its `statusCode` (any status), headers and body; a result without `statusCode` is sent as JSON",
            content_type = "*/*", body = serde_json::Value,
            headers(("x-fnbox-execution-id" = String, description = "The execution's id"))),
        (status = "default", description = "Any other status the function's `statusCode` chose, with its headers and body",
            content_type = "*/*", body = serde_json::Value,
            headers(("x-fnbox-execution-id" = String, description = "The execution's id"))),
        (status = 401, description = "The function's `http` is `key` and no valid API key was sent", body = ErrorBody),
        (status = 404, description = "No such function, or its `http` setting is `off` (`not_found`)", body = ErrorBody),
        (status = 413, description = "The body (or the event made of it) is over the input limit", body = ErrorBody),
        (status = 429, description = "The client address's or the key's rate limit was exceeded (`rate_limited`), or the function's queue is full (Retry-After)", body = ErrorBody),
        (status = 502, description = "The function failed (`function_error`: its error's type and message, no stack), ran out of memory, returned an answer that cannot be sent (`bad_function_response`), or its build failed (`build_failed`)", body = ErrorBody),
        (status = 503, description = "Its dependencies are still building (`build_pending`), or no sandbox can be started (Retry-After)", body = ErrorBody),
        (status = 504, description = "The function ran past its timeout (`function_timeout`)", body = ErrorBody)))]
pub async fn call_root(state: State<AppState>, req: Request) -> Response {
    call(state, req).await
}

/// Any method on `/fn/{name}/{path}`: as `/fn/{name}`, with `rawPath` `/{path}`.
#[utoipa::path(method(get, post, put, patch, delete), operation_id = "callFunctionUrlPath", path = "/fn/{name}/{path}", tag = "function URLs",
    params(("name" = String, Path, description = "A function whose `http` setting is `key` or `public`"),
        ("path" = String, Path, description = "Passed to the function as `rawPath` (with a leading `/`); may hold more `/`")),
    request_body(content = String, content_type = "application/octet-stream",
        description = "Any body (at most the input limit); text types are passed as text, others base64"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What the function answered: its `statusCode` (any status), headers and body; a result without `statusCode` is sent as JSON",
            content_type = "*/*", body = serde_json::Value,
            headers(("x-fnbox-execution-id" = String, description = "The execution's id"))),
        (status = "default", description = "Any other status the function's `statusCode` chose, with its headers and body",
            content_type = "*/*", body = serde_json::Value,
            headers(("x-fnbox-execution-id" = String, description = "The execution's id"))),
        (status = 401, description = "The function's `http` is `key` and no valid API key was sent", body = ErrorBody),
        (status = 404, description = "No such function, or its `http` setting is `off` (`not_found`)", body = ErrorBody),
        (status = 413, description = "The body (or the event made of it) is over the input limit", body = ErrorBody),
        (status = 429, description = "The client address's or the key's rate limit was exceeded (`rate_limited`), or the function's queue is full (Retry-After)", body = ErrorBody),
        (status = 502, description = "The function failed (`function_error`: its error's type and message, no stack), ran out of memory, returned an answer that cannot be sent (`bad_function_response`), or its build failed (`build_failed`)", body = ErrorBody),
        (status = 503, description = "Its dependencies are still building (`build_pending`), or no sandbox can be started (Retry-After)", body = ErrorBody),
        (status = 504, description = "The function ran past its timeout (`function_timeout`)", body = ErrorBody)))]
pub async fn call_path(state: State<AppState>, req: Request) -> Response {
    call(state, req).await
}

async fn call(State(state): State<AppState>, req: Request) -> Response {
    let mut resp = match run(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(crate::compression::Verbatim);
    resp
}

async fn run(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let name = event::function_name(parts.uri.path()).to_owned();
    let source_ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    // A key that is not valid is not refused yet: a public function may use the header for
    // its own scheme. A `key` function refuses it below.
    let (caller, refused) = match state.auth.caller(&parts.headers) {
        Ok(c) => (c, None),
        Err(Denied::RateLimited(n)) => return Err(Denied::RateLimited(n).into()),
        Err(d) => (None, Some(d)),
    };
    if caller.is_none() {
        // Without an address (a router driven in-process) all such calls share one bucket.
        let ip = source_ip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        state.auth.charge_address(ip)?;
    }
    if fnbox_core::validation::validate_name(&name).is_err() {
        return Err(not_found(&name));
    }
    let f = match state.engine.find_function(&name).await {
        Ok(f) => f,
        Err(EngineError::FunctionNotFound(_)) => return Err(not_found(&name)),
        Err(e) => return Err(e.into()),
    };
    match f.http {
        HttpAccess::Off => return Err(not_found(&name)),
        HttpAccess::Public => {}
        HttpAccess::Key if caller.is_some() => {}
        HttpAccess::Key => return Err(refused.unwrap_or(Denied::Missing).into()),
    }
    let limit = state.engine.limits().max_input_bytes;
    let bytes = http_body_util::Limited::new(body, limit).collect().await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the request body is over the input limit of {limit} bytes"))
    })?;
    let bytes = bytes.to_bytes();
    let request_id = uuid::Uuid::now_v7().to_string();
    let ev = event::build(&event::Request {
        function: &name,
        method: &parts.method,
        uri: &parts.uri,
        version: parts.version,
        headers: &parts.headers,
        body: &bytes,
        source_ip,
        caller: caller.as_ref().map(|c| c.key_id.to_string()),
        request_id,
        now: Utc::now(),
        hide_authorization: f.http == HttpAccess::Key,
    });
    let text = serde_json::to_string(&ev).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string()))?;
    let raw = RawValue::from_string(text).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e.to_string()))?;
    let exec = state.engine.invoke_by(&name, raw, Trigger::Http).await.map_err(|e| match e {
        EngineError::FunctionNotFound(_) => not_found(&name),
        EngineError::BuildPending(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "build_pending", e.to_string()),
        EngineError::BuildFailed { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "build_failed", e.to_string()),
        other => ApiError::from(other),
    })?;
    let mut resp = match exec.status {
        ExecutionStatus::Success => {
            let out = exec.output.as_ref().map_or("null", |o| o.get());
            response::from_output(out).unwrap_or_else(|bad| {
                ApiError::new(StatusCode::BAD_GATEWAY, "bad_function_response", format!("the function's answer cannot be sent: {bad}"))
                    .into_response()
            })
        }
        status => {
            // Type and message only: a stack names files and lines, not for a public caller
            // (it is in the execution's record).
            let (kind, message) = exec.error.as_ref().map_or(("Error", ""), |e| (e.kind.as_str(), e.message.as_str()));
            let (code, http) = match status {
                ExecutionStatus::Timeout => ("function_timeout", StatusCode::GATEWAY_TIMEOUT),
                ExecutionStatus::Oom => ("function_out_of_memory", StatusCode::BAD_GATEWAY),
                _ => ("function_error", StatusCode::BAD_GATEWAY),
            };
            let text = if message.is_empty() { kind.to_owned() } else { format!("{kind}: {message}") };
            ApiError::new(http, code, text).into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&exec.id.to_string()) {
        resp.headers_mut().insert(EXECUTION_HEADER, v);
    }
    Ok(resp)
}
