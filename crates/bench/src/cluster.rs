//! The cluster section of `make bench`: brings up a three-node cluster on this machine with
//! `scripts/cluster.sh` (its own names and subnet, state in target/bench/cluster), and measures
//! what routing costs: warm latency of calls sent to a function's home node (served there) against
//! calls sent to another node (forwarded to the home over NATS request/reply), and throughput of 16
//! clients on one node against 16 spread over three. The cluster is always brought down at the end
//! (a guard), also when a step fails.
//!
//! All three nodes, their dockerds, PostgreSQL, the NATS servers and this load generator share the
//! machine's cores, so three nodes here show the cost of routing and of the shared store, not
//! scale-out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{call, count_recorded, create, pct, sh, sorted};

const CLUSTER_NAME: &str = "fnboxb";
const CLUSTER_SUBNET: &str = "10.215.0";
/// Bounds on `scripts/cluster.sh up` / `down` (a first `up` loads the images into three dockerds).
const UP_TIMEOUT_S: u32 = 900;
const DOWN_TIMEOUT_S: u32 = 300;
/// A throughput client stops after this many calls even if its time is not up.
const MAX_CALLS_PER_CLIENT: u64 = 200_000;

pub struct Settings {
    /// Sequential samples per path (home, routed) and per function.
    pub warm: usize,
    /// Seconds of each throughput measurement.
    pub seconds: f64,
    pub clients: usize,
}

/// Runs `scripts/cluster.sh down` when dropped: the cluster never outlives the bench.
struct Guard {
    script: PathBuf,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        eprintln!("cluster: scripts/cluster.sh down");
        let status = Command::new("timeout")
            .arg(DOWN_TIMEOUT_S.to_string())
            .arg("bash")
            .arg(&self.script)
            .arg("down")
            .env("CLUSTER_DIR", &self.dir)
            .stdout(Stdio::from(std::io::stderr()))
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("cluster: `scripts/cluster.sh down` failed ({s}); run it by hand: CLUSTER_DIR={} bash scripts/cluster.sh down", self.dir.display()),
            Err(e) => eprintln!("cluster: cannot run scripts/cluster.sh down: {e}"),
        }
    }
}

/// The three nodes, index-aligned: URL (from CLUSTER_DIR/urls) and node id (from the cluster view).
struct Nodes {
    urls: Vec<String>,
    ids: Vec<String>,
}

impl Nodes {
    fn index_of(&self, id: &str) -> Result<usize> {
        self.ids.iter().position(|i| i == id).with_context(|| format!("node `{id}` is not one of {:?}", self.ids))
    }
}

fn up(root: &Path) -> Result<(Guard, Vec<String>, f64)> {
    let script = root.join("scripts/cluster.sh");
    let bin = root.join("target/release/fnbox");
    if !bin.exists() {
        bail!("{} missing: cargo build --release --locked --bin fnbox", bin.display());
    }
    let dir = root.join("target/bench/cluster");
    std::fs::create_dir_all(&dir)?;
    // PostgreSQL runs as an unprivileged user, which must reach its folder inside.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let guard = Guard { script: script.clone(), dir: dir.clone() };
    eprintln!("cluster: scripts/cluster.sh up (CLUSTER_NAME={CLUSTER_NAME} CLUSTER_SUBNET={CLUSTER_SUBNET} CLUSTER_DIR={})", dir.display());
    let t0 = Instant::now();
    let status = Command::new("timeout")
        .arg(UP_TIMEOUT_S.to_string())
        .arg("bash")
        .arg(&script)
        .arg("up")
        .env("CLUSTER_DIR", &dir)
        .env("CLUSTER_NAME", CLUSTER_NAME)
        .env("CLUSTER_SUBNET", CLUSTER_SUBNET)
        .env("FNBOX_BIN", &bin)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .context("run scripts/cluster.sh up")?;
    let up_s = t0.elapsed().as_secs_f64();
    if !status.success() {
        bail!("scripts/cluster.sh up failed ({status}); logs in {}", dir.display());
    }
    let urls: Vec<String> = std::fs::read_to_string(dir.join("urls"))
        .context("CLUSTER_DIR/urls")?
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if urls.len() != 3 {
        bail!("three node URLs expected in {}/urls, got {urls:?}", dir.display());
    }
    Ok((guard, urls, up_s))
}

