//! The `fnbox` command-line client: the same binary as the server, talking to it over HTTP.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct ClientOpts {
    /// fnbox server URL.
    #[arg(long, global = true, env = "FNBOX_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Print raw JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// API key token, sent as `Authorization: Bearer <token>` (needed when the server has keys on).
    #[arg(long, global = true, env = "FNBOX_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

// Parsed once per process: the size of the `fn` variant (its settings) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage functions.
    #[command(name = "fn", subcommand)]
    Function(FnCommand),
    /// Invoke a function with a JSON event (argument, or `-` for stdin; default `{}`).
    Invoke {
        name: String,
        input: Option<String>,
        /// Queue the call and return at once (`Prefer: respond-async`): prints its execution id
        /// and request id. Failed attempts are retried up to the function's `--max-retries`,
        /// then the call lands in the dead letters (`fnbox dead-letters list`).
        #[arg(long = "async")]
        async_call: bool,
        /// With --async: poll until the call is final (succeeded, or given up after its last
        /// attempt), print its result like a synchronous call and exit 0 on success, 1 on failure.
        #[arg(long, requires = "async_call")]
        wait: bool,
        /// With --wait: give up waiting after this many seconds (exit 2; the call goes on).
        #[arg(long, value_name = "SECS", default_value_t = 300, requires = "wait")]
        wait_timeout: u64,
        /// Run this version instead of the current one (see `fnbox versions NAME`).
        #[arg(long, value_name = "N", conflicts_with = "async_call", value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
    },
    /// A function's versions, newest first; with a version number, that version's settings and code.
    Versions {
        name: String,
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
    },
    /// Make a new version with the code and version settings (language, runtime, timeout,
    /// memory, environment, dependencies) of an older one. Needs an admin key.
    Rollback {
        name: String,
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        version: u32,
    },
    /// List recent executions, newest first.
    Executions {
        #[arg(long)]
        function: Option<String>,
        /// success, error, timeout, oom or queued.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        runtime: Option<String>,
        /// api, http, async, schedule, compare or all (default: every trigger but compare).
        #[arg(long, value_parser = ["api", "http", "async", "schedule", "compare", "all"])]
        trigger: Option<String>,
        /// Only the attempts of one asynchronous call (the request id `invoke --async` printed).
        #[arg(long, value_name = "UUID")]
        request_id: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Asynchronous calls given up after their last attempt: list, inspect, retry or discard them.
    #[command(name = "dead-letters", subcommand)]
    DeadLetters(DeadLetterCommand),
    /// A function's schedules: cron patterns that make one asynchronous call per tick
    /// (changing them needs an admin key).
    #[command(subcommand)]
    Schedules(ScheduleCommand),
    /// Show the asynchronous queue: calls waiting or running, dead letters, and its bound.
    Queue,
    /// Show one execution in full.
    Execution { id: String },
    /// List the bundled example functions.
    Templates,
    /// Run a function on Docker and on gVisor and print the figures side by side.
    Compare {
        name: String,
        #[arg(long, default_value_t = 20)]
        iterations: u32,
        #[arg(long, default_value_t = 1)]
        concurrency: u32,
        /// Event as JSON (default: the function's sample input).
        #[arg(long)]
        input: Option<String>,
    },
    /// Show a function's dependency build: status, packages, duration, size and logs. Exits 1
    /// when the build failed.
    Build {
        name: String,
        /// Wait up to this many seconds (at most 300) for a running build to end.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=300))]
        wait: u32,
        /// Follow a running build to its end, printing its logs as they come.
        #[arg(long, conflicts_with = "wait")]
        follow: bool,
        /// Also print the lock (the exact packages with their hashes).
        #[arg(long)]
        lock: bool,
    },
    /// Show server and runtime health.
    Health,
    /// List the cluster's nodes: runtimes, sandboxes, load, last heartbeat.
    Cluster,
}

#[derive(Debug, Subcommand)]
pub enum FnCommand {
    /// Create a function from a file (`--file`) or a bundled example (`--example`).
    Create(FnSettings),
    /// List functions.
    List,
    /// Show a function: its settings, the names of its environment variables (their values are
    /// write-only, never shown) and, with an admin key, its code.
    Get { name: String },
    /// Change a function; a change to code or settings makes a new version.
    Update(FnSettings),
    /// Delete a function (its executions stay on record).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters, newest first.
    List {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Show one dead letter in full: its input, attempts and last error.
    Get { id: String },
    /// Queue the call again (a new round of attempts under the same request id). Needs an admin key.
    Retry { id: String },
    /// Discard a dead letter (its attempts' execution records stay). Needs an admin key.
    Discard { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List schedules: one function's, or every function's.
    List { function: Option<String> },
    /// Show one schedule.
    Get { id: String },
    /// Add a schedule to a function.
    Create {
        function: String,
        /// 5 fields (minute hour day-of-month month day-of-week: `*/5 * * * *`), or 6 with
        /// seconds first (`*/10 * * * * *`).
        #[arg(long)]
        cron: String,
        /// IANA time zone the fields are read in (server default: UTC).
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// The event each call gets, as JSON (server default: `{}`).
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Create it disabled (no calls until `fnbox schedules enable ID`).
        #[arg(long)]
        disabled: bool,
    },
    /// Delete a schedule.
    Delete { id: String },
    /// Enable a schedule (its next run is worked out from now).
    Enable { id: String },
    /// Disable a schedule (no calls until it is enabled again).
    Disable { id: String },
}

#[derive(Debug, Args)]
pub struct FnSettings {
    pub name: String,
    /// python or javascript (guessed from the file extension when omitted).
    #[arg(long, short)]
    pub language: Option<String>,
    /// docker (runc) or gvisor (runsc).
    #[arg(long, short)]
    pub runtime: Option<String>,
    /// File with the handler code (`-` for stdin).
    #[arg(long, short)]
    pub file: Option<String>,
    /// Use a bundled example's code (see `fnbox templates`).
    #[arg(long, conflicts_with = "file")]
    pub example: Option<String>,
    #[arg(long)]
    pub timeout_ms: Option<u32>,
    #[arg(long)]
    pub memory_mb: Option<u32>,
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Environment variable KEY=VALUE (repeatable). Values are secret: the server never shows
    /// them again. On update, only the variables named here change; the others keep their values.
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// On update: remove this environment variable (repeatable).
    #[arg(long = "unset-env", value_name = "KEY")]
    pub unset_env: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// Python dependencies: a requirements.txt (registry packages only; `-` for stdin). They are
    /// built into the function's image; calls wait for the build.
    #[arg(long, value_name = "FILE", conflicts_with = "package_json")]
    pub requirements: Option<String>,
    /// JavaScript dependencies: a package.json (only its `dependencies` are used; `-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub package_json: Option<String>,
    /// On update: remove the function's dependencies.
    #[arg(long, conflicts_with_all = ["requirements", "package_json"])]
    pub no_dependencies: bool,
    /// Do not wait for the dependency build to end (follow it with `fnbox build NAME --follow`).
    #[arg(long)]
    pub no_wait: bool,
    /// The function URL (`/fn/NAME`, any method): off, key (an API key is needed) or public.
    #[arg(long, value_name = "off|key|public", value_parser = ["off", "key", "public"])]
    pub http: Option<String>,
    /// Asynchronous calls: how many times a failed attempt is retried (0-5; server default 2)
    /// before the call lands in the dead letters.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=5))]
    pub max_retries: Option<u32>,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Result<(u16, Value)> {
        self.call_with_headers(method, path, body).await.map(|(status, _, value)| (status, value))
    }

    async fn call_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
        self.send(method, path, body, &[]).await
    }

    /// One request with extra request headers (`Prefer: respond-async`, say).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Result<(u16, reqwest::header::HeaderMap, Value)> {
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let mut req = self.http.request(method, &url);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach fnbox at {} (is `fnbox serve` running?)", self.base))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((status, headers, value))
    }

