-- Versions and saved test events (issue 16), as SQLite's 0010. A version's snapshot has the
-- columns of the function it was (created_ns and updated_ns: when the version was made;
-- serving is always NULL). Both tables are keyed by the function's id, not its name: a
-- function deleted and created again under the same name starts a history of its own.
CREATE TABLE function_versions (
    id           UUID NOT NULL,           -- the function's id
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    language     TEXT NOT NULL,
    runtime      TEXT NOT NULL,
    code         TEXT NOT NULL,
    timeout_ms   BIGINT NOT NULL,
    memory_mb    BIGINT NOT NULL,
    concurrency  BIGINT NOT NULL,
    env          TEXT NOT NULL,           -- JSON object, values included (a rollback restores them)
    sample_input TEXT,
    version      BIGINT NOT NULL,
    created_ns   BIGINT NOT NULL,
    updated_ns   BIGINT NOT NULL,
    dependencies TEXT,
    build        TEXT,                    -- JSON, without logs
    serving      TEXT,
    http         TEXT NOT NULL,
    max_retries  BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);

-- So that no history is empty: every function's current version, made when it last changed.
INSERT INTO function_versions (id, name, description, language, runtime, code, timeout_ms, memory_mb, concurrency, env,
        sample_input, version, created_ns, updated_ns, dependencies, build, serving, http, max_retries)
    SELECT id, name, description, language, runtime, code, timeout_ms, memory_mb, concurrency, env,
        sample_input, version, updated_ns, updated_ns, dependencies, build, NULL, http, max_retries
    FROM functions;

CREATE TABLE test_events (
    function_id UUID NOT NULL,
    name        TEXT NOT NULL,
    event       TEXT NOT NULL,            -- JSON, exactly as saved
    updated_us  BIGINT NOT NULL,
    PRIMARY KEY (function_id, name)
);