/// Waits (at most 20 s) until node 1 sees three live nodes, and maps their ids to the URLs.
async fn nodes(http: &reqwest::Client, urls: Vec<String>) -> Result<Nodes> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view: Value = match http.get(format!("{}/api/v1/cluster", urls[0])).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let live: Vec<&Value> = view["nodes"].as_array().map(|n| n.iter().filter(|n| n["live"] == json!(true)).collect()).unwrap_or_default();
        if live.len() == 3 {
            let mut ids = Vec::new();
            for url in &urls {
                let id = live
                    .iter()
                    .find(|n| n["api_url"].as_str().is_some_and(|u| u.trim_end_matches('/') == url))
                    .and_then(|n| n["id"].as_str())
                    .with_context(|| format!("no live node advertises {url}: {view}"))?;
                ids.push(id.to_owned());
            }
            return Ok(Nodes { urls, ids });
        }
        if Instant::now() > deadline {
            bail!("three live nodes expected within 20 s; the view: {view}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node that ran a call, from its answer.
fn ran_on(body: &Value) -> Result<String> {
    body["node"].as_str().map(str::to_owned).with_context(|| format!("the answer names no node: {body}"))
}

/// Warm latency of one function through its home node and through the two others (alternating
/// home / other call by call, so both paths see the same background load).
async fn routing(http: &reqwest::Client, nodes: &Nodes, tag: &str, lang: &str, rt: &str, n: usize) -> Result<Value> {
    let combo = format!("{lang}-{rt}");
    let name = format!("cb-{tag}-lat-{}-{rt}", &lang[..2]);
    create(http, &nodes.urls[0], &name, lang, rt, 16).await?;
    // The first call starts its sandbox on its home (rendezvous hashing); its answer names it.
    let (_, first) = call(http, &nodes.urls[0], &name).await?;
    let home_id = ran_on(&first)?;
    let home = nodes.index_of(&home_id)?;
    let others: Vec<usize> = (0..3).filter(|i| *i != home).collect();
    let mut calls = 1u64;
    // Settle both paths (connections, heartbeats that list the warm sandbox).
    for i in 0..20 {
        call(http, &nodes.urls[home], &name).await?;
        call(http, &nodes.urls[others[i % 2]], &name).await?;
        calls += 2;
    }
    let (mut local, mut routed) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut local_on_home, mut routed_on_home) = (0u64, 0u64);
    for i in 0..n {
        let (ms, b) = call(http, &nodes.urls[home], &name).await?;
        local.push(ms);
        local_on_home += u64::from(ran_on(&b)? == home_id);
        let (ms, b) = call(http, &nodes.urls[others[i % 2]], &name).await?;
        routed.push(ms);
        routed_on_home += u64::from(ran_on(&b)? == home_id);
        calls += 2;
    }
    let recorded = count_recorded(http, &nodes.urls[others[0]], &name).await?;
    let (local, routed) = (sorted(local), sorted(routed));
    let (l50, l99, r50, r99) = (pct(&local, 50.0), pct(&local, 99.0), pct(&routed, 50.0), pct(&routed, 99.0));
    eprintln!("   {combo}: home {home_id} p50 {l50:.3} p99 {l99:.3} ms; routed p50 {r50:.3} p99 {r99:.3} ms");
    Ok(json!({
        "combo": combo, "function": name, "home": home_id, "samples": n,
        "home_p50_ms": l50, "home_p99_ms": l99, "routed_p50_ms": r50, "routed_p99_ms": r99,
        "overhead_p50_ms": r50 - l50, "overhead_p50_x": r50 / l50,
        "overhead_p99_ms": r99 - l99, "overhead_p99_x": r99 / l99,
        "home_calls_ran_on_home": local_on_home, "routed_calls_ran_on_home": routed_on_home,
        "calls_answered": calls, "recorded_executions": recorded,
    }))
}

/// One throughput client's plan: the node it sends to, that node's id, the functions it calls
/// (round-robin).
struct Plan {
    url: String,
    node: String,
    names: Vec<String>,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    bad: u64,
    ran_where_sent: u64,
}

/// The `node` of an answer, read from its bytes (no JSON tree per answer: the client shares the
/// cores with everything it measures).
fn node_in(bytes: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""node":""#;
    let at = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = bytes[at..].iter().position(|b| *b == b'"')?;
    Some(&bytes[at..at + len])
}

async fn light(http: &reqwest::Client, url: &str, name: &str, node: &str, t: &mut Tally) {
    const WANT: &[u8] = br#""output":"Hello, Bob!""#;
    let ok = match http.post(format!("{url}/api/v1/functions/{name}/invoke")).body(r#"{"name":"Bob"}"#).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => match r.bytes().await {
            Ok(b) if b.windows(WANT.len()).any(|w| w == WANT) => {
                t.ran_where_sent += u64::from(node_in(&b) == Some(node.as_bytes()));
                true
            }
            _ => false,
        },
        _ => false,
    };
    if ok {
        t.ok += 1;
    } else {
        t.bad += 1;
    }
}

