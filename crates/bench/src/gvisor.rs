//! The gVisor versions section of `make bench`: the same gVisor measurements on one fnbox
//! server per registered runsc — Debian bookworm's `runsc` (20221219, ptrace platform) and
//! Debian trixie's `runsc-20240729` (systrap), both installed by `make setup` — one after the
//! other in the same run: warm and cold latency, 16-client throughput, idle memory per sandbox,
//! a syscall-heavy function, and `docker run --rm` with each. `--only-gvisor` runs only it
//! (target/bench/gvisor.{json,md}; with `--write-docs` it replaces its dated section of
//! docs/BENCHMARKS.md).

use std::time::Instant;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{baseline_with, call, create, create_call_delete, hello_body, idle_sandbox_mib, machine, pct, sh, sorted, start_server_with, throughput};

/// dockerd's names for the two runsc builds (scripts/lib-setup.sh registers both).
pub const VERSIONS: [&str; 2] = ["runsc", "runsc-20240729"];

/// 500 `stat`s, 50 small file writes and reads and 20 `getpid`-class calls per invocation:
/// what gVisor's platform (ptrace against systrap) costs most on.
const SYSCALLS_PY: &str = r#"import os

def handler(event, context):
    n = 0
    for _ in range(500):
        os.stat('/tmp')
        n += 1
    for i in range(50):
        with open('/tmp/f', 'w') as f:
            f.write('x' * 512)
        with open('/tmp/f') as f:
            n += len(f.read()) > 0
    for _ in range(20):
        os.getpid()
    return n
"#;
const SYSCALLS_JS: &str = r#"const fs = require('fs');
exports.handler = async () => {
  let n = 0;
  for (let i = 0; i < 500; i++) { fs.statSync('/tmp'); n++; }
  for (let i = 0; i < 50; i++) {
    fs.writeFileSync('/tmp/f', 'x'.repeat(512));
    n += fs.readFileSync('/tmp/f', 'utf8').length > 0 ? 1 : 0;
  }
  for (let i = 0; i < 20; i++) { process.pid; }
  return n;
};
"#;

fn registered() -> Vec<String> {
    let out = sh("docker", &["info", "--format", "{{json .Runtimes}}"]);
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

fn version_of(name: &str) -> String {
    let out = sh("docker", &["info", "--format", "{{json .Runtimes}}"]);
    let path = serde_json::from_str::<Value>(&out).ok().and_then(|v| v[name]["path"].as_str().map(str::to_owned));
    path.map(|p| sh(&p, &["--version"]).lines().next().unwrap_or("").to_owned()).unwrap_or_default()
}

pub async fn run(warm: usize, cold: usize, seconds: f64, baseline_n: usize) -> Result<Value> {
    let have = registered();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let mut versions = Vec::new();
    for v in VERSIONS {
        if !have.iter().any(|h| h == v) {
            versions.push(json!({"runtime": v, "skipped": "not registered with dockerd (run `make setup`)"}));
            continue;
        }
        eprintln!("== gVisor {v}");
        let server = start_server_with(&["--gvisor-runtime", v])?;
        let url = server.url.clone();
        let mut langs = serde_json::Map::new();
        for lang in ["python", "javascript"] {
            let key = format!("{lang}/gvisor/128mb");
            let mut colds = Vec::new();
            for i in 0..cold {
                let body = hello_body(&format!("cold-{}-{i}", &lang[..2]), lang, "gvisor", 1);
                colds.push(create_call_delete(&http, &url, &key, &body).await?.1);
            }
            let name = format!("hello-{}", &lang[..2]);
            create(&http, &url, &name, lang, "gvisor", 16).await?;
            call(&http, &url, &name).await?;
            let mut warms = Vec::with_capacity(warm);
            for _ in 0..warm {
                warms.push(call(&http, &url, &name).await?.0);
            }
            let idle = idle_sandbox_mib(lang, "gvisor");
            let (tput, _) = throughput(&http, &url, &name, 16, seconds).await?;
            // The syscall-heavy function: end to end, and the sandbox's own execution time.
            let sys = format!("syscalls-{}", &lang[..2]);
            let code = if lang == "python" { SYSCALLS_PY } else { SYSCALLS_JS };
            let body = json!({"name": sys, "language": lang, "runtime": "gvisor", "code": code, "timeout_ms": 30000});
            let r = http.post(format!("{url}/api/v1/functions")).json(&body).send().await?;
            if !r.status().is_success() {
                bail!("create {sys}: {}", r.text().await?);
            }
            let (mut sys_e2e, mut sys_exec) = (Vec::new(), Vec::new());
            for i in 0..=(warm / 10).max(10) {
                let t0 = Instant::now();
                let r: Value = http.post(format!("{url}/api/v1/functions/{sys}/invoke")).body("{}").send().await?.json().await?;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                if r["status"] != json!("success") {
                    bail!("{v}/{sys}: {r}");
                }
                if i > 0 {
                    sys_e2e.push(ms);
                    sys_exec.push(r["exec_ms"].as_f64().unwrap_or(f64::NAN));
                }
            }
            let (warms, colds, sys_e2e, sys_exec) = (sorted(warms), sorted(colds), sorted(sys_e2e), sorted(sys_exec));
            let base = sorted(baseline_with(lang, v, baseline_n));
            langs.insert(
                lang.to_owned(),
                json!({
                    "warm_p50_ms": pct(&warms, 50.0), "warm_p99_ms": pct(&warms, 99.0),
                    "cold_p50_ms": pct(&colds, 50.0), "cold_p99_ms": pct(&colds, 99.0),
                    "throughput_16_per_s": tput,
                    "idle_sandbox_mib": idle,
                    "syscalls_p50_ms": pct(&sys_e2e, 50.0), "syscalls_exec_p50_ms": pct(&sys_exec, 50.0),
                    "docker_run_p50_ms": pct(&base, 50.0),
                }),
            );
        }
        drop(server);
        versions.push(json!({"runtime": v, "version": version_of(v), "results": langs}));
    }
    Ok(json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": machine(),
        "commit": sh("git", &["rev-parse", "--short", "HEAD"]),
        "warm": warm, "cold": cold,
        "versions": versions,
    }))
}

