//! One error type for every platform, in the spirit of OpenDAL: a kind that says what went wrong
//! and a retry status that says whether trying again can help.

use std::time::Duration;

use domain::{ErrorCode, Platform};

/// What went wrong, across platforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The platform rejected the credentials.
    InvalidCredentials,
    /// The credentials lack a permission for this call.
    PermissionDenied,
    /// The platform says the thing does not exist.
    NotFound,
    /// The platform refused the request's content.
    InvalidRequest,
    /// The platform's rate limit.
    RateLimited,
    /// Unreachable, timed out, 5xx, or a body we could not read.
    Unavailable,
    /// The platform cannot do this.
    Unsupported,
}

/// Whether a retry can help (OpenDAL's permanent / temporary / persistent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Never retry.
    Permanent,
    /// May succeed later; `after` is the platform's hint when it gave one.
    Temporary { after: Option<Duration> },
    /// Was temporary, but the retries we allow ran out.
    Persistent,
}

/// An error from a platform call, safe to show: the message never holds a secret or a raw
/// upstream body.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub platform: Platform,
    pub kind: ErrorKind,
    pub retry: Retry,
    /// A sentence for a person: what happened and what to do.
    pub message: String,
    /// The platform's HTTP status, when it answered.
    pub platform_status: Option<u16>,
}

impl ConnectorError {
    pub fn new(platform: Platform, kind: ErrorKind, message: impl Into<String>) -> Self {
        let retry = match kind {
            ErrorKind::RateLimited | ErrorKind::Unavailable => Retry::Temporary { after: None },
            _ => Retry::Permanent,
        };
        Self {
            platform,
            kind,
            retry,
            message: message.into(),
            platform_status: None,
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.platform_status = Some(status);
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn is_temporary(&self) -> bool {
        matches!(self.retry, Retry::Temporary { .. })
    }

    /// The public code this error answers with (CONTRACT §2).
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            ErrorKind::InvalidCredentials => ErrorCode::InvalidCredentials,
            ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::InvalidRequest => ErrorCode::ValidationError,
            ErrorKind::RateLimited => ErrorCode::RateLimitExceeded,
            ErrorKind::Unavailable => ErrorCode::ConnectionFailed,
            ErrorKind::Unsupported => ErrorCode::UnsupportedOperation,
        }
    }

    /// The wait to advertise in `Retry-After`, when the error is a rate limit.
    pub fn retry_after(&self) -> Option<Duration> {
        match (self.kind, self.retry) {
            (ErrorKind::RateLimited, Retry::Temporary { after }) => {
                after.or(Some(Duration::from_secs(1)))
            }
            (ErrorKind::RateLimited, _) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_contract_codes() {
        let e = |k| ConnectorError::new(Platform::Keap, k, "x");
        assert_eq!(
            e(ErrorKind::InvalidCredentials).code(),
            ErrorCode::InvalidCredentials
        );
        assert_eq!(
            e(ErrorKind::RateLimited).code(),
            ErrorCode::RateLimitExceeded
        );
        assert_eq!(
            e(ErrorKind::Unavailable).code(),
            ErrorCode::ConnectionFailed
        );
        assert_eq!(
            e(ErrorKind::Unsupported).code(),
            ErrorCode::UnsupportedOperation
        );
        assert!(e(ErrorKind::Unavailable).is_temporary());
        assert!(!e(ErrorKind::InvalidCredentials).is_temporary());
        assert!(e(ErrorKind::RateLimited).retry_after().is_some());
    }
}
