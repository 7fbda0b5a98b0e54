//! Shared simulator state, credentials parsing and rate limiting.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    http::{HeaderMap, header},
    response::Response,
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sim_core::{Control, Rate, RateLimiter, lock};

use crate::{
    config::{
        self, APP_RATE, CDP_RATE, SandboxWorkspace, TRACK_RATE, TRANSACTIONAL_RATE, TRIGGER_RATE,
        WORKSPACES,
    },
    store::Store,
    webhooks::WebhookState,
};

/// The region of a listener or a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn index(self) -> usize {
        match self {
            Region::Us => 0,
            Region::Eu => 1,
        }
    }

    pub fn workspace(self) -> &'static SandboxWorkspace {
        &WORKSPACES[self.index()]
    }

    pub fn of(ws: &SandboxWorkspace) -> Self {
        if ws.region == "eu" {
            Region::Eu
        } else {
            Region::Us
        }
    }
}

/// The six origins, once bound.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    pub track: [String; 2],
    pub app: [String; 2],
    pub cdp: [String; 2],
}

/// The `Authorization` header as the platform reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth {
    Missing,
    Basic(String, String),
    Bearer(String),
    /// Present but not parseable (unknown scheme, bad base64, no colon).
    Invalid,
}

/// Decodes Basic credentials in the standard or URL-safe base64 alphabet, padded or not (the Go
/// SDK uses `base64.URLEncoding`).
fn decode_basic(b64: &str) -> Option<(String, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let b64 = b64.trim();
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(b64).ok())?;
    let s = String::from_utf8(bytes).ok()?;
    let (user, pass) = s.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

pub fn parse_auth(headers: &HeaderMap) -> Auth {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let Ok(v) = v.to_str() else {
        return Auth::Invalid;
    };
    let (scheme, rest) = v.trim().split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        decode_basic(rest).map_or(Auth::Invalid, |(u, p)| Auth::Basic(u, p))
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
        Auth::Bearer(rest.trim().to_owned())
    } else {
        Auth::Invalid
    }
}

/// The workspace whose Track pair this is.
pub fn track_workspace(auth: &Auth) -> Option<&'static SandboxWorkspace> {
    match auth {
        Auth::Basic(site, key) => WORKSPACES
            .iter()
            .find(|w| w.site_id == site && w.tracking_key == key),
        _ => None,
    }
}

/// The workspace whose App API key this bearer token is.
pub fn app_workspace(auth: &Auth) -> Option<&'static SandboxWorkspace> {
    match auth {
        Auth::Bearer(key) => WORKSPACES.iter().find(|w| w.app_api_key == key),
        _ => None,
    }
}

/// The workspace whose Pipelines key is the Basic user name (the password is not checked:
/// inferred, as Segment-style write-key APIs ignore it).
pub fn cdp_workspace(auth: &Auth) -> Option<&'static SandboxWorkspace> {
    match auth {
        Auth::Basic(key, _) => WORKSPACES.iter().find(|w| w.cdp_api_key == key),
        _ => None,
    }
}

/// The endpoint classes that have their own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    App,
    Trigger,
    Track,
    Transactional,
    Cdp,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::App => "app",
            Class::Trigger => "trigger",
            Class::Track => "track",
            Class::Transactional => "transactional",
            Class::Cdp => "cdp",
        }
    }
}

/// One limit as the control route shows and takes it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateSpec {
    pub amount: u32,
    pub per_ms: u64,
}

impl From<Rate> for RateSpec {
    fn from(r: Rate) -> Self {
        Self {
            amount: r.amount,
            per_ms: u64::try_from(r.per.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl From<RateSpec> for Rate {
    fn from(r: RateSpec) -> Self {
        Rate::new(r.amount.max(1), Duration::from_millis(r.per_ms.max(1)))
    }
}

/// The limits in force: the documented ones, time-compressed by `scale`, or overridden.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub enabled: bool,
    /// Windows are divided by this: 10 makes "1 per 10 s" into "1 per 1 s" (bursts unchanged).
    pub scale: f64,
    pub app: RateSpec,
    pub trigger: RateSpec,
    pub track: RateSpec,
    pub transactional: RateSpec,
    pub cdp: RateSpec,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            scale: 1.0,
            app: APP_RATE.into(),
            trigger: TRIGGER_RATE.into(),
            track: TRACK_RATE.into(),
            transactional: TRANSACTIONAL_RATE.into(),
            cdp: CDP_RATE.into(),
        }
    }
}

impl Limits {
    fn rate(&self, class: Class) -> Rate {
        let spec = match class {
            Class::App => self.app,
            Class::Trigger => self.trigger,
            Class::Track => self.track,
            Class::Transactional => self.transactional,
            Class::Cdp => self.cdp,
        };
        let rate: Rate = spec.into();
        let scale = if self.scale.is_finite() && self.scale > 0.0 {
            self.scale
        } else {
            1.0
        };
        Rate::new(
            rate.amount,
            rate.per.div_f64(scale).max(Duration::from_micros(1)),
        )
    }
}

/// Everything the six listeners share.
pub struct Sim {
    pub control: Control,
    pub limiter: RateLimiter,
    pub limits: Mutex<Limits>,
    /// When on, an EU Track pair on the US Track origin is answered 307 to the EU origin.
    pub redirect: AtomicBool,
    stores: [Mutex<Store>; 2],
    pub origins: Origins,
    pub webhooks: Arc<WebhookState>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl Sim {
    pub fn new(control: Control, stores: [Store; 2], origins: Origins) -> Self {
        let [us, eu] = stores;
        Self {
            webhooks: Arc::new(WebhookState::new(control.clone())),
            control,
            limiter: RateLimiter::new(),
            limits: Mutex::new(Limits::default()),
            redirect: AtomicBool::new(false),
            stores: [Mutex::new(us), Mutex::new(eu)],
            origins,
        }
    }

    pub fn store(&self, region: Region) -> MutexGuard<'_, Store> {
        lock(&self.stores[region.index()])
    }

