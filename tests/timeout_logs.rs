//! Issue 16 item 6: a call that prints, then runs into its timeout (or is killed for memory)
//! keeps what it printed, in both languages, on runc and on gVisor. The bootstrap sends each
//! write as it is made; the host keeps it (bounded by the log limit) even though no answer came.

mod common;

use common::TestServer;
use serde_json::json;

const PY_SPIN: &str = "def handler(event, context):\n    print('before the loop', flush=True)\n    while True:\n        pass\n";
const JS_SPIN: &str = "exports.handler = () => {\n  console.log('before the loop');\n  for (;;) {}\n};\n";
/// Prints a lot, then spins: the kept logs stop at the limit, marked.
const PY_FLOOD: &str = "def handler(event, context):\n    for i in range(100000):\n        print('line', i)\n    while True:\n        pass\n";
const PY_OOM: &str = "def handler(event, context):\n    print('before the allocation')\n    x = []\n    while True:\n        x.append(bytearray(8 << 20))\n";
const JS_OOM: &str = "exports.handler = () => {\n  console.log('before the allocation');\n  const x = [];\n  for (;;) x.push(Buffer.alloc(8 << 20, 1));\n};\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_call_printed_before_its_timeout_or_oom_is_kept() {
    let s = TestServer::start(&["--prewarm", "0"]).await;
    s.require_runtimes().await;
    for rt in ["docker", "gvisor"] {
        for (lang, code) in [("python", PY_SPIN), ("javascript", JS_SPIN)] {
            let name = format!("spin-{lang}-{rt}");
            s.create(&name, lang, rt, code, json!({"timeout_ms": 1000})).await;
            // Twice: a cold call (load and call) and one in a fresh sandbox after the kill.
            for _ in 0..2 {
                let r = s.invoke(&name, &json!({})).await;
                assert_eq!(r["status"], "timeout", "{name}: {r}");
                assert_eq!(r["logs"], "before the loop\n", "{name}: {r}");
                let (_, rec) = s.get(&format!("/api/v1/executions/{}", r["execution_id"].as_str().unwrap_or(""))).await;
                assert_eq!(rec["logs"], "before the loop\n", "the record too: {rec}");
            }
        }
        for (lang, code) in [("python", PY_OOM), ("javascript", JS_OOM)] {
            let name = format!("oom-{lang}-{rt}");
            s.create(&name, lang, rt, code, json!({"timeout_ms": 10000, "memory_mb": 64})).await;
            let r = s.invoke(&name, &json!({})).await;
            assert!(["oom", "error"].contains(&r["status"].as_str().unwrap_or("")), "{name}: {r}");
            assert!(r["logs"].as_str().unwrap_or("").starts_with("before the allocation\n"), "{name}: {r}");
        }
    }
    s.create("flood", "python", "docker", PY_FLOOD, json!({"timeout_ms": 3000})).await;
    let r = s.invoke("flood", &json!({})).await;
    assert_eq!(r["status"], "timeout", "{r}");
    let logs = r["logs"].as_str().unwrap_or("");
    assert!(logs.starts_with("line 0\nline 1\n") && logs.ends_with("\n[fnbox: logs truncated]"), "{}", &logs[logs.len().saturating_sub(200)..]);
    assert!(logs.len() <= 256 * 1024 + 64, "bounded by the log limit: {} bytes", logs.len());
}
