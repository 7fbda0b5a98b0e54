//! The consent ledger's storage (migration 0009) behaves the same on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use chrono::{Duration, Utc};
use domain::{
    Platform, PublisherId,
    consent::{PropagationStatus as P, Reason},
};
use serde_json::json;
use store::{
    ConsentJobKind, ConsentJobStatus, ConsentOutcome, ErasureStatus, NewAuditEntry, NewErasure,
    NewEvent, NewIntegration, NewPlatformState, NewRecord, NewSuppression, SourceKind, Store,
    SuppressionFilter, SuppressionSource, testing::TestDb,
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

fn row(platform: Platform, status: P, note: Option<&str>) -> NewPlatformState {
    NewPlatformState {
        platform,
        status,
        note: note.map(Into::into),
    }
}

fn webhook_source() -> SuppressionSource {
    SuppressionSource {
        kind: SourceKind::Webhook,
        platform: Some(Platform::Customerio),
        event_id: Some("ev_1".into()),
        principal: None,
    }
}

fn suppression(pubid: &str, email: &str, reason: Reason) -> NewSuppression {
    NewSuppression {
        publisher: publisher(pubid),
        email: email.into(),
        reason,
        source: webhook_source(),
        platforms: vec![
            row(Platform::Customerio, P::Done, Some("source")),
            row(Platform::Iterable, P::Pending, None),
            row(Platform::Keap, P::Skipped, Some("not propagated")),
        ],
        now: Utc::now(),
    }
}

#[tokio::test]
async fn suppressions_are_recorded_once_with_their_platforms_and_jobs() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        let (first, new) = s
            .record_suppression(suppression("acme", "ada@example.com", Reason::Unsubscribed))
            .await
            .unwrap();
        assert!(new, "{backend}");
        assert!(first.id.starts_with("sup_"));
        assert_eq!(first.source, webhook_source());
        let statuses: Vec<_> = first
            .platforms
            .iter()
            .map(|p| (p.platform, p.status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (Platform::Customerio, P::Done),
                (Platform::Iterable, P::Pending),
                (Platform::Keap, P::Skipped)
            ],
            "{backend}"
        );

        // Re-recording keeps the first entry and queues nothing more.
        let (again, new) = s
            .record_suppression(suppression("acme", "ada@example.com", Reason::Manual))
            .await
            .unwrap();
        assert!(!new);
        assert_eq!(again, first, "{backend}");
        let jobs = s.list_consent_jobs(&acme, 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "{backend}: one job per pending platform");
        assert_eq!(jobs[0].kind, ConsentJobKind::OptOut);
        assert_eq!(jobs[0].platform, Platform::Iterable);
        assert_eq!(jobs[0].status, ConsentJobStatus::Queued);
        assert_eq!(jobs[0].email.as_deref(), Some("ada@example.com"));
        assert_eq!(jobs[0].reason, Some(Reason::Unsubscribed));
        assert_eq!(jobs[0].suppression_id.as_deref(), Some(first.id.as_str()));

        // Another publisher's ledger is apart.
        let (other, new) = s
            .record_suppression(suppression("globex", "ada@example.com", Reason::Bounced))
            .await
            .unwrap();
        assert!(new);
        assert_ne!(other.id, first.id);
        assert!(
            s.get_suppression(&publisher("initech"), "ada@example.com")
                .await
                .unwrap()
                .is_none()
        );

        // Delete: gone, a second delete answers false.
        assert!(
            s.delete_suppression(&acme, "ada@example.com")
                .await
                .unwrap()
        );
        assert!(
            !s.delete_suppression(&acme, "ada@example.com")
                .await
                .unwrap()
        );
        assert!(
            s.get_suppression(&acme, "ada@example.com")
                .await
                .unwrap()
                .is_none()
        );
        // Recorded again while the first job is still open: the open job is not duplicated,
        // it now serves the new entry.
        let (renewed, new) = s
            .record_suppression(suppression("acme", "ada@example.com", Reason::Complained))
            .await
            .unwrap();
        assert!(new);
        let jobs = s.list_consent_jobs(&acme, 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "{backend}");
        assert_eq!(jobs[0].suppression_id.as_deref(), Some(renewed.id.as_str()));
    })
    .await;
}

