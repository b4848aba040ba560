-- Asynchronous calls (issue 14), as SQLite's 0009: a function's retry budget, each execution's
-- attempt and call, the durable queue (claimed with FOR UPDATE SKIP LOCKED, so the nodes
-- share it) and the dead letters.
ALTER TABLE functions ADD COLUMN max_retries BIGINT NOT NULL DEFAULT 2;
ALTER TABLE executions ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN request_id UUID;
CREATE INDEX executions_by_request ON executions (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE queue (
    id              UUID PRIMARY KEY,
    function_name   TEXT NOT NULL,
    input           TEXT NOT NULL,
    "trigger"       TEXT NOT NULL,
    attempt         BIGINT NOT NULL,
    first_attempt   BIGINT NOT NULL,
    execution_id    UUID NOT NULL,
    enqueued_us     BIGINT NOT NULL,
    due_us          BIGINT NOT NULL,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until_us  BIGINT
);
CREATE INDEX queue_by_due ON queue (due_us);

CREATE TABLE dead_letters (
    id                UUID PRIMARY KEY,
    function_name     TEXT NOT NULL,
    input             TEXT NOT NULL,
    "trigger"         TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    last_error        TEXT,
    last_execution_id UUID,
    enqueued_us       BIGINT NOT NULL,
    failed_us         BIGINT NOT NULL
);

-- Schedules: one asynchronous call per tick. A node fires a tick by moving next_run_us from
-- that tick to the next one (compare-and-swap) in the commit that queues the call.
CREATE TABLE schedules (
    id            UUID PRIMARY KEY,
    function_name TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    input         TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    created_us    BIGINT NOT NULL,
    next_run_us   BIGINT,
    last_run_us   BIGINT
);
CREATE INDEX schedules_by_next_run ON schedules (next_run_us) WHERE enabled;
CREATE INDEX schedules_by_function ON schedules (function_name);
