//! The sync engine's storage, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL: one active
//! job per integration, leases that expire and are taken over, page commits that only the lease
//! holder can make, inclusive re-reads that do not double, and deletes only when asked.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::{collections::BTreeMap, sync::Arc};

use chrono::{Duration, Utc};
use domain::{Platform, PublisherId, shapes::SyncStatus};
use serde_json::json;
use store::{
    JobOutcome, KindFinish, NewIntegration, NewRecord, NewSyncJob, PageCommit, SealedField, Store,
    testing::TestDb,
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

async fn integration(s: &Arc<dyn Store>, id: &str) {
    integration_of(s, id, "pub-sync").await;
}

async fn integration_of(s: &Arc<dyn Store>, id: &str, publisher: &str) {
    s.save_integration(NewIntegration {
        id: id.into(),
        publisher_id: PublisherId::parse(publisher).unwrap(),
        platform: Platform::Keap,
        region: None,
        config: json!({}),
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

fn job(id: &str, integration: &str) -> NewSyncJob {
    NewSyncJob {
        id: id.into(),
        integration_id: integration.into(),
        platform: Platform::Keap,
        kinds: vec!["contacts".into()],
        full: false,
        now: Utc::now(),
    }
}

fn rec(id: &str, v: i64) -> NewRecord {
    let v = json!({ "id": id, "v": v });
    NewRecord::from_values(id.into(), &v, &v).unwrap()
}

fn page(job: &str, worker: &str, records: Vec<NewRecord>, next: Option<&str>) -> PageCommit {
    PageCommit {
        job_id: job.into(),
        worker: worker.into(),
        integration_id: "int_a".into(),
        kind: "contacts".into(),
        records,
        next: next.map(Into::into),
        from_start: true,
        counts: BTreeMap::from([("contacts".to_owned(), 1)]),
        now: Utc::now(),
    }
}

fn finish(job: &str, worker: &str, delete_unseen: bool) -> KindFinish {
    KindFinish {
        job_id: job.into(),
        worker: worker.into(),
        integration_id: "int_a".into(),
        kind: "contacts".into(),
        watermark: Some("w1".into()),
        delete_unseen,
        listing_started: Utc::now(),
        deleted: BTreeMap::new(),
        now: Utc::now(),
    }
}

#[tokio::test]
async fn one_active_job_per_integration() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        let (first, created) = s.enqueue_sync_job(job("j1", "int_a")).await.unwrap();
        assert!(created, "{b}");
        let (again, created) = s.enqueue_sync_job(job("j2", "int_a")).await.unwrap();
        assert!(!created, "{b}");
        assert_eq!(again.id, first.id, "{b}");
        // Concurrent enqueuers still make one job.
        let (x, y) = tokio::join!(
            s.enqueue_sync_job(job("j3", "int_a")),
            s.enqueue_sync_job(job("j4", "int_a"))
        );
        assert_eq!(x.unwrap().0.id, "j1", "{b}");
        assert_eq!(y.unwrap().0.id, "j1", "{b}");
        // Once it ends, a new one may be queued.
        let now = Utc::now();
        let claimed = s
            .claim_sync_job("w1", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.status, SyncStatus::Running, "{b}");
        assert_eq!(claimed.attempts, 1, "{b}");
        assert!(
            s.finish_sync_job("j1", "w1", JobOutcome::Succeeded, Utc::now())
                .await
                .unwrap()
        );
        let (next, created) = s.enqueue_sync_job(job("j5", "int_a")).await.unwrap();
        assert!(created && next.id == "j5", "{b}");
        assert_eq!(s.list_sync_jobs("int_a", 10).await.unwrap()[0].id, "j5");
        assert!(
            s.get_sync_job("other", "j5").await.unwrap().is_none(),
            "{b}"
        );
    })
    .await;
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_the_old_holder_can_no_longer_commit() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        s.enqueue_sync_job(job("j1", "int_a")).await.unwrap();
        let t0 = Utc::now();
        let a = s
            .claim_sync_job("wa", t0, t0 + Duration::seconds(5), None)
            .await
            .unwrap();
        assert!(a.is_some(), "{b}");
        // While the lease holds, nobody else gets the job.
        assert!(
            s.claim_sync_job("wb", t0, t0 + Duration::seconds(5), None)
                .await
                .unwrap()
                .is_none(),
            "{b}"
        );
        assert!(
            s.commit_sync_page(page("j1", "wa", vec![rec("1", 1)], Some("c1")))
                .await
                .unwrap()
        );
        // Worker A stalls; its lease runs out and B takes the job at its checkpoint.
        let later = t0 + Duration::seconds(6);
        let taken = s
            .claim_sync_job("wb", later, later + Duration::seconds(5), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.attempts, 2, "{b}");
        assert_eq!(taken.pages, 1, "{b}");
        let cp = s
            .get_checkpoint("int_a", "contacts")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.run_job_id.as_deref(), Some("j1"), "{b}");
        assert_eq!(cp.run_cursor.as_deref(), Some("c1"), "{b}");
        assert!(!cp.run_done, "{b}");
        // A wakes up: every write it tries is refused.
        assert!(
            !s.commit_sync_page(page("j1", "wa", vec![rec("2", 1)], Some("c2")))
                .await
                .unwrap(),
            "{b}"
        );
        assert!(!s.renew_sync_lease("j1", "wa", later).await.unwrap(), "{b}");
        assert!(
            s.finish_sync_kind(finish("j1", "wa", true))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !s.finish_sync_job("j1", "wa", JobOutcome::Succeeded, later)
                .await
                .unwrap()
        );
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            1,
            "{b}"
        );
        assert!(s.renew_sync_lease("j1", "wb", later).await.unwrap(), "{b}");
    })
    .await;
}

