//! The OpenAPI document is valid OpenAPI 3 (checked by a real validator, openapi-spec-validator
//! from PyPI) and describes every route the server answers, with error responses declared.

mod common;

use std::process::Command;

use common::TestServer;
use serde_json::Value;

/// Routes declared in the router, read from its source so a new route cannot slip past.
fn router_routes() -> Vec<String> {
    let src = include_str!("../crates/api/src/routes/mod.rs");
    src.split(".route(\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        // A trailing slash is the same operation as without it (`/fn/{name}/` is `/fn/{name}`
        // with rawPath `/`), documented once.
        // and a catch-all `{*path}` is OpenAPI's `{path}`.
        .map(|r| if r.len() > 1 { r.trim_end_matches('/').replace("{*", "{") } else { r.to_owned() })
        .filter(|r| r != "/" && !r.starts_with("/ui/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_valid_and_complete() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')), "{}", doc["openapi"]);

    let file = s.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write spec");
    let venv_python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-venv/bin/python");
    let out = Command::new(venv_python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("the validator venv is made by `make test` (scripts/test-deps.sh)");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let paths = doc["paths"].as_object().expect("paths");
    let routes = router_routes();
    assert!(routes.len() >= 16, "{routes:?}");
    for r in &routes {
        assert!(paths.contains_key(r), "route {r} is missing from the OpenAPI document");
    }
    // Every operation that takes input declares how it fails, with the shared error body.
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let takes_input = op.get("parameters").is_some() || op.get("requestBody").is_some();
            let responses = op["responses"].as_object().expect("responses");
            let errors: Vec<&Value> = responses.iter().filter(|(k, _)| k.starts_with('4')).map(|(_, v)| v).collect();
            if takes_input {
                assert!(!errors.is_empty(), "{method} {path} declares no 4xx response");
                for e in errors {
                    let schema = &e["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path}: {e}");
                }
            }
        }
    }
    // The interactive docs are served (vendored Swagger UI, no CDN).
    let docs = reqwest::get(format!("{}/api/docs/", s.url)).await.expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.unwrap_or_default().to_lowercase().contains("swagger"));
}
