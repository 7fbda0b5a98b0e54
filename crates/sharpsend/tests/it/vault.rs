//! Credentials at rest: never in clear, tamper-evident, bound to their row, and rotatable with no
//! downtime.

use domain::{Platform, PublisherId};
use serde_json::json;
use sharpsend::{
    integrations::{self, NewConnection},
    vault_ops,
};
use vault::{KeySource, Vault};

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db, random_master_key};

const SECRET: &str = "sk-live-PLAINTEXT-CANARY-4242";

fn conn(publisher: &str) -> NewConnection {
    NewConnection {
        publisher: PublisherId::parse(publisher).unwrap(),
        platform: Platform::Keap,
        region: None,
        config: json!({}),
        secrets: vec![
            ("accessToken", SECRET.to_owned().into()),
            ("refreshToken", format!("{SECRET}-refresh").into()),
        ],
    }
}

async fn credentials_of(app: &TestApp, publisher: &str) -> serde_json::Value {
    let a = app
        .get(&format!("/api/integrations/{publisher}"), ADMIN_TOKEN)
        .await;
    a.expect_ok(200)["integrations"][0].clone()
}

#[tokio::test]
async fn the_database_file_never_holds_a_secret_in_clear() {
    let db = store::testing::TestDb::sqlite();
    let app = TestApp::spawn(&db).await;
    integrations::connect(&app.state, conn("pub-a"))
        .await
        .unwrap();
    assert_eq!(
        credentials_of(&app, "pub-a").await["credentials"]["accessToken"],
        "…4242"
    );
    // Every file of the database (main file, WAL, shared memory), while the server runs and
    // after it stopped (SQLite folds and removes the WAL on close; a vanished file is skipped).
    scan_for_secret(&db);
    app.stop().await;
    scan_for_secret(&db);
}

fn scan_for_secret(db: &store::testing::TestDb) {
    let path = db.url.trim_start_matches("sqlite://");
    let dir = std::path::Path::new(path).parent().unwrap();
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = match std::fs::read(entry.unwrap().path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{e}"),
        };
        scanned += bytes.len();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret found in clear"
        );
        assert!(
            !bytes.windows(12).any(|w| w == b"PLAINTEXT-CA"),
            "part of the secret found in clear"
        );
    }
    assert!(scanned > 10_000, "the database files were read");
}

