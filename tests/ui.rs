//! The web UI in a real browser (Debian's Chromium through ChromeDriver): create a function
//! from the Fibonacci template, run it from the generated form, see the dashboard chart and a
//! runtime comparison, and see field errors where they belong. Screenshots of every page go to
//! target/ui-screenshots/.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by `make test` (scripts/test-deps.sh)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver) -> Client {
    browser_with(driver, &[]).await
}

/// A browser with more Chromium switches (e.g. the dark colour scheme).
async fn browser_with(driver: &Driver, extra: &[&str]) -> Client {
    let mut args = vec!["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                        "--window-size=1280,1000"];
    args.extend_from_slice(extra);
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("browser session")
}

/// Polls a JavaScript expression until it is truthy; returns its value.
async fn wait_js(c: &Client, expr: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c.execute(&format!("return ({expr});"), vec![]).await.unwrap_or(Value::Null);
        let truthy = !matches!(v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
        if truthy {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} ({expr})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn set_value(c: &Client, css: &str, value: &str) {
    c.execute(
        "const el = document.querySelector(arguments[0]); el.value = arguments[1]; el.dispatchEvent(new Event('change', {bubbles: true})); return true;",
        vec![json!(css), json!(value)],
    )
    .await
    .expect("set value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_end_to_end() {
    let server = TestServer::start(&[]).await;
    server.require_runtimes().await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = server.url.clone();

    // Functions page, empty.
    c.goto(&format!("{base}/#/functions")).await.expect("open");
    wait_js(&c, "document.querySelector('#fn-table .empty, #fn-table table')", "functions table").await;
    shot(&c, "01-functions-empty").await;

    // Create from the Fibonacci template (Python).
    c.goto(&format!("{base}/#/create")).await.expect("open create");
    wait_js(&c, "document.querySelectorAll('#template option').length > 1", "templates").await;
    let idx = wait_js(
        &c,
        "[...document.querySelectorAll('#template option')].findIndex(o => o.textContent === 'Fibonacci (python)')",
        "fibonacci template",
    )
    .await;
    let value = c
        .execute("return document.querySelectorAll('#template option')[arguments[0]].value;", vec![idx])
        .await
        .expect("option value");
    set_value(&c, "#template", value.as_str().unwrap_or("")).await;
    wait_js(&c, "document.querySelector('#code').textContent.includes('fibonacci')", "template code in the editor").await;
    let name_input = c.find(Locator::Css("#name")).await.expect("name");
    name_input.clear().await.expect("clear");
    name_input.send_keys("fib-ui").await.expect("type name");
    shot(&c, "02-create-fibonacci").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click create");

    // Execute page with a generated form: field `n` prefilled with 10 from the sample input.
    wait_js(&c, "location.hash === '#/execute/fib-ui' && document.querySelector('#in-n')", "execute form").await;
    let n = c.execute("return document.querySelector('#in-n').value;", vec![]).await.expect("n");
    assert_eq!(n, json!("10"));
    c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click run");
    let out = wait_js(&c, "document.querySelector('#output') && document.querySelector('#output').textContent", "output").await;
    assert_eq!(out.as_str().map(str::trim), Some("55"), "the page shows the result");
    let stats = c.execute("return document.querySelector('#result-stats').textContent;", vec![]).await.expect("stats");
    let stats = stats.as_str().unwrap_or("");
    for word in ["success", "Duration", "Memory", "cold"] {
        assert!(stats.contains(word), "result shows {word}: {stats}");
    }
    shot(&c, "03-execute-result").await;
    // A few more runs for the charts.
    for _ in 0..5 {
        c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click run");
        wait_js(&c, "!document.querySelector('#run').disabled && document.querySelector('#output')", "run done").await;
    }

    // Executions, live.
    c.goto(&format!("{base}/#/executions")).await.expect("open executions");
    wait_js(&c, "document.querySelectorAll('#exec-rows tr[data-id]').length >= 6", "execution rows").await;
    server.invoke("fib-ui", &json!({"n": 3})).await;
    wait_js(&c, "document.querySelectorAll('#exec-rows tr[data-id]').length >= 7", "a live row from the event stream").await;
    shot(&c, "04-executions").await;

    // Dashboard: a chart drawn with data.
    c.goto(&format!("{base}/#/dashboard")).await.expect("open dashboard");
    let points = wait_js(&c, "document.querySelector('#chart-latency .uplot canvas') && Number(document.querySelector('#chart-latency').dataset.points)", "latency chart").await;
    assert!(points.as_f64().unwrap_or(0.0) >= 1.0, "chart has data points: {points}");
    let inv = c.execute("return document.querySelector('#stat-invocations').textContent;", vec![]).await.expect("inv");
    assert_eq!(inv, json!("7"));
    shot(&c, "05-dashboard").await;

    // Compare runtimes: both sides shown.
    c.goto(&format!("{base}/#/compare")).await.expect("open compare");
    wait_js(&c, "document.querySelector('#c-function option')", "compare form").await;
    set_value(&c, "#c-iterations", "3").await;
    c.find(Locator::Css("#c-run")).await.expect("compare").click().await.expect("click compare");
    let table = wait_js(&c, "document.querySelector('#ratio-table') && document.querySelector('#ratio-table').textContent", "ratio table").await;
    let table = table.as_str().unwrap_or("");
    assert!(table.contains("Docker") && table.contains("gVisor") && table.contains("Cold start"), "{table}");
    let bars = c.execute("return document.querySelectorAll('#comparison .fill.docker').length + ',' + document.querySelectorAll('#comparison .fill.gvisor').length;", vec![]).await.expect("bars");
    assert_eq!(bars, json!("6,6"), "a bar per figure for each runtime");
    wait_js(&c, "document.querySelectorAll('#c-past [data-cmp]').length === 1", "comparison listed").await;
    shot(&c, "06-compare").await;

    // Environment variables: set one; it comes back as a name only, the edit form never holds
    // its value, and saving other changes keeps it (the value is not resent).
    let secret = "ui-secret-4f1c9a";
    c.goto(&format!("{base}/#/edit/fib-ui")).await.expect("open edit");
    wait_js(&c, "document.querySelector('#env-add') && document.querySelector('#code').textContent.includes('fibonacci')", "edit form").await;
    c.find(Locator::Css("#env-add")).await.expect("add").click().await.expect("click add");
    set_value(&c, "#env-name-0", "API_TOKEN").await;
    set_value(&c, "#env-value-0", secret).await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click save");
    wait_js(&c, "location.hash === '#/execute/fib-ui'", "saved").await;
    let (_, f) = server.get("/api/v1/functions/fib-ui").await;
    assert_eq!(f["env_names"], json!(["API_TOKEN"]), "{f}");
    let version = f["version"].clone();
    c.goto(&format!("{base}/#/edit/fib-ui")).await.expect("open edit");
    wait_js(&c, "document.querySelector('#env-rows .env-row[data-saved=\"1\"]')", "the saved variable").await;
    let shown = c
        .execute("return [document.querySelector('#env-name-0').value, document.querySelector('#env-value-0').value, document.documentElement.outerHTML.includes(arguments[0])];", vec![json!(secret)])
        .await
        .expect("env row");
    assert_eq!(shown, json!(["API_TOKEN", "", false]), "name shown, value not in the page");
    shot(&c, "06b-env-masked").await;
    set_value(&c, "#description", "with a secret").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click save");
    wait_js(&c, "location.hash === '#/execute/fib-ui'", "saved").await;
    let (_, f) = server.get("/api/v1/functions/fib-ui").await;
    assert_eq!((f["env_names"].clone(), f["version"].clone(), f["description"].clone()), (json!(["API_TOKEN"]), version, json!("with a secret")), "kept, not overwritten: {f}");
    c.goto(&format!("{base}/#/edit/fib-ui")).await.expect("open edit");
    wait_js(&c, "document.querySelector('#env-rows .env-remove')", "the saved variable").await;
    c.find(Locator::Css("#env-rows .env-remove")).await.expect("remove").click().await.expect("click remove");
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click save");
    wait_js(&c, "location.hash === '#/execute/fib-ui'", "saved").await;
    let (_, f) = server.get("/api/v1/functions/fib-ui").await;
    assert_eq!(f["env_names"], json!([]), "removed: {f}");

    // Field errors next to their fields: a syntax error (with its line) and a bad timeout.
    c.goto(&format!("{base}/#/create")).await.expect("open create");
    wait_js(&c, "document.querySelector('#code')", "editor").await;
    c.execute("document.querySelector('#code').textContent = 'def handler(event):\\n    return (1 +\\n'; return true;", vec![]).await.expect("code");
    set_value(&c, "#name", "bad-ui").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click");
    let err = wait_js(&c, "document.querySelector('#err-code').textContent", "code error").await;
    assert!(err.as_str().unwrap_or("").contains("SyntaxError"), "{err}");
    let bad_line = wait_js(&c, "document.querySelector('#gutter .bad') && document.querySelector('#gutter .bad').textContent", "marked line").await;
    assert!(bad_line.as_str().unwrap_or("").parse::<u32>().is_ok(), "{bad_line}");
    shot(&c, "07-syntax-error").await;
    c.execute("document.querySelector('#code').textContent = 'def handler(event):\\n    return 1\\n'; return true;", vec![]).await.expect("code");
    set_value(&c, "#timeout_ms", "5").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click");
    let err = wait_js(&c, "document.querySelector('#err-timeout_ms').textContent", "timeout error").await;
    assert!(err.as_str().unwrap_or("").contains("between 100 and 300000"), "{err}");
    let invalid = c.execute("return document.querySelector('#timeout_ms').closest('.field').classList.contains('invalid');", vec![]).await.expect("invalid");
    assert_eq!(invalid, json!(true));
    shot(&c, "08-bad-timeout").await;

    // Phone-sized layout: the menu collapses behind a button. (Leaving the unsaved form asks
    // first; the answer is yes.)
    c.execute("window.confirm = () => true; return true;", vec![]).await.expect("confirm");
    open_hash(&c, "#/functions").await;
    c.set_window_size(390, 844).await.expect("resize");
    c.goto(&format!("{base}/#/functions")).await.expect("open");
    wait_js(&c, "document.querySelector('#fn-table table')", "functions table").await;
    let menu = c.execute("return getComputedStyle(document.querySelector('#menu-toggle')).display;", vec![]).await.expect("menu");
    assert_ne!(menu, json!("none"), "menu button on a phone");
    shot(&c, "09-phone").await;

    // The list's last status comes with the functions (issue 16 item 8): the page downloads no
    // executions to show it.
    c.execute("location.hash = '#/create'; return true;", vec![]).await.expect("leave");
    wait_js(&c, "document.querySelector('#template')", "create page").await;
    c.execute("performance.clearResourceTimings(); location.hash = '#/functions'; return true;", vec![]).await.expect("back");
    let last = wait_js(&c, "document.querySelector('#fn-table tr[data-name=fib-ui] .badge.success')?.textContent", "fib-ui's last status").await;
    assert_eq!(last, json!("success"), "the function ran: its last status, not 'never run'");
    let fetched = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(u => /\\/api\\/v1\\/executions($|\\?)/.test(new URL(u).pathname + new URL(u).search.slice(0, 1)));",
            vec![],
        )
        .await
        .expect("resources");
    assert_eq!(fetched, json!([]), "the functions page fetched executions: {fetched}");

    // Nothing was loaded from anywhere but this server.
    let foreign = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(location.origin));",
            vec![],
        )
        .await
        .expect("resources");
    assert_eq!(foreign, json!([]), "external requests: {foreign}");
    c.close().await.expect("close browser");
}

/// With keys on, the UI shell loads without a key, asks for one, keeps it in localStorage, sends
/// it on its calls and on the live stream (as ?access_token=), and says when a key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_asks_for_a_key_when_keys_are_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = common::create_key(&dir.path().join("data"), "ui", "admin");
    let s = TestServer::start_in(dir, &["--prewarm", "0"]).await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();
    c.goto(&format!("{base}/#/functions")).await.expect("open");
    wait_js(&c, "document.querySelector('#key-input')", "the key form").await;
    shot(&c, "key-form").await;

    set_value(&c, "#key-input", "fnbox_wrong").await;
    c.find(Locator::Css("#key-form button")).await.expect("submit").click().await.expect("click");
    wait_js(&c, "document.querySelector('#key-form .field-error')?.textContent.includes('not accepted')", "the refusal").await;

    set_value(&c, "#key-input", &token).await;
    c.find(Locator::Css("#key-form button")).await.expect("submit").click().await.expect("click");
    wait_js(&c, "document.querySelector('#fn-table') && !document.querySelector('#key-input')", "the functions page").await;
    let stored = c.execute("return localStorage.getItem('fnbox.apiKey');", vec![]).await.expect("js");
    assert_eq!(stored, json!(token));

    c.goto(&format!("{base}/#/executions")).await.expect("open executions");
    wait_js(&c, "document.querySelector('#live')?.textContent === 'live'", "the live stream with the key").await;

    c.find(Locator::Css("#key-link")).await.expect("forget").click().await.expect("click");
    wait_js(&c, "document.querySelector('#key-input') && localStorage.getItem('fnbox.apiKey') === null", "the form again").await;
    c.close().await.expect("close browser");
}

