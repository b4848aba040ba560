//! The event a function URL call hands to the function: AWS Lambda's function URL payload,
//! format version 2.0, so that a Lambda handler runs unchanged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::http::{header, HeaderMap, Method, Uri, Version};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the event is built from.
pub struct Request<'a> {
    pub function: &'a str,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: Option<IpAddr>,
    /// The key that called (`None`: anonymous, a public URL).
    pub caller: Option<String>,
    pub request_id: String,
    pub now: DateTime<Utc>,
    /// Leave `Authorization` out of `headers`: it held the fnbox key, which is not the
    /// function's to see.
    pub hide_authorization: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub version: &'static str,
    pub route_key: &'static str,
    pub raw_path: String,
    pub raw_query_string: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub query_string_parameters: BTreeMap<String, String>,
    pub request_context: RequestContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub account_id: String,
    pub api_id: String,
    pub domain_name: String,
    pub domain_prefix: String,
    pub http: Http,
    pub request_id: String,
    pub route_key: &'static str,
    pub stage: &'static str,
    pub time: String,
    pub time_epoch: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    pub method: String,
    pub path: String,
    pub protocol: &'static str,
    pub source_ip: String,
    pub user_agent: String,
}

/// The part of the path after `/fn/{name}`, as sent (`/` when there is none).
pub fn raw_path(path: &str) -> String {
    let rest = path.strip_prefix("/fn/").unwrap_or("");
    match rest.split_once('/') {
        Some((_, sub)) => format!("/{sub}"),
        None => "/".to_owned(),
    }
}

/// The function's name: the path segment after `/fn/`.
pub fn function_name(path: &str) -> &str {
    let rest = path.strip_prefix("/fn/").unwrap_or("");
    rest.split_once('/').map_or(rest, |(name, _)| name)
}

/// Bodies of these types are passed as text (when they are UTF-8); any other is base64, as
/// Lambda does. No content type at all is text too (curl `--data-binary` without `-H`).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "application/yaml"
                | "application/x-yaml"
                | "application/graphql"
        )
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `key,value` pairs joined the Lambda way: a repeated name's values with ",".
fn joined(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        out.entry(k).and_modify(|old| {
            old.push(',');
            old.push_str(&v);
        }).or_insert(v);
    }
    out
}