#[tokio::test]
async fn a_tampered_row_or_a_wrong_key_is_a_clean_error_not_a_panic_or_plaintext() {
    let db = fresh_db().await;
    let master = random_master_key();
    let app = TestApp::spawn_with(&db, &master, &[]).await;
    integrations::connect(&app.state, conn("pub-a"))
        .await
        .unwrap();
    let record = app
        .state
        .store
        .get_integration(&PublisherId::parse("pub-a").unwrap(), Platform::Keap)
        .await
        .unwrap()
        .unwrap();

    // Flip one ciphertext byte in place.
    let creds = app
        .state
        .store
        .get_credentials(&record.id)
        .await
        .unwrap()
        .unwrap();
    let mut field = creds.field("accessToken").unwrap().clone();
    let last = field.ciphertext.len() - 1;
    field.ciphertext[last] ^= 0x40;
    app.state
        .store
        .swap_credentials(&record.id, creds.version, vec![field])
        .await
        .unwrap()
        .unwrap();
    let shown = credentials_of(&app, "pub-a").await;
    assert_eq!(shown["status"], "error");
    assert!(
        shown["statusReason"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted")
    );
    assert_eq!(shown["credentials"]["accessToken"], "…");
    assert_eq!(
        shown["credentials"]["refreshToken"], "…resh",
        "untouched fields still open"
    );
    assert!(
        integrations::open_secrets(&app.state, &record)
            .await
            .is_err()
    );

    // A blob copied from another row does not open either.
    integrations::connect(&app.state, conn("pub-b"))
        .await
        .unwrap();
    let other = app
        .state
        .store
        .get_integration(&PublisherId::parse("pub-b").unwrap(), Platform::Keap)
        .await
        .unwrap()
        .unwrap();
    let theirs = app
        .state
        .store
        .get_credentials(&other.id)
        .await
        .unwrap()
        .unwrap();
    let creds = app
        .state
        .store
        .get_credentials(&record.id)
        .await
        .unwrap()
        .unwrap();
    let copied = theirs.field("refreshToken").unwrap().clone();
    app.state
        .store
        .swap_credentials(&record.id, creds.version, vec![copied])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        credentials_of(&app, "pub-a").await["credentials"]["refreshToken"],
        "…"
    );
    app.stop().await;

    // The right data under the wrong master key: readable structure, clean error status.
    let wrong = TestApp::spawn_with(&db, &random_master_key(), &[]).await;
    let shown = credentials_of(&wrong, "pub-b").await;
    assert_eq!(shown["status"], "error");
    assert!(!shown.to_string().contains(SECRET));
    wrong.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn env_key_rotation_keeps_old_rows_readable_throughout() {
    let db = fresh_db().await;
    let old = random_master_key();
    let new = random_master_key();
    // Before: everything under the old key, an event destination's signing secret included.
    let app = TestApp::spawn_with(
        &db,
        &old,
        &[("SHARPSEND_DESTINATIONS_ALLOW_PRIVATE", "true")],
    )
    .await;
    integrations::connect(&app.state, conn("pub-a"))
        .await
        .unwrap();
    let destination = sharpsend::destinations::create(
        &app.state,
        store::DestinationOwner::Operator,
        sharpsend::destinations::Registration {
            url: "http://127.0.0.1:9/hook".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .destination;
    app.stop().await;

    // Step 1: replicas restart with the new key active and the old one retired. Old rows still
    // open; new writes use the new key.
    let app =
        TestApp::spawn_with(&db, &new, &[("SHARPSEND_MASTER_KEY_RETIRED", old.as_str())]).await;
    assert_eq!(
        credentials_of(&app, "pub-a").await["credentials"]["accessToken"],
        "…4242"
    );
    integrations::connect(&app.state, conn("pub-b"))
        .await
        .unwrap();
    let counts = app.state.store.credential_key_counts().await.unwrap();
    assert_eq!(counts.len(), 2, "two keys in use mid-rotation: {counts:?}");

    // Step 2: `vault rotate` re-seals what is left under the old key.
    let source = KeySource::Env {
        active: new.clone().into(),
        retired: Some(old.clone().into()),
    };
    let (vault, report) = vault_ops::rotate(&app.state.store, &source).await.unwrap();
    assert_eq!(
        report.resealed, 3,
        "two credentials and a destination secret"
    );
    let counts = app.state.store.credential_key_counts().await.unwrap();
    assert_eq!(counts, vec![(vault.active_key_id().0, 4)]);
    assert_eq!(
        credentials_of(&app, "pub-a").await["credentials"]["accessToken"],
        "…4242"
    );
    app.stop().await;

    // Step 3: the old key is gone from the environment; everything still opens.
    let app = TestApp::spawn_with(&db, &new, &[]).await;
    assert_eq!(credentials_of(&app, "pub-a").await["status"], "connected");
    let resealed = app
        .state
        .store
        .destination_by_id(&destination.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(resealed.secret, destination.secret);
    let keys =
        sharpsend::destinations::signing_keys(&app.state, &resealed, chrono::Utc::now()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        credentials_of(&app, "pub-b").await["credentials"]["refreshToken"],
        "…resh"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn key_file_rotation_is_picked_up_by_a_running_server() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let source = KeySource::File(dir.path().join("master.key"));
    let aad = vault::Aad {
        integration_id: "int_x",
        field: "apiKey",
    };

    // A server's vault, loaded from the key file before the rotation (creating it, as a first
    // `serve` does).
    let running = Vault::load(source.clone()).unwrap();
    let before = running.active_key_id();
    let old_row = running.seal(aad, &SECRET.to_owned().into()).unwrap();

    let (rotated, _) = vault_ops::rotate(&app.state.store, &source).await.unwrap();
    assert_ne!(rotated.active_key_id(), before);
    let new_row = rotated.seal(aad, &SECRET.to_owned().into()).unwrap();
    // The running vault opens rows sealed under the new key (it re-reads the file) and the old.
    for bytes in [&old_row.bytes, &new_row.bytes] {
        let opened = running.open(aad, bytes).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), SECRET);
    }
    assert!(running.knows(rotated.active_key_id()));

    // Prune drops the retired key from the file once nothing needs it.
    vault_ops::prune(&app.state.store, &source).await.unwrap();
    assert_eq!(source.load().unwrap().retired().len(), 0);
    app.stop().await;
    db.cleanup().await;
}
