//! Row mapping: how functions, executions and keys are written to and read from columns.

use chrono::{DateTime, Utc};
use fnbox_core::{ApiKey, ErrorInfo, Execution, Function, RawJson, StoreError, StoredKey};
use rusqlite::Row;
use uuid::Uuid;

pub(crate) const FUNCTION_COLUMNS: &str = "id, name, description, language, runtime, code, timeout_ms, memory_mb, \
     concurrency, env, sample_input, version, created_at, updated_at, dependencies, build, serving, http, max_retries";

pub(crate) fn parse_err(col: usize, msg: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, msg.into().into())
}

pub(crate) fn parse_time(col: usize, s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| parse_err(col, e.to_string()))
}

pub(crate) fn row_to_function(r: &Row<'_>) -> rusqlite::Result<Function> {
    let id: String = r.get(0)?;
    let env: String = r.get(9)?;
    let sample: Option<String> = r.get(10)?;
    Ok(Function {
        id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
        name: r.get(1)?,
        description: r.get(2)?,
        language: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        runtime: r.get::<_, String>(4)?.parse().map_err(|e: String| parse_err(4, e))?,
        code: r.get(5)?,
        timeout_ms: r.get(6)?,
        memory_mb: r.get(7)?,
        concurrency: r.get(8)?,
        env: serde_json::from_str(&env).map_err(|e| parse_err(9, e.to_string()))?,
        sample_input: sample.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| parse_err(10, e.to_string()))?,
        version: r.get(11)?,
        created_at: parse_time(12, &r.get::<_, String>(12)?)?,
        updated_at: parse_time(13, &r.get::<_, String>(13)?)?,
        dependencies: r.get(14)?,
        build: r
            .get::<_, Option<String>>(15)?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| parse_err(15, e.to_string()))?,
        serving: r
            .get::<_, Option<String>>(16)?
            .map(|s| Function::from_stored_json(&s).map(Box::new))
            .transpose()
            .map_err(|e| parse_err(16, e.to_string()))?,
        http: r.get::<_, String>(17)?.parse().map_err(|e: String| parse_err(17, e))?,
        max_retries: r.get(18)?,
    })
}

pub(crate) const EXECUTION_COLUMNS: &str = "id, function_name, version, runtime, language, input, output, output_truncated, \
     status, error, logs, started_at, duration_ms, exec_ms, memory_bytes, cold_start, \"trigger\", node, attempt, request_id";

pub(crate) fn row_to_execution(r: &Row<'_>) -> rusqlite::Result<Execution> {
    let id: String = r.get(0)?;
    let output: Option<String> = r.get(6)?;
    let error: Option<String> = r.get(9)?;
    Ok(Execution {
        id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
        function: r.get(1)?,
        version: r.get(2)?,
        runtime: r.get::<_, String>(3)?.parse().map_err(|e: String| parse_err(3, e))?,
        language: r.get::<_, String>(4)?.parse().map_err(|e: String| parse_err(4, e))?,
        input: r.get(5)?,
        output: output.map(RawJson::parse).transpose().map_err(|e| parse_err(6, e.to_string()))?,
        output_truncated: r.get(7)?,
        status: r.get::<_, String>(8)?.parse().map_err(|e: String| parse_err(8, e))?,
        error: error
            .map(|s| serde_json::from_str::<ErrorInfo>(&s))
            .transpose()
            .map_err(|e| parse_err(9, e.to_string()))?,
        logs: r.get(10)?,
        started_at: parse_time(11, &r.get::<_, String>(11)?)?,
        duration_ms: r.get(12)?,
        exec_ms: r.get(13)?,
        memory_bytes: r.get::<_, Option<i64>>(14)?.map(|m| m.max(0) as u64),
        cold_start: r.get(15)?,
        trigger: r.get::<_, String>(16)?.parse().map_err(|e: String| parse_err(16, e))?,
        node: r.get(17)?,
        attempt: r.get(18)?,
        request_id: r
            .get::<_, Option<String>>(19)?
            .map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(|e| parse_err(19, e.to_string()))?,
    })
}

/// How a function's times are stored; the compare-and-swap on `updated_at` compares this text.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

pub(crate) fn function_params(f: &Function) -> Result<Vec<Box<dyn rusqlite::ToSql + Send>>, StoreError> {
    let env = serde_json::to_string(&f.env).map_err(|e| StoreError::Backend(e.to_string()))?;
    let sample = f.sample_input.as_ref().map(|v| v.to_string());
    let build = f.build.as_ref().map(serde_json::to_string).transpose().map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(vec![
        Box::new(f.id.to_string()),
        Box::new(f.name.clone()),
        Box::new(f.description.clone()),
        Box::new(f.language.as_str()),
        Box::new(f.runtime.as_str()),
        Box::new(f.code.clone()),
        Box::new(f.timeout_ms),
        Box::new(f.memory_mb),
        Box::new(f.concurrency),
        Box::new(env),
        Box::new(sample),
        Box::new(f.version),
        Box::new(time_text(f.created_at)),
        Box::new(time_text(f.updated_at)),
        Box::new(f.dependencies.clone()),
        Box::new(build),
        Box::new(f.serving.as_ref().map(|s| s.to_stored_json())),
        Box::new(f.http.as_str()),
        Box::new(f.max_retries),
    ])
}

pub(crate) fn col_str<'a>(r: &'a Row<'_>, i: usize) -> rusqlite::Result<&'a str> {
    r.get_ref(i).and_then(|v| v.as_str().map_err(|e| parse_err(i, e.to_string())))
}

pub(crate) fn row_to_key(r: &Row<'_>) -> rusqlite::Result<StoredKey> {
    let id: String = r.get(0)?;
    let last_used: Option<String> = r.get(5)?;
    Ok(StoredKey {
        key: ApiKey {
            id: Uuid::parse_str(&id).map_err(|e| parse_err(0, e.to_string()))?,
            name: r.get(1)?,
            role: r.get::<_, String>(2)?.parse().map_err(|e: String| parse_err(2, e))?,
            created_at: parse_time(4, &r.get::<_, String>(4)?)?,
            last_used_at: last_used.map(|t| parse_time(5, &t)).transpose()?,
            revoked: r.get(6)?,
        },
        token_hash: r.get(3)?,
    })
}