#[tokio::test]
async fn pages_upsert_without_doubles_and_only_complete_listings_delete() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        s.enqueue_sync_job(job("j1", "int_a")).await.unwrap();
        let now = Utc::now();
        s.claim_sync_job("w", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        // The boundary record appears on both pages (inclusive cursor), and twice in one page.
        assert!(
            s.commit_sync_page(page(
                "j1",
                "w",
                vec![rec("1", 1), rec("2", 1), rec("2", 2)],
                Some("c")
            ))
            .await
            .unwrap()
        );
        assert!(
            s.commit_sync_page(page("j1", "w", vec![rec("2", 2), rec("3", 1)], None))
                .await
                .unwrap()
        );
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            3,
            "{b}"
        );
        let stored = s
            .list_records("int_a", "contacts", 10, None, false)
            .await
            .unwrap();
        let two = stored.iter().find(|r| r.platform_id == "2").unwrap();
        assert_eq!(two.raw["v"], 2, "{b}: the later copy wins");
        assert_eq!(
            s.finish_sync_kind(finish("j1", "w", true)).await.unwrap(),
            Some(0)
        );
        s.finish_sync_job("j1", "w", JobOutcome::Succeeded, Utc::now())
            .await
            .unwrap();

        // An incremental run that does not see 1 and 3 deletes nothing…
        s.enqueue_sync_job(job("j2", "int_a")).await.unwrap();
        let now = Utc::now();
        s.claim_sync_job("w", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        s.commit_sync_page(page("j2", "w", vec![rec("2", 3)], None))
            .await
            .unwrap();
        assert_eq!(
            s.finish_sync_kind(finish("j2", "w", false)).await.unwrap(),
            Some(0)
        );
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            3,
            "{b}"
        );
        // …and the newest change comes first.
        let first = &s
            .list_records("int_a", "contacts", 1, None, false)
            .await
            .unwrap()[0];
        assert_eq!(first.platform_id, "2", "{b}");
        // A failed run deletes nothing either (it never reaches finish_sync_kind).
        s.finish_sync_job(
            "j2",
            "w",
            JobOutcome::Failed {
                code: "CONNECTION_FAILED".into(),
                message: "x".into(),
            },
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            3,
            "{b}"
        );

        // A complete listing from the start that lacks 1 and 3 marks them deleted.
        s.enqueue_sync_job(job("j3", "int_a")).await.unwrap();
        let now = Utc::now();
        s.claim_sync_job("w", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        s.commit_sync_page(page("j3", "w", vec![rec("2", 3)], None))
            .await
            .unwrap();
        assert_eq!(
            s.finish_sync_kind(finish("j3", "w", true)).await.unwrap(),
            Some(2)
        );
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            1,
            "{b}"
        );
        let all = s
            .list_records("int_a", "contacts", 10, None, true)
            .await
            .unwrap();
        assert_eq!(
            all.iter().filter(|r| r.deleted_at.is_some()).count(),
            2,
            "{b}"
        );
        let j3 = s.get_sync_job("int_a", "j3").await.unwrap().unwrap();
        assert_eq!(j3.deleted.get("contacts"), Some(&2), "{b}");
        let cp = s
            .get_checkpoint("int_a", "contacts")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cp.watermark.as_deref(), Some("w1"), "{b}");
        assert_eq!(cp.run_cursor, None, "{b}");
        assert!(cp.run_done && cp.run_job_id.as_deref() == Some("j3"), "{b}");
        s.finish_sync_job("j3", "w", JobOutcome::Succeeded, Utc::now())
            .await
            .unwrap();
        // A webhook delivery during a full listing: its record is kept even though the listing
        // (which had passed it) did not see it, and a record the listing saw stays seen.
        s.enqueue_sync_job(job("j4", "int_a")).await.unwrap();
        let now = Utc::now();
        s.claim_sync_job("w", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        let started = Utc::now();
        s.commit_sync_page(page("j4", "w", vec![rec("2", 4)], None))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        s.upsert_records("int_a", "contacts", vec![rec("2", 5), rec("7", 1)])
            .await
            .unwrap();
        let mut f = finish("j4", "w", true);
        f.listing_started = started;
        assert_eq!(s.finish_sync_kind(f).await.unwrap(), Some(0), "{b}");
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            2,
            "{b}"
        );

        // A webhook delivery revives one.
        s.upsert_records("int_a", "contacts", vec![rec("1", 9)])
            .await
            .unwrap();
        assert_eq!(
            s.count_records("int_a", "contacts").await.unwrap(),
            3,
            "{b}"
        );
        assert_eq!(
            s.delete_records("int_a", "contacts", &["1".into()])
                .await
                .unwrap(),
            1
        );
    })
    .await;
}

