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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage functions.
    #[command(name = "fn", subcommand)]
    Function(FnCommand),
    /// Invoke a function with a JSON event (argument, or `-` for stdin; default `{}`).
    Invoke { name: String, input: Option<String> },
    /// List recent executions, newest first.
    Executions {
        #[arg(long)]
        function: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        runtime: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
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
        let url = format!("{}{}", self.base.trim_end_matches('/'), path);
        let mut req = self.http.request(method, &url);
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
        Ok((headers, value))
    }
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
        if s.description.is_none() {
            body.insert("description".into(), t["description"].clone());
        }
        language = Some(lang);
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

fn print_function(f: &Value) {
    let mut t = table(&["field", "value"]);
    for k in ["name", "language", "runtime", "version", "timeout_ms", "memory_mb", "concurrency", "description", "created_at", "updated_at"] {
        t.add_row(vec![k.to_string(), cell(&f[k])]);
    }
    t.add_row(vec!["env".to_string(), env_cell(&f["env_names"])]);
    println!("{t}");
    if let Some(code) = f["code"].as_str() {
        println!("{code}");
    }
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
            if opts.json {
                print_json(&f);
            } else {
                println!("created {} ({} on {}, version {})", cell(&f["name"]), cell(&f["language"]), cell(&f["runtime"]), cell(&f["version"]));
            }
        }
        Command::Function(FnCommand::Update(s)) => {
            let body = settings_body(&client, &s, false).await?;
            let f = client.ok(Method::PUT, &format!("/api/v1/functions/{}", s.name), Some(body.to_string())).await?;
            if opts.json {
                print_json(&f);
            } else {
                println!("updated {} (version {})", cell(&f["name"]), cell(&f["version"]));
            }
        }
        Command::Function(FnCommand::List) => {
            let fs = client.all_functions().await?;
            if opts.json {
                print_json(&fs);
            } else {
                let mut t = table(&["name", "language", "runtime", "version", "timeout ms", "memory MB", "env", "updated"]);
                for f in fs.as_array().into_iter().flatten() {
                    let mut row: Vec<String> = ["name", "language", "runtime", "version", "timeout_ms", "memory_mb"].map(|k| cell(&f[k])).into();
                    row.push(f["env_names"].as_array().map_or(0, Vec::len).to_string());
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
                print_function(&f);
            }
        }
        Command::Function(FnCommand::Delete { name }) => {
            client.ok(Method::DELETE, &format!("/api/v1/functions/{name}"), None).await?;
            if !opts.json {
                println!("deleted {name}");
            }
        }
        Command::Invoke { name, input } => {
            let body = match input.as_deref() {
                None => "{}".to_string(),
                Some("-") => read_source("-")?,
                Some(s) => s.to_string(),
            };
            let r = client.ok(Method::POST, &format!("/api/v1/functions/{name}/invoke"), Some(body)).await?;
            if opts.json {
                print_json(&r);
            } else {
                let mem = r["memory_bytes"].as_f64().map(|b| format!(", {:.1} MB", b / 1048576.0)).unwrap_or_default();
                eprintln!(
                    "{} · {} start · {} ms total · {} ms in handler{mem} · {} v{}",
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
            return Ok(if r["status"] == json!("success") { 0 } else { 1 });
        }
        Command::Executions { function, status, runtime, limit } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [("function", function), ("status", status), ("runtime", runtime)] {
                if let Some(v) = v {
                    q.push(format!("{k}={v}"));
                }
            }
            let es = client.ok(Method::GET, &format!("/api/v1/executions?{}", q.join("&")), None).await?;
            if opts.json {
                print_json(&es);
            } else {
                let mut t = table(&["id", "function", "v", "runtime", "status", "start", "duration ms", "exec ms", "memory MB", "started"]);
                for e in es.as_array().into_iter().flatten() {
                    t.add_row(vec![
                        cell(&e["id"]),
                        cell(&e["function"]),
                        cell(&e["version"]),
                        cell(&e["runtime"]),
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
        Command::Health => {
            let (status, h) = client.call(Method::GET, "/healthz", None).await?;
            print_json(&h);
            return Ok(if status == 200 { 0 } else { 1 });
        }
    }
    Ok(0)
}