async fn load(http: &reqwest::Client, plans: &[Plan], secs: f64) -> Result<(f64, Tally)> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let workers: Vec<_> = plans
        .iter()
        .enumerate()
        .map(|(c, p)| {
            let (http, url, node, names) = (http.clone(), p.url.clone(), p.node.clone(), p.names.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                let mut i = c;
                while Instant::now() < deadline && t.ok + t.bad < MAX_CALLS_PER_CLIENT {
                    light(&http, &url, &names[i % names.len()], &node, &mut t).await;
                    i += 1;
                }
                t
            })
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await?;
        all.ok += t.ok;
        all.bad += t.bad;
        all.ran_where_sent += t.ran_where_sent;
    }
    Ok((all.ok as f64 / t0.elapsed().as_secs_f64(), all))
}

/// A 1 s warm-up at the same load (the pools grow to it), then the measurement.
async fn measured(http: &reqwest::Client, case: &str, label: &str, plans: &[Plan], secs: f64, answered: &mut u64) -> Result<Value> {
    let (_, warm) = load(http, plans, 1.0).await?;
    *answered += warm.ok;
    let (rate, t) = load(http, plans, secs).await?;
    *answered += t.ok;
    let calls = t.ok + t.bad;
    eprintln!("   ({case}) {label}: {rate:.0} calls/s, {} answered 200, {} not, {} ran on the node they were sent to", t.ok, t.bad, t.ran_where_sent);
    let mut functions: Vec<&String> = plans.iter().flat_map(|p| p.names.iter()).collect();
    functions.sort();
    functions.dedup();
    Ok(json!({
        "case": case, "label": label, "clients": plans.len(), "seconds": secs,
        "functions": functions.len(),
        "nodes_sent_to": plans.iter().map(|p| p.node.clone()).collect::<std::collections::BTreeSet<_>>().len(),
        "calls_per_s": rate, "calls": calls, "ok_200": t.ok, "not_ok": t.bad,
        "ran_where_sent": t.ran_where_sent,
        "warmup_calls": warm.ok + warm.bad, "warmup_not_ok": warm.bad,
    }))
}