/// Runs job `id` on `integration` to the end: one page of `records` for each `(kind, records)`,
/// then each kind finished (`delete_unseen` as given); returns each kind's deleted count.
async fn run_job(
    s: &Arc<dyn Store>,
    id: &str,
    integration: &str,
    pages: Vec<(&str, Vec<NewRecord>)>,
    delete_unseen: bool,
) -> Vec<Option<u64>> {
    s.enqueue_sync_job(job(id, integration)).await.unwrap();
    let now = Utc::now();
    let claimed = s
        .claim_sync_job("w", now, now + Duration::seconds(30), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id);
    let mut deleted = Vec::new();
    for (kind, records) in pages {
        let mut p = page(id, "w", records, None);
        p.integration_id = integration.into();
        p.kind = kind.into();
        assert!(s.commit_sync_page(p).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut f = finish(id, "w", delete_unseen);
        f.integration_id = integration.into();
        f.kind = kind.into();
        f.listing_started = Utc::now();
        deleted.push(s.finish_sync_kind(f).await.unwrap());
    }
    s.finish_sync_job(id, "w", JobOutcome::Succeeded, Utc::now())
        .await
        .unwrap();
    deleted
}

/// (live, tombstoned) platform ids of one integration's kind, sorted.
async fn live_and_deleted(
    s: &Arc<dyn Store>,
    integration: &str,
    kind: &str,
) -> (Vec<String>, Vec<String>) {
    let all = s
        .list_records(integration, kind, 100, None, true)
        .await
        .unwrap();
    let ids = |deleted: bool| {
        let mut v: Vec<String> = all
            .iter()
            .filter(|r| r.deleted_at.is_some() == deleted)
            .map(|r| r.platform_id.clone())
            .collect();
        v.sort();
        v
    };
    (ids(false), ids(true))
}

/// The delete-unseen step (issue 15 gave it an index of its own and three range conditions in
/// place of `<>`): records the finishing job saw survive; records last seen by an older job —
/// whose id sorts before or after the finishing job's — or never seen by a job (a webhook's)
/// are tombstoned; another integration's records and another kind's are untouched; a record
/// already tombstoned is not counted again.
#[tokio::test]
async fn delete_unseen_tombstones_only_this_kinds_unseen_records() {
    let ids = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        integration_of(&s, "int_b", "pub-other").await;
        // Seen last by j_a (sorts before j_m), j_z (after j_m), or by no job (a webhook).
        let seen_a = vec![rec("1", 1), rec("2", 1)];
        let tags = vec![rec("t1", 1)];
        assert_eq!(
            run_job(
                &s,
                "j_a",
                "int_a",
                vec![("contacts", seen_a), ("tags", tags)],
                false
            )
            .await,
            vec![Some(0), Some(0)],
            "{b}"
        );
        let seen_z = vec![rec("3", 1), rec("4", 1)];
        run_job(&s, "j_z", "int_a", vec![("contacts", seen_z)], false).await;
        s.upsert_records("int_a", "contacts", vec![rec("5", 1)])
            .await
            .unwrap();
        // Another integration, the same platform ids, never listed again.
        let other = vec![rec("1", 1), rec("3", 1), rec("5", 1)];
        run_job(&s, "j_b", "int_b", vec![("contacts", other)], false).await;

        // A full listing by j_m that sees 2, 4 and a new 6.
        let full = vec![rec("2", 1), rec("4", 2), rec("6", 1)];
        assert_eq!(
            run_job(&s, "j_m", "int_a", vec![("contacts", full)], true).await,
            vec![Some(3)],
            "{b}"
        );
        assert_eq!(
            live_and_deleted(&s, "int_a", "contacts").await,
            (ids(&["2", "4", "6"]), ids(&["1", "3", "5"])),
            "{b}"
        );
        assert_eq!(
            live_and_deleted(&s, "int_a", "tags").await,
            (ids(&["t1"]), ids(&[])),
            "{b}: another kind"
        );
        assert_eq!(
            live_and_deleted(&s, "int_b", "contacts").await,
            (ids(&["1", "3", "5"]), ids(&[])),
            "{b}: another integration"
        );
        let j_m = s.get_sync_job("int_a", "j_m").await.unwrap().unwrap();
        assert_eq!(j_m.deleted.get("contacts"), Some(&3), "{b}");

        // The next full listing sees the same records: nothing more is deleted, and the
        // tombstones keep their place in the change order.
        let before = s
            .list_records("int_a", "contacts", 100, None, true)
            .await
            .unwrap();
        let again = vec![rec("2", 1), rec("4", 2), rec("6", 1)];
        assert_eq!(
            run_job(&s, "j_n", "int_a", vec![("contacts", again)], true).await,
            vec![Some(0)],
            "{b}"
        );
        let after = s
            .list_records("int_a", "contacts", 100, None, true)
            .await
            .unwrap();
        let seqs = |v: &[store::StoredRecord]| {
            let mut v: Vec<(String, i64)> =
                v.iter().map(|r| (r.platform_id.clone(), r.seq)).collect();
            v.sort();
            v
        };
        assert_eq!(seqs(&after), seqs(&before), "{b}");
    })
    .await;
}

