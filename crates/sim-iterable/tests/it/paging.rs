//! page/pageSize paging, sort and filters of campaigns and templates.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sim_iterable::{Options, US_SERVER_KEY};

use crate::common::{opts, send, sim, sim_with};

#[tokio::test]
async fn campaigns_default_to_pages_of_20_with_absolute_next_page_urls() {
    let s = sim().await;
    let (st, first) = s.get("/api/campaigns").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(first["campaigns"].as_array().unwrap().len(), 20);
    assert_eq!(first["totalCampaignsCount"], 60);
    assert!(first.get("previousPageUrl").is_none());
    let next = first["nextPageUrl"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{}/api/campaigns?", s.us)),
        "absolute URL on the simulator's own origin: {next}"
    );
    assert!(next.contains("page=2"));

    // Follow nextPageUrl to the end.
    let mut ids = HashSet::new();
    let mut url = Some(format!("{}/api/campaigns?pageSize=25", s.us));
    let mut pages = 0;
    while let Some(u) = url {
        let (st, page) = send(s.http.get(&u).header("Api-Key", US_SERVER_KEY)).await;
        assert_eq!(st, StatusCode::OK);
        pages += 1;
        if pages == 2 {
            assert!(page["previousPageUrl"].as_str().unwrap().contains("page=1"));
        }
        for c in page["campaigns"].as_array().unwrap() {
            assert!(ids.insert(c["id"].as_u64().unwrap()), "no duplicates");
        }
        url = page
            .get("nextPageUrl")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 60);

    // Past the end: empty page, total still there.
    let (st, past) = s.get("/api/campaigns?page=9&pageSize=25").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(past["campaigns"].as_array().unwrap().len(), 0);
    assert_eq!(past["totalCampaignsCount"], 60);
}

