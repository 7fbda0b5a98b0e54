//! A small receiving endpoint for signed webhooks, so a sandbox user can register it as an event
//! destination and watch what arrives, and whether each delivery's Standard Webhooks signature
//! holds, without writing a receiver first.
//!
//! - `POST /inbox/{name}` stores a delivery (headers `webhook-id`, `webhook-timestamp`,
//!   `webhook-signature` and the body, at most 256 KiB) and answers 204;
//! - `PUT /inbox/{name}/secret` with the body `whsec_…` sets the secret to verify with (the one
//!   a destination's create answer shows once);
//! - `GET /inbox/{name}` lists the arrivals, newest first, each `verified: true|false|null`
//!   (null: no secret yet) against the current secret; with `Accept: text/html`, as a page;
//! - `GET /inbox` lists the inboxes.
//!
//! The verification is written from the Standard Webhooks specification, independently of any
//! signer it checks: HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the base64-decoded part
//! of the secret after `whsec_`; the signature header is a space-separated list of `v1,<base64>`
//! and any one matching entry is enough; the timestamp must be within five minutes of arrival.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post, put},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{Binder, SimServer, lock};

/// Largest delivery body stored; larger ones are answered 413.
pub const MAX_BODY: usize = 256 * 1024;
/// Arrivals kept per inbox (oldest dropped first).
pub const MAX_ARRIVALS: usize = 200;
/// Inboxes kept; a new name beyond it is refused (this is a local demo tool, not a store).
pub const MAX_INBOXES: usize = 100;
/// How far a signed timestamp may be from the arrival, either way (the spec's five minutes).
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// One delivery as it arrived.
#[derive(Clone, Debug)]
struct Arrival {
    id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
    body: Bytes,
    received_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Inbox {
    /// The decoded key of the registered `whsec_…` secret.
    key: Option<Vec<u8>>,
    arrivals: VecDeque<Arrival>,
}

type Inboxes = Arc<Mutex<BTreeMap<String, Inbox>>>;

/// Why a delivery does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    MissingHeaders,
    BadTimestamp,
    TimestampOutOfTolerance,
    NoMatchingSignature,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeaders => "webhook-id, webhook-timestamp or webhook-signature is missing",
            Self::BadTimestamp => "webhook-timestamp is not unix seconds",
            Self::TimestampOutOfTolerance => {
                "webhook-timestamp is more than 5 minutes from arrival"
            }
            Self::NoMatchingSignature => "no v1 signature matches the secret",
        }
    }
}

/// Decodes a `whsec_…` secret into its HMAC key; `None` when it is not one.
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD
        .decode(secret.trim().strip_prefix(SECRET_PREFIX)?)
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// Checks one delivery against `key`: the timestamp within [`TOLERANCE_SECS`] of `at` and one
/// `v1,` entry of `signature` equal (in constant time) to the HMAC of `{id}.{timestamp}.{body}`.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    at: DateTime<Utc>,
) -> Result<(), Rejection> {
    let ts: i64 = timestamp.parse().map_err(|_| Rejection::BadTimestamp)?;
    if (at.timestamp() - ts).abs() > TOLERANCE_SECS {
        return Err(Rejection::TimestampOutOfTolerance);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| Rejection::NoMatchingSignature)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matches = signature
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        // verify_slice compares in constant time.
        .any(|sig| mac.clone().verify_slice(&sig).is_ok());
    if matches {
        Ok(())
    } else {
        Err(Rejection::NoMatchingSignature)
    }
}

/// The routes of the receiver.
pub fn router() -> Router {
    let inboxes: Inboxes = Arc::default();
    Router::new()
        .route("/inbox", get(list_inboxes))
        .route("/inbox/{name}", post(receive).get(show))
        .route("/inbox/{name}/secret", put(set_secret))
        // One byte over the cap reaches the handler, which answers 413 in our own words.
        .layer(DefaultBodyLimit::max(MAX_BODY + 1))
        .with_state(inboxes)
}

/// Serves the receiver on the binder's next listener.
pub async fn start(binder: &mut Binder) -> std::io::Result<SimServer> {
    crate::spawn(binder.bind().await?, router())
}

