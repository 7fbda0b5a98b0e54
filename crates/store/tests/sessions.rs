//! Dashboard sessions (migration 0005) behave the same on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use chrono::{Duration, Utc};
use store::{SessionRecord, testing::TestDb};

fn session(id_hash: &str, publisher: Option<&str>, ttl: Duration) -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        id_hash: id_hash.into(),
        publisher_id: publisher.map(Into::into),
        is_admin: publisher.is_none(),
        csrf_token: format!("csrf-{id_hash}"),
        token_key_id: 7,
        sealed_token: vec![1, 2, 3, 255],
        created_at: now,
        expires_at: now + ttl,
    }
}

#[tokio::test]
async fn sessions_round_trip_expire_and_delete() {
    for db in TestDb::all().await {
        let store = db.open().await.unwrap();
        let backend = store.backend();
        let now = Utc::now();

        // Arrange
        let live = session("aa11", Some("acme"), Duration::hours(12));
        store.create_session(live.clone()).await.unwrap();
        store
            .create_session(session("bb22", None, Duration::seconds(-1)))
            .await
            .unwrap();

        // A live session reads back whole; an expired one reads as absent.
        let got = store.get_session("aa11", now).await.unwrap().unwrap();
        assert_eq!(got.publisher_id.as_deref(), Some("acme"), "{backend}");
        assert!(!got.is_admin, "{backend}");
        assert_eq!(got.csrf_token, "csrf-aa11", "{backend}");
        assert_eq!(got.token_key_id, 7, "{backend}");
        assert_eq!(got.sealed_token, vec![1, 2, 3, 255], "{backend}");
        assert!(
            store.get_session("bb22", now).await.unwrap().is_none(),
            "{backend}"
        );
        assert!(
            store.get_session("nope", now).await.unwrap().is_none(),
            "{backend}"
        );

        // A duplicate id is refused.
        assert!(
            store.create_session(live.clone()).await.is_err(),
            "{backend}: duplicate id accepted"
        );

        // An admin picks a publisher.
        assert!(store.set_session_publisher("aa11", "globex").await.unwrap());
        assert!(!store.set_session_publisher("gone", "globex").await.unwrap());
        let got = store.get_session("aa11", now).await.unwrap().unwrap();
        assert_eq!(got.publisher_id.as_deref(), Some("globex"), "{backend}");

        // Expired rows are swept; live ones stay.
        assert_eq!(
            store.delete_expired_sessions(Utc::now()).await.unwrap(),
            1,
            "{backend}"
        );
        assert!(
            store.get_session("aa11", now).await.unwrap().is_some(),
            "{backend}"
        );

        // Sign-out deletes.
        assert!(store.delete_session("aa11").await.unwrap(), "{backend}");
        assert!(!store.delete_session("aa11").await.unwrap(), "{backend}");
        assert!(
            store.get_session("aa11", now).await.unwrap().is_none(),
            "{backend}"
        );
        db.cleanup().await;
    }
}
