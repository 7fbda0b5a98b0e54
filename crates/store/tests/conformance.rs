//! The store conformance suite: every test runs against a fresh SQLite database and, when
//! `TEST_DATABASE_URL` is set, a fresh PostgreSQL database, and both must behave the same.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use chrono::Utc;
use domain::{Platform, PublisherId, Region, shapes::IntegrationStatus, shapes::SyncStatus};
use store::{
    EventCursor, EventFilter, NewApiKey, NewEvent, NewIntegration, NewSyncJob, SealedField, Store,
    StoreError, testing::TestDb,
};

/// Runs `body` once per backend with a fresh store.
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

fn sealed(field: &str, key_id: u32, bytes: &[u8]) -> SealedField {
    SealedField {
        field: field.into(),
        key_id,
        ciphertext: bytes.to_vec(),
    }
}

fn new_integration(id: &str, pubid: &str, platform: Platform) -> NewIntegration {
    NewIntegration {
        id: id.into(),
        publisher_id: publisher(pubid),
        platform,
        region: Some(Region::Eu),
        config: serde_json::json!({"fromEmail": "a@example.com"}),
        webhook_id: format!("wh_{id}"),
        credentials: vec![sealed("apiKey", 7, b"sealed-1")],
        now: Utc::now(),
    }
}

#[tokio::test]
async fn settings_are_set_once() {
    each_backend(|s, b| async move {
        assert_eq!(s.get_setting("admin").await.unwrap(), None, "{b}");
        assert!(s.put_setting_if_absent("admin", "h1").await.unwrap(), "{b}");
        assert!(
            !s.put_setting_if_absent("admin", "h2").await.unwrap(),
            "{b}"
        );
        assert_eq!(
            s.get_setting("admin").await.unwrap().as_deref(),
            Some("h1"),
            "{b}"
        );
    })
    .await;
}

#[tokio::test]
async fn settings_are_listed_by_literal_prefix_and_deleted() {
    each_backend(|s, b| async move {
        for k in ["st_a:1", "st_a:1:used", "st_a:2", "stXa:3", "other"] {
            assert!(s.put_setting_if_absent(k, k).await.unwrap(), "{b}");
        }
        let keys: Vec<String> = s
            .settings_with_prefix("st_a:")
            .await
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k, v, "{b}");
                k
            })
            .collect();
        // `_` is literal: `stXa:3` does not match.
        assert_eq!(keys, ["st_a:1", "st_a:1:used", "st_a:2"], "{b}");
        let gone = [
            "st_a:1".to_owned(),
            "st_a:1:used".to_owned(),
            "nope".to_owned(),
        ];
        assert_eq!(s.delete_settings(&gone).await.unwrap(), 2, "{b}");
        assert_eq!(s.get_setting("st_a:1").await.unwrap(), None, "{b}");
        assert_eq!(
            s.get_setting("st_a:2").await.unwrap().as_deref(),
            Some("st_a:2"),
            "{b}"
        );
    })
    .await;
}

