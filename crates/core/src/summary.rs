//! Views of executions without their payloads (input, output, logs, stack): what lists show,
//! at a fraction of the bytes of full records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Execution, ExecutionStatus, Language, Runtime, Trigger};

/// A function's most recent execution (comparison runs left out), as the list of functions
/// gives it beside each function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastExecution {
    pub id: Uuid,
    pub status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub trigger: Trigger,
}

impl From<&Execution> for LastExecution {
    fn from(e: &Execution) -> Self {
        LastExecution { id: e.id, status: e.status, started_at: e.started_at, duration_ms: e.duration_ms, trigger: e.trigger }
    }
}

/// An error without its stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorSummary {
    #[serde(rename = "type")]
    #[schema(max_length = 300)]
    pub kind: String,
    #[schema(max_length = 16430)]
    pub message: String,
}

/// An execution record without its input, output, logs and error stack
/// (`GET /api/v1/executions?view=summary`); the full record is at `GET /api/v1/executions/{id}`.
/// No other members (`additionalProperties: false`), so a client, and the schema's `oneOf`,
/// tell it from a full record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionSummary {
    pub id: Uuid,
    pub function: String,
    pub version: u32,
    pub runtime: Runtime,
    pub language: Language,
    pub status: ExecutionStatus,
    pub error: Option<ErrorSummary>,
    /// Whether the recorded output was too large to keep (as in the full record).
    pub output_truncated: bool,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub exec_ms: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub cold_start: bool,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub attempt: u32,
    pub request_id: Option<Uuid>,
}

impl From<&Execution> for ExecutionSummary {
    fn from(e: &Execution) -> Self {
        ExecutionSummary {
            id: e.id,
            function: e.function.clone(),
            version: e.version,
            runtime: e.runtime,
            language: e.language,
            status: e.status,
            error: e.error.as_ref().map(|x| ErrorSummary { kind: x.kind.clone(), message: x.message.clone() }),
            output_truncated: e.output_truncated,
            started_at: e.started_at,
            duration_ms: e.duration_ms,
            exec_ms: e.exec_ms,
            memory_bytes: e.memory_bytes,
            cold_start: e.cold_start,
            trigger: e.trigger,
            node: e.node.clone(),
            attempt: e.attempt,
            request_id: e.request_id,
        }
    }
}
