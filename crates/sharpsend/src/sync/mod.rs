//! The sync engine (issue 7): durable jobs claimed with leases, one transaction per page,
//! checkpoints that lose nothing, schedules, and the platform sources it runs.

pub mod source;
pub mod sources;
