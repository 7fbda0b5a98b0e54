-- The consent ledger (issue 17). Keep in step with migrations/postgres/0009_consent.sql.

-- One suppression per (publisher, normalised address); re-recording keeps the first.
CREATE TABLE suppressions (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order, for paging
    id                TEXT NOT NULL UNIQUE,
    publisher_id      TEXT NOT NULL,
    email             TEXT NOT NULL,                      -- trimmed, lowercased
    reason            TEXT NOT NULL,                      -- unsubscribed|complained|bounced|manual
    source_kind       TEXT NOT NULL,                      -- webhook|sync|api
    source_platform   TEXT,
    source_event_id   TEXT,
    source_principal  TEXT,
    created_at        TEXT NOT NULL,
    UNIQUE (publisher_id, email)
);
CREATE INDEX suppressions_page ON suppressions(publisher_id, seq);

-- Where each platform stands with one suppression.
CREATE TABLE suppression_platforms (
    suppression_id  TEXT NOT NULL REFERENCES suppressions(id) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    status          TEXT NOT NULL,   -- pending|done|failed|skipped
    note            TEXT,            -- the error (failed), why (skipped) or what was done (done)
    attempts        INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (suppression_id, platform)
);

-- Which reasons a publisher pushes to its other platforms (no row: the default).
CREATE TABLE consent_settings (
    publisher_id  TEXT PRIMARY KEY,
    propagate     TEXT NOT NULL,     -- JSON array of reasons
    updated_at    TEXT NOT NULL
);

-- Erasure requests. The address is never kept here: only the open jobs hold it.
CREATE TABLE erasures (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,   -- era_…
    publisher_id  TEXT NOT NULL,
    status        TEXT NOT NULL,          -- pending|done|failed
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX erasures_publisher ON erasures(publisher_id, seq);

CREATE TABLE erasure_platforms (
    erasure_id  TEXT NOT NULL REFERENCES erasures(id) ON DELETE CASCADE,
    platform    TEXT NOT NULL,
    status      TEXT NOT NULL,
    note        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (erasure_id, platform)
);

-- Erased addresses: a salted SHA-256 (hex) of the normalised address, so that it stays
-- suppressed and is reported as erased if it reappears, without keeping it.
CREATE TABLE erased_addresses (
    publisher_id  TEXT NOT NULL,
    email_hash    TEXT NOT NULL,
    erased_at     TEXT NOT NULL,
    PRIMARY KEY (publisher_id, email_hash)
);

-- Durable propagation and erasure work, claimed with leases like sync_jobs.
CREATE TABLE consent_jobs (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,     -- opt_out|erase
    publisher_id    TEXT NOT NULL,
    platform        TEXT NOT NULL,
    suppression_id  TEXT,              -- opt_out: the entry it propagates
    erasure_id      TEXT,              -- erase: the request it serves
    email           TEXT,              -- in clear only while the job is open; NULL once finished
    reason          TEXT,
    status          TEXT NOT NULL,     -- queued|running|done|failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         TEXT NOT NULL,
    locked_by       TEXT,
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX consent_jobs_runnable ON consent_jobs(status, next_at);
-- Idempotent by (publisher, kind, platform, address) while open: a duplicate is not queued.
CREATE UNIQUE INDEX consent_jobs_one_open ON consent_jobs(publisher_id, kind, platform, email)
    WHERE status IN ('queued', 'running');

-- Who did what to a publisher's consent data and credentials.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    publisher_id  TEXT NOT NULL,
    at            TEXT NOT NULL,
    principal     TEXT NOT NULL,     -- 'admin', a key id, or 'system'
    action        TEXT NOT NULL,
    detail        TEXT NOT NULL      -- JSON object
);
CREATE INDEX audit_log_page ON audit_log(publisher_id, seq);
