//! Row mapping: how functions, executions and keys become columns and come back.

use chrono::{DateTime, Utc};
use fnbox_core::{ApiKey, ErrorInfo, Execution, Function, RawJson, StoreError, StoredKey};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{corrupt, db};

/// How much of an error message [`fnbox_core::Store::failures`] reads: errors are grouped by it.
pub(crate) const FAILURE_MESSAGE_CHARS: usize = 1024;

pub(crate) fn get<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(db)
}

pub(crate) fn parsed<T: std::str::FromStr<Err = String>>(r: &Row, i: usize, what: &str) -> Result<T, StoreError> {
    get::<&str>(r, i)?.parse().map_err(|e: String| corrupt(what, e))
}

pub(crate) fn nanos(t: DateTime<Utc>) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt().ok_or_else(|| StoreError::Backend(format!("time {t} is out of range")))
}

pub(crate) fn from_micros(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("time", us))
}

/// PostgreSQL text cannot hold NUL; what a function printed may. Kept visible, as U+FFFD.
fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

pub(crate) const FUNCTION_COLUMNS: &str = "id, name, description, language, runtime, code, timeout_ms, memory_mb, \
     concurrency, env, sample_input, version, created_ns, updated_ns, dependencies, build, serving, http, max_retries";

/// A function's columns, in [`FUNCTION_COLUMNS`] order.
pub(crate) struct FunctionRow {
    id: Uuid,
    name: String,
    description: String,
    language: &'static str,
    runtime: &'static str,
    code: String,
    timeout_ms: i64,
    memory_mb: i64,
    concurrency: i64,
    env: String,
    sample_input: Option<String>,
    version: i64,
    created_ns: i64,
    pub(crate) updated_ns: i64,
    dependencies: Option<String>,
    build: Option<String>,
    serving: Option<String>,
    http: &'static str,
    max_retries: i64,
}

impl FunctionRow {
    pub(crate) fn new(f: &Function) -> Result<FunctionRow, StoreError> {
        Ok(FunctionRow {
            id: f.id,
            name: f.name.clone(),
            description: f.description.clone(),
            language: f.language.as_str(),
            runtime: f.runtime.as_str(),
            code: f.code.clone(),
            timeout_ms: i64::from(f.timeout_ms),
            memory_mb: i64::from(f.memory_mb),
            concurrency: i64::from(f.concurrency),
            env: serde_json::to_string(&f.env).map_err(|e| StoreError::Backend(e.to_string()))?,
            sample_input: f.sample_input.as_ref().map(|v| v.to_string()),
            version: i64::from(f.version),
            created_ns: nanos(f.created_at)?,
            updated_ns: nanos(f.updated_at)?,
            dependencies: f.dependencies.clone(),
            build: f.build.as_ref().map(serde_json::to_string).transpose().map_err(|e| StoreError::Backend(e.to_string()))?,
            serving: f.serving.as_ref().map(|s| s.to_stored_json()),
            http: f.http.as_str(),
            max_retries: i64::from(f.max_retries),
        })
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 19] {
        [
            &self.id,
            &self.name,
            &self.description,
            &self.language,
            &self.runtime,
            &self.code,
            &self.timeout_ms,
            &self.memory_mb,
            &self.concurrency,
            &self.env,
            &self.sample_input,
            &self.version,
            &self.created_ns,
            &self.updated_ns,
            &self.dependencies,
            &self.build,
            &self.serving,
            &self.http,
            &self.max_retries,
        ]
    }
}

