-- Executions that started and have not finished: written only for calls still running after a
-- moment (see sqlite.rs, INFLIGHT_GRACE), removed with their final record. Whatever is left here
-- when fnbox starts was cut short by a crash and becomes an `Interrupted` error record.
CREATE TABLE inflight_executions (
    id            TEXT PRIMARY KEY,
    body          TEXT NOT NULL,      -- JSON of the Execution as it started
    started_ms    BIGINT NOT NULL
);
