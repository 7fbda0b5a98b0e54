//! A million generated contacts: served lazily, paged by offset (v1) and token (v2) with flat
//! memory. The measuring walk is `#[ignore]`d (it takes about a minute in a debug build):
//! `cargo test -p sim-keap --test it memory -- --ignored --nocapture`.

use std::time::Instant;

use reqwest::StatusCode;

use crate::common::{opts, start};

const MILLION: u64 = 1_000_000;

async fn million() -> crate::common::Sim {
    let mut o = opts();
    o.contacts = MILLION;
    start(o).await
}

#[tokio::test]
async fn a_million_contacts_are_generated_lazily() {
    let s = million().await;
    let b = s
        .get("/crm/rest/v1/contacts?limit=1000&offset=999000")
        .await
        .json();
    assert_eq!(b["count"], MILLION);
    let page = b["contacts"].as_array().unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page[0]["id"], 999_001);
    assert_eq!(page[999]["id"], MILLION);
    let email = page[5]["email_addresses"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = s
        .get(&format!("/crm/rest/v1/contacts?email={email}"))
        .await
        .json();
    assert_eq!(found["contacts"][0]["id"], 999_006);
    assert_eq!(
        s.get("/crm/rest/v2/contacts/1000000").await.status,
        StatusCode::OK
    );
    let stats = s.ctl.get("/_sim/stats").await.unwrap();
    assert_eq!(stats["contacts"], MILLION);
    assert_eq!(stats["overlayContacts"], 0, "reads store nothing");
}

/// Resident memory of this process in KiB (`VmRSS` / `VmHWM` of /proc/self/status).
fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
#[ignore = "walks 2,000 pages; run explicitly to measure memory"]
async fn walk_a_million_contacts_and_measure_memory() {
    let before = proc_kib("VmRSS:");
    let s = million().await;
    // 2,000 requests in about a minute would trip Keap's 1,500/min quota: lift the limits.
    s.ctl
        .post(
            "/_sim/limits",
            &serde_json::json!({
                "oauth": {"spikePerSecond": 100_000, "perMinute": 10_000_000, "perDay": 10_000_000},
                "tenantPerMinute": 10_000_000, "tenantPerDay": 10_000_000,
            }),
        )
        .await
        .unwrap();
    let started = proc_kib("VmRSS:");

    let t = Instant::now();
    let mut seen = 0u64;
    let mut offset = 0u64;
    let mut rss_v1_mid = 0;
    loop {
        let b = s
            .get(&format!("/crm/rest/v1/contacts?limit=1000&offset={offset}"))
            .await
            .json();
        let n = b["contacts"].as_array().unwrap().len() as u64;
        if n == 0 {
            break;
        }
        seen += n;
        offset += 1000;
        if offset == 500_000 {
            rss_v1_mid = proc_kib("VmRSS:");
        }
    }
    assert_eq!(seen, MILLION);
    let v1_secs = t.elapsed().as_secs_f64();
    let after_v1 = proc_kib("VmRSS:");

    let t = Instant::now();
    let mut seen = 0u64;
    let mut token = String::new();
    loop {
        let b = s
            .get(&format!(
                "/crm/rest/v2/contacts?page_size=1000&page_token={token}"
            ))
            .await
            .json();
        seen += b["contacts"].as_array().unwrap().len() as u64;
        token = b["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, MILLION);
    let v2_secs = t.elapsed().as_secs_f64();
    let after_v2 = proc_kib("VmRSS:");
    let peak = proc_kib("VmHWM:");
    println!("KEAP-MEMORY rss_before_start_kib={before}");
    println!("KEAP-MEMORY rss_after_start_kib={started}");
    println!("KEAP-MEMORY rss_v1_halfway_kib={rss_v1_mid}");
    println!("KEAP-MEMORY rss_after_v1_walk_kib={after_v1} v1_walk_secs={v1_secs:.1}");
    println!("KEAP-MEMORY rss_after_v2_walk_kib={after_v2} v2_walk_secs={v2_secs:.1}");
    println!("KEAP-MEMORY rss_peak_kib={peak}");
    // Flat: walking the whole set must not grow memory by anything like the set's size
    // (a million rendered contacts are ~600 MB of JSON).
    assert!(
        after_v2.saturating_sub(started) < 64 * 1024,
        "memory grew by {} KiB while paging",
        after_v2 - started
    );
}
