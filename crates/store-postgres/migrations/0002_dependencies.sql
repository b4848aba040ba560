-- A function's dependencies (requirements.txt or package.json text), the build of its current
-- version (JSON), and the last version with a ready build, kept serving while the current one
-- builds or after its build failed (JSON, environment included).
ALTER TABLE functions ADD COLUMN dependencies TEXT;
ALTER TABLE functions ADD COLUMN build TEXT;
ALTER TABLE functions ADD COLUMN serving TEXT;
