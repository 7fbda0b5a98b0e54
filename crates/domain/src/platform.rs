//! The platforms we integrate and their data-centre regions.

use serde::{Deserialize, Serialize};

/// A platform a publisher can connect. Its wire name is the path segment of CONTRACT §3.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Iterable,
    Customerio,
    Keap,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Iterable, Platform::Customerio, Platform::Keap];

    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Iterable => "iterable",
            Platform::Customerio => "customerio",
            Platform::Keap => "keap",
        }
    }

    /// The name people know it by, for messages and the dashboard.
    pub const fn display_name(self) -> &'static str {
        match self {
            Platform::Iterable => "Iterable",
            Platform::Customerio => "Customer.io",
            Platform::Keap => "Keap",
        }
    }

    /// Parses a path segment; `None` for anything but the three identifiers.
    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the platform has data-centre regions (Keap does not).
    pub const fn has_regions(self) -> bool {
        !matches!(self, Platform::Keap)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data centre of Iterable or Customer.io.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl Region {
    pub const fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }

    pub fn parse(s: &str) -> Option<Region> {
        match s {
            "us" => Some(Region::Us),
            "eu" => Some(Region::Eu),
            _ => None,
        }
    }

    pub const fn other(self) -> Region {
        match self {
            Region::Us => Region::Eu,
            Region::Eu => Region::Us,
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_others() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Platform::parse("Iterable"), None);
        assert_eq!(Platform::parse("hubspot"), None);
        assert_eq!(Region::parse("eu"), Some(Region::Eu));
        assert_eq!(Region::parse("EU"), None);
    }
}