#[tokio::test]
async fn suppressions_are_listed_newest_first_filtered_and_paged() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        for i in 0..5 {
            let reason = if i % 2 == 0 {
                Reason::Unsubscribed
            } else {
                Reason::Bounced
            };
            s.record_suppression(suppression("acme", &format!("r{i}@example.com"), reason))
                .await
                .unwrap();
        }
        s.record_suppression(suppression("globex", "r9@example.com", Reason::Bounced))
            .await
            .unwrap();
        let all = SuppressionFilter::default();
        let first = s.list_suppressions(&acme, &all, 2, None).await.unwrap();
        let emails = |p: &store::SuppressionPage| {
            p.suppressions
                .iter()
                .map(|x| x.email.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            emails(&first),
            vec!["r4@example.com", "r3@example.com"],
            "{backend}"
        );
        assert_eq!(first.suppressions[0].platforms.len(), 3);
        let second = s
            .list_suppressions(&acme, &all, 2, first.next)
            .await
            .unwrap();
        assert_eq!(emails(&second), vec!["r2@example.com", "r1@example.com"]);
        let last = s
            .list_suppressions(&acme, &all, 2, second.next)
            .await
            .unwrap();
        assert_eq!(emails(&last), vec!["r0@example.com"]);
        assert_eq!(last.next, None);

        let bounced = SuppressionFilter {
            email: None,
            reason: Some(Reason::Bounced),
        };
        let page = s
            .list_suppressions(&acme, &bounced, 10, None)
            .await
            .unwrap();
        assert_eq!(emails(&page), vec!["r3@example.com", "r1@example.com"]);
        let one = SuppressionFilter {
            email: Some("r2@example.com".into()),
            reason: None,
        };
        let page = s.list_suppressions(&acme, &one, 10, None).await.unwrap();
        assert_eq!(emails(&page), vec!["r2@example.com"]);
    })
    .await;
}

#[tokio::test]
async fn the_propagate_setting_defaults_to_absent_and_is_replaced() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        assert_eq!(s.get_consent_propagate(&acme).await.unwrap(), None);
        s.put_consent_propagate(&acme, &[Reason::Bounced], Utc::now())
            .await
            .unwrap();
        assert_eq!(
            s.get_consent_propagate(&acme).await.unwrap(),
            Some(vec![Reason::Bounced]),
            "{backend}"
        );
        s.put_consent_propagate(&acme, &[], Utc::now())
            .await
            .unwrap();
        assert_eq!(s.get_consent_propagate(&acme).await.unwrap(), Some(vec![]));
        assert_eq!(
            s.get_consent_propagate(&publisher("globex")).await.unwrap(),
            None
        );
    })
    .await;
}

