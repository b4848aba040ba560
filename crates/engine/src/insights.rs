//! What the records say: aggregates, time series, error groups, and side-by-side runs of a
//! function on Docker and on gVisor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use fnbox_core::metrics::{self, Bucket, Distribution, GroupBy, MetricsFilter, Summary};
use fnbox_core::{Execution, ExecutionStatus, Function, Runtime, Trigger, ValidationErrors};
use fnbox_sandbox::Pools;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{Engine, EngineError};

/// The most error groups `GET /api/v1/errors` answers with (the most frequent first): each is
/// at most about a kilobyte, so the answer stays well under a megabyte.
pub const MAX_ERROR_GROUPS: usize = 500;

/// Failures that share a function, an error type and a message (its first kilobyte).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorGroup {
    pub function: String,
    pub error_type: String,
    pub message: String,
    pub count: usize,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub example_execution_id: Uuid,
}

/// One runtime's side of a comparison.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ComparisonSide {
    pub runtime: Runtime,
    pub cold_start_ms: f64,
    pub warm_p50_ms: Option<f64>,
    pub warm_p99_ms: Option<f64>,
    pub warm_mean_ms: Option<f64>,
    pub exec_p50_ms: Option<f64>,
    pub memory_p50_bytes: Option<f64>,
    pub memory_max_bytes: Option<f64>,
    pub success_rate: f64,
    pub invocations: usize,
    pub warm_durations_ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comparison {
    pub id: Uuid,
    pub function: String,
    pub created_at: DateTime<Utc>,
    pub iterations: u32,
    pub concurrency: u32,
    pub input: serde_json::Value,
    pub docker: ComparisonSide,
    pub gvisor: ComparisonSide,
    /// gVisor figure divided by Docker's, per figure.
    pub ratios: BTreeMap<String, Option<f64>>,
}

const MAX_BUCKETS: i64 = 10_000;

/// Retires the pools of a comparison's copies when dropped, so their sandboxes go whether the
/// comparison finished, failed or panicked. Calls still running give their sandbox back to a
/// retired pool, which destroys it.
struct RetireOnDrop {
    pools: Pools,
    ids: Vec<Uuid>,
}

impl Drop for RetireOnDrop {
    fn drop(&mut self) {
        for id in &self.ids {
            // For good: a call of a copy still waiting is refused, none starts a sandbox.
            self.pools.retire(*id, u32::MAX);
        }
    }
}

impl Engine {
    pub async fn summary(&self, filter: &MetricsFilter, group_by: GroupBy) -> Result<Vec<Summary>, EngineError> {
        let samples = self.store().samples(filter).await?;
        Ok(metrics::summarize_by(&samples, group_by))
    }

    pub async fn timeseries(&self, filter: &MetricsFilter, bucket_ms: i64) -> Result<Vec<Bucket>, EngineError> {
        if let Some(since) = filter.since {
            let span = Utc::now().timestamp_millis() - since.timestamp_millis();
            if span / bucket_ms.max(1) > MAX_BUCKETS {
                return Err(EngineError::Invalid(ValidationErrors::single(
                    "bucket",
                    format!("would make more than {MAX_BUCKETS} buckets; use a larger bucket or a later `since`"),
                )));
            }
        }
        let samples = self.store().samples(filter).await?;
        let buckets = metrics::timeseries(&samples, bucket_ms);
        if buckets.len() as i64 > MAX_BUCKETS {
            return Err(EngineError::Invalid(ValidationErrors::single(
                "bucket",
                format!("would make more than {MAX_BUCKETS} buckets; use a larger bucket or set `since`"),
            )));
        }
        Ok(buckets)
    }

    pub async fn errors(&self, filter: &MetricsFilter) -> Result<Vec<ErrorGroup>, EngineError> {
        let failures = self.store().failures(filter).await?;
        let mut groups: BTreeMap<(String, String, String), ErrorGroup> = BTreeMap::new();
        for f in failures {
            let (kind, message) = f.error.map(|e| (e.kind, e.message)).unwrap_or_else(|| ("Unknown".into(), String::new()));
            let g = groups.entry((f.function.clone(), kind.clone(), message.clone())).or_insert_with(|| ErrorGroup {
                function: f.function.clone(),
                error_type: kind,
                message,
                count: 0,
                first_seen: f.started_at,
                last_seen: f.started_at,
                example_execution_id: f.id,
            });
            g.count += 1;
            g.first_seen = g.first_seen.min(f.started_at);
            if f.started_at >= g.last_seen {
                g.last_seen = f.started_at;
                g.example_execution_id = f.id;
            }
        }
        let mut out: Vec<ErrorGroup> = groups.into_values().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
        out.truncate(MAX_ERROR_GROUPS);
        Ok(out)
    }

    pub async fn comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, EngineError> {
        Ok(self.store().list_comparisons(limit).await?)
    }

    pub async fn comparison(&self, id: Uuid) -> Result<serde_json::Value, EngineError> {
        self.store().get_comparison(id).await?.ok_or_else(|| EngineError::ComparisonNotFound(id.to_string()))
    }