#[tokio::test]
async fn api_keys_create_find_list_revoke() {
    each_backend(|s, b| async move {
        let now = Utc::now();
        for (id, p) in [("k1", "pub-a"), ("k2", "pub-a"), ("k3", "pub-b")] {
            s.create_api_key(NewApiKey {
                id: id.into(),
                publisher_id: publisher(p),
                key_hash: format!("hash-{id}"),
                prefix: "ssk_abcd".into(),
                created_at: now,
            })
            .await
            .unwrap();
        }
        let found = s.find_api_key_by_hash("hash-k2").await.unwrap().unwrap();
        assert_eq!(
            (found.id.as_str(), found.publisher_id.as_str()),
            ("k2", "pub-a"),
            "{b}"
        );
        assert!(found.revoked_at.is_none());
        assert!(
            s.find_api_key_by_hash("nope").await.unwrap().is_none(),
            "{b}"
        );

        let listed: Vec<String> = s
            .list_api_keys(&publisher("pub-a"))
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(listed, ["k1", "k2"], "{b}: only pub-a's keys");

        let revoked = s.revoke_api_key("k2").await.unwrap().unwrap();
        let first_revocation = revoked.revoked_at.unwrap();
        let again = s.revoke_api_key("k2").await.unwrap().unwrap();
        assert_eq!(
            again.revoked_at,
            Some(first_revocation),
            "{b}: revoking twice keeps the first time"
        );
        assert!(s.revoke_api_key("missing").await.unwrap().is_none(), "{b}");
        assert!(
            s.find_api_key_by_hash("hash-k2")
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );

        let dup = s
            .create_api_key(NewApiKey {
                id: "k4".into(),
                publisher_id: publisher("pub-a"),
                key_hash: "hash-k1".into(),
                prefix: "x".into(),
                created_at: now,
            })
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict { .. })),
            "{b}: {dup:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn integrations_save_replace_conflict_and_scope() {
    each_backend(|s, b| async move {
        let first = s
            .save_integration(new_integration("int1", "pub-a", Platform::Iterable))
            .await
            .unwrap();
        assert!(!first.replaced, "{b}");
        let rec = &first.integration;
        assert_eq!(rec.status, IntegrationStatus::Connected);
        assert_eq!(rec.region, Some(Region::Eu));
        assert_eq!(rec.config["fromEmail"], "a@example.com");
        assert_eq!(rec.credentials_version, 1);

        // Same id: a replace, new credentials, version bumped, webhook id kept.
        let mut again = new_integration("int1", "pub-a", Platform::Iterable);
        again.webhook_id = "wh_other".into();
        again.credentials = vec![sealed("apiKey", 7, b"sealed-2"), sealed("extra", 7, b"x")];
        let second = s.save_integration(again).await.unwrap();
        assert!(second.replaced, "{b}");
        assert_eq!(
            second.integration.webhook_id, "wh_int1",
            "{b}: webhook URL survives a replace"
        );
        assert_eq!(second.integration.credentials_version, 2);
        let creds = s.get_credentials("int1").await.unwrap().unwrap();
        assert_eq!(creds.fields.len(), 2);
        assert_eq!(creds.field("apiKey").unwrap().ciphertext, b"sealed-2");

        // Another id for the same (publisher, platform): a conflict, nothing changed.
        let conflict = s
            .save_integration(new_integration("int9", "pub-a", Platform::Iterable))
            .await;
        assert!(matches!(conflict, Err(StoreError::Conflict { .. })), "{b}");

        s.save_integration(new_integration("int2", "pub-a", Platform::Keap))
            .await
            .unwrap();
        s.save_integration(new_integration("int3", "pub-b", Platform::Iterable))
            .await
            .unwrap();
        let mine: Vec<Platform> = s
            .list_integrations(&publisher("pub-a"))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.platform)
            .collect();
        assert_eq!(
            mine,
            [Platform::Iterable, Platform::Keap],
            "{b}: only pub-a's, ordered"
        );
        assert!(
            s.list_integrations(&publisher("pub-z"))
                .await
                .unwrap()
                .is_empty()
        );
        // Across publishers, by platform (the Keap idle-token sweep).
        let iterables: Vec<String> = s
            .list_platform_integrations(Platform::Iterable)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(
            iterables,
            ["int1", "int3"],
            "{b}: every publisher's, oldest first"
        );

        let by_hook = s
            .get_integration_by_webhook(Platform::Keap, "wh_int2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_hook.id, "int2");
        assert!(
            s.get_integration_by_webhook(Platform::Iterable, "wh_int2")
                .await
                .unwrap()
                .is_none()
        );

        s.set_integration_status(
            "int2",
            IntegrationStatus::ReauthRequired,
            Some("refresh token revoked"),
        )
        .await
        .unwrap();
        let keap = s
            .get_integration(&publisher("pub-a"), Platform::Keap)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(keap.status, IntegrationStatus::ReauthRequired);
        assert_eq!(keap.status_reason.as_deref(), Some("refresh token revoked"));
    })
    .await;
}

