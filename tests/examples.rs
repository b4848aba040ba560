//! The contract from the original description: every example, in both languages, on both
//! sandboxes, gives exactly the documented output — cold and then warm. The examples with
//! dependencies are created with them and called once their build is ready.

mod common;

use common::{contract, dependency_contract, TestServer};
use serde_json::json;

async fn run_examples(runtime: &str) {
    let server = TestServer::start(&[]).await;
    server.require_runtimes().await;
    let templates = server.templates().await;
    for language in ["python", "javascript"] {
        for (slug, input, expected) in contract() {
            let t = templates
                .iter()
                .find(|t| t["slug"] == json!(slug) && t["language"] == json!(language))
                .unwrap_or_else(|| panic!("template {slug}/{language} missing"));
            let name = format!("{slug}-{}-{runtime}", &language[..2]);
            let code = t["code"].as_str().expect("code");
            server.create(&name, language, runtime, code, json!({"sample_input": t["sample_input"]})).await;
            for round in ["cold", "warm"] {
                let r = server.invoke(&name, &input).await;
                assert_eq!(r["status"], json!("success"), "{name} ({round}): {r}");
                assert_eq!(r["output"], expected, "{name} ({round}): {r}");
                assert_eq!(r["cold_start"], json!(round == "cold"), "{name} ({round}): {r}");
                assert_eq!(r["runtime"], json!(runtime));
                assert!(r["memory_bytes"].as_u64().unwrap_or(0) > 0, "{name}: memory measured: {r}");
            }
        }
    }
    for (slug, language, input, expected) in dependency_contract() {
        let t = templates
            .iter()
            .find(|t| t["slug"] == json!(slug) && t["language"] == json!(language))
            .unwrap_or_else(|| panic!("template {slug}/{language} missing"));
        let deps = t["dependencies"].as_str().unwrap_or_else(|| panic!("template {slug} has dependencies: {t}"));
        let name = format!("{slug}-{}-{runtime}", &language[..2]);
        let code = t["code"].as_str().expect("code");
        let f = server.create(&name, language, runtime, code, json!({"sample_input": t["sample_input"], "dependencies": deps})).await;
        assert_ne!(f["build"]["status"], json!("none"), "{name} has a build: {f}");
        let report = server.wait_build_ready(&name, 120).await;
        assert!(!report["build"]["packages"].as_array().map_or(true, Vec::is_empty), "{name}: packages listed: {report}");
        for round in ["cold", "warm"] {
            let r = server.invoke(&name, &input).await;
            assert_eq!(r["status"], json!("success"), "{name} ({round}): {r}");
            assert_eq!(r["output"], expected, "{name} ({round}): {r}");
            assert_eq!(r["cold_start"], json!(round == "cold"), "{name} ({round}): {r}");
            assert_eq!(r["runtime"], json!(runtime));
        }
        // The sample input gives the documented output too.
        let r = server.invoke(&name, &t["sample_input"]).await;
        assert_eq!(r["output"], t["expected_output"], "{name} on its sample input: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_on_docker() {
    run_examples("docker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_on_gvisor() {
    run_examples("gvisor").await;
}
