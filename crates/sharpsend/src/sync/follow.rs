//! `sharpsend sync`: queue a sync (or find the running one), run it here if no worker has it,
//! and follow it with a progress bar until it ends.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use domain::{Platform, PublisherId, shapes::SyncStatus};
use indicatif::{ProgressBar, ProgressStyle};
use store::SyncJobRecord;
use tokio_util::sync::CancellationToken;

use super::{engine, jobs};
use crate::state::AppState;

/// What the command was asked.
pub struct SyncCommand {
    pub publisher: PublisherId,
    pub platform: Platform,
    pub kinds: Option<Vec<String>>,
    pub full: bool,
}

/// Runs or follows the job; answers it as it ended (an error when it failed).
pub async fn run(
    state: &AppState,
    cmd: SyncCommand,
    stop: CancellationToken,
) -> anyhow::Result<SyncJobRecord> {
    let (job, created) = jobs::request(state, &cmd.publisher, cmd.platform, cmd.kinds, cmd.full)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code().as_str(), e.public_message()))?;
    eprintln!(
        "{} {} sync {} of {} ({})",
        if created {
            "queued"
        } else {
            "following the active"
        },
        cmd.platform,
        job.id,
        cmd.publisher,
        job.kinds.join(", ")
    );
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let worker = format!("cli-{}", engine::worker_name(0));
    let started = Instant::now();
    let mut runner: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let current = state
            .store
            .get_sync_job(&job.integration_id, &job.id)
            .await
            .context("reading the job")?
            .context("the job disappeared (was the integration disconnected?)")?;
        bar.set_message(progress_line(&current, started.elapsed()));
        match current.status {
            SyncStatus::Succeeded | SyncStatus::Failed => {
                bar.finish_and_clear();
                if let Some(r) = runner.take() {
                    let _ = r.await;
                }
                print_summary(&current, started.elapsed());
                if current.status == SyncStatus::Failed {
                    bail!(
                        "sync failed: {}: {}",
                        current.error_code.as_deref().unwrap_or("INTERNAL_ERROR"),
                        current.error_message.as_deref().unwrap_or("")
                    );
                }
                return Ok(current);
            }
            // Due and unclaimed (no server running, or its workers busy): run it here.
            SyncStatus::Queued if runner.is_none() && current.run_at <= Utc::now() => {
                if let Some(claimed) = engine::claim(state, &worker, Some(&job.id)).await? {
                    let state = state.clone();
                    let worker = worker.clone();
                    let stop = stop.clone();
                    runner = Some(tokio::spawn(async move {
                        engine::run_claimed(&state, &worker, claimed, &stop).await;
                    }));
                }
            }
            _ => {}
        }
        if runner
            .as_ref()
            .is_some_and(tokio::task::JoinHandle::is_finished)
        {
            runner = None; // a retry was queued: claim it again when due
        }
        if stop.is_cancelled() && runner.is_none() {
            bar.finish_and_clear();
            bail!(
                "interrupted; job {} stays queued and resumes from its checkpoint on the next worker",
                job.id
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn progress_line(job: &SyncJobRecord, elapsed: Duration) -> String {
    let records: u64 = job.counts.values().sum();
    let rate = records as f64 / elapsed.as_secs_f64().max(0.001);
    let mut line = format!(
        "{} · {records} records · {} pages · {rate:.0} records/s",
        job.status.as_str(),
        job.pages
    );
    if let Some(kind) = &job.current_kind {
        line.push_str(&format!(" · reading {kind}"));
    }
    if job.status == SyncStatus::Queued
        && let Some(code) = &job.error_code
    {
        line.push_str(&format!(
            " · retrying at {} after {code}",
            job.run_at.format("%H:%M:%S")
        ));
    }
    line
}

fn print_summary(job: &SyncJobRecord, elapsed: Duration) {
    let records: u64 = job.counts.values().sum();
    println!(
        "job {}: {} in {:.1} s ({} attempt{}), {records} records in {} pages, {:.0} records/s",
        job.id,
        job.status.as_str(),
        elapsed.as_secs_f64(),
        job.attempts,
        if job.attempts == 1 { "" } else { "s" },
        job.pages,
        records as f64 / elapsed.as_secs_f64().max(0.001)
    );
    for (kind, n) in &job.counts {
        let deleted = job.deleted.get(kind).copied().unwrap_or(0);
        println!(
            "  {kind:<16} {n:>10} read{}",
            if deleted > 0 {
                format!(", {deleted} marked deleted")
            } else {
                String::new()
            }
        );
    }
}
