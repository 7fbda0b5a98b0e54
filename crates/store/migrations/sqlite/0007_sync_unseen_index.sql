-- The delete-unseen step of a full sync (issue 15): the live records of one integration's kind
-- that the finishing job did not see, found by three range scans of this index (`last_seen_job`
-- below, above, or NULL) instead of a scan of every record of the kind (1 s at 1M records).
-- Tombstoned records leave the index. Keep in step with migrations/postgres/0007_sync_unseen_index.sql.
CREATE INDEX synced_records_unseen ON synced_records(integration_id, kind, last_seen_job)
    WHERE deleted_at IS NULL;
