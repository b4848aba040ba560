-- The schema of SQLite's migrations 0001-0006 in native PostgreSQL types: UUID ids (their byte
-- order is their text order, so UUIDv7 still sorts by start time), BIGINT times, DOUBLE
-- PRECISION, BOOLEAN. Payloads stay TEXT, not JSONB: an output's exact text must come back
-- (JSONB would round numbers' text and reorder keys) and JSONB refuses \u0000.

CREATE TABLE functions (
    id           UUID PRIMARY KEY,
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
    created_ns   BIGINT NOT NULL,         -- unix ns: exact, so the compare-and-swap on updated_ns is too
    updated_ns   BIGINT NOT NULL
);

CREATE TABLE executions (
    id               UUID PRIMARY KEY,    -- UUIDv7: sorts by start time
    function_name    TEXT NOT NULL,
    version          BIGINT NOT NULL,
    runtime          TEXT NOT NULL,
    language         TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,                -- JSON, exactly as returned
    output_truncated BOOLEAN NOT NULL,
    status           TEXT NOT NULL,
    error_type       TEXT,
    error            TEXT,                -- JSON of ErrorInfo
    error_head       TEXT,                -- the first 1024 characters of the error's message, for grouping
    logs             TEXT NOT NULL,
    started_us       BIGINT NOT NULL,     -- unix µs (what SQLite keeps of started_at)
    started_ms       BIGINT NOT NULL,     -- unix ms, for range queries
    duration_ms      DOUBLE PRECISION NOT NULL,
    exec_ms          DOUBLE PRECISION,
    memory_bytes     BIGINT,
    cold_start       BOOLEAN NOT NULL,
    "trigger"        TEXT NOT NULL,
    node             TEXT                 -- the cluster node that ran it
);

CREATE INDEX executions_by_function ON executions (function_name, id);
CREATE INDEX executions_by_status ON executions (status, id);
CREATE INDEX executions_by_start ON executions (started_ms);
CREATE INDEX executions_by_failure ON executions (status, started_ms);
-- Covers the metrics reads: aggregates scan this compact index, not the wide rows.
CREATE INDEX executions_metrics ON executions (started_ms)
    INCLUDE (function_name, runtime, language, status, error_type, duration_ms, exec_ms, memory_bytes, cold_start, "trigger");

-- Executions started and not finished, per node: whatever a node left here when it starts
-- again was cut short by its crash and becomes an `Interrupted` record. Other nodes' rows are
-- theirs (they are alive).
CREATE TABLE inflight_executions (
    id          UUID PRIMARY KEY,
    node        TEXT NOT NULL,
    body        TEXT NOT NULL,            -- JSON of the Execution as it started
    started_ms  BIGINT NOT NULL
);
CREATE INDEX inflight_by_node ON inflight_executions (node);

CREATE TABLE comparisons (
    id          UUID PRIMARY KEY,         -- UUIDv7
    function    TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    body        TEXT NOT NULL             -- JSON of the Comparison
);

-- API keys: only the SHA-256 of a token. Revoked, never deleted.
CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_us   BIGINT NOT NULL,
    last_used_us BIGINT,
    revoked      BOOLEAN NOT NULL,
    revoked_us   BIGINT
);

-- Bumped in the same transaction as every insert or revoke: servers poll it to see changes.
CREATE TABLE api_keys_version (
    id      BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO api_keys_version (id, version) VALUES (1, 0);