#[tokio::test]
async fn credentials_compare_and_swap() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Keap))
            .await
            .unwrap();
        let v1 = s.get_credentials("int1").await.unwrap().unwrap().version;
        let v2 = s
            .swap_credentials(
                "int1",
                v1,
                vec![sealed("accessToken", 7, b"a2"), sealed("apiKey", 7, b"k2")],
            )
            .await
            .unwrap();
        assert_eq!(v2, Some(v1 + 1), "{b}");
        // A writer holding the old version loses and changes nothing.
        let stale = s
            .swap_credentials("int1", v1, vec![sealed("accessToken", 7, b"stale")])
            .await
            .unwrap();
        assert_eq!(stale, None, "{b}");
        let creds = s.get_credentials("int1").await.unwrap().unwrap();
        assert_eq!(creds.version, v1 + 1);
        assert_eq!(creds.field("accessToken").unwrap().ciphertext, b"a2");
        assert_eq!(creds.field("apiKey").unwrap().ciphertext, b"k2");
        assert!(s.get_credentials("nope").await.unwrap().is_none());

        // Concurrent swaps from the same version: exactly one wins.
        let v = creds.version;
        let (a, c) = tokio::join!(
            s.swap_credentials("int1", v, vec![sealed("accessToken", 7, b"A")]),
            s.swap_credentials("int1", v, vec![sealed("accessToken", 7, b"C")]),
        );
        let wins = [a.unwrap(), c.unwrap()]
            .iter()
            .filter(|r| r.is_some())
            .count();
        assert_eq!(wins, 1, "{b}: exactly one concurrent swap wins");
    })
    .await;
}

