//! The Apigee gateway in front of the REST APIs: authentication, quotas, spike arrest and the
//! `x-keap-*` headers on every response (§2, §6, §7).

use std::time::Duration;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{Datelike as _, TimeZone as _, Utc};
use serde_json::json;
use sim_core::Rate;

use crate::{
    config::{self, ClassLimits},
    state::{App, Principal, lock},
};

/// Paths the gateway does not guard: the token endpoint, the authorize page (another host in
/// reality) and the simulator's control routes.
fn unguarded(path: &str) -> bool {
    path == "/token" || path.starts_with("/app/oauth/") || path.starts_with("/_sim/")
}

/// An Apigee `fault` body.
pub fn fault(status: StatusCode, faultstring: &str, errorcode: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}})
            .to_string(),
    )
        .into_response()
}

/// The 429 of a quota violation (minute or day), as the `rateLimit` fault and the limits answer.
pub fn quota_violation(identifier: &str) -> Response {
    let mut r = fault(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Rate limit quota violation. Quota limit exceeded. Identifier : {identifier}"),
        config::QUOTA_ERRORCODE,
    );
    if config::SEND_RETRY_AFTER {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    r
}

fn spike_violation(per_second: u32) -> Response {
    fault(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Spike arrest violation. Allowed rate : MessageRate{{messagesPerPeriod={per_second}, periodInMicroseconds=1000000, maxBurstMessageCount=1.0}}"
        ),
        config::SPIKE_ERRORCODE,
    )
}

/// The Google front end's answer to a GET with a body (amp-labs fixture).
fn gfe_bad_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
        "<html>\n<head>\n<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n<title>400 Bad Request</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: Bad Request</h1>\n<h2>Your client has issued a malformed or illegal request.</h2>\n<h2></h2>\n</body>\n</html>\n",
    )
        .into_response()
}

/// The application server's page for an unknown URL (authenticated; amp-labs fixture's title).
pub async fn page_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        "<html>\n<head>\n<title>Keap - Page Not Found</title>\n</head>\n<body>\n<h1>Page Not Found</h1>\n<p>Sorry, the page you are looking for could not be found.</p>\n</body>\n</html>\n",
    )
        .into_response()
}

enum AuthError {
    NoToken,
    BadToken,
    Expired,
}

fn authenticate(app: &App, headers: &HeaderMap) -> Result<Principal, AuthError> {
    let oauth = lock(&app.oauth);
    if let Some(key) = headers.get("x-keap-api-key") {
        let key = key.to_str().unwrap_or_default().trim();
        return oauth.keys.get(key).cloned().ok_or(AuthError::BadToken);
    }
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthError::NoToken);
    };
    let auth = auth.to_str().unwrap_or_default().trim();
    let token = match auth.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            t.trim()
        }
        _ => return Err(AuthError::NoToken),
    };
    if let Some(p) = oauth.keys.get(token) {
        // Keap's own v2 SDK samples send a SAK as a bearer token (SDKSAMPLE).
        return Ok(p.clone());
    }
    match oauth.access.get(token) {
        Some(g) if g.expires > Utc::now() => Ok(Principal::OAuth {
            client_id: g.client_id.clone(),
        }),
        Some(_) => Err(AuthError::Expired),
        None => Err(AuthError::BadToken),
    }
}

/// Counters for the headers of one response.
struct Usage {
    class: ClassLimits,
    day_used: u64,
    minute_available: u32,
    tenant_minute_available: u32,
    tenant_day_used: u64,
    tenant_minute: u32,
    tenant_day: u32,
    spike_in_header: bool,
}

fn next_midnight_ms() -> i64 {
    let now = Utc::now();
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    Utc.from_utc_datetime(&tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default())
        .timestamp_millis()
}

fn today() -> i64 {
    i64::from(Utc::now().num_days_from_ce())
}

fn day_counter(app: &App, id: &str, consume: bool) -> u64 {
    let mut q = lock(&app.quotas);
    let day = today();
    let entry = q.days.entry(id.to_owned()).or_insert((day, 0));
    if entry.0 != day {
        *entry = (day, 0);
    }
    if consume {
        entry.1 += 1;
    }
    entry.1
}