pub fn markdown(d: &Value, heading: &str) -> String {
    let f = |v: &Value, p: usize| v.as_f64().filter(|x| x.is_finite()).map_or("–".to_owned(), |x| format!("{x:.p$}"));
    let vs = d["versions"].as_array().cloned().unwrap_or_default();
    let mut s = format!(
        "{heading}\n\nMeasured {} at commit {} ({}): one fnbox server per runsc build, one after the other, \
         hello-world end to end through the HTTP API ({} warm calls, {} cold starts from a pre-started sandbox, \
         16 clients for throughput); the syscall function makes 500 `stat`s, 50 small file write+read pairs \
         and 20 `getpid`s per call.\n\n",
        d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
        d["commit"].as_str().unwrap_or(""),
        d["machine"].as_str().unwrap_or(""),
        d["warm"],
        d["cold"],
    );
    let mut header = "| figure |".to_owned();
    let mut rule = "|---|".to_owned();
    for v in &vs {
        for lang in ["python", "js"] {
            header.push_str(&format!(" {lang}, `{}` |", v["runtime"].as_str().unwrap_or("")));
            rule.push_str("---|");
        }
    }
    s.push_str(&header);
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    let rows: [(&str, &str, usize); 9] = [
        ("warm p50 (ms)", "warm_p50_ms", 3),
        ("warm p99 (ms)", "warm_p99_ms", 3),
        ("cold start p50 (ms, pool warm)", "cold_p50_ms", 1),
        ("cold start p99 (ms)", "cold_p99_ms", 1),
        ("throughput, 16 clients (calls/s)", "throughput_16_per_s", 0),
        ("idle memory per sandbox (MiB)", "idle_sandbox_mib", 1),
        ("syscall function p50, end to end (ms)", "syscalls_p50_ms", 2),
        ("syscall function p50, in the sandbox (ms)", "syscalls_exec_p50_ms", 2),
        ("`docker run --rm` p50 (ms)", "docker_run_p50_ms", 0),
    ];
    for (label, k, p) in rows {
        s.push_str(&format!("| {label} |"));
        for v in &vs {
            for lang in ["python", "javascript"] {
                s.push_str(&format!(" {} |", f(&v["results"][lang][k], p)));
            }
        }
        s.push('\n');
    }
    for v in &vs {
        match v["skipped"].as_str() {
            Some(why) => s.push_str(&format!("\n`{}` skipped: {why}.\n", v["runtime"].as_str().unwrap_or(""))),
            None => s.push_str(&format!("\n`{}`: {}.", v["runtime"].as_str().unwrap_or(""), v["version"].as_str().unwrap_or("?"))),
        }
    }
    s.push('\n');
    s
}
