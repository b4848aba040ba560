//! Hostile functions, on runc and on gVisor: each attack's recorded status and error, how long
//! it took, that the next call of the same function works, and that a hello-world function
//! invoked over and over *while* the attack runs keeps answering within its normal latency.
//!
//! How "normal latency" is judged: before a runtime's attacks, 20 warm calls of its hello
//! function are timed (client side, HTTP included) and their median taken. During an attack
//! every hello call must answer within `max(10 × median, FLOOR)`, FLOOR being 250 ms on runc
//! and 500 ms on gVisor. The medians are well under 2 ms, so the floor is what binds: this
//! machine has two cores shared with other builds, and an attacker holds one of them (its CPU
//! quota), so scheduling hiccups of tens of ms are noise (the worst seen in quiet runs: 67 ms on
//! runc while a sandbox was OOM-killed, 131 ms on gVisor while one serialised 100 MB, 314 ms
//! on gVisor with another test suite building beside it); a sandbox
//! starving the host is not (that shows as seconds, or as a failed call). Attacks are serialised across the
//! tests of this file (one lock), so each hello measurement sees one attack at a time; set-up
//! and the follow-up calls of different tests may overlap.
//!
//! Every figure is printed as a `[hostile]` line (run with `--nocapture` to see them).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{tail, TestServer};
use serde_json::{json, Value};

const RUNTIMES: [&str; 2] = ["docker", "gvisor"];

/// One attack at a time across this file's tests (see the module doc).
static ATTACKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server() -> TestServer {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    s
}

/// A warm hello-world function of one runtime and the latency bound derived from it.
struct Hello {
    name: String,
    runtime: &'static str,
    p50: Duration,
    bound: Duration,
}

const HELLO: &str = "def handler(event, context):\n    return 'Hello, ' + event.get('name', 'World') + '!'\n";

