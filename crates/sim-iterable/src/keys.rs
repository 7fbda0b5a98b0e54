//! API keys: kinds, the sandbox keys, which endpoints each kind may call, and JWT checks.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::Region;

/// The key types of Iterable's "API Keys" support article.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    /// "Standard": every server-side endpoint, read and write.
    ServerSide,
    /// GETs of project metadata only.
    ReadOnly,
    /// Client-side key for mobile SDKs.
    Mobile,
    /// Client-side key for the web SDK.
    JavaScript,
}

/// One key of the simulated project.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub value: String,
    pub kind: KeyKind,
    /// Set for JWT-enabled keys: requests also need `Authorization: Bearer <HS256 JWT>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    #[serde(default)]
    pub label: String,
}

// Sandbox keys. 32 lowercase hex characters, as Iterable issues them. Each works only against
// the data centre named in it (a US key on the EU origin is rejected, as on the real platform).
/// US project, server-side ("Standard") key: what the connector needs.
pub const US_SERVER_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// US project, read-only key.
pub const US_READ_ONLY_KEY: &str = "b0c1d2e3f4a5061728394a5b6c7d8e9f";
/// US project, mobile (client-side) key without JWT.
pub const US_MOBILE_KEY: &str = "c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4";
/// US project, JWT-enabled mobile key; JWTs are signed with [`US_JWT_SECRET`].
pub const US_JWT_KEY: &str = "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9";
/// HS256 secret of [`US_JWT_KEY`].
pub const US_JWT_SECRET: &str = "sandbox-iterable-us-jwt-secret-0123456789";
/// US project, JavaScript (web SDK, client-side) key without JWT.
pub const US_JS_KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// EU project, server-side key (valid only on the EU origin).
pub const EU_SERVER_KEY: &str = "e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0";
/// EU project, read-only key.
pub const EU_READ_ONLY_KEY: &str = "f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1";

/// The keys a fresh project of `region` knows.
pub fn sandbox_keys(region: Region) -> Vec<ApiKey> {
    let k = |value: &str, kind, jwt: Option<&str>, label: &str| ApiKey {
        value: value.to_owned(),
        kind,
        jwt_secret: jwt.map(str::to_owned),
        label: label.to_owned(),
    };
    match region {
        Region::Us => vec![
            k(
                US_SERVER_KEY,
                KeyKind::ServerSide,
                None,
                "iterable us server-side API key",
            ),
            k(
                US_READ_ONLY_KEY,
                KeyKind::ReadOnly,
                None,
                "iterable us read-only API key",
            ),
            k(
                US_MOBILE_KEY,
                KeyKind::Mobile,
                None,
                "iterable us mobile API key",
            ),
            k(
                US_JS_KEY,
                KeyKind::JavaScript,
                None,
                "iterable us JavaScript API key",
            ),
            k(
                US_JWT_KEY,
                KeyKind::Mobile,
                Some(US_JWT_SECRET),
                "iterable us JWT-enabled mobile API key",
            ),
        ],
        Region::Eu => vec![
            k(
                EU_SERVER_KEY,
                KeyKind::ServerSide,
                None,
                "iterable eu server-side API key",
            ),
            k(
                EU_READ_ONLY_KEY,
                KeyKind::ReadOnly,
                None,
                "iterable eu read-only API key",
            ),
        ],
    }
}

/// The key a request carries: `Api-Key` (canonical) or `Api_Key` / `api_key` (n8n, Singer and
/// Workato send these and they work). HTTP header names are case-insensitive already.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("api-key")
        .or_else(|| headers.get("api_key"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Endpoints client-side keys may call ([KEYS]: mobile list; the JavaScript list is truncated in
/// the copy read, so it is inferred as the same list plus the web-only endpoints).
const MOBILE_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/users/update"),
    ("POST", "/api/users/updateEmail"),
    ("POST", "/api/users/updateSubscriptions"),
    ("POST", "/api/users/registerDeviceToken"),
    ("POST", "/api/users/disableDevice"),
    ("POST", "/api/commerce/trackPurchase"),
    ("POST", "/api/commerce/updateCart"),
    ("POST", "/api/events/track"),
    ("POST", "/api/events/trackPushOpen"),
    ("POST", "/api/events/trackInAppOpen"),
    ("POST", "/api/events/trackInAppClick"),
    ("POST", "/api/events/trackInAppClose"),
    ("POST", "/api/events/trackInAppDelivery"),
    ("POST", "/api/events/inAppConsume"),
    ("GET", "/api/inApp/getMessages"),
];
const WEB_ONLY_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/users/registerBrowserToken"),
    ("GET", "/api/inApp/web/getMessages"),
];

/// Whether a key of `kind` may call `method route` (`route` is the templated path).
///
/// Read-only: GETs, except the bulk exports (Airbyte #7735: a read-only key gets 401 on
/// `/api/export/data.json`); the full list in [KEYS] is truncated, so the boundary is inferred.
pub fn allows(kind: KeyKind, method: &Method, route: &str) -> bool {
    let listed = |list: &[(&str, &str)]| {
        list.iter()
            .any(|(m, p)| *p == route && method.as_str() == *m)
    };
    match kind {
        KeyKind::ServerSide => true,
        KeyKind::ReadOnly => *method == Method::GET && !route.starts_with("/api/export/"),
        KeyKind::Mobile => listed(MOBILE_ENDPOINTS),
        KeyKind::JavaScript => listed(MOBILE_ENDPOINTS) || listed(WEB_ONLY_ENDPOINTS),
    }
}

/// Why a JWT was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Missing,
    Invalid,
    Expired,
}

