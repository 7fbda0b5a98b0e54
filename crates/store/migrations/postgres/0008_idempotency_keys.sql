-- Idempotency-Key (CONTRACT §10): the first answer to a side-effecting POST, kept 24 hours per
-- (principal, route, key) so that a retry gets it again instead of acting twice. The answer is
-- sealed by the vault (it may reveal a secret once, as a connect does); only its status is clear.
CREATE TABLE idempotency_keys (
    principal        TEXT NOT NULL,      -- 'admin' or the publisher key's id
    route            TEXT NOT NULL,      -- method and path: 'POST /api/integrations/acme/keap/sync'
    idem_key         TEXT NOT NULL,
    body_hash        TEXT NOT NULL,      -- SHA-256 of the request body, hex
    status           BIGINT,             -- NULL while the first request runs
    key_id           BIGINT,             -- master key that sealed the answer
    sealed_response  BYTEA,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal, route, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);