#[tokio::test]
async fn rotation_queries_and_reseal_cas() {
    each_backend(|s, b| async move {
        let mut i = new_integration("int1", "pub-a", Platform::Keap);
        i.credentials = vec![
            sealed("a", 1, b"old-a"),
            sealed("b", 1, b"old-b"),
            sealed("c", 2, b"new-c"),
        ];
        s.save_integration(i).await.unwrap();
        assert_eq!(
            s.credential_key_counts().await.unwrap(),
            [(1, 2), (2, 1)],
            "{b}"
        );

        let todo = s.credentials_not_under(2, 100).await.unwrap();
        assert_eq!(todo.len(), 2, "{b}");
        assert_eq!(
            s.credentials_not_under(2, 1).await.unwrap().len(),
            1,
            "{b}: limit"
        );

        assert!(
            s.reseal_credential(&todo[0], &sealed("a", 2, b"new-a"))
                .await
                .unwrap()
        );
        // The row changed under us (a token refresh): the stale reseal must not clobber it.
        s.swap_credentials("int1", 1, vec![sealed("b", 2, b"refreshed-b")])
            .await
            .unwrap()
            .unwrap();
        assert!(
            !s.reseal_credential(&todo[1], &sealed("b", 2, b"resealed-old-b"))
                .await
                .unwrap(),
            "{b}"
        );
        let creds = s.get_credentials("int1").await.unwrap().unwrap();
        assert_eq!(creds.field("b").unwrap().ciphertext, b"refreshed-b");
        assert!(s.credentials_not_under(2, 100).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn delete_removes_integration_and_everything_it_owns() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Iterable))
            .await
            .unwrap();
        s.save_integration(new_integration("int2", "pub-b", Platform::Iterable))
            .await
            .unwrap();
        let job = s
            .insert_sync_job(NewSyncJob {
                id: "job1".into(),
                integration_id: "int1".into(),
                platform: Platform::Iterable,
                kinds: vec!["campaigns".into()],
                full: true,
                now: Utc::now(),
            })
            .await
            .unwrap();
        assert_eq!(job.status, SyncStatus::Queued);
        assert!(job.full);
        assert_eq!(
            s.latest_sync_job("int1").await.unwrap().unwrap().id,
            "job1",
            "{b}"
        );

        let gone = s
            .delete_integration(&publisher("pub-a"), Platform::Iterable)
            .await
            .unwrap();
        assert_eq!(gone.map(|g| g.id).as_deref(), Some("int1"), "{b}");
        assert!(
            s.get_integration(&publisher("pub-a"), Platform::Iterable)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.get_credentials("int1").await.unwrap().is_none());
        assert!(
            s.latest_sync_job("int1").await.unwrap().is_none(),
            "{b}: jobs go too"
        );
        assert!(
            s.credentials_not_under(999, 100)
                .await
                .unwrap()
                .iter()
                .all(|r| r.integration_id != "int1")
        );
        assert!(
            s.delete_integration(&publisher("pub-a"), Platform::Iterable)
                .await
                .unwrap()
                .is_none()
        );
        // The other publisher's integration is untouched.
        assert!(
            s.get_integration(&publisher("pub-b"), Platform::Iterable)
                .await
                .unwrap()
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn data_survives_reopening() {
    for db in TestDb::all().await {
        {
            let s = db.open().await.unwrap();
            s.save_integration(new_integration("int1", "pub-a", Platform::Keap))
                .await
                .unwrap();
            s.put_setting_if_absent("k", "v").await.unwrap();
        }
        let s = db.open().await.unwrap();
        assert!(
            s.get_integration(&publisher("pub-a"), Platform::Keap)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("v"));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn writes_move_the_local_and_shared_epochs() {
    for db in TestDb::all().await {
        let a = db.open().await.unwrap();
        let b = db.open().await.unwrap(); // another process on the same database
        let (local, shared) = (a.local_epoch(), b.shared_epoch().await.unwrap());
        a.save_integration(new_integration("int1", "pub-a", Platform::Iterable))
            .await
            .unwrap();
        assert!(
            a.local_epoch() > local,
            "{}: local epoch moves at once",
            a.backend()
        );
        assert_eq!(
            b.local_epoch(),
            0,
            "the other process's local epoch does not move"
        );
        let after_save = b.shared_epoch().await.unwrap();
        assert!(
            after_save > shared,
            "the other process sees the shared epoch move"
        );
        for write in 0..2 {
            let before = b.shared_epoch().await.unwrap();
            if write == 0 {
                a.set_integration_status("int1", IntegrationStatus::Error, Some("x"))
                    .await
                    .unwrap();
            } else {
                a.revoke_api_key("missing").await.unwrap();
            }
            assert!(b.shared_epoch().await.unwrap() > before, "write {write}");
        }
        // Reads do not move it.
        let before = (a.local_epoch(), a.shared_epoch().await.unwrap());
        a.list_integrations(&publisher("pub-a")).await.unwrap();
        assert_eq!(before, (a.local_epoch(), a.shared_epoch().await.unwrap()));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn credential_lock_serialises_refreshers() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int_lock", "pub-l", Platform::Keap))
            .await
            .unwrap();
        assert!(
            s.lock_credentials("int_none").await.unwrap().is_none(),
            "{b}"
        );
        let first = s.lock_credentials("int_lock").await.unwrap().unwrap();
        let v0 = first.credentials().version;
        // A second locker waits until the first commits, then reads what it wrote.
        let s2 = s.clone();
        let second = tokio::spawn(async move {
            let lock = s2.lock_credentials("int_lock").await.unwrap().unwrap();
            let seen = lock.credentials().clone();
            lock.release().await.unwrap();
            seen
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "{b}: the second locker must wait");
        let v1 = first
            .commit(vec![sealed("refreshToken", 7, b"rotated")])
            .await
            .unwrap();
        assert_eq!(v1, v0 + 1, "{b}");
        let seen = second.await.unwrap();
        assert_eq!(seen.version, v1, "{b}");
        assert_eq!(
            seen.field("refreshToken").unwrap().ciphertext,
            b"rotated".to_vec(),
            "{b}"
        );
        assert!(seen.field("apiKey").is_some(), "{b}: other fields kept");
        // Release writes nothing; a dropped guard rolls back and frees the lock.
        let lock = s.lock_credentials("int_lock").await.unwrap().unwrap();
        drop(lock);
        let lock = s.lock_credentials("int_lock").await.unwrap().unwrap();
        assert_eq!(lock.credentials().version, v1, "{b}");
        lock.release().await.unwrap();
    })
    .await;
}

fn new_event(
    id: &str,
    integration: &str,
    pubid: &str,
    platform: Platform,
    pe: &str,
    kind: &str,
) -> NewEvent {
    NewEvent {
        id: id.into(),
        integration_id: integration.into(),
        publisher_id: pubid.into(),
        platform,
        kind: kind.into(),
        platform_event_id: pe.into(),
        occurred_at: Utc::now(),
        received_at: Utc::now(),
        email: Some("r@example.com".into()),
        user_id: None,
        campaign_id: Some("42".into()),
        data: serde_json::json!({"n": id}),
    }
}

#[tokio::test]
async fn received_events_once_per_platform_id_and_paged_newest_first() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Iterable))
            .await
            .unwrap();
        s.save_integration(new_integration("int2", "pub-a", Platform::Customerio))
            .await
            .unwrap();
        s.save_integration(new_integration("int3", "pub-b", Platform::Iterable))
            .await
            .unwrap();

        let (first, inserted) = s
            .record_event(new_event(
                "evt1",
                "int1",
                "pub-a",
                Platform::Iterable,
                "p1",
                "email.sent",
            ))
            .await
            .unwrap();
        assert!(inserted, "{b}");
        assert_eq!(first.kind, "email.sent");
        assert_eq!(first.data["n"], "evt1");
        assert_eq!(first.campaign_id.as_deref(), Some("42"));
        // A redelivery answers the stored row, not an error.
        let (again, inserted) = s
            .record_event(new_event(
                "evt1b",
                "int1",
                "pub-a",
                Platform::Iterable,
                "p1",
                "email.sent",
            ))
            .await
            .unwrap();
        assert!(!inserted, "{b}");
        assert_eq!(again.id, "evt1");
        assert_eq!(again.seq, first.seq);
        // The same platform id on another integration is another event.
        let (_, inserted) = s
            .record_event(new_event(
                "evt3",
                "int3",
                "pub-b",
                Platform::Iterable,
                "p1",
                "email.sent",
            ))
            .await
            .unwrap();
        assert!(inserted);
        for i in 2..=6 {
            let (int, platform, kind) = if i % 2 == 0 {
                ("int2", Platform::Customerio, "email.opened")
            } else {
                ("int1", Platform::Iterable, "email.clicked")
            };
            s.record_event(new_event(
                &format!("evt-a{i}"),
                int,
                "pub-a",
                platform,
                &format!("p{i}"),
                kind,
            ))
            .await
            .unwrap();
        }

        let a = publisher("pub-a");
        let all = s
            .list_events(&a, &EventFilter::default(), 100, None)
            .await
            .unwrap();
        let ids: Vec<&str> = all.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["evt-a6", "evt-a5", "evt-a4", "evt-a3", "evt-a2", "evt1"],
            "{b}"
        );
        assert!(all.next.is_none());

        // Pages of two with a stable cursor, even when newer events arrive meanwhile.
        let p1 = s
            .list_events(&a, &EventFilter::default(), 2, None)
            .await
            .unwrap();
        assert_eq!(p1.events.len(), 2);
        let c1 = p1.next.unwrap();
        assert_eq!(EventCursor::parse(&c1.to_token()), Some(c1));
        s.record_event(new_event(
            "evt-late",
            "int1",
            "pub-a",
            Platform::Iterable,
            "p-late",
            "email.sent",
        ))
        .await
        .unwrap();
        let p2 = s
            .list_events(&a, &EventFilter::default(), 2, Some(c1))
            .await
            .unwrap();
        let ids: Vec<&str> = p2.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt-a4", "evt-a3"], "{b}");
        let p3 = s
            .list_events(&a, &EventFilter::default(), 2, p2.next)
            .await
            .unwrap();
        let ids: Vec<&str> = p3.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["evt-a2", "evt1"], "{b}");
        assert!(
            p3.next.is_none(),
            "{b}: exactly two left, no empty extra page"
        );

        // Filters.
        let opened = s
            .list_events(
                &a,
                &EventFilter {
                    platform: None,
                    kind: Some("email.opened".into()),
                },
                100,
                None,
            )
            .await
            .unwrap();
        assert_eq!(opened.events.len(), 3);
        let it = s
            .list_events(
                &a,
                &EventFilter {
                    platform: Some(Platform::Iterable),
                    kind: None,
                },
                100,
                None,
            )
            .await
            .unwrap();
        assert!(it.events.iter().all(|e| e.platform == Platform::Iterable));
        assert_eq!(it.events.len(), 4);

        // Tenancy: pub-b sees only its own.
        let other = s
            .list_events(&publisher("pub-b"), &EventFilter::default(), 100, None)
            .await
            .unwrap();
        assert_eq!(other.events.len(), 1);
        assert_eq!(other.events[0].id, "evt3");

        // Disconnect takes the events with it.
        s.delete_integration(&a, Platform::Customerio)
            .await
            .unwrap();
        let left = s
            .list_events(&a, &EventFilter::default(), 100, None)
            .await
            .unwrap();
        assert!(
            left.events.iter().all(|e| e.integration_id == "int1"),
            "{b}"
        );
        assert_eq!(left.events.len(), 4);
    })
    .await;
}

