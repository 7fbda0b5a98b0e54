-- SharpSend schema, SQLite dialect. Times are RFC 3339 UTC text; JSON is text.
-- Keep in step with migrations/postgres/0001_init.sql: the conformance suite runs on both.

CREATE TABLE publishers (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);

-- Operator settings such as the admin token's hash.
CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    publisher_id  TEXT NOT NULL REFERENCES publishers(id),
    key_hash      TEXT NOT NULL UNIQUE,   -- SHA-256 of the whole key, hex
    prefix        TEXT NOT NULL,          -- first characters, to recognise a key in a list
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE INDEX api_keys_publisher ON api_keys(publisher_id);

CREATE TABLE integrations (
    id                   TEXT PRIMARY KEY,
    publisher_id         TEXT NOT NULL REFERENCES publishers(id),
    platform             TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    region               TEXT,
    config               TEXT NOT NULL,
    webhook_id           TEXT NOT NULL UNIQUE,
    credentials_version  INTEGER NOT NULL DEFAULT 1,  -- compare-and-swap token for credential writes
    connected_at         TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (publisher_id, platform)
);

-- One row per secret field, sealed by the vault; key_id names the master key that sealed it.
CREATE TABLE credentials (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    field           TEXT NOT NULL,
    key_id          INTEGER NOT NULL,
    ciphertext      BLOB NOT NULL,
    PRIMARY KEY (integration_id, field)
);
CREATE INDEX credentials_key ON credentials(key_id);

CREATE TABLE sync_jobs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order
    id              TEXT NOT NULL UNIQUE,
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    status          TEXT NOT NULL,
    kinds           TEXT NOT NULL,            -- JSON array
    full_sync       INTEGER NOT NULL DEFAULT 0,
    counts          TEXT NOT NULL DEFAULT '{}',
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_at          TEXT NOT NULL,
    locked_by       TEXT,
    locked_until    TEXT,
    error_code      TEXT,
    error_message   TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
);
CREATE INDEX sync_jobs_integration ON sync_jobs(integration_id, seq);
CREATE INDEX sync_jobs_runnable ON sync_jobs(status, run_at);

CREATE TABLE sync_checkpoints (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    cursor          TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (integration_id, kind)
);

CREATE TABLE synced_records (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    platform_id     TEXT NOT NULL,
    seq             INTEGER NOT NULL,         -- change order (set by the sync engine), for newest-first paging
    normalized      TEXT NOT NULL,
    raw             TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    deleted_at      TEXT,
    PRIMARY KEY (integration_id, kind, platform_id)
);
CREATE INDEX synced_records_page ON synced_records(integration_id, kind, seq);

CREATE TABLE received_events (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order, for paging
    id                 TEXT NOT NULL UNIQUE,
    integration_id     TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    publisher_id       TEXT NOT NULL,
    platform           TEXT NOT NULL,
    type               TEXT NOT NULL,
    platform_event_id  TEXT NOT NULL,
    occurred_at        TEXT NOT NULL,
    received_at        TEXT NOT NULL,
    email              TEXT,
    user_id            TEXT,
    campaign_id        TEXT,
    data               TEXT NOT NULL,
    UNIQUE (integration_id, platform_event_id)
);
CREATE INDEX received_events_page ON received_events(publisher_id, seq);
