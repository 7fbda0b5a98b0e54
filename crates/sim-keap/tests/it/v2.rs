use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{sim, start};

fn ids(b: &serde_json::Value, key: &str) -> Vec<String> {
    b[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn contacts_page_with_opaque_tokens() {
    let mut o = crate::common::opts();
    o.contacts = 7;
    let s = start(o).await;
    let mut token = String::new();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let b = s
            .get(&format!(
                "/crm/rest/v2/contacts?page_size=3&page_token={token}"
            ))
            .await
            .json();
        pages += 1;
        all.extend(ids(&b, "contacts"));
        token = b["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
        assert!(
            !token.chars().all(|c| c.is_ascii_digit()),
            "token is opaque: {token}"
        );
    }
    assert_eq!(pages, 3);
    assert_eq!(all, ["1", "2", "3", "4", "5", "6", "7"]);
    // A token survives a deletion before it (keyset paging).
    let b = s.get("/crm/rest/v2/contacts?page_size=3").await.json();
    let t = b["next_page_token"].as_str().unwrap().to_owned();
    s.call(Method::DELETE, "/crm/rest/v2/contacts/2", None)
        .await;
    let b = s
        .get(&format!("/crm/rest/v2/contacts?page_size=3&page_token={t}"))
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["4", "5", "6"]);
    let bad = s.get("/crm/rest/v2/contacts?page_token=%21%21").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["code"], 400);
}

#[tokio::test]
async fn page_size_is_bounded_and_errors_use_the_v2_shape() {
    let s = sim().await;
    let r = s.get("/crm/rest/v2/contacts?page_size=1001").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.json();
    assert_eq!(e["code"], 400);
    assert_eq!(e["status"], "INVALID_ARGUMENT");
    assert!(e["message"].is_string() && e["details"].is_array());
    let r = s.get("/crm/rest/v2/contacts/999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["code"], 404);
    // Unknown top-level parameters are ignored (W6W).
    assert_eq!(
        s.get("/crm/rest/v2/contacts?email=x&page_size=1")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.get("/crm/rest/v2/contacts?fields=nonsense").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn filter_grammar_subset() {
    let s = sim().await;
    let c5 = s
        .get("/crm/rest/v2/contacts/5?fields=email_addresses,update_time")
        .await
        .json();
    assert_eq!(c5["id"], "5");
    let email = c5["email_addresses"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = s
        .get(&format!("/crm/rest/v2/contacts?filter=email%3D%3D{email}"))
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["5"]);
    let prefix = &email[..email.find('.').unwrap()];
    let b = s
        .get(&format!(
            "/crm/rest/v2/contacts?filter=email%3D%3D{prefix}*&fields=email_addresses"
        ))
        .await
        .json();
    assert!(!b["contacts"].as_array().unwrap().is_empty());
    assert!(b["contacts"].as_array().unwrap().iter().all(|c| {
        c["email_addresses"][0]["email"]
            .as_str()
            .unwrap()
            .starts_with(prefix)
    }));
    let b = s
        .get("/crm/rest/v2/contacts?filter=ids%3D%3D3,9,12")
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["3", "9", "12"]);
    let t = c5["update_time"].as_str().unwrap();
    let b = s
        .get(&format!(
            "/crm/rest/v2/contacts?filter=start_update_time%3D%3D{t}&page_size=1000"
        ))
        .await
        .json();
    assert_eq!(b["contacts"].as_array().unwrap().len(), 246);
    let b = s
        .get(&format!(
            "/crm/rest/v2/contacts?filter=start_update_time%3D%3D{t}%3Bend_update_time%3D%3D{t}"
        ))
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["5"]);
    let r = s.get("/crm/rest/v2/contacts?filter=shoe_size%3D%3D9").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["status"], "INVALID_ARGUMENT");
    let b = s
        .get("/crm/rest/v2/contacts?order_by=id%20desc&page_size=2")
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["250", "249"]);
    let t = b["next_page_token"].as_str().unwrap();
    let b = s
        .get(&format!(
            "/crm/rest/v2/contacts?order_by=id%20desc&page_size=2&page_token={t}"
        ))
        .await
        .json();
    assert_eq!(ids(&b, "contacts"), ["248", "247"]);
}