fn u32_col(r: &Row, i: usize, what: &str) -> Result<u32, StoreError> {
    let v: i64 = get(r, i)?;
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

pub(crate) fn row_to_function(r: &Row) -> Result<Function, StoreError> {
    let env: &str = get(r, 9)?;
    let sample: Option<&str> = get(r, 10)?;
    Ok(Function {
        id: get(r, 0)?,
        name: get(r, 1)?,
        description: get(r, 2)?,
        language: parsed(r, 3, "language")?,
        runtime: parsed(r, 4, "runtime")?,
        code: get(r, 5)?,
        timeout_ms: u32_col(r, 6, "timeout")?,
        memory_mb: u32_col(r, 7, "memory")?,
        concurrency: u32_col(r, 8, "concurrency")?,
        env: serde_json::from_str(env).map_err(|e| corrupt("env", e))?,
        sample_input: sample.map(serde_json::from_str).transpose().map_err(|e| corrupt("sample input", e))?,
        version: u32_col(r, 11, "version")?,
        created_at: DateTime::from_timestamp_nanos(get(r, 12)?),
        updated_at: DateTime::from_timestamp_nanos(get(r, 13)?),
        dependencies: get(r, 14)?,
        build: get::<Option<&str>>(r, 15)?.map(serde_json::from_str).transpose().map_err(|e| corrupt("build", e))?,
        serving: get::<Option<&str>>(r, 16)?
            .map(|s| Function::from_stored_json(s).map(Box::new))
            .transpose()
            .map_err(|e| corrupt("serving version", e))?,
        http: parsed(r, 17, "http")?,
        max_retries: u32_col(r, 18, "max_retries")?,
    })
}

pub(crate) const EXECUTION_COLUMNS: &str = "id, function_name, version, runtime, language, input, output, output_truncated, \
     status, error, logs, started_us, duration_ms, exec_ms, memory_bytes, cold_start, \"trigger\", node, attempt, request_id";

pub(crate) fn row_to_execution(r: &Row) -> Result<Execution, StoreError> {
    let output: Option<String> = get(r, 6)?;
    let error: Option<&str> = get(r, 9)?;
    Ok(Execution {
        id: get(r, 0)?,
        function: get(r, 1)?,
        version: u32_col(r, 2, "version")?,
        runtime: parsed(r, 3, "runtime")?,
        language: parsed(r, 4, "language")?,
        input: get(r, 5)?,
        output: output.map(RawJson::parse).transpose().map_err(|e| corrupt("output", e))?,
        output_truncated: get(r, 7)?,
        status: parsed(r, 8, "status")?,
        error: error.map(serde_json::from_str::<ErrorInfo>).transpose().map_err(|e| corrupt("error", e))?,
        logs: get(r, 10)?,
        started_at: from_micros(get(r, 11)?)?,
        duration_ms: get(r, 12)?,
        exec_ms: get(r, 13)?,
        memory_bytes: get::<Option<i64>>(r, 14)?.map(|m| u64::try_from(m).unwrap_or(0)),
        cold_start: get(r, 15)?,
        trigger: parsed(r, 16, "trigger")?,
        node: get(r, 17)?,
        attempt: u32_col(r, 18, "attempt")?,
        request_id: get(r, 19)?,
    })
}

/// Inserts executions in one statement (one array per column, unnested into rows). An id
/// already recorded is replaced only while it is a `queued` placeholder (an asynchronous
/// attempt not run yet); a final record is never overwritten (recovery relies on it). Returns
/// how many rows went in or were replaced.
pub(crate) async fn insert_executions(c: &impl GenericClient, es: &[&Execution]) -> Result<u64, StoreError> {
    let mut cols = ExecutionColumns::default();
    for e in es {
        cols.push(e)?;
    }
    let sql = format!(
        "INSERT INTO executions (id, function_name, version, runtime, language, input, output, output_truncated,
            status, error_type, error, error_head, logs, started_us, started_ms, duration_ms, exec_ms, memory_bytes,
            cold_start, \"trigger\", node, attempt, request_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::boolean[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[],
            $16::float8[], $17::float8[], $18::bigint[], $19::boolean[], $20::text[], $21::text[], $22::bigint[],
            $23::uuid[])
         ON CONFLICT (id) DO UPDATE SET function_name = EXCLUDED.function_name, version = EXCLUDED.version,
            runtime = EXCLUDED.runtime, language = EXCLUDED.language, input = EXCLUDED.input,
            output = EXCLUDED.output, output_truncated = EXCLUDED.output_truncated, status = EXCLUDED.status,
            error_type = EXCLUDED.error_type, error = EXCLUDED.error, error_head = EXCLUDED.error_head,
            logs = EXCLUDED.logs, started_us = EXCLUDED.started_us, started_ms = EXCLUDED.started_ms,
            duration_ms = EXCLUDED.duration_ms, exec_ms = EXCLUDED.exec_ms, memory_bytes = EXCLUDED.memory_bytes,
            cold_start = EXCLUDED.cold_start, \"trigger\" = EXCLUDED.\"trigger\", node = EXCLUDED.node,
            attempt = EXCLUDED.attempt, request_id = EXCLUDED.request_id
          WHERE executions.status = 'queued'"
    );
    let stmt = c.prepare(&sql).await.map_err(db)?;
    c.execute(&stmt, &cols.params()).await.map_err(db)
}