    pub fn redirect_enabled(&self) -> bool {
        self.redirect.load(Ordering::Relaxed)
    }

    /// Takes a token for `key` in `class`; the platform's 429 (counted) when the bucket is empty.
    pub fn limit(&self, class: Class, key: &str, path: &str) -> Option<Response> {
        let (enabled, rate) = {
            let l = lock(&self.limits);
            (l.enabled, l.rate(class))
        };
        if !enabled {
            return None;
        }
        match self.limiter.check(&format!("{key}:{}", class.name()), rate) {
            Ok(_) => None,
            Err(_) => {
                self.control.incr(&format!("429_{}", class.name()));
                Some(self.control.rate_limited(path))
            }
        }
    }

    pub fn set_limits(&self, limits: Limits) {
        *lock(&self.limits) = limits;
        self.limiter.reset();
    }

    /// Back to the state at start (the `/_sim/reset` hook).
    pub fn reset(&self) {
        for s in &self.stores {
            lock(s).clear();
        }
        self.set_limits(Limits::default());
        self.redirect.store(false, Ordering::Relaxed);
        self.webhooks.reset();
    }
}

/// What a listener's handlers get: the shared state and the listener's region.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub sim: Arc<Sim>,
    pub region: Region,
}

/// A workspace credential set in the shape of the `/_sim/workspaces` control route.
pub fn workspace_json(ws: &SandboxWorkspace) -> serde_json::Value {
    serde_json::json!({
        "region": ws.region,
        "environmentId": ws.environment_id,
        "siteId": ws.site_id,
        "trackingKey": ws.tracking_key,
        "appApiKey": ws.app_api_key,
        "cdpApiKey": ws.cdp_api_key,
        "webhookSigningKey": ws.webhook_signing_key,
    })
}

/// Convenience for control routes: the workspace named `us` / `eu` (default us).
pub fn region_param(s: Option<&str>) -> Option<Region> {
    match s {
        None => Some(Region::Us),
        Some(r) => config::workspace(&r.to_ascii_lowercase()).map(Region::of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn basic_auth_accepts_both_alphabets() {
        // Bytes chosen so standard and URL-safe encodings differ (`+`/`/` vs `-`/`_`).
        let creds = "site>>?:key??>";
        let std = STANDARD.encode(creds);
        let url = URL_SAFE_NO_PAD.encode(creds);
        assert_ne!(std.trim_end_matches('='), url);
        let want = Auth::Basic("site>>?".into(), "key??>".into());
        assert_eq!(parse_auth(&headers(&format!("Basic {std}"))), want);
        assert_eq!(parse_auth(&headers(&format!("Basic {url}"))), want);
        assert_eq!(parse_auth(&headers(&format!("basic {std}"))), want);
    }

    #[test]
    fn malformed_authorization_is_invalid() {
        assert_eq!(parse_auth(&headers("Basic !!!")), Auth::Invalid);
        assert_eq!(
            parse_auth(&headers(&format!("Basic {}", STANDARD.encode("nocolon")))),
            Auth::Invalid
        );
        assert_eq!(parse_auth(&headers("Token abc")), Auth::Invalid);
        assert_eq!(parse_auth(&HeaderMap::new()), Auth::Missing);
        assert_eq!(parse_auth(&headers("Bearer k1")), Auth::Bearer("k1".into()));
    }

    #[test]
    fn scale_compresses_windows() {
        let l = Limits {
            scale: 10.0,
            ..Limits::default()
        };
        assert_eq!(l.rate(Class::Trigger), Rate::new(1, Duration::from_secs(1)));
        assert_eq!(l.rate(Class::App).amount, 10);
    }
}
