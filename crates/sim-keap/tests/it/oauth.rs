use reqwest::{Method, StatusCode};
use serde_json::json;
use sim_keap::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

use crate::common::{into_resp, sim};

fn query_of(location: &str) -> Vec<(String, String)> {
    let u = url::Url::parse(location).unwrap();
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn q<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

const CALLBACK: &str = "https://app.example.com/oauth/keap/callback";

async fn authorize(s: &crate::common::Sim, client: &str) -> crate::common::Resp {
    let url = format!(
        "{}/app/oauth/authorize?client_id={client}&redirect_uri={}&response_type=code&scope=full&state=st4te",
        s.origin,
        urlencode(CALLBACK)
    );
    into_resp(s.http.get(url).send().await.unwrap()).await
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn running_reports_origins_and_credentials() {
    let s = sim().await;
    let r = &s.running;
    assert_eq!(r.platform, "keap");
    assert_eq!(
        r.origin("SHARPSEND_KEAP_AUTHORIZE_URL").unwrap(),
        format!("{}/app/oauth/authorize", s.origin)
    );
    for label in [
        "keap client id",
        "keap client secret",
        "keap access token",
        "keap refresh token",
        "keap personal access token",
        "keap service account key",
    ] {
        assert!(r.credential(label).is_some(), "missing {label}");
    }
    // The ready pair works at once.
    assert_eq!(
        s.get("/crm/rest/v1/oauth/connect/userinfo").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_endpoint_rejects_json_bodies() {
    let s = sim().await;
    let r = into_resp(
        s.http
            .post(s.url("/token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        json!({"error": "invalid_request", "error_description": "response_type or grant_type is required"})
    );
}

#[tokio::test]
async fn code_flow_with_auto_approve_issues_a_working_pair() {
    let s = sim().await;
    s.ctl
        .post("/_sim/authorize", &json!({"mode": "approve"}))
        .await
        .unwrap();
    let r = authorize(&s, CLIENT_ID).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let loc = r.header("location").unwrap().to_owned();
    assert!(loc.starts_with(CALLBACK), "{loc}");
    let pairs = query_of(&loc);
    assert_eq!(q(&pairs, "state"), Some("st4te"));
    let code = q(&pairs, "code").unwrap().to_owned();

    // Wrong redirect_uri: rejected, and the code is spent.
    let bad = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://evil.example.com/cb"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"], "invalid_grant");

    let r = authorize(&s, CLIENT_ID).await;
    let code = q(&query_of(r.header("location").unwrap()), "code")
        .unwrap()
        .to_owned();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let ok = s.token(&form, None).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let body = ok.json();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["scope"], "full|ab123.infusionsoft.com");
    let access = body["access_token"].as_str().unwrap();
    assert!(body["refresh_token"].as_str().is_some());
    let me = s
        .call_as(
            access,
            Method::GET,
            "/crm/rest/v1/oauth/connect/userinfo",
            None,
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);

    // A code is single use.
    let again = s.token(&form, None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn code_exchange_with_a_bad_secret_is_401() {
    let s = sim().await;
    s.ctl
        .post("/_sim/authorize", &json!({"mode": "approve"}))
        .await
        .unwrap();
    let r = authorize(&s, CLIENT_ID).await;
    let code = q(&query_of(r.header("location").unwrap()), "code")
        .unwrap()
        .to_owned();
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"error": "invalid_grant", "error_description": "Unable to authenticate username and password"})
    );
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_dies_at_once() {
    let s = sim().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_TOKEN),
    ];
    let r = s.token(&form, Some((CLIENT_ID, CLIENT_SECRET))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_rt, REFRESH_TOKEN);
    let new_at = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_at, sim_keap::ACCESS_TOKEN);

    let reuse = s.token(&form, Some((CLIENT_ID, CLIENT_SECRET))).await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reuse.json(),
        json!({"error": "invalid_grant", "error_description": "Invalid refresh token"})
    );
    assert_eq!(s.ctl.counter("token_refresh").await.unwrap(), 1);

    // Body credentials are accepted too (inferred from Nango's config).
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &new_rt),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.ctl.counter("token_refresh").await.unwrap(), 2);
}