    /// Runs `name`'s code on both runtimes: one cold start each, then `iterations` warm calls
    /// with `concurrency` callers, and stores the result.
    ///
    /// Each side runs on a private copy of the function (its own id, so its own pool: nothing
    /// is warm yet, and its sandboxes never serve the function itself). A copy is never stored
    /// nor put in the function list: it cannot be listed, invoked, changed or left behind by a
    /// crash. Its runs are recorded under the function's name with trigger `compare`, which the
    /// default views leave out. The work runs on its own task, so a client that disconnects
    /// cannot stop it half-way: it finishes, is stored, and its sandboxes are removed.
    pub async fn compare(
        &self,
        name: &str,
        input: Box<RawValue>,
        iterations: u32,
        concurrency: u32,
    ) -> Result<Comparison, EngineError> {
        let f = self.runnable_of(self.get_function(name)?)?;
        let mut errs = Vec::new();
        if !(1..=1000).contains(&iterations) {
            errs.push(("iterations", "must be between 1 and 1000"));
        }
        if !(1..=16).contains(&concurrency) {
            errs.push(("concurrency", "must be between 1 and 16"));
        }
        if let Some((field, msg)) = errs.first() {
            return Err(EngineError::Invalid(ValidationErrors::single(field, *msg)));
        }
        let limit = self.limits().max_input_bytes;
        if input.get().len() > limit {
            return Err(EngineError::InputTooLarge { size: input.get().len(), limit });
        }
        let this = self.clone();
        tokio::spawn(async move { this.run_comparison(f, input, iterations, concurrency).await })
            .await
            .map_err(|e| EngineError::Unavailable(format!("comparison task failed: {e}")))?
    }

    async fn run_comparison(
        &self,
        f: Arc<Function>,
        input: Box<RawValue>,
        iterations: u32,
        concurrency: u32,
    ) -> Result<Comparison, EngineError> {
        let id = Uuid::now_v7();
        let copies: Vec<Arc<Function>> = Runtime::ALL
            .into_iter()
            .map(|runtime| {
                Arc::new(Function {
                    id: Uuid::now_v7(),
                    runtime,
                    concurrency,
                    description: format!("comparison {id}: `{}` on {runtime}", f.name),
                    ..(*f).clone()
                })
            })
            .collect();
        // Removes the copies' sandboxes however this ends: success, error or panic.
        let _cleanup = RetireOnDrop { pools: self.pools().clone(), ids: copies.iter().map(|c| c.id).collect() };
        let mut sides = Vec::new();
        for copy in &copies {
            sides.push(self.run_side(copy, &input, iterations, concurrency).await?);
        }
        let (docker, gvisor) = (sides.remove(0), sides.remove(0));        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(d), Some(g)) if d > 0.0 => Some(g / d),
            _ => None,
        };
        let ratios = BTreeMap::from([
            ("cold_start_ms".to_string(), ratio(Some(docker.cold_start_ms), Some(gvisor.cold_start_ms))),
            ("warm_p50_ms".to_string(), ratio(docker.warm_p50_ms, gvisor.warm_p50_ms)),
            ("warm_p99_ms".to_string(), ratio(docker.warm_p99_ms, gvisor.warm_p99_ms)),
            ("exec_p50_ms".to_string(), ratio(docker.exec_p50_ms, gvisor.exec_p50_ms)),
            ("memory_p50_bytes".to_string(), ratio(docker.memory_p50_bytes, gvisor.memory_p50_bytes)),
            ("memory_max_bytes".to_string(), ratio(docker.memory_max_bytes, gvisor.memory_max_bytes)),
            ("success_rate".to_string(), ratio(Some(docker.success_rate), Some(gvisor.success_rate))),
        ]);
        let comparison = Comparison {
            id,
            function: f.name.clone(),
            created_at: Utc::now(),
            iterations,
            concurrency,
            input: serde_json::from_str(input.get()).unwrap_or(serde_json::Value::Null),
            docker,
            gvisor,
            ratios,
        };
        let body = serde_json::to_value(&comparison).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        self.store().insert_comparison(id, &f.name, &body).await?;
        Ok(comparison)
    }

    async fn run_side(
        &self,
        copy: &Arc<Function>,
        input: &RawValue,
        iterations: u32,
        concurrency: u32,
    ) -> Result<ComparisonSide, EngineError> {
        let runtime = copy.runtime;
        let t0 = Instant::now();
        let cold = self.invoke_as(copy.clone(), input.to_owned(), Trigger::Compare).await?;
        let cold_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let warm: Vec<Result<Execution, EngineError>> = futures_util::stream::iter(0..iterations)
            .map(|_| self.invoke_as(copy.clone(), input.to_owned(), Trigger::Compare))
            .buffer_unordered(concurrency as usize)
            .collect()
            .await;
        let warm: Vec<Execution> = warm.into_iter().collect::<Result<_, _>>()?;
        let all: Vec<&Execution> = std::iter::once(&cold).chain(warm.iter()).collect();
        let warm_ms: Vec<f64> = warm.iter().filter(|e| !e.cold_start).map(|e| e.duration_ms).collect();
        let d = Distribution::of(warm_ms.clone());
        let exec = Distribution::of(all.iter().filter_map(|e| e.exec_ms).collect());
        let mem = Distribution::of(all.iter().filter_map(|e| e.memory_bytes.map(|m| m as f64)).collect());
        let ok = all.iter().filter(|e| e.status == ExecutionStatus::Success).count();
        Ok(ComparisonSide {
            runtime,
            cold_start_ms: cold_ms,
            warm_p50_ms: d.p50,
            warm_p99_ms: d.p99,
            warm_mean_ms: d.mean,
            exec_p50_ms: exec.p50,
            memory_p50_bytes: mem.p50,
            memory_max_bytes: mem.max,
            success_rate: ok as f64 / all.len() as f64,
            invocations: all.len(),
            warm_durations_ms: warm_ms,
        })
    }

    /// Prunes old execution records; see `Store::prune_executions`.
    pub async fn prune(&self, max_age: Option<chrono::Duration>, keep_max: Option<u64>) -> Result<u64, EngineError> {
        let before = max_age.map(|age| Utc::now() - age);
        Ok(self.store().prune_executions(before, keep_max).await?)
    }
}

