//! Aggregates over recorded executions. Percentiles use the nearest-rank method over the
//! exact recorded values: p = the smallest value with at least p% of samples at or below it.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::execution::TriggerFilter;
use crate::{ExecutionStatus, Language, Runtime};

/// The numbers of one execution, without its payloads: what aggregates are made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub function: String,
    pub runtime: Runtime,
    pub language: Language,
    pub status: ExecutionStatus,
    pub error_type: Option<String>,
    pub started_ms: i64,
    pub duration_ms: f64,
    pub exec_ms: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub cold_start: bool,
}

/// Which executions an aggregate covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsFilter {
    pub function: Option<String>,
    pub runtime: Option<Runtime>,
    pub language: Option<Language>,
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub trigger: TriggerFilter,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Distribution {
    pub count: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub mean: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    pub fn of(mut values: Vec<f64>) -> Distribution {
        values.retain(|v| v.is_finite());
        values.sort_by(|a, b| a.total_cmp(b));
        let count = values.len();
        Distribution {
            count,
            p50: percentile(&values, 50.0),
            p90: percentile(&values, 90.0),
            p99: percentile(&values, 99.0),
            mean: (count > 0).then(|| values.iter().sum::<f64>() / count as f64),
            max: values.last().copied(),
        }
    }
}

/// What one summary row aggregates over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per (function, runtime): the default.
    #[default]
    FunctionRuntime,
    /// One row per runtime over every matching execution: the exact figures a dashboard heads
    /// with (an average of per-function medians is not the median of all runs).
    Runtime,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "function" => Ok(GroupBy::FunctionRuntime),
            "runtime" => Ok(GroupBy::Runtime),
            other => Err(format!("unknown grouping `{other}` (expected function or runtime)")),
        }
    }
}

/// Aggregates of one (function, runtime), or of one runtime (`group_by=runtime`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// The function; omitted when rows are per runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    pub runtime: Runtime,
    /// The language of every execution in the row; omitted when they mix languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    pub invocations: usize,
    pub successes: usize,
    pub success_rate: f64,
    pub by_status: BTreeMap<String, usize>,
    pub by_error_type: BTreeMap<String, usize>,
    pub duration_ms: Distribution,
    pub exec_ms: Distribution,
    pub memory_bytes: Distribution,
    pub cold_starts: usize,
    pub cold_duration_ms: Distribution,
    pub warm_duration_ms: Distribution,
}

pub fn summarize(samples: &[Sample]) -> Vec<Summary> {
    summarize_by(samples, GroupBy::FunctionRuntime)
}

pub fn summarize_by(samples: &[Sample], group_by: GroupBy) -> Vec<Summary> {
    let mut groups: BTreeMap<(Option<&str>, Runtime), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        let function = (group_by == GroupBy::FunctionRuntime).then_some(s.function.as_str());
        groups.entry((function, s.runtime)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|((function, runtime), g)| {
            let function = function.map(str::to_owned);
            let language = Some(g[0].language).filter(|l| g.iter().all(|s| s.language == *l));
            let successes = g.iter().filter(|s| s.status == ExecutionStatus::Success).count();
            let mut by_status = BTreeMap::new();
            let mut by_error_type = BTreeMap::new();
            for s in &g {
                *by_status.entry(s.status.to_string()).or_insert(0) += 1;
                if let Some(t) = &s.error_type {
                    *by_error_type.entry(t.clone()).or_insert(0) += 1;
                }
            }
            let durations = |pred: &dyn Fn(&Sample) -> bool| -> Vec<f64> {
                g.iter().filter(|s| pred(s)).map(|s| s.duration_ms).collect()
            };
            Summary {
                language,
                invocations: g.len(),
                successes,
                success_rate: successes as f64 / g.len() as f64,
                by_status,
                by_error_type,
                duration_ms: Distribution::of(durations(&|_| true)),
                exec_ms: Distribution::of(g.iter().filter_map(|s| s.exec_ms).collect()),
                memory_bytes: Distribution::of(g.iter().filter_map(|s| s.memory_bytes.map(|m| m as f64)).collect()),
                cold_starts: g.iter().filter(|s| s.cold_start).count(),
                cold_duration_ms: Distribution::of(durations(&|s| s.cold_start)),
                warm_duration_ms: Distribution::of(durations(&|s| !s.cold_start)),
                function,
                runtime,
            }
        })
        .collect()
}

/// One time bucket of one runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub runtime: Runtime,
    pub count: usize,
    pub errors: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    /// The most of this bucket's executions that were running at the same moment (each from
    /// its start for its duration; calls begun in an earlier bucket are not counted).
    #[serde(default)]
    pub peak_concurrency: usize,
}

/// The largest number of `[start, start + duration)` intervals that overlap at one moment.
fn peak_overlap(g: &[&Sample]) -> usize {
    let mut edges: Vec<(f64, i32)> = Vec::with_capacity(g.len() * 2);
    for s in g {
        let start = s.started_ms as f64;
        edges.push((start, 1));
        edges.push((start + s.duration_ms.max(0.0), -1));
    }
    // Ends sort before starts at the same instant: back-to-back calls do not overlap.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    peak.max(0) as usize
}

