//! What the records say: aggregates, time series, error groups, and side-by-side runs of a
//! function on Docker and on gVisor.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use fnbox_core::metrics::{self, Bucket, Distribution, MetricsFilter, Summary};
use fnbox_core::{Execution, ExecutionStatus, FunctionSpec, Runtime, ValidationErrors};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{Engine, EngineError};

/// Failures that share a function, an error type and a message.
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

impl Engine {
    pub async fn summary(&self, filter: &MetricsFilter) -> Result<Vec<Summary>, EngineError> {
        let samples = self.store().samples(filter).await?;
        Ok(metrics::summarize(&samples))
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
        Ok(out)
    }

    pub async fn comparisons(&self, limit: u32) -> Result<Vec<serde_json::Value>, EngineError> {
        Ok(self.store().list_comparisons(limit).await?)
    }

    pub async fn comparison(&self, id: Uuid) -> Result<serde_json::Value, EngineError> {
        self.store().get_comparison(id).await?.ok_or_else(|| EngineError::ComparisonNotFound(id.to_string()))
    }

    /// Runs `name`'s code on both runtimes: one cold start each (in a fresh temporary
    /// sibling, so nothing is warm yet), then `iterations` warm calls with `concurrency`
    /// callers. The siblings are deleted afterwards, whatever happened.
    pub async fn compare(
        &self,
        name: &str,
        input: Box<RawValue>,
        iterations: u32,
        concurrency: u32,
    ) -> Result<Comparison, EngineError> {
        let f = self.get_function(name)?;
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
        let id = Uuid::now_v7();
        let tag = &id.simple().to_string()[20..];
        let mut sides = Vec::new();
        for runtime in Runtime::ALL {
            let sibling = format!("cmp-{tag}-{runtime}");
            let spec = FunctionSpec {
                name: sibling.clone(),
                language: f.language,
                runtime,
                code: f.code.clone(),
                description: format!("temporary: comparing `{}` on {runtime}", f.name),
                timeout_ms: Some(f.timeout_ms),
                memory_mb: Some(f.memory_mb),
                concurrency: Some(concurrency),
                env: f.env.clone(),
                sample_input: None,
            };
            self.create_function_unchecked(spec).await?;
            let result = self.run_side(&sibling, runtime, &input, iterations, concurrency).await;
            if let Err(e) = self.delete_function(&sibling).await {
                tracing::warn!(function = %sibling, error = %e, "could not remove a comparison sibling");
            }
            sides.push(result?);
        }
        let (docker, gvisor) = (sides.remove(0), sides.remove(0));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
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
        name: &str,
        runtime: Runtime,
        input: &RawValue,
        iterations: u32,
        concurrency: u32,
    ) -> Result<ComparisonSide, EngineError> {
        let t0 = Instant::now();
        let cold = self.invoke(name, input.to_owned()).await?;
        let cold_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let warm: Vec<Result<Execution, EngineError>> = futures_util::stream::iter(0..iterations)
            .map(|_| self.invoke(name, input.to_owned()))
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

