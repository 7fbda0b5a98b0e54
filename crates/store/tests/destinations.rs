//! Event destinations' storage (migration 0010) behaves the same on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use domain::{Platform, PublisherId, Region};
use store::{
    Attempt, DeliveryOutcome, DestinationOwner, DestinationPatch, MessageStatus, NewDestination,
    NewEvent, NewIntegration, OutboundEvent, SealedField, Store, testing::TestDb,
};

async fn each_backend<F, Fut>(body: F)
where
    F: Fn(Arc<dyn Store>, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in TestDb::all().await {
        let store = db.open().await.unwrap();
        let backend = store.backend();
        body(store, backend).await;
        db.cleanup().await;
    }
}

fn publisher(id: &str) -> PublisherId {
    PublisherId::parse(id).unwrap()
}

fn owner(id: &str) -> DestinationOwner {
    DestinationOwner::Publisher(publisher(id))
}

fn new_destination(id: &str, owner: DestinationOwner, types: &[&str]) -> NewDestination {
    NewDestination {
        id: id.into(),
        owner,
        url: format!("https://hooks.example.com/{id}"),
        description: Some("backend".into()),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        platforms: Vec::new(),
        secret_key_id: 1,
        secret: b"sealed-secret".to_vec(),
        now: Utc::now(),
    }
}

async fn integration(store: &Arc<dyn Store>, id: &str, pubid: &str) {
    store
        .save_integration(NewIntegration {
            id: id.into(),
            publisher_id: publisher(pubid),
            platform: Platform::Customerio,
            region: Some(Region::Us),
            config: serde_json::json!({}),
            webhook_id: format!("wh_{id}"),
            credentials: vec![SealedField {
                field: "apiKey".into(),
                key_id: 1,
                ciphertext: b"x".to_vec(),
            }],
            now: Utc::now(),
        })
        .await
        .unwrap();
}

fn event(id: &str, integration: &str, pubid: &str, kind: &str, email: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        integration_id: integration.into(),
        publisher_id: pubid.into(),
        platform: Platform::Customerio,
        kind: kind.into(),
        platform_event_id: format!("pe_{id}"),
        occurred_at: Utc::now(),
        received_at: Utc::now(),
        email: Some(email.into()),
        user_id: None,
        campaign_id: Some("7".into()),
        data: serde_json::json!({"n": id}),
    }
}

fn own_event(id: &str, pubid: &str, reader: Option<&str>) -> OutboundEvent {
    OutboundEvent {
        event_id: id.into(),
        publisher_id: pubid.into(),
        event_type: "sync.succeeded".into(),
        platform: None,
        reader: reader.map(Into::into),
        occurred_at: Utc::now(),
        data: serde_json::json!({"jobId": id}),
    }
}

fn attempt(at: DateTime<Utc>, code: Option<u16>) -> Attempt {
    Attempt {
        at,
        status_code: code,
        latency_ms: 12,
        response: Some("nope".into()),
        error: code.is_none().then(|| "timed out".to_owned()),
    }
}

const WEEK: i64 = 7;

