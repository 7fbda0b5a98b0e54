//! What a workspace reports by itself, with no message behind it: `customer`/`unsubscribed` when
//! a person's `unsubscribed` attribute becomes true through the API, sent to the workspace's
//! configured reporting webhook. Above both the simulator's state (`sim`) and the emitter
//! (`webhooks`), so neither needs the other.

use std::time::Duration;

use sim_core::lock;

use crate::{
    sim::{Region, Sim},
    webhooks::{Job, Outgoing, customer_unsubscribed, enqueue},
};

/// Sends `customer`/`unsubscribed` for every person whose attribute just became true to the
/// workspace's configured reporting webhook (signed, queued and retried like every delivery).
pub fn report_unsubscribes(sim: &Sim, region: Region) {
    let people = std::mem::take(&mut sim.store(region).newly_unsubscribed);
    if people.is_empty() {
        return;
    }
    let Some(hook) = lock(&sim.webhooks.reporting)[region.index()].clone() else {
        return;
    };
    let config = lock(&sim.webhooks.config).clone();
    for p in people {
        let event = customer_unsubscribed(&p);
        sim.control.incr("customer_unsubscribed_reported");
        let out = Outgoing {
            url: hook.url.clone(),
            body: event.to_string().into_bytes(),
            event_id: event["event_id"].as_str().unwrap_or_default().to_owned(),
            signing_key: hook.signing_key.clone(),
            timestamp: None,
            schedule: config.retry_schedule_ms.clone(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
        };
        enqueue(&sim.webhooks, Job { out, done: None });
    }
}
