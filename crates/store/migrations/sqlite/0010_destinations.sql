-- Event destinations (issue 19). Keep in step with migrations/postgres/0010_destinations.sql.

-- Where events are pushed: one publisher's, or every publisher's (publisher_id NULL, registered
-- by the operator).
CREATE TABLE destinations (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,    -- dst_…
    publisher_id      TEXT,                    -- NULL: operator-wide
    url               TEXT NOT NULL,
    description       TEXT,
    event_types       TEXT NOT NULL,           -- JSON array; [] = every type
    platforms         TEXT NOT NULL,           -- JSON array; [] = every platform
    enabled           INTEGER NOT NULL,
    disabled_reason   TEXT,
    secret_key_id     INTEGER NOT NULL,        -- the vault key sealing the secrets
    secret            BLOB NOT NULL,           -- sealed whsec_…
    old_secret        BLOB,                    -- sealed, the one before the last rotation
    old_secret_until  TEXT,                    -- it signs alongside the new one until then
    failing_since     TEXT,                    -- first failed attempt since the last success
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX destinations_publisher ON destinations(publisher_id, seq);

-- One event for one destination: what the delivery workers claim with leases.
CREATE TABLE destination_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,      -- msg_…: the webhook-id
    destination_id  TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    publisher_id    TEXT NOT NULL,             -- the event's publisher
    event_id        TEXT NOT NULL,             -- evt_… (received) or our own event's id
    event_type      TEXT NOT NULL,
    platform        TEXT,
    reader          TEXT,                      -- ordering key: the address (or user id) it is about
    payload         TEXT NOT NULL,             -- the JSON body, exactly as signed
    status          TEXT NOT NULL,             -- pending|succeeded|failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         TEXT NOT NULL,
    locked_by       TEXT,
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (destination_id, event_id)
);
CREATE INDEX destination_messages_due ON destination_messages(status, next_at);
CREATE INDEX destination_messages_reader ON destination_messages(destination_id, reader, status, seq);
CREATE INDEX destination_messages_page ON destination_messages(destination_id, seq);
CREATE INDEX destination_messages_publisher_reader ON destination_messages(publisher_id, reader);

-- Every delivery attempt of a message.
CREATE TABLE destination_attempts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL REFERENCES destination_messages(id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    status_code  INTEGER,                      -- NULL: no answer (timeout, refused, blocked)
    latency_ms   INTEGER NOT NULL,
    response     TEXT,                         -- the first 1 KiB of the answer
    error        TEXT
);
CREATE INDEX destination_attempts_message ON destination_attempts(message_id, seq);
