//! fnbox's cluster transport over NATS (the only crate that knows NATS):
//! - heartbeats: each node puts its [`NodeInfo`] every second in a JetStream KV bucket
//!   ([`subjects::NODES_BUCKET`], values expire) and watches the bucket to build its
//!   [`view::View`];
//! - forwarded calls: request/reply on [`subjects::invoke`] (no responders = the node is gone);
//! - change notices and the live execution stream: plain publish/subscribe.
//!
//! Message formats and failure modes: docs/CLUSTER.md.

mod heartbeat;
mod rpc;
pub mod subjects;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_trait::async_trait;
use fnbox_cluster::{
    valid_node_id, Change, Cluster, ForwardError, InvokeRequest, NodeHandler, NodeInfo, NodeView,
};
use fnbox_core::Execution;
use tokio::sync::mpsc;

/// The server's `max_payload` fnbox needs: a forwarded reply carries an output of up to 6 MiB
/// (plus the record around it). NATS's default is 1 MiB.
pub const NEEDED_MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Executions waiting to be published to the other nodes' live views. The stream is a view,
/// not a record (the store has every execution): past this, events are dropped, not queued.
const EXECUTION_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum NatsClusterError {
    #[error("{0}")]
    NodeId(String),
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("JetStream key-value bucket `{bucket}`: {reason} (is JetStream enabled on the NATS servers?)")]
    Bucket { bucket: String, reason: String },
}

pub struct NatsCluster {
    me: String,
    client: async_nats::Client,
    kv: jetstream::kv::Store,
    view: Arc<view::View>,
    executions: mpsc::Sender<bytes::Bytes>,
    executions_rx: parking_lot::Mutex<Option<mpsc::Receiver<bytes::Bytes>>>,
}

impl NatsCluster {
    /// Connects to the NATS servers (`nats://host:port`, several for failover) as node `me`
    /// and opens (creating if needed) the heartbeat bucket, replicated on up to 3 servers.
    pub async fn connect(servers: &[String], me: &str) -> Result<NatsCluster, NatsClusterError> {
        valid_node_id(me).map_err(NatsClusterError::NodeId)?;
        let connect_err = |reason: String| NatsClusterError::Connect { servers: servers.join(","), reason };
        let addrs: Vec<async_nats::ServerAddr> = servers
            .iter()
            .map(|s| s.parse::<async_nats::ServerAddr>().map_err(|e| connect_err(format!("`{s}`: {e}"))))
            .collect::<Result<_, _>>()?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("fnbox-{me}"))
            // Our own notices and executions are not delivered back to us.
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .ping_interval(Duration::from_secs(5))
            // Each request passes its own timeout.
            .request_timeout(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("cluster: connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!("cluster: disconnected from NATS; reconnecting"),
                    other => tracing::info!(event = %other, "cluster: NATS event"),
                }
            })
            .connect(addrs)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let max_payload = client.server_info().max_payload;
        if max_payload < NEEDED_MAX_PAYLOAD {
            tracing::warn!(
                max_payload,
                needed = NEEDED_MAX_PAYLOAD,
                "NATS max_payload is below what large inputs and outputs need: calls with them fail when forwarded"
            );
        }
        let js = jetstream::new(client.clone());
        let replicas = servers.len().clamp(1, 3);
        let kv = heartbeat::open_bucket(&js, replicas).await?;
        let (tx, rx) = mpsc::channel(EXECUTION_QUEUE);
        Ok(NatsCluster {
            me: me.to_owned(),
            client,
            kv,
            view: Arc::new(view::View::new(me)),
            executions: tx,
            executions_rx: parking_lot::Mutex::new(Some(rx)),
        })
    }

    fn origin_headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(subjects::ORIGIN_HEADER, self.me.as_str());
        h
    }
}

#[async_trait]
impl Cluster for NatsCluster {
    fn node_id(&self) -> &str {
        &self.me
    }

    fn view(&self) -> Arc<dyn NodeView> {
        self.view.clone()
    }

    fn nodes(&self) -> Vec<(NodeInfo, Duration)> {
        self.view.all()
    }

    async fn forward(&self, node: &str, request: InvokeRequest, timeout: Duration) -> Result<fnbox_core::Execution, ForwardError> {
        rpc::forward(&self.client, &self.view, node, request, timeout).await
    }

    fn announce(&self, change: Change) {
        let Ok(body) = serde_json::to_vec(&change) else { return };
        let client = self.client.clone();
        let headers = self.origin_headers();
        tokio::spawn(async move {
            if let Err(e) = client.publish_with_headers(subjects::CHANGES, headers, body.into()).await {
                tracing::warn!(error = %e, "cluster: could not announce a change (nodes re-read within seconds)");
            }
        });
    }

    fn publish_execution(&self, execution: &Execution) {
        if let Ok(body) = serde_json::to_vec(execution) {
            // Full queue: the other nodes' live views miss this one event (see EXECUTION_QUEUE).
            let _ = self.executions.try_send(body.into());
        }
    }

    async fn start(&self, handler: Arc<dyn NodeHandler>) -> Result<(), ForwardError> {
        let transport = |e: async_nats::SubscribeError| ForwardError::Transport(e.to_string());
        // Our own heartbeat is in the view at once (routing must always see this node).
        self.view.heard(handler.heartbeat());
        heartbeat::spawn(self.kv.clone(), self.view.clone(), handler.clone(), self.me.clone());
        let calls = self.client.subscribe(subjects::invoke(&self.me)).await.map_err(transport)?;
        tokio::spawn(rpc::serve(self.client.clone(), calls, handler.clone(), self.me.clone()));
        let changes = self.client.subscribe(subjects::CHANGES).await.map_err(transport)?;
        tokio::spawn(rpc::serve_changes(changes, handler.clone(), self.me.clone()));
        let executions = self.client.subscribe(subjects::EXECUTIONS).await.map_err(transport)?;
        tokio::spawn(rpc::serve_executions(executions, handler, self.me.clone()));
        if let Some(mut rx) = self.executions_rx.lock().take() {
            let client = self.client.clone();
            let headers = self.origin_headers();
            tokio::spawn(async move {
                while let Some(body) = rx.recv().await {
                    let _ = client.publish_with_headers(subjects::EXECUTIONS, headers.clone(), body).await;
                }
            });
        }
        self.client.flush().await.map_err(|e| ForwardError::Transport(e.to_string()))?;
        tracing::info!(node = %self.me, "cluster: joined");
        Ok(())
    }

    async fn leave(&self) {
        if let Err(e) = self.kv.purge(&self.me).await {
            tracing::warn!(error = %e, "cluster: could not remove this node's heartbeat; others drop it within seconds");
        }
        let _ = self.client.flush().await;
    }
}