#[derive(Default)]
struct ExecutionColumns {
    id: Vec<Uuid>,
    function: Vec<String>,
    version: Vec<i64>,
    runtime: Vec<&'static str>,
    language: Vec<&'static str>,
    input: Vec<String>,
    output: Vec<Option<String>>,
    output_truncated: Vec<bool>,
    status: Vec<&'static str>,
    error_type: Vec<Option<String>>,
    error: Vec<Option<String>>,
    error_head: Vec<Option<String>>,
    logs: Vec<String>,
    started_us: Vec<i64>,
    started_ms: Vec<i64>,
    duration_ms: Vec<f64>,
    exec_ms: Vec<Option<f64>>,
    memory_bytes: Vec<Option<i64>>,
    cold_start: Vec<bool>,
    trigger: Vec<&'static str>,
    node: Vec<Option<String>>,
    attempt: Vec<i64>,
    request_id: Vec<Option<Uuid>>,
}

impl ExecutionColumns {
    fn push(&mut self, e: &Execution) -> Result<(), StoreError> {
        self.id.push(e.id);
        self.function.push(e.function.clone());
        self.version.push(i64::from(e.version));
        self.runtime.push(e.runtime.as_str());
        self.language.push(e.language.as_str());
        self.input.push(pg_text(&e.input).into_owned());
        self.output.push(e.output.as_ref().map(|v| v.get().to_owned()));
        self.output_truncated.push(e.output_truncated);
        self.status.push(e.status.as_str());
        self.error_type.push(e.error.as_ref().map(|x| pg_text(&x.kind).into_owned()));
        self.error.push(e.error.as_ref().map(serde_json::to_string).transpose().map_err(|x| StoreError::Backend(x.to_string()))?);
        self.error_head
            .push(e.error.as_ref().map(|x| pg_text(&x.message.chars().take(FAILURE_MESSAGE_CHARS).collect::<String>()).into_owned()));
        self.logs.push(pg_text(&e.logs).into_owned());
        self.started_us.push(e.started_at.timestamp_micros());
        self.started_ms.push(e.started_at.timestamp_millis());
        self.duration_ms.push(e.duration_ms);
        self.exec_ms.push(e.exec_ms);
        self.memory_bytes.push(e.memory_bytes.map(|m| i64::try_from(m).unwrap_or(i64::MAX)));
        self.cold_start.push(e.cold_start);
        self.trigger.push(e.trigger.as_str());
        self.node.push(e.node.clone());
        self.attempt.push(i64::from(e.attempt));
        self.request_id.push(e.request_id);
        Ok(())
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 23] {
        [
            &self.id,
            &self.function,
            &self.version,
            &self.runtime,
            &self.language,
            &self.input,
            &self.output,
            &self.output_truncated,
            &self.status,
            &self.error_type,
            &self.error,
            &self.error_head,
            &self.logs,
            &self.started_us,
            &self.started_ms,
            &self.duration_ms,
            &self.exec_ms,
            &self.memory_bytes,
            &self.cold_start,
            &self.trigger,
            &self.node,
            &self.attempt,
            &self.request_id,
        ]
    }
}

pub(crate) fn row_to_key(r: &Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        key: ApiKey {
            id: get(r, 0)?,
            name: get(r, 1)?,
            role: parsed(r, 2, "role")?,
            created_at: from_micros(get(r, 4)?)?,
            last_used_at: get::<Option<i64>>(r, 5)?.map(from_micros).transpose()?,
            revoked: get(r, 6)?,
        },
        token_hash: get(r, 3)?,
    })
}
