-- Types chosen so the same schema maps onto PostgreSQL: TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN (0/1).
CREATE TABLE functions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL,
    language     TEXT NOT NULL,
    runtime      TEXT NOT NULL,
    code         TEXT NOT NULL,
    timeout_ms   BIGINT NOT NULL,
    memory_mb    BIGINT NOT NULL,
    concurrency  BIGINT NOT NULL,
    env          TEXT NOT NULL,           -- JSON object
    sample_input TEXT,                    -- JSON
    version      BIGINT NOT NULL,
    created_at   TEXT NOT NULL,           -- RFC 3339, UTC
    updated_at   TEXT NOT NULL
);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY,    -- UUIDv7: sorts by start time
    function_name    TEXT NOT NULL,
    version          BIGINT NOT NULL,
    runtime          TEXT NOT NULL,
    language         TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,                -- JSON
    output_truncated BOOLEAN NOT NULL,
    status           TEXT NOT NULL,
    error_type       TEXT,
    error            TEXT,                -- JSON of ErrorInfo
    logs             TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    started_ms       BIGINT NOT NULL,     -- unix ms, for range queries
    duration_ms      DOUBLE PRECISION NOT NULL,
    exec_ms          DOUBLE PRECISION,
    memory_bytes     BIGINT,
    cold_start       BOOLEAN NOT NULL
);

CREATE INDEX executions_by_function ON executions (function_name, id);
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_start ON executions (started_ms);
