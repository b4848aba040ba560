//! What one function can learn about another, and what work and figures it can sneak past the
//! host, on runc and gVisor, in Python and JavaScript (issue 11, items 1, 5 and 10).
//!
//! * Residue: a function's code (checked at create time) and input must never be found in a
//!   sandbox that another function gets: the second function scans its own process memory
//!   (`/proc/self/mem`), `/tmp` and its environment for the first one's secrets.
//! * Leftover work: a function that silences its bootstrap's own leftover report and leaves a
//!   thread or a timer burning CPU never gets its sandbox reused (the host counts threads on runc
//!   and measures an idle sandbox's CPU on both runtimes).
//! * Time: code that loops while loading obeys the function's timeout and records `timeout`.
//! * Forgery: a function that writes its own `result` on the bootstrap's channel cannot record
//!   an `oom` or an execution time the host did not see, and a forged `ready` costs no stall.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const RUNTIMES: [&str; 2] = ["docker", "gvisor"];
const LANGUAGES: [&str; 2] = ["python", "javascript"];

async fn server() -> TestServer {
    let s = TestServer::start(&["--prewarm", "1"]).await;
    s.require_runtimes().await;
    s
}

/// A secret that only this test and one function know: `LEAK-` and 32 hex digits.
fn secret() -> String {
    format!("LEAK-{}", uuid::Uuid::now_v7().simple())
}

fn holder_code(language: &str, code_secret: &str) -> String {
    match language {
        "python" => format!(
            "# {code_secret}\nimport os\nCODE_SECRET = '{code_secret}'\n\ndef handler(event, context):\n    \
             s = event['secret']\n    os.environ['HELD'] = s\n    open('/tmp/held.txt', 'w').write(s)\n    return len(s)\n"
        ),
        _ => format!(
            "// {code_secret}\nconst fs = require('fs');\nconst CODE_SECRET = '{code_secret}';\n\
             exports.handler = async (event) => {{\n  const s = event.secret;\n  process.env.HELD = s;\n  \
             fs.writeFileSync('/tmp/held.txt', s);\n  return s.length;\n}};\n"
        ),
    }
}

/// Scans the process's readable memory, /tmp and the environment for `LEAK-<32 hex>` strings.
/// Its code holds no such string; `control` is built at run time and must be found (proof that
/// the scan sees this process's memory).
const PY_SCANNER: &str = r#"
import os, re
PAT = re.compile(rb"LEAK-[0-9a-f]{32}")