fn problem(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Runs `f` on the inbox `name` and answers 204, creating the inbox unless there are
/// [`MAX_INBOXES`] already.
fn update_inbox(inboxes: &Inboxes, name: &str, f: impl FnOnce(&mut Inbox)) -> Response {
    if !valid_name(name) {
        return problem(
            StatusCode::BAD_REQUEST,
            "an inbox name is 1-64 letters, digits, '-' or '_'",
        );
    }
    let mut all = lock(inboxes);
    if !all.contains_key(name) && all.len() >= MAX_INBOXES {
        return problem(StatusCode::INSUFFICIENT_STORAGE, "too many inboxes");
    }
    f(all.entry(name.to_owned()).or_default());
    StatusCode::NO_CONTENT.into_response()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn receive(
    State(inboxes): State<Inboxes>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bodies are capped at 256 KiB",
        );
    }
    let arrival = Arrival {
        id: header_str(&headers, "webhook-id"),
        timestamp: header_str(&headers, "webhook-timestamp"),
        signature: header_str(&headers, "webhook-signature"),
        body,
        received_at: Utc::now(),
    };
    update_inbox(&inboxes, &name, |inbox| {
        if inbox.arrivals.len() >= MAX_ARRIVALS {
            inbox.arrivals.pop_front();
        }
        inbox.arrivals.push_back(arrival);
    })
}

async fn set_secret(
    State(inboxes): State<Inboxes>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Some(key) = std::str::from_utf8(&body).ok().and_then(decode_secret) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be the destination's secret: whsec_ followed by base64",
        );
    };
    update_inbox(&inboxes, &name, |inbox| inbox.key = Some(key))
}

/// An arrival as JSON, verified against `key` when there is one.
fn arrival_json(a: &Arrival, key: Option<&[u8]>) -> Value {
    let outcome = key.map(|key| match (&a.id, &a.timestamp, &a.signature) {
        (Some(id), Some(ts), Some(sig)) => verify(key, id, ts, sig, &a.body, a.received_at),
        _ => Err(Rejection::MissingHeaders),
    });
    let body = serde_json::from_slice::<Value>(&a.body)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&a.body)));
    json!({
        "receivedAt": a.received_at.to_rfc3339(),
        "webhookId": a.id,
        "webhookTimestamp": a.timestamp,
        "webhookSignature": a.signature,
        "verified": outcome.map(|o| o.is_ok()),
        "reason": outcome.and_then(Result::err).map(Rejection::as_str),
        "body": body,
    })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn show(
    State(inboxes): State<Inboxes>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !valid_name(&name) {
        return problem(StatusCode::NOT_FOUND, "no such inbox");
    }
    let (has_secret, arrivals): (bool, Vec<Value>) = {
        let all = lock(&inboxes);
        all.get(&name).map_or((false, Vec::new()), |inbox| {
            let key = inbox.key.as_deref();
            (
                key.is_some(),
                inbox
                    .arrivals
                    .iter()
                    .rev()
                    .map(|a| arrival_json(a, key))
                    .collect(),
            )
        })
    };
    if wants_html(&headers) {
        return Html(page(&name, has_secret, &arrivals)).into_response();
    }
    Json(json!({"inbox": name, "secret": has_secret, "arrivals": arrivals})).into_response()
}

