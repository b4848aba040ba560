use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use fnbox_core::metrics::{parse_bucket, Bucket, GroupBy, MetricsFilter, Summary};
use fnbox_engine::ErrorGroup;
use serde::Deserialize;

use crate::extract::Query;
use crate::{ApiError, AppState, ErrorBody};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Only this function (empty: all).
    function: Option<String>,
    /// docker or gvisor (also runc, runsc; empty: all).
    #[param(pattern = "^(docker|gvisor|runc|runsc)?$")]
    runtime: Option<String>,
    /// python or javascript (also py, js, node; empty: all).
    #[param(pattern = "^(python|javascript|py|js|node)?$")]
    language: Option<String>,
    /// Started at or after this RFC 3339 time.
    since: Option<String>,
    /// What started the executions: `api`, `compare` (runtime comparisons' runs) or `all`
    /// (empty: every trigger but `compare`).
    #[param(pattern = "^(api|http|async|schedule|compare|all)?$")]
    trigger: Option<String>,
    /// Time series only: bucket width, a positive number of at most nine digits with unit s, m, h
    /// or d (none: minutes; default 1m). Anything else is 400 `invalid_query`.
    #[param(pattern = "^0*[1-9][0-9]{0,8}[smhd]?$")]
    bucket: Option<String>,
    /// Summary only: `function` (the default) gives a row per (function, runtime); `runtime`
    /// a row per runtime over every matching execution, exact (not an average of the
    /// functions' figures).
    #[param(pattern = "^(function|runtime)?$")]
    group_by: Option<String>,
}

fn bad(name: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_query", format!("{name}: {msg}"))
}

impl MetricsQuery {
    fn filter(&self) -> Result<MetricsFilter, ApiError> {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
        Ok(MetricsFilter {
            function: nonempty(&self.function),
            runtime: nonempty(&self.runtime).map(|s| s.parse()).transpose().map_err(|e| bad("runtime", e))?,
            language: nonempty(&self.language).map(|s| s.parse()).transpose().map_err(|e| bad("language", e))?,
            since: nonempty(&self.since)
                .map(|s| chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&chrono::Utc)))
                .transpose()
                .map_err(|e| bad("since", format!("expected an RFC 3339 time ({e})")))?,
            trigger: crate::routes::executions::parse_trigger(self.trigger.as_deref())?,
        })
    }
}

/// Per (function, runtime): counts, success rate, nearest-rank percentiles of duration, exec
/// time and memory, cold vs warm latency.
#[utoipa::path(get, operation_id = "metricsSummary", path = "/api/v1/metrics/summary", tag = "metrics", params(MetricsQuery),
    description = "Percentiles are nearest-rank over the exact recorded values.",
    responses((status = 200, description = "OK", body = Vec<Summary>), (status = 400, description = "Bad query parameter", body = ErrorBody)))]
pub async fn summary(State(s): State<AppState>, Query(q): Query<MetricsQuery>) -> Result<Json<Vec<Summary>>, ApiError> {
    let group_by = match q.group_by.as_deref() {
        None | Some("") => GroupBy::default(),
        Some(g) => g.parse().map_err(|e| bad("group_by", e))?,
    };
    Ok(Json(s.engine.summary(&q.filter()?, group_by).await?))
}

#[utoipa::path(get, operation_id = "metricsTimeseries", path = "/api/v1/metrics/timeseries", tag = "metrics", params(MetricsQuery),
    responses((status = 200, description = "OK", body = Vec<Bucket>), (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 422, description = "Too many buckets", body = ErrorBody)))]
pub async fn timeseries(State(s): State<AppState>, Query(q): Query<MetricsQuery>) -> Result<Json<Vec<Bucket>>, ApiError> {
    let bucket = parse_bucket(q.bucket.as_deref().unwrap_or("1m")).map_err(|e| bad("bucket", e))?;
    Ok(Json(s.engine.timeseries(&q.filter()?, bucket).await?))
}

#[utoipa::path(get, operation_id = "listErrors", path = "/api/v1/errors", tag = "metrics", params(MetricsQuery),
    responses((status = 200, description = "Failures grouped by function, type and the first kilobyte of the message; the 500 largest groups, most frequent first", body = Vec<ErrorGroup>),
        (status = 400, description = "Bad query parameter", body = ErrorBody)))]
pub async fn errors(State(s): State<AppState>, Query(q): Query<MetricsQuery>) -> Result<Json<Vec<ErrorGroup>>, ApiError> {
    Ok(Json(s.engine.errors(&q.filter()?).await?))
}

/// Prometheus text exposition. Pool gauges are read at scrape time.
#[utoipa::path(get, operation_id = "prometheusMetrics", path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn prometheus(State(s): State<AppState>) -> impl IntoResponse {
    let stats = s.engine.pool_stats();
    for f in &stats.functions {
        let labels = [("function", f.function.clone())];
        metrics::gauge!("fnbox_pool_idle_sandboxes", &labels).set(f.idle as f64);
        metrics::gauge!("fnbox_pool_busy_sandboxes", &labels).set(f.busy as f64);
        metrics::gauge!("fnbox_queue_depth", &labels).set(f.queued as f64);
    }
    for (key, n) in &stats.generic {
        metrics::gauge!("fnbox_prewarmed_sandboxes", "key" => key.clone()).set(*n as f64);
    }
    // Read at each scrape (the dispatcher also sets them each second): the store is the truth.
    if let Ok(q) = s.engine.queue_stats().await {
        metrics::gauge!("fnbox_async_queue_depth").set(q.depth as f64);
        metrics::gauge!("fnbox_async_dead_letters").set(q.dead_letters as f64);
    }
    metrics::counter!("fnbox_sandboxes_started_total").absolute(stats.sandboxes_started);
    metrics::counter!("fnbox_cold_starts_total").absolute(stats.cold_starts);
    metrics::counter!("fnbox_prewarmed_cold_starts_total").absolute(stats.prewarmed_cold_starts);
    metrics::counter!("fnbox_resized_sandboxes_total").absolute(stats.resized_sandboxes);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.prometheus.render())
}
