//! The sandbox's event stream: once a workspace has a reporting webhook, it reports a modest,
//! steady flow of newsletter activity there (sends, deliveries, opens, clicks, now and then a
//! bounce or an unsubscribe) about its seeded people and sent newsletters, so a new user who
//! connects sees events arrive without firing any by hand. Off unless `Options::event_stream`
//! is set (tests fire their events themselves); above the state (`sim`) and the emitter
//! (`webhooks`), like `reporting`.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use sim_core::{lock, mix};

use crate::{
    sim::{Region, Sim},
    webhooks::{Job, Outgoing, enqueue, event_about},
};

/// Which event the `n`-th tick of a workspace reports, from one hash: mostly sends, deliveries
/// and opens, fewer clicks, one bounce and one unsubscribe in about twenty-five.
pub fn pick_event(h: u64) -> &'static str {
    match h % 100 {
        0..=29 => "email_sent",
        30..=49 => "email_delivered",
        50..=74 => "email_opened",
        75..=91 => "email_clicked",
        92..=95 => "email_bounced",
        _ => "email_unsubscribed",
    }
}

/// Starts the stream: one event per `every` to each workspace that has a reporting webhook.
/// Ends when the simulator is dropped.
pub fn spawn(sim: &Arc<Sim>, every: Duration) {
    let weak = Arc::downgrade(sim);
    tokio::spawn(run(weak, every));
}

async fn run(sim: Weak<Sim>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: wait one period before the first event.
    tick.tick().await;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(sim) = sim.upgrade() else { return };
        for region in [Region::Us, Region::Eu] {
            emit_one(&sim, region, n);
        }
        n = n.wrapping_add(1);
    }
}

/// Reports the `n`-th event of `region`'s stream, if the workspace has a reporting webhook.
fn emit_one(sim: &Sim, region: Region, n: u64) {
    let Some(hook) = lock(&sim.webhooks.reporting)[region.index()].clone() else {
        return;
    };
    let seeded = sim.store(region).seeded.clone();
    let h = mix(seeded.sizes.seed ^ mix(n ^ (u64::from(region == Region::Eu) << 60)));
    let people = seeded.sizes.people.max(1);
    // Newsletters 1 … n-1 were sent (the newest is a draft).
    let sent = seeded.sizes.newsletters.saturating_sub(1).max(1);
    let Some(event) = event_about(
        pick_event(h),
        &seeded,
        (h >> 8) % people,
        1 + (h >> 32) % sent,
    ) else {
        return;
    };
    let config = lock(&sim.webhooks.config).clone();
    sim.control.incr("stream_events");
    let out = Outgoing {
        url: hook.url,
        body: event.to_string().into_bytes(),
        event_id: event["event_id"].as_str().unwrap_or_default().to_owned(),
        signing_key: hook.signing_key,
        timestamp: None,
        schedule: config.retry_schedule_ms,
        timeout: Duration::from_millis(config.timeout_ms.max(1)),
    };
    enqueue(&sim.webhooks, Job { out, done: None });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_mostly_activity_with_rare_bounces_and_unsubscribes() {
        let picks: Vec<&str> = (0..1000).map(|i| pick_event(mix(i))).collect();
        let count = |name: &str| picks.iter().filter(|p| **p == name).count();
        assert!(count("email_opened") > 150, "{}", count("email_opened"));
        assert!(count("email_clicked") > 80);
        for rare in ["email_bounced", "email_unsubscribed"] {
            assert!((10..=80).contains(&count(rare)), "{rare}: {}", count(rare));
        }
    }
}
