CREATE TABLE comparisons (
    id          TEXT PRIMARY KEY,     -- UUIDv7
    function    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    body        TEXT NOT NULL         -- JSON of the Comparison
);
CREATE INDEX executions_by_failure ON executions (status, started_ms);
-- Covers the metrics reads: aggregates scan this compact index, not the wide rows (logs, payloads).
CREATE INDEX executions_metrics ON executions
    (started_ms, function_name, runtime, language, status, error_type, duration_ms, exec_ms, memory_bytes, cold_start);
