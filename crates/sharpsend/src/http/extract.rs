//! Extractors whose rejections answer in the envelope: JSON bodies, query strings, and the
//! authorised [`Scope`] of a request.

use axum::{extract::FromRequestParts, http::request::Parts};
use domain::{Platform, PublisherId};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Principal;

/// Largest request body we read (CONTRACT §2: over 1 MiB answers 413).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Who is calling and which publisher and platform the route names, checked by the
/// `authorize` middleware before any handler runs: handlers take the publisher from here, never
/// from the raw path, so tenancy lives in one place.
#[derive(Clone, Debug)]
pub struct Scope {
    pub principal: Principal,
    /// The acting publisher: the one the path names, or else the body's `publisherId` (both
    /// checked against the principal), or else a publisher key's own publisher. The only source
    /// of a publisher id a handler may use.
    pub publisher: Option<PublisherId>,
    /// The platform the path names.
    pub platform: Option<Platform>,
}

impl Scope {
    /// The acting publisher; a route whose path names none needs the body's `publisherId`.
    pub fn publisher(&self) -> Result<&PublisherId, ApiError> {
        self.publisher.as_ref().ok_or_else(|| {
            ApiError::validation(
                "publisherId",
                "Name the publisher: this route takes `publisherId` in its JSON body.",
            )
        })
    }

    /// The platform of a route that names one.
    pub fn platform(&self) -> Result<Platform, ApiError> {
        self.platform
            .ok_or_else(|| ApiError::internal("route without a platform asked for one"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Scope>().cloned().ok_or_else(|| {
            ApiError::internal("Scope extractor used on a route without the authorize middleware")
        })
    }
}

/// Turns a serde error with its path into a validation error naming the field.
fn data_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    let message = inner.to_string();
    let mut field = err.path().to_string();
    // serde reports a missing field at its parent; name the field itself.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        field = if field == "." {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
    }
    if field == "." {
        field = "body".to_owned();
    }
    let text = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    ApiError::validation(
        field.clone(),
        format!("Invalid request body at `{field}`: {text}."),
    )
}

/// The request's JSON body, parsed once by the `authorize` gate ([`super::json::parse_strict`])
/// and handed to the handler in the request's extensions; the raw bytes are not passed on, so no
/// handler can read a different body than the one the gate checked.
#[derive(Clone, Debug)]
pub struct JsonBody(pub std::sync::Arc<serde_json::Value>);

/// Deserializes `T` from the parsed body; a wrong shape is a `VALIDATION_ERROR` naming the field.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(data_error)
}

/// A JSON body (`Content-Type: application/json`, checked by the gate), deserialized into `T`.
/// An absent or empty body is a `VALIDATION_ERROR`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<JsonBody>() {
            Some(JsonBody(value)) => from_value(value).map(ApiJson),
            None => Err(ApiError::validation(
                "body",
                "The request body is empty; send a JSON object with Content-Type: application/json.",
            )),
        }
    }
}

/// A JSON body that may be absent (or empty), deserialized into `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<JsonBody>() {
            Some(JsonBody(value)) => from_value(value).map(|v| OptionalJson(Some(v))),
            None => Ok(OptionalJson(None)),
        }
    }
}

/// Whether `content_type` is JSON (`application/json` or `application/…+json`, any parameters).
pub fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The refusal of a body that is not declared as JSON.
pub fn not_json(content_type: &str) -> ApiError {
    ApiError::validation(
        "Content-Type",
        if content_type.is_empty() {
            "This endpoint takes a JSON body: send Content-Type: application/json.".to_owned()
        } else {
            format!(
                "This endpoint takes a JSON body, not `{}`: send Content-Type: application/json.",
                content_type.chars().take(100).collect::<String>()
            )
        },
    )
}

/// The 413 answer.
pub fn too_large() -> ApiError {
    ApiError::new(
        domain::ErrorCode::PayloadTooLarge,
        format!("The request body is larger than {BODY_LIMIT} bytes (1 MiB)."),
    )
    .detail("limitBytes", BODY_LIMIT)
}

/// A query string parsed into `T`; a bad parameter is a `VALIDATION_ERROR` naming it.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(ApiQuery)
            .map_err(|e| {
                let message = e.inner().to_string();
                let mut field = e.path().to_string();
                if let Some(name) = message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                {
                    field = name.to_owned();
                }
                if field == "." {
                    field = "query".to_owned();
                }
                ApiError::validation(
                    field.clone(),
                    format!("Invalid query parameter `{field}`: {message}."),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        api_key: String,
        config: Config,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Config {
        from_email: String,
    }

    fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
        from_value(&super::super::json::parse_strict(bytes)?)
    }

    fn field(e: &ApiError) -> String {
        e.details["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn names_the_missing_or_ill_typed_field() {
        let e = parse_json::<Body>(br#"{"config": {"fromEmail": "a"}}"#).unwrap_err();
        assert_eq!(field(&e), "apiKey");
        let e = parse_json::<Body>(br#"{"apiKey": 5, "config": {"fromEmail": "a"}}"#).unwrap_err();
        assert_eq!(field(&e), "apiKey");
        let e = parse_json::<Body>(br#"{"apiKey": "k", "config": {}}"#).unwrap_err();
        assert_eq!(field(&e), "config.fromEmail");
        let e = parse_json::<Body>(br#"{"apiKey": "k", "#).unwrap_err();
        assert_eq!(field(&e), "body");
        assert!(e.message.contains("Malformed JSON"));
    }
}