#[tokio::test]
async fn create_with_duplicate_option() {
    let s = sim().await;
    let body = json!({"given_name": "Grace", "family_name": "Hopper", "email_addresses": [{"email": "grace@example.com", "field": "EMAIL1"}]});
    let r = s
        .call(
            Method::POST,
            "/crm/rest/v2/contacts?duplicate_option=Email",
            Some(body.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = s.call(Method::POST, "/crm/rest/v2/contacts?duplicate_option=Email", Some(json!({"email_addresses": [{"email": "grace@example.com", "field": "EMAIL1"}], "job_title": "Admiral"}))).await;
    assert_eq!(r.status, StatusCode::OK, "a match updates");
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["job_title"], "Admiral");
    let r = s.call(Method::POST, "/crm/rest/v2/contacts?duplicate_option=EmailAndName", Some(json!({"given_name": "Other", "email_addresses": [{"email": "grace@example.com", "field": "EMAIL1"}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = s
        .call(Method::POST, "/crm/rest/v2/contacts", Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "no option: always create");
    assert_ne!(r.json()["id"], id.as_str());
    let r = s
        .call(
            Method::POST,
            "/crm/rest/v2/contacts",
            Some(json!({"given_name": "No reach"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // PATCH replaces collections.
    let r = s
        .call(
            Method::PATCH,
            &format!("/crm/rest/v2/contacts/{id}?update_mask=email_addresses"),
            Some(json!({"email_addresses": [{"email": "g2@example.com", "field": "EMAIL2"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let emails = r.json()["email_addresses"].as_array().unwrap().clone();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["email"], "g2@example.com");
    assert_eq!(
        s.call(Method::DELETE, &format!("/crm/rest/v2/contacts/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.call(Method::DELETE, &format!("/crm/rest/v2/contacts/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tags_apply_and_remove() {
    let s = sim().await;
    let b = s.get("/crm/rest/v2/tags?page_size=5").await.json();
    assert_eq!(b["tags"].as_array().unwrap().len(), 5);
    let tag = b["tags"][0]["id"].as_str().unwrap().to_owned();
    assert!(!b["next_page_token"].as_str().unwrap().is_empty());
    let b = s
        .get("/crm/rest/v2/tags?filter=name%3D%3DNewsletter*")
        .await
        .json();
    assert_eq!(b["tags"].as_array().unwrap().len(), 2);
    let r = s
        .post(
            &format!("/crm/rest/v2/tags/{tag}/contacts:applyTags"),
            json!({"contact_ids": ["8", "99999"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["results"]["99999"], "CONTACT_NOT_FOUND");
    let c = s.get("/crm/rest/v2/contacts/8?fields=tag_ids").await.json();
    assert!(c["tag_ids"].as_array().unwrap().contains(&json!(tag)));
    let r = s
        .post(
            &format!("/crm/rest/v2/tags/{tag}/contacts:removeTags"),
            json!({"contact_ids": ["8"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.text.is_empty());
    let c = s.get("/crm/rest/v2/contacts/8?fields=tag_ids").await.json();
    assert!(!c["tag_ids"].as_array().unwrap().contains(&json!(tag)));
    let created = s
        .post(
            "/crm/rest/v2/tags",
            json!({"name": "Fresh", "category": {"id": "12"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert!(created.json()["id"].is_string());
    let r = s
        .post(
            "/crm/rest/v2/tags/1/contacts:applyTags",
            json!({"contact_ids": ["8"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn other_v2_lists() {
    let s = sim().await;
    for (path, key, n) in [
        ("/crm/rest/v2/campaigns", "campaigns", 12),
        ("/crm/rest/v2/opportunities", "opportunities", 40),
        ("/crm/rest/v2/orders", "orders", 60),
        ("/crm/rest/v2/products", "products", 10),
        ("/crm/rest/v2/opportunities/stages", "stages", 5),
        ("/crm/rest/v2/leadSources", "lead_sources", 5),
    ] {
        let b = s.get(path).await.json();
        assert_eq!(b[key].as_array().unwrap().len(), n, "{path}");
        assert!(b[key][0]["id"].is_string(), "{path}: v2 ids are strings");
        assert_eq!(b["next_page_token"], "");
    }
    let b = s.get("/crm/rest/v2/orders?page_size=25").await.json();
    let t = b["next_page_token"].as_str().unwrap();
    let b2 = s
        .get(&format!("/crm/rest/v2/orders?page_size=25&page_token={t}"))
        .await
        .json();
    assert_eq!(b2["orders"][0]["id"], "26");
    let me = s.get("/crm/rest/v2/oauth/connect/userinfo").await.json();
    assert_eq!(me["tenant_id"], "ab123.infusionsoft.com");
}
