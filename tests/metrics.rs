//! Aggregates, comparisons and Prometheus figures agree with the execution records.

mod common;

use std::collections::HashMap;

use common::TestServer;
use serde_json::{json, Value};

fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_matches_the_records_and_prometheus_counts_them() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    let code = "def handler(event, context):\n    if event['i'] % 5 == 0:\n        raise ValueError('every fifth fails')\n    return event['i']\n";
    for rt in ["docker", "gvisor"] {
        s.create(&format!("mix-{rt}"), "python", rt, code, json!({})).await;
        for i in 0..50 {
            s.invoke(&format!("mix-{rt}"), &json!({"i": i})).await;
        }
    }
    let (st, summary) = s.get("/api/v1/metrics/summary").await;
    assert_eq!(st, 200, "{summary}");
    for rt in ["docker", "gvisor"] {
        let name = format!("mix-{rt}");
        let (_, recs) = s.get(&format!("/api/v1/executions?function={name}&limit=1000")).await;
        let recs = recs.as_array().cloned().unwrap_or_default();
        assert_eq!(recs.len(), 50);
        let ok = recs.iter().filter(|e| e["status"] == json!("success")).count();
        assert_eq!(ok, 40);
        let mut d: Vec<f64> = recs.iter().filter_map(|e| e["duration_ms"].as_f64()).collect();
        d.sort_by(|a, b| a.total_cmp(b));
        let mut warm: Vec<f64> = recs.iter().filter(|e| e["cold_start"] == json!(false)).filter_map(|e| e["duration_ms"].as_f64()).collect();
        warm.sort_by(|a, b| a.total_cmp(b));
        let row = summary
            .as_array()
            .and_then(|a| a.iter().find(|r| r["function"] == json!(name) && r["runtime"] == json!(rt)))
            .unwrap_or_else(|| panic!("no summary row for {name}: {summary}"));
        assert_eq!(row["invocations"], json!(50));
        assert_eq!(row["successes"], json!(40));
        assert_eq!(row["success_rate"], json!(0.8));
        assert_eq!(row["by_status"], json!({"error": 10, "success": 40}));
        assert_eq!(row["by_error_type"], json!({"ValueError": 10}));
        for (p, key) in [(50.0, "p50"), (90.0, "p90"), (99.0, "p99")] {
            assert_eq!(row["duration_ms"][key].as_f64(), Some(nearest_rank(&d, p)), "{key} of {name}");
        }
        assert_eq!(row["duration_ms"]["max"].as_f64(), d.last().copied());
        assert_eq!(row["warm_duration_ms"]["p50"].as_f64(), Some(nearest_rank(&warm, 50.0)));
        assert_eq!(row["cold_starts"], json!(recs.iter().filter(|e| e["cold_start"] == json!(true)).count()));
    }

    // Errors are grouped by function, type and message.
    let (_, errors) = s.get("/api/v1/errors?function=mix-docker").await;
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(errors[0]["count"], json!(10));
    assert_eq!(errors[0]["error_type"], json!("ValueError"));
    assert_eq!(errors[0]["message"], json!("every fifth fails"));

    // Time series buckets add up to the executions.
    let (st, ts) = s.get("/api/v1/metrics/timeseries?function=mix-gvisor&bucket=10s").await;
    assert_eq!(st, 200, "{ts}");
    let total: u64 = ts.as_array().into_iter().flatten().filter_map(|b| b["count"].as_u64()).sum();
    let errs: u64 = ts.as_array().into_iter().flatten().filter_map(|b| b["errors"].as_u64()).sum();
    assert_eq!((total, errs), (50, 10));
    assert_eq!(s.get("/api/v1/metrics/timeseries?bucket=1y").await.0, 400);
    assert_eq!(s.get("/api/v1/metrics/timeseries?bucket=1s&since=2000-01-01T00:00:00Z").await.0, 422);

    // Prometheus: parses, and its counters equal the records.
    let text = reqwest::get(format!("{}/metrics", s.url)).await.expect("scrape").text().await.expect("body");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    let mut counted: HashMap<(String, String), f64> = HashMap::new();
    for sample in &scrape.samples {
        if sample.metric == "fnbox_invocations_total" {
            if let prometheus_parse::Value::Counter(v) = sample.value {
                let key = (sample.labels.get("function").unwrap_or("").to_string(), sample.labels.get("status").unwrap_or("").to_string());
                *counted.entry(key).or_insert(0.0) += v;
            }
        }
    }
    for rt in ["docker", "gvisor"] {
        let name = format!("mix-{rt}");
        assert_eq!(counted.get(&(name.clone(), "success".into())), Some(&40.0), "{text}");
        assert_eq!(counted.get(&(name.clone(), "error".into())), Some(&10.0), "{text}");
    }
    assert!(scrape.samples.iter().any(|s| s.metric.starts_with("fnbox_invocation_duration_seconds")), "histogram present");
    assert!(scrape.samples.iter().any(|s| s.metric == "fnbox_pool_idle_sandboxes"), "pool gauge present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_fibonacci_on_both_runtimes() {
    let s = TestServer::start(&[]).await;
    s.require_runtimes().await;
    let templates = s.templates().await;
    let fib = templates.iter().find(|t| t["slug"] == json!("fibonacci") && t["language"] == json!("python")).expect("template");
    s.create("fib", "python", "docker", fib["code"].as_str().unwrap_or(""), json!({"sample_input": {"n": 10}})).await;
    let (st, c) = s.post("/api/v1/functions/fib/compare", &json!({"iterations": 10})).await;
    assert_eq!(st, 201, "{c}");
    for rt in ["docker", "gvisor"] {
        let side: &Value = &c[rt];
        assert_eq!(side["runtime"], json!(rt));
        assert_eq!(side["success_rate"], json!(1.0), "{c}");
        assert_eq!(side["invocations"], json!(11));
        assert!(side["cold_start_ms"].as_f64().unwrap_or(0.0) > 0.0);
        assert!(side["warm_p50_ms"].as_f64().is_some());
        assert!(side["memory_max_bytes"].as_f64().unwrap_or(0.0) > 0.0);
        assert_eq!(side["warm_durations_ms"].as_array().map(Vec::len), Some(10));
    }
    for k in ["cold_start_ms", "warm_p50_ms", "warm_p99_ms", "memory_p50_bytes", "success_rate"] {
        assert!(c["ratios"][k].as_f64().is_some(), "ratio {k}: {c}");
    }
    // Listed afterwards, and the temporary siblings are gone.
    let (_, list) = s.get("/api/v1/comparisons").await;
    assert!(list.as_array().is_some_and(|l| l.iter().any(|x| x["id"] == c["id"])), "{list}");
    let (st, one) = s.get(&format!("/api/v1/comparisons/{}", c["id"].as_str().unwrap_or(""))).await;
    assert_eq!(st, 200);
    assert_eq!(one["function"], json!("fib"));
    let (_, fns) = s.get("/api/v1/functions").await;
    assert_eq!(fns.as_array().map(Vec::len), Some(1), "siblings removed: {fns}");
    assert_eq!(s.post("/api/v1/functions/fib/compare", &json!({"iterations": 0})).await.0, 422);
    assert_eq!(s.post("/api/v1/functions/nope/compare", &json!({})).await.0, 404);
}