pub fn build(r: &Request<'_>) -> Event {
    let text = |v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let cookies: Vec<String> = r
        .headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| text(v).split(';').map(|c| c.trim().to_owned()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect();
    let headers = joined(
        r.headers
            .iter()
            .filter(|(name, _)| *name != header::COOKIE && !(r.hide_authorization && *name == header::AUTHORIZATION))
            .map(|(name, v)| (name.as_str().to_owned(), text(v))),
    );
    let raw_query = r.uri.query().unwrap_or("").to_owned();
    let query = joined(serde_urlencoded::from_str::<Vec<(String, String)>>(&raw_query).unwrap_or_default());
    let (body, is_base64_encoded) = if r.body.is_empty() {
        (None, false)
    } else {
        let content_type = r.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        match std::str::from_utf8(r.body) {
            Ok(s) if is_text(content_type) => (Some(s.to_owned()), false),
            _ => (Some(base64::engine::general_purpose::STANDARD.encode(r.body)), true),
        }
    };
    let host = r
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| r.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    // The host without its port (a bracketed IPv6 address keeps its brackets).
    let domain = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h.to_owned(),
        _ => host,
    };
    let path = raw_path(r.uri.path());
    Event {
        version: "2.0",
        route_key: "$default",
        raw_path: path.clone(),
        raw_query_string: raw_query,
        cookies,
        query_string_parameters: query,
        request_context: RequestContext {
            account_id: r.caller.clone().unwrap_or_else(|| "anonymous".to_owned()),
            api_id: r.function.to_owned(),
            domain_prefix: domain.split('.').next().unwrap_or("").to_owned(),
            domain_name: domain,
            http: Http {
                method: r.method.as_str().to_owned(),
                path,
                protocol: protocol(r.version),
                source_ip: r.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                user_agent: r.headers.get(header::USER_AGENT).map(text).unwrap_or_default(),
            },
            request_id: r.request_id.clone(),
            route_key: "$default",
            stage: "$default",
            time: r.now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            time_epoch: r.now.timestamp_millis(),
        },
        headers,
        body,
        is_base64_encoded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8], method: &'a Method) -> Request<'a> {
        Request {
            function: "echo",
            method,
            uri,
            version: Version::HTTP_11,
            headers,
            body,
            source_ip: Some("10.1.2.3".parse().expect("ip")),
            caller: None,
            request_id: "r1".into(),
            now: DateTime::from_timestamp(1_583_348_638, 390_000_000).expect("time"),
            hide_authorization: true,
        }
    }

    #[test]
    fn builds_the_lambda_2_0_event() {
        let uri: Uri = "/fn/echo/a/b%20c?x=1&y=2&x=3&e=a%2Bb".parse().expect("uri");
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "fn.example.com:8080".parse().expect("v"));
        h.append("x-test", "1".parse().expect("v"));
        h.append("x-test", "2".parse().expect("v"));
        h.append(header::COOKIE, "a=1; b=2".parse().expect("v"));
        h.insert(header::AUTHORIZATION, "Bearer fnbox_secret".parse().expect("v"));
        h.insert(header::USER_AGENT, "curl/8".parse().expect("v"));
        let v = serde_json::to_value(build(&request(&uri, &h, b"hi", &Method::POST))).expect("json");
        assert_eq!(v["version"], "2.0");
        assert_eq!(v["routeKey"], "$default");
        assert_eq!(v["rawPath"], "/a/b%20c");
        assert_eq!(v["rawQueryString"], "x=1&y=2&x=3&e=a%2Bb");
        assert_eq!(v["queryStringParameters"], serde_json::json!({"x": "1,3", "y": "2", "e": "a+b"}));
        assert_eq!(v["headers"]["x-test"], "1,2");
        assert_eq!(v["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert!(v["headers"].get("cookie").is_none() && v["headers"].get("authorization").is_none(), "{v}");
        assert_eq!(v["body"], "hi");
        assert_eq!(v["isBase64Encoded"], false);
        let c = &v["requestContext"];
        assert_eq!(c["http"], serde_json::json!({"method": "POST", "path": "/a/b%20c", "protocol": "HTTP/1.1", "sourceIp": "10.1.2.3", "userAgent": "curl/8"}));
        assert_eq!((c["domainName"].as_str(), c["domainPrefix"].as_str()), (Some("fn.example.com"), Some("fn")));
        assert_eq!((c["accountId"].as_str(), c["apiId"].as_str(), c["stage"].as_str()), (Some("anonymous"), Some("echo"), Some("$default")));
        assert_eq!(c["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(c["timeEpoch"], 1_583_348_638_390_i64);
    }

    #[test]
    fn binary_and_non_text_bodies_are_base64_and_no_body_is_absent() {
        let uri: Uri = "/fn/echo".parse().expect("uri");
        let bytes: Vec<u8> = (0..=255).collect();
        let h = HeaderMap::new();
        let v = serde_json::to_value(build(&request(&uri, &h, &bytes, &Method::PUT))).expect("json");
        assert_eq!(v["isBase64Encoded"], true);
        let back = base64::engine::general_purpose::STANDARD.decode(v["body"].as_str().expect("body")).expect("base64");
        assert_eq!(back, bytes);
        assert_eq!(v["rawPath"], "/");
        let mut png = HeaderMap::new();
        png.insert(header::CONTENT_TYPE, "image/png".parse().expect("v"));
        let v = serde_json::to_value(build(&request(&uri, &png, b"abc", &Method::PUT))).expect("json");
        assert_eq!((v["body"].as_str(), v["isBase64Encoded"].as_bool()), (Some("YWJj"), Some(true)));
        let v = serde_json::to_value(build(&request(&uri, &h, b"", &Method::GET))).expect("json");
        assert!(v.get("body").is_none() && v.get("queryStringParameters").is_none() && v.get("cookies").is_none());
    }

    #[test]
    fn names_and_paths_come_from_the_raw_path() {
        assert_eq!((function_name("/fn/echo"), raw_path("/fn/echo")), ("echo", "/".to_owned()));
        assert_eq!((function_name("/fn/echo/"), raw_path("/fn/echo/")), ("echo", "/".to_owned()));
        assert_eq!((function_name("/fn/echo/a/b"), raw_path("/fn/echo/a/b")), ("echo", "/a/b".to_owned()));
    }
}
