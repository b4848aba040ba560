//! The dependencies section of `make bench`: for pyyaml+humanize, numpy (a large wheel with a C
//! extension) and dayjs+lodash, the build's time and size, then cold and warm calls on runc and
//! gVisor. `--only-deps` runs only it (target/bench/deps.{json,md}; with `--write-docs` it
//! replaces its dated section of docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{pct, sh, sorted, start_server_with};

struct Case {
    label: &'static str,
    language: &'static str,
    dependencies: &'static str,
    code: &'static str,
    input: &'static str,
    memory_mb: u32,
}

const CASES: [Case; 3] = [
    Case {
        label: "pyyaml + humanize",
        language: "python",
        dependencies: "pyyaml==6.0.2\nhumanize\n",
        code: "import yaml, humanize\ndef handler(e, c):\n    return [yaml.safe_load(e['y']), humanize.naturalsize(e['n'])]\n",
        input: r#"{"y": "a: [1, 2]", "n": 1000000}"#,
        memory_mb: 128,
    },
    Case {
        label: "numpy",
        language: "python",
        dependencies: "numpy\n",
        code: "import numpy as np\ndef handler(e, c):\n    return float(np.arange(e['n']).sum())\n",
        input: r#"{"n": 1000}"#,
        memory_mb: 256,
    },
    Case {
        label: "dayjs + lodash",
        language: "javascript",
        dependencies: r#"{"dependencies": {"dayjs": "^1.11.10", "lodash": "^4.17.21"}}"#,
        code: "const dayjs = require('dayjs'); const _ = require('lodash');\nexports.handler = async (e) => [dayjs(e.d).add(1, 'day').format('YYYY-MM-DD'), _.sum(e.xs)];\n",
        input: r#"{"d": "2024-02-28", "xs": [1, 2, 3]}"#,
        memory_mb: 128,
    },
];

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Result<Value> {
    let r = http.post(format!("{url}{path}")).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        bail!("{path}: {status} {v}");
    }
    Ok(v)
}

async fn invoke(http: &reqwest::Client, url: &str, name: &str, input: &str) -> Result<(f64, Value)> {
    let t0 = Instant::now();
    let r = http.post(format!("{url}/api/v1/functions/{name}/invoke")).body(input.to_owned()).send().await?;
    let v: Value = r.json().await?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if v["status"] != json!("success") {
        bail!("{name}: {v}");
    }
    Ok((ms, v))
}

async fn wait_ready(http: &reqwest::Client, url: &str, name: &str) -> Result<Value> {
    for _ in 0..10 {
        let r: Value = http.get(format!("{url}/api/v1/functions/{name}/build?wait=120")).send().await?.json().await?;
        match r["status"].as_str() {
            Some("ready") => return Ok(r),
            Some("building") => continue,
            _ => bail!("build of {name}: {r}"),
        }
    }
    bail!("build of {name} did not end")
}

