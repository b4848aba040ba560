//! The NATS transport against a real nats-server (JetStream on): heartbeats build each node's
//! view, calls are forwarded and answered, a missing node is `Gone` at once, a slow one is
//! given up, notices reach the other node and not the sender, and a node that leaves drops
//! out of the view at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use fnbox_cluster::{
    Change, Cluster, ForwardError, InvokeRequest, NodeHandler, NodeInfo, NodeRoom, RemoteError, RemoteErrorCode, Target,
    Wanted,
};
use fnbox_cluster_nats::NatsCluster;
use fnbox_core::{Execution, Runtime, Trigger};
use fnbox_testkit::nats::Nats;
use parking_lot::Mutex;
use serde_json::json;
use serde_json::value::RawValue;

struct FakeNode {
    id: String,
    changes: Mutex<Vec<Change>>,
    executions: Mutex<Vec<Execution>>,
}

fn execution(node: &str, output: &str) -> Execution {
    let mut e: Execution = serde_json::from_value(json!({
        "id": uuid::Uuid::now_v7(), "function": "f", "version": 1, "runtime": "docker", "language": "python",
        "input": "{}", "output": null, "status": "success", "error": null, "logs": "", "started_at": Utc::now(),
        "duration_ms": 1.0, "exec_ms": null, "memory_bytes": null, "cold_start": false, "node": node,
    }))
    .expect("execution");
    e.output = Some(fnbox_core::RawJson::parse(output.to_owned()).expect("raw"));
    e
}

#[async_trait]
impl NodeHandler for FakeNode {
    async fn invoke_here(&self, request: InvokeRequest) -> Result<Execution, RemoteError> {
        match request.function.as_str() {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(execution(&self.id, "null"))
            }
            "missing" => Err(RemoteError { code: RemoteErrorCode::FunctionNotFound, message: "missing".into() }),
            _ => Ok(execution(&self.id, request.event.get())),
        }
    }

    async fn changed(&self, change: Change) {
        self.changes.lock().push(change);
    }

    fn remote_execution(&self, execution: Execution) {
        self.executions.lock().push(execution);
    }

    fn heartbeat(&self) -> NodeInfo {
        NodeInfo {
            v: 1,
            id: self.id.clone(),
            api_url: Some(format!("http://{}", self.id)),
            runtimes: vec![Runtime::Docker],
            room: NodeRoom { sandboxes: 0, max_sandboxes: 8, memory_committed_mb: 0, memory_budget_mb: 1024, running: 0 },
            warm: vec![],
            images: vec!["0123456789abcdef01234567".into()],
            started_at: Utc::now(),
            sent_at: Utc::now(),
            software: "test".into(),
        }
    }
}

async fn node(nats: &Nats, id: &str) -> (Arc<NatsCluster>, Arc<FakeNode>) {
    let cluster = Arc::new(NatsCluster::connect(&[nats.url()], id).await.expect("connect"));
    let handler = Arc::new(FakeNode { id: id.into(), changes: Mutex::new(vec![]), executions: Mutex::new(vec![]) });
    cluster.start(handler.clone()).await.expect("start");
    (cluster, handler)
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request(function: &str, event: &str) -> InvokeRequest {
    InvokeRequest {
        v: 1,
        function: function.into(),
        version: 1,
        event: RawValue::from_string(event.into()).expect("raw"),
        trigger: Trigger::Api,
        origin: "a".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_other_forward_calls_and_share_notices() {
    let nats = Nats::start();
    let (a, a_handler) = node(&nats, "a").await;
    let (b, b_handler) = node(&nats, "b").await;
    until("both nodes in a's view", Duration::from_secs(3), || a.view().live().len() == 2).await;
    until("both nodes in b's view", Duration::from_secs(3), || b.view().live().len() == 2).await;

    // Placement over the shared view: both pick the same home for a function.
    let view_a = a.view();
    let view_b = b.view();
    let w = Wanted { function: uuid::Uuid::now_v7(), version: 1, runtime: Runtime::Docker, memory_mb: 128 };
    let home = |me: &str, t: Target| match t {
        Target::Local => me.to_owned(),
        Target::Node(n) => n,
    };
    let from_a = home("a", fnbox_cluster::placement::place("a", &view_a.live(), &w, false, &[]));
    let from_b = home("b", fnbox_cluster::placement::place("b", &view_b.live(), &w, false, &[]));
    assert_eq!(from_a, from_b);

    // A forwarded call runs on b and comes back with b's record, the event's text exact.
    let e = a.forward("b", request("echo", r#"{"n": 12345678901234567890}"#), Duration::from_secs(5)).await.expect("forward");
    assert_eq!(e.node.as_deref(), Some("b"));
    assert_eq!(e.output.as_ref().map(|o| o.get().to_owned()).as_deref(), Some(r#"{"n": 12345678901234567890}"#));
    // Its errors come back as errors.
    match a.forward("b", request("missing", "{}"), Duration::from_secs(5)).await {
        Err(ForwardError::Remote(e)) => assert_eq!(e.code, RemoteErrorCode::FunctionNotFound),
        other => panic!("expected a remote error, got {other:?}"),
    }
    // Nobody is there: known at once, not after a timeout.
    let t0 = Instant::now();
    assert!(matches!(a.forward("nobody", request("echo", "{}"), Duration::from_secs(5)).await, Err(ForwardError::Gone(_))));
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // Too slow: given up at the timeout.
    let t0 = Instant::now();
    assert!(matches!(
        a.forward("b", request("slow", "{}"), Duration::from_millis(400)).await,
        Err(ForwardError::NoAnswer { .. })
    ));
    assert!(t0.elapsed() < Duration::from_secs(2));

    // Notices reach the other node, not the sender.
    a.announce(Change::Function { v: 1, name: "f".into(), id: None });
    a.publish_execution(&execution("a", "1"));
    until("b got the change", Duration::from_secs(2), || b_handler.changes.lock().len() == 1).await;
    until("b got the execution", Duration::from_secs(2), || b_handler.executions.lock().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a_handler.changes.lock().is_empty());
    assert!(a_handler.executions.lock().is_empty());

    // b leaves: out of a's view at once (not after the liveness window).
    b.leave().await;
    until("b gone from a's view", Duration::from_millis(1500), || a.view().live().len() == 1).await;
}