#[tokio::test]
async fn refresh_needs_client_credentials() {
    let s = sim().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_TOKEN),
    ];
    let none = s.token(&form, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"], "invalid_client");
    let wrong = s.token(&form, Some((CLIENT_ID, "nope"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    // A failed attempt does not spend the token.
    let ok = s.token(&form, Some((CLIENT_ID, CLIENT_SECRET))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let other = s
        .token(
            &[("grant_type", "password")],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.json()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn consent_page_allows_and_denies() {
    let s = sim().await;
    let page = authorize(&s, CLIENT_ID).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("value=\"allow\"") && page.text.contains("value=\"deny\""));
    assert!(!page.text.contains("<script"));
    let decide = |d: &'static str| {
        s.http.post(s.url("/app/oauth/authorize")).form(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "full"),
            ("state", "xyz"),
            ("decision", d),
        ])
    };
    let deny = into_resp(decide("deny").send().await.unwrap()).await;
    assert_eq!(deny.status, StatusCode::FOUND);
    let p = query_of(deny.header("location").unwrap());
    assert_eq!(q(&p, "error"), Some("access_denied"));
    assert_eq!(q(&p, "state"), Some("xyz"));
    assert_eq!(
        q(&p, "error_description"),
        Some("User denied access to resource")
    );
    let allow = into_resp(decide("allow").send().await.unwrap()).await;
    let p = query_of(allow.header("location").unwrap());
    assert!(q(&p, "code").is_some());
    assert_eq!(q(&p, "state"), Some("xyz"));
}

#[tokio::test]
async fn authorize_modes_and_unknown_clients() {
    let s = sim().await;
    let r = authorize(&s, "nobody").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("Invalid client_id"));
    s.ctl
        .post("/_sim/authorize", &json!({"mode": "deny"}))
        .await
        .unwrap();
    let r = authorize(&s, CLIENT_ID).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        q(&query_of(r.header("location").unwrap()), "error"),
        Some("access_denied")
    );
    // Non-HTTPS, non-loopback callbacks are refused.
    let r = into_resp(
        s.http
            .get(format!(
                "{}/app/oauth/authorize?client_id={CLIENT_ID}&redirect_uri=http%3A%2F%2Fexample.com%2Fcb&response_type=code",
                s.origin
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn control_routes_issue_expire_and_revoke_tokens() {
    let s = sim().await;
    let pair = s
        .ctl
        .post("/_sim/tokens", &json!({"expiresIn": 3600}))
        .await
        .unwrap();
    assert_eq!(pair["expires_in"], 3600);
    let at = pair["access_token"].as_str().unwrap().to_owned();
    let rt = pair["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call_as(&at, Method::GET, "/crm/rest/v1/contacts?limit=1", None)
            .await
            .status,
        StatusCode::OK
    );
    s.ctl
        .post("/_sim/tokens/expire", &json!({"accessToken": at}))
        .await
        .unwrap();
    let r = s
        .call_as(&at, Method::GET, "/crm/rest/v1/contacts?limit=1", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"fault": {"faultstring": "Access Token expired", "detail": {"errorcode": "keymanagement.service.access_token_expired"}}})
    );
    s.ctl
        .post("/_sim/tokens/revoke", &json!({"refreshToken": rt}))
        .await
        .unwrap();
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn access_token_ttl_is_configurable() {
    let mut o = crate::common::opts();
    o.access_token_ttl_secs = 0;
    let s = crate::common::start(o).await;
    // Even the sandbox pair is already expired with a zero TTL.
    let r = s.get("/crm/rest/v1/contacts").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json()["fault"]["detail"]["errorcode"],
        "keymanagement.service.access_token_expired"
    );
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", REFRESH_TOKEN),
            ],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(r.json()["expires_in"], 0);
    s.ctl
        .post("/_sim/config", &json!({"accessTokenTtlSecs": 120}))
        .await
        .unwrap();
    let rt = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(r.json()["expires_in"], 120);
}

/// Concurrent refreshers with one token break each other (PHP#99): exactly one wins, so a
/// connector must refresh single-flight; `token_refresh` counts the refreshes that happened.
#[tokio::test]
async fn concurrent_refreshes_of_one_token_leave_one_winner() {
    let s = sim().await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH_TOKEN),
    ];
    let calls = (0..5).map(|_| s.token(&form, Some((CLIENT_ID, CLIENT_SECRET))));
    let results = futures::future::join_all(calls).await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let rejected = results
        .iter()
        .filter(|r| r.status == StatusCode::BAD_REQUEST && r.json()["error"] == "invalid_grant")
        .count();
    assert_eq!((ok, rejected), (1, 4));
    assert_eq!(s.ctl.counter("token_refresh").await.unwrap(), 1);
    assert_eq!(s.ctl.counter("token_refresh_rejected").await.unwrap(), 4);
}