/// Goes to a page of the app by its hash (no reload, so a fetch stub in the page stays).
async fn open_hash(c: &Client, hash: &str) {
    c.execute("location.hash = arguments[0]; return true;", vec![json!(hash)]).await.expect("set hash");
}

/// No sideways scrolling: the page is no wider than the window.
async fn assert_no_overflow(c: &Client, what: &str) {
    let w = c
        .execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![])
        .await
        .expect("widths");
    assert!(w[0].as_f64() <= w[1].as_f64(), "{what}: page wider than the window (scrollWidth, innerWidth) = {w}");
}

/// The Cluster page on a single node (one `local` row, the "Single node" hint, refreshed every
/// 2 s only while shown, no horizontal overflow on a phone, the executions list without a Node
/// column); then, with `/api/v1/cluster` and `/api/v1/executions` answered by a stub inside the
/// page, how a three-node cluster with one node gone shows on the Cluster page, the dashboard and
/// the executions list and detail. Screenshots: target/ui-screenshots/cluster-*.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_cluster_page() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();

    c.goto(&format!("{base}/#/cluster")).await.expect("open cluster");
    wait_js(&c, "document.querySelector('#cl-rows tr[data-node]')", "the node table").await;
    let seen = c
        .execute(
            "return [document.querySelector('main h1').textContent, document.querySelector('#cl-mode').textContent,
                     [...document.querySelectorAll('#cl-rows tr')].map(r => r.dataset.node), document.querySelector('nav a.active').textContent,
                     document.querySelector('#cl-table caption').textContent, document.querySelectorAll('#cl-table th[scope=col]').length,
                     document.querySelector('#cl-rows tr').textContent];",
            vec![],
        )
        .await
        .expect("cluster page");
    assert_eq!(seen[0], json!("Cluster"), "{seen}");
    assert!(seen[1].as_str().unwrap_or("").starts_with("Single node (no cluster): start nodes with --cluster"), "{seen}");
    assert_eq!(seen[2], json!(["local"]), "one row, the local node: {seen}");
    assert_eq!(seen[3], json!("Cluster"), "nav entry active: {seen}");
    assert!(seen[4].as_str().unwrap_or("").starts_with("Nodes"), "{seen}");
    assert_eq!(seen[5], json!(9), "{seen}");
    assert!(seen[6].as_str().unwrap_or("").contains("live"), "the state is written, not only coloured: {seen}");
    shot(&c, "cluster-single").await;

    // Refreshed every 2 s while shown; the timer stops on leaving the page.
    let calls = "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/cluster')).length";
    wait_js(&c, &format!("{calls} >= 3"), "two refreshes").await;
    open_hash(&c, "#/executions").await;
    wait_js(&c, "document.querySelector('#exec-rows tr')", "executions").await;
    let node_col = c.execute("return getComputedStyle(document.querySelector('#exec-table th.node-col')).display;", vec![]).await.expect("col");
    assert_eq!(node_col, json!("none"), "no Node column on a single node");
    let before = c.execute(&format!("return {calls};"), vec![]).await.expect("calls");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let after = c.execute(&format!("return {calls};"), vec![]).await.expect("calls");
    assert_eq!(before, after, "no refreshes after leaving the Cluster page");

    // A phone: no sideways scrolling.
    c.set_window_size(390, 844).await.expect("resize");
    c.goto(&format!("{base}/#/cluster")).await.expect("open cluster");
    wait_js(&c, "document.querySelector('#cl-rows tr[data-node=local]')", "the node table").await;
    assert_no_overflow(&c, "single node, 390 px").await;
    shot(&c, "cluster-single-phone").await;

    // A three-node cluster (node3 gone), as the API would describe it, stubbed in the page.
    let node = |id: &str, live: bool, hb: u64, sb: u32| {
        json!({"id": id, "api_url": format!("http://10.0.0.1{}:8080", &id[4..]), "runtimes": ["docker", "gvisor"], "live": live,
               "last_heartbeat_ms": hb, "sandboxes": sb, "max_sandboxes": 64, "idle_sandboxes": 2, "warm_versions": 1, "running": 1,
               "memory_committed_mb": 384, "memory_budget_mb": 18000, "started_at": "2025-01-01T00:00:00Z", "software": "0.1.0"})
    };
    let cluster = json!({"mode": "cluster", "node": "node2", "nodes": [node("node1", true, 412, 3), node("node2", true, 0, 5), node("node3", false, 9300, 0)]});
    let exec = json!({"id": "ex-1", "function": "fib", "version": 1, "runtime": "docker", "status": "success", "trigger": "api",
                      "cold_start": false, "started_at": "2025-01-01T00:00:00Z", "duration_ms": 12.3, "exec_ms": 1.2,
                      "memory_bytes": 10485760, "node": "node2", "input": "{}", "output": 55, "logs": ""});
    c.execute(
        "const stubs = arguments[0], real = window.fetch.bind(window);
         window.fetch = (url, init) => {
           const hit = stubs.find(([prefix]) => String(url).startsWith(prefix));
           return hit ? Promise.resolve(new Response(JSON.stringify(hit[1]), { headers: { 'content-type': 'application/json' } })) : real(url, init);
         };
         return true;",
        vec![json!([["/api/v1/cluster", cluster], ["/api/v1/executions/ex-1", exec], ["/api/v1/executions?", [exec]]])],
    )
    .await
    .expect("stub");
    open_hash(&c, "#/functions").await;
    wait_js(&c, "document.querySelector('#fn-table table, #fn-table .empty a')", "functions page").await;
    open_hash(&c, "#/cluster").await;
    wait_js(&c, "document.querySelectorAll('#cl-rows tr[data-node]').length === 3", "three nodes").await;
    let seen = c
        .execute(
            "return [document.querySelector('#cl-mode').textContent, document.querySelector('#cl-rows tr[data-node=node3]').textContent,
                     document.querySelector('#cl-rows tr[data-node=node2]').textContent, document.querySelector('#cl-rows tr[data-node=node1] a').getAttribute('href')];",
            vec![],
        )
        .await
        .expect("cluster");
    assert!(seen[0].as_str().unwrap_or("").contains("2 of 3 nodes live") && seen[0].as_str().unwrap_or("").contains("node2"), "{seen}");
    assert!(seen[1].as_str().unwrap_or("").contains("gone") && seen[1].as_str().unwrap_or("").contains("9.3 s ago"), "{seen}");
    assert!(seen[2].as_str().unwrap_or("").contains("(this node)") && seen[2].as_str().unwrap_or("").contains("5 / 64"), "{seen}");
    assert_eq!(seen[3], json!("http://10.0.0.11:8080"), "{seen}");
    assert_no_overflow(&c, "three nodes, 390 px").await;
    shot(&c, "cluster-three-phone").await;
    c.set_window_size(1280, 1000).await.expect("resize");
    tokio::time::sleep(Duration::from_millis(300)).await;
    shot(&c, "cluster-three").await;

    // The dashboard links to it.
    open_hash(&c, "#/dashboard").await;
    let line = wait_js(&c, "document.querySelector('#d-cluster:not([hidden]) a')?.textContent", "the cluster line").await;
    assert_eq!(line, json!("Cluster: 2 of 3 nodes live"));
    let href = c.execute("return document.querySelector('#d-cluster a').getAttribute('href');", vec![]).await.expect("href");
    assert_eq!(href, json!("#/cluster"));

    // Executions with a node: the Node column appears, and the detail names the node.
    open_hash(&c, "#/executions").await;
    wait_js(&c, "document.querySelector('#exec-rows tr[data-id=ex-1]')", "the stubbed execution").await;
    let col = c
        .execute("return [getComputedStyle(document.querySelector('#exec-table th.node-col')).display, document.querySelector('#exec-rows tr td.node-col').textContent];", vec![])
        .await
        .expect("col");
    assert_eq!(col, json!(["table-cell", "node2"]));
    c.find(Locator::Css("#exec-rows tr[data-id=ex-1]")).await.expect("row").click().await.expect("click");
    let n = wait_js(&c, "document.querySelector('#result-node')?.textContent", "the node in the detail").await;
    assert_eq!(n, json!("node2"));
    shot(&c, "cluster-executions").await;
    c.close().await.expect("close browser");
}