#[test]
fn event_cursors_are_opaque_and_checked() {
    let c = EventCursor(12345);
    let t = c.to_token();
    assert!(!t.contains("12345"));
    assert_eq!(EventCursor::parse(&t), Some(c));
    for bad in [
        "",
        "ev1.",
        "ev1.zz",
        "12345",
        "ev2.3039",
        "ev1.ffffffffffffffffff",
    ] {
        assert_eq!(EventCursor::parse(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn received_events_in_bulk_once_per_platform_id() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Keap))
            .await
            .unwrap();
        s.record_event(new_event(
            "evt0",
            "int1",
            "pub-a",
            Platform::Keap,
            "p5",
            "contact.updated",
        ))
        .await
        .unwrap();
        // 1,200 events (several statements), one already stored and one twice in the batch.
        let mut batch: Vec<NewEvent> = (0..1200)
            .map(|i| {
                new_event(
                    &format!("evt_b{i}"),
                    "int1",
                    "pub-a",
                    Platform::Keap,
                    &format!("p{i}"),
                    "contact.updated",
                )
            })
            .collect();
        batch.push(new_event(
            "evt_dup",
            "int1",
            "pub-a",
            Platform::Keap,
            "p7",
            "contact.updated",
        ));
        assert_eq!(s.record_events(batch).await.unwrap(), 1199, "{b}");
        let page = s
            .list_events(&publisher("pub-a"), &EventFilter::default(), 2000, None)
            .await
            .unwrap();
        assert_eq!(page.events.len(), 1200, "{b}");
        let p5 = page
            .events
            .iter()
            .find(|e| e.platform_event_id == "p5")
            .unwrap();
        assert_eq!(p5.id, "evt0", "{b}: the stored event is kept");
        assert_eq!(s.record_events(Vec::new()).await.unwrap(), 0, "{b}");
    })
    .await;
}

