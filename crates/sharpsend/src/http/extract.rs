//! Extractors whose rejections answer in the envelope: JSON bodies, query strings, and the
//! authorised [`Scope`] of a request.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
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
    /// The publisher the path names (or, failing that, the body's `publisherId`).
    pub publisher: Option<PublisherId>,
    /// The platform the path names.
    pub platform: Option<Platform>,
}

impl Scope {
    /// The publisher of a route that names one.
    pub fn publisher(&self) -> Result<&PublisherId, ApiError> {
        self.publisher
            .as_ref()
            .ok_or_else(|| ApiError::internal("route without a publisherId asked for one"))
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

/// Parses a JSON body into `T`; every rejection is a `VALIDATION_ERROR` (with `details.field`)
/// or `PAYLOAD_TOO_LARGE`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            let inner = e.inner();
            ApiError::new(
                domain::ErrorCode::ValidationError,
                format!(
                    "Malformed JSON at line {}, column {}: {inner}.",
                    inner.line(),
                    inner.column()
                ),
            )
            .detail("field", "body")
        } else {
            data_error(e)
        }
    })?;
    Ok(value)
}

/// A JSON body. Requires `Content-Type: application/json`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json")))
        {
            return Err(ApiError::validation(
                "Content-Type",
                if content_type.is_empty() {
                    "This endpoint takes a JSON body: send Content-Type: application/json."
                        .to_owned()
                } else {
                    format!(
                        "This endpoint takes a JSON body, not `{content_type}`: send Content-Type: application/json."
                    )
                },
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::validation(
                        "body",
                        format!("Could not read the request body: {rejection}."),
                    )
                }
            })?;
        if bytes.is_empty() {
            return Err(ApiError::validation(
                "body",
                "The request body is empty; send a JSON object.",
            ));
        }
        parse_json(&bytes).map(ApiJson)
    }
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