    /// Calls the API and turns an error body into a readable error.
    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Result<Value> {
        self.ok_with_headers(method, path, body).await.map(|(_, value)| value)
    }

    /// Every item of a paged list: follows `X-Next-After` (`?after=`) to the last page.
    async fn all_functions(&self) -> Result<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = String::from("/api/v1/functions?limit=1000");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let (headers, page) = self.ok_with_headers(reqwest::Method::GET, &path, None).await?;
            let items = page.as_array().cloned().unwrap_or_default();
            let empty = items.is_empty();
            all.extend(items);
            // Names are URL-safe (lowercase letters, digits, '-').
            after = headers.get("x-next-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            if after.is_none() || empty {
                return Ok(Value::Array(all));
            }
        }
    }

    async fn ok_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(reqwest::header::HeaderMap, Value)> {
        let (status, headers, value) = self.call_with_headers(method, path, body).await?;
        error_of(status, &value)?;
        Ok((headers, value))
    }
}

/// Turns an error answer (status 400 and up) into a readable error: its message, status and
/// the fields it names.
fn error_of(status: u16, value: &Value) -> Result<()> {
    if status >= 400 {
        let err = &value["error"];
        let mut msg = format!("{} ({status})", err["message"].as_str().unwrap_or("request failed"));
        if let Some(fields) = err["fields"].as_array() {
            for f in fields {
                msg.push_str(&format!("\n  {}: {}", f["field"].as_str().unwrap_or("?"), f["message"].as_str().unwrap_or("")));
            }
        }
        bail!(msg);
    }
    Ok(())
}

fn read_source(path: &str) -> Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
    }
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(headers.iter().copied());
    t
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(|f| if f.fract() == 0.0 { format!("{f:.0}") } else { format!("{f:.2}") }).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

async fn settings_body(client: &Client, s: &FnSettings, create: bool) -> Result<Value> {
    let mut body = serde_json::Map::new();
    if create {
        body.insert("name".into(), json!(s.name));
    }
    let mut language = s.language.clone();
    if let Some(path) = &s.file {
        body.insert("code".into(), json!(read_source(path)?));
        if language.is_none() {
            language = match std::path::Path::new(path).extension().and_then(|e| e.to_str()) {
                Some("py") => Some("python".into()),
                Some("js" | "cjs") => Some("javascript".into()),
                _ => None,
            };
        }
    }
    if let Some(slug) = &s.example {
        let lang = language.clone().unwrap_or_else(|| "python".into());
        let templates = client.ok(reqwest::Method::GET, "/api/v1/templates", None).await?;
        let t = templates
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["slug"] == json!(slug) && t["language"] == json!(lang)))
            .ok_or_else(|| anyhow!("no example `{slug}` in {lang}; see `fnbox templates`"))?;
        body.insert("code".into(), t["code"].clone());
        body.insert("sample_input".into(), t["sample_input"].clone());
        if let Some(deps) = t["dependencies"].as_str() {
            body.insert("dependencies".into(), json!(deps));
        }
        if s.description.is_none() {
            body.insert("description".into(), t["description"].clone());
        }
        language = Some(lang);
    }
    for (path, for_language, flag) in
        [(&s.requirements, "python", "--requirements"), (&s.package_json, "javascript", "--package-json")]
    {
        let Some(path) = path else { continue };
        if language.is_none() && create {
            language = Some(for_language.into());
        }
        if let Some(l) = language.as_deref().filter(|l| *l != for_language) {
            bail!("{flag} is for {for_language} functions, this one is {l}");
        }
        body.insert("dependencies".into(), json!(read_source(path)?));
    }
    if s.no_dependencies {
        if create {
            bail!("--no-dependencies is for `fn update`");
        }
        body.insert("dependencies".into(), Value::Null);
    }
    if let Some(l) = language {
        body.insert("language".into(), json!(l));
    }
    if let Some(r) = &s.runtime {
        body.insert("runtime".into(), json!(r));
    }
    if let Some(v) = s.timeout_ms {
        body.insert("timeout_ms".into(), json!(v));
    }
    if let Some(v) = s.memory_mb {
        body.insert("memory_mb".into(), json!(v));
    }
    if let Some(v) = s.concurrency {
        body.insert("concurrency".into(), json!(v));
    }
    if let Some(v) = &s.description {
        body.insert("description".into(), json!(v));
    }
    if let Some(v) = &s.http {
        body.insert("http".into(), json!(v));
    }
    if let Some(v) = s.max_retries {
        body.insert("max_retries".into(), json!(v));
    }
    if create && !s.unset_env.is_empty() {
        bail!("--unset-env is for `fn update`");
    }
    if !s.env.is_empty() || !s.unset_env.is_empty() {
        // On update this is a merge patch: null removes, names not given keep their values.
        let mut env: BTreeMap<String, Value> = s.unset_env.iter().map(|k| (k.clone(), Value::Null)).collect();
        for kv in &s.env {
            let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--env expects KEY=VALUE, got `{kv}`"))?;
            env.insert(k.to_string(), json!(v));
        }
        body.insert("env".into(), json!(env));
    }
    if create && !body.contains_key("code") {
        bail!("give the code with --file PATH or --example NAME");
    }
    Ok(Value::Object(body))
}

/// Environment variable names with their values masked (the server never returns values).
fn env_cell(names: &Value) -> String {
    let names: Vec<String> = names.as_array().into_iter().flatten().filter_map(Value::as_str).map(|n| format!("{n}=••••••")).collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join("\n")
    }
}