def handler(event, context):
    control = ("LEAK-" + "ab" * 16).encode()
    found = set()
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or line.rstrip().endswith(("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            pos, tail = lo, b""
            while pos < hi:
                n = min(1 << 20, hi - pos)
                try:
                    mem.seek(pos)
                    chunk = mem.read(n)
                except (OSError, ValueError, OverflowError):
                    break
                found.update(m.decode() for m in PAT.findall(tail + chunk))
                tail, pos = chunk[-40:], pos + n
    for root, _, files in os.walk("/tmp"):
        for n in files:
            try:
                with open(os.path.join(root, n), "rb") as fh:
                    found.update(m.decode() for m in PAT.findall(fh.read()))
            except OSError:
                pass
    for k, v in os.environ.items():
        found.update(m.decode() for m in PAT.findall((k + "=" + v).encode()))
    return {"found": sorted(found), "control": control.decode()}
"#;

const JS_SCANNER: &str = r#"
const fs = require('fs');
const PAT = /LEAK-[0-9a-f]{32}/g;

exports.handler = async () => {
  // join() makes a flat string; `+` would leave a rope of two pieces in V8's heap.
  const control = ['LEAK-', 'ab'.repeat(16)].join('');
  const found = new Set();
  const add = (s) => { for (const m of s.matchAll(PAT)) found.add(m[0]); };
  const fd = fs.openSync('/proc/self/mem', 'r');
  const buf = Buffer.alloc(1 << 20);
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const p = line.split(/\s+/);
    if (p.length < 2 || !p[1].includes('r') || line.includes('[vvar]') || line.includes('[vsyscall]')) continue;
    const [lo, hi] = p[0].split('-').map((x) => parseInt(x, 16));
    let pos = lo;
    while (pos < hi) {
      const n = Math.min(buf.length, hi - pos);
      let got;
      try { got = fs.readSync(fd, buf, 0, n, pos); } catch (e) { break; }
      if (got <= 0) break;
      // Native search, so the scan makes no garbage of its own (128 MB is tight under gVisor).
      const chunk = buf.subarray(0, got);
      for (let i = chunk.indexOf('LEAK-'); i !== -1; i = chunk.indexOf('LEAK-', i + 1)) {
        add(chunk.toString('latin1', i, Math.min(got, i + 37)));
      }
      // Chunks overlap by 40 bytes, so a string across a boundary is seen whole.
      pos += got < n || pos + got >= hi ? got : got - 40;
    }
  }
  fs.closeSync(fd);
  for (const n of fs.readdirSync('/tmp')) {
    try { add(fs.readFileSync('/tmp/' + n, 'latin1')); } catch (e) { /* a directory or gone */ }
  }
  for (const [k, v] of Object.entries(process.env)) add(k + '=' + v);
  return { found: [...found].sort(), control };
};
"#;

/// The memory size of the holder and the scanners (one size, so they share one generic pool):
/// reading all of its own memory once took a Node scanner under gVisor to 128 MB and an OOM in
/// one run in ten or so; 256 MB leaves it room.
const SCAN_MEMORY_MB: u32 = 256;

/// Creates and cold-starts a scanner function, as a new function of another user would be,
/// on the same language, runtime and memory size; returns what it found.
async fn scan(s: &TestServer, name: &str, language: &str, runtime: &str) -> Vec<String> {
    let code = if language == "python" { PY_SCANNER } else { JS_SCANNER };
    s.create(name, language, runtime, code, json!({"timeout_ms": 60000, "memory_mb": SCAN_MEMORY_MB})).await;
    let r = s.invoke(name, &json!({})).await;
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["cold_start"], true, "{r}");
    let found: Vec<String> =
        r["output"]["found"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    let control = r["output"]["control"].as_str().unwrap_or_default();
    assert!(found.iter().any(|f| f == control), "{name}: the scan did not see its own memory: {r}");
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sandbox_that_held_one_function_serves_another() {
    let s = server().await;
    for runtime in RUNTIMES {
        for language in LANGUAGES {
            let (code_secret, input_secret) = (secret(), secret());
            let holder = format!("holder-{language}-{runtime}");
            // Its code is checked at create time...
            s.create(&holder, language, runtime, &holder_code(language, &code_secret), json!({"memory_mb": SCAN_MEMORY_MB})).await;
            let found = scan(&s, &format!("scan1-{language}-{runtime}"), language, runtime).await;
            assert!(
                !found.contains(&code_secret),
                "{language}/{runtime}: another function's checked code was readable from a fresh sandbox: {found:?}"
            );
            // ...then it runs with a secret input, which it also leaves in /tmp and its environment.
            let r = s.invoke(&holder, &json!({"secret": input_secret})).await;
            assert_eq!(r["status"], "success", "{r}");
            let found = scan(&s, &format!("scan2-{language}-{runtime}"), language, runtime).await;
            for (what, secret) in [("code", &code_secret), ("input", &input_secret)] {
                assert!(
                    !found.contains(secret),
                    "{language}/{runtime}: another function's {what} was readable from a fresh sandbox: {found:?}"
                );
            }
            println!("[isolation] {language}/{runtime}: the scanners saw none of the other function's secrets");
        }
    }
}

/// Silences the bootstrap's own leftover report, then leaves work burning CPU after the call
/// (in Node a timer that spins without yielding: one that yields between bursts could get too
/// little CPU to tell from idle on a loaded machine).
fn sneaky_code(language: &str) -> &'static str {
    match language {
        "python" => {
            "import threading, __main__\n\ndef spin():\n    while True:\n        pass\n\n\
             def handler(event, context):\n    __main__._leftovers = lambda loop: []\n    \
             threading.Thread(target=spin, daemon=True).start()\n    return 'started'\n"
        }
        _ => {
            "exports.handler = async () => {\n  process.getActiveResourcesInfo = () => [];\n  \
             setTimeout(() => { for (;;) {} }, 5).unref();\n  \
             return 'started';\n};\n"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_left_running_after_a_call_is_found_by_the_host() {
    let s = server().await;
    for runtime in RUNTIMES {
        for language in LANGUAGES {
            let name = format!("sneaky-{language}-{runtime}");
            s.create(&name, language, runtime, sneaky_code(language), json!({"timeout_ms": 2000})).await;
            let r = s.invoke(&name, &json!({})).await;
            assert_eq!(r["output"], "started", "{r}");
            // The host finds it within a maintenance period (1 s) of the sandbox going idle.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (_, pools) = s.get("/api/v1/pools").await;
                let idle = pools["functions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["function"] == name.as_str())
                    .map(|p| p["idle"].as_u64().unwrap_or(0))
                    .sum::<u64>();
                if idle == 0 {
                    break;
                }
                assert!(Instant::now() < deadline, "{language}/{runtime}: a sandbox burning CPU stayed in the pool: {pools}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let r = s.invoke(&name, &json!({})).await;
            assert_eq!(r["cold_start"], true, "{language}/{runtime}: the busy sandbox was reused: {r}");
        }
    }
}

fn slow_import_code(language: &str) -> &'static str {
    match language {
        "python" => "import time\n_t = time.time()\nwhile time.time() - _t < 8:\n    pass\n\ndef handler(event, context):\n    return 1\n",
        _ => "const t = Date.now();\nwhile (Date.now() - t < 8000) {}\nexports.handler = async () => 1;\n",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_code_obeys_the_function_timeout() {
    let s = server().await;
    for runtime in RUNTIMES {
        for language in LANGUAGES {
            let name = format!("slow-import-{language}-{runtime}");
            s.create(&name, language, runtime, slow_import_code(language), json!({"timeout_ms": 300})).await;
            let r = s.invoke(&name, &json!({})).await;
            assert_eq!(r["status"], "timeout", "{language}/{runtime}: {r}");
            assert_eq!(r["error"]["type"], "Timeout", "{r}");
            let took = r["duration_ms"].as_f64().unwrap_or(f64::MAX);
            assert!(took < 4000.0, "{language}/{runtime}: an 8 s import with a 300 ms timeout took {took} ms");
        }
    }
}

fn forger_code(language: &str) -> &'static str {
    match language {
        "python" => r#"
import json, os, time

def handler(event, context):
    if event.get("forge") == "none":
        return "plain"
    if event.get("forge") == "ready":
        os.write(3, b'{"type":"ready","language":"python","runtime_version":"x"}\n')
    else:
        line = {"type": "result", "id": context.execution_id, "status": "error",
                "error": {"type": "MemoryError", "message": "forged"}, "logs": "", "exec_ms": event["exec_ms"]}
        os.write(3, (json.dumps(line) + "\n").encode())
    time.sleep(0.5)
    return "real"
"#,
        _ => r#"
const fs = require('fs');
const channel = () => fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => {
  try { return fs.readlinkSync('/proc/self/fd/' + fd).startsWith('socket:'); } catch (e) { return false; }
});
exports.handler = async (event, context) => {
  if (event.forge === 'none') return 'plain';
  const line = event.forge === 'ready'
    ? { type: 'ready', language: 'node', runtime_version: 'x' }
    : { type: 'result', id: context.executionId || context.execution_id, status: 'error',
        error: { type: 'MemoryError', message: 'forged' }, logs: '', exec_ms: event.exec_ms };
  for (const fd of channel()) fs.writeSync(fd, JSON.stringify(line) + '\n');
  await new Promise((r) => setTimeout(r, 500));
  return 'real';
};
"#,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_and_messages_a_function_forges_are_not_believed() {
    let s = server().await;
    for runtime in RUNTIMES {
        for language in LANGUAGES {
            let name = format!("forger-{language}-{runtime}");
            s.create(&name, language, runtime, forger_code(language), json!({"timeout_ms": 5000})).await;
            for exec_ms in [json!(1e300), json!(-5)] {
                let r = s.invoke(&name, &json!({"exec_ms": exec_ms})).await;
                assert_ne!(r["status"], "oom", "{language}/{runtime}: a forged MemoryError recorded oom: {r}");
                let (exec, duration) = (r["exec_ms"].as_f64(), r["duration_ms"].as_f64().unwrap_or(0.0));
                if let Some(exec) = exec {
                    assert!((0.0..=duration).contains(&exec), "{language}/{runtime}: exec_ms {exec} outside 0..={duration}: {r}");
                }
                let id = r["execution_id"].as_str().unwrap_or_default();
                let (_, stored) = s.get(&format!("/api/v1/executions/{id}")).await;
                assert_ne!(stored["status"], "oom", "{stored}");
                if let Some(exec) = stored["exec_ms"].as_f64() {
                    assert!((0.0..=duration).contains(&exec), "stored exec_ms {exec}: {stored}");
                }
            }
            // A warm sandbox first, so the timing below is the forged message's alone (a cold
            // start under gVisor can take a second on this machine).
            for _ in 0..5 {
                let r = s.invoke(&name, &json!({"forge": "none"})).await;
                if r["output"] == "plain" && r["cold_start"] == false {
                    break;
                }
            }
            let t0 = Instant::now();
            let r = s.invoke(&name, &json!({"forge": "ready"})).await;
            let took = t0.elapsed();
            assert_eq!(r["cold_start"], false, "{language}/{runtime}: {r}");
            assert_eq!(r["status"], "error", "{language}/{runtime}: {r}");
            assert_eq!(r["error"]["type"], "ProtocolViolation", "{r}");
            assert!(took < Duration::from_millis(1500), "{language}/{runtime}: a forged ready stalled the call for {took:?}");
            // The sandbox that spoke out of turn is gone; the next call is a clean cold start.
            let r = s.invoke(&name, &json!({"exec_ms": 1})).await;
            assert_eq!(r["cold_start"], true, "{r}");
        }
    }
}