#[tokio::test]
async fn destinations_are_scoped_to_their_owner() {
    each_backend(|store, backend| async move {
        let a = store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        assert!(a.enabled, "{backend}");
        assert_eq!(a.publisher_id.as_deref(), Some("pub_a"));
        store
            .create_destination(new_destination("dst_op", DestinationOwner::Operator, &[]))
            .await
            .unwrap();

        assert!(
            store
                .get_destination(&owner("pub_b"), "dst_a")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get_destination(&DestinationOwner::Operator, "dst_a")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get_destination(&owner("pub_a"), "dst_op")
                .await
                .unwrap()
                .is_none()
        );
        let listed = store.list_destinations(&owner("pub_a")).await.unwrap();
        assert_eq!(
            listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["dst_a"]
        );
        let ops = store
            .list_destinations(&DestinationOwner::Operator)
            .await
            .unwrap();
        assert_eq!(
            ops.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["dst_op"]
        );

        // Another owner changes nothing.
        let patch = DestinationPatch {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(
            store
                .update_destination(&owner("pub_b"), "dst_a", patch.clone(), Utc::now())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !store
                .delete_destination(&owner("pub_b"), "dst_a")
                .await
                .unwrap()
        );

        let patched = store
            .update_destination(
                &owner("pub_a"),
                "dst_a",
                DestinationPatch {
                    url: Some("https://other.example.com/x".into()),
                    description: Some(None),
                    event_types: Some(vec!["email.*".into()]),
                    platforms: Some(vec![Platform::Keap]),
                    enabled: Some(false),
                },
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(patched.url, "https://other.example.com/x");
        assert_eq!(patched.description, None);
        assert_eq!(patched.event_types, ["email.*"]);
        assert_eq!(patched.platforms, [Platform::Keap]);
        assert!(!patched.enabled);

        let until = Utc::now() + Duration::hours(24);
        let rotated = store
            .rotate_destination_secret(
                &owner("pub_a"),
                "dst_a",
                2,
                b"new".to_vec(),
                until,
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rotated.secret, b"new");
        let (old, old_until) = rotated.old_secret.unwrap();
        assert_eq!(old, b"sealed-secret");
        assert!((old_until - until).num_milliseconds().abs() < 5);

        assert!(
            store
                .delete_destination(&owner("pub_a"), "dst_a")
                .await
                .unwrap()
        );
        assert!(store.destination_by_id("dst_a").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_stored_event_becomes_one_message_per_matching_destination() {
    each_backend(|store, backend| async move {
        integration(&store, "int_a", "pub_a").await;
        integration(&store, "int_b", "pub_b").await;
        store
            .create_destination(new_destination("dst_all", owner("pub_a"), &[]))
            .await
            .unwrap();
        store
            .create_destination(new_destination(
                "dst_clicks",
                owner("pub_a"),
                &["email.clicked"],
            ))
            .await
            .unwrap();
        store
            .create_destination(new_destination("dst_op", DestinationOwner::Operator, &[]))
            .await
            .unwrap();
        store
            .create_destination(new_destination("dst_b", owner("pub_b"), &[]))
            .await
            .unwrap();

        let (_, new) = store
            .record_event(event("evt_1", "int_a", "pub_a", "email.opened", "R@x.com"))
            .await
            .unwrap();
        assert!(new);
        // A redelivery (same platform id, our new id) queues nothing more.
        let mut again = event("evt_1b", "int_a", "pub_a", "email.opened", "R@x.com");
        again.platform_event_id = "pe_evt_1".into();
        store.record_event(again).await.unwrap();
        // In bulk too: only the new ones.
        let n = store
            .record_events(vec![
                event("evt_2", "int_a", "pub_a", "email.clicked", "r@x.com"),
                event("evt_3", "int_b", "pub_b", "email.opened", "s@x.com"),
                event("evt_1c", "int_a", "pub_a", "email.opened", "r@x.com"),
            ])
            .await
            .unwrap();
        assert_eq!(n, 3, "{backend}");
        let mut redelivered = event("evt_2b", "int_a", "pub_a", "email.clicked", "r@x.com");
        redelivered.platform_event_id = "pe_evt_2".into();
        assert_eq!(store.record_events(vec![redelivered]).await.unwrap(), 0);

        let ids = |page: store::MessagePage| {
            page.messages
                .into_iter()
                .map(|(m, _)| m.event_id)
                .collect::<Vec<_>>()
        };
        let all = store
            .list_messages("dst_all", None, 10, None)
            .await
            .unwrap();
        assert_eq!(ids(all), ["evt_1c", "evt_2", "evt_1"], "{backend}");
        let clicks = store
            .list_messages("dst_clicks", None, 10, None)
            .await
            .unwrap();
        assert_eq!(ids(clicks), ["evt_2"]);
        let op = store.list_messages("dst_op", None, 10, None).await.unwrap();
        assert_eq!(
            op.messages.len(),
            4,
            "the operator's sees every publisher's"
        );
        let b = store.list_messages("dst_b", None, 10, None).await.unwrap();
        assert_eq!(ids(b), ["evt_3"]);

        // The message is the event's payload, addressed by reader (normalised).
        let (m, attempts) = store
            .list_messages("dst_all", None, 10, None)
            .await
            .unwrap()
            .messages
            .pop()
            .unwrap();
        assert!(attempts.is_empty());
        assert_eq!(m.reader.as_deref(), Some("r@x.com"));
        assert_eq!(m.status, MessageStatus::Pending);
        let body: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(body["type"], "email.opened");
        assert_eq!(body["data"]["id"], "evt_1");
        assert_eq!(body["data"]["publisherId"], "pub_a");

        // Our own events go through publish_events; a disabled destination gets nothing.
        store
            .update_destination(
                &owner("pub_a"),
                "dst_all",
                DestinationPatch {
                    enabled: Some(false),
                    ..Default::default()
                },
                Utc::now(),
            )
            .await
            .unwrap();
        let queued = store
            .publish_events(&[own_event("sync_1", "pub_a", None)], Utc::now())
            .await
            .unwrap();
        assert_eq!(
            queued, 1,
            "only the operator's: dst_clicks filters, dst_all is off"
        );
    })
    .await;
}

#[tokio::test]
async fn claims_keep_each_readers_order_and_the_in_flight_limit() {
    each_backend(|store, backend| async move {
        store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        let now = Utc::now();
        store
            .publish_events(
                &[
                    own_event("e1", "pub_a", Some("r1")),
                    own_event("e2", "pub_a", Some("r1")),
                    own_event("e3", "pub_a", Some("r2")),
                ],
                now,
            )
            .await
            .unwrap();
        let lease = now + Duration::seconds(60);
        let first = store.claim_message("w1", now, lease, 1).await.unwrap();
        assert_eq!(first.as_ref().unwrap().event_id, "e1", "{backend}");
        // The limit of one in flight holds everything else back.
        assert!(
            store
                .claim_message("w2", now, lease, 1)
                .await
                .unwrap()
                .is_none()
        );
        // With room, e2 still waits for e1 (same reader); e3 (another reader) goes.
        let second = store.claim_message("w2", now, lease, 4).await.unwrap();
        assert_eq!(second.unwrap().event_id, "e3");
        assert!(
            store
                .claim_message("w3", now, lease, 4)
                .await
                .unwrap()
                .is_none()
        );

        // e1 fails and is retried later: e2 still waits (e1 is not done or failed).
        let first = first.unwrap();
        assert_eq!(first.attempts, 1);
        let later = now + Duration::seconds(5);
        let done = store
            .finish_message(
                &first.id,
                "w1",
                attempt(now, Some(500)),
                DeliveryOutcome::Retry { next_at: later },
                Duration::days(5),
                "failing",
            )
            .await
            .unwrap();
        assert!(done.recorded && !done.disabled);
        // A lost lease records nothing.
        let lost = store
            .finish_message(
                &first.id,
                "w9",
                attempt(now, Some(200)),
                DeliveryOutcome::Succeeded,
                Duration::days(5),
                "failing",
            )
            .await
            .unwrap();
        assert!(!lost.recorded);
        assert!(
            store
                .claim_message("w3", now, lease, 4)
                .await
                .unwrap()
                .is_none()
        );
        let retried = store
            .claim_message("w3", later, later + Duration::seconds(60), 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((retried.event_id.as_str(), retried.attempts), ("e1", 2));
        store
            .finish_message(
                &retried.id,
                "w3",
                attempt(later, Some(204)),
                DeliveryOutcome::Succeeded,
                Duration::days(5),
                "failing",
            )
            .await
            .unwrap();
        let next = store
            .claim_message("w3", later, later + Duration::seconds(60), 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.event_id, "e2");

        // An expired lease is claimable again (a killed worker's message).
        let after_lease = later + Duration::seconds(61);
        let again = store
            .claim_message("w4", after_lease, after_lease + Duration::seconds(60), 4)
            .await
            .unwrap()
            .unwrap();
        assert!(["e2", "e3"].contains(&again.event_id.as_str()));

        let page = store
            .list_messages("dst_a", Some(MessageStatus::Succeeded), 10, None)
            .await
            .unwrap();
        let (m, attempts) = &page.messages[0];
        assert_eq!(m.event_id, "e1");
        assert_eq!(
            attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
            [Some(500), Some(204)]
        );
    })
    .await;
}

#[tokio::test]
async fn a_destination_failing_for_days_is_disabled_and_a_success_resets_the_streak() {
    each_backend(|store, backend| async move {
        store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        let t0 = Utc::now();
        let events: Vec<_> = (0..3)
            .map(|i| own_event(&format!("e{i}"), "pub_a", None))
            .collect();
        store.publish_events(&events, t0).await.unwrap();
        let run = |at: DateTime<Utc>, code: u16| {
            let store = store.clone();
            async move {
                let m = store
                    .claim_message("w", at, at + Duration::seconds(60), 4)
                    .await
                    .unwrap()
                    .unwrap();
                let outcome = if code < 300 {
                    DeliveryOutcome::Succeeded
                } else {
                    DeliveryOutcome::Failed
                };
                store
                    .finish_message(
                        &m.id,
                        "w",
                        attempt(at, Some(code)),
                        outcome,
                        Duration::days(5),
                        "failing for 5 days",
                    )
                    .await
                    .unwrap()
            }
        };
        assert!(!run(t0, 500).await.disabled);
        let d = store.destination_by_id("dst_a").await.unwrap().unwrap();
        assert!(d.failing_since.is_some(), "{backend}");
        assert!(run(t0 + Duration::days(6), 500).await.disabled);
        let d = store.destination_by_id("dst_a").await.unwrap().unwrap();
        assert!(!d.enabled);
        assert_eq!(d.disabled_reason.as_deref(), Some("failing for 5 days"));
        // Disabled: nothing is claimed.
        assert!(
            store
                .claim_message("w", t0 + Duration::days(WEEK), t0 + Duration::days(8), 4)
                .await
                .unwrap()
                .is_none()
        );
        // Enabling clears the reason and the streak; a success keeps it clear.
        let d = store
            .update_destination(
                &owner("pub_a"),
                "dst_a",
                DestinationPatch {
                    enabled: Some(true),
                    ..Default::default()
                },
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(d.enabled && d.disabled_reason.is_none() && d.failing_since.is_none());
        assert!(!run(t0 + Duration::days(WEEK), 200).await.disabled);
        assert!(
            store
                .destination_by_id("dst_a")
                .await
                .unwrap()
                .unwrap()
                .failing_since
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn retry_and_replay_queue_messages_again() {
    each_backend(|store, backend| async move {
        store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        let t0 = Utc::now() - Duration::hours(2);
        store
            .publish_events(&[own_event("old", "pub_a", None)], t0)
            .await
            .unwrap();
        store
            .publish_events(&[own_event("new", "pub_a", None)], t0 + Duration::hours(1))
            .await
            .unwrap();
        let now = Utc::now();
        for _ in 0..2 {
            let m = store
                .claim_message("w", now, now + Duration::seconds(60), 4)
                .await
                .unwrap()
                .unwrap();
            store
                .finish_message(
                    &m.id,
                    "w",
                    attempt(now, None),
                    DeliveryOutcome::Failed,
                    Duration::days(5),
                    "x",
                )
                .await
                .unwrap();
        }
        assert!(
            store
                .list_messages("dst_a", Some(MessageStatus::Pending), 10, None)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
        let failed = store
            .list_messages("dst_a", Some(MessageStatus::Failed), 1, None)
            .await
            .unwrap();
        assert_eq!(failed.messages.len(), 1);
        assert!(failed.next.is_some(), "{backend}: a second page");
        let older = store
            .list_messages("dst_a", Some(MessageStatus::Failed), 1, failed.next)
            .await
            .unwrap();
        assert_eq!(older.messages[0].0.event_id, "old");
        assert!(older.next.is_none());

        let (m, _) = &older.messages[0];
        let retried = store
            .retry_message("dst_a", &m.id, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (retried.status, retried.attempts),
            (MessageStatus::Pending, 0)
        );
        assert!(
            store
                .retry_message("dst_other", &m.id, now)
                .await
                .unwrap()
                .is_none()
        );
        // Replay from between the two: the newer one only (the older is pending already).
        let n = store
            .replay_messages("dst_a", t0 + Duration::minutes(30), now)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let pending = store
            .list_messages("dst_a", Some(MessageStatus::Pending), 10, None)
            .await
            .unwrap();
        assert_eq!(pending.messages.len(), 2);
        let (_, attempts) = store.get_message("dst_a", &m.id).await.unwrap().unwrap();
        assert_eq!(attempts.len(), 1, "the history is kept");
    })
    .await;
}

#[tokio::test]
async fn concurrent_claimers_take_each_message_once() {
    each_backend(|store, backend| async move {
        store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        let now = Utc::now();
        let events: Vec<_> = (0..40)
            .map(|i| own_event(&format!("e{i}"), "pub_a", Some(&format!("r{i}"))))
            .collect();
        store.publish_events(&events, now).await.unwrap();
        let claimers = (0..4).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let worker = format!("w{w}");
                while let Some(m) = store
                    .claim_message(&worker, now, now + Duration::seconds(60), 100)
                    .await
                    .unwrap()
                {
                    store
                        .finish_message(
                            &m.id,
                            &worker,
                            attempt(now, Some(200)),
                            DeliveryOutcome::Succeeded,
                            Duration::days(5),
                            "x",
                        )
                        .await
                        .unwrap();
                    mine.push(m.event_id);
                }
                mine
            })
        });
        let mut all = Vec::new();
        for c in claimers {
            all.extend(c.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 40, "{backend}: {all:?}");
        assert_eq!(unique.len(), 40);
    })
    .await;
}

#[tokio::test]
async fn erasing_an_address_deletes_its_messages() {
    each_backend(|store, _| async move {
        integration(&store, "int_a", "pub_a").await;
        store
            .create_destination(new_destination("dst_a", owner("pub_a"), &[]))
            .await
            .unwrap();
        store
            .record_event(event(
                "evt_1",
                "int_a",
                "pub_a",
                "email.opened",
                "gone@x.com",
            ))
            .await
            .unwrap();
        store
            .record_event(event(
                "evt_2",
                "int_a",
                "pub_a",
                "email.opened",
                "kept@x.com",
            ))
            .await
            .unwrap();
        let copies = store
            .erase_local_copies(&publisher("pub_a"), "gone@x.com", Utc::now())
            .await
            .unwrap();
        assert_eq!(copies.messages, 1);
        let left = store.list_messages("dst_a", None, 10, None).await.unwrap();
        assert_eq!(left.messages.len(), 1);
        assert_eq!(left.messages[0].0.event_id, "evt_2");
    })
    .await;
}