/// Polls a JavaScript expression until it is truthy, for up to `secs` seconds.
async fn wait_js_for(c: &Client, expr: &str, what: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = c.execute(&format!("return ({expr});"), vec![]).await.unwrap_or(Value::Null);
        if !matches!(v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what} ({expr})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pick_template(c: &Client, title: &str) {
    let value = wait_js(
        c,
        &format!("[...document.querySelectorAll('#template option')].find(o => o.textContent === {})?.value", json!(title)),
        title,
    )
    .await;
    set_value(c, "#template", value.as_str().unwrap_or("")).await;
}

/// Dependencies in the editor and the build on the function's page: the box is filled from a
/// template that has dependencies and follows the language, a function created from the YAML
/// template shows its build reaching ready (packages, duration, size, logs) and runs; then, with
/// the build and invoke routes stubbed in the page, a build in progress with an older version
/// serving (the note, live logs, polling that stops on leaving the page) and the 409 answers.
/// Screenshots: target/ui-screenshots/deps-*.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_dependencies() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();

    c.goto(&format!("{base}/#/create")).await.expect("open create");
    wait_js(&c, "document.querySelectorAll('#template option').length > 1", "templates").await;
    let box_state = "[document.querySelector('#deps-file').textContent, document.querySelector('#dependencies').value]";
    let blank = c.execute(&format!("return {box_state};"), vec![]).await.expect("box");
    assert_eq!(blank, json!(["requirements.txt", ""]), "an empty box labelled for Python: {blank}");
    pick_template(&c, "Event Timeline with dayjs (javascript)").await;
    let js = wait_js(&c, &format!("document.querySelector('#dependencies').value.includes('dayjs') && {box_state}"), "package.json").await;
    assert_eq!(js[0], json!("package.json"), "{js}");
    assert!(js[1].as_str().unwrap_or("").contains("\"lodash\""), "{js}");
    pick_template(&c, "YAML with PyYAML (python)").await;
    let py = wait_js(&c, &format!("document.querySelector('#dependencies').value.includes('pyyaml') && {box_state}"), "requirements.txt").await;
    assert_eq!(py[0], json!("requirements.txt"), "{py}");
    assert!(py[1].as_str().unwrap_or("").contains("pyyaml==6.0.2"), "{py}");
    let mono = c.execute("return getComputedStyle(document.querySelector('#dependencies')).fontFamily;", vec![]).await.expect("font");
    assert!(mono.as_str().unwrap_or("").contains("monospace"), "monospace: {mono}");
    set_value(&c, "#name", "yaml-ui").await;
    c.execute("document.querySelector('#deps-field').scrollIntoView({block: 'center'}); return true;", vec![]).await.expect("scroll");
    shot(&c, "deps-01-editor").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click create");

    // Saved with the function; its page shows the build until it is ready.
    wait_js(&c, "location.hash === '#/execute/yaml-ui' && document.querySelector('#build-panel[data-status]')", "the build panel").await;
    let (_, f) = s.get("/api/v1/functions/yaml-ui").await;
    assert!(f["dependencies"].as_str().unwrap_or("").contains("pyyaml==6.0.2"), "{f}");
    shot(&c, "deps-02-first-look").await;
    wait_js_for(&c, "document.querySelector('#build-panel[data-status=ready]')", "the build to be ready", 180).await;
    let seen = c
        .execute(
            "return [document.querySelector('#build-panel h2').textContent, document.querySelector('#build-packages').textContent,
                     document.querySelector('#build-duration').textContent, document.querySelector('#build-size').textContent,
                     document.querySelector('#build-logs').textContent, document.querySelector('#fn-build-badge').textContent];",
            vec![],
        )
        .await
        .expect("build panel");
    assert!(seen[0].as_str().unwrap_or("").contains("ready"), "{seen}");
    assert!(seen[1].as_str().unwrap_or("").contains("pyyaml 6.0.2") && seen[1].as_str().unwrap_or("").contains("humanize"), "{seen}");
    assert!(seen[2].as_str().unwrap_or("").ends_with('s'), "a duration: {seen}");
    assert!(seen[3].as_str().unwrap_or("").ends_with("MB") || seen[3].as_str().unwrap_or("").ends_with("KB"), "a size: {seen}");
    assert!(seen[4].as_str().unwrap_or("").contains("pyyaml"), "the logs: {seen}");
    assert_eq!(seen[5], json!("ready"), "the badge by the function: {seen}");
    c.execute("document.querySelector('#build-panel').scrollIntoView(); return true;", vec![]).await.expect("scroll");
    shot(&c, "deps-03-ready").await;
    // It runs with its packages, from the generated form (the YAML text keeps its lines).
    c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click run");
    let out = wait_js_for(&c, "document.querySelector('#output')?.textContent", "output", 120).await;
    assert!(out.as_str().unwrap_or("").contains("1.2 million") && out.as_str().unwrap_or("").contains("268.4 MB"), "{out}");
    // The functions list shows the build next to the version; the editor shows what was saved.
    open_hash(&c, "#/functions").await;
    let cell = wait_js(&c, "document.querySelector('#fn-table tr[data-name=yaml-ui] .badge.build-ready')?.textContent", "the list's badge").await;
    assert_eq!(cell, json!("ready"));
    open_hash(&c, "#/edit/yaml-ui").await;
    wait_js(&c, "document.querySelector('#dependencies')?.value.includes('pyyaml==6.0.2')", "the saved dependencies").await;

    // A new version building while version 1 serves, as the API would describe it (stubbed in
    // the page, answering after 200 ms as a waiting GET would): the note, the logs, polling
    // while shown; then the only version building, where a call answers 409 build_pending;
    // and no more requests once the page is left.
    let building = json!({"function": "yaml-ui", "version": 2, "status": "building", "serving_version": 1,
        "build": {"status": "building", "deps_hash": "ab", "version": 2, "packages": [], "logs": "[fnbox] resolving for Python 3.11\nCollecting pyyaml==6.0.2\n",
                  "started_at": "now"}});
    let pending = json!({"error": {"code": "build_pending", "message": "`yaml-ui` is still building its dependencies; retry when its build is ready"}});
    let mut listed = f.clone();
    listed["version"] = json!(2);
    listed["build"] = json!({"status": "building", "version": 2});
    listed["serving_version"] = json!(1);
    c.execute(
        "window.stubs = arguments[0];
         const real = window.fetch.bind(window);
         window.buildCalls = 0;
         window.fetch = (url, init) => {
           const hit = window.stubs.find(([prefix]) => String(url).startsWith(prefix));
           if (!hit) return real(url, init);
           const body = JSON.parse(JSON.stringify(hit[2]));
           if (body.build?.started_at === 'now') body.build.started_at = new Date(Date.now() - 4000).toISOString();
           if (String(url).includes('/build')) window.buildCalls++;
           const answer = () => new Response(JSON.stringify(body), { status: hit[1], headers: { 'content-type': 'application/json' } });
           return new Promise((res) => setTimeout(() => res(answer()), String(url).includes('/build') ? 200 : 0));
         };
         return true;",
        vec![json!([
            ["/api/v1/functions/yaml-ui/build", 200, building],
            ["/api/v1/functions/yaml-ui/invoke", 409, pending],
            ["/api/v1/functions?", 200, [listed]],
        ])],
    )
    .await
    .expect("stub");
    open_hash(&c, "#/execute/yaml-ui").await;
    wait_js(&c, "document.querySelector('#build-panel[data-status=building]')", "the building panel").await;
    let seen = c
        .execute(
            "return [document.querySelector('#build-serving').textContent, document.querySelector('#build-logs').textContent,
                     document.querySelector('#build-duration').textContent];",
            vec![],
        )
        .await
        .expect("building");
    assert_eq!(seen[0], json!("Version 1 serves calls while version 2 builds."), "{seen}");
    assert!(seen[1].as_str().unwrap_or("").contains("Collecting pyyaml==6.0.2"), "{seen}");
    assert!(seen[2].as_str().unwrap_or("").ends_with("s so far"), "{seen}");
    wait_js(&c, "window.buildCalls >= 3", "polling while it builds").await;
    c.execute("document.querySelector('#build-panel').scrollIntoView(); return true;", vec![]).await.expect("scroll");
    shot(&c, "deps-04-building-v1-serves").await;

    // The only version building: Run answers 409 build_pending, shown as such.
    c.execute(
        "const b = window.stubs[0][2]; delete b.serving_version; b.version = 1; b.build.version = 1;
         const l = window.stubs[2][2][0]; delete l.serving_version; l.version = 1; l.build.version = 1; return true;",
        vec![],
    )
    .await
    .expect("restub");
    open_hash(&c, "#/functions").await;
    wait_js(&c, "document.querySelector('#fn-table tr[data-name=yaml-ui] .badge.build-building')", "the list shows it building").await;
    open_hash(&c, "#/execute/yaml-ui").await;
    wait_js(&c, "document.querySelector('#build-panel[data-status=building]') && !document.querySelector('#build-serving')", "building, nothing serving").await;
    c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click run");
    let refusal = wait_js(&c, "document.querySelector('#build-refusal')?.textContent", "the 409 shown").await;
    assert!(refusal.as_str().unwrap_or("").contains("still building"), "{refusal}");
    shot(&c, "deps-05-build-pending").await;
    open_hash(&c, "#/functions").await;
    wait_js(&c, "document.querySelector('#fn-table table')", "functions page").await;
    let before = c.execute("return window.buildCalls;", vec![]).await.expect("calls");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = c.execute("return window.buildCalls;", vec![]).await.expect("calls");
    assert_eq!(before, after, "no build polling after leaving the page");
    c.close().await.expect("close browser");
}