#[tokio::test]
async fn records_page_newest_first_with_a_stable_cursor() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        let records: Vec<_> = (0..25).map(|i| rec(&format!("r{i:02}"), i)).collect();
        s.upsert_records("int_a", "contacts", records)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s
                .list_records("int_a", "contacts", 10, after.clone(), false)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            let last = page.last().unwrap();
            after = Some((last.seq, last.platform_id.clone()));
            seen.extend(page.into_iter().map(|r| r.platform_id));
        }
        assert_eq!(seen.len(), 25, "{b}");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 25, "{b}: no record twice");
        assert_eq!(seen[0], "r24", "{b}: newest first");
    })
    .await;
}

#[tokio::test]
async fn upserts_keep_unchanged_records_in_place_across_statement_sizes() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        // More than one SQLite statement's worth (1,000 rows), and PostgreSQL's one UNNEST.
        let first: Vec<_> = (0..2_500).map(|i| rec(&format!("r{i:04}"), 1)).collect();
        assert_eq!(
            s.upsert_records("int_a", "contacts", first).await.unwrap(),
            2_500,
            "{b}"
        );
        assert_eq!(s.count_records("int_a", "contacts").await.unwrap(), 2_500);
        let before = s
            .list_records("int_a", "contacts", 3_000, None, false)
            .await
            .unwrap();
        let seq_of = |rows: &[store::StoredRecord], id: &str| {
            rows.iter().find(|r| r.platform_id == id).unwrap().seq
        };
        // Again, with one record changed: it moves to the front; the others keep their place.
        let again: Vec<_> = (0..2_500)
            .map(|i| rec(&format!("r{i:04}"), if i == 1_234 { 2 } else { 1 }))
            .collect();
        s.upsert_records("int_a", "contacts", again).await.unwrap();
        let after = s
            .list_records("int_a", "contacts", 3_000, None, false)
            .await
            .unwrap();
        assert_eq!(after.len(), 2_500, "{b}");
        assert_eq!(
            after[0].platform_id, "r1234",
            "{b}: the changed record first"
        );
        assert_eq!(after[0].raw["v"], 2);
        assert!(seq_of(&after, "r1234") > seq_of(&before, "r1234"), "{b}");
        for id in ["r0000", "r0999", "r1000", "r2499"] {
            assert_eq!(
                seq_of(&after, id),
                seq_of(&before, id),
                "{b}: {id} kept its place"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn records_by_platform_id_skip_absent_deleted_and_other_kinds() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        // More ids than one query chunk holds.
        let records: Vec<_> = (0..600).map(|i| rec(&format!("m{i:03}"), i)).collect();
        s.upsert_records("int_a", "metrics", records).await.unwrap();
        s.upsert_records("int_a", "contacts", vec![rec("m001", 1)])
            .await
            .unwrap();
        s.delete_records("int_a", "metrics", &["m002".to_owned()])
            .await
            .unwrap();
        let mut ids: Vec<String> = (0..600).map(|i| format!("m{i:03}")).collect();
        ids.push("absent".into());
        let mut got: Vec<String> = s
            .get_records("int_a", "metrics", &ids)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                assert_eq!(r.kind, "metrics");
                r.platform_id
            })
            .collect();
        got.sort();
        assert_eq!(got.len(), 599, "{b}: all but the deleted and the absent");
        assert!(!got.contains(&"m002".to_owned()), "{b}");
        assert!(
            s.get_records("int_a", "metrics", &[])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn retries_release_and_the_schedule_race() {
    each_backend(|s, b| async move {
        integration(&s, "int_a").await;
        s.enqueue_sync_job(job("j1", "int_a")).await.unwrap();
        let now = Utc::now();
        s.claim_sync_job("w", now, now + Duration::seconds(30), None)
            .await
            .unwrap()
            .unwrap();
        let at = now + Duration::seconds(60);
        s.finish_sync_job(
            "j1",
            "w",
            JobOutcome::Retry {
                at,
                code: "RATE_LIMIT_EXCEEDED".into(),
                message: "slow".into(),
            },
            now,
        )
        .await
        .unwrap();
        // Not due yet.
        assert!(
            s.claim_sync_job("w", now, now, None)
                .await
                .unwrap()
                .is_none(),
            "{b}"
        );
        let shown = s
            .get_sync_job("int_a", "j1")
            .await
            .unwrap()
            .unwrap()
            .to_shape();
        assert_eq!(shown.status, SyncStatus::Queued, "{b}");
        assert_eq!(shown.error.unwrap().code, "RATE_LIMIT_EXCEEDED", "{b}");
        assert!(shown.next_attempt_at.is_some(), "{b}");
        let due = at + Duration::seconds(1);
        let again = s
            .claim_sync_job("w", due, due + Duration::seconds(30), Some("j1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.attempts, 2, "{b}");
        // Shutdown gives the run back without counting it.
        s.finish_sync_job("j1", "w", JobOutcome::Release, due)
            .await
            .unwrap();
        let back = s.get_sync_job("int_a", "j1").await.unwrap().unwrap();
        assert_eq!((back.status, back.attempts), (SyncStatus::Queued, 1), "{b}");

        // The scheduler: a never-synced integration is due; one replica wins the move.
        let due = s.due_integrations(Utc::now(), 10).await.unwrap();
        assert_eq!(due.len(), 1, "{b}");
        let next = Utc::now() + Duration::minutes(60);
        assert!(s.set_next_sync("int_a", None, next).await.unwrap(), "{b}");
        assert!(!s.set_next_sync("int_a", None, next).await.unwrap(), "{b}");
        assert!(
            s.due_integrations(Utc::now(), 10).await.unwrap().is_empty(),
            "{b}"
        );
        let stored = s
            .due_integrations(next + Duration::seconds(1), 10)
            .await
            .unwrap();
        assert_eq!(
            stored[0].next_sync_at.map(|t| t.timestamp_millis()),
            Some(next.timestamp_millis())
        );
        assert!(
            s.set_next_sync(
                "int_a",
                stored[0].next_sync_at,
                next + Duration::minutes(60)
            )
            .await
            .unwrap(),
            "{b}"
        );
    })
    .await;
}