fn print_function(f: &Value, base: &str) {
    let mut t = table(&["field", "value"]);
    for k in ["name", "language", "runtime", "version", "timeout_ms", "memory_mb", "concurrency", "max_retries", "description", "created_at", "updated_at"] {
        t.add_row(vec![k.to_string(), cell(&f[k])]);
    }
    t.add_row(vec!["env".to_string(), env_cell(&f["env_names"])]);
    let http = f["http"].as_str().unwrap_or("off");
    match f["url"].as_str() {
        Some(url) => t.add_row(vec!["http".to_string(), format!("{http}: {}{url} (any method)", base.trim_end_matches('/'))]),
        None => t.add_row(vec!["http".to_string(), http.to_string()]),
    };
    let build = &f["build"];
    if build["status"].as_str().is_some_and(|s| s != "none") {
        let mut line = build_outcome(build);
        if let Some(size) = build["size_bytes"].as_f64() {
            line.push_str(&format!(", {}", fmt_size(&json!(size))));
        }
        t.add_row(vec!["build".to_string(), format!("v{}: {line}", cell(&build["version"]))]);
    }
    if let Some(v) = f["serving_version"].as_u64() {
        let why = if build["status"] == json!("failed") { "failed" } else { "builds" };
        t.add_row(vec!["serving".to_string(), format!("version {v} serves while version {} {why}", cell(&f["version"]))]);
    }
    if let Some(deps) = f["dependencies"].as_str() {
        t.add_row(vec!["dependencies".to_string(), deps.trim_end().to_string()]);
    }
    println!("{t}");
    if let Some(code) = f["code"].as_str() {
        println!("{code}");
    }
}

/// What of a build's logs has not been printed yet. `printed` counts bytes of the whole log
/// printed so far; the server keeps only the log's tail, marked `[… N bytes cut …]\n` at the
/// front, so an answer may start later than what was printed. Returns the new text and the new
/// count.
fn new_log_text(logs: &str, printed: usize) -> (String, usize) {
    let (cut, rest) = match logs.strip_prefix("[… ").and_then(|r| r.split_once(" bytes cut …]\n")) {
        Some((n, rest)) => match n.parse::<usize>() {
            Ok(n) => (n, rest),
            Err(_) => (0, logs),
        },
        None => (0, logs),
    };
    let total = cut + rest.len();
    if total <= printed {
        return (String::new(), printed);
    }
    if printed < cut {
        // More arrived between two looks than the server keeps: say so, then the tail.
        return (format!("[… {} bytes of build output not shown …]\n{rest}", cut - printed), total);
    }
    let mut from = printed - cut;
    while !rest.is_char_boundary(from) {
        from -= 1;
    }
    (rest[from..].to_string(), total)
}

fn fmt_secs(ms: &Value) -> String {
    ms.as_f64().map(|ms| format!("{:.1} s", ms / 1000.0)).unwrap_or_else(|| "-".into())
}

fn fmt_size(bytes: &Value) -> String {
    match bytes.as_f64() {
        Some(b) if b >= 1048576.0 => format!("{:.1} MB", b / 1048576.0),
        Some(b) if b >= 1024.0 => format!("{:.1} KB", b / 1024.0),
        Some(b) => format!("{b:.0} B"),
        None => "-".into(),
    }
}