/// The identity a valid JWT names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JwtIdentity {
    pub email: Option<String>,
    pub user_id: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// Checks `Authorization: Bearer <jwt>` against `secret`: HS256, unexpired, naming `email` or
/// `userId` (Iterable's JWT-enabled keys article).
pub fn verify_jwt(headers: &HeaderMap, secret: &str, now_s: i64) -> Result<JwtIdentity, JwtError> {
    let raw = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or(JwtError::Missing)?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .ok_or(JwtError::Invalid)?
        .trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Invalid);
    };
    let header: Value = b64()
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Invalid)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::Invalid);
    }
    let sig = b64().decode(s).map_err(|_| JwtError::Invalid)?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| JwtError::Invalid)?;
    mac.update(format!("{h}.{p}").as_bytes());
    mac.verify_slice(&sig).map_err(|_| JwtError::Invalid)?;
    let payload: Value = b64()
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Invalid)?;
    let exp = payload
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(JwtError::Invalid)?;
    if exp <= now_s {
        return Err(JwtError::Expired);
    }
    let id = JwtIdentity {
        email: payload
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned),
        user_id: payload
            .get("userId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    if id.email.is_none() && id.user_id.is_none() {
        return Err(JwtError::Invalid);
    }
    Ok(id)
}

/// Mints an HS256 JWT as a publisher's backend would for a JWT-enabled key.
pub fn mint_jwt(
    secret: &str,
    email: Option<&str>,
    user_id: Option<&str>,
    iat_s: i64,
    exp_s: i64,
) -> String {
    let header = b64().encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = serde_json::Map::new();
    if let Some(e) = email {
        claims.insert("email".into(), Value::from(e));
    }
    if let Some(u) = user_id {
        claims.insert("userId".into(), Value::from(u));
    }
    claims.insert("iat".into(), Value::from(iat_s));
    claims.insert("exp".into(), Value::from(exp_s));
    let payload = b64().encode(Value::Object(claims).to_string());
    let signing = format!("{header}.{payload}");
    let sig = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(signing.as_bytes());
            b64().encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing}.{sig}")
}

/// The key table of one project.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: HashMap<String, ApiKey>,
}

impl KeyTable {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.value.clone(), k)).collect(),
        }
    }

    pub fn get(&self, value: &str) -> Option<&ApiKey> {
        self.keys.get(value)
    }

    pub fn insert(&mut self, key: ApiKey) {
        self.keys.insert(key.value.clone(), key);
    }

    pub fn remove(&mut self, value: &str) -> bool {
        self.keys.remove(value).is_some()
    }

    pub fn all(&self) -> Vec<ApiKey> {
        let mut v: Vec<ApiKey> = self.keys.values().cloned().collect();
        v.sort_by(|a, b| a.label.cmp(&b.label).then(a.value.cmp(&b.value)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn jwt_round_trip_and_failures() {
        let t = mint_jwt("s3cret", Some("a@b.co"), None, 100, 200);
        let id = verify_jwt(&bearer(&t), "s3cret", 150).unwrap();
        assert_eq!(id.email.as_deref(), Some("a@b.co"));
        assert_eq!(
            verify_jwt(&bearer(&t), "s3cret", 200),
            Err(JwtError::Expired)
        );
        assert_eq!(
            verify_jwt(&bearer(&t), "other", 150),
            Err(JwtError::Invalid)
        );
        assert_eq!(
            verify_jwt(&HeaderMap::new(), "s3cret", 150),
            Err(JwtError::Missing)
        );
        let no_id = mint_jwt("s3cret", None, None, 100, 200);
        assert_eq!(
            verify_jwt(&bearer(&no_id), "s3cret", 150),
            Err(JwtError::Invalid)
        );
    }

    #[test]
    fn key_kinds_gate_endpoints() {
        assert!(allows(
            KeyKind::ServerSide,
            &Method::POST,
            "/api/export/start"
        ));
        assert!(allows(KeyKind::ReadOnly, &Method::GET, "/api/campaigns"));
        assert!(!allows(
            KeyKind::ReadOnly,
            &Method::POST,
            "/api/users/update"
        ));
        assert!(!allows(
            KeyKind::ReadOnly,
            &Method::GET,
            "/api/export/data.json"
        ));
        assert!(allows(KeyKind::Mobile, &Method::POST, "/api/events/track"));
        assert!(!allows(KeyKind::Mobile, &Method::GET, "/api/channels"));
        assert!(allows(
            KeyKind::JavaScript,
            &Method::POST,
            "/api/users/registerBrowserToken"
        ));
    }

    #[test]
    fn underscore_header_variant_is_accepted() {
        let mut h = HeaderMap::new();
        h.insert("api_key", HeaderValue::from_static("k1"));
        assert_eq!(presented_key(&h), Some("k1"));
        let mut h = HeaderMap::new();
        h.insert("Api-Key", HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&h), Some("k2"));
    }
}
