//! Forwarded calls (request/reply) and the two notice streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use fnbox_cluster::{
    Change, ForwardError, InvokeReply, InvokeRequest, NodeHandler, RemoteError, RemoteErrorCode, PROTOCOL_VERSION,
};
use fnbox_core::Execution;
use futures_util::StreamExt;

use crate::subjects;
use crate::view::View;

/// How often a caller waiting on a forwarded call checks that the node is still alive.
const LIVENESS_CHECK: Duration = Duration::from_millis(250);

pub async fn forward(
    client: &async_nats::Client,
    view: &View,
    node: &str,
    request: InvokeRequest,
    timeout: Duration,
) -> Result<Execution, ForwardError> {
    let body = serde_json::to_vec(&request).map_err(|e| ForwardError::Transport(e.to_string()))?;
    let started = Instant::now();
    let no_answer = || ForwardError::NoAnswer { node: node.to_owned(), waited_ms: started.elapsed().as_millis() as u64 };
    let call = client.send_request(subjects::invoke(node), async_nats::Request::new().payload(body.into()).timeout(Some(timeout)));
    tokio::pin!(call);
    let mut check = tokio::time::interval(LIVENESS_CHECK);
    check.tick().await;
    let reply = loop {
        tokio::select! {
            r = &mut call => break r,
            _ = check.tick() => {
                // Killed nodes send nothing: stop waiting once its heartbeats stop.
                if !view.is_live(node) {
                    return Err(no_answer());
                }
            }
        }
    };
    let message = match reply {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.kind() {
                RequestErrorKind::NoResponders => ForwardError::Gone(node.to_owned()),
                RequestErrorKind::TimedOut => no_answer(),
                _ => ForwardError::Transport(e.to_string()),
            })
        }
    };
    match serde_json::from_slice::<InvokeReply>(&message.payload) {
        Ok(InvokeReply::Ok(e)) => Ok(*e),
        Ok(InvokeReply::Err(e)) => Err(ForwardError::Remote(e)),
        Err(e) => Err(ForwardError::Transport(format!("unreadable reply from `{node}`: {e}"))),
    }
}

/// Takes calls forwarded to this node, each on its own task.
pub async fn serve(client: async_nats::Client, mut calls: async_nats::Subscriber, handler: Arc<dyn NodeHandler>, me: String) {
    while let Some(msg) = calls.next().await {
        let Some(reply_to) = msg.reply.clone() else { continue };
        let client = client.clone();
        let handler = handler.clone();
        let me = me.clone();
        tokio::spawn(async move {
            let reply = match serde_json::from_slice::<InvokeRequest>(&msg.payload) {
                Ok(req) if req.v != PROTOCOL_VERSION => InvokeReply::Err(RemoteError {
                    code: RemoteErrorCode::Version,
                    message: format!("node speaks cluster protocol {PROTOCOL_VERSION}, the request is {}", req.v),
                }),
                Ok(req) => match handler.invoke_here(req).await {
                    Ok(e) => InvokeReply::Ok(Box::new(e)),
                    Err(e) => InvokeReply::Err(e),
                },
                Err(e) => InvokeReply::Err(RemoteError { code: RemoteErrorCode::BadRequest, message: e.to_string() }),
            };
            let mut body = serde_json::to_vec(&reply).unwrap_or_default();
            let max = client.server_info().max_payload;
            if body.len() + 1024 > max {
                // The call ran and is recorded here; only its answer cannot travel back.
                let err = InvokeReply::Err(RemoteError {
                    code: RemoteErrorCode::Unavailable,
                    message: format!(
                        "the call ran on node `{me}` but its answer ({} bytes) exceeds the NATS max_payload ({max}); see GET /api/v1/executions",
                        body.len()
                    ),
                });
                body = serde_json::to_vec(&err).unwrap_or_default();
            }
            if let Err(e) = client.publish(reply_to, body.into()).await {
                tracing::warn!(error = %e, "cluster: could not answer a forwarded call");
            }
        });
    }
    tracing::warn!("cluster: no longer taking forwarded calls (subscription ended)");
}

fn from_me(msg: &async_nats::Message, me: &str) -> bool {
    msg.headers.as_ref().and_then(|h| h.get(subjects::ORIGIN_HEADER)).is_some_and(|v| v.as_str() == me)
}

pub async fn serve_changes(mut changes: async_nats::Subscriber, handler: Arc<dyn NodeHandler>, me: String) {
    while let Some(msg) = changes.next().await {
        if from_me(&msg, &me) {
            continue;
        }
        match serde_json::from_slice::<Change>(&msg.payload) {
            Ok(change) => handler.changed(change).await,
            Err(e) => tracing::debug!(error = %e, "cluster: unreadable change notice ignored"),
        }
    }
}

pub async fn serve_executions(mut executions: async_nats::Subscriber, handler: Arc<dyn NodeHandler>, me: String) {
    while let Some(msg) = executions.next().await {
        if from_me(&msg, &me) {
            continue;
        }
        if let Ok(e) = serde_json::from_slice::<Execution>(&msg.payload) {
            handler.remote_execution(e);
        }
    }
}
