//! The public error-code registry of CONTRACT §2: one line per code, its HTTP status and meaning.
//! Every error our API answers carries exactly one of these codes.

use serde::Serialize;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $wire:tt, $status:literal; )*) => {
        /// A public error code; its wire name and HTTP status are fixed by the contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[serde(rename = $wire)] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in registry order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as it appears in the `code` field.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $wire,)* }
            }

            /// The HTTP status every response with this code has.
            pub const fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }
        }
    };
}

error_codes! {
    /// Malformed JSON, wrong content type, missing or ill-typed field, bad parameter.
    ValidationError = "VALIDATION_ERROR", 400;
    /// No, malformed, unknown or revoked bearer token on our own API.
    Unauthorized = "UNAUTHORIZED", 401;
    /// The token may not act for that publisher, or the platform refused a permission.
    PermissionDenied = "PERMISSION_DENIED", 403;
    /// The publisher has no integration with that platform.
    IntegrationNotFound = "INTEGRATION_NOT_FOUND", 404;
    /// No such route or object.
    NotFound = "NOT_FOUND", 404;
    /// The route exists but not for this HTTP method (the `Allow` header lists those it takes).
    MethodNotAllowed = "METHOD_NOT_ALLOWED", 405;
    /// The request (its body, or the answer to it) took longer than
    /// `SHARPSEND_REQUEST_TIMEOUT_SECONDS`; the connection is closed.
    RequestTimeout = "REQUEST_TIMEOUT", 408;
    /// A request with this `Idempotency-Key` is still running (`Retry-After` is set).
    Conflict = "CONFLICT", 409;
    /// Request body over 1 MiB.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", 413;
    /// The platform rejected the credentials.
    InvalidCredentials = "INVALID_CREDENTIALS", 422;
    /// The platform cannot do that.
    UnsupportedOperation = "UNSUPPORTED_OPERATION", 422;
    /// A rate limit was still exceeded after the retries we allow (`Retry-After` is set).
    RateLimitExceeded = "RATE_LIMIT_EXCEEDED", 429;
    /// The platform could not be reached, timed out, or kept failing.
    ConnectionFailed = "CONNECTION_FAILED", 502;
    /// A fault of ours; the response's `X-Request-Id` finds it in the logs.
    InternalError = "INTERNAL_ERROR", 500;
    /// A dependency of ours (the database) is not answering; `/readyz` says so.
    ServiceUnavailable = "SERVICE_UNAVAILABLE", 503;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_screaming_snake_and_match_serde() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
            );
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str());
        }
    }

    /// The OpenAPI schema lists the codes as sent (a generated client matches them), not the
    /// Rust variant names. The macro takes the wire name as `tt`: a `literal` fragment reaches
    /// the derive wrapped in an invisible group, and utoipa then ignored the rename.
    #[test]
    fn the_schema_enum_is_the_wire_names() {
        use utoipa::PartialSchema as _;
        let schema = serde_json::to_value(ErrorCode::schema()).unwrap();
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let wire: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, wire);
    }

    #[test]
    fn statuses_follow_the_contract() {
        use ErrorCode::*;
        let table = [
            (ValidationError, 400),
            (Unauthorized, 401),
            (PermissionDenied, 403),
            (IntegrationNotFound, 404),
            (NotFound, 404),
            (RequestTimeout, 408),
            (PayloadTooLarge, 413),
            (InvalidCredentials, 422),
            (UnsupportedOperation, 422),
            (RateLimitExceeded, 429),
            (ConnectionFailed, 502),
            (InternalError, 500),
        ];
        for (code, status) in table {
            assert_eq!(code.http_status(), status, "{code}");
        }
    }
}
