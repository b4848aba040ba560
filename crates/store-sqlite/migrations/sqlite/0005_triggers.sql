-- What started each execution: `api` or `compare` (issue 14 adds http, async, schedule).
-- Quoted because TRIGGER is an SQL keyword (SQLite and PostgreSQL both accept it quoted).
ALTER TABLE executions ADD COLUMN "trigger" TEXT NOT NULL DEFAULT 'api';

-- Before this migration a comparison ran on temporary functions stored as
-- `cmp-<12 hex digits>-<runtime>` with a description `temporary: comparing ...`. Their runs are
-- comparison runs; the functions themselves, if a crash or a dropped client left any, go.
UPDATE executions SET "trigger" = 'compare'
 WHERE function_name GLOB 'cmp-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*'
   AND (function_name LIKE '%-docker' OR function_name LIKE '%-gvisor');
DELETE FROM functions
 WHERE name GLOB 'cmp-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*'
   AND (name LIKE '%-docker' OR name LIKE '%-gvisor')
   AND description LIKE 'temporary: comparing %';

-- The metrics reads filter on the trigger: keep them on the covering index.
DROP INDEX executions_metrics;
CREATE INDEX executions_metrics ON executions
    (started_ms, function_name, runtime, language, status, error_type, duration_ms, exec_ms, memory_bytes, cold_start, "trigger");