pub async fn run(cold_n: usize, warm_n: usize) -> Result<Value> {
    let server = start_server_with(&[])?;
    let url = server.url.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let mut out = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        eprintln!("== dependencies: {}", case.label);
        let first = format!("deps-{i}-build");
        let t0 = Instant::now();
        post(
            &http,
            &url,
            "/api/v1/functions",
            json!({"name": first, "language": case.language, "runtime": "docker", "code": case.code,
                   "dependencies": case.dependencies, "memory_mb": case.memory_mb, "timeout_ms": 30000}),
        )
        .await?;
        let report = wait_ready(&http, &url, &first).await?;
        let build_s = t0.elapsed().as_secs_f64();
        let b = &report["build"];
        let digest = b["image"].as_str().unwrap_or_default().to_owned();
        let image_bytes: f64 = sh("docker", &["images", "--filter", &format!("label=fnbox.deps={digest}"), "--format", "{{.ID}}"])
            .lines()
            .next()
            .map(|id| sh("docker", &["image", "inspect", "--format", "{{.Size}}", id]))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(f64::NAN);
        let mut per_rt = serde_json::Map::new();
        for rt in ["docker", "gvisor"] {
            // Cold: a new function with the same dependencies (the build is shared, ready at
            // once), first call; warm: calls of the last one.
            let mut cold = Vec::new();
            let mut name = String::new();
            for k in 0..cold_n {
                name = format!("deps-{i}-{rt}-{k}");
                let f = post(
                    &http,
                    &url,
                    "/api/v1/functions",
                    json!({"name": name, "language": case.language, "runtime": rt, "code": case.code,
                           "dependencies": case.dependencies, "memory_mb": case.memory_mb, "timeout_ms": 30000}),
                )
                .await?;
                if f["build"]["status"] != json!("ready") {
                    bail!("{name}: the shared build is not ready at once: {f}");
                }
                let (ms, v) = invoke(&http, &url, &name, case.input).await?;
                if v["cold_start"] != json!(true) {
                    bail!("{name}: the first call was not cold: {v}");
                }
                cold.push(ms);
            }
            let mut warm = Vec::new();
            let mut memory = 0u64;
            for _ in 0..warm_n {
                let (ms, v) = invoke(&http, &url, &name, case.input).await?;
                memory = memory.max(v["memory_bytes"].as_u64().unwrap_or(0));
                warm.push(ms);
            }
            let (cold, warm) = (sorted(cold), sorted(warm));
            per_rt.insert(
                rt.to_owned(),
                json!({
                    "cold_p50_ms": pct(&cold, 50.0), "cold_max_ms": cold.last().copied().unwrap_or(f64::NAN),
                    "warm_p50_ms": pct(&warm, 50.0), "warm_p99_ms": pct(&warm, 99.0),
                    "memory_mib": memory as f64 / 1048576.0,
                }),
            );
        }
        out.push(json!({
            "case": case.label,
            "packages": b["packages"],
            "build_s": build_s,
            "build_recorded_ms": b["duration_ms"],
            "layer_mib": b["size_bytes"].as_f64().map(|x| x / 1048576.0),
            "image_mib": image_bytes / 1048576.0,
            "runtimes": per_rt,
        }));
    }
    drop(server);
    Ok(json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "commit": sh("git", &["rev-parse", "--short", "HEAD"]),
        "machine": crate::machine(),
        "cold_samples": cold_n,
        "warm_samples": warm_n,
        "cases": out,
    }))
}

pub fn markdown(d: &Value, heading: &str) -> String {
    let f = |v: &Value, p: usize| v.as_f64().filter(|x| x.is_finite()).map_or("–".to_owned(), |x| format!("{x:.p$}"));
    let mut s = format!(
        "{heading}\n\nA function's packages are resolved on the host and built into an image layer once \
         ([DEPENDENCIES.md](DEPENDENCIES.md)); measured {} at commit {} ({}). *Build*: from the create \
         request to `build: ready`, downloads included (pip's and npm's caches start empty). *Cold*: \
         the first call of a new function with the same dependencies (the build is shared, so it is \
         ready at once), {} samples per runtime; *warm*: {} calls of one function. End to end through \
         the HTTP API.\n\n\
         | dependencies | packages | build (s) | layer (MiB) | image (MiB) | cold p50 runc / gVisor (ms) | warm p50 runc / gVisor (ms) | warm p99 runc / gVisor (ms) | memory runc / gVisor (MiB) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
        d["commit"].as_str().unwrap_or(""),
        d["machine"].as_str().unwrap_or(""),
        d["cold_samples"],
        d["warm_samples"],
    );
    for c in d["cases"].as_array().cloned().unwrap_or_default() {
        let rt = |r: &str, k: &str, p: usize| f(&c["runtimes"][r][k], p);
        let packages = c["packages"].as_array().map_or(0, Vec::len);
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} |\n",
            c["case"].as_str().unwrap_or(""),
            packages,
            f(&c["build_s"], 1),
            f(&c["layer_mib"], 1),
            f(&c["image_mib"], 0),
            rt("docker", "cold_p50_ms", 0),
            rt("gvisor", "cold_p50_ms", 0),
            rt("docker", "warm_p50_ms", 2),
            rt("gvisor", "warm_p50_ms", 2),
            rt("docker", "warm_p99_ms", 2),
            rt("gvisor", "warm_p99_ms", 2),
            rt("docker", "memory_mib", 0),
            rt("gvisor", "memory_mib", 0),
        ));
    }
    s.push_str(
        "\nThe image column is the whole image (the runtime image it shares is most of it); the layer is \
         what the packages add. A cold call's time is mostly the interpreter importing the packages \
         (byte-compiled at build time, so nothing is compiled at import).\n",
    );
    s
}