async fn list_inboxes(State(inboxes): State<Inboxes>) -> Json<Value> {
    let all = lock(&inboxes);
    let list: Vec<Value> = all
        .iter()
        .map(|(name, inbox)| {
            json!({"name": name, "arrivals": inbox.arrivals.len(), "secret": inbox.key.is_some()})
        })
        .collect();
    Json(json!({ "inboxes": list }))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(name: &str, has_secret: bool, arrivals: &[Value]) -> String {
    let name = escape(name);
    let mut rows = String::new();
    for a in arrivals {
        let verdict = match a["verified"].as_bool() {
            Some(true) => "verified".to_owned(),
            Some(false) => format!("NOT verified: {}", a["reason"].as_str().unwrap_or("")),
            None => "not checked (no secret yet)".to_owned(),
        };
        let body = serde_json::to_string_pretty(&a["body"]).unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>\n",
            escape(a["receivedAt"].as_str().unwrap_or("")),
            escape(a["webhookId"].as_str().unwrap_or("")),
            escape(&verdict),
            escape(&body),
        ));
    }
    let secret = if has_secret {
        "a secret is set; each delivery is checked against it"
    } else {
        "no secret yet: PUT the destination's whsec_… secret to /inbox/NAME/secret"
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>inbox {name}</title></head>\n\
         <body><h1>inbox {name}</h1><p>{n} deliveries, newest first; {secret}.</p>\n\
         <table border=\"1\"><tr><th>received</th><th>webhook-id</th><th>signature</th><th>body</th></tr>\n\
         {rows}</table></body></html>\n",
        n = arrivals.len(),
        secret = escape(secret),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification (also what the reference Python
    /// library's `Webhook.sign` answers for it).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: &str = "1614265330";
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_time() -> DateTime<Utc> {
        DateTime::from_timestamp(1_614_265_330, 0).unwrap()
    }

    #[test]
    fn the_spec_vector_verifies() {
        let key = decode_secret(SPEC_SECRET).unwrap();
        assert_eq!(
            verify(
                &key,
                SPEC_ID,
                SPEC_TS,
                SPEC_SIG,
                SPEC_BODY.as_bytes(),
                spec_time()
            ),
            Ok(())
        );
    }

    #[test]
    fn any_v1_entry_may_match_and_others_are_ignored() {
        let key = decode_secret(SPEC_SECRET).unwrap();
        let header = format!("v1a,AAAA v1,bm90LXRoaXM= {SPEC_SIG}");
        assert_eq!(
            verify(
                &key,
                SPEC_ID,
                SPEC_TS,
                &header,
                SPEC_BODY.as_bytes(),
                spec_time()
            ),
            Ok(())
        );
        // The same bytes under another scheme do not count.
        let v2 = SPEC_SIG.replacen("v1,", "v2,", 1);
        assert_eq!(
            verify(
                &key,
                SPEC_ID,
                SPEC_TS,
                &v2,
                SPEC_BODY.as_bytes(),
                spec_time()
            ),
            Err(Rejection::NoMatchingSignature)
        );
    }

    #[test]
    fn a_changed_body_id_key_or_timestamp_fails() {
        let key = decode_secret(SPEC_SECRET).unwrap();
        let at = spec_time();
        let v = |key: &[u8], id: &str, ts: &str, body: &str| {
            verify(key, id, ts, SPEC_SIG, body.as_bytes(), at)
        };
        let no = Err(Rejection::NoMatchingSignature);
        assert_eq!(v(&key, SPEC_ID, SPEC_TS, r#"{"test": 2432232315}"#), no);
        assert_eq!(v(&key, "msg_other", SPEC_TS, SPEC_BODY), no);
        assert_eq!(v(b"another key", SPEC_ID, SPEC_TS, SPEC_BODY), no);
        assert_eq!(v(&key, SPEC_ID, "1614265331", SPEC_BODY), no);
        assert_eq!(
            v(&key, SPEC_ID, "yesterday", SPEC_BODY),
            Err(Rejection::BadTimestamp)
        );
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_fail() {
        let key = decode_secret(SPEC_SECRET).unwrap();
        let body = SPEC_BODY.as_bytes();
        let ok = |secs: i64| {
            let at = spec_time() + chrono::Duration::seconds(secs);
            verify(&key, SPEC_ID, SPEC_TS, SPEC_SIG, body, at)
        };
        assert_eq!(ok(300), Ok(()));
        assert_eq!(ok(-300), Ok(()));
        assert_eq!(ok(301), Err(Rejection::TimestampOutOfTolerance));
        assert_eq!(ok(-301), Err(Rejection::TimestampOutOfTolerance));
    }

    /// A signature computed here by hand, step by step from the spec's description.
    #[test]
    fn a_hand_computed_signature_verifies() {
        let key = b"0123456789abcdef0123456789abcdef";
        let secret = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(b"msg_1.1700000000.{\"a\":1}");
        let sig = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        let at = DateTime::from_timestamp(1_700_000_010, 0).unwrap();
        let key = decode_secret(&secret).unwrap();
        assert_eq!(
            verify(&key, "msg_1", "1700000000", &sig, br#"{"a":1}"#, at),
            Ok(())
        );
    }

    #[test]
    fn secrets_need_the_prefix_and_base64() {
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(decode_secret("whsec_not base64!").is_none());
        assert!(decode_secret("whsec_").is_none());
        assert!(decode_secret(&format!("  {SPEC_SECRET}\n")).is_some());
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert('x')</script>&"#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
        assert_eq!(escape("\"q\""), "&quot;q&quot;");
    }

    async fn serve() -> (SimServer, reqwest::Client) {
        let server = start(&mut Binder::ephemeral()).await.unwrap();
        (server, reqwest::Client::new())
    }

    async fn arrivals(http: &reqwest::Client, url: &str) -> Value {
        http.get(url).send().await.unwrap().json().await.unwrap()
    }

    #[tokio::test]
    async fn deliveries_are_stored_and_checked_against_the_secret_set_later() {
        let (server, http) = serve().await;
        let inbox = format!("{}/inbox/demo", server.origin());
        let now = Utc::now().timestamp().to_string();
        let key = b"sandbox-secret-bytes";
        let secret = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
        let body = r#"{"type":"email.opened"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("msg_good.{now}.{body}").as_bytes());
        let good = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        for (id, sig) in [("msg_good", good.as_str()), ("msg_bad", "v1,AAAA")] {
            let r = http
                .post(&inbox)
                .header("webhook-id", id)
                .header("webhook-timestamp", &now)
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
        // No secret yet: nothing is judged.
        let v = arrivals(&http, &inbox).await;
        assert_eq!(v["secret"], false);
        assert_eq!(v["arrivals"][0]["verified"], Value::Null, "{v}");
        assert_eq!(v["arrivals"][0]["body"]["type"], "email.opened");

        let r = http
            .put(format!("{inbox}/secret"))
            .body("not-a-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = http
            .put(format!("{inbox}/secret"))
            .body(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let v = arrivals(&http, &inbox).await;
        // Newest first.
        assert_eq!(v["arrivals"][0]["webhookId"], "msg_bad");
        assert_eq!(v["arrivals"][0]["verified"], false);
        assert_eq!(
            v["arrivals"][0]["reason"],
            "no v1 signature matches the secret"
        );
        assert_eq!(v["arrivals"][1]["webhookId"], "msg_good");
        assert_eq!(v["arrivals"][1]["verified"], true, "{v}");

        let listed = arrivals(&http, &format!("{}/inbox", server.origin())).await;
        assert_eq!(listed["inboxes"][0]["name"], "demo");
        assert_eq!(listed["inboxes"][0]["arrivals"], 2);
    }

    #[tokio::test]
    async fn unsigned_and_oversized_deliveries() {
        let (server, http) = serve().await;
        let inbox = format!("{}/inbox/x", server.origin());
        http.put(format!("{inbox}/secret"))
            .body(SPEC_SECRET)
            .send()
            .await
            .unwrap();
        let r = http.post(&inbox).body("{}").send().await.unwrap();
        assert_eq!(r.status(), 204);
        let v = arrivals(&http, &inbox).await;
        assert_eq!(v["arrivals"][0]["verified"], false);
        assert_eq!(
            v["arrivals"][0]["reason"],
            Rejection::MissingHeaders.as_str()
        );

        let r = http
            .post(&inbox)
            .body(vec![b'a'; MAX_BODY + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let r = http
            .post(&inbox)
            .body(vec![b'a'; MAX_BODY])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = http
            .post(format!("{}/inbox/no%20spaces", server.origin()))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }

    #[tokio::test]
    async fn the_html_page_escapes_what_arrived() {
        let (server, http) = serve().await;
        let inbox = format!("{}/inbox/page", server.origin());
        http.post(&inbox)
            .header("webhook-id", "<b>id</b>")
            .body(r#"{"html":"<script>alert(1)</script>"}"#)
            .send()
            .await
            .unwrap();
        let r = http
            .get(&inbox)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>id"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;id&lt;/b&gt;"), "{html}");
        assert!(html.contains("not checked (no secret yet)"));
    }
}
