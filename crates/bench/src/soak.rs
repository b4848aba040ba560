//! `make soak`: a bounded soak of mixed functions and failures against a real fnbox, watching
//! fnbox's own memory (RSS) and open file descriptors. Both must stay flat: after a warm-up
//! minute, the last samples may not exceed the first ones by more than a small margin. Each
//! live sandbox holds a few descriptors of fnbox's (its channel, its cgroup files), and the
//! pools grow and shrink with demand, so descriptors are judged net of the sandboxes alive at
//! each sample (descriptors per sandbox fitted over the run).
//! Writes target/bench/soak.{json,md}; `--write-docs` also writes docs/SOAK.md.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{rss_mib, start_server};

/// One sample: seconds since the start, fnbox's RSS (MiB), its open descriptors, live sandboxes
/// (None when the pools could not be read in time).
type Sample = (u64, f64, usize, Option<usize>);

/// The most descriptors fnbox holds for one sandbox (its channel socket and the Docker API
/// connection of its attach stream, its three kept-open cgroup files, and a spare).
const MAX_FDS_PER_SANDBOX: f64 = 8.0;

/// (name, language, runtime, code, input, expected status)
const WORKLOAD: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("ok-py-runc", "python", "docker", "def handler(e, c):\n    print('hi')\n    return e['n'] * 2\n", r#"{"n":21}"#, "success"),
    ("ok-js-runc", "javascript", "docker", "exports.handler = async (e) => { console.log('hi'); return e.n * 2; };\n", r#"{"n":21}"#, "success"),
    ("ok-py-gvisor", "python", "gvisor", "def handler(e, c):\n    return sorted(e['a'])\n", r#"{"a":[3,1,2]}"#, "success"),
    ("ok-js-gvisor", "javascript", "gvisor", "exports.handler = (e) => e.a.slice().sort();\n", r#"{"a":[3,1,2]}"#, "success"),
    ("raise-py", "python", "docker", "def handler(e, c):\n    raise ValueError('soak')\n", "{}", "error"),
    ("throw-js", "javascript", "gvisor", "exports.handler = () => { throw new TypeError('soak'); };\n", "{}", "error"),
    ("spin-py", "python", "docker", "def handler(e, c):\n    while True:\n        pass\n", "{}", "timeout"),
    ("exit-js", "javascript", "docker", "exports.handler = () => process.exit(3);\n", "{}", "error"),
    ("hog-py", "python", "gvisor", "def handler(e, c):\n    x = []\n    while True:\n        x.append(bytearray(1 << 20))\n", "{}", "oom"),
    ("big-py", "python", "docker", "def handler(e, c):\n    return 'x' * (8 << 20)\n", "{}", "error"),
];

/// How often each function is called, in a round of the mix: mostly quick successes.
fn weight(name: &str) -> usize {
    if name.starts_with("ok-") {
        12
    } else {
        1
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub async fn run(seconds: u64, clients: usize, write_docs: bool) -> Result<()> {
    let server = start_server()?;
    let url = server.url.clone();
    let pid = server.child.id();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    for (name, lang, rt, code, _, _) in WORKLOAD {
        let timeout = if name.starts_with("spin") { 500 } else { 5000 };
        let memory = if name.starts_with("hog") { 64 } else { 128 };
        let r = http
            .post(format!("{url}/api/v1/functions"))
            .json(&json!({"name": name, "language": lang, "runtime": rt, "code": code,
                          "timeout_ms": timeout, "memory_mb": memory, "concurrency": 4}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("create {name}: {}", r.text().await?);
        }
    }
    let mix: Vec<usize> = (0..WORKLOAD.len()).flat_map(|i| std::iter::repeat_n(i, weight(WORKLOAD[i].0))).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, mix) = (http.clone(), url.clone(), mix.clone());
            tokio::spawn(async move {
                let (mut n, mut wrong) = (0u64, Vec::new());
                let mut i = c * 7;
                while Instant::now() < deadline {
                    let (name, _, _, _, input, want) = WORKLOAD[mix[i % mix.len()]];
                    i += 1;
                    let r = http.post(format!("{url}/api/v1/functions/{name}/invoke")).body(input).send().await;
                    let body: Value = match r {
                        Ok(r) => r.json().await.unwrap_or(Value::Null),
                        Err(e) => json!({"status": format!("transport error: {e}")}),
                    };
                    n += 1;
                    if body["status"] != json!(want) && wrong.len() < 5 {
                        wrong.push(format!("{name}: wanted {want}, got {body}"));
                    }
                }
                (n, wrong)
            })
        })
        .collect();
    let live_sandboxes = || async {
        let pools: Value = match http.get(format!("{url}/api/v1/pools")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        // None when fnbox did not answer in time: such a sample is left out of the judgement.
        pools["sandboxes"].as_u64().map(|n| n as usize)
    };
    let mut samples: Vec<Sample> = Vec::new();
    while Instant::now() < deadline {
        let sample = (t0.elapsed().as_secs(), rss_mib(pid), open_fds(pid), live_sandboxes().await);
        eprintln!("soak t={:>4}s rss={:.1} MiB fds={} sandboxes={:?}", sample.0, sample.1, sample.2, sample.3);
        samples.push(sample);
        tokio::time::sleep(Duration::from_secs(10).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
    let (mut calls, mut wrong) = (0u64, Vec::new());
    for w in workers {
        let (n, bad) = w.await?;
        calls += n;
        wrong.extend(bad);
    }
    samples.push((t0.elapsed().as_secs(), rss_mib(pid), open_fds(pid), live_sandboxes().await));
    let (_, pools): (u16, Value) = {
        let r = http.get(format!("{url}/api/v1/pools")).send().await?;
        (r.status().as_u16(), r.json().await?)
    };
    let summary: Value = http.get(format!("{url}/api/v1/metrics/summary")).send().await?.json().await?;
    let recorded: u64 = summary
        .as_array()
        .or_else(|| summary["groups"].as_array())
        .map(|g| g.iter().filter_map(|x| x["invocations"].as_u64()).sum())
        .unwrap_or(0);

    // Flat: compare the mean of the last third with the first third after the first minute.
    let steady: Vec<(u64, f64, usize, usize)> = samples
        .iter()
        .filter(|s| s.0 >= 60.min(seconds / 3))
        .filter_map(|s| s.3.map(|sandboxes| (s.0, s.1, s.2, sandboxes)))
        .collect();
    let steady: Vec<&(u64, f64, usize, usize)> = steady.iter().collect();
    let third = (steady.len() / 3).max(1);
    type Judged = (u64, f64, usize, usize);
    let mean = |xs: &[&Judged], f: &dyn Fn(&Judged) -> f64| xs.iter().map(|s| f(s)).sum::<f64>() / xs.len().max(1) as f64;
    let (first, last) = (&steady[..third.min(steady.len())], &steady[steady.len().saturating_sub(third)..]);
    let rss = (mean(first, &|s| s.1), mean(last, &|s| s.1));
    let fds = (mean(first, &|s| s.2 as f64), mean(last, &|s| s.2 as f64));
    // Descriptors per live sandbox: the least-squares slope of fds over sandboxes (0 when the
    // sandbox count never moved), never more than a sandbox can hold.
    let (mean_sb, mean_fd) = (mean(&steady, &|s| s.3 as f64), mean(&steady, &|s| s.2 as f64));
    let var: f64 = steady.iter().map(|s| (s.3 as f64 - mean_sb).powi(2)).sum();
    let cov: f64 = steady.iter().map(|s| (s.3 as f64 - mean_sb) * (s.2 as f64 - mean_fd)).sum();
    let per_sandbox = if var > 0.0 { (cov / var).clamp(0.0, MAX_FDS_PER_SANDBOX) } else { 0.0 };
    let net = |xs: &[&Judged]| mean(xs, &|s| s.2 as f64 - per_sandbox * s.3 as f64);
    let net_fds = (net(first), net(last));
    let rss_flat = rss.1 <= rss.0 * 1.15 + 2.0;
    let fds_flat = net_fds.1 <= net_fds.0 + 8.0;
    let out = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": crate::machine(),
        "commit": crate::sh("git", &["rev-parse", "--short", "HEAD"]),
        "seconds": seconds, "clients": clients, "calls": calls, "recorded": recorded,
        "calls_per_s": calls as f64 / t0.elapsed().as_secs_f64(),
        "unexpected": wrong,
        "rss_mib": {"steady_first": rss.0, "steady_last": rss.1, "max": samples.iter().map(|s| s.1).fold(0.0, f64::max)},
        "open_fds": {"steady_first": fds.0, "steady_last": fds.1, "max": samples.iter().map(|s| s.2).max(),
            "per_sandbox": per_sandbox, "net_of_sandboxes_first": net_fds.0, "net_of_sandboxes_last": net_fds.1},
        "sandboxes_started": pools["sandboxes_started"], "sandboxes_at_end": pools["sandboxes"],
        "samples": samples.iter().map(|s| json!([s.0, s.1, s.2, s.3])).collect::<Vec<_>>(),
        "flat": rss_flat && fds_flat,
    });
    let mut md = format!(
        "# Soak\n\nRun by `make soak` on {} — {} — commit {}.\n\n\
         {} s, {} clients, a mix of {} functions (Python and JavaScript, runc and gVisor; successes, exceptions, \
         timeouts, `process.exit`, OOM kills, oversized outputs).\n\n\
         | figure | value |\n|---|---|\n\
         | calls answered | {} ({:.0}/s) |\n| executions recorded | {} |\n| calls with an unexpected status | {} |\n\
         | sandboxes started | {} |\n\
         | fnbox RSS, steady start → end (MiB) | {:.1} → {:.1} (max {:.1}) |\n\
         | fnbox open fds, steady start → end | {:.0} → {:.0} (max {}) |\n\
         | open fds net of live sandboxes ({:.1} per sandbox), start → end | {:.1} → {:.1} |\n| flat | {} |\n\n\
         Samples every 10 s (t, RSS MiB, open fds, live sandboxes):\n\n```\n",
        out["date"].as_str().unwrap_or(""), out["machine"].as_str().unwrap_or(""), out["commit"].as_str().unwrap_or(""),
        seconds, clients, WORKLOAD.len(), calls, out["calls_per_s"].as_f64().unwrap_or(0.0), recorded, wrong.len(),
        pools["sandboxes_started"], rss.0, rss.1, out["rss_mib"]["max"].as_f64().unwrap_or(0.0), fds.0, fds.1,
        out["open_fds"]["max"], per_sandbox, net_fds.0, net_fds.1, if rss_flat && fds_flat { "yes" } else { "NO" },
    );
    for s in &samples {
        let sandboxes = s.3.map_or_else(|| "?".to_owned(), |n| n.to_string());
        md.push_str(&format!("{:>5} {:>7.1} {:>4} {:>3}\n", s.0, s.1, s.2, sandboxes));
    }
    md.push_str("```\n");
    for w in &wrong {
        md.push_str(&format!("\n* unexpected: {w}"));
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/soak.json", serde_json::to_string_pretty(&out)?)?;
    std::fs::write("target/bench/soak.md", &md)?;
    if write_docs {
        std::fs::write("docs/SOAK.md", &md)?;
    }
    println!("{md}");
    if !(rss_flat && fds_flat) {
        bail!("fnbox's memory or open files grew during the soak: RSS {rss:?} MiB, fds net of sandboxes {net_fds:?}");
    }
    if !wrong.is_empty() {
        bail!("{} calls ended with an unexpected status", wrong.len());
    }
    Ok(())
}
