-- Asynchronous calls (issue 14): a function's retry budget, each execution's attempt and the
-- call it belongs to, the durable queue of accepted calls and the dead letters.
ALTER TABLE functions ADD COLUMN max_retries INTEGER NOT NULL DEFAULT 2;
ALTER TABLE executions ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN request_id TEXT;
CREATE INDEX executions_by_request ON executions (request_id) WHERE request_id IS NOT NULL;

-- One row per accepted call until its last attempt is recorded. A worker leases a row (owner
-- and expiry); a lease left by a process that died is taken again once it expires (or at the
-- next start of a single-node fnbox, which no other process shares).
CREATE TABLE queue (
    id              TEXT PRIMARY KEY,     -- the call's request id
    function_name   TEXT NOT NULL,
    input           TEXT NOT NULL,
    "trigger"       TEXT NOT NULL,
    attempt         INTEGER NOT NULL,     -- the attempt to run next
    first_attempt   INTEGER NOT NULL,     -- where this round's retry budget started
    execution_id    TEXT NOT NULL,        -- that attempt's record (queued until it ran)
    enqueued_us     BIGINT NOT NULL,
    due_us          BIGINT NOT NULL,
    last_error      TEXT,                 -- JSON of the previous attempt's ErrorInfo
    lease_owner     TEXT,
    lease_until_us  BIGINT
);
CREATE INDEX queue_by_due ON queue (due_us);

CREATE TABLE dead_letters (
    id                TEXT PRIMARY KEY,   -- the call's request id
    function_name     TEXT NOT NULL,
    input             TEXT NOT NULL,
    "trigger"         TEXT NOT NULL,
    attempts          INTEGER NOT NULL,
    last_error        TEXT,
    last_execution_id TEXT,
    enqueued_us       BIGINT NOT NULL,
    failed_us         BIGINT NOT NULL
);

-- Schedules: one asynchronous call per tick. Firing a tick moves next_run_us from that tick to
-- the next one (compare-and-swap) in the commit that queues the call.
CREATE TABLE schedules (
    id            TEXT PRIMARY KEY,
    function_name TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    input         TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    created_us    BIGINT NOT NULL,
    next_run_us   BIGINT,
    last_run_us   BIGINT
);
CREATE INDEX schedules_by_next_run ON schedules (next_run_us) WHERE enabled;
CREATE INDEX schedules_by_function ON schedules (function_name);
