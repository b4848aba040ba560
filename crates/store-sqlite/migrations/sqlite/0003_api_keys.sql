-- API keys. Only the SHA-256 of a token is stored; the token is shown once, at creation.
-- Keys are revoked, never deleted, so the record of who had access stays.
-- Types as in 0001: they map onto PostgreSQL unchanged (BOOLEAN is 0/1 in SQLite).
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,        -- UUIDv7
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,           -- admin | invoke
    token_hash   TEXT NOT NULL UNIQUE,    -- lowercase hex SHA-256 of the token
    created_at   TEXT NOT NULL,           -- RFC 3339, UTC
    last_used_at TEXT,                    -- written lazily by the server
    revoked      BOOLEAN NOT NULL,
    revoked_at   TEXT
);

-- One row, bumped in the same transaction as every insert or revoke in api_keys (not by
-- last_used_at): a running server polls it to notice keys changed by `fnbox keys` on the data dir.
CREATE TABLE api_keys_version (
    id      BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO api_keys_version (id, version) VALUES (1, 0);
