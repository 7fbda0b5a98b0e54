//! The service's own error: what went wrong in a use case, in domain terms, with its cause kept
//! as a source chain. It knows nothing of HTTP; `http::error::ApiError` is the adapter that turns
//! it into the contract's envelope, and the sync engine decides retries from
//! [`Error::is_retryable`] (for platform errors: the connector's own [`Retry`] flag).

use std::{borrow::Cow, time::Duration};

use connectors::{ConnectorError, Retry};
use domain::{Capability, ErrorCode, Platform};
use serde_json::{Map, Value};

/// A boxed cause, kept for the log (never shown to a caller).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a use case answers when it fails.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A platform call failed; its retry flag says whether trying again can help.
    #[error(transparent)]
    Platform(#[from] ConnectorError),
    /// The publisher has no integration of this platform.
    #[error("Publisher '{publisher}' has no {} integration; connect one with POST /api/integrations/{}/connect.", .platform.display_name(), .platform.as_str())]
    IntegrationNotFound {
        publisher: String,
        platform: Platform,
    },
    /// The platform no longer accepts the stored credentials; only a reconnect helps.
    #[error("{reason} Publisher '{publisher}' must reconnect {} (POST /api/integrations/{}/connect{}).", .platform.display_name(), .platform.as_str(), if *.platform == Platform::Keap { ", or the authorize flow" } else { "" })]
    ReauthRequired {
        publisher: String,
        platform: Platform,
        reason: String,
        platform_status: Option<u16>,
    },
    /// The platform cannot do this (CONTRACT §9); answered before any upstream call.
    #[error("{} does not support {}.", .platform.display_name(), .capability.as_str())]
    Unsupported {
        platform: Platform,
        capability: Capability,
    },
    /// Any other answer of the contract: a code, a sentence for a person, safe details.
    #[error("{message}")]
    Coded {
        code: ErrorCode,
        message: Cow<'static, str>,
        details: Map<String, Value>,
        retry_after: Option<Duration>,
    },
    /// A fault of ours. The caller sees a generic sentence; the log gets the context and the
    /// source chain.
    #[error("{context}")]
    Internal {
        context: Cow<'static, str>,
        #[source]
        source: Option<Source>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An answer of the contract with `code`.
    pub fn coded(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Coded {
            code,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    /// Bad input, naming the offending field (`details.field`).
    pub fn invalid(field: impl Into<String>, message: impl Into<Cow<'static, str>>) -> Self {
        Self::coded(ErrorCode::ValidationError, message).detail("field", field.into())
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::coded(ErrorCode::NotFound, message)
    }

    /// A fault of ours described by `context` alone.
    pub fn internal(context: impl std::fmt::Display) -> Self {
        Self::Internal {
            context: context.to_string().into(),
            source: None,
        }
    }

    /// A fault of ours with its cause kept as the source.
    pub fn internal_from(
        context: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Adds a safe detail (only to coded answers; the other kinds carry their own).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Self::Coded { details, .. } = &mut self {
            details.insert(key.to_owned(), value.into());
        }
        self
    }

    /// A wait to advertise (only on coded answers; platform errors carry the platform's).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Self::Coded { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// The contract's code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Platform(e) => e.code(),
            Self::IntegrationNotFound { .. } => ErrorCode::IntegrationNotFound,
            Self::ReauthRequired { .. } => ErrorCode::InvalidCredentials,
            Self::Unsupported { .. } => ErrorCode::UnsupportedOperation,
            Self::Coded { code, .. } => *code,
            Self::Internal { .. } => ErrorCode::InternalError,
        }
    }

    /// Whether trying the same thing later can help: a platform error's own retry flag, our
    /// database being away, or a coded rate limit; never bad input or refused credentials.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Persistent: temporary, but the connector's own quick retries ran out; a job
            // retried minutes later can still succeed. Permanent: it never can.
            Self::Platform(e) => !matches!(e.retry, Retry::Permanent),
            Self::Coded { code, .. } => matches!(
                code,
                ErrorCode::RateLimitExceeded | ErrorCode::ServiceUnavailable
            ),
            _ => false,
        }
    }

    /// The wait a retry should respect, when one is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Platform(e) => e.retry_after(),
            Self::Coded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The sentence a person may see: everything but an internal fault shows its own.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            Self::Internal { .. } => {
                "Something went wrong on our side; the X-Request-Id header identifies it in our logs."
                    .into()
            }
            Self::Coded { message, .. } => message.clone(),
            other => other.to_string().into(),
        }
    }

    /// The whole cause chain, for the log.
    pub fn cause_chain(&self) -> Option<String> {
        let Self::Internal { context, source } = self else {
            return None;
        };
        let mut out = context.to_string();
        let mut next: Option<&(dyn std::error::Error + 'static)> = source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        Some(out)
    }
}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Self {
        Self::internal_from("store", e)
    }
}

impl From<vault::VaultError> for Error {
    fn from(e: vault::VaultError) -> Self {
        Self::internal_from("vault", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors::ErrorKind;

    #[test]
    fn retry_comes_from_the_connector_flag_not_the_code() {
        let outage = ConnectorError::new(Platform::Keap, ErrorKind::Unavailable, "down");
        assert!(Error::from(outage.clone()).is_retryable());
        let exhausted = outage.clone().with_retry(Retry::Persistent);
        assert!(Error::from(exhausted).is_retryable());
        // Same public code (CONNECTION_FAILED), but the connector says retrying cannot help.
        let wrong_origin = outage.with_retry(Retry::Permanent);
        assert_eq!(
            Error::from(wrong_origin.clone()).code(),
            ErrorCode::ConnectionFailed
        );
        assert!(!Error::from(wrong_origin).is_retryable());
        assert!(!Error::invalid("email", "bad").is_retryable());
        assert!(Error::coded(ErrorCode::ServiceUnavailable, "db away").is_retryable());
    }

    #[test]
    fn internal_keeps_its_chain_out_of_the_public_message() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::internal_from("writing the page", io);
        assert!(!e.public_message().contains("disk"));
        assert_eq!(
            e.cause_chain().as_deref(),
            Some("writing the page: disk on fire")
        );
        assert_eq!(e.code(), ErrorCode::InternalError);
    }

    #[test]
    fn integration_not_found_names_the_fix() {
        let e = Error::IntegrationNotFound {
            publisher: "pub_1".into(),
            platform: Platform::Keap,
        };
        assert_eq!(e.code(), ErrorCode::IntegrationNotFound);
        assert!(
            e.to_string()
                .contains("POST /api/integrations/keap/connect")
        );
    }
}
