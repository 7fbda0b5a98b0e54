-- Dashboard sign-in sessions. The browser holds a random session id; only its SHA-256 is kept.
-- The row carries the API token the publisher (or operator) signed in with, sealed with the
-- vault, so every dashboard request authenticates again through the API's own rules: a revoked
-- key ends its sessions at once.
CREATE TABLE dashboard_sessions (
    id_hash        TEXT PRIMARY KEY,        -- SHA-256 of the cookie's session id, hex
    publisher_id   TEXT,                    -- the publisher shown (an admin may have none yet)
    is_admin       INTEGER NOT NULL,
    csrf_token     TEXT NOT NULL,           -- per session, checked on every form post
    token_key_id   BIGINT NOT NULL,         -- master key that sealed the token
    sealed_token   BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions(expires_at);
