//! Publisher identifiers (CONTRACT §3).

use serde::Serialize;

/// Words that name routes or platforms and so can never be a publisher id.
pub const RESERVED_PUBLISHER_IDS: [&str; 7] = [
    "iterable",
    "customerio",
    "keap",
    "admin",
    "platforms",
    "webhooks",
    "oauth",
];

/// A validated publisher id: 1–64 characters of `A-Z a-z 0-9 _ -`, starting with a letter or
/// digit, not a reserved word.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct PublisherId(String);

/// Why a string is not a publisher id; the message is written for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublisherIdError {
    #[error("publisherId must not be empty")]
    Empty,
    #[error("publisherId must be at most 64 characters")]
    TooLong,
    #[error("publisherId must start with a letter or digit")]
    BadStart,
    #[error("publisherId may contain only letters, digits, '_' and '-'")]
    BadCharacter,
    #[error("publisherId '{0}' is a reserved word")]
    Reserved(String),
}

impl PublisherId {
    pub fn parse(s: &str) -> Result<Self, PublisherIdError> {
        let first = s.chars().next().ok_or(PublisherIdError::Empty)?;
        if s.len() > 64 {
            return Err(PublisherIdError::TooLong);
        }
        if !first.is_ascii_alphanumeric() {
            return Err(PublisherIdError::BadStart);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(PublisherIdError::BadCharacter);
        }
        // Reserved words are matched case-insensitively: `Admin` would confuse people as much.
        if RESERVED_PUBLISHER_IDS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(s))
        {
            return Err(PublisherIdError::Reserved(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PublisherId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PublisherId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        for ok in ["a", "pub_1", "9lives", "A-b_C", &"x".repeat(64)] {
            assert!(PublisherId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_invalid_ids_with_reason() {
        assert_eq!(PublisherId::parse(""), Err(PublisherIdError::Empty));
        assert_eq!(
            PublisherId::parse(&"x".repeat(65)),
            Err(PublisherIdError::TooLong)
        );
        assert_eq!(PublisherId::parse("_x"), Err(PublisherIdError::BadStart));
        assert_eq!(PublisherId::parse("-x"), Err(PublisherIdError::BadStart));
        assert_eq!(
            PublisherId::parse("a b"),
            Err(PublisherIdError::BadCharacter)
        );
        assert_eq!(
            PublisherId::parse("a.b"),
            Err(PublisherIdError::BadCharacter)
        );
        assert_eq!(PublisherId::parse("é"), Err(PublisherIdError::BadStart));
        for r in RESERVED_PUBLISHER_IDS {
            assert!(matches!(
                PublisherId::parse(r),
                Err(PublisherIdError::Reserved(_))
            ));
        }
        assert!(matches!(
            PublisherId::parse("Admin"),
            Err(PublisherIdError::Reserved(_))
        ));
    }
}
