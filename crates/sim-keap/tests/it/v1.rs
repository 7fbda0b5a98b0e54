use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Sim, sim, start};

/// Path + query of an absolute `next`/`previous` URL, after checking it points at us.
fn relative(s: &Sim, url: &str) -> String {
    assert!(
        url.starts_with(&s.origin),
        "{url} is not absolute on {}",
        s.origin
    );
    url[s.origin.len()..].to_owned()
}

#[tokio::test]
async fn list_pages_with_absolute_urls_until_an_empty_page() {
    let mut o = crate::common::opts();
    o.contacts = 5;
    let s = start(o).await;
    let r = s
        .get("/crm/rest/v1/contacts?limit=2&since=2020-06-03T22:17:59.039Z&order=id&optional_properties=custom_fields")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let b = r.json();
    assert_eq!(b["count"], 5, "count is the total match count");
    let next = b["next"].as_str().unwrap();
    assert_eq!(
        relative(&s, next),
        "/crm/rest/v1/contacts/?limit=2&offset=2&since=2020-06-03T22%3A17%3A59.039Z&order=id"
    );
    assert!(
        b["previous"]
            .as_str()
            .unwrap()
            .ends_with("contacts/?limit=2&offset=0&since=2020-06-03T22%3A17%3A59.039Z&order=id")
    );
    assert!(b["contacts"][0]["custom_fields"].is_array());
    let mut ids: Vec<u64> = b["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    let mut url = relative(&s, next);
    loop {
        let b = s.get(&url).await.json();
        let page = b["contacts"].as_array().unwrap().clone();
        // optional_properties is not carried into next URLs (AMP read.go).
        assert!(page.iter().all(|c| c.get("custom_fields").is_none()));
        assert!(b["next"].is_string(), "next present even on the empty page");
        if page.is_empty() {
            assert!(relative(&s, b["next"].as_str().unwrap()).contains("offset=8"));
            break;
        }
        ids.extend(page.iter().map(|c| c["id"].as_u64().unwrap()));
        url = relative(&s, b["next"].as_str().unwrap());
    }
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn contacts_use_keap_wire_formats() {
    let s = sim().await;
    let c = s.get("/crm/rest/v1/contacts/7").await.json();
    assert_eq!(c["id"], 7);
    let t = c["date_created"].as_str().unwrap();
    assert!(t.ends_with("+0000") && t.len() == 28, "{t}");
    assert!(c["last_updated_utc_millis"].is_i64());
    assert!(c["email_addresses"][0]["field"] == "EMAIL1");
    assert!(
        c.get("custom_fields").is_none(),
        "optional property absent by default"
    );
    let c = s
        .get("/crm/rest/v1/contacts/7?optional_properties=custom_fields,lead_source_id,job_title")
        .await
        .json();
    assert_eq!(c["custom_fields"].as_array().unwrap().len(), 4);
    assert!(c.as_object().unwrap().contains_key("lead_source_id"));
    assert!(c.as_object().unwrap().contains_key("job_title"));
}

#[tokio::test]
async fn filters_and_ordering() {
    let s = sim().await;
    let all = s.get("/crm/rest/v1/contacts?limit=1000").await.json();
    let list = all["contacts"].as_array().unwrap();
    assert_eq!(list.len(), 250);
    let email = list[41]["email_addresses"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = s
        .get(&format!("/crm/rest/v1/contacts?email={email}"))
        .await
        .json();
    assert_eq!(b["count"], 1);
    assert_eq!(b["contacts"][0]["id"], list[41]["id"]);
    // since: last_updated at or after.
    let since = list[200]["last_updated"].as_str().unwrap();
    let b = s
        .get(&format!("/crm/rest/v1/contacts?since={}", urlenc(since)))
        .await
        .json();
    assert_eq!(b["count"], 50);
    let until = list[9]["last_updated"].as_str().unwrap();
    let b = s
        .get(&format!("/crm/rest/v1/contacts?until={}", urlenc(until)))
        .await
        .json();
    assert_eq!(b["count"], 10);
    let b = s
        .get("/crm/rest/v1/contacts?limit=3&order=id&order_direction=DESCENDING")
        .await
        .json();
    let ids: Vec<u64> = b["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![250, 249, 248]);
    let b = s
        .get("/crm/rest/v1/contacts?limit=5&order=email")
        .await
        .json();
    let emails: Vec<String> = b["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["email_addresses"][0]["email"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    assert_eq!(emails, sorted);
    let bad = s.get("/crm/rest/v1/contacts?limit=abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!({"message": "Input could not be converted to a valid request"})
    );
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn create_update_delete_contact() {
    let s = sim().await;
    let r = s.post("/crm/rest/v1/contacts", json!({"given_name": "Ada", "email_addresses": [{"email": "ada@example.com", "field": "EMAIL1"}]})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let c = r.json();
    let id = c["id"].as_u64().unwrap();
    assert_eq!(id, 251);
    assert_eq!(c["email_status"], "NonMarketable");
    assert_eq!(c["email_opted_in"], false);

    let r = s
        .call(
            Method::PATCH,
            &format!("/crm/rest/v1/contacts/{id}?update_mask=family_name"),
            Some(json!({"family_name": "Lovelace", "given_name": "Ignored"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["family_name"], "Lovelace");
    assert_eq!(
        r.json()["given_name"],
        "Ada",
        "update_mask limits the fields"
    );

    let bad = s
        .post("/crm/rest/v1/contacts", json!({"given_name": "Nobody"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = s.call(Method::POST, "/crm/rest/v1/contacts", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let del = s
        .call(Method::DELETE, &format!("/crm/rest/v1/contacts/{id}"), None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = s.get(&format!("/crm/rest/v1/contacts/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.json(),
        json!({"message": "Unable to find this Contact"})
    );
    // A deleted generated contact leaves the list and the count.
    assert_eq!(
        s.call(Method::DELETE, "/crm/rest/v1/contacts/3", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let b = s.get("/crm/rest/v1/contacts?limit=3").await.json();
    assert_eq!(b["count"], 249);
    let ids: Vec<u64> = b["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 4]);
}

#[tokio::test]
async fn upsert_by_email_and_by_email_and_name() {
    let s = sim().await;
    let existing = s.get("/crm/rest/v1/contacts/10").await.json();
    let email = existing["email_addresses"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .call(Method::PUT, "/crm/rest/v1/contacts", Some(json!({"duplicate_option": "Email", "email_addresses": [{"email": email, "field": "EMAIL1"}], "family_name": "Updated", "opt_in_reason": "Signed up on the site"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = r.json();
    assert_eq!(c["id"], 10);
    assert_eq!(c["family_name"], "Updated");
    assert_eq!(
        c["given_name"], existing["given_name"],
        "only provided values change"
    );
    let r = s
        .call(Method::PUT, "/crm/rest/v1/contacts", Some(json!({"duplicate_option": "EmailAndName", "email_addresses": [{"email": email, "field": "EMAIL1"}], "given_name": "Someone", "family_name": "Else"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.json()["id"], 10, "name differs: a new contact");
    let r = s.call(Method::PUT, "/crm/rest/v1/contacts", Some(json!({"duplicate_option": "Phone", "email_addresses": [{"email": email, "field": "EMAIL1"}]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn opt_in_reason_cannot_reopt_an_unsubscribed_address() {
    let s = sim().await;
    // Find a generated contact with ListUnsubscribe.
    let all = s.get("/crm/rest/v1/contacts?limit=1000").await.json();
    let c = all["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email_status"] == "ListUnsubscribe")
        .unwrap()
        .clone();
    let id = c["id"].as_u64().unwrap();
    let r = s
        .call(
            Method::PATCH,
            &format!("/crm/rest/v1/contacts/{id}"),
            Some(json!({"opt_in_reason": "please"})),
        )
        .await;
    assert_eq!(r.json()["email_status"], "ListUnsubscribe");
    let r = s.post("/crm/rest/v1/contacts", json!({"email_addresses": [{"email": "new@example.com", "field": "EMAIL1"}], "opt_in_reason": "form"})).await;
    assert_eq!(r.json()["email_opted_in"], true);
}

#[tokio::test]
async fn tags_apply_list_and_remove() {
    let s = sim().await;
    let tags = s.get("/crm/rest/v1/tags").await.json();
    assert_eq!(tags["count"], 12);
    let tag = tags["tags"][0]["id"].as_u64().unwrap();
    let r = s
        .post(
            &format!("/crm/rest/v1/tags/{tag}/contacts"),
            json!({"ids": [5, 999_999]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let res = r.json();
    assert!(res["5"] == "SUCCESS" || res["5"] == "DUPLICATE");
    assert_eq!(res["999999"], "CONTACT_NOT_FOUND");
    let r = s
        .post(
            &format!("/crm/rest/v1/tags/{tag}/contacts"),
            json!({"ids": [5]}),
        )
        .await;
    assert_eq!(r.json()["5"], "DUPLICATE");
    let c = s.get("/crm/rest/v1/contacts/5").await.json();
    assert!(c["tag_ids"].as_array().unwrap().contains(&json!(tag)));
    let ct = s.get("/crm/rest/v1/contacts/5/tags").await.json();
    assert!(
        ct["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tag"]["id"] == tag)
    );
    let tc = s
        .get(&format!("/crm/rest/v1/tags/{tag}/contacts?limit=1000"))
        .await
        .json();
    assert!(
        tc["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["contact"]["id"] == 5)
    );
    let r = s
        .call(
            Method::DELETE,
            &format!("/crm/rest/v1/contacts/5/tags?ids={tag}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let c = s.get("/crm/rest/v1/contacts/5").await.json();
    assert!(!c["tag_ids"].as_array().unwrap().contains(&json!(tag)));
    let r = s
        .post("/crm/rest/v1/contacts/5/tags", json!({"tagIds": [tag, 1]}))
        .await;
    assert_eq!(r.json()[tag.to_string()], "SUCCESS");
    assert_eq!(r.json()["1"], "TAG_ID_NOT_FOUND");
    let created = s
        .post(
            "/crm/rest/v1/tags",
            json!({"name": "New Tag", "category": {"id": 10}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.json()["category"]["id"], 10);
    assert_eq!(
        s.get("/crm/rest/v1/tags/1").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn other_v1_resources() {
    let s = sim().await;
    let c = s.get("/crm/rest/v1/campaigns?limit=5").await.json();
    assert_eq!(c["count"], 12);
    assert_eq!(c["campaigns"].as_array().unwrap().len(), 5);
    let id = c["campaigns"][0]["id"].as_u64().unwrap();
    assert_eq!(
        s.get(&format!("/crm/rest/v1/campaigns/{id}")).await.json()["id"],
        id
    );
    let o = s.get("/crm/rest/v1/opportunities").await.json();
    assert_eq!(o["count"], 40);
    assert!(o["opportunities"][0]["stage"]["details"]["stage_order"].is_u64());
    let p: Value = s
        .get("/crm/rest/v1/opportunity/stage_pipeline")
        .await
        .json();
    assert_eq!(p.as_array().unwrap().len(), 5);
    let total: u64 = p
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 40);
    let orders = s.get("/crm/rest/v1/orders?paid=true").await.json();
    assert!(
        orders["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] == "PAID")
    );
    let products = s.get("/crm/rest/v1/products").await.json();
    assert_eq!(products["count"], 10);
    assert!(products["sync_token"].is_string());
    let me = s.get("/crm/rest/v1/oauth/connect/userinfo").await.json();
    assert!(me["global_user_id"].is_u64());
    let prof = s.get("/crm/rest/v1/account/profile").await.json();
    assert_eq!(prof["currency_code"], "USD");
    let model = s.get("/crm/rest/v1/contacts/model").await.json();
    assert_eq!(model["custom_fields"].as_array().unwrap().len(), 4);
}