#[tokio::test]
async fn jobs_are_claimed_oldest_first_leased_retried_and_finished() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        let now = Utc::now();
        let lease = now + Duration::seconds(30);
        let (ada, _) = s
            .record_suppression(suppression("acme", "ada@example.com", Reason::Unsubscribed))
            .await
            .unwrap();
        s.record_suppression(suppression("acme", "bob@example.com", Reason::Unsubscribed))
            .await
            .unwrap();

        let a = s
            .claim_consent_job("w1", Utc::now(), lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.email.as_deref(), Some("ada@example.com"), "{backend}");
        assert_eq!(a.attempts, 1);
        assert_eq!(a.status, ConsentJobStatus::Running);
        // w2 holds its job longer than the retry below waits.
        let long_lease = now + Duration::seconds(300);
        let b = s
            .claim_consent_job("w2", Utc::now(), long_lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.email.as_deref(), Some("bob@example.com"));
        assert!(
            s.claim_consent_job("w3", Utc::now(), lease)
                .await
                .unwrap()
                .is_none(),
            "{backend}: both are leased"
        );

        // Only the lease holder finishes. A retry keeps the row pending with the error.
        let retry = ConsentOutcome::Retry {
            next_at: Utc::now() + Duration::seconds(60),
            error: "429 from Iterable".into(),
        };
        assert!(
            !s.finish_consent_job(&a.id, "w2", retry.clone())
                .await
                .unwrap()
        );
        assert!(s.finish_consent_job(&a.id, "w1", retry).await.unwrap());
        let row = s
            .get_suppression(&acme, "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        let it = row
            .platforms
            .iter()
            .find(|p| p.platform == Platform::Iterable)
            .unwrap();
        assert_eq!(it.status, P::Pending, "{backend}");
        assert_eq!(it.note.as_deref(), Some("429 from Iterable"));
        assert_eq!(it.attempts, 1);
        // Not due yet; due once its time comes, with the attempt counted.
        assert!(
            s.claim_consent_job("w1", Utc::now(), lease)
                .await
                .unwrap()
                .is_none()
        );
        let later = Utc::now() + Duration::seconds(61);
        let again = s
            .claim_consent_job("w1", later, later + Duration::seconds(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (a.id.as_str(), 2));
        assert!(
            s.finish_consent_job(
                &a.id,
                "w1",
                ConsentOutcome::Done {
                    detail: "unsubscribed from channel 7".into()
                }
            )
            .await
            .unwrap()
        );
        let row = s
            .get_suppression(&acme, "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.id, ada.id);
        let it = row
            .platforms
            .iter()
            .find(|p| p.platform == Platform::Iterable)
            .unwrap();
        assert_eq!(
            (it.status, it.note.as_deref(), it.attempts),
            (P::Done, Some("unsubscribed from channel 7"), 2),
            "{backend}"
        );
        // A finished job forgets the address; finishing twice is refused.
        let jobs = s.list_consent_jobs(&acme, 10).await.unwrap();
        let done = jobs.iter().find(|j| j.id == a.id).unwrap();
        assert_eq!(done.status, ConsentJobStatus::Done);
        assert_eq!(done.email, None, "{backend}");
        assert!(
            !s.finish_consent_job(&a.id, "w1", ConsentOutcome::Failed { error: "x".into() })
                .await
                .unwrap()
        );
        // A dead worker's lease expires: another takes the job over.
        let after = long_lease + Duration::seconds(1);
        let taken = s
            .claim_consent_job("w9", after, after + Duration::seconds(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((taken.id.as_str(), taken.attempts), (b.id.as_str(), 2));
        assert!(
            !s.finish_consent_job(
                &b.id,
                "w2",
                ConsentOutcome::Failed {
                    error: "late".into()
                }
            )
            .await
            .unwrap()
        );
        assert!(
            s.finish_consent_job(
                &b.id,
                "w9",
                ConsentOutcome::Failed {
                    error: "401".into()
                }
            )
            .await
            .unwrap()
        );
        let bob = s
            .get_suppression(&acme, "bob@example.com")
            .await
            .unwrap()
            .unwrap();
        let it = bob
            .platforms
            .iter()
            .find(|p| p.platform == Platform::Iterable)
            .unwrap();
        assert_eq!((it.status, it.note.as_deref()), (P::Failed, Some("401")));
        // A new suppression for the same address may now queue a job again.
        s.delete_suppression(&acme, "bob@example.com")
            .await
            .unwrap();
        s.record_suppression(suppression("acme", "bob@example.com", Reason::Unsubscribed))
            .await
            .unwrap();
        assert_eq!(s.list_consent_jobs(&acme, 10).await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn an_erasure_ends_with_its_last_platform_and_never_keeps_the_address() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        let erasure = s
            .create_erasure(NewErasure {
                publisher: acme.clone(),
                email: "ada@example.com".into(),
                platforms: vec![
                    row(Platform::Customerio, P::Pending, None),
                    row(Platform::Iterable, P::Pending, None),
                    row(Platform::Keap, P::Skipped, Some("not connected")),
                ],
                now: Utc::now(),
            })
            .await
            .unwrap();
        assert!(erasure.id.starts_with("era_"));
        assert_eq!(erasure.status, ErasureStatus::Pending, "{backend}");
        assert_eq!(erasure.platforms.len(), 3);
        assert!(
            s.get_erasure(&publisher("globex"), &erasure.id)
                .await
                .unwrap()
                .is_none(),
            "{backend}: another publisher's erasure is not found"
        );
        // A second request while the first is open does not queue the work twice.
        let second = s
            .create_erasure(NewErasure {
                publisher: acme.clone(),
                email: "ada@example.com".into(),
                platforms: vec![row(Platform::Iterable, P::Pending, None)],
                now: Utc::now(),
            })
            .await
            .unwrap();
        assert_eq!(second.status, ErasureStatus::Done, "{backend}");
        assert_eq!(second.platforms[0].status, P::Skipped);
        assert!(
            second.platforms[0]
                .note
                .as_deref()
                .unwrap()
                .contains(&erasure.id)
        );

        let lease = Utc::now() + Duration::seconds(30);
        let j1 = s
            .claim_consent_job("w", Utc::now(), lease)
            .await
            .unwrap()
            .unwrap();
        let j2 = s
            .claim_consent_job("w", Utc::now(), lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(j1.kind, ConsentJobKind::Erase);
        assert_eq!(j1.erasure_id.as_deref(), Some(erasure.id.as_str()));
        assert!(
            s.finish_consent_job(
                &j1.id,
                "w",
                ConsentOutcome::Done {
                    detail: "forgotten".into()
                }
            )
            .await
            .unwrap()
        );
        let mid = s.get_erasure(&acme, &erasure.id).await.unwrap().unwrap();
        assert_eq!(mid.status, ErasureStatus::Pending, "{backend}");
        assert!(
            s.finish_consent_job(
                &j2.id,
                "w",
                ConsentOutcome::Failed {
                    error: "500".into()
                }
            )
            .await
            .unwrap()
        );
        let end = s.get_erasure(&acme, &erasure.id).await.unwrap().unwrap();
        assert_eq!(end.status, ErasureStatus::Failed, "{backend}");
        let failed = end
            .platforms
            .iter()
            .find(|p| p.platform == j2.platform)
            .unwrap();
        assert_eq!(
            (failed.status, failed.note.as_deref()),
            (P::Failed, Some("500"))
        );
        assert!(
            s.list_consent_jobs(&acme, 10)
                .await
                .unwrap()
                .iter()
                .all(|j| j.email.is_none()),
            "{backend}: finished jobs keep no address"
        );
    })
    .await;
}

#[tokio::test]
async fn erasing_local_copies_deletes_what_holds_the_address_and_keeps_a_salted_hash() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        for (id, pubid) in [("int_a", "acme"), ("int_g", "globex")] {
            s.save_integration(NewIntegration {
                id: id.into(),
                publisher_id: publisher(pubid),
                platform: Platform::Keap,
                region: None,
                config: json!({}),
                webhook_id: format!("wh_{id}"),
                credentials: vec![],
                now: Utc::now(),
            })
            .await
            .unwrap();
        }
        let record = |id: &str, email: &str| {
            NewRecord::from_values(
                id.into(),
                &json!({"id": id, "email": email}),
                &json!({"id": id, "email_addresses": [{"email": email, "field": "EMAIL1"}]}),
            )
            .unwrap()
        };
        for int in ["int_a", "int_g"] {
            s.upsert_records(
                int,
                "contacts",
                vec![
                    record("1", "Ada@Example.com"),
                    record("2", "bob@example.com"),
                    // Only the whole string matches: a longer address is another reader.
                    record("3", "ada@example.com.au"),
                    record("4", "a_a@example.com"),
                ],
            )
            .await
            .unwrap();
        }
        let event = |id: &str, int: &str, pubid: &str, email: Option<&str>, data| NewEvent {
            id: id.into(),
            integration_id: int.into(),
            publisher_id: pubid.into(),
            platform: Platform::Keap,
            kind: "email.unsubscribed".into(),
            platform_event_id: id.into(),
            occurred_at: Utc::now(),
            received_at: Utc::now(),
            email: email.map(Into::into),
            user_id: None,
            campaign_id: None,
            data,
        };
        s.record_events(vec![
            event("e1", "int_a", "acme", Some("ADA@example.com"), json!({})),
            event(
                "e2",
                "int_a",
                "acme",
                None,
                json!({"recipient": "ada@example.com"}),
            ),
            event("e3", "int_a", "acme", Some("bob@example.com"), json!({})),
            event("e4", "int_g", "globex", Some("ada@example.com"), json!({})),
        ])
        .await
        .unwrap();
        s.record_suppression(suppression("acme", "ada@example.com", Reason::Unsubscribed))
            .await
            .unwrap();
        s.append_audit(NewAuditEntry {
            publisher: acme.clone(),
            at: Utc::now(),
            principal: "key_1".into(),
            action: "suppression.created".into(),
            detail: json!({"email": "ada@example.com"}),
        })
        .await
        .unwrap();

        assert!(!s.is_erased(&acme, "ada@example.com").await.unwrap());
        let erased = s
            .erase_local_copies(&acme, "ada@example.com", Utc::now())
            .await
            .unwrap();
        assert_eq!(
            (
                erased.records,
                erased.events,
                erased.suppressions,
                erased.jobs,
                erased.audit
            ),
            (1, 2, 1, 1, 1),
            "{backend}"
        );
        assert!(s.is_erased(&acme, "ada@example.com").await.unwrap());
        assert!(!s.is_erased(&acme, "bob@example.com").await.unwrap());
        assert!(
            !s.is_erased(&publisher("globex"), "ada@example.com")
                .await
                .unwrap()
        );

        let left: Vec<String> = s
            .list_records("int_a", "contacts", 10, None, true)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.platform_id)
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, vec!["2", "3", "4"], "{backend}");
        assert_eq!(s.count_records("int_g", "contacts").await.unwrap(), 4);
        assert!(
            s.get_suppression(&acme, "ada@example.com")
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.list_consent_jobs(&acme, 10).await.unwrap().is_empty());
        let audit = s.list_audit(&acme, 10, None).await.unwrap();
        assert!(
            !audit.entries[0].detail.to_string().contains("ada@"),
            "{backend}"
        );
        // Erasing again is harmless.
        let again = s
            .erase_local_copies(&acme, "ada@example.com", Utc::now())
            .await
            .unwrap();
        assert_eq!(again, store::ErasedCopies::default());
    })
    .await;
}

