//! Heartbeats: put this node's state every [`HEARTBEAT`], watch everyone's.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv::Operation;
use fnbox_cluster::{NodeHandler, NodeInfo};
use futures_util::StreamExt;

use crate::subjects::NODES_BUCKET;
use crate::view::View;
use crate::NatsClusterError;

pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Heartbeats expire from the bucket after this (a node killed without leaving disappears
/// from a new node's first read). Routing does not wait for it: see `fnbox_cluster::LIVE_WINDOW`.
const BUCKET_TTL: Duration = Duration::from_secs(10);

/// Attempts at opening the bucket, each bounded by [`OPEN_ATTEMPT`]: nodes starting together
/// race to create it, and a JetStream request caught in that race was seen never to answer.
const OPEN_ATTEMPTS: u32 = 6;
const OPEN_ATTEMPT: Duration = Duration::from_secs(5);

pub async fn open_bucket(js: &jetstream::Context, replicas: usize) -> Result<jetstream::kv::Store, NatsClusterError> {
    let mut last = String::new();
    for attempt in 1..=OPEN_ATTEMPTS {
        match tokio::time::timeout(OPEN_ATTEMPT, open_bucket_once(js, replicas)).await {
            Ok(Ok(kv)) => return Ok(kv),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {} s", OPEN_ATTEMPT.as_secs()),
        }
        tracing::warn!(attempt, reason = %last, "cluster: heartbeat bucket not open yet; retrying");
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    Err(NatsClusterError::Bucket { bucket: NODES_BUCKET.into(), reason: last })
}

async fn open_bucket_once(js: &jetstream::Context, replicas: usize) -> Result<jetstream::kv::Store, NatsClusterError> {
    let err = |reason: String| NatsClusterError::Bucket { bucket: NODES_BUCKET.into(), reason };
    if let Ok(kv) = js.get_key_value(NODES_BUCKET).await {
        return Ok(kv);
    }
    // `create_key_value` first reads the account info, whose reply from nats-server 2.9 this
    // client cannot parse; the bucket is a stream with KV's conventions, so create that.
    let config = jetstream::stream::Config {
        name: format!("KV_{NODES_BUCKET}"),
        description: Some("fnbox node heartbeats".into()),
        subjects: vec![format!("$KV.{NODES_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_age: BUCKET_TTL,
        // Must not exceed max_age (the server refuses a longer one).
        duplicate_window: BUCKET_TTL,
        max_message_size: 1024 * 1024,
        // Heartbeats are worthless after a few seconds: no need to write them to disk.
        storage: jetstream::stream::StorageType::Memory,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    if let Err(create) = js.get_or_create_stream(config).await {
        // Another node may have created it at the same moment.
        return js.get_key_value(NODES_BUCKET).await.map_err(|_| err(create.to_string()));
    }
    js.get_key_value(NODES_BUCKET).await.map_err(|e| err(e.to_string()))
}

pub fn spawn(kv: jetstream::kv::Store, view: Arc<View>, handler: Arc<dyn NodeHandler>, me: String) {
    let put_kv = kv.clone();
    let put_view = view.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let info = handler.heartbeat();
            put_view.heard(info.clone());
            let Ok(body) = serde_json::to_vec(&info) else { continue };
            if let Err(e) = put_kv.put(&me, body.into()).await {
                tracing::warn!(error = %e, "cluster: heartbeat not sent");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            match kv.watch_all().await {
                Ok(mut watch) => {
                    while let Some(entry) = watch.next().await {
                        match entry {
                            Ok(e) if e.operation == Operation::Put => match serde_json::from_slice::<NodeInfo>(&e.value) {
                                Ok(info) if info.id == e.key => view.heard(info),
                                Ok(_) => tracing::warn!(key = %e.key, "cluster: heartbeat under another node's key ignored"),
                                Err(err) => tracing::debug!(key = %e.key, error = %err, "cluster: unreadable heartbeat ignored"),
                            },
                            Ok(e) => view.left(&e.key),
                            Err(err) => {
                                tracing::warn!(error = %err, "cluster: heartbeat watch failed; watching again");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster: cannot watch heartbeats; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}
