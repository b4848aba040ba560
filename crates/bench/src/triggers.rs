//! The triggers section of `make bench`: a warm call through the function URL beside the same
//! call through the API; asynchronous calls (the 202's latency, then how fast a burst drains
//! through the durable queue, and from acceptance to a final record); and how many times an
//! every-second schedule fires in 10 s. `--only-triggers` runs only it (target/bench/triggers.
//! {json,md}; with `--write-docs` it replaces its dated section of docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{pct, sh, sorted, start_server_with};

const ECHO: &str = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'} if 'rawPath' in event else event\n";

async fn timed(req: reqwest::RequestBuilder) -> Result<(f64, u16, String)> {
    let t0 = Instant::now();
    let r = req.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((t0.elapsed().as_secs_f64() * 1000.0, status, text))
}

fn stats(v: Vec<f64>) -> Value {
    let v = sorted(v);
    json!({"p50_ms": pct(&v, 50.0), "p99_ms": pct(&v, 99.0), "n": v.len()})
}

pub async fn run(warm: usize) -> Result<Value> {
    let server = start_server_with(&["--http-rate-limit", "0"])?;
    let url = server.url.clone();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let body = json!({"name": "echo", "language": "python", "runtime": "docker", "code": ECHO, "http": "public", "concurrency": 8});
    let r = http.post(format!("{url}/api/v1/functions")).json(&body).send().await?;
    if !r.status().is_success() {
        bail!("create: {}", r.text().await?);
    }
    // Warm: the API's invoke and the function URL, alternating, one client.
    let (mut api, mut fnurl) = (Vec::new(), Vec::new());
    for i in 0..=warm {
        let (a, sa, _) = timed(http.post(format!("{url}/api/v1/functions/echo/invoke")).body("{}")).await?;
        let (u, su, _) = timed(http.post(format!("{url}/fn/echo/x?y=1")).body("hello")).await?;
        if sa != 200 || su != 200 {
            bail!("warm calls answered {sa} / {su}");
        }
        if i > 0 {
            api.push(a);
            fnurl.push(u);
        }
    }
    // Async: a burst of accepts from 8 clients, then the drain to final records.
    let n = warm.min(1000);
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for c in 0..8 {
        let (http, url) = (http.clone(), url.clone());
        set.spawn(async move {
            let mut out = Vec::new();
            for i in (c..n).step_by(8) {
                let req = http.post(format!("{url}/api/v1/functions/echo/invoke")).header("prefer", "respond-async").body(format!("{{\"i\":{i}}}"));
                let (ms, status, _) = timed(req).await?;
                if status != 202 {
                    bail!("accept answered {status}");
                }
                out.push(ms);
            }
            Ok::<_, anyhow::Error>(out)
        });
    }
    let mut accept = Vec::new();
    for r in set.join_all().await {
        accept.extend(r?);
    }
    let accepted_s = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let q: Value = http.get(format!("{url}/api/v1/queue")).send().await?.json().await?;
        if q["depth"] == json!(0) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the queue did not drain: {q}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_s = t0.elapsed().as_secs_f64();
    let records: Value = http.get(format!("{url}/api/v1/executions?function=echo&trigger=async&limit=1000")).send().await?.json().await?;
    let ok = records.as_array().map_or(0, |v| v.iter().filter(|e| e["status"] == json!("success")).count());

    // An every-second schedule for 10 s.
    let ms = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 100)).await;
    let s: Value = http.post(format!("{url}/api/v1/functions/echo/schedules")).json(&json!({"cron": "* * * * * *"})).send().await?.json().await?;
    let id = s["id"].as_str().unwrap_or_default().to_owned();
    tokio::time::sleep(Duration::from_secs(10)).await;
    http.delete(format!("{url}/api/v1/schedules/{id}")).send().await?;
    let fired: Value = http.get(format!("{url}/api/v1/executions?function=echo&trigger=schedule&limit=100")).send().await?.json().await?;
    drop(server);
    Ok(json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "commit": sh("git", &["rev-parse", "--short", "HEAD"]),
        "machine": crate::machine(),
        "warm_api": stats(api),
        "warm_function_url": stats(fnurl),
        "async_calls": n,
        "async_ok": ok,
        "accept": stats(accept),
        "accepted_per_s": n as f64 / accepted_s,
        "drained_s": drained_s,
        "drained_per_s": n as f64 / drained_s,
        "schedule_fires_in_10s": fired.as_array().map_or(0, Vec::len),
    }))
}

pub fn markdown(d: &Value, heading: &str) -> String {
    let f = |v: &Value, p: usize| v.as_f64().filter(|x| x.is_finite()).map_or("–".to_owned(), |x| format!("{x:.p$}"));
    format!(
        "{heading}\n\nMeasured {} at commit {} ({}), one Python function on runc, end to end over HTTP.\n\n\
         | what | p50 (ms) | p99 (ms) | other |\n|---|---|---|---|\n\
         | warm call, API `invoke` | {} | {} | {} calls |\n\
         | warm call, function URL (`/fn/echo/x?y=1`, payload 2.0 event and response) | {} | {} | {} calls |\n\
         | asynchronous accept (`Prefer: respond-async`, 202 after the commit), 8 clients | {} | {} | {:.0} accepted/s |\n\
         | the same {} calls, accept to the last final record | | | {:.2} s, {:.0} calls/s, {} succeeded |\n\
         | every-second schedule, 10 s | | | {} fires |\n",
        d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
        d["commit"].as_str().unwrap_or(""),
        d["machine"].as_str().unwrap_or(""),
        f(&d["warm_api"]["p50_ms"], 2),
        f(&d["warm_api"]["p99_ms"], 2),
        d["warm_api"]["n"],
        f(&d["warm_function_url"]["p50_ms"], 2),
        f(&d["warm_function_url"]["p99_ms"], 2),
        d["warm_function_url"]["n"],
        f(&d["accept"]["p50_ms"], 2),
        f(&d["accept"]["p99_ms"], 2),
        d["accepted_per_s"].as_f64().unwrap_or(f64::NAN),
        d["async_calls"],
        d["drained_s"].as_f64().unwrap_or(f64::NAN),
        d["drained_per_s"].as_f64().unwrap_or(f64::NAN),
        d["async_ok"],
        d["schedule_fires_in_10s"],
    )
}