async fn throughput(http: &reqwest::Client, nodes: &Nodes, tag: &str, s: &Settings) -> Result<Value> {
    // Functions by home: create until every node is home to at least two (bounded).
    let mut homed: Vec<Vec<String>> = vec![Vec::new(); 3];
    let mut answered = 0u64;
    let mut created = Vec::new();
    for i in 0..24 {
        if homed.iter().all(|h| h.len() >= 2) && i >= 9 {
            break;
        }
        let name = format!("cb-{tag}-tp-{i}");
        create(http, &nodes.urls[i % 3], &name, "python", "docker", 16).await?;
        let (_, b) = call(http, &nodes.urls[i % 3], &name).await?;
        answered += 1;
        homed[nodes.index_of(&ran_on(&b)?)?].push(name.clone());
        created.push(name);
    }
    if homed.iter().any(Vec::is_empty) {
        bail!("after {} functions a node is home to none: {homed:?}", created.len());
    }
    let one = format!("cb-{tag}-tp-one");
    create(http, &nodes.urls[0], &one, "python", "docker", 16).await?;
    let (_, b) = call(http, &nodes.urls[0], &one).await?;
    answered += 1;
    let one_home = ran_on(&b)?;
    created.push(one.clone());
    let plan = |node: usize, names: Vec<String>| Plan { url: nodes.urls[node].clone(), node: nodes.ids[node].clone(), names };
    let n = s.clients;
    // (a) every client on node 1, calling functions homed there; (b) client i on node i mod 3,
    // calling functions homed there; (c) client i on node i mod 3, all calling one function.
    let a: Vec<Plan> = (0..n).map(|_| plan(0, homed[0].clone())).collect();
    let b: Vec<Plan> = (0..n).map(|c| plan(c % 3, homed[c % 3].clone())).collect();
    let c: Vec<Plan> = (0..n).map(|c| plan(c % 3, vec![one.clone()])).collect();
    let mut cases = Vec::new();
    cases.push(
        measured(http, "a", &format!("one node: {n} clients → {}, functions homed there", nodes.ids[0]), &a, s.seconds, &mut answered).await?,
    );
    cases.push(
        measured(http, "b", &format!("three nodes: {n} clients spread, each calling functions homed where it sends"), &b, s.seconds, &mut answered)
            .await?,
    );
    cases.push(
        measured(http, "c", &format!("three nodes, one function (home {one_home}): {n} clients spread"), &c, s.seconds, &mut answered)
            .await?,
    );
    let mut recorded = 0;
    for name in &created {
        recorded += count_recorded(http, &nodes.urls[1], name).await?;
    }
    Ok(json!({
        "cases": cases,
        "homes": nodes.ids.iter().zip(&homed).map(|(id, h)| (id.clone(), json!(h.len()))).collect::<serde_json::Map<_, _>>(),
        "one_function_home": one_home,
        "functions": created,
        "answered_200": answered, "recorded_executions": recorded,
    }))
}

/// Brings a cluster up, measures, brings it down (also on error).
pub async fn run(s: &Settings) -> Result<Value> {
    let root = std::env::current_dir()?;
    let (guard, urls, up_s) = up(&root)?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?;
    let result = measure(&http, urls, s).await;
    drop(guard);
    let mut v = result?;
    v["up_seconds"] = json!(up_s);
    Ok(v)
}

