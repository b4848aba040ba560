//! A function's return value as the HTTP answer, the Lambda function URL way: an object with
//! `statusCode` says the status, `headers`, `cookies`, `body` and `isBase64Encoded`; any other
//! JSON value is the body of a 200 `application/json` answer, as it was returned.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::Value;

/// Why a return value cannot be sent: the function's fault, answered 502.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadResult {
    #[error("statusCode must be an integer from 100 to 599 (got {0})")]
    Status(String),
    #[error("headers must be an object of strings (header `{0}` is not one)")]
    HeaderType(String),
    #[error("`{0}` is not a valid header name")]
    HeaderName(String),
    #[error("the value of header `{0}` is not a valid header value (control characters or a line break)")]
    HeaderValue(String),
    #[error("cookies must be an array of valid header values")]
    Cookies,
    #[error("isBase64Encoded is true but the body is not valid base64")]
    Base64,
    #[error("the return value is not JSON")]
    NotJson,
}

/// Headers fnbox's HTTP server sets itself (the body's framing, the connection): a
/// function's are left out rather than contradict them.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive" | "upgrade" | "te" | "trailer" | "proxy-connection"
    )
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn header_text(name: &str, v: &Value) -> Result<String, BadResult> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(BadResult::HeaderType(name.to_owned())),
    }
}

/// The answer for a function's return value (`raw`: its JSON text, exactly as returned).
pub fn from_output(raw: &str) -> Result<Response, BadResult> {
    let trimmed = raw.trim_start();
    if !trimmed.starts_with('{') {
        return Ok(json_response(StatusCode::OK, raw.to_owned()));
    }
    let obj: serde_json::Map<String, Value> = serde_json::from_str(raw).map_err(|_| BadResult::NotJson)?;
    let Some(status) = obj.get("statusCode") else {
        return Ok(json_response(StatusCode::OK, raw.to_owned()));
    };
    let status = status
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(|| BadResult::Status(status.to_string()))?;
    let mut headers = axum::http::HeaderMap::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, v) in h {
                let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadResult::HeaderName(name.clone()))?;
                let value = HeaderValue::from_str(&header_text(name, v)?).map_err(|_| BadResult::HeaderValue(name.clone()))?;
                if !is_hop_by_hop(&n) {
                    headers.append(n, value);
                }
            }
        }
        Some(_) => return Err(BadResult::HeaderType("headers".into())),
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for c in cookies {
                let value = c.as_str().and_then(|s| HeaderValue::from_str(s).ok()).ok_or(BadResult::Cookies)?;
                headers.append(header::SET_COOKIE, value);
            }
        }
        Some(_) => return Err(BadResult::Cookies),
    }
    let base64 = obj.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body: Vec<u8> = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| BadResult::Base64)?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        // Not Lambda's contract, but plain: a structured body is sent as its JSON.
        Some(other) => other.to_string().into_bytes(),
    };
    if !headers.contains_key(header::CONTENT_TYPE) && !body.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body").to_vec()
    }

    #[tokio::test]
    async fn a_status_code_object_sets_the_answer() {
        let r = from_output(r#"{"statusCode":201,"headers":{"x-a":"1","X-N":2,"content-length":"999"},"cookies":["a=1","b=2; Path=/"],"body":"made"}"#)
            .expect("valid");
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers()["x-n"], "2");
        assert!(r.headers().get("content-length").is_none(), "framing is the server's");
        let cookies: Vec<_> = r.headers().get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2; Path=/"]);
        assert_eq!(body(r).await, b"made");
        let r = from_output(r#"{"statusCode":200,"isBase64Encoded":true,"body":"AAEC/w=="}"#).expect("valid");
        assert_eq!(body(r).await, [0, 1, 2, 255]);
    }

    #[tokio::test]
    async fn anything_else_is_json_with_200() {
        for raw in [r#"{"ok":true,"n":18446744073709551617}"#, r#""text""#, "42", "[1,2]", "null"] {
            let r = from_output(raw).expect("valid");
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(body(r).await, raw.as_bytes(), "sent exactly as returned");
        }
    }

    #[test]
    fn bad_results_are_named() {
        let bad = |raw: &str| from_output(raw).err();
        assert_eq!(bad(r#"{"statusCode":99}"#), Some(BadResult::Status("99".into())));
        assert_eq!(bad(r#"{"statusCode":"200"}"#), Some(BadResult::Status("\"200\"".into())));
        assert_eq!(bad(r#"{"statusCode":200,"headers":{"bad name":"x"}}"#), Some(BadResult::HeaderName("bad name".into())));
        assert_eq!(bad(r#"{"statusCode":200,"headers":{"x":"a\nb"}}"#), Some(BadResult::HeaderValue("x".into())));
        assert_eq!(bad(r#"{"statusCode":200,"headers":{"x":{}}}"#), Some(BadResult::HeaderType("x".into())));
        assert_eq!(bad(r#"{"statusCode":200,"cookies":[1]}"#), Some(BadResult::Cookies));
        assert_eq!(bad(r#"{"statusCode":200,"isBase64Encoded":true,"body":"@@"}"#), Some(BadResult::Base64));
    }
}