/// The editor's HTTP trigger setting: picked with the webhook example, its function URL shown
/// as it changes, saved with the function, shown on the function's page, callable at once, and
/// read back in the editor. Screenshots: target/ui-screenshots/http-*.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_http_trigger() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();

    c.goto(&format!("{base}/#/create")).await.expect("open create");
    wait_js(&c, "document.querySelectorAll('#template option').length > 1", "templates").await;
    let off = wait_js(&c, "document.querySelector('#http').value === 'off' && document.querySelector('#http-hint').textContent", "the off hint").await;
    assert!(off.as_str().unwrap_or("").contains("404"), "{off}");
    pick_template(&c, "Webhook (function URL) (python)").await;
    set_value(&c, "#name", "hook-ui").await;
    set_value(&c, "#http", "public").await;
    let url = wait_js(&c, "document.querySelector('#http-url')?.textContent", "the URL").await;
    assert_eq!(url, json!(format!("{base}/fn/hook-ui")));
    c.execute("document.querySelector('#http-field').scrollIntoView({block: 'center'}); return true;", vec![]).await.expect("scroll");
    shot(&c, "http-01-editor").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click create");

    wait_js(&c, "location.hash === '#/execute/hook-ui' && document.querySelector('#fn-url')", "the function URL on its page").await;
    let shown = c.execute("return document.querySelector('#fn-url').textContent;", vec![]).await.expect("url");
    assert!(shown.as_str().unwrap_or("").contains(&format!("{base}/fn/hook-ui")) && shown.as_str().unwrap_or("").contains("public"), "{shown}");
    shot(&c, "http-02-execute").await;
    let (_, f) = s.get("/api/v1/functions/hook-ui").await;
    assert_eq!((f["http"].as_str(), f["url"].as_str()), (Some("public"), Some("/fn/hook-ui")), "{f}");
    let resp = reqwest::Client::new().post(format!("{base}/fn/hook-ui/x?name=UI")).body("hi").send().await.expect("call");
    assert_eq!(resp.status().as_u16(), 201);
    let reply: Value = resp.json().await.expect("json");
    assert_eq!(reply["greeting"], "Hello, UI!");

    // The editor reads the setting back; switching it off saves `off`.
    open_hash(&c, "#/edit/hook-ui").await;
    wait_js(&c, "document.querySelector('#http')?.value === 'public'", "the saved setting").await;
    set_value(&c, "#http", "key").await;
    let hint = wait_js(&c, "document.querySelector('#http-hint').textContent.includes('Bearer') && document.querySelector('#http-hint').textContent", "the key hint").await;
    assert!(hint.as_str().unwrap_or("").contains("/fn/hook-ui"), "{hint}");
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click save");
    wait_js(&c, "location.hash === '#/execute/hook-ui' && document.querySelector('#fn-url')?.textContent.includes('API key')", "the key URL").await;
    let (_, f) = s.get("/api/v1/functions/hook-ui").await;
    assert_eq!(f["http"], "key");
    c.close().await.expect("close");
}