async fn measure(http: &reqwest::Client, urls: Vec<String>, s: &Settings) -> Result<Value> {
    let load_start = loadavg();
    let nodes = nodes(http, urls).await?;
    eprintln!("cluster: nodes {:?} at {:?}", nodes.ids, nodes.urls);
    let tag = format!("{:x}", chrono::Utc::now().timestamp() % 0x100000);
    let mut routing_results = Vec::new();
    for (lang, rt) in [("python", "docker"), ("python", "gvisor"), ("javascript", "docker"), ("javascript", "gvisor")] {
        eprintln!("== cluster routing {lang}-{rt}");
        routing_results.push(routing(http, &nodes, &tag, lang, rt, s.warm).await?);
    }
    eprintln!("== cluster throughput (python-docker, {} clients, {} s each)", s.clients, s.seconds);
    let tp = throughput(http, &nodes, &tag, s).await?;
    // Leave the shared store as it was found (best effort: the data dir is kept between runs).
    let mut names: Vec<String> = routing_results.iter().filter_map(|r| r["function"].as_str().map(str::to_owned)).collect();
    names.extend(tp["functions"].as_array().into_iter().flatten().filter_map(|f| f.as_str().map(str::to_owned)));
    for name in names {
        let _ = http.delete(format!("{}/api/v1/functions/{name}", nodes.urls[0])).send().await;
    }
    Ok(json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "commit": sh("git", &["rev-parse", "--short", "HEAD"]),
        "cores": sh("nproc", &[]),
        "nodes": nodes.ids,
        "samples_per_path": s.warm,
        "loadavg_1m_start": load_start, "loadavg_1m_end": loadavg(),
        "routing": routing_results,
        "throughput": tp,
    }))
}

/// The 1-minute load average (other work on this shared machine shows in it).
fn loadavg() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map_or(Value::Null, |v| json!(v))
}

