//! `make bench`: starts a release fnbox, measures hello-world in Python and JavaScript on runc and
//! on gVisor through the HTTP API — warm and cold latency, throughput at 1/4/16 clients, idle memory
//! per warm sandbox, fnbox's own RSS — and, in the same run, the naive `docker run --rm` per call.
//! At the end, a cluster section (`cluster.rs`): a three-node cluster on this machine, warm
//! latency served on a function's home node against routed over NATS, and throughput on one node
//! against three (`--no-cluster` skips it; `--only-cluster` runs only it and writes
//! target/bench/cluster.{json,md}, and with `--write-docs` puts it into docs/BENCHMARKS.md as a
//! dated section without touching the single-node figures).
//! Writes target/bench/latest.{json,md}; `--write-docs` also writes docs/BENCHMARKS.md.
//! Percentiles are nearest-rank over every sample.

mod cluster;
mod deps;
mod gvisor;
mod soak;
mod triggers;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

struct Opts {
    warm: usize,
    cold: usize,
    baseline: usize,
    seconds: f64,
    write_docs: bool,
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

struct Server {
    child: Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

fn start_server() -> Result<Server> {
    start_server_with(&[])
}

pub(crate) fn start_server_with(extra: &[&str]) -> Result<Server> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fnbox-bench-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("server.log");
    let f = std::fs::File::create(&log)?;
    let child = Command::new("target/release/fnbox")
        .args(["serve", "--addr", "127.0.0.1:0", "--prewarm", "1", "--data-dir"])
        .arg(dir.join("data"))
        .args(extra)
        .env("RUST_LOG", "warn,fnbox=info")
        .stdout(Stdio::from(f.try_clone()?))
        .stderr(Stdio::from(f))
        .spawn()
        .context("run `make build` first: target/release/fnbox")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(pos) = text.find("listening on http://") {
            let url: String = text[pos + 13..].chars().take_while(|c| !c.is_whitespace()).collect();
            return Ok(Server { child, url, _dir: dir });
        }
        if Instant::now() > deadline {
            bail!("fnbox did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

const PY: &str = "def handler(event, context):\n    return 'Hello, %s!' % event.get('name', 'World')\n";
const JS: &str = "exports.handler = async (event) => `Hello, ${event.name ?? 'World'}!`;\n";

pub(crate) async fn call(http: &reqwest::Client, url: &str, name: &str) -> Result<(f64, Value)> {
    let t0 = Instant::now();
    let r = http.post(format!("{url}/api/v1/functions/{name}/invoke")).body(r#"{"name":"Bob"}"#).send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() || body["output"] != json!("Hello, Bob!") {
        bail!("unexpected answer {status}: {body}");
    }
    Ok((ms, body))
}

/// A throughput client should cost the machine as little as it can (it shares the two cores
/// with fnbox and the sandboxes): check the status and the output's bytes, without building a
/// JSON tree per answer.
async fn call_light(http: &reqwest::Client, url: &str, name: &str) -> bool {
    let Ok(r) = http.post(format!("{url}/api/v1/functions/{name}/invoke")).body(r#"{"name":"Bob"}"#).send().await else {
        return false;
    };
    if !r.status().is_success() {
        return false;
    }
    const WANT: &[u8] = br#""output":"Hello, Bob!""#;
    r.bytes().await.is_ok_and(|b| b.windows(WANT.len()).any(|w| w == WANT))
}

/// A hello-world function's create request.
pub(crate) fn hello_body(name: &str, lang: &str, rt: &str, concurrency: u32) -> Value {
    let code = if lang == "python" { PY } else { JS };
    json!({"name": name, "language": lang, "runtime": rt, "code": code, "concurrency": concurrency})
}

pub(crate) async fn create(http: &reqwest::Client, url: &str, name: &str, lang: &str, rt: &str, concurrency: u32) -> Result<()> {
    create_from(http, url, &hello_body(name, lang, rt, concurrency)).await
}

async fn create_from(http: &reqwest::Client, url: &str, body: &Value) -> Result<()> {
    let r = http.post(format!("{url}/api/v1/functions")).json(body).send().await?;
    if !r.status().is_success() {
        bail!("create {}: {}", body["name"], r.text().await?);
    }
    Ok(())
}

/// The first call of a new function: its time (ms), once it is seen to be a cold start.
async fn first_call(http: &reqwest::Client, url: &str, name: &str) -> Result<f64> {
    let (ms, body) = call(http, url, name).await?;
    if body["cold_start"] != json!(true) {
        bail!("{name}: first call was not cold");
    }
    Ok(ms)
}

/// With a pre-started sandbox of `key` ready: creates the function of `body`, calls it once and
/// deletes it. The create's and the first call's times (ms).
pub(crate) async fn create_call_delete(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Result<(f64, f64)> {
    wait_prewarmed(http, url, key).await;
    let name = body["name"].as_str().unwrap_or_default();
    let t0 = Instant::now();
    create_from(http, url, body).await?;
    let created = t0.elapsed().as_secs_f64() * 1000.0;
    let first = first_call(http, url, name).await?;
    http.delete(format!("{url}/api/v1/functions/{name}")).send().await?;
    Ok((created, first))
}

/// `n` functions created back to back, then each called once: the create times and the first
/// calls' times (ms). The functions are deleted afterwards.
async fn burst(http: &reqwest::Client, url: &str, lang: &str, rt: &str, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let names: Vec<String> = (0..n).map(|i| format!("burst-{}-{rt}-{i}", &lang[..2])).collect();
    let mut creates = Vec::with_capacity(n);
    for name in &names {
        let t0 = Instant::now();
        create(http, url, name, lang, rt, 1).await?;
        creates.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let mut firsts = Vec::with_capacity(n);
    for name in &names {
        firsts.push(first_call(http, url, name).await?);
    }
    for name in &names {
        http.delete(format!("{url}/api/v1/functions/{name}")).send().await?;
    }
    Ok((creates, firsts))
}

pub(crate) async fn wait_prewarmed(http: &reqwest::Client, url: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/api/v1/pools")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["generic"][key].as_u64().unwrap_or(0) >= 1 {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mean memory of this (language, runtime)'s sandboxes while idle: pre-started ones and warm
/// ones alike (a warm sandbox may have started generic, so it carries no function label).
pub(crate) fn idle_sandbox_mib(language: &str, runtime: &str) -> f64 {
    let out = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter", &format!("label=fnbox.language={language}")])
        .args(["--filter", &format!("label=fnbox.runtime={runtime}")])
        .output();
    let ids: Vec<String> = out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_owned).collect()).unwrap_or_default();
    let vals: Vec<f64> = ids
        .iter()
        .filter_map(|id| std::fs::read_to_string(format!("/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes")).ok())
        .filter_map(|s| s.trim().parse::<f64>().ok())
        .collect();
    if vals.is_empty() {
        f64::NAN
    } else {
        vals.iter().sum::<f64>() / vals.len() as f64 / 1048576.0
    }
}

fn baseline(lang: &str, runtime: &str, n: usize) -> Vec<f64> {
    baseline_with(lang, if runtime == "docker" { "runc" } else { "runsc" }, n)
}

/// `n` runs of `docker run --rm` printing hello with the OCI runtime `oci`; their times (ms).
pub(crate) fn baseline_with(lang: &str, oci: &str, n: usize) -> Vec<f64> {
    let (image, entry, arg) = if lang == "python" {
        ("fnbox-python:latest", "python3", vec!["-c", "print('Hello, Bob!')"])
    } else {
        ("fnbox-node:latest", "node", vec!["-e", "console.log('Hello, Bob!')"])
    };
    (0..n)
        .filter_map(|_| {
            let t0 = Instant::now();
            let ok = Command::new("docker")
                .args(["run", "--rm", "-i", "--network", "none", "--runtime", oci, "--entrypoint", entry, image])
                .args(&arg)
                .stdin(Stdio::null())
                .output()
                .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Hello, Bob!"))
                .unwrap_or(false);
            ok.then(|| t0.elapsed().as_secs_f64() * 1000.0)
        })
        .collect()
}

pub(crate) async fn throughput(http: &reqwest::Client, url: &str, name: &str, clients: usize, secs: f64) -> Result<(f64, u64)> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, name) = (http.clone(), url.to_owned(), name.to_owned());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if call_light(&http, &url, &name).await {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await?;
    }
    Ok((total as f64 / t0.elapsed().as_secs_f64(), total))
}

async fn count_recorded(http: &reqwest::Client, url: &str, name: &str) -> Result<u64> {
    let mut n = 0;
    let mut before: Option<String> = None;
    loop {
        let mut q = format!("{url}/api/v1/executions?function={name}&limit=1000");
        if let Some(b) = &before {
            q.push_str(&format!("&before={b}"));
        }
        let page: Vec<Value> = http.get(q).send().await?.json().await?;
        if page.is_empty() {
            return Ok(n);
        }
        n += page.len() as u64;
        before = page.last().and_then(|e| e["id"].as_str()).map(str::to_owned);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<u64>().ok());
    if let Some(secs) = value("--soak") {
        let clients = value("--clients").unwrap_or(8) as usize;
        return soak::run(secs, clients, args.iter().any(|a| a == "--write-docs")).await;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let opts = Opts {
        warm: if quick { 200 } else { 2000 },
        cold: if quick { 5 } else { 20 },
        baseline: if quick { 3 } else { 10 },
        seconds: if quick { 2.0 } else { 5.0 },
        write_docs: args.iter().any(|a| a == "--write-docs"),
    };
    let cluster_settings = cluster::Settings { warm: opts.warm, seconds: opts.seconds, clients: 16 };
    if args.iter().any(|a| a == "--only-cluster") {
        let c = cluster::run(&cluster_settings).await?;
        let heading = format!(
            "## Cluster (make bench, {}, commit {}, this {}-core machine)",
            c["date"].as_str().and_then(|d| d.get(..10)).unwrap_or(""),
            c["commit"].as_str().unwrap_or(""),
            c["cores"].as_str().unwrap_or("?"),
        );
        let md = cluster::markdown(&c, &heading);
        std::fs::create_dir_all("target/bench")?;
        std::fs::write("target/bench/cluster.json", serde_json::to_string_pretty(&c)?)?;
        std::fs::write("target/bench/cluster.md", &md)?;
        if opts.write_docs {
            cluster::write_docs(&md)?;
        }
        println!("{md}");
        return Ok(());
    }
    if args.iter().any(|a| a == "--only-triggers") {
        let d = triggers::run(opts.warm.min(500)).await?;
        let heading = format!(
            "## Triggers (make bench, {}, commit {})",
            d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
            d["commit"].as_str().unwrap_or("")
        );
        let md = triggers::markdown(&d, &heading);
        std::fs::create_dir_all("target/bench")?;
        std::fs::write("target/bench/triggers.json", serde_json::to_string_pretty(&d)?)?;
        std::fs::write("target/bench/triggers.md", &md)?;
        if opts.write_docs {
            cluster::write_section("## Triggers (make bench", &md)?;
        }
        println!("{md}");
        return Ok(());
    }
    if args.iter().any(|a| a == "--only-gvisor") {
        let d = gvisor::run(opts.warm, opts.cold, opts.seconds, opts.baseline).await?;
        let md = gvisor::markdown(&d, &gvisor_heading(&d));
        std::fs::create_dir_all("target/bench")?;
        std::fs::write("target/bench/gvisor.json", serde_json::to_string_pretty(&d)?)?;
        std::fs::write("target/bench/gvisor.md", &md)?;
        if opts.write_docs {
            cluster::write_section("## gVisor versions (make bench", &md)?;
        }
        println!("{md}");
        return Ok(());
    }
    if args.iter().any(|a| a == "--only-deps") {
        let d = deps::run(opts.cold.min(5), opts.warm.min(500)).await?;
        let heading = format!(
            "## Dependencies (make bench, {}, commit {})",
            d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
            d["commit"].as_str().unwrap_or("")
        );
        let md = deps::markdown(&d, &heading);
        std::fs::create_dir_all("target/bench")?;
        std::fs::write("target/bench/deps.json", serde_json::to_string_pretty(&d)?)?;
        std::fs::write("target/bench/deps.md", &md)?;
        if opts.write_docs {
            cluster::write_section("## Dependencies (make bench", &md)?;
        }
        println!("{md}");
        return Ok(());
    }
    let with_cluster = !args.iter().any(|a| a == "--no-cluster");
    let server = start_server()?;
    let url = server.url.clone();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    eprintln!("fnbox at {url}");
    let mut results = Vec::new();
    let mut served = 0u64;
    for (lang, rt) in [("python", "docker"), ("python", "gvisor"), ("javascript", "docker"), ("javascript", "gvisor")] {
        let combo = format!("{lang}-{rt}");
        eprintln!("== {combo}");
        let key = format!("{lang}/{rt}/128mb");
        // Cold: a new function's first call, with the pre-started pool warm.
        let mut cold = Vec::new();
        for i in 0..opts.cold {
            let body = hello_body(&format!("cold-{}-{rt}-{i}", &lang[..2]), lang, rt, 1);
            cold.push(create_call_delete(&http, &url, &key, &body).await?.1);
            served += 1;
        }
        // A burst: 16 new functions created back to back, then each called once (its first call).
        let (burst_create, burst_first) = burst(&http, &url, lang, rt, 16).await?;
        served += 16;
        // Memory sizes without a pre-started sandbox of their own (128 MB is the pre-started one).
        let (mut odd_create, mut odd_first) = (Vec::new(), Vec::new());
        for (i, mb) in [192u32, 256, 320, 448, 200, 384, 160, 96].iter().take(if quick { 4 } else { 8 }).enumerate() {
            let mut body = hello_body(&format!("odd-{}-{rt}-{i}", &lang[..2]), lang, rt, 1);
            body["memory_mb"] = json!(mb);
            let (created, first) = create_call_delete(&http, &url, &key, &body).await?;
            odd_create.push(created);
            odd_first.push(first);
            served += 1;
        }
        let (burst_create, burst_first, odd_create, odd_first) = (sorted(burst_create), sorted(burst_first), sorted(odd_create), sorted(odd_first));
        // Warm: one client, after a first call.
        let name = format!("hello-{}-{rt}", &lang[..2]);
        create(&http, &url, &name, lang, rt, 16).await?;
        call(&http, &url, &name).await?;
        let mut warm = Vec::with_capacity(opts.warm);
        for _ in 0..opts.warm {
            warm.push(call(&http, &url, &name).await?.0);
        }
        served += opts.warm as u64 + 1;
        let idle_mib = idle_sandbox_mib(lang, rt);
        let mut tput = Vec::new();
        for clients in [1, 4, 16] {
            let (rate, n) = throughput(&http, &url, &name, clients, opts.seconds).await?;
            served += n;
            tput.push((clients, rate));
        }
        let recorded = count_recorded(&http, &url, &name).await?;
        let base = sorted(baseline(lang, rt, opts.baseline));
        let (warm, cold) = (sorted(warm), sorted(cold));
        results.push(json!({
            "combo": combo,
            "warm_p50_ms": pct(&warm, 50.0), "warm_p99_ms": pct(&warm, 99.0),
            "cold_p50_ms": pct(&cold, 50.0), "cold_p99_ms": pct(&cold, 99.0),
            "burst_first_p50_ms": pct(&burst_first, 50.0), "burst_first_p99_ms": pct(&burst_first, 99.0),
            "burst_create_p50_ms": pct(&burst_create, 50.0), "burst_create_p99_ms": pct(&burst_create, 99.0),
            "odd_memory_first_p50_ms": pct(&odd_first, 50.0), "odd_memory_first_p99_ms": pct(&odd_first, 99.0),
            "odd_memory_create_p50_ms": pct(&odd_create, 50.0),
            "throughput_per_s": {"1": tput[0].1, "4": tput[1].1, "16": tput[2].1},
            "recorded_executions": recorded,
            "idle_sandbox_mib": idle_mib,
            "docker_run_p50_ms": pct(&base, 50.0), "docker_run_p99_ms": pct(&base, 99.0),
            "cold_speedup_vs_docker_run": pct(&base, 50.0) / pct(&cold, 50.0),
            "warm_speedup_vs_docker_run": pct(&base, 50.0) / pct(&warm, 50.0),
        }));
    }
    let rss = rss_mib(server.child.id());
    drop(server);
    // The same warm path over the other channel (the container's attached stdio through dockerd).
    let attach = start_server_with(&["--channel", "attach"])?;
    for (lang, rt) in [("python", "docker"), ("python", "gvisor"), ("javascript", "docker"), ("javascript", "gvisor")] {
        let combo = format!("{lang}-{rt}");
        eprintln!("== {combo} (attach channel)");
        let name = format!("attach-{}-{rt}", &lang[..2]);
        create(&http, &attach.url, &name, lang, rt, 16).await?;
        call(&http, &attach.url, &name).await?;
        let mut warm = Vec::with_capacity(opts.warm);
        for _ in 0..opts.warm {
            warm.push(call(&http, &attach.url, &name).await?.0);
        }
        let (rate16, _) = throughput(&http, &attach.url, &name, 16, opts.seconds).await?;
        let warm = sorted(warm);
        if let Some(r) = results.iter_mut().find(|r| r["combo"] == json!(combo)) {
            r["attach_warm_p50_ms"] = json!(pct(&warm, 50.0));
            r["attach_warm_p99_ms"] = json!(pct(&warm, 99.0));
            r["attach_throughput_16_per_s"] = json!(rate16);
        }
    }
    drop(attach);
    // gVisor versions side by side (bookworm's runsc and trixie's), a server each.
    let gvisor = gvisor::run(opts.warm, opts.cold, opts.seconds, opts.baseline).await?;
    let cluster = if with_cluster {
        eprintln!("== cluster");
        Some(cluster::run(&cluster_settings).await)
    } else {
        None
    };
    let mut out = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": machine(),
        "commit": sh("git", &["rev-parse", "--short", "HEAD"]),
        "invocations_served": served,
        "fnbox_rss_mib": rss,
        "method": "nearest-rank percentiles over all samples; latency is end-to-end through the HTTP API",
        "results": results,
    });
    let mut md = markdown(&out);
    md.push('\n');
    md.push_str(&gvisor::markdown(&gvisor, "## gVisor versions"));
    out["gvisor"] = gvisor;
    let mut cluster_error = None;
    match cluster {
        Some(Ok(c)) => {
            md.push('\n');
            md.push_str(&cluster::markdown(&c, "## Cluster"));
            out["cluster"] = c;
        }
        Some(Err(e)) => {
            md.push_str(&format!("\n## Cluster\n\nThe cluster section failed: {e:#}\n"));
            out["cluster"] = json!({"error": format!("{e:#}")});
            cluster_error = Some(e);
        }
        None => {}
    }
    std::fs::create_dir_all("target/bench")?;
    std::fs::write("target/bench/latest.json", serde_json::to_string_pretty(&out)?)?;
    std::fs::write("target/bench/latest.md", &md)?;
    if opts.write_docs {
        std::fs::write("docs/BENCHMARKS.md", &md)?;
    }
    println!("{md}");
    match cluster_error {
        Some(e) => Err(e.context("cluster section")),
        None => Ok(()),
    }
}

fn gvisor_heading(d: &Value) -> String {
    format!(
        "## gVisor versions (make bench, {}, commit {})",
        d["date"].as_str().and_then(|x| x.get(..10)).unwrap_or(""),
        d["commit"].as_str().unwrap_or("")
    )
}

pub(crate) fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd).args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

pub(crate) fn machine() -> String {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map_or_else(String::new, |kb| format!("{:.0} GiB", kb / 1048576.0));
    format!(
        "{} cores, {mem}, kernel {}, Docker {}, {}",
        sh("nproc", &[]),
        sh("uname", &["-r"]),
        sh("docker", &["version", "--format", "{{.Server.Version}}"]),
        sh("runsc", &["--version"]).lines().next().unwrap_or("").to_owned()
    )
}

fn markdown(out: &Value) -> String {
    let rs = out["results"].as_array().cloned().unwrap_or_default();
    let f = |v: &Value, d: usize| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.d$}"));
    let get = |combo: &str, k: &str| rs.iter().find(|r| r["combo"] == json!(combo)).map(|r| r[k].clone()).unwrap_or(Value::Null);
    let get2 = |combo: &str, k: &str, k2: &str| {
        rs.iter().find(|r| r["combo"] == json!(combo)).map(|r| r[k][k2].clone()).unwrap_or(Value::Null)
    };
    let combos = ["python-docker", "python-gvisor", "javascript-docker", "javascript-gvisor"];
    let mut s = format!(
        "# Benchmarks\n\nRun by `make bench` on {} — {} — commit {}.\n{} invocations served; fnbox RSS at the end: {} MiB (target ≤ 50 MiB after 100,000).\n\
         Latency is end-to-end through the HTTP API (one client unless stated), nearest-rank percentiles.\n\n\
         | figure | python runc | python gVisor | js runc | js gVisor | target (runc / gVisor) |\n|---|---|---|---|---|---|\n",
        out["date"].as_str().unwrap_or(""),
        out["machine"].as_str().unwrap_or(""),
        out["commit"].as_str().unwrap_or(""),
        out["invocations_served"],
        f(&out["fnbox_rss_mib"], 1),
    );
    let rows: [(&str, &str, usize, &str); 13] = [
        ("warm p50 (ms)", "warm_p50_ms", 3, "≤ 0.25 / ≤ 0.45"),
        ("warm p99 (ms)", "warm_p99_ms", 3, "≤ 2 / ≤ 3"),
        ("cold start p50 (ms, pool warm)", "cold_p50_ms", 1, "≤ 30 / ≤ 60"),
        ("cold start p99 (ms)", "cold_p99_ms", 1, ""),
        ("first call, 16 new functions created back to back, p50 (ms)", "burst_first_p50_ms", 1, ""),
        ("first call, 16 new functions created back to back, p99 (ms)", "burst_first_p99_ms", 1, "≤ 25 / ≤ 60"),
        ("create, 16 back to back, p99 (ms)", "burst_create_p99_ms", 1, ""),
        ("first call, memory size without a pre-started sandbox, p50 (ms)", "odd_memory_first_p50_ms", 1, "≤ 30 / ≤ 60"),
        ("create, memory size without a pre-started sandbox, p50 (ms)", "odd_memory_create_p50_ms", 1, ""),
        ("`docker run --rm` p50 (ms)", "docker_run_p50_ms", 0, ""),
        ("cold start vs `docker run` (×)", "cold_speedup_vs_docker_run", 1, "≥ 8 / ≥ 8"),
        ("warm vs `docker run` (×)", "warm_speedup_vs_docker_run", 0, ""),
        ("idle memory per warm sandbox (MiB)", "idle_sandbox_mib", 1, ""),
    ];
    for (label, k, d, target) in rows {
        let cells: Vec<String> = combos.iter().map(|c| f(&get(c, k), d)).collect();
        s.push_str(&format!("| {label} | {} | {target} |\n", cells.join(" | ")));
    }
    for clients in ["1", "4", "16"] {
        let cells: Vec<String> = combos.iter().map(|c| f(&get2(c, "throughput_per_s", clients), 0)).collect();
        let target = if clients == "16" { "≥ 6,000 / ≥ 3,000" } else { "" };
        s.push_str(&format!("| throughput, {clients} clients (calls/s) | {} | {target} |\n", cells.join(" | ")));
    }
    let cells: Vec<String> = combos.iter().map(|c| f(&get(c, "recorded_executions"), 0)).collect();
    s.push_str(&format!("| executions recorded for the warm function | {} | all answered calls |\n", cells.join(" | ")));
    s.push_str(
        "\nThe same warm path over the **attach** channel (the container's stdio through dockerd; a second \
         server with `--channel attach`, same run):\n\n| figure | python runc | python gVisor | js runc | js gVisor |\n|---|---|---|---|---|\n",
    );
    for (label, k, d) in [
        ("warm p50 (ms), attach", "attach_warm_p50_ms", 3),
        ("warm p99 (ms), attach", "attach_warm_p99_ms", 3),
        ("throughput, 16 clients (calls/s), attach", "attach_throughput_16_per_s", 0),
    ] {
        let cells: Vec<String> = combos.iter().map(|c| f(&get(c, k), d)).collect();
        s.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    s
}
