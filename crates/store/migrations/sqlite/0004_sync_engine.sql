-- The sync engine (issue 7). Keep in step with migrations/postgres/0004_sync_engine.sql.

-- At most one queued or running job per integration: a second request gets the active one.
CREATE UNIQUE INDEX sync_jobs_one_active ON sync_jobs(integration_id) WHERE status IN ('queued', 'running');

-- Live progress of a running job.
ALTER TABLE sync_jobs ADD COLUMN pages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN current_kind TEXT;
ALTER TABLE sync_jobs ADD COLUMN deleted TEXT NOT NULL DEFAULT '{}';   -- JSON {kind: n} marked deleted

-- Nothing wrote checkpoints before the engine; recreate with the engine's columns.
DROP TABLE sync_checkpoints;
CREATE TABLE sync_checkpoints (
    integration_id  TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    watermark       TEXT,            -- where the next incremental listing starts (source-defined)
    run_job_id      TEXT,            -- the job whose listing is in progress
    run_cursor      TEXT,            -- where that listing goes on (after the last committed page)
    run_from_start  INTEGER NOT NULL DEFAULT 0,  -- that listing began at the start (so may delete)
    run_done        INTEGER NOT NULL DEFAULT 0,  -- that job finished this kind
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (integration_id, kind)
);

-- Which job last saw a record: a complete listing from the start marks the rest deleted.
ALTER TABLE synced_records ADD COLUMN last_seen_job TEXT;

-- When the scheduler next queues a sync of this integration (NULL: never synced, due soon).
ALTER TABLE integrations ADD COLUMN next_sync_at TEXT;
