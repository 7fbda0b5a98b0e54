//! The dashboard over plain HTTP (no browser): sign-in and its cookie, CSRF, the security
//! headers, sessions ending on sign-out and revocation, tenancy, and escaping. The browser
//! drives the same pages in `dashboard_browser.rs`.
#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode, header};
use serde_json::json;
use sharpsend::dashboard::CSP;

use crate::helpers::{ADMIN_TOKEN, TestApp, fresh_db};

/// A page as the browser would get it.
pub struct Page {
    pub status: StatusCode,
    pub headers: header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A browser without a browser: keeps cookies, follows nothing.
pub struct Web<'a> {
    pub app: &'a TestApp,
    pub cookies: Vec<(String, String)>,
    /// Sent as `Origin` on posts when set.
    pub origin: Option<String>,
}

impl<'a> Web<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: vec![],
            origin: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let resp = req
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let page = Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        };
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !c.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), v.to_owned()));
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.app.http.get(self.app.url(path));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut req = self.app.http.post(self.app.url(path)).form(fields);
        if let Some(o) = &self.origin {
            req = req.header(header::ORIGIN, o);
        }
        self.send(req).await
    }

    /// Signs in through the form; answers the POST's page.
    pub async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/signin").await;
        let csrf = form.csrf();
        self.post("/signin", &[("csrf", &csrf), ("token", token)])
            .await
    }
}