#[tokio::test]
async fn audit_entries_are_listed_newest_first_in_pages() {
    each_backend(|s, backend| async move {
        let acme = publisher("acme");
        for i in 0..3 {
            s.append_audit(NewAuditEntry {
                publisher: acme.clone(),
                at: Utc::now(),
                principal: "admin".into(),
                action: format!("action.{i}"),
                detail: json!({"n": i}),
            })
            .await
            .unwrap();
        }
        s.append_audit(NewAuditEntry {
            publisher: publisher("globex"),
            at: Utc::now(),
            principal: "admin".into(),
            action: "other".into(),
            detail: json!({}),
        })
        .await
        .unwrap();
        let first = s.list_audit(&acme, 2, None).await.unwrap();
        let actions: Vec<_> = first.entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["action.2", "action.1"], "{backend}");
        assert_eq!(first.entries[0].detail, json!({"n": 2}));
        let rest = s.list_audit(&acme, 2, first.next).await.unwrap();
        assert_eq!(rest.entries.len(), 1);
        assert_eq!(rest.entries[0].action, "action.0");
        assert_eq!(rest.next, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_take_the_same_job() {
    for db in TestDb::all().await {
        let s = db.open().await.unwrap();
        let backend = s.backend();
        for i in 0..12 {
            s.record_suppression(suppression(
                "acme",
                &format!("r{i}@example.com"),
                Reason::Unsubscribed,
            ))
            .await
            .unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let worker = format!("w{w}");
                let mut mine = Vec::new();
                while let Some(job) = s
                    .claim_consent_job(&worker, Utc::now(), Utc::now() + Duration::seconds(60))
                    .await
                    .unwrap()
                {
                    mine.push(job.id.clone());
                    assert!(
                        s.finish_consent_job(
                            &job.id,
                            &worker,
                            ConsentOutcome::Done {
                                detail: "ok".into()
                            }
                        )
                        .await
                        .unwrap()
                    );
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let claimed = all.len();
        all.sort();
        all.dedup();
        assert_eq!(
            (claimed, all.len()),
            (12, 12),
            "{backend}: each job claimed once"
        );
        db.cleanup().await;
    }
}