/// The section as markdown, under `heading` (e.g. `## Cluster`).
pub fn markdown(c: &Value, heading: &str) -> String {
    let f = |v: &Value, d: usize| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.d$}"));
    let rs = c["routing"].as_array().cloned().unwrap_or_default();
    let combos = ["python-docker", "python-gvisor", "javascript-docker", "javascript-gvisor"];
    let get = |combo: &str, k: &str| rs.iter().find(|r| r["combo"] == json!(combo)).map(|r| r[k].clone()).unwrap_or(Value::Null);
    let cores = c["cores"].as_str().unwrap_or("?");
    let mut s = format!(
        "{heading}\n\nThree fnbox nodes on this machine (`scripts/cluster.sh up`: each node in its own network namespace with \
         its own dockerd, one PostgreSQL as the store, three NATS servers with JetStream), measured {} at commit {}; \
         the cluster came up in {} s. Latency is end-to-end through the HTTP API, one client, sequential, {} samples per \
         path, the two paths alternating call by call; nearest-rank percentiles. *Home* = the node holding the \
         function's warm sandbox (where its first call ran); *routed* = the same call sent to one of the two other nodes \
         (alternately), which forwards it to the home over NATS request/reply.\n\n\
         | figure | python runc | python gVisor | js runc | js gVisor |\n|---|---|---|---|---|\n",
        c["date"].as_str().unwrap_or(""),
        c["commit"].as_str().unwrap_or(""),
        f(&c["up_seconds"], 0),
        c["samples_per_path"],
    );
    let rows: [(&str, &str, usize); 8] = [
        ("warm p50, sent to the home node (ms)", "home_p50_ms", 3),
        ("warm p99, sent to the home node (ms)", "home_p99_ms", 3),
        ("warm p50, sent to another node: routed (ms)", "routed_p50_ms", 3),
        ("warm p99, routed (ms)", "routed_p99_ms", 3),
        ("routing overhead at p50 (ms)", "overhead_p50_ms", 3),
        ("routing overhead at p50 (×)", "overhead_p50_x", 2),
        ("routing overhead at p99 (ms)", "overhead_p99_ms", 3),
        ("routing overhead at p99 (×)", "overhead_p99_x", 2),
    ];
    for (label, k, d) in rows {
        let cells: Vec<String> = combos.iter().map(|co| f(&get(co, k), d)).collect();
        s.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    let cells: Vec<String> = combos
        .iter()
        .map(|co| format!("{} / {}", get(co, "routed_calls_ran_on_home"), get(co, "samples")))
        .collect();
    s.push_str(&format!("| routed calls that ran on the home node | {} |\n", cells.join(" | ")));
    let cells: Vec<String> = combos
        .iter()
        .map(|co| format!("{} / {}", get(co, "recorded_executions"), get(co, "calls_answered")))
        .collect();
    s.push_str(&format!("| executions recorded / calls answered | {} |\n", cells.join(" | ")));

    let tp = &c["throughput"];
    s.push_str(
        "\nThroughput, python runc hello-world, one node against three (each case after a 1 s warm-up at the same load). \
         Every function has concurrency 16.\n\n\
         | case | calls/s | calls | answered 200 | not 200 | ran on the node they were sent to |\n|---|---|---|---|---|---|\n",
    );
    for case in tp["cases"].as_array().cloned().unwrap_or_default() {
        let calls = case["calls"].as_u64().unwrap_or(0);
        let here = case["ran_where_sent"].as_u64().unwrap_or(0);
        let share = if calls > 0 { format!("{here} ({:.0} %)", 100.0 * here as f64 / calls as f64) } else { "–".into() };
        s.push_str(&format!(
            "| ({}) {} ({} function{}) | {} | {} | {} | {} | {share} |\n",
            case["case"].as_str().unwrap_or(""),
            case["label"].as_str().unwrap_or(""),
            case["functions"],
            if case["functions"] == json!(1) { "" } else { "s" },
            f(&case["calls_per_s"], 0),
            calls,
            case["ok_200"],
            case["not_ok"],
        ));
    }
    s.push_str(&format!(
        "\nExecutions recorded for the throughput functions: {} for {} calls answered 200 (warm-ups included). \
         Homes of the throughput functions by rendezvous hashing: {}.\n\n",
        tp["recorded_executions"],
        tp["answered_200"],
        tp["homes"].as_object().map_or(String::new(), |m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")),
    ));
    s.push_str(&format!(
        "1-minute load average at the start / end of this section: {} / {} (on {cores} cores; other work on the \
         machine counts in it).\n\n",
        f(&c["loadavg_1m_start"], 2),
        f(&c["loadavg_1m_end"], 2),
    ));
    s.push_str(&format!(
        "**Read with care:** this machine has {cores} cores, shared by all three nodes, their three dockerds and \
         sandboxes, PostgreSQL, the three NATS servers and the load generator. Three nodes cannot be faster than one \
         here: (b) against (a) shows what spreading the same work over three processes and the shared store costs, \
         (c) what routing two calls in three over NATS costs, not scale-out. The nodes' store is PostgreSQL (the \
         single-node figures above use SQLite; every answer waits for its record's commit, and scripts/cluster.sh \
         runs PostgreSQL with fsync on), so *home* latency is not the single-node warm latency either.\n"
    ));
    s
}

/// Puts the section into docs/BENCHMARKS.md: in place of an earlier section of the same kind
/// (a heading starting with `## Cluster (make bench`), else at the end. The rest is kept as is.
pub fn write_docs(section: &str) -> Result<()> {
    write_section("## Cluster (make bench", section)
}

/// Replaces the section of docs/BENCHMARKS.md whose heading starts with `mark` (or appends it).
pub fn write_section(mark: &str, section: &str) -> Result<()> {
    const PATH: &str = "docs/BENCHMARKS.md";
    let text = std::fs::read_to_string(PATH).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let out = match lines.iter().position(|l| l.starts_with(mark)) {
        Some(start) => {
            let end = lines[start + 1..].iter().position(|l| l.starts_with("## ")).map_or(lines.len(), |e| start + 1 + e);
            let mut out = lines[..start].join("\n");
            out.push('\n');
            out.push_str(section.trim_end());
            out.push('\n');
            if end < lines.len() {
                out.push('\n');
                out.push_str(&lines[end..].join("\n"));
                out.push('\n');
            }
            out
        }
        None => format!("{}\n\n{}\n", text.trim_end(), section.trim_end()),
    };
    std::fs::write(PATH, out)?;
    Ok(())
}
