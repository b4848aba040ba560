//! Lists are paged by size as well as by count: records and functions can be large (a
//! function up to ~1.5 MB, an execution up to ~0.5 MB), so a page stops before its JSON would
//! pass [`PAGE_BYTES`], and says where the next one starts in `X-Next-*` and `Link` headers.
//! The body stays a plain JSON array.

use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ApiError;

/// The most JSON a list answer holds (one item is always listed, even a larger one).
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Serializes `items` as a JSON array, at most `limit` of them, stopping before the array would
/// pass `max_bytes` (but never before the first). Returns the body and how many it holds.
pub fn json_array<T: Serialize>(items: &[T], limit: usize, max_bytes: usize) -> Result<(Vec<u8>, usize), ApiError> {
    let mut body = Vec::with_capacity(1024);
    body.push(b'[');
    let mut n = 0;
    let mut one = Vec::new();
    for item in items.iter().take(limit) {
        one.clear();
        serde_json::to_writer(&mut one, item).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "serialization_failed", format!("a listed item could not be serialized: {e}"))
        })?;
        // The comma before it and the closing bracket.
        if n > 0 && body.len() + one.len() + 2 > max_bytes {
            break;
        }
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&one);
        n += 1;
    }
    body.push(b']');
    Ok((body, n))
}

/// A 200 with a JSON array body and, when there is more, the cursor of the next page in
/// `next_header` and as a `Link: <...>; rel="next"` (the same query with `cursor` = `next`).
pub fn response(body: Vec<u8>, uri: &Uri, next_header: &'static str, cursor: &str, next: Option<&str>) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    if let Some(next) = next {
        let mut query: Vec<(String, String)> =
            serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
        query.retain(|(k, _)| k != cursor);
        query.push((cursor.to_owned(), next.to_owned()));
        let link = serde_urlencoded::to_string(&query).map(|q| format!("<{}?{q}>; rel=\"next\"", uri.path()));
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(next) {
            headers.insert(HeaderName::from_static(next_header), v);
        }
        if let Some(v) = link.ok().and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LINK, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_the_budget_but_lists_at_least_one() {
        let items: Vec<String> = (0..10).map(|i| format!("{i}").repeat(100)).collect();
        // Each item is 102 bytes of JSON.
        let (body, n) = json_array(&items, 100, 350).expect("serializes");
        assert_eq!(n, 3);
        assert!(body.len() <= 350);
        let back: Vec<String> = serde_json::from_slice(&body).expect("a JSON array");
        assert_eq!(back, items[..3]);
        assert_eq!(json_array(&items, 100, 10).expect("serializes").1, 1);
        assert_eq!(json_array(&items, 2, 1 << 20).expect("serializes").1, 2);
        let (body, n) = json_array::<String>(&[], 10, 10).expect("serializes");
        assert_eq!((body.as_slice(), n), (&b"[]"[..], 0));
    }

    #[test]
    fn next_link_keeps_the_other_parameters() {
        let uri: Uri = "/api/v1/executions?function=a&before=old&limit=5".parse().expect("uri");
        let resp = response(b"[]".to_vec(), &uri, "x-next-before", "before", Some("0190"));
        assert_eq!(resp.headers()["x-next-before"], "0190");
        assert_eq!(resp.headers()[header::LINK], "</api/v1/executions?function=a&limit=5&before=0190>; rel=\"next\"");
        let resp = response(b"[]".to_vec(), &uri, "x-next-before", "before", None);
        assert!(resp.headers().get(header::LINK).is_none());
    }
}