#[tokio::test]
async fn signed_out_requests_go_to_sign_in() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let mut web = Web::new(&app);
    for path in [
        "/",
        "/sync/iterable",
        "/connect/keap",
        "/events",
        "/disconnect/iterable",
        "/consent",
    ] {
        let p = web.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(p.location(), "/signin", "{path}");
    }
    let p = web.post("/disconnect/iterable", &[("csrf", "x")]).await;
    assert_eq!(p.location(), "/signin");
    // A made-up session id is no session.
    web.cookies
        .push(("sharpsend_session".into(), "forged-session-id".into()));
    assert_eq!(web.get("/").await.location(), "/signin");
    let p = web.get("/signin").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<label for=\"token\">"), "{}", p.body);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn every_dashboard_response_carries_the_security_headers() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let mut web = Web::new(&app);
    let signin = web.get("/signin").await;
    web.sign_in(ADMIN_TOKEN).await;
    let home = web.get("/").await;
    let js = web.get("/assets/app.js").await;
    let css = web.get("/assets/app.css").await;
    for (name, p) in [
        ("signin", &signin),
        ("home", &home),
        ("js", &js),
        ("css", &css),
    ] {
        let h = |k: &str| p.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert_eq!(h("content-security-policy"), CSP, "{name}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{name}");
        assert_eq!(h("referrer-policy"), "same-origin", "{name}");
    }
    assert_eq!(
        CSP,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    );
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    // No inline script, style or handler on the pages.
    for p in [&signin, &home] {
        assert!(!p.body.contains("<script>"), "{}", p.body);
        assert!(!p.body.contains("style="), "{}", p.body);
        assert!(!p.body.contains(" onclick="), "{}", p.body);
    }
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_secure_over_https() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let mut web = Web::new(&app);

    // A wrong key is refused on the form, with no session.
    let bad = web.sign_in("ssk_not-a-real-key").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body.contains("id=\"token-error\""), "{}", bad.body);
    assert!(bad.body.contains("was not accepted"), "{}", bad.body);
    assert!(!web.cookies.iter().any(|(k, _)| k == "sharpsend_session"));

    let ok = web.sign_in(ADMIN_TOKEN).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/");
    let cookie = ok
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("sharpsend_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // Only the id's digest is stored, never the id or the token.
    let id = &web
        .cookies
        .iter()
        .find(|(k, _)| k == "sharpsend_session")
        .unwrap()
        .1;
    let row = app
        .state
        .store
        .get_session(
            &sharpsend::dashboard::session::digest(id),
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(row.is_admin);
    assert!(!String::from_utf8_lossy(&row.sealed_token).contains(ADMIN_TOKEN));

    // Behind an HTTPS proxy the cookie is Secure.
    let form = app
        .http
        .get(app.url("/signin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let signin_cookie = form
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sharpsend_signin="))
        .unwrap();
    assert!(signin_cookie.contains("Secure"), "{signin_cookie}");
    let value = signin_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let resp = app
        .http
        .post(app.url("/signin"))
        .header("x-forwarded-proto", "https")
        .header(header::COOKIE, format!("sharpsend_signin={value}"))
        .form(&[("csrf", value.as_str()), ("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session_cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sharpsend_session="))
        .unwrap();
    assert!(session_cookie.contains("; Secure"), "{session_cookie}");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure() {
    let db = fresh_db().await;
    let app = TestApp::spawn_with(
        &db,
        &crate::helpers::random_master_key(),
        &[("SHARPSEND_PUBLIC_URL", "https://sharpsend.example.com")],
    )
    .await;
    let p = Web::new(&app).get("/signin").await;
    assert!(
        p.set_cookies().iter().all(|c| c.contains("; Secure")),
        "{:?}",
        p.set_cookies()
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_or_from_another_origin_are_refused() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (_, key) = app.create_key("acme").await;
    let mut web = Web::new(&app);

    // The sign-in form needs its double-submit token.
    let p = web
        .post("/signin", &[("csrf", "guess"), ("token", &key)])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!web.cookies.iter().any(|(k, _)| k == "sharpsend_session"));

    web.sign_in(&key).await;
    let home = web.get("/").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    let csrf = home.csrf();

    for bad in ["", "wrong", &csrf[..csrf.len() - 1]] {
        let p = web.post("/sync/iterable", &[("csrf", bad)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "csrf {bad:?}");
        assert!(p.body.contains("This form has expired"), "{}", p.body);
        let p = web.post("/signout", &[("csrf", bad)]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }
    // Still signed in: the refused sign-out did nothing.
    assert_eq!(web.get("/").await.status, StatusCode::OK);

    // The right token from a foreign origin is refused too.
    web.origin = Some("https://evil.example".into());
    let p = web.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    web.origin = Some(format!("http://{}", app.addr));
    let p = web.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/signin");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn sign_out_and_revocation_end_the_session_at_once() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (key_id, key) = app.create_key("acme").await;

    // Sign-out deletes the row: the old cookie no longer works.
    let mut web = Web::new(&app);
    web.sign_in(&key).await;
    let old = web.cookies.clone();
    let csrf = web.get("/").await.csrf();
    web.post("/signout", &[("csrf", &csrf)]).await;
    let mut replay = Web::new(&app);
    replay.cookies = old;
    assert_eq!(replay.get("/").await.location(), "/signin");

    // Revoking the key ends its sessions on their next request.
    let mut web = Web::new(&app);
    web.sign_in(&key).await;
    assert_eq!(web.get("/").await.status, StatusCode::OK);
    app.call(
        Method::DELETE,
        &format!("/api/admin/api-keys/{key_id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await
    .expect_ok(200);
    assert_eq!(web.get("/").await.location(), "/signin");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_publisher_sees_and_acts_on_its_own_integrations_only() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key_a) = app.create_key("pub-a").await;
    let (_, key_b) = app.create_key("pub-b").await;
    // pub-a connects Iterable and syncs it.
    app.call(
        Method::POST,
        "/api/integrations/iterable/connect",
        Some(&key_a),
        Some(
            json!({"publisherId": "pub-a", "apiKey": sim_iterable::US_SERVER_KEY,
            "region": "us", "config": {}}),
        ),
    )
    .await
    .expect_ok(200);
    let job = app
        .call(
            Method::POST,
            "/api/integrations/pub-a/iterable/sync",
            Some(&key_a),
            Some(json!({"kinds": ["campaigns"]})),
        )
        .await;
    let job_id = job.expect_ok(202)["jobId"].as_str().unwrap().to_owned();

    let mut a = Web::new(&app);
    a.sign_in(&key_a).await;
    let home_a = a.get("/").await;
    assert!(
        home_a.body.contains("id=\"status-iterable\">Connected"),
        "{}",
        home_a.body
    );
    // Times read as dates (the exact UTC time on hover), never as raw RFC 3339 with fractions.
    let connected = home_a
        .body
        .split("<dt>Connected</dt><dd>")
        .nth(1)
        .and_then(|rest| rest.split("</dd>").next())
        .unwrap_or_else(|| panic!("a connected time: {}", home_a.body));
    assert!(connected.starts_with("<time datetime=\""), "{connected}");
    assert!(connected.contains(" UTC\">"), "{connected}");
    assert!(connected.ends_with(" UTC</time>"), "{connected}");
    let shown = connected
        .rsplit_once("\">")
        .unwrap()
        .1
        .trim_end_matches("</time>");
    assert!(
        chrono::DateTime::parse_from_rfc3339(shown).is_err() && !shown.contains('.'),
        "{shown}"
    );

    let mut b = Web::new(&app);
    b.sign_in(&key_b).await;
    let home_b = b.get("/").await;
    assert!(
        home_b.body.contains("id=\"current-publisher\">pub-b"),
        "{}",
        home_b.body
    );
    assert!(!home_b.body.contains("pub-a"), "{}", home_b.body);
    assert!(!home_b.body.contains(">Connected<"), "{}", home_b.body);
    // pub-a's job and data are not reachable from pub-b's session.
    let p = b.get(&format!("/sync/iterable/jobs/{job_id}")).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    let p = b.get("/sync/iterable").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    // A publisher cannot switch publisher, and cannot disconnect pub-a's integration.
    let csrf = home_b.csrf();
    let p = b
        .post("/publisher", &[("csrf", &csrf), ("publisherId", "pub-a")])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = b.post("/disconnect/iterable", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert!(
        a.get("/")
            .await
            .body
            .contains("id=\"status-iterable\">Connected")
    );

    // The admin picks pub-a and sees it.
    let mut admin = Web::new(&app);
    admin.sign_in(ADMIN_TOKEN).await;
    let csrf = admin.get("/").await.csrf();
    let p = admin
        .post("/publisher", &[("csrf", &csrf), ("publisherId", "admin")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("id=\"publisherId-error\""), "{}", p.body);
    admin
        .post("/publisher", &[("csrf", &csrf), ("publisherId", "pub-a")])
        .await;
    let home = admin.get("/").await;
    assert!(
        home.body.contains("id=\"status-iterable\">Connected"),
        "{}",
        home.body
    );
    drop(sandbox);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn connect_errors_show_next_to_their_field_and_keys_are_never_echoed() {
    let db = fresh_db().await;
    let (app, _sandbox) = TestApp::spawn_sandboxed(&db).await;
    let (_, key) = app.create_key("acme").await;
    let mut web = Web::new(&app);
    web.sign_in(&key).await;
    let csrf = web.get("/connect/iterable").await.csrf();

    let wrong = "0123456789abcdef0123456789abcdef";
    let p = web
        .post(
            "/connect/iterable",
            &[
                ("csrf", &csrf),
                ("apiKey", wrong),
                ("region", "us"),
                ("fromEmail", "news@acme.test"),
                ("action", "connect"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("id=\"f-apiKey-error\""), "{}", p.body);
    assert!(!p.body.contains(wrong), "the key came back: {}", p.body);
    assert!(p.body.contains("value=\"news@acme.test\""), "{}", p.body);

    let p = web
        .post(
            "/connect/iterable",
            &[
                ("csrf", &csrf),
                ("apiKey", sim_iterable::US_SERVER_KEY),
                ("region", "us"),
                ("fromEmail", "not-an-email"),
                ("action", "connect"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"f-fromEmail-error\""), "{}", p.body);

    // Test connection with the EU key in the US region: the diagnosis is shown.
    let p = web
        .post(
            "/connect/iterable",
            &[
                ("csrf", &csrf),
                ("apiKey", sim_iterable::EU_SERVER_KEY),
                ("region", "us"),
                ("action", "test"),
            ],
        )
        .await;
    assert!(p.body.contains("id=\"test-result\""), "{}", p.body);
    assert!(p.body.contains("Connection failed."), "{}", p.body);
    assert!(
        p.body.contains("belongs to a project in Iterable"),
        "{}",
        p.body
    );
    app.stop().await;
    db.cleanup().await;
}

/// Follows a `Location` that may be absolute (Keap's) or relative (ours); answers the next hop.
async fn hop(app: &TestApp, location: &str) -> reqwest::Response {
    let url = if location.starts_with("http") {
        location.to_owned()
    } else {
        app.url(location)
    };
    app.http.get(url).send().await.unwrap()
}

#[tokio::test]
async fn keap_authorize_started_in_the_dashboard_returns_to_the_card_even_when_denied() {
    let db = fresh_db().await;
    let (app, sandbox) = TestApp::spawn_sandboxed_with(
        &db,
        &sharpsend::sandbox::SandboxOptions::default(),
        &crate::helpers::random_master_key(),
        &[
            ("SHARPSEND_KEAP_CLIENT_ID", sim_keap::CLIENT_ID),
            ("SHARPSEND_KEAP_CLIENT_SECRET", sim_keap::CLIENT_SECRET),
        ],
    )
    .await;
    let keap = sim_core::SimClient::new(
        sandbox
            .platforms
            .iter()
            .find_map(|r| r.origin(sim_keap::API_URL_ENV))
            .unwrap(),
    );
    let (_, key) = app.create_key("acme").await;
    let mut web = Web::new(&app);
    web.sign_in(&key).await;

    // The Keap connect page lets its form leave for Keap's authorize origin, and only that.
    let page = web.get("/connect/keap").await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let authorize = sandbox
        .platforms
        .iter()
        .find_map(|r| r.origin(sim_keap::AUTHORIZE_URL_ENV))
        .unwrap();
    let origin = url::Url::parse(authorize)
        .unwrap()
        .origin()
        .ascii_serialization();
    assert_eq!(
        csp,
        CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}")
        )
    );

    // The user denies access on Keap's page.
    keap.post("/_sim/authorize", &json!({"mode": "deny"}))
        .await
        .unwrap();
    let csrf = page.csrf();
    let start = web.post("/connect/keap/oauth", &[("csrf", &csrf)]).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    assert!(
        start.location().starts_with(&origin),
        "{}",
        start.location()
    );
    let keap_answer = hop(&app, start.location()).await;
    assert_eq!(keap_answer.status(), StatusCode::FOUND);
    let callback = keap_answer.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let back = hop(&app, &callback).await;
    assert_eq!(back.status(), StatusCode::OK);
    let html = back.text().await.unwrap();
    let marker = "http-equiv=\"refresh\" content=\"0;url=";
    let start_at = html.find(marker).expect("a refresh back to the dashboard") + marker.len();
    let to = html[start_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(to.starts_with("/?oauth="), "{to}");
    let card = web.get(&to).await;
    assert!(card.body.contains("id=\"flash-keap\""), "{}", card.body);
    assert!(
        card.body.contains("Access to Keap was denied"),
        "{}",
        card.body
    );
    assert!(card.body.contains("id=\"status-keap\">Not connected"));
    // Another publisher's session does not see that outcome.
    let (_, other) = app.create_key("globex").await;
    let mut web2 = Web::new(&app);
    web2.sign_in(&other).await;
    assert!(!web2.get(&to).await.body.contains("flash-keap"));

    // A flow started through the API keeps the callback's own page.
    let url = app
        .get("/api/integrations/keap/acme/authorize-url", &key)
        .await
        .expect_ok(200)["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let keap_answer = hop(&app, &url).await;
    let callback = keap_answer.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let page = hop(&app, &callback).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let html = page.text().await.unwrap();
    assert!(html.contains("Keap was not connected"), "{html}");
    assert!(!html.contains("http-equiv"), "{html}");
    app.stop().await;
    db.cleanup().await;
}

/// The text of the element with `id`, up to its closing tag (enough for one cell or pill).
fn by_id<'p>(body: &'p str, id: &str) -> &'p str {
    let marker = format!("id=\"{id}\"");
    let at = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id}: {body}"));
    let rest = &body[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    &rest[start..start + end]
}

#[tokio::test]
async fn the_consent_page_adds_lists_sets_and_erases_only_when_confirmed() {
    let db = fresh_db().await;
    let app = TestApp::spawn(&db).await;
    let (key_id, key) = app.create_key("acme").await;
    // Iterable counts as connected for the ledger (no platform call is made here: the jobs
    // stay queued), Keap and Customer.io are not.
    app.state
        .store
        .save_integration(store::NewIntegration {
            id: "int_acme_iterable".into(),
            publisher_id: domain::PublisherId::parse("acme").unwrap(),
            platform: domain::Platform::Iterable,
            region: None,
            config: json!({}),
            webhook_id: "wh_int_acme_iterable".into(),
            credentials: vec![],
            now: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let mut web = Web::new(&app);
    web.sign_in(&key).await;
    let page = web.get("/consent").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("href=\"/consent\" aria-current=\"page\">Consent")
    );
    assert!(
        page.body.contains("id=\"no-suppressions\""),
        "{}",
        page.body
    );
    // The default setting: unsubscribes and complaints propagate.
    assert!(
        page.body.contains("value=\"unsubscribed\" checked"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"complained\" checked"));
    assert!(!page.body.contains("value=\"bounced\" checked"));
    let csrf = page.csrf();

    // Without the session's token nothing is added.
    let p = web
        .post(
            "/consent/suppressions",
            &[("csrf", "x"), ("email", "eve@example.com")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // A bad address is the API's error, next to the field, with the value kept.
    let p = web
        .post(
            "/consent/suppressions",
            &[
                ("csrf", &csrf),
                ("email", "not-an-address"),
                ("reason", "complained"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("id=\"add-email-error\""), "{}", p.body);
    assert!(p.body.contains("value=\"not-an-address\""), "{}", p.body);

    let p = web
        .post(
            "/consent/suppressions",
            &[
                ("csrf", &csrf),
                ("email", " Ada@Example.com"),
                ("reason", "unsubscribed"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/consent?done=added#ledger");
    web.post(
        "/consent/suppressions",
        &[
            ("csrf", &csrf),
            ("email", "bob@example.com"),
            ("reason", "manual"),
        ],
    )
    .await;
    let page = web.get("/consent?done=added").await;
    assert!(
        by_id(&page.body, "flash").contains("added"),
        "{}",
        page.body
    );
    let table = by_id_table(&page.body, "suppressions");
    assert!(
        table.contains("<td>ada@example.com</td><td>unsubscribed</td>"),
        "{table}"
    );
    assert!(
        table.contains(&format!("<td>API ({key_id})</td>")),
        "{table}"
    );
    assert!(table.contains("<time datetime=\""), "{table}");
    // Each entry's propagation on the connected platform: ada's is queued, bob's `manual` is
    // skipped with the reason why.
    assert!(table.contains("pill-pending"), "{table}");
    assert!(table.contains("pill-skipped"), "{table}");
    assert!(table.contains("manual"), "{table}");

    // The filters: by reason, by address, and the API's error for a bad address.
    let only = web.get("/consent?reason=manual").await;
    let t = by_id_table(&only.body, "suppressions");
    assert!(t.contains("bob@example.com") && !t.contains("ada@"), "{t}");
    let only = web.get("/consent?email=ADA%40example.com").await;
    let t = by_id_table(&only.body, "suppressions");
    assert!(t.contains("ada@example.com") && !t.contains("bob@"), "{t}");
    let bad = web.get("/consent?email=nope").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("id=\"ledger-email-error\""),
        "{}",
        bad.body
    );

    // The setting: only `bounced` ticked is saved as exactly that.
    let p = web
        .post(
            "/consent/settings",
            &[("csrf", &csrf), ("propagate", "bounced")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let stored = app.get("/api/integrations/acme/consent", &key).await;
    assert_eq!(stored.expect_ok(200)["propagate"], json!(["bounced"]));
    let page = web.get("/consent").await;
    assert!(
        page.body.contains("value=\"bounced\" checked"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("value=\"unsubscribed\" checked"));

    // Erase without confirmation, or with another address typed: nothing is erased.
    let p = web
        .post(
            "/consent/erase",
            &[("csrf", &csrf), ("email", "ada@example.com")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("id=\"erase-confirm\""), "{}", p.body);
    let p = web
        .post(
            "/consent/erase",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("confirm", "bob@example.com"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.body.contains("Nothing was erased"), "{}", p.body);
    let lookup = app
        .get(
            "/api/integrations/acme/suppressions?email=ada%40example.com",
            &key,
        )
        .await;
    assert_eq!(
        lookup.expect_ok(200)["suppressions"][0]["email"],
        "ada@example.com"
    );
    // A confirmed erasure without the session's token is refused too.
    let p = web
        .post(
            "/consent/erase",
            &[
                ("csrf", "x"),
                ("email", "ada@example.com"),
                ("confirm", "ada@example.com"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Confirmed: the erasure's page shows each platform.
    let p = web
        .post(
            "/consent/erase",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("confirm", "ADA@example.com"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(
        p.location().starts_with("/consent/erasures/era_"),
        "{}",
        p.location()
    );
    let erasure = web.get(p.location()).await;
    assert_eq!(erasure.status, StatusCode::OK, "{}", erasure.body);
    // Iterable is connected: its erase is queued (or, once a worker ran, finished).
    assert!(
        ["pending", "done", "failed"].contains(&by_id(&erasure.body, "erasure-iterable")),
        "{}",
        erasure.body
    );
    assert_eq!(by_id(&erasure.body, "erasure-keap"), "skipped");
    assert_eq!(by_id(&erasure.body, "erasure-customerio"), "skipped");
    assert!(!erasure.body.contains("ada@"), "{}", erasure.body);
    let lookup = app
        .get(
            "/api/integrations/acme/suppressions?email=ada%40example.com",
            &key,
        )
        .await;
    assert_eq!(
        lookup.expect_ok(200)["suppressions"],
        json!([{"erased": true}])
    );
    let page = web.get("/consent?email=ada%40example.com").await;
    assert!(page.body.contains("id=\"erased-match\""), "{}", page.body);
    // Another publisher's session cannot read that erasure.
    let (_, other) = app.create_key("globex").await;
    let mut globex = Web::new(&app);
    globex.sign_in(&other).await;
    let p = globex.get(p.location()).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("id=\"erasure-error\""), "{}", p.body);

    // The audit log, newest first, pages with its own cursor.
    let page = web.get("/consent").await;
    let audit = by_id_table(&page.body, "audit-table");
    let erased = audit.find("erasure.requested").expect("erasure audited");
    let updated = audit.find("consent.updated").expect("setting audited");
    let created = audit
        .find("suppression.created")
        .expect("suppression audited");
    assert!(erased < updated && updated < created, "{audit}");
    assert!(!page.body.contains("id=\"next-audit\""), "{}", page.body);
    app.stop().await;
    db.cleanup().await;
}

/// A table's HTML, from its opening tag with `id` to `</table>`.
fn by_id_table<'p>(body: &'p str, id: &str) -> &'p str {
    let at = body
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table #{id}: {body}"));
    let end = body[at..].find("</table>").unwrap();
    &body[at..at + end]
}