#[tokio::test]
async fn page_size_and_page_are_bounded() {
    let s = sim().await;
    for q in ["pageSize=1001", "pageSize=0", "page=0", "pageSize=abc"] {
        let (st, body) = s.get(&format!("/api/campaigns?{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(body["code"], "BadParams", "{q}");
    }
    let (st, body) = s.get("/api/campaigns?pageSize=1000").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["campaigns"].as_array().unwrap().len(), 60);
    assert!(body.get("nextPageUrl").is_none());
}

#[tokio::test]
async fn sort_and_state_filters() {
    let s = sim().await;
    let (_, body) = s.get("/api/campaigns?pageSize=100&sort=-createdAt").await;
    let created: Vec<i64> = body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["createdAt"].as_i64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "descending");
    let (_, body) = s.get("/api/campaigns?pageSize=100&sort=name").await;
    let names: Vec<&str> = body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "ascending names");
    let (st, body) = s.get("/api/campaigns?sort=colour").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");

    let (_, body) = s
        .get("/api/campaigns?pageSize=100&campaignState=Running&campaignState=Finished")
        .await;
    let states: HashSet<&str> = body["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaignState"].as_str().unwrap())
        .collect();
    assert!(!states.is_empty());
    assert!(states.iter().all(|s| *s == "Running" || *s == "Finished"));
    assert_eq!(
        body["totalCampaignsCount"].as_u64().unwrap() as usize,
        body["campaigns"].as_array().unwrap().len()
    );
    let (st, _) = s.get("/api/campaigns?campaignState=Sending").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unpaginated_projects_return_everything_without_paging_fields() {
    let s = sim_with(Options {
        unpaginated_allowed: true,
        ..opts()
    })
    .await;
    let (_, body) = s.get("/api/campaigns").await;
    assert_eq!(body["campaigns"].as_array().unwrap().len(), 60);
    assert!(body.get("totalCampaignsCount").is_none());
    assert!(body.get("nextPageUrl").is_none());
    // Asking for a page still pages.
    let (_, body) = s.get("/api/campaigns?page=1").await;
    assert_eq!(body["campaigns"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn campaign_by_id_and_not_found() {
    let s = sim().await;
    let (_, list) = s.get("/api/campaigns?pageSize=3").await;
    let c = &list["campaigns"][2];
    let (st, one) = s.get(&format!("/api/campaigns/{}", c["id"])).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(&one, c);
    let (st, body) = s.get("/api/campaigns/1").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NotFound");
}

#[tokio::test]
async fn campaign_records_follow_the_recorded_shape_rules() {
    let s = sim().await;
    let (_, body) = s.get("/api/campaigns?pageSize=100").await;
    for c in body["campaigns"].as_array().unwrap() {
        // Epoch-ms integers, beyond i32.
        assert!(c["createdAt"].as_i64().unwrap() > i64::from(i32::MAX));
        match c["type"].as_str().unwrap() {
            "Triggered" => assert!(c.get("listIds").is_none(), "no listIds on triggered"),
            "Blast" => assert!(c["listIds"].is_array()),
            other => panic!("type {other}"),
        }
        if c["campaignState"] == "Finished" && c["type"] == "Blast" {
            assert!(c["endedAt"].as_i64().unwrap() > c["startAt"].as_i64().unwrap());
        }
    }
}

#[tokio::test]
async fn templates_filter_by_type_medium_and_creation_time() {
    let s = sim().await;
    let (_, all) = s.get("/api/templates?pageSize=1000").await;
    assert_eq!(all["totalTemplatesCount"], 80);
    let (_, trig) = s
        .get("/api/templates?pageSize=1000&templateType=Triggered&messageMedium=Email")
        .await;
    let n = trig["templates"].as_array().unwrap().len();
    assert!(n >= 1, "campaign 0 is a triggered email campaign");
    let (_, base) = s
        .get("/api/templates?pageSize=1000&templateType=Base")
        .await;
    assert_eq!(base["templates"].as_array().unwrap().len(), 20);
    for t in trig["templates"].as_array().unwrap() {
        assert!(t["campaignId"].is_u64());
        assert!(
            t["createdAt"].is_i64(),
            "epoch ms, not the SPEC's date-time string"
        );
    }
    // Creation-time window: count must match a client-side filter of the full list.
    let mid = all["templates"][40]["createdAt"].as_i64().unwrap();
    let start = chrono::DateTime::from_timestamp_millis(mid)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let want = all["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["createdAt"].as_i64().unwrap() >= mid / 1000 * 1000)
        .count();
    let (st, win) = send(
        s.req(Method::GET, "/api/templates")
            .query(&[("pageSize", "1000"), ("startDateTime", start.as_str())]),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(win["templates"].as_array().unwrap().len(), want);
    let (st, body) = s.get("/api/templates?startDateTime=last-week").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BadParams");
    let (st, _) = s.get("/api/templates?templateType=Newsletter").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn seeded_campaigns_cover_every_state_type_and_medium() {
    let s = sim().await;
    let (_, body) = s.get("/api/campaigns?pageSize=1000").await;
    let cs = body["campaigns"].as_array().unwrap();
    let set = |k: &str| -> HashSet<String> {
        cs.iter()
            .map(|c| c[k].as_str().unwrap().to_owned())
            .collect()
    };
    for state in [
        "Draft",
        "Ready",
        "Scheduled",
        "Running",
        "Finished",
        "Starting",
        "Aborted",
        "Recurring",
        "Archived",
    ] {
        assert!(set("campaignState").contains(state), "{state}");
    }
    assert_eq!(
        set("type"),
        HashSet::from(["Blast".into(), "Triggered".into()])
    );
    for m in ["Email", "SMS", "Push", "InApp"] {
        assert!(set("messageMedium").contains(m), "{m}");
    }
    // The same seed gives the same project.
    let again = crate::common::sim().await;
    let (_, body2) = again.get("/api/campaigns?pageSize=1000").await;
    assert_eq!(body, body2);
}