/// Asynchronous calls, dead letters and schedules in the browser: "Invoke async" follows a
/// failing call's attempts to the dead letters; the Dead letters page retries and discards; a
/// schedule made from the function's page fires and is deleted there; the dashboard counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_async_dead_letters_and_schedules() {
    let s = TestServer::start(&["--prewarm", "0", "--retry-base-ms", "100"]).await;
    s.require_runtimes().await;
    s.create("flaky-ui", "python", "docker", "def handler(event, context):\n    raise ValueError('no <b>luck</b>')\n", json!({"max_retries": 1})).await;
    s.create("tick-ui", "python", "docker", "def handler(event, context):\n    return event\n", json!({})).await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();
    // Confirmation dialogs answer yes (headless Chromium would wait on them).
    let yes = "window.confirm = () => true; return true;";

    c.goto(&format!("{base}/#/execute/flaky-ui")).await.expect("open execute");
    wait_js(&c, "document.querySelector('#run-async')", "the Invoke async button").await;
    c.find(Locator::Css("#run-async")).await.expect("button").click().await.expect("click");
    wait_js(&c, "document.body.textContent.includes('Accepted (202)')", "the 202").await;
    wait_js(&c, "document.body.textContent.includes('given up after attempt 2')", "the attempts followed to the dead letters").await;
    let escaped = c.execute("return document.body.innerHTML.includes('no &lt;b&gt;luck&lt;/b&gt;');", vec![]).await.expect("html");
    assert_eq!(escaped, json!(true), "the error text is escaped");
    shot(&c, "async-01-invoke").await;

    let (_, listed) = s.get("/api/v1/dead-letters").await;
    let id = listed["dead_letters"][0]["id"].as_str().expect("a dead letter").to_owned();
    open_hash(&c, "#/dead-letters").await;
    wait_js(&c, "document.querySelector('#dl-rows')?.textContent.includes('flaky-ui')", "the dead letter listed").await;
    shot(&c, "async-02-dead-letters").await;
    c.find(Locator::Css("[data-retry]")).await.expect("retry").click().await.expect("click retry");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, l) = s.get(&format!("/api/v1/dead-letters/{id}")).await;
        if status == 200 && l["attempts"] == json!(4) {
            break;
        }
        assert!(Instant::now() < deadline, "the retry from the page did not run a new round: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Moving on while a page still loads: the page left behind must not write over the next
    // one (it once replaced the dead letters with "Something went wrong" when its table was gone).
    for _ in 0..5 {
        c.execute("location.hash = '#/functions'; setTimeout(() => { location.hash = '#/dead-letters'; }, 0); return true;", vec![]).await.expect("hop");
        wait_js(&c, "location.hash === '#/dead-letters' && document.querySelector('#dl-rows')?.textContent.includes('flaky-ui') && document.querySelector('[data-discard]')", "the discard button").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let clobbered = c.execute("return document.querySelector('#main').textContent.includes('Something went wrong') || !document.querySelector('#dl-rows');", vec![]).await.expect("page");
        assert_eq!(clobbered, json!(false), "the functions page, left while loading, wrote over the dead letters");
    }
    c.execute(yes, vec![]).await.expect("confirm");
    c.find(Locator::Css("[data-discard]")).await.expect("discard").click().await.expect("click discard");
    wait_js(&c, "document.querySelector('#dl-rows')?.textContent.includes('flaky-ui') === false", "the dead letter gone from the page").await;
    let (status, _) = s.get(&format!("/api/v1/dead-letters/{id}")).await;
    assert_eq!(status, 404);

    // A schedule from the function's page.
    open_hash(&c, "#/execute/tick-ui").await;
    wait_js(&c, "document.querySelector('#sched-form')", "the schedule form").await;
    set_value(&c, "#sched-cron", "* * * * * *").await;
    set_value(&c, "#sched-input", r#"{"from":"ui"}"#).await;
    c.find(Locator::Css("#sched-add")).await.expect("add").click().await.expect("click add");
    wait_js(&c, "document.querySelector('#sched-rows [data-schedule]')", "the schedule listed").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, fired) = s.get("/api/v1/executions?function=tick-ui&trigger=schedule").await;
        if fired.as_array().is_some_and(|v| v.iter().any(|e| e["status"] == json!("success") && e["output"] == json!({"from": "ui"}))) {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule made in the page did not fire: {fired}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(&c, "async-03-schedule").await;
    c.execute(yes, vec![]).await.expect("confirm");
    c.find(Locator::Css("[data-sched-delete]")).await.expect("delete").click().await.expect("click delete");
    wait_js(&c, "!document.querySelector('#sched-rows [data-schedule]')", "the schedule gone from the page").await;
    let (_, left) = s.get("/api/v1/functions/tick-ui/schedules").await;
    assert_eq!(left, json!([]));

    open_hash(&c, "#/dashboard").await;
    wait_js(&c, "document.querySelector('#stat-dead-letters')?.textContent === '0'", "the dead-letter count on the dashboard").await;
    shot(&c, "async-04-dashboard").await;
    c.close().await.expect("close");
}

/// Issue 16's defects, each as a user meets it: the dashboard's headline p50 is the server's
/// exact aggregate (one slow function no longer pulls it up), errors show their message, raw
/// JSON edits reach the form and the run, a missing function says so, Ctrl+Enter runs, the
/// editor does not trap Tab and keeps lines whole, an example follows the language, unsaved
/// edits ask before leaving, Compare with nothing to compare, a comparison that all failed, one
/// followed with progress across pages, and a server that does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_round_two_defects() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();
    let yes = "window.confirm = () => true; return true;";

    // Compare with no functions: no empty select with a live Run button.
    c.goto(&format!("{base}/#/compare")).await.expect("open compare");
    wait_js(&c, "document.querySelector('#c-none')", "the no-functions note").await;
    let disabled = c.execute("return document.querySelector('#c-run').disabled && document.querySelector('#c-function').disabled;", vec![]).await.expect("js");
    assert_eq!(disabled, json!(true), "nothing to compare: Run is off");

    // Dashboard: nine fast runs and one slow one. The median of the ten is a fast run; the
    // average of the two functions' medians (what the page showed) is over 100 ms.
    s.create("fast-d", "python", "docker", "def handler(event, context):\n    return 1\n", json!({})).await;
    s.create("slow-d", "python", "docker", "import time\ndef handler(event, context):\n    time.sleep(0.4)\n    return 2\n", json!({})).await;
    s.create("boom-d", "python", "docker", "def handler(event, context):\n    raise ValueError('boom <i>here</i>')\n", json!({})).await;
    for _ in 0..9 {
        s.invoke("fast-d", &json!({})).await;
    }
    s.invoke("slow-d", &json!({})).await;
    s.invoke("boom-d", &json!({})).await;
    let (_, agg) = s.get("/api/v1/metrics/summary?group_by=runtime&runtime=docker").await;
    assert_eq!(agg[0]["invocations"], json!(11), "{agg}");
    assert!(agg[0].get("function").is_none(), "a runtime row names no function: {agg}");
    let p50 = agg[0]["duration_ms"]["p50"].as_f64().expect("p50");
    assert!(p50 < 100.0, "the median of the runs is a fast one: {p50}");
    open_hash(&c, "#/dashboard").await;
    let shown = wait_js(&c, "document.querySelector('#stat-p50-docker')?.dataset.ms", "the docker p50").await;
    let shown: f64 = shown.as_str().and_then(|v| v.parse().ok()).expect("a number");
    assert!((shown - p50).abs() < 1e-9, "the page's p50 ({shown}) is the server's aggregate ({p50})");
    let errors = wait_js(&c, "document.querySelector('#d-errors .error-groups')?.textContent", "the errors panel").await;
    let errors = errors.as_str().unwrap_or("");
    assert!(errors.contains("ValueError") && errors.contains("boom <i>here</i>") && errors.contains("boom-d"), "type, message and function: {errors}");
    let calls = wait_js(&c, "document.querySelector('#chart-calls .uplot') && Number(document.querySelector('#chart-calls').dataset.points)", "the invocations chart").await;
    assert!(calls.as_f64().unwrap_or(0.0) >= 1.0, "{calls}");
    let (_, ts) = s.get("/api/v1/metrics/timeseries?runtime=docker").await;
    assert!(ts.as_array().is_some_and(|b| b.iter().all(|b| b["peak_concurrency"].as_u64().is_some_and(|n| n >= 1))), "{ts}");
    shot(&c, "r2-01-dashboard").await;

    // A link to a function that does not exist says so instead of opening another one.
    open_hash(&c, "#/execute/does-not-exist").await;
    let missing = wait_js(&c, "document.querySelector('#fn-missing')?.textContent", "the missing-function note").await;
    assert!(missing.as_str().unwrap_or("").contains("does-not-exist"), "{missing}");
    assert_eq!(c.execute("return document.querySelector('#run') === null;", vec![]).await.expect("js"), json!(true));

    // Raw JSON edits survive going back to the form, and are what runs.
    s.create("echo-d", "python", "docker", "def handler(event, context):\n    return event\n", json!({"sample_input": {"n": 1}})).await;
    open_hash(&c, "#/execute/echo-d").await;
    wait_js(&c, "document.querySelector('#in-n')", "the form").await;
    c.find(Locator::Css("#tab-raw")).await.expect("raw tab").click().await.expect("click raw");
    set_value(&c, "#raw", r#"{"n": 7, "extra": "yes"}"#).await;
    c.find(Locator::Css("#tab-form")).await.expect("form tab").click().await.expect("click form");
    let form = c.execute("return [document.querySelector('#in-n')?.value, document.querySelector('#in-extra')?.value];", vec![]).await.expect("js");
    assert_eq!(form, json!(["7", "yes"]), "the form shows the JSON typed");
    // Arrow keys move between the tabs; Ctrl+Enter in the JSON box runs.
    c.find(Locator::Css("#tab-form")).await.expect("form tab").send_keys("\u{E014}").await.expect("arrow right");
    wait_js(&c, "document.activeElement?.id === 'tab-raw' && !document.querySelector('#raw-wrap').hidden", "the raw tab by arrow key").await;
    c.find(Locator::Css("#raw")).await.expect("raw").send_keys("\u{E009}\u{E007}\u{E000}").await.expect("ctrl+enter");
    let out = wait_js(&c, "document.querySelector('#output')?.textContent", "the output").await;
    assert_eq!(serde_json::from_str::<Value>(out.as_str().unwrap_or("")).ok(), Some(json!({"n": 7, "extra": "yes"})), "what ran is what was typed");
    shot(&c, "r2-02-raw-to-form").await;

    // The editor: lines stay whole (the gutter's numbers stay on their lines), Esc then Tab
    // leaves it, an example follows the language, and unsaved edits ask before leaving.
    open_hash(&c, "#/create").await;
    wait_js(&c, "document.querySelectorAll('#template option').length > 1", "templates").await;
    let ws = c.execute("return getComputedStyle(document.querySelector('#code')).whiteSpace;", vec![]).await.expect("js");
    assert_eq!(ws, json!("pre"), "no wrapping of long lines");
    let code = c.find(Locator::Css("#code")).await.expect("editor");
    code.click().await.expect("focus editor");
    code.send_keys("\u{E004}").await.expect("tab");
    assert_eq!(c.execute("return document.activeElement.id;", vec![]).await.expect("js"), json!("code"), "Tab alone indents");
    code.send_keys("\u{E00C}\u{E004}").await.expect("esc, tab");
    let focused = c.execute("return document.activeElement.id;", vec![]).await.expect("js");
    assert_ne!(focused, json!("code"), "Esc then Tab leaves the editor");
    let idx = c.execute("return [...document.querySelectorAll('#template option')].findIndex(o => o.textContent === 'Fibonacci (python)');", vec![]).await.expect("js");
    let value = c.execute("return document.querySelectorAll('#template option')[arguments[0]].value;", vec![idx]).await.expect("value");
    set_value(&c, "#template", value.as_str().unwrap_or("")).await;
    wait_js(&c, "document.querySelector('#code').textContent.includes('def handler')", "the Python example").await;
    set_value(&c, "#language", "javascript").await;
    wait_js(&c, "document.querySelector('#code').textContent.includes('exports.handler')", "the JavaScript twin of the example").await;
    let picked = c.execute("return [document.querySelector('#template').selectedOptions[0].textContent, document.querySelector('#name').value];", vec![]).await.expect("js");
    assert_eq!(picked, json!(["Fibonacci (javascript)", "fibonacci-js"]));
    set_value(&c, "#description", "typed, not saved").await;
    c.execute("window.__asked = 0; window.confirm = () => { window.__asked++; return false; }; return true;", vec![]).await.expect("stub");
    open_hash(&c, "#/functions").await;
    wait_js(&c, "window.__asked === 1 && location.hash === '#/create'", "the question, and staying").await;
    let kept = c.execute("return document.querySelector('#description')?.value;", vec![]).await.expect("js");
    assert_eq!(kept, json!("typed, not saved"), "staying keeps the edit");
    c.execute(yes, vec![]).await.expect("confirm");
    open_hash(&c, "#/functions").await;
    wait_js(&c, "document.querySelector('#fn-table table')", "the functions page after leaving").await;

    // Compare: every call failed is said, not shown as a result.
    open_hash(&c, "#/compare").await;
    wait_js(&c, "document.querySelector('#c-function option')", "the compare form").await;
    set_value(&c, "#c-function", "boom-d").await;
    set_value(&c, "#c-iterations", "2").await;
    c.find(Locator::Css("#c-run")).await.expect("run").click().await.expect("click");
    let failed = wait_js(&c, "document.querySelector('#c-failed')?.textContent", "the all-failed notice").await;
    assert!(failed.as_str().unwrap_or("").contains("Every call failed on both runtimes"), "{failed}");
    shot(&c, "r2-03-compare-failed").await;
    // A longer one: progress while it runs, and still followed after leaving and coming back.
    set_value(&c, "#c-function", "slow-d").await;
    set_value(&c, "#c-iterations", "4").await;
    c.find(Locator::Css("#c-run")).await.expect("run").click().await.expect("click");
    wait_js(&c, "document.querySelector('#c-progress #c-elapsed') && document.querySelector('#c-cancel')", "the progress").await;
    shot(&c, "r2-04-compare-progress").await;
    open_hash(&c, "#/functions").await;
    wait_js(&c, "document.querySelector('#fn-table table')", "another page").await;
    open_hash(&c, "#/compare").await;
    wait_js(&c, "document.querySelector('#c-progress, #comparison')", "the comparison still followed").await;
    let done = wait_js(&c, "document.querySelector('#comparison h2')?.textContent", "its result").await;
    assert!(done.as_str().unwrap_or("").contains("slow-d"), "{done}");
    assert_eq!(c.execute("return document.querySelector('#c-failed') === null;", vec![]).await.expect("js"), json!(true));

    // An output too large to keep in the record says so (not `null`); output and logs copy.
    s.create("big-d", "python", "docker", "def handler(event, context):\n    print('made it')\n    return 'x' * 70000\n", json!({})).await;
    let big = s.invoke("big-d", &json!({})).await;
    let big_id = big["execution_id"].as_str().or(big["id"].as_str()).expect("an id").to_owned();
    let (_, rec) = s.get(&format!("/api/v1/executions/{big_id}")).await;
    assert_eq!((rec["output"].clone(), rec["output_truncated"].clone()), (Value::Null, json!(true)), "{rec}");
    open_hash(&c, "#/executions").await;
    wait_js(&c, &format!("document.querySelector('#exec-rows tr[data-id=\"{big_id}\"]')"), "the big run listed").await;
    c.find(Locator::Css(&format!("#exec-rows tr[data-id=\"{big_id}\"]"))).await.expect("row").click().await.expect("open");
    let note = wait_js(&c, "document.querySelector('#exec-detail #output-truncated')?.textContent", "the truncation note").await;
    assert!(note.as_str().unwrap_or("").contains("64 KiB"), "{note}");
    let shown = c.execute("return document.querySelector('#exec-detail').textContent.includes('null');", vec![]).await.expect("js");
    assert_eq!(shown, json!(false), "no bare null");
    c.find(Locator::Css("#exec-detail [data-copy=logs]")).await.expect("copy logs").click().await.expect("click copy");
    wait_js(&c, "[...document.querySelectorAll('#toast div')].some((d) => /Copied|Selected/.test(d.textContent))", "the copy toast").await;
    shot(&c, "r2-05-truncated-output").await;
    open_hash(&c, "#/functions").await;

    // Executions: dates with the times, a search over logs, errors and output, a date range,
    // pages beyond the first 100, and a detail panel that closes when the filters change.
    for _ in 0..100 {
        s.invoke("fast-d", &json!({})).await;
    }
    open_hash(&c, "#/executions").await;
    wait_js(&c, "document.querySelectorAll('#exec-rows tr[data-id]').length === 100 && !document.querySelector('#exec-more').hidden", "a first page of 100 and Show older").await;
    let when = c.execute("return document.querySelector('#exec-rows time').textContent;", vec![]).await.expect("js");
    assert!(when.as_str().unwrap_or("").starts_with("today "), "a date with the time: {when}");
    c.find(Locator::Css("#exec-more")).await.expect("more").click().await.expect("click more");
    wait_js(&c, "document.querySelectorAll('#exec-rows tr[data-id]').length > 100", "the older page appended").await;
    c.find(Locator::Css("#exec-rows tr[data-id]")).await.expect("row").click().await.expect("open detail");
    wait_js(&c, "!document.querySelector('#exec-detail').hidden", "the detail panel").await;
    set_value(&c, "#f-search", "BOOM <i>").await;
    c.execute("document.querySelector('#f-search').dispatchEvent(new Event('input')); return true;", vec![]).await.expect("input");
    wait_js(&c, "document.querySelectorAll('#exec-rows tr[data-id]').length === 1 && document.querySelector('#exec-rows').textContent.includes('boom-d')", "the one matching run").await;
    assert_eq!(c.execute("return document.querySelector('#exec-detail').hidden;", vec![]).await.expect("js"), json!(true), "the stale detail closed");
    shot(&c, "r2-06-executions-search").await;
    set_value(&c, "#f-search", "").await;
    set_value(&c, "#f-until", "2001-01-01T00:00:00").await;
    wait_js(&c, "document.querySelector('#exec-rows .empty')", "nothing before 2001").await;
    set_value(&c, "#f-until", "").await;

    // A server that does not answer: said in words, with a retry that works once it is back.
    c.execute("window.__fetch = window.fetch; window.fetch = () => Promise.reject(new TypeError('Failed to fetch')); return true;", vec![]).await.expect("stub");
    open_hash(&c, "#/functions").await;
    let down = wait_js(&c, "document.querySelector('#page-error')?.textContent", "the unreachable note").await;
    let down = down.as_str().unwrap_or("");
    assert!(down.contains("Server not reachable") && !down.contains("Failed to fetch"), "{down}");
    shot(&c, "r2-07-server-down").await;
    c.execute("window.fetch = window.__fetch; return true;", vec![]).await.expect("unstub");
    c.find(Locator::Css("#page-retry")).await.expect("retry").click().await.expect("click retry");
    wait_js(&c, "document.querySelector('#fn-table table') && !document.querySelector('#page-error')", "the page after the retry").await;
    c.close().await.expect("close");
}

/// Runs axe-core (installed by `make test`: scripts/test-deps.sh) in the page; returns the
/// serious and critical violations as "rule: target, …" lines.
async fn axe_violations(c: &Client) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-axe/node_modules/axe-core/axe.min.js");
    let src = std::fs::read_to_string(path).expect("axe-core is installed by `make test` (scripts/test-deps.sh)");
    c.execute(&format!("{src}\nreturn true;"), vec![]).await.expect("inject axe");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then((r) => done(r.violations
               .filter((v) => v.impact === 'serious' || v.impact === 'critical')
               .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(', ') + ' — ' + v.help)));",
            vec![],
        )
        .await
        .expect("axe run");
    serde_json::from_value(found).unwrap_or_default()
}