fn set(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

fn write_headers(h: &mut HeaderMap, u: &Usage) {
    let c = u.class;
    set(h, "x-keap-product-quota-limit", c.per_day.to_string());
    set(h, "x-keap-product-quota-time-unit", "day".into());
    set(h, "x-keap-product-quota-interval", "1".into());
    set(
        h,
        "x-keap-product-quota-available",
        u64::from(c.per_day).saturating_sub(u.day_used).to_string(),
    );
    set(h, "x-keap-product-quota-used", u.day_used.to_string());
    set(
        h,
        "x-keap-product-quota-expiry-time",
        next_midnight_ms().to_string(),
    );
    set(h, "x-keap-product-throttle-limit", c.per_minute.to_string());
    set(h, "x-keap-product-throttle-time-unit", "minute".into());
    set(h, "x-keap-product-throttle-interval", "1".into());
    set(
        h,
        "x-keap-product-throttle-available",
        u.minute_available.to_string(),
    );
    set(
        h,
        "x-keap-product-throttle-used",
        c.per_minute.saturating_sub(u.minute_available).to_string(),
    );
    if u.spike_in_header {
        set(
            h,
            "x-keap-product-spike-limit",
            format!("{}ps", c.spike_per_second),
        );
    }
    set(h, "x-keap-tenant-id", config::TENANT_HOST.into());
    set(
        h,
        "x-keap-tenant-throttle-limit",
        format!("{}|{}", u.tenant_minute, u.tenant_day),
    );
    set(h, "x-keap-tenant-throttle-time-unit", "minute|day".into());
    set(h, "x-keap-tenant-throttle-interval", "1|1".into());
    set(
        h,
        "x-keap-tenant-throttle-available",
        format!(
            "{}|{}",
            u.tenant_minute_available,
            u64::from(u.tenant_day).saturating_sub(u.tenant_day_used)
        ),
    );
    set(
        h,
        "x-keap-tenant-throttle-used",
        format!(
            "{}|{}",
            u.tenant_minute.saturating_sub(u.tenant_minute_available),
            u.tenant_day_used
        ),
    );
}

const TENANT_KEY: &str = "tenant";

/// Header values without consuming anything (for 401s).
fn peek_usage(app: &App, principal: Option<&Principal>) -> Usage {
    let limits = app.config().limits;
    let (class, id, spike) = match principal {
        Some(p @ (Principal::Pat(_) | Principal::Sak(_))) => (limits.key, p.quota_id(), true),
        Some(p) => (limits.oauth, p.quota_id(), false),
        None => (limits.oauth, String::new(), false),
    };
    Usage {
        class,
        day_used: if id.is_empty() {
            0
        } else {
            day_counter(app, &id, false)
        },
        minute_available: class.per_minute,
        tenant_minute_available: limits.tenant_per_minute,
        tenant_day_used: day_counter(app, TENANT_KEY, false),
        tenant_minute: limits.tenant_per_minute,
        tenant_day: limits.tenant_per_day,
        spike_in_header: spike,
    }
}

/// Consumes one request from every bucket, or answers the 429 Keap would.
fn consume(app: &App, p: &Principal) -> Result<Usage, Response> {
    let limits = app.config().limits;
    let is_key = matches!(p, Principal::Pat(_) | Principal::Sak(_));
    let class = if is_key { limits.key } else { limits.oauth };
    let id = p.quota_id();
    let spike = Rate::new(class.spike_per_second.max(1), Duration::from_secs(1));
    if app.limiter.check(&format!("{id}:spike"), spike).is_err() {
        app.control.incr("429");
        app.control.incr("429_spike");
        return Err(spike_violation(class.spike_per_second));
    }
    let identifier = match p {
        Principal::OAuth { client_id } => client_id.clone(),
        Principal::Pat(_) | Principal::Sak(_) => config::TENANT_HOST.to_owned(),
    };
    let minute = app.limiter.check(
        &format!("{id}:minute"),
        Rate::per_minute(class.per_minute.max(1)),
    );
    let tenant_minute = app.limiter.check(
        "tenant:minute",
        Rate::per_minute(limits.tenant_per_minute.max(1)),
    );
    let day_used = day_counter(app, &id, true);
    let tenant_day_used = day_counter(app, TENANT_KEY, true);
    let mut usage = Usage {
        class,
        day_used,
        minute_available: *minute.as_ref().unwrap_or(&0),
        tenant_minute_available: *tenant_minute.as_ref().unwrap_or(&0),
        tenant_day_used,
        tenant_minute: limits.tenant_per_minute,
        tenant_day: limits.tenant_per_day,
        spike_in_header: is_key,
    };
    let over = minute.is_err()
        || tenant_minute.is_err()
        || day_used > u64::from(class.per_day)
        || tenant_day_used > u64::from(limits.tenant_per_day);
    if over {
        app.control.incr("429");
        app.control.incr("429_quota");
        usage.day_used = usage.day_used.min(u64::from(class.per_day));
        let mut r = quota_violation(&identifier);
        write_headers(r.headers_mut(), &usage);
        return Err(r);
    }
    Ok(usage)
}

/// The gateway middleware.
pub async fn gateway(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if unguarded(&path) {
        return next.run(req).await;
    }
    if req.method() == Method::GET {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
            || req.headers().contains_key(header::TRANSFER_ENCODING);
        if has_body {
            return gfe_bad_request();
        }
    }
    let principal = match authenticate(&app, req.headers()) {
        Ok(p) => p,
        Err(e) => {
            let (s, c) = match e {
                AuthError::NoToken => config::FAULT_NO_TOKEN,
                AuthError::BadToken => config::FAULT_BAD_TOKEN,
                AuthError::Expired => config::FAULT_EXPIRED,
            };
            app.control.incr("401");
            let mut r = fault(StatusCode::UNAUTHORIZED, s, c);
            write_headers(r.headers_mut(), &peek_usage(&app, None));
            return r;
        }
    };
    let usage = match consume(&app, &principal) {
        Ok(u) => u,
        Err(r) => return r,
    };
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    write_headers(resp.headers_mut(), &usage);
    resp
}