pub fn timeseries(samples: &[Sample], bucket_ms: i64) -> Vec<Bucket> {
    let bucket_ms = bucket_ms.max(1);
    let mut groups: BTreeMap<(i64, Runtime), Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        groups.entry((s.started_ms.div_euclid(bucket_ms) * bucket_ms, s.runtime)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|((start, runtime), g)| {
            let mut d: Vec<f64> = g.iter().map(|s| s.duration_ms).collect();
            d.sort_by(|a, b| a.total_cmp(b));
            Bucket {
                start: Utc.timestamp_millis_opt(start).single().unwrap_or_default(),
                runtime,
                count: g.len(),
                errors: g.iter().filter(|s| s.status != ExecutionStatus::Success).count(),
                p50_ms: percentile(&d, 50.0),
                p99_ms: percentile(&d, 99.0),
                peak_memory_bytes: g.iter().filter_map(|s| s.memory_bytes).max(),
                peak_concurrency: peak_overlap(&g),
            }
        })
        .collect()
}

/// The largest number a bucket width may have (nine digits, as the OpenAPI pattern says).
pub const MAX_BUCKET_NUMBER: i64 = 999_999_999;

/// Parses `10s`, `1m`, `5m`, `1h`, `1d` (a number of at most nine digits, then an optional
/// unit; none means minutes) into milliseconds. Checked: a huge number is refused, never
/// wrapped into a tiny bucket.
pub fn parse_bucket(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" | "" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    if num.is_empty() {
        return Err(format!("`{s}` is not a duration like 10s, 1m, 1h"));
    }
    let digits = num.trim_start_matches('0');
    if digits.len() > 9 {
        return Err(format!("`{s}`: the number must be at most {MAX_BUCKET_NUMBER}"));
    }
    let n: i64 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| format!("`{s}` is not a duration like 10s, 1m, 1h"))? };
    if n <= 0 {
        return Err(format!("`{s}` must be positive"));
    }
    n.checked_mul(unit_ms).ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    fn sample(function: &str, language: Language, duration_ms: f64) -> Sample {
        Sample {
            function: function.into(),
            runtime: Runtime::Docker,
            language,
            status: ExecutionStatus::Success,
            error_type: None,
            started_ms: 0,
            duration_ms,
            exec_ms: None,
            memory_bytes: None,
            cold_start: false,
        }
    }

    /// Per runtime, the median is over every run: a slow function run once must not pull
    /// it up the way an average of per-function medians does.
    #[test]
    fn runtime_rows_are_exact_over_all_runs() {
        let mut samples: Vec<Sample> = (0..9).map(|_| sample("fast", Language::Python, 5.0)).collect();
        samples.push(sample("slow", Language::Javascript, 300.0));
        let per_fn = summarize(&samples);
        assert_eq!(per_fn.len(), 2);
        assert_eq!(per_fn[0].function.as_deref(), Some("fast"));
        assert_eq!(per_fn[0].language, Some(Language::Python));
        let rows = summarize_by(&samples, GroupBy::Runtime);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].function, None);
        assert_eq!(rows[0].language, None, "two languages mixed");
        assert_eq!(rows[0].invocations, 10);
        assert_eq!(rows[0].duration_ms.p50, Some(5.0));
        assert_eq!(rows[0].duration_ms.p99, Some(300.0));
        assert_eq!("runtime".parse(), Ok(GroupBy::Runtime));
        assert!("node".parse::<GroupBy>().is_err());
    }

    #[test]
    fn peak_concurrency_counts_overlaps_only() {
        let at = |start: i64, duration_ms: f64| Sample { started_ms: start, ..sample("f", Language::Python, duration_ms) };
        // 0–100 and 50–150 overlap; 150–200 starts as the second ends; 1000 is alone.
        let samples = vec![at(0, 100.0), at(50, 100.0), at(150, 50.0), at(1000, 10.0)];
        let b = timeseries(&samples, 60_000);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].count, 4);
        assert_eq!(b[0].peak_concurrency, 2);
        assert_eq!(timeseries(&[at(0, 5.0)], 60_000)[0].peak_concurrency, 1);
    }

    #[test]
    fn buckets_parse() {
        assert_eq!(parse_bucket("10s"), Ok(10_000));
        assert_eq!(parse_bucket("5m"), Ok(300_000));
        assert!(parse_bucket("0m").is_err());
        assert!(parse_bucket("1y").is_err());
        assert_eq!(parse_bucket("0001m"), Ok(60_000));
        assert_eq!(parse_bucket("999999999d"), Ok(999_999_999 * 86_400_000));
        // 18446744073709552 * 1000 wrapped to 384 ms before the check.
        assert!(parse_bucket("18446744073709552s").expect_err("too large").contains("at most 999999999"));
        assert!(parse_bucket("1000000000s").is_err());
        assert!(parse_bucket("s").is_err());
        assert!(parse_bucket("").is_err());
        assert!(parse_bucket("000s").is_err());
    }
}