/// Every page at desktop and phone width: no serious or critical axe-core violation, no
/// sideways scrolling at 390 px, and a screenshot of each. Seeded so that tables, badges,
/// charts and a past comparison are on screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_every_page_is_accessible_and_fits_a_phone() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    s.create("ok-a11y", "python", "docker", "def handler(event, context):\n    print('hello')\n    return {'a': 1}\n", json!({"sample_input": {"name": "x", "n": 2, "flag": true}})).await;
    s.create("bad-a11y", "javascript", "gvisor", "exports.handler = async () => { throw new Error('nope'); };\n", json!({})).await;
    for _ in 0..3 {
        s.invoke("bad-a11y", &json!({})).await;
    }
    // 1,000 stored executions with logs: no page may download more than 200 KB of API data.
    for _ in 0..1000 {
        s.invoke("ok-a11y", &json!({"name": "x"})).await;
    }
    let (st, _) = s.post("/api/v1/functions/ok-a11y/compare", &json!({"input": {}, "iterations": 1})).await;
    assert!(st == 200 || st == 201, "{st}");
    let driver = Driver::start().await;
    let base = s.url.clone();
    let pages = [
        ("functions", "#fn-table table"),
        ("create", "#template option"),
        ("edit/ok-a11y", "#code"),
        ("execute/ok-a11y", "#in-name"),
        ("executions", "#exec-rows tr[data-id]"),
        ("dead-letters", "#dl-rows"),
        ("dashboard", "#stat-invocations"),
        ("compare", "#c-past [data-cmp]"),
        ("cluster", "#cl-rows tr"),
    ];
    let mut problems = Vec::new();
    // The system's dark setting is followed (blink's preferredColorScheme 0 is dark).
    let light = browser(&driver).await;
    let dark = browser_with(&driver, &["--blink-settings=preferredColorScheme=0"]).await;
    let dark_on = dark.execute("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![]).await.expect("js");
    assert_eq!(dark_on, json!(true), "the dark scheme is asked for");
    for (c, width, height, tag) in [(&light, 1280, 1000, "desktop"), (&light, 390, 844, "phone"), (&dark, 1280, 1000, "dark")] {
        c.set_window_size(width, height).await.expect("resize");
        for (page, ready) in pages {
            // Counted per page (a hash change keeps the document and its timings).
            c.execute("performance.setResourceTimingBufferSize(10000); performance.clearResourceTimings(); return true;", vec![]).await.ok();
            c.goto(&format!("{base}/#/{page}")).await.expect("open");
            wait_js(c, &format!("document.querySelector('{ready}')"), page).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            for v in axe_violations(c).await {
                problems.push(format!("{tag} #/{page}: {v}"));
            }
            let api_bytes = c
                .execute(
                    "return performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/') && !r.name.includes('/stream'))
                       .reduce((n, r) => n + r.decodedBodySize, 0);",
                    vec![],
                )
                .await
                .expect("js");
            if api_bytes.as_f64().unwrap_or(f64::MAX) > 200_000.0 {
                problems.push(format!("{tag} #/{page}: {api_bytes} bytes of API data (budget 200 KB)"));
            }
            // A button inside a link is two tab stops for one action.
            let nested = c.execute("return document.querySelectorAll('a button, button a, a a').length;", vec![]).await.expect("js");
            if nested != json!(0) {
                problems.push(format!("{tag} #/{page}: {nested} controls nested in links"));
            }
            let w = c.execute("return [document.documentElement.scrollWidth, window.innerWidth];", vec![]).await.expect("widths");
            if w[0].as_f64() > w[1].as_f64() {
                problems.push(format!("{tag} #/{page}: wider than the window (scrollWidth, innerWidth) = {w}"));
            }
            shot(c, &format!("a11y-{tag}-{}", page.replace('/', "-"))).await;
        }
    }
    // The skip link is the first tab stop and moves focus to the content, staying on the page.
    light.goto(&format!("{base}/#/dashboard")).await.expect("open");
    wait_js(&light, "document.querySelector('#stat-invocations')", "the dashboard").await;
    let first = light
        .execute("return [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')].find((e) => e.tabIndex >= 0)?.className;", vec![])
        .await
        .expect("js");
    assert_eq!(first, json!("skip"), "the skip link is the first tab stop");
    let shown = light.execute("const s = document.querySelector('.skip'); s.focus(); return s.getBoundingClientRect().left >= 0;", vec![]).await.expect("js");
    assert_eq!(shown, json!(true), "visible when focused");
    light.find(Locator::Css(".skip")).await.expect("skip").send_keys("\u{E007}").await.expect("enter");
    let after = light.execute("return [document.activeElement.id, location.hash, !!document.querySelector('#stat-invocations')];", vec![]).await.expect("js");
    assert_eq!(after, json!(["main", "#/dashboard", true]), "focus on the content, same page");
    let bg = dark.execute("return getComputedStyle(document.body).backgroundColor;", vec![]).await.expect("js");
    assert_eq!(bg, json!("rgb(14, 20, 31)"), "dark pages are dark");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    light.close().await.expect("close");
    dark.close().await.expect("close");
}