fn packages_of(build: &Value) -> Vec<String> {
    build["packages"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

/// `ready in 3.2 s (2 packages: humanize 4.17.0, pyyaml 6.0.2)` or `failed: <error>`.
fn build_outcome(build: &Value) -> String {
    match build["status"].as_str().unwrap_or("none") {
        "ready" => {
            let packages = packages_of(build);
            let n = packages.len();
            format!("ready in {} ({n} package{}: {})", fmt_secs(&build["duration_ms"]), if n == 1 { "" } else { "s" }, packages.join(", "))
        }
        "failed" => format!("failed: {}", build["error"].as_str().unwrap_or("(no message)")),
        other => other.to_string(),
    }
}

/// The build column of `fn list`: its status, and the version serving meanwhile.
fn build_cell(f: &Value) -> String {
    let status = f["build"]["status"].as_str().unwrap_or("none");
    let status = if status == "none" { "-" } else { status };
    match f["serving_version"].as_u64() {
        Some(v) => format!("{status} (v{v} serves)"),
        None => status.to_string(),
    }
}

/// Follows a function's build until it ends: `GET …/build?wait=2` in a loop, printing the logs
/// as they grow (unless `quiet`) and a last line with the outcome. Returns the last report.
async fn follow_build(client: &Client, name: &str, quiet: bool) -> Result<Value> {
    use std::io::Write;
    let mut printed = 0usize;
    let mut ends_with_newline = true;
    // The first look answers at once, so the announcement comes before any log.
    let mut wait = 0;
    loop {
        let report = client.ok(reqwest::Method::GET, &format!("/api/v1/functions/{name}/build?wait={wait}"), None).await?;
        let status = report["status"].as_str().unwrap_or("none").to_string();
        if !quiet {
            if wait == 0 && status == "building" {
                let serving = report["serving_version"].as_u64().map(|v| format!("; version {v} serves meanwhile")).unwrap_or_default();
                println!("building dependencies of {name} version {}{serving}", cell(&report["version"]));
            }
            let (text, now) = new_log_text(report["build"]["logs"].as_str().unwrap_or(""), printed);
            if !text.is_empty() {
                print!("{text}");
                ends_with_newline = text.ends_with('\n');
                let _ = std::io::stdout().flush();
            }
            printed = now;
        }
        if status != "building" {
            if !quiet {
                if !ends_with_newline {
                    println!();
                }
                if status != "none" {
                    println!("build {}", build_outcome(&report["build"]));
                    if status == "failed" {
                        if let Some(v) = report["serving_version"].as_u64() {
                            println!("version {v} keeps serving calls");
                        }
                    }
                }
            }
            return Ok(report);
        }
        wait = 2;
    }
}

/// After a create or update: waits for the build it started (unless `--no-wait`); returns the
/// exit code (1 when the build failed).
async fn after_change(client: &Client, f: &Value, s: &FnSettings, json_out: bool) -> Result<i32> {
    let name = f["name"].as_str().unwrap_or(&s.name).to_string();
    let status = f["build"]["status"].as_str().unwrap_or("none");
    if status == "none" {
        if json_out {
            print_json(f);
        }
        return Ok(0);
    }
    if s.no_wait {
        if json_out {
            print_json(f);
        } else if status == "building" {
            println!("building dependencies; follow with `fnbox build {name} --follow`");
        } else {
            println!("build {}", build_outcome(&f["build"]));
        }
        return Ok(i32::from(status == "failed"));
    }
    let report = follow_build(client, &name, json_out).await?;
    if json_out {
        // One document: the function as it is now that its build ended.
        let f = client.ok(reqwest::Method::GET, &format!("/api/v1/functions/{name}"), None).await?;
        print_json(&f);
    }
    Ok(i32::from(report["status"] == json!("failed")))
}

fn print_build(report: &Value, with_lock: bool) {
    let b = &report["build"];
    let mut t = table(&["field", "value"]);
    t.add_row(vec!["function".to_string(), cell(&report["function"])]);
    t.add_row(vec!["version".to_string(), cell(&report["version"])]);
    t.add_row(vec!["status".to_string(), cell(&report["status"])]);
    if let Some(v) = report["serving_version"].as_u64() {
        let why = if report["status"] == json!("failed") { "its build failed" } else { "this one builds" };
        t.add_row(vec!["serving".to_string(), format!("version {v} serves calls while {why}")]);
    }
    if b.is_object() {
        let packages = packages_of(b);
        t.add_row(vec!["packages".to_string(), if packages.is_empty() { "-".into() } else { packages.join("\n") }]);
        t.add_row(vec!["duration".to_string(), fmt_secs(&b["duration_ms"])]);
        t.add_row(vec!["size".to_string(), fmt_size(&b["size_bytes"])]);
        for k in ["started_at", "finished_at", "image", "error"] {
            if !b[k].is_null() {
                t.add_row(vec![k.to_string(), cell(&b[k])]);
            }
        }
    }
    println!("{t}");
    if !b.is_object() {
        println!("{} has no dependencies", cell(&report["function"]));
        return;
    }
    if let Some(logs) = b["logs"].as_str().filter(|l| !l.trim().is_empty()) {
        println!("--- logs ---\n{}", logs.trim_end());
    }
    if with_lock {
        if let Some(lock) = b["lock"].as_str() {
            println!("--- lock ---\n{}", lock.trim_end());
        }
    }
}

/// A value made safe for one path segment or query value: everything but unreserved
/// characters percent-encoded.
fn seg(v: &str) -> String {
    v.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// What started an execution, with its attempt when it is a retry: `async #2`.
fn trigger_cell(e: &Value) -> String {
    let t = e["trigger"].as_str().unwrap_or("api");
    match e["attempt"].as_u64() {
        Some(n) if n > 1 => format!("{t} #{n}"),
        _ => t.to_string(),
    }
}

/// `TypeError: boom`, cut to `max` characters.
fn error_cell(e: &Value, max: usize) -> String {
    if e.is_null() {
        return "-".into();
    }
    let text = format!("{}: {}", e["type"].as_str().unwrap_or("error"), e["message"].as_str().unwrap_or(""));
    let text = text.lines().next().unwrap_or("").to_string();
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    } else {
        text
    }
}

/// Prints a call's result (an invoke answer or an execution record) as `fnbox invoke` does:
/// its figures, logs and error on stderr, its output on stdout (or the whole answer with
/// `--json`). Returns the exit code: 0 on success, 1 otherwise.
fn print_result(r: &Value, json_out: bool) -> i32 {
    if json_out {
        print_json(r);
    } else {
        let mem = r["memory_bytes"].as_f64().map(|b| format!(", {:.1} MB", b / 1048576.0)).unwrap_or_default();
        let attempt = match r["attempt"].as_u64() {
            Some(n) if n > 1 => format!(" · attempt {n}"),
            _ => String::new(),
        };
        eprintln!(
            "{} · {} start · {} ms total · {} ms in handler{mem} · {} v{}{attempt}",
            cell(&r["status"]),
            if r["cold_start"] == json!(true) { "cold" } else { "warm" },
            cell(&r["duration_ms"]),
            cell(&r["exec_ms"]),
            cell(&r["runtime"]),
            cell(&r["version"]),
        );
        if let Some(logs) = r["logs"].as_str().filter(|l| !l.is_empty()) {
            eprintln!("--- logs ---\n{}", logs.trim_end());
        }
        if r["status"] == json!("success") {
            print_json(&r["output"]);
        } else {
            let e = &r["error"];
            eprintln!("{}: {}", cell(&e["type"]), cell(&e["message"]));
            if let Some(stack) = e["stack"].as_str().filter(|s| !s.is_empty()) {
                eprintln!("{stack}");
            }
        }
    }
    if r["status"] == json!("success") {
        0
    } else {
        1
    }
}

/// Polls the attempts of an asynchronous call until it is final: its latest attempt
/// succeeded, or failed and no retry follows (the call is in the dead letters). Says each
/// failed attempt on stderr (unless `quiet`). Returns the last attempt's record, or `None`
/// when `timeout_s` passed first.
async fn wait_for_call(client: &Client, name: &str, request_id: &str, timeout_s: u64, quiet: bool) -> Result<Option<Value>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    let path = format!("/api/v1/executions?request_id={}&trigger=all&limit=100", seg(request_id));
    let mut said = 0u64;
    // Only needed when the dead letters cannot be read with this key.
    let mut max_retries: Option<u64> = None;
    loop {
        let list = client.ok(reqwest::Method::GET, &path, None).await?;
        let latest = list.as_array().into_iter().flatten().max_by_key(|e| e["attempt"].as_u64().unwrap_or(1)).cloned();
        // Earlier failed attempts that ran between two polls are said too, in order.
        let latest_n = latest.as_ref().and_then(|e| e["attempt"].as_u64()).unwrap_or(1);
        let mut earlier: Vec<&Value> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["attempt"].as_u64().is_some_and(|n| n > said && n < latest_n) && e["status"] != json!("queued"))
            .collect();
        earlier.sort_by_key(|e| e["attempt"].as_u64());
        for e in earlier {
            let n = e["attempt"].as_u64().unwrap_or(1);
            if !quiet {
                eprintln!("attempt {n}: {} ({}); retrying", cell(&e["status"]), error_cell(&e["error"], 100));
            }
            said = n;
        }
        if let Some(e) = latest.filter(|e| e["status"] != json!("queued")) {
            if e["status"] == json!("success") {
                return Ok(Some(e));
            }
            let attempt = e["attempt"].as_u64().unwrap_or(1);
            let (status, _, _) = client.send(reqwest::Method::GET, &format!("/api/v1/dead-letters/{}", seg(request_id)), None, &[]).await?;
            let given_up = match status {
                200 => true,
                404 => false,
                _ => {
                    if max_retries.is_none() {
                        let f = client.ok(reqwest::Method::GET, &format!("/api/v1/functions/{name}"), None).await?;
                        max_retries = Some(f["max_retries"].as_u64().unwrap_or(2));
                    }
                    attempt > max_retries.unwrap_or(2)
                }
            };
            if given_up {
                if !quiet {
                    eprintln!("given up after attempt {attempt}: see `fnbox dead-letters get {request_id}`");
                }
                return Ok(Some(e));
            }
            if attempt > said && !quiet {
                eprintln!("attempt {attempt}: {} ({}); retrying", cell(&e["status"]), error_cell(&e["error"], 100));
                said = attempt;
            }
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn dead_letters(client: &Client, cmd: DeadLetterCommand, json_out: bool) -> Result<i32> {
    use reqwest::Method;
    match cmd {
        DeadLetterCommand::List { limit } => {
            let r = client.ok(Method::GET, &format!("/api/v1/dead-letters?limit={limit}"), None).await?;
            if json_out {
                print_json(&r);
                return Ok(0);
            }
            let items = r["dead_letters"].as_array().cloned().unwrap_or_default();
            let mut t = table(&["id", "function", "trigger", "attempts", "last error", "failed"]);
            for d in &items {
                t.add_row(vec![
                    cell(&d["id"]),
                    cell(&d["function"]),
                    cell(&d["trigger"]),
                    cell(&d["attempts"]),
                    error_cell(&d["last_error"], 60),
                    cell(&d["failed_at"]),
                ]);
            }
            println!("{t}");
            let total = r["total"].as_u64().unwrap_or(items.len() as u64);
            if total > items.len() as u64 {
                println!("{} of {total} dead letters shown (--limit)", items.len());
            } else {
                println!("{total} dead letter{}", if total == 1 { "" } else { "s" });
            }
        }
        DeadLetterCommand::Get { id } => {
            let d = client.ok(Method::GET, &format!("/api/v1/dead-letters/{}", seg(&id)), None).await?;
            if json_out {
                print_json(&d);
                return Ok(0);
            }
            let mut t = table(&["field", "value"]);
            for k in ["id", "function", "trigger", "attempts", "last_execution_id", "enqueued_at", "failed_at"] {
                t.add_row(vec![k.to_string(), cell(&d[k])]);
            }
            t.add_row(vec!["last_error".to_string(), error_cell(&d["last_error"], 2000)]);
            // The input is JSON text: shown pretty when it parses.
            let input = d["input"].as_str().map(|i| serde_json::from_str::<Value>(i).map_or_else(|_| i.to_string(), |v| serde_json::to_string_pretty(&v).unwrap_or_default()));
            t.add_row(vec!["input".to_string(), input.unwrap_or_else(|| "-".into())]);
            println!("{t}");
            println!("its attempts: `fnbox executions --request-id {}`", cell(&d["id"]));
        }
        DeadLetterCommand::Retry { id } => {
            let a = client.ok(Method::POST, &format!("/api/v1/dead-letters/{}/retry", seg(&id)), None).await?;
            if json_out {
                print_json(&a);
            } else {
                println!("queued again: execution {} (request {})", cell(&a["execution_id"]), cell(&a["request_id"]));
            }
        }
        DeadLetterCommand::Discard { id } => {
            client.ok(Method::DELETE, &format!("/api/v1/dead-letters/{}", seg(&id)), None).await?;
            if !json_out {
                println!("discarded dead letter {id}");
            }
        }
    }
    Ok(0)
}

/// `*/5 * * * *`, `UTC`, enabled, next run, last run: one line of a schedule.
fn schedule_line(s: &Value) -> String {
    let state = if s["enabled"] == json!(true) { format!("enabled, next run {}", cell(&s["next_run"])) } else { "disabled".to_string() };
    format!("{} ({}) on {}: {state}", cell(&s["cron"]), cell(&s["timezone"]), cell(&s["function"]))
}

async fn schedules(client: &Client, cmd: ScheduleCommand, json_out: bool) -> Result<i32> {
    use reqwest::Method;
    match cmd {
        ScheduleCommand::List { function } => {
            let path = match &function {
                Some(f) => format!("/api/v1/functions/{f}/schedules"),
                None => "/api/v1/schedules".to_string(),
            };
            let list = client.ok(Method::GET, &path, None).await?;
            if json_out {
                print_json(&list);
                return Ok(0);
            }
            let mut t = table(&["id", "function", "cron", "timezone", "enabled", "next run", "last run", "input"]);
            for s in list.as_array().into_iter().flatten() {
                t.add_row(vec![
                    cell(&s["id"]),
                    cell(&s["function"]),
                    cell(&s["cron"]),
                    cell(&s["timezone"]),
                    (if s["enabled"] == json!(true) { "yes" } else { "no" }).to_string(),
                    cell(&s["next_run"]),
                    cell(&s["last_run"]),
                    if s["input"].is_null() { "-".to_string() } else { s["input"].to_string() },
                ]);
            }
            println!("{t}");
        }
        ScheduleCommand::Get { id } => {
            let s = client.ok(Method::GET, &format!("/api/v1/schedules/{}", seg(&id)), None).await?;
            if json_out {
                print_json(&s);
                return Ok(0);
            }
            let mut t = table(&["field", "value"]);
            for k in ["id", "function", "cron", "timezone", "enabled", "next_run", "last_run", "created_at"] {
                t.add_row(vec![k.to_string(), cell(&s[k])]);
            }
            t.add_row(vec!["input".to_string(), serde_json::to_string_pretty(&s["input"]).unwrap_or_default()]);
            println!("{t}");
        }
        ScheduleCommand::Create { function, cron, timezone, input, disabled } => {
            let mut body = json!({"cron": cron, "enabled": !disabled});
            if let Some(tz) = timezone {
                body["timezone"] = json!(tz);
            }
            if let Some(i) = input {
                body["input"] = serde_json::from_str(&i).context("--input is not valid JSON")?;
            }
            let s = client.ok(Method::POST, &format!("/api/v1/functions/{function}/schedules"), Some(body.to_string())).await?;
            if json_out {
                print_json(&s);
            } else {
                println!("created schedule {}: {}", cell(&s["id"]), schedule_line(&s));
            }
        }
        ScheduleCommand::Delete { id } => {
            client.ok(Method::DELETE, &format!("/api/v1/schedules/{}", seg(&id)), None).await?;
            if !json_out {
                println!("deleted schedule {id}");
            }
        }
        ScheduleCommand::Enable { id } => return set_schedule_enabled(client, &id, true, json_out).await,
        ScheduleCommand::Disable { id } => return set_schedule_enabled(client, &id, false, json_out).await,
    }
    Ok(0)
}

async fn set_schedule_enabled(client: &Client, id: &str, enabled: bool, json_out: bool) -> Result<i32> {
    let body = json!({ "enabled": enabled }).to_string();
    let s = client.ok(reqwest::Method::PATCH, &format!("/api/v1/schedules/{}", seg(id)), Some(body)).await?;
    if json_out {
        print_json(&s);
    } else {
        println!("{} schedule {}: {}", if enabled { "enabled" } else { "disabled" }, cell(&s["id"]), schedule_line(&s));
    }
    Ok(0)
}

/// Runs one client command; returns the process exit code.
pub async fn run(opts: ClientOpts, cmd: Command) -> Result<i32> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = opts.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| anyhow!("--api-key / FNBOX_API_KEY contains characters a header cannot carry"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::Client::builder().default_headers(headers).build().context("building the HTTP client")?;
    let client = Client { http, base: opts.server.clone() };
    use reqwest::Method;
    match cmd {
        Command::Function(FnCommand::Create(s)) => {
            let body = settings_body(&client, &s, true).await?;
            let f = client.ok(Method::POST, "/api/v1/functions", Some(body.to_string())).await?;
            if !opts.json {
                println!("created {} ({} on {}, version {})", cell(&f["name"]), cell(&f["language"]), cell(&f["runtime"]), cell(&f["version"]));
                if let Some(url) = f["url"].as_str() {
                    println!("function URL ({}): {}{url}", cell(&f["http"]), client.base.trim_end_matches('/'));
                }
            }
            return after_change(&client, &f, &s, opts.json).await;
        }
        Command::Function(FnCommand::Update(s)) => {
            let body = settings_body(&client, &s, false).await?;
            let f = client.ok(Method::PUT, &format!("/api/v1/functions/{}", s.name), Some(body.to_string())).await?;
            if !opts.json {
                println!("updated {} (version {})", cell(&f["name"]), cell(&f["version"]));
                if let Some(url) = f["url"].as_str() {
                    println!("function URL ({}): {}{url}", cell(&f["http"]), client.base.trim_end_matches('/'));
                }
            }
            return after_change(&client, &f, &s, opts.json).await;
        }
        Command::Function(FnCommand::List) => {
            let fs = client.all_functions().await?;
            if opts.json {
                print_json(&fs);
            } else {
                let mut t = table(&["name", "language", "runtime", "version", "timeout ms", "memory MB", "env", "build", "updated"]);
                for f in fs.as_array().into_iter().flatten() {
                    let mut row: Vec<String> = ["name", "language", "runtime", "version", "timeout_ms", "memory_mb"].map(|k| cell(&f[k])).into();
                    row.push(f["env_names"].as_array().map_or(0, Vec::len).to_string());
                    row.push(build_cell(f));
                    row.push(cell(&f["updated_at"]));
                    t.add_row(row);
                }
                println!("{t}");
            }
        }
        Command::Function(FnCommand::Get { name }) => {
            let f = client.ok(Method::GET, &format!("/api/v1/functions/{name}"), None).await?;
            if opts.json {
                print_json(&f);
            } else {
                print_function(&f, &client.base);
            }
        }
        Command::Function(FnCommand::Delete { name }) => {
            client.ok(Method::DELETE, &format!("/api/v1/functions/{name}"), None).await?;
            if !opts.json {
                println!("deleted {name}");
            }
        }
        Command::Invoke { name, input, async_call, wait, wait_timeout, version } => {
            let body = match input.as_deref() {
                None => "{}".to_string(),
                Some("-") => read_source("-")?,
                Some(s) => s.to_string(),
            };
            let path = format!("/api/v1/functions/{name}/invoke");
            if let Some(v) = version {
                let r = client.ok(Method::POST, &format!("{path}?version={v}"), Some(body)).await?;
                return Ok(print_result(&r, opts.json));
            }
            if !async_call {
                let r = client.ok(Method::POST, &path, Some(body)).await?;
                return Ok(print_result(&r, opts.json));
            }
            let (status, _, accepted) = client.send(Method::POST, &path, Some(body), &[("prefer", "respond-async")]).await?;
            error_of(status, &accepted)?;
            if status != 202 {
                // A server without asynchronous calls ignores the preference and runs the call.
                eprintln!("the server ran the call synchronously (it answered {status}, not 202)");
                return Ok(print_result(&accepted, opts.json));
            }
            let request_id = accepted["request_id"].as_str().unwrap_or_default().to_string();
            if !wait {
                if opts.json {
                    print_json(&accepted);
                } else {
                    println!("queued: execution {} (request {request_id})", cell(&accepted["execution_id"]));
                    eprintln!("follow it with `fnbox executions --request-id {request_id}`");
                }
                return Ok(0);
            }
            if !opts.json {
                eprintln!("queued: execution {} (request {request_id}); waiting…", cell(&accepted["execution_id"]));
            }
            return match wait_for_call(&client, &name, &request_id, wait_timeout, opts.json).await? {
                Some(last) => Ok(print_result(&last, opts.json)),
                None => {
                    eprintln!("not final after {wait_timeout} s; the call goes on: follow it with `fnbox executions --request-id {request_id}`");
                    Ok(2)
                }
            };
        }
        Command::Versions { name, version: None } => {
            let list = client.ok(Method::GET, &format!("/api/v1/functions/{name}/versions"), None).await?;
            if opts.json {
                print_json(&list);
            } else {
                let mut t = table(&["version", "created", "language", "runtime", "timeout_ms", "memory_mb", "code", "build"]);
                for v in list.as_array().into_iter().flatten() {
                    let build = v["build"].as_str().filter(|b| *b != "none").unwrap_or("-");
                    t.add_row(vec![
                        cell(&v["version"]),
                        cell(&v["created_at"]),
                        cell(&v["language"]),
                        cell(&v["runtime"]),
                        cell(&v["timeout_ms"]),
                        cell(&v["memory_mb"]),
                        fmt_size(&v["code_bytes"]),
                        build.to_string(),
                    ]);
                }
                println!("{t}");
            }
        }
        Command::Versions { name, version: Some(v) } => {
            let snap = client.ok(Method::GET, &format!("/api/v1/functions/{name}/versions/{v}"), None).await?;
            if opts.json {
                print_json(&snap);
            } else {
                let mut t = table(&["field", "value"]);
                for k in ["function", "version", "created_at", "language", "runtime", "timeout_ms", "memory_mb", "concurrency", "max_retries", "description"] {
                    t.add_row(vec![k.to_string(), cell(&snap[k])]);
                }
                t.add_row(vec!["env".to_string(), env_cell(&snap["env_names"])]);
                if let Some(deps) = snap["dependencies"].as_str() {
                    t.add_row(vec!["dependencies".to_string(), deps.trim_end().to_string()]);
                }
                // Settings go to stderr, the code to stdout: `fnbox versions f 3 > old.py` saves it.
                eprintln!("{t}");
                match snap["code"].as_str() {
                    Some(code) => print!("{code}{}", if code.ends_with('\n') { "" } else { "\n" }),
                    None => eprintln!("(the code is shown to admin keys only)"),
                }
            }
        }
        Command::Rollback { name, version } => {
            let body = json!({ "version": version }).to_string();
            let f = client.ok(Method::POST, &format!("/api/v1/functions/{name}/rollback"), Some(body)).await?;
            if opts.json {
                print_json(&f);
            } else {
                println!("{name} is now version {} (the code and settings of version {version})", cell(&f["version"]));
                if f["build"]["status"] == json!("building") {
                    println!("building dependencies; follow with `fnbox build {name} --follow`");
                }
            }
        }
        Command::Executions { function, status, runtime, trigger, request_id, limit } => {
            let mut q = vec![format!("limit={limit}")];
            // The attempts of one call, whatever started it.
            let trigger = trigger.or_else(|| request_id.as_ref().map(|_| "all".to_string()));
            for (k, v) in [("function", function), ("status", status), ("runtime", runtime), ("trigger", trigger), ("request_id", request_id)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", seg(&v)));
                }
            }
            let es = client.ok(Method::GET, &format!("/api/v1/executions?{}", q.join("&")), None).await?;
            if opts.json {
                print_json(&es);
            } else {
                let mut t = table(&["id", "function", "v", "runtime", "trigger", "status", "start", "duration ms", "exec ms", "memory MB", "started"]);
                for e in es.as_array().into_iter().flatten() {
                    t.add_row(vec![
                        cell(&e["id"]),
                        cell(&e["function"]),
                        cell(&e["version"]),
                        cell(&e["runtime"]),
                        trigger_cell(e),
                        cell(&e["status"]),
                        (if e["cold_start"] == json!(true) { "cold" } else { "warm" }).to_string(),
                        cell(&e["duration_ms"]),
                        cell(&e["exec_ms"]),
                        e["memory_bytes"].as_f64().map(|b| format!("{:.1}", b / 1048576.0)).unwrap_or_else(|| "-".into()),
                        cell(&e["started_at"]),
                    ]);
                }
                println!("{t}");
            }
        }
        Command::DeadLetters(cmd) => return dead_letters(&client, cmd, opts.json).await,
        Command::Schedules(cmd) => return schedules(&client, cmd, opts.json).await,
        Command::Queue => {
            let q = client.ok(Method::GET, "/api/v1/queue", None).await?;
            if opts.json {
                print_json(&q);
            } else {
                let mut t = table(&["field", "value"]);
                t.add_row(vec!["queued (waiting, backing off or running)".to_string(), format!("{} of at most {}", cell(&q["depth"]), cell(&q["max_depth"]))]);
                t.add_row(vec!["dead letters".to_string(), cell(&q["dead_letters"])]);
                println!("{t}");
            }
        }
        Command::Execution { id } => {
            let e = client.ok(Method::GET, &format!("/api/v1/executions/{id}"), None).await?;
            print_json(&e);
        }
        Command::Templates => {
            let ts = client.ok(Method::GET, "/api/v1/templates", None).await?;
            if opts.json {
                print_json(&ts);
            } else {
                let mut t = table(&["example", "language", "title", "sample input"]);
                for x in ts.as_array().into_iter().flatten() {
                    t.add_row(vec![cell(&x["slug"]), cell(&x["language"]), cell(&x["title"]), x["sample_input"].to_string()]);
                }
                println!("{t}");
            }
        }
        Command::Compare { name, iterations, concurrency, input } => {
            let mut body = json!({"iterations": iterations, "concurrency": concurrency});
            if let Some(i) = input {
                body["input"] = serde_json::from_str(&i).context("--input is not valid JSON")?;
            }
            let c = client.ok(Method::POST, &format!("/api/v1/functions/{name}/compare"), Some(body.to_string())).await?;
            if opts.json {
                print_json(&c);
            } else {
                let ms = |v: &Value| v.as_f64().map(|x| format!("{x:.2} ms")).unwrap_or_else(|| "-".into());
                let mb = |v: &Value| v.as_f64().map(|x| format!("{:.1} MB", x / 1048576.0)).unwrap_or_else(|| "-".into());
                let pct = |v: &Value| v.as_f64().map(|x| format!("{:.1}%", x * 100.0)).unwrap_or_else(|| "-".into());
                let ratio = |k: &str| c["ratios"][k].as_f64().map(|x| format!("{x:.2}×")).unwrap_or_else(|| "-".into());
                let mut t = table(&["figure", "docker (runc)", "gvisor (runsc)", "gvisor / docker"]);
                type Fmt<'a> = &'a dyn Fn(&Value) -> String;
                let rows: [(&str, &str, Fmt<'_>); 7] = [
                    ("cold start", "cold_start_ms", &ms),
                    ("warm p50", "warm_p50_ms", &ms),
                    ("warm p99", "warm_p99_ms", &ms),
                    ("exec p50", "exec_p50_ms", &ms),
                    ("memory p50", "memory_p50_bytes", &mb),
                    ("memory max", "memory_max_bytes", &mb),
                    ("success rate", "success_rate", &pct),
                ];
                for (label, key, f) in rows {
                    t.add_row(vec![label.to_string(), f(&c["docker"][key]), f(&c["gvisor"][key]), ratio(key)]);
                }
                println!("{name}: {iterations} warm calls per runtime, concurrency {concurrency}");
                println!("{t}");
            }
        }
        Command::Cluster => {
            let c = client.ok(Method::GET, "/api/v1/cluster", None).await?;
            if opts.json {
                print_json(&c);
            } else {
                let me = c["node"].as_str().unwrap_or("");
                println!("mode: {}{}", cell(&c["mode"]), if me.is_empty() { String::new() } else { format!(" (answered by {me})") });
                let mut t = table(&["node", "state", "api", "runtimes", "sandboxes", "idle", "running", "memory MB", "heartbeat"]);
                for n in c["nodes"].as_array().into_iter().flatten() {
                    let runtimes: Vec<String> = n["runtimes"].as_array().into_iter().flatten().map(cell).collect();
                    let state = if n["live"].as_bool().unwrap_or(false) { "live" } else { "gone" };
                    t.add_row(vec![
                        cell(&n["id"]),
                        state.into(),
                        cell(&n["api_url"]),
                        runtimes.join(","),
                        format!("{}/{}", cell(&n["sandboxes"]), cell(&n["max_sandboxes"])),
                        cell(&n["idle_sandboxes"]),
                        cell(&n["running"]),
                        format!("{}/{}", cell(&n["memory_committed_mb"]), cell(&n["memory_budget_mb"])),
                        format!("{} ms ago", cell(&n["last_heartbeat_ms"])),
                    ]);
                }
                println!("{t}");
            }
        }
        Command::Build { name, wait, follow, lock } => {
            let report = if follow {
                follow_build(&client, &name, opts.json).await?;
                client.ok(Method::GET, &format!("/api/v1/functions/{name}/build"), None).await?
            } else {
                client.ok(Method::GET, &format!("/api/v1/functions/{name}/build?wait={wait}"), None).await?
            };
            if opts.json {
                print_json(&report);
            } else if follow {
                // The logs were printed as they came.
                let mut r = report.clone();
                r["build"]["logs"] = json!("");
                print_build(&r, lock);
            } else {
                print_build(&report, lock);
            }
            return Ok(i32::from(report["status"] == json!("failed")));
        }
        Command::Health => {
            let (status, h) = client.call(Method::GET, "/healthz", None).await?;
            print_json(&h);
            return Ok(if status == 200 { 0 } else { 1 });
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        opts: ClientOpts,
        #[command(subcommand)]
        cmd: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("fnbox").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn the_commands_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        match parse(&["invoke", "f", "{}", "--async", "--wait", "--wait-timeout", "5"]) {
            Ok(Command::Invoke { async_call: true, wait: true, wait_timeout: 5, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(parse(&["invoke", "f", "--wait"]).is_err(), "--wait needs --async");
        assert!(matches!(parse(&["invoke", "f", "{}", "--version", "3"]), Ok(Command::Invoke { version: Some(3), .. })));
        assert!(parse(&["invoke", "f", "--version", "3", "--async"]).is_err(), "asynchronous calls run the current version");
        assert!(parse(&["invoke", "f", "--version", "0"]).is_err());
        assert!(matches!(parse(&["versions", "f"]), Ok(Command::Versions { version: None, .. })));
        assert!(matches!(parse(&["versions", "f", "2"]), Ok(Command::Versions { version: Some(2), .. })));
        assert!(matches!(parse(&["rollback", "f", "1"]), Ok(Command::Rollback { version: 1, .. })));
        assert!(parse(&["rollback", "f"]).is_err(), "a rollback names its version");
        for t in ["api", "http", "async", "schedule", "compare", "all"] {
            assert!(parse(&["executions", "--trigger", t]).is_ok(), "{t}");
        }
        assert!(parse(&["executions", "--trigger", "cron"]).is_err());
        assert!(matches!(parse(&["executions", "--request-id", "x"]), Ok(Command::Executions { request_id: Some(_), .. })));
        assert!(matches!(parse(&["fn", "update", "f", "--max-retries", "5"]), Ok(Command::Function(FnCommand::Update(FnSettings { max_retries: Some(5), .. })))));
        assert!(parse(&["fn", "update", "f", "--max-retries", "6"]).is_err());
        match parse(&["schedules", "create", "f", "--cron", "*/5 * * * *", "--timezone", "Europe/Paris", "--input", "{}", "--disabled"]) {
            Ok(Command::Schedules(ScheduleCommand::Create { disabled: true, timezone: Some(tz), .. })) => assert_eq!(tz, "Europe/Paris"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse(&["schedules", "list"]), Ok(Command::Schedules(ScheduleCommand::List { function: None }))));
        for sub in ["enable", "disable", "delete", "get"] {
            assert!(parse(&["schedules", sub, "id"]).is_ok(), "{sub}");
        }
        for sub in ["get", "retry", "discard"] {
            assert!(parse(&["dead-letters", sub, "id"]).is_ok(), "{sub}");
        }
        assert!(matches!(parse(&["dead-letters", "list"]), Ok(Command::DeadLetters(DeadLetterCommand::List { limit: 100 }))));
        assert!(matches!(parse(&["queue"]), Ok(Command::Queue)));
    }

    #[test]
    fn cells_of_the_async_fields() {
        assert_eq!(trigger_cell(&json!({"trigger": "async", "attempt": 3})), "async #3");
        assert_eq!(trigger_cell(&json!({"trigger": "schedule", "attempt": 1})), "schedule");
        assert_eq!(trigger_cell(&json!({})), "api");
        assert_eq!(error_cell(&Value::Null, 10), "-");
        assert_eq!(error_cell(&json!({"type": "E", "message": "boom\nstack"}), 60), "E: boom");
        assert_eq!(error_cell(&json!({"type": "E", "message": "abcdefghij"}), 6), "E: ab…");
        assert_eq!(seg("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(seg("0b7e-AZ_~."), "0b7e-AZ_~.");
    }

    #[test]
    fn only_the_new_tail_of_the_logs_is_printed() {
        assert_eq!(new_log_text("", 0), (String::new(), 0));
        assert_eq!(new_log_text("a\nb", 0), ("a\nb".to_string(), 3));
        assert_eq!(new_log_text("a\nb\nc\n", 3), ("\nc\n".to_string(), 6));
        assert_eq!(new_log_text("a\nb\nc\n", 6), (String::new(), 6));
        // The server keeps the tail: 10 bytes cut, "xyz\n" kept; 12 printed, 2 are new.
        assert_eq!(new_log_text("[… 10 bytes cut …]\nxyz\n", 12), ("z\n".to_string(), 14));
        // More was cut than was printed: the gap is said, then the tail.
        assert_eq!(
            new_log_text("[… 10 bytes cut …]\nxyz\n", 4),
            ("[… 6 bytes of build output not shown …]\nxyz\n".to_string(), 14)
        );
        // Never splits a character.
        let (text, n) = new_log_text("é!", 1);
        assert_eq!((text.as_str(), n), ("é!", 3));
    }

    #[test]
    fn the_outcome_line() {
        let b = json!({"status": "ready", "duration_ms": 3210, "packages": ["humanize 4.17.0", "pyyaml 6.0.2"]});
        assert_eq!(build_outcome(&b), "ready in 3.2 s (2 packages: humanize 4.17.0, pyyaml 6.0.2)");
        let b = json!({"status": "failed", "error": "ERROR: No matching distribution found for nosuchpkg"});
        assert_eq!(build_outcome(&b), "failed: ERROR: No matching distribution found for nosuchpkg");
        assert_eq!(build_cell(&json!({"build": {"status": "building"}, "serving_version": 2})), "building (v2 serves)");
        assert_eq!(build_cell(&json!({"build": {"status": "none"}})), "-");
    }
}