#[tokio::test]
async fn integration_config_can_be_updated_after_connect() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Keap))
            .await
            .unwrap();
        let before = s.local_epoch();
        s.set_integration_config("int1", serde_json::json!({"hooks": [{"key": "7"}]}))
            .await
            .unwrap();
        assert!(s.local_epoch() > before, "{b}: cached lists are dropped");
        let r = s
            .get_integration(&publisher("pub-a"), Platform::Keap)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.config["hooks"][0]["key"], "7", "{b}");
        assert_eq!(r.credentials_version, 1, "{b}: credentials untouched");
    })
    .await;
}

#[tokio::test]
async fn campaign_events_are_one_integrations_events_of_one_campaign_in_a_time_range() {
    each_backend(|s, b| async move {
        s.save_integration(new_integration("int1", "pub-a", Platform::Iterable))
            .await
            .unwrap();
        s.save_integration(new_integration("int2", "pub-b", Platform::Iterable))
            .await
            .unwrap();
        let base = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |h: i64| base + chrono::Duration::hours(h);
        let add = |id: &'static str, int: &'static str, campaign: &'static str, h: i64| {
            let mut e = new_event(id, int, "pub-a", Platform::Iterable, id, "email.opened");
            e.campaign_id = Some(campaign.into());
            e.occurred_at = at(h);
            e
        };
        for e in [
            add("e1", "int1", "42", 1),
            add("e2", "int1", "42", 30),
            add("e3", "int1", "42", 49),
            add("e4", "int1", "43", 2),
            add("e5", "int2", "42", 3),
            add("e0", "int1", "42", -1),
        ] {
            s.record_event(e).await.unwrap();
        }
        // A redelivery (same platform event id) is one event.
        s.record_event(add("e1", "int1", "42", 1)).await.unwrap();
        let got = s
            .campaign_events("int1", "42", at(0), at(48), 100)
            .await
            .unwrap();
        let ids: Vec<&str> = got.iter().map(|e| e.platform_event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"], "{b}");
        assert_eq!(got[0].occurred_at, at(1), "{b}");
        let got = s
            .campaign_events("int1", "42", at(-24), at(72), 2)
            .await
            .unwrap();
        assert_eq!(got.len(), 2, "{b}: the limit holds");
        assert_eq!(got[0].platform_event_id, "e0", "{b}: oldest first");
        assert!(
            s.campaign_events("int1", "nope", at(-24), at(72), 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
