//! SharpSend's domain: the vocabulary every other crate speaks.
//!
//! Nothing here does I/O. Types are parsed at the edge (`PublisherId::parse`, `Platform::parse`)
//! so that nothing downstream can hold an invalid value.
#![forbid(unsafe_code)]

pub mod capabilities;
pub mod consent;
pub mod error_code;
pub mod events;
pub mod metrics;
pub mod operations;
pub mod platform;
pub mod publisher;
pub mod reads;
pub mod shapes;

pub use capabilities::{Capability, Support};
pub use error_code::ErrorCode;
pub use platform::{Platform, Region};
pub use publisher::{PublisherId, PublisherIdError};

/// Shows a secret only as its last four characters, as CONTRACT §5 requires: `"…abcd"`.
/// Secrets of four characters or fewer are shown as `"…"` alone, so a short secret is never
/// printed whole.
pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 4 {
        return "…".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_shows_last_four_only() {
        assert_eq!(mask_secret("sk_live_123456abcd"), "…abcd");
        assert_eq!(mask_secret("abcd"), "…");
        assert_eq!(mask_secret(""), "…");
        assert_eq!(mask_secret("ééééé"), "…éééé");
    }
}
