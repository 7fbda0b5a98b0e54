//! The sync engine (issue 7): durable jobs claimed with leases, one transaction per page,
//! checkpoints that lose nothing, schedules, and the platform sources it runs.
//!
//! * [`source`]: what a platform gives the engine (pages, opaque cursors, watermarks).
//! * [`sources`]: each platform's kinds.
//! * [`engine`]: workers, leases, checkpoints, retries, shutdown.
//! * [`scheduler`]: periodic syncs across replicas.
//! * [`jobs`]: queuing a job (the API and the CLI).

pub mod engine;
pub mod follow;
pub mod jobs;
pub mod scheduler;
pub mod source;
pub mod sources;

/// A new job id.
pub fn new_job_id() -> String {
    format!("job_{}", uuid::Uuid::new_v4().simple())
}
