-- A counter bumped by every write that a read cache may hold (API keys, integrations, credentials,
-- sync jobs). Servers poll it to drop cached entries written by another process or replica.
CREATE TABLE change_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO change_epoch (id, value) VALUES (1, 0);
