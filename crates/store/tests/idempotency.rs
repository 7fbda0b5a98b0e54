//! Idempotency keys (migration 0008) behave the same on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{Duration, Utc};
use store::{Claim, IdempotencyKey, testing::TestDb};

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey {
        principal: "key_1".into(),
        route: "POST /api/integrations/acme/keap/sync".into(),
        key: k.into(),
    }
}

#[tokio::test]
async fn a_key_is_claimed_once_answered_released_taken_over_and_swept() {
    for db in TestDb::all().await {
        let store = db.open().await.unwrap();
        let backend = store.backend();
        let now = Utc::now();
        let day = now + Duration::hours(24);
        let stale = now - Duration::seconds(60);

        // The first claim wins; a second sees it running.
        let k = key("k1");
        assert_eq!(
            store
                .claim_idempotency_key(&k, "h1", now, day, stale)
                .await
                .unwrap(),
            Claim::Claimed,
            "{backend}"
        );
        let Claim::Existing(running) = store
            .claim_idempotency_key(&k, "h1", now, day, stale)
            .await
            .unwrap()
        else {
            panic!("{backend}: claimed twice");
        };
        assert_eq!(running.status, None, "{backend}");
        assert_eq!(running.body_hash, "h1", "{backend}");

        // Completed: the answer reads back; completing again is refused.
        assert!(
            store
                .complete_idempotency_key(&k, 201, 3, b"sealed")
                .await
                .unwrap()
        );
        assert!(
            !store
                .complete_idempotency_key(&k, 500, 3, b"other")
                .await
                .unwrap()
        );
        let Claim::Existing(done) = store
            .claim_idempotency_key(&k, "h2", now, day, stale)
            .await
            .unwrap()
        else {
            panic!("{backend}: a finished key was claimed again");
        };
        assert_eq!(
            (done.status, done.key_id),
            (Some(201), Some(3)),
            "{backend}"
        );
        assert_eq!(done.sealed_response.as_deref(), Some(&b"sealed"[..]));
        // A finished key is not released (only a running claim is).
        store.release_idempotency_key(&k).await.unwrap();
        assert!(matches!(
            store
                .claim_idempotency_key(&k, "h1", now, day, stale)
                .await
                .unwrap(),
            Claim::Existing(_)
        ));

        // Released: the next claim runs again. Other principals' and routes' keys are apart.
        let r = key("k2");
        assert_eq!(
            store
                .claim_idempotency_key(&r, "h", now, day, stale)
                .await
                .unwrap(),
            Claim::Claimed
        );
        store.release_idempotency_key(&r).await.unwrap();
        assert_eq!(
            store
                .claim_idempotency_key(&r, "h", now, day, stale)
                .await
                .unwrap(),
            Claim::Claimed
        );
        let other = IdempotencyKey {
            principal: "admin".into(),
            ..key("k1")
        };
        assert_eq!(
            store
                .claim_idempotency_key(&other, "h", now, day, stale)
                .await
                .unwrap(),
            Claim::Claimed
        );

        // A running claim older than `stale_before` (its process died) is taken over.
        let later = now + Duration::seconds(61);
        assert_eq!(
            store
                .claim_idempotency_key(
                    &r,
                    "h",
                    later,
                    later + Duration::hours(24),
                    later - Duration::seconds(60)
                )
                .await
                .unwrap(),
            Claim::Claimed,
            "{backend}"
        );

        // Expired keys are swept, and an expired key is claimed afresh.
        let tomorrow = now + Duration::hours(25);
        assert_eq!(
            store
                .claim_idempotency_key(&k, "h9", tomorrow, tomorrow + Duration::hours(24), tomorrow)
                .await
                .unwrap(),
            Claim::Claimed,
            "{backend}"
        );
        let swept = store
            .delete_expired_idempotency_keys(tomorrow)
            .await
            .unwrap();
        assert_eq!(
            swept, 2,
            "{backend}: the admin key and k2 expired; k1 was claimed afresh"
        );
        db.cleanup().await;
    }
}