/// Versions and saved test events on the function's page: the history, a diff of two versions,
/// running an old version, rolling back (a new version from an old one), and named test
/// events saved on the server, picked into the form, and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_versions_and_test_events() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    let v1 = "def handler(event, context):\n    return 1\n";
    let created = s.create("ver-ui", "python", "docker", v1, json!({"sample_input": {"n": 1}})).await;
    let mut spec = created.clone();
    spec["code"] = json!("def handler(event, context):\n    return 2\n");
    let (st, v2) = s.put("/api/v1/functions/ver-ui", &spec).await;
    assert_eq!((st, v2["version"].clone()), (200, json!(2)), "{v2}");
    let driver = Driver::start().await;
    let c = browser(&driver).await;
    let base = s.url.clone();
    c.goto(&format!("{base}/#/execute/ver-ui")).await.expect("open");
    wait_js(&c, "document.querySelectorAll('#ver-table tr[data-version]').length === 2", "two versions listed").await;
    let diff = wait_js(&c, "document.querySelector('#ver-diff pre.diff') && [document.querySelector('#ver-diff .del')?.textContent, document.querySelector('#ver-diff .add')?.textContent]", "the diff").await;
    assert_eq!(diff, json!(["−     return 1", "+     return 2"]), "v1 against v2");
    shot(&c, "versions-01-diff").await;

    // An old version runs its own code.
    set_value(&c, "#run-version", "1").await;
    c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click");
    let out = wait_js(&c, "document.querySelector('#output')?.textContent", "v1's output").await;
    assert_eq!(out.as_str().map(str::trim), Some("1"));
    assert!(c.execute("return document.querySelector('#result-stats').textContent;", vec![]).await.expect("js").as_str().unwrap_or("").contains("v1"));

    // Roll back to v1: v3, with v1's code.
    c.execute("window.confirm = () => true; return true;", vec![]).await.expect("confirm");
    c.find(Locator::Css("[data-rollback='1']")).await.expect("rollback").click().await.expect("click rollback");
    wait_js(&c, "document.querySelectorAll('#ver-table tr[data-version]').length === 3", "three versions after the rollback").await;
    let (_, f) = s.get("/api/v1/functions/ver-ui").await;
    assert_eq!((f["version"].clone(), f["code"].clone()), (json!(3), json!(v1)), "{f}");
    c.find(Locator::Css("#run")).await.expect("run").click().await.expect("click");
    wait_js(&c, "document.querySelector('#result-stats')?.textContent.includes('v3') && document.querySelector('#output')?.textContent.trim() === '1'", "v3 runs v1's code").await;

    // Saved test events: save the event typed, pick it back into the form, delete it.
    c.find(Locator::Css("#tab-raw")).await.expect("raw").click().await.expect("click raw");
    set_value(&c, "#raw", r#"{"n": 42, "tag": "big"}"#).await;
    c.execute("window.prompt = () => 'big-one'; return true;", vec![]).await.expect("prompt");
    c.find(Locator::Css("#te-save")).await.expect("save").click().await.expect("click save");
    wait_js(&c, "[...document.querySelectorAll('#te-pick option')].some((o) => o.textContent === 'big-one')", "the saved event listed").await;
    let (_, events) = s.get("/api/v1/functions/ver-ui/test-events").await;
    assert_eq!((events[0]["name"].clone(), events[0]["event"].clone()), (json!("big-one"), json!({"n": 42, "tag": "big"})), "{events}");
    set_value(&c, "#te-pick", "").await;
    c.find(Locator::Css("#tab-form")).await.expect("form").click().await.expect("click form");
    wait_js(&c, "document.querySelector('#in-n')?.value === '1'", "the sample input back").await;
    set_value(&c, "#te-pick", "big-one").await;
    let form = wait_js(&c, "document.querySelector('#in-n')?.value === '42' && [document.querySelector('#in-n').value, document.querySelector('#in-tag')?.value]", "the saved event in the form").await;
    assert_eq!(form, json!(["42", "big"]));
    shot(&c, "versions-02-test-events").await;
    c.find(Locator::Css("#te-delete")).await.expect("delete").click().await.expect("click delete");
    wait_js(&c, "![...document.querySelectorAll('#te-pick option')].some((o) => o.textContent === 'big-one')", "the event gone").await;
    let (_, events) = s.get("/api/v1/functions/ver-ui/test-events").await;
    assert_eq!(events, json!([]));
    c.close().await.expect("close");
}