async fn hello(s: &TestServer, runtime: &'static str) -> Hello {
    let name = format!("hello-{runtime}");
    s.create(&name, "python", runtime, HELLO, json!({})).await;
    for _ in 0..3 {
        assert_eq!(s.invoke(&name, &json!({"name": "warm"})).await["output"], json!("Hello, warm!"));
    }
    let _quiet = ATTACKS.lock().await;
    let mut times = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let r = s.invoke(&name, &json!({"name": "Bob"})).await;
        times.push(t0.elapsed());
        assert_eq!(r["output"], json!("Hello, Bob!"), "{r}");
        assert_eq!(r["cold_start"], json!(false), "the hello sandbox stays warm: {r}");
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let floor = Duration::from_millis(if runtime == "gvisor" { 500 } else { 250 });
    let bound = (p50 * 10).max(floor);
    eprintln!(
        "[hostile] {runtime} hello: 20 warm calls p50 {:.2} ms, max {:.2} ms -> bound during attacks {} ms",
        ms(p50),
        ms(times[times.len() - 1]),
        bound.as_millis()
    );
    Hello { name, runtime, p50, bound }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What one attack did.
struct Attack {
    r: Value,
    took: Duration,
}

impl Attack {
    fn status(&self) -> &str {
        self.r["status"].as_str().unwrap_or("")
    }
    fn error_type(&self) -> &str {
        self.r["error"]["type"].as_str().unwrap_or("")
    }
    fn logs(&self) -> &str {
        self.r["logs"].as_str().unwrap_or("")
    }
    fn took_ms(&self) -> u128 {
        self.took.as_millis()
    }
}

/// Creates a function and calls it once harmlessly (`{}`), so that the attack runs warm and its
/// timing is the attack's, not a cold start's.
async fn prepare(s: &TestServer, name: &str, lang: &str, rt: &str, code: &str, extra: Value) {
    s.create(name, lang, rt, code, extra).await;
    let r = s.invoke(name, &json!({})).await;
    assert_eq!(r["status"], json!("success"), "{name}: the harmless call works: {r}");
}

/// Invokes `name` with `input` while the hello function is called back to back; checks every
/// hello answer against its bound and that the execution record matches the answer.
async fn attack(s: &TestServer, hello: &Hello, case: &str, name: &str, input: Value) -> Attack {
    let _one_at_a_time = ATTACKS.lock().await;
    let done = AtomicBool::new(false);
    let hostile = async {
        let t0 = Instant::now();
        let r = s.invoke(name, &input).await;
        let took = t0.elapsed();
        done.store(true, Ordering::Release);
        (r, took)
    };
    // At least three probes, even when the attack answers first: a function that leaves work
    // behind answers in a few milliseconds, and what matters is how hello fares right after.
    let hellos = async {
        let mut times = Vec::new();
        while !done.load(Ordering::Acquire) || times.len() < 3 {
            let t0 = Instant::now();
            let h = s.invoke(&hello.name, &json!({"name": "probe"})).await;
            times.push(t0.elapsed());
            assert_eq!(h["output"], json!("Hello, probe!"), "hello during {case} on {}: {h}", hello.runtime);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times
    };
    let ((r, took), times) = tokio::join!(hostile, hellos);
    let worst = times.iter().max().copied().unwrap_or_default();
    let a = Attack { r, took };
    eprintln!(
        "[hostile] {} {case}: status {} {} in {} ms (recorded {:.0} ms); hello x{} during and after it: max {:.1} ms (p50 {:.2} ms, bound {} ms)",
        hello.runtime,
        a.status(),
        a.error_type(),
        a.took_ms(),
        a.r["duration_ms"].as_f64().unwrap_or(-1.0),
        times.len(),
        ms(worst),
        ms(hello.p50),
        hello.bound.as_millis()
    );
        assert!(
        worst <= hello.bound,
        "{case} on {}: a concurrent hello took {:.1} ms, over its bound of {} ms (all: {:?})\n{}",
        hello.runtime,
        ms(worst),
        hello.bound.as_millis(),
        times.iter().map(|t| ms(*t).round()).collect::<Vec<_>>(),
        tail(&s.log(), 30)
    );
    let id = a.r["execution_id"].as_str().unwrap_or_default();
    let (st, rec) = s.get(&format!("/api/v1/executions/{id}")).await;
    assert_eq!(st, 200, "{case}: the execution is recorded: {rec}");
    assert_eq!(rec["status"], a.r["status"], "{case}: record and answer agree: {rec} vs {}", a.r);
    assert_eq!(rec["error"]["type"], a.r["error"]["type"], "{case}: record and answer agree: {rec}");
    assert_eq!(rec["duration_ms"], a.r["duration_ms"], "{case}: record and answer agree: {rec}");
    a
}

/// The attack ended with `status` (and `error`, when given).
fn expect(a: &Attack, case: &str, status: &str, error: Option<&str>) {
    assert_eq!(a.status(), status, "{case}: {}", a.r);
    if let Some(e) = error {
        assert_eq!(a.error_type(), e, "{case}: {}", a.r);
    }
}

/// A timeout: answered after the timeout and within a second of it, by the client's clock and
/// the record's.
fn expect_timeout(a: &Attack, case: &str, timeout_ms: u128) {
    expect(a, case, "timeout", Some("Timeout"));
    assert!(a.took_ms() >= timeout_ms, "{case}: answered before the timeout: {} ms", a.took_ms());
    assert!(a.took_ms() <= timeout_ms + 1000, "{case}: answered {} ms after a {timeout_ms} ms timeout", a.took_ms());
    let rec = a.r["duration_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(rec <= (timeout_ms + 1000) as f64, "{case}: recorded duration {rec} ms");
}

fn expect_within(a: &Attack, case: &str, max_ms: u128) {
    assert!(a.took_ms() <= max_ms, "{case}: took {} ms, more than {max_ms} ms", a.took_ms());
}

/// The next harmless call of the function works; returns it.
async fn next_works(s: &TestServer, name: &str, cold: Option<bool>) -> Value {
    let r = s.invoke(name, &json!({})).await;
    assert_eq!(r["status"], json!("success"), "{name}: the next call works: {r}");
    assert_eq!(r["output"], json!("ok"), "{name}: {r}");
    if let Some(cold) = cold {
        assert_eq!(r["cold_start"], json!(cold), "{name}: cold start expected {cold}: {r}");
    }
    r
}

// ------------------------------------------------------------------------------------------------

const LOOP_PY: &str = "def handler(event, context):\n    if event.get('go'):\n        while True:\n            pass\n    return 'ok'\n";
const LOOP_JS: &str = "exports.handler = (event) => { if (event.go) { for (;;) {} } return 'ok'; };\n";
const FORK_BOMB_PY: &str = r#"import os
def handler(event, context):
    if not event.get('go'):
        return 'ok'
    while True:
        try:
            os.fork()
        except OSError:
            pass
"#;
const SLEEP_PY: &str = "import time\ndef handler(event, context):\n    if event.get('go'):\n        time.sleep(30)\n    return 'ok'\n";
const EXIT_PY: &str = "import os\ndef handler(event, context):\n    if event.get('go'):\n        os._exit(3)\n    return 'ok'\n";
const EXIT_JS: &str = "exports.handler = (event) => { if (event.go) process.exit(3); return 'ok'; };\n";
const KILL_SELF_PY: &str = r#"import os, signal, time
def handler(event, context):
    if event.get('go'):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.2)
        return 'survived'
    return 'ok'
"#;

/// Infinite loops, a fork bomb, sleeping past the timeout, exiting, killing the bootstrap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_exit_attacks() {
    let s = server().await;
    for rt in RUNTIMES {
        let hello = hello(&s, rt).await;

        for (lang, code) in [("python", LOOP_PY), ("javascript", LOOP_JS)] {
            let name = format!("loop-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"timeout_ms": 1000})).await;
            let a = attack(&s, &hello, &format!("infinite loop ({lang})"), &name, json!({"go": true})).await;
            expect_timeout(&a, &name, 1000);
            next_works(&s, &name, Some(true)).await;
        }

        // 64 pids per sandbox. Under runc the forks fail with EAGAIN and the loop runs into the
        // timeout; under gVisor the limit binds the sandbox kernel's own threads and it exits.
        let name = format!("forkbomb-{rt}");
        prepare(&s, &name, "python", rt, FORK_BOMB_PY, json!({"timeout_ms": 1500})).await;
        let a = attack(&s, &hello, "fork bomb", &name, json!({"go": true})).await;
        if rt == "docker" {
            expect_timeout(&a, &name, 1500);
        } else {
            expect(&a, &name, "error", Some("SandboxExited"));
            expect_within(&a, &name, 2500);
        }
        next_works(&s, &name, Some(true)).await;

        let name = format!("sleep-{rt}");
        prepare(&s, &name, "python", rt, SLEEP_PY, json!({"timeout_ms": 1000})).await;
        let a = attack(&s, &hello, "sleep past the timeout", &name, json!({"go": true})).await;
        expect_timeout(&a, &name, 1000);
        next_works(&s, &name, Some(true)).await;

        for (lang, code) in [("python", EXIT_PY), ("javascript", EXIT_JS)] {
            let name = format!("exit-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"timeout_ms": 2000})).await;
            let a = attack(&s, &hello, &format!("exit ({lang})"), &name, json!({"go": true})).await;
            expect(&a, &name, "error", Some("SandboxExited"));
            assert!(a.r["error"]["message"].as_str().unwrap_or("").contains("exit code 3"), "{}", a.r);
            expect_within(&a, &name, 2000);
            next_works(&s, &name, Some(true)).await;
        }

        // SIGKILL to itself: the bootstrap is its sandbox's pid 1. Linux does not deliver a
        // signal without a handler to a namespace's init from inside, so under runc it lives on;
        // gVisor does deliver it and the sandbox dies. Either way the next call works.
        let name = format!("killself-{rt}");
        prepare(&s, &name, "python", rt, KILL_SELF_PY, json!({"timeout_ms": 2000})).await;
        let a = attack(&s, &hello, "kill its own bootstrap", &name, json!({"go": true})).await;
        if rt == "docker" {
            expect(&a, &name, "success", None);
            assert_eq!(a.r["output"], json!("survived"), "{}", a.r);
        } else {
            expect(&a, &name, "error", Some("SandboxExited"));
            assert!(a.r["error"]["message"].as_str().unwrap_or("").contains("exit code 137"), "{}", a.r);
        }
        expect_within(&a, &name, 2000);
        next_works(&s, &name, None).await;
    }
}

// ------------------------------------------------------------------------------------------------

const HOG_PY: &str = "def handler(event, context):\n    if event.get('go'):\n        blocks = []\n        while True:\n            blocks.append(bytearray(16 << 20))\n    return 'ok'\n";
const HOG_JS: &str = "exports.handler = (event) => { if (!event.go) return 'ok'; const keep = []; for (let i = 0; ; i++) keep.push('x'.repeat(1000) + i); };\n";
const STDOUT_PY: &str = r#"import os, sys
def handler(event, context):
    if not event.get('go'):
        return 'ok'
    mb = 'x' * (1 << 20)
    for _ in range(100):
        sys.stdout.write(mb)            # captured into the logs, which are capped
    raw = mb.encode()
    for fd in (1, 2):                   # fd 1 is /dev/null; fd 2 is the container's stderr
        for _ in range(100):
            os.write(fd, raw)
    return 'wrote'
"#;
const STDOUT_JS: &str = r#"const fs = require('fs');
exports.handler = (event) => {
  if (!event.go) return 'ok';
  const mb = 'x'.repeat(1 << 20);
  for (let i = 0; i < 100; i++) process.stdout.write(mb);
  const raw = Buffer.from(mb);
  for (let i = 0; i < 100; i++) fs.writeSync(1, raw);
  return 'wrote';
};
"#;
const RETURN_PY: &str = "def handler(event, context):\n    return 'x' * (100 << 20) if event.get('go') else 'ok'\n";
const RETURN_JS: &str = "exports.handler = (event) => event.go ? 'x'.repeat(100 << 20) : 'ok';\n";
const FILL_TMP_PY: &str = r#"import errno
def fill(path):
    n = 0
    try:
        with open(path, 'wb') as f:
            while True:
                f.write(b'x' * 65536)
                f.flush()
                n += 65536
    except OSError as e:
        return [n, errno.errorcode.get(e.errno, str(e.errno))]
def handler(event, context):
    if not event.get('go'):
        return 'ok'
    return {'tmp': fill('/tmp/fill'), 'shm': fill('/dev/shm/fill')}
"#;

/// Allocating far beyond memory_mb, 100 MB to stdout, a 100 MB return value, filling /tmp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_output_attacks() {
    let s = server().await;
    for rt in RUNTIMES {
        let hello = hello(&s, rt).await;

        for (lang, code) in [("python", HOG_PY), ("javascript", HOG_JS)] {
            let name = format!("hog-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"memory_mb": 64, "timeout_ms": 10000})).await;
            let a = attack(&s, &hello, &format!("memory blow-up ({lang})"), &name, json!({"go": true})).await;
            expect(&a, &name, "oom", Some("OutOfMemory"));
            expect_within(&a, &name, 5000);
            next_works(&s, &name, Some(true)).await;
        }

        for (lang, code) in [("python", STDOUT_PY), ("javascript", STDOUT_JS)] {
            let name = format!("stdout-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"timeout_ms": 10000})).await;
            let a = attack(&s, &hello, &format!("100 MB to stdout ({lang})"), &name, json!({"go": true})).await;
            expect(&a, &name, "success", None);
            assert_eq!(a.r["output"], json!("wrote"), "{}", a.r);
            assert!(a.logs().ends_with("[fnbox: logs truncated]"), "logs are capped: {} bytes", a.logs().len());
            assert!(a.logs().len() <= 256 * 1024 + 64, "logs are capped at 256 KiB: {} bytes", a.logs().len());
            expect_within(&a, &name, 8000);
            // Nothing broke: the same sandbox serves the next call.
            next_works(&s, &name, Some(false)).await;
        }
        // Nothing of it was kept on the host: sandboxes have no logging driver (dockerd would
        // otherwise have stored the 100 MB written to fd 2 on disk).
        for id in s.containers() {
            let out = std::process::Command::new("docker")
                .args(["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", &id])
                .output()
                .expect("docker inspect");
            let kind = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert!(kind == "none" || !out.status.success(), "sandbox {id} logs with driver `{kind}`");
        }

        for (lang, code) in [("python", RETURN_PY), ("javascript", RETURN_JS)] {
            let name = format!("return-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"memory_mb": 512, "timeout_ms": 10000})).await;
            let a = attack(&s, &hello, &format!("100 MB return value ({lang})"), &name, json!({"go": true})).await;
            expect(&a, &name, "error", Some("OutputTooLarge"));
            expect_within(&a, &name, 8000);
            next_works(&s, &name, Some(false)).await;
        }

        let name = format!("filltmp-{rt}");
        prepare(&s, &name, "python", rt, FILL_TMP_PY, json!({"timeout_ms": 10000})).await;
        let a = attack(&s, &hello, "filling /tmp and /dev/shm", &name, json!({"go": true})).await;
        expect(&a, &name, "success", None);
        for dir in ["tmp", "shm"] {
            assert_eq!(a.r["output"][dir][1], json!("ENOSPC"), "{dir} fills up: {}", a.r);
            let bytes = a.r["output"][dir][0].as_u64().unwrap_or(u64::MAX);
            assert!(bytes <= 16 << 20, "{dir} holds at most 16 MiB: {bytes}");
        }
        expect_within(&a, &name, 5000);
        next_works(&s, &name, Some(false)).await;

        let rss = s.rss_bytes().expect("fnbox's RSS");
        eprintln!("[hostile] {rt}: fnbox RSS after the output attacks: {:.1} MB", rss as f64 / 1e6);
        assert!(rss < 150 << 20, "fnbox's own memory stays bounded: {rss} bytes");
    }
}

// ------------------------------------------------------------------------------------------------

const LOCKDOWN_PY: &str = r#"import errno, os, socket, time
def attempt(f):
    t0 = time.monotonic()
    try:
        what = 'ok: %r' % (f(),)
    except OSError as e:
        what = errno.errorcode.get(e.errno, str(e.errno))
    return [what, round((time.monotonic() - t0) * 1000, 1)]
def connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return 'connected'
    finally:
        s.close()
def write(path):
    with open(path, 'w') as f:
        f.write('x')
def status():
    keep = ('Uid', 'Gid', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')
    out = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        if k in keep:
            out[k] = v.split()[0] if k in ('Uid', 'Gid') else v.strip()
    return out
def handler(event, context):
    if not event.get('go'):
        return 'ok'
    return {
        'outside': attempt(lambda: connect('1.1.1.1', 53)),
        'private': attempt(lambda: connect('10.0.0.1', 80)),
        'fnbox': attempt(lambda: connect('127.0.0.1', event['port'])),
        'docker_sockets': [os.path.exists(p) for p in ('/var/run/docker.sock', '/run/docker.sock')],
        'markers': [os.path.exists(p) for p in event['markers']],
        'run_fnbox': os.listdir('/run/fnbox'),
        'run_fnbox_write': attempt(lambda: write('/run/fnbox/x')),
        'root_write': attempt(lambda: write('/x')),
        'opt_write': attempt(lambda: write('/opt/fnbox/x')),
        'var_tmp_write': attempt(lambda: write('/var/tmp/x')),
        'bootstrap_write': attempt(lambda: write('/opt/fnbox/bootstrap.py')),
        'status': status(),
        'pid': os.getpid(),
        'processes': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
    }
"#;

/// The network, fnbox's own port, the host's files and the Docker socket, the root filesystem,
/// privileges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockdown_attacks() {
    let s = server().await;
    let port: u64 = s.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in url");
    // Files that exist on the host: one in the test's temp dir, one outside any tmpfs.
    let in_tempdir = s.dir.path().join("marker");
    std::fs::write(&in_tempdir, "host secret").expect("marker");
    let in_var_tmp = std::path::PathBuf::from(format!("/var/tmp/fnbox-hostile-marker-{}", std::process::id()));
    std::fs::write(&in_var_tmp, "host secret").expect("marker");
    let markers = json!([in_tempdir, in_var_tmp, "/etc/docker/daemon.json", s.data_dir()]);
    for rt in RUNTIMES {
        let hello = hello(&s, rt).await;
        let name = format!("lockdown-{rt}");
        prepare(&s, &name, "python", rt, LOCKDOWN_PY, json!({"timeout_ms": 5000})).await;
        let a = attack(&s, &hello, "network, host files, root filesystem", &name, json!({"go": true, "port": port, "markers": markers})).await;
        expect(&a, &name, "success", None);
        expect_within(&a, &name, 3000);
        let o = &a.r["output"];
        eprintln!("[hostile] {rt} lockdown: {o}");

        // No network: refused at once, no packet leaves (no route; loopback has nothing on it).
        for (k, errs) in [("outside", ["ENETUNREACH", "EHOSTUNREACH"]), ("private", ["ENETUNREACH", "EHOSTUNREACH"])] {
            let what = o[k][0].as_str().unwrap_or("");
            assert!(errs.contains(&what), "{rt}: connecting {k} must fail with no route: {o}");
            assert!(o[k][1].as_f64().unwrap_or(f64::MAX) < 100.0, "{rt}: the {k} attempt fails at once: {o}");
        }
        assert_eq!(o["fnbox"][0], json!("ECONNREFUSED"), "{rt}: fnbox's port on 127.0.0.1 is not the host's: {o}");

        // The host's files and the Docker socket are not there.
        assert_eq!(o["docker_sockets"], json!([false, false]), "{rt}: {o}");
        assert_eq!(o["markers"], json!([false, false, false, false]), "{rt}: host files visible: {o}");
        // The channel directory is empty (the socket was unlinked once the bootstrap connected)
        // and read-only; gVisor checks the permission (root-owned directory) before the mount.
        assert_eq!(o["run_fnbox"], json!([]), "{rt}: {o}");
        // The root filesystem is read-only: /var/tmp is world-writable in the image, so only the
        // read-only mount can refuse it. For / and /opt, owned by root, gVisor reports the
        // permission (EACCES) before the mount (EROFS); runc reports the mount.
        assert_eq!(o["var_tmp_write"][0], json!("EROFS"), "{rt}: {o}");
        let ro: &[&str] = if rt == "docker" { &["EROFS"] } else { &["EROFS", "EACCES"] };
        for k in ["run_fnbox_write", "root_write", "opt_write"] {
            assert!(ro.contains(&o[k][0].as_str().unwrap_or("")), "{rt}: {k} must fail: {o}");
        }
        assert!(["EROFS", "EACCES"].contains(&o["bootstrap_write"][0].as_str().unwrap_or("")), "{rt}: {o}");

        // Unprivileged: uid/gid 65534, no capabilities at all, alone in its pid namespace.
        let st = &o["status"];
        assert_eq!(st["Uid"], json!("65534"), "{rt}: {o}");
        assert_eq!(st["Gid"], json!("65534"), "{rt}: {o}");
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            if let Some(v) = st[cap].as_str() {
                assert_eq!(v, "0000000000000000", "{rt}: {cap}: {o}");
            }
        }
        assert_eq!(st["CapEff"], json!("0000000000000000"), "{rt}: {o}");
        if rt == "docker" {
            assert_eq!(st["NoNewPrivs"], json!("1"), "{rt}: {o}");
        }
        assert_eq!(o["pid"], json!(1), "{rt}: the bootstrap is its sandbox's init: {o}");
        assert_eq!(o["processes"], json!([1]), "{rt}: nothing else runs in the sandbox: {o}");
        next_works(&s, &name, Some(false)).await;
    }
    let _ = std::fs::remove_file(&in_var_tmp);
}

// ------------------------------------------------------------------------------------------------

const BACKGROUND_PY: &str = r#"import subprocess, threading, time
def handler(event, context):
    if event.get('go'):
        def later():
            time.sleep(0.3)
            print('LEAK from the last call')
        threading.Thread(target=later).start()
        subprocess.Popen(['sleep', '30'])
        return 'started'
    time.sleep(0.6)
    return 'ok'
"#;
const BACKGROUND_JS: &str = r#"const cp = require('child_process');
exports.handler = async (event) => {
  if (event.go) {
    setInterval(() => console.log('LEAK from the last call'), 50);
    cp.spawn('sleep', ['30'], { stdio: 'ignore' });
    return 'started';
  }
  await new Promise((r) => setTimeout(r, 600));
  return 'ok';
};
"#;
/// A forked child keeps the protocol descriptors: it steals the next call's message and answers
/// it in the bootstrap's place.
const HIJACK_PY: &str = r#"import json, os
def handler(event, context):
    if event.get('go'):
        if os.fork() == 0:
            line = os.read(4, 1 << 20).split(b'\n')[0]
            try:
                mid = json.loads(line)['id']
            except Exception:
                mid = None
            forged = {'type': 'result', 'id': mid, 'status': 'success', 'output': 'HIJACKED', 'logs': '', 'exec_ms': 0}
            os.write(3, (json.dumps(forged) + '\n').encode())
            os._exit(0)
        return 'started'
    return 'ok'
"#;
/// Silences the bootstrap's own report (the function shares its interpreter) and leaves a
/// process behind: only the host's count can see it.
const TAMPER_PY: &str = r#"import subprocess, sys
def handler(event, context):
    if event.get('go'):
        sys.modules['__main__']._leftovers = lambda loop: []
        subprocess.Popen(['sleep', '30'])
        return 'started'
    return 'ok'
"#;

/// Work that outlives its invocation must not reach the next one's results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_work_attacks() {
    let s = server().await;
    for rt in RUNTIMES {
        let hello = hello(&s, rt).await;
        for (lang, code) in [("python", BACKGROUND_PY), ("javascript", BACKGROUND_JS)] {
            let name = format!("background-{lang}-{rt}");
            prepare(&s, &name, lang, rt, code, json!({"timeout_ms": 2000})).await;
            let a = attack(&s, &hello, &format!("background work ({lang})"), &name, json!({"go": true})).await;
            expect(&a, &name, "success", None);
            assert_eq!(a.r["output"], json!("started"), "{}", a.r);
            assert!(a.logs().contains("[fnbox: still running after the call, so its sandbox was discarded:"), "{}", a.r);
            assert!(a.logs().contains("(sleep)"), "the process is named: {}", a.r);
            expect_within(&a, &name, 2000);
            // The next call gets a fresh sandbox and nothing of the last one's work.
            let next = next_works(&s, &name, Some(true)).await;
            assert!(!next["logs"].as_str().unwrap_or("").contains("LEAK"), "{next}");
            let again = next_works(&s, &name, Some(false)).await;
            assert!(!again["logs"].as_str().unwrap_or("").contains("LEAK"), "{again}");
        }

        let name = format!("hijack-{rt}");
        prepare(&s, &name, "python", rt, HIJACK_PY, json!({"timeout_ms": 2000})).await;
        let a = attack(&s, &hello, "forked child hijacking the channel", &name, json!({"go": true})).await;
        expect(&a, &name, "success", None);
        assert!(a.logs().contains("still running after the call"), "{}", a.r);
        expect_within(&a, &name, 2000);
        next_works(&s, &name, Some(true)).await;
        for _ in 0..3 {
            next_works(&s, &name, Some(false)).await;
        }

        // The host's own count exists under runc only (gVisor's cgroup holds its kernel, not the
        // function's processes), so this one runs on runc: under gVisor the bootstrap's report
        // is all there is, and a function that patches it out is not caught.
        if rt == "docker" {
            let name = format!("tamper-{rt}");
            prepare(&s, &name, "python", rt, TAMPER_PY, json!({"timeout_ms": 2000})).await;
            let a = attack(&s, &hello, "leftover process with the report silenced", &name, json!({"go": true})).await;
            expect(&a, &name, "success", None);
            assert!(a.logs().contains("counted in the sandbox's cgroup"), "the host saw it: {}", a.r);
            assert!(!a.logs().contains("(sleep)"), "the bootstrap's report was silenced: {}", a.r);
            next_works(&s, &name, Some(true)).await;
        }
    }
}
