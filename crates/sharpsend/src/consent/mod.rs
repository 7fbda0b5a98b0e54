//! The consent ledger (issue 17): one place where an unsubscribe, complaint or hard bounce is
//! recorded per publisher and address — whether a webhook, a sync or the API saw it — and from
//! which it is pushed to the publisher's other platforms; and erasure requests. The platform
//! calls live in each platform's session; [`worker`] runs the queued jobs through them, and
//! [`webhooks`] turns received unsubscribes, complaints and hard bounces into entries.
//!
//! Log lines never carry an address: they name it by [`email_ref`].

pub mod audit;
pub mod erasure;
pub mod feed;
pub mod ledger;
pub mod webhooks;
pub mod worker;

use sha2::{Digest as _, Sha256};

use crate::{error::Error, principal::Principal};

/// A short, stable reference to an address for log lines (the first 12 hex digits of its
/// SHA-256): enough to follow one reader through the logs, never the address itself.
pub fn email_ref(email: &str) -> String {
    let digest = hex::encode(Sha256::digest(email.as_bytes()));
    format!("e_{}", &digest[..12])
}

/// The normalised address, or a `VALIDATION_ERROR` naming `field`.
pub fn normalize(raw: &str, field: &str) -> Result<String, Error> {
    domain::consent::normalize_email(raw).ok_or_else(|| {
        Error::invalid(
            field.to_owned(),
            format!(
                "`{field}` is not an email address: one `@`, a domain with a dot, no spaces or `*`, at most 254 characters."
            ),
        )
    })
}

/// How the audit log names a principal: `admin`, or the publisher key's id.
pub fn principal_name(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".to_owned(),
        Principal::Publisher { key_id, .. } => key_id.clone(),
    }
}

/// The principal of work no caller asked for (a webhook, a sync).
pub const SYSTEM: &str = "system";
