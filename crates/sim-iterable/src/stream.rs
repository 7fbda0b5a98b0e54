//! The sandbox's event stream: once a project has a system webhook, it delivers a modest,
//! steady flow of email activity there (sends, opens, clicks, now and then a hard bounce or an
//! unsubscribe) about its generated users and email campaigns, so a new user who connects sees
//! events arrive without firing any by hand. Off unless `Options::event_stream` is set (tests
//! fire their events themselves).

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use serde_json::{Map, Value, json};
use sim_core::mix;

use crate::{
    data::{Gen, fmt_export},
    project::{Project, lock},
    webhooks::{self, SendKind},
};

/// Which event a tick delivers, from one hash: mostly sends and opens, fewer clicks, one hard
/// bounce and one unsubscribe in about twenty-five.
pub fn pick_kind(h: u64) -> &'static str {
    match h % 100 {
        0..=44 => "emailSend",
        45..=74 => "emailOpen",
        75..=91 => "emailClick",
        92..=95 => "emailBounce",
        _ => "emailUnSubscribe",
    }
}

/// Channels of email campaigns: marketing blast (41001) and triggered (41002).
const EMAIL_CHANNELS: [u64; 2] = [41001, 41002];

/// The `n`-th event of the stream as a system webhook body (`{email, userId, eventName,
/// dataFields}`) and the send flag it needs; `None` when the project has no email campaign or no
/// user to speak of.
pub fn event(ds: &Gen, n: u64, now_ms: i64) -> Option<(Value, SendKind)> {
    let h = mix(ds.seed ^ mix(n ^ 0x5743_5245_414d));
    let kind = pick_kind(h);
    let typed = Gen {
        event_type: Some(kind),
        ..ds.clone()
    };
    let events = ds.events.max(1);
    // A generated event of this kind about an email campaign: its user, campaign, template and
    // channel, as the export would show them.
    let mut row = (0..64u64)
        .map(|k| typed.event(mix(h ^ k) % events).1)
        .find(|row| {
            row.get("channelId")
                .and_then(Value::as_u64)
                .is_some_and(|c| EMAIL_CHANNELS.contains(&c))
                && row.contains_key("email")
        })?;
    row.insert("createdAt".into(), json!(fmt_export(now_ms)));
    row.insert(
        "messageId".into(),
        json!(format!("{:016x}{:016x}", mix(h ^ 1), mix(h ^ 2))),
    );
    let send_kind = match (kind, row.get("channelId").and_then(Value::as_u64)) {
        ("emailSend", Some(41002)) => SendKind::Triggered,
        ("emailSend", _) => SendKind::Blast,
        _ => SendKind::Other,
    };
    let mut body = Map::new();
    body.insert(
        "email".into(),
        row.get("email").cloned().unwrap_or_default(),
    );
    if let Some(id) = row.get("userId") {
        body.insert("userId".into(), id.clone());
    }
    body.insert("eventName".into(), json!(kind));
    body.insert("dataFields".into(), Value::Object(row));
    Some((Value::Object(body), send_kind))
}

/// Starts the stream: one event per `every` to the project's system webhooks that want it.
/// Ends when the project is dropped.
pub fn spawn(p: &Arc<Project>, every: Duration) {
    tokio::spawn(run(Arc::downgrade(p), every));
}

async fn run(p: Weak<Project>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: wait one period before the first event.
    tick.tick().await;
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(p) = p.upgrade() else { return };
        if !lock(&p.store).webhooks.iter().any(|w| w.enabled) {
            continue;
        }
        let now = chrono::Utc::now().timestamp_millis();
        if let Some((event, kind)) = event(&p.ds, n, now) {
            p.control.incr("stream_events");
            webhooks::deliver(&p, &event, kind).await;
        }
        n = n.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> Gen {
        Gen {
            seed: 42,
            anchor_ms: 1_767_225_600_000,
            campaigns: 60,
            templates: 80,
            lists: 8,
            users: 500,
            events: 5000,
            event_type: None,
        }
    }

    #[test]
    fn stream_events_are_email_activity_of_generated_users_and_campaigns() {
        let ds = ds();
        let mut kinds = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for n in 0..200 {
            let (e, _) = event(&ds, n, 1_767_225_600_000).expect("an email event");
            let name = e["eventName"].as_str().unwrap().to_owned();
            let f = &e["dataFields"];
            assert!(
                EMAIL_CHANNELS.contains(&f["channelId"].as_u64().unwrap()),
                "{e}"
            );
            let email = e["email"].as_str().unwrap();
            assert!(ds.user_index_by_email(email).is_some(), "{email}");
            assert_eq!(f["createdAt"], "2026-01-01 00:00:00 +00:00");
            if name == "emailBounce" {
                assert_eq!(f["recipientState"], "HardBounce");
            }
            ids.insert(f["messageId"].as_str().unwrap().to_owned());
            kinds.insert(name);
        }
        assert_eq!(ids.len(), 200, "every event has its own messageId");
        for k in [
            "emailSend",
            "emailOpen",
            "emailClick",
            "emailBounce",
            "emailUnSubscribe",
        ] {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
    }

    #[test]
    fn no_email_campaign_no_stream() {
        let ds = Gen {
            campaigns: 0,
            ..ds()
        };
        assert!(event(&ds, 0, 0).is_none());
    }
}
