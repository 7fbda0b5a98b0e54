//! The common reads (CONTRACT §7): `GET /api/integrations/{publisherId}/{platform}/{read}`.
//!
//! One query and one answer for every platform. Each platform reads the filters it takes (the
//! OpenAPI document says which) and, as every query string here, ignores the others.

use serde::{Deserialize, Serialize, ser::SerializeMap};
use serde_json::Value;

use crate::{
    Capability,
    shapes::{Campaign, Contact},
};

/// A read the contract knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    Campaigns,
    Contacts,
    Segments,
    Lists,
    Templates,
}

impl Read {
    pub const ALL: [Read; 5] = [
        Read::Campaigns,
        Read::Contacts,
        Read::Segments,
        Read::Lists,
        Read::Templates,
    ];

    /// The path segment, and the key of the answer's items.
    pub fn as_str(self) -> &'static str {
        match self {
            Read::Campaigns => "campaigns",
            Read::Contacts => "contacts",
            Read::Segments => "segments",
            Read::Lists => "lists",
            Read::Templates => "templates",
        }
    }

    pub fn parse(segment: &str) -> Option<Read> {
        Read::ALL.into_iter().find(|r| r.as_str() == segment)
    }

    /// The capability of the matrix (CONTRACT §9) this read needs.
    pub fn capability(self) -> Capability {
        match self {
            Read::Campaigns => Capability::Campaigns,
            Read::Contacts => Capability::Contacts,
            Read::Segments | Read::Lists => Capability::Segments,
            Read::Templates => Capability::Templates,
        }
    }
}

/// Every filter any platform's read takes, as the query string gives them. The bounds common to
/// all (`limit` 1–1000, `offset` 0–10,000,000, `since` RFC 3339, `email` an address) are checked
/// once before any platform is opened; each platform checks the filters it takes.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// 1–1000; the default is 100 (Keap contacts: 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Items to skip (default 0, at most 10,000,000).
    #[param(minimum = 0, maximum = 10000000)]
    pub offset: Option<i64>,
    /// Campaigns: Iterable states, comma-separated (`Draft`, `Running`, `Finished`, …);
    /// Customer.io `running`, `draft` or `stopped`.
    pub state: Option<String>,
    /// Customer.io campaigns: only active (`true`) or inactive (`false`) ones.
    pub active: Option<bool>,
    /// Customer.io campaigns: the trigger type (`segment`, `event`, …); Iterable templates:
    /// `base`, `blast`, `triggered` or `workflow`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Iterable templates: `email`, `sms`, `push` or `in_app`.
    #[param(pattern = "^(email|sms|push|in_app)$")]
    pub channel: Option<String>,
    /// Contacts: the exact email (required by Customer.io, which finds people only by search).
    pub email: Option<String>,
    /// Keap contacts: updated at or after this RFC 3339 time.
    #[param(format = DateTime)]
    pub since: Option<String>,
}

/// The items of a read, typed where every platform shares the shape.
#[derive(Clone, Debug, PartialEq)]
pub enum Items {
    Campaigns(Vec<Campaign>),
    Contacts(Vec<Contact>),
    /// A platform's own segment shape (Customer.io segments, Keap tags, Iterable lists and
    /// templates): documented per platform in the OpenAPI document.
    Other(Read, Vec<Value>),
}

impl Items {
    pub fn read(&self) -> Read {
        match self {
            Items::Campaigns(_) => Read::Campaigns,
            Items::Contacts(_) => Read::Contacts,
            Items::Other(read, _) => *read,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Items::Campaigns(v) => v.len(),
            Items::Contacts(v) => v.len(),
            Items::Other(_, v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One page of a read: `{"<read>": [...], "total"?, "count"?, "limit"?, "offset"?}`.
///
/// `total` is how many match in the whole account; `count` is used instead where a platform's
/// answer has always been named so (Keap and Customer.io contacts); `limit` and `offset` echo
/// the window where the read is paged.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub items: Items,
    pub total: Option<u64>,
    pub count: Option<u64>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

impl Listing {
    /// A window of a list read whole (`total` is the whole list's length).
    pub fn window(items: Items, limit: u32, offset: u64) -> Listing {
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        fn cut<T>(v: Vec<T>, skip: usize, take: usize) -> Vec<T> {
            v.into_iter().skip(skip).take(take).collect()
        }
        let total = items.len() as u64;
        let items = match items {
            Items::Campaigns(v) => Items::Campaigns(cut(v, skip, take)),
            Items::Contacts(v) => Items::Contacts(cut(v, skip, take)),
            Items::Other(r, v) => Items::Other(r, cut(v, skip, take)),
        };
        Listing {
            items,
            total: Some(total),
            count: None,
            limit: Some(limit),
            offset: Some(offset),
        }
    }

    /// A page the platform paged (`total` as it reported).
    pub fn page(items: Items, total: u64, limit: u32, offset: u64) -> Listing {
        Listing {
            items,
            total: Some(total),
            count: None,
            limit: Some(limit),
            offset: Some(offset),
        }
    }
}

impl Serialize for Listing {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let key = self.items.read().as_str();
        match &self.items {
            Items::Campaigns(v) => map.serialize_entry(key, v)?,
            Items::Contacts(v) => map.serialize_entry(key, v)?,
            Items::Other(_, v) => map.serialize_entry(key, v)?,
        }
        if let Some(total) = self.total {
            map.serialize_entry("total", &total)?;
        }
        if let Some(count) = self.count {
            map.serialize_entry("count", &count)?;
        }
        if let Some(limit) = self.limit {
            map.serialize_entry("limit", &limit)?;
        }
        if let Some(offset) = self.offset {
            map.serialize_entry("offset", &offset)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_keys_its_items_by_the_read() {
        let listing = Listing::window(
            Items::Other(
                Read::Lists,
                vec![Value::from(1), Value::from(2), Value::from(3)],
            ),
            2,
            1,
        );
        assert_eq!(
            serde_json::to_value(&listing).unwrap(),
            serde_json::json!({"lists": [2, 3], "total": 3, "limit": 2, "offset": 1})
        );
        let contacts = Listing {
            items: Items::Contacts(vec![]),
            total: None,
            count: Some(0),
            limit: None,
            offset: None,
        };
        assert_eq!(
            serde_json::to_value(&contacts).unwrap(),
            serde_json::json!({"contacts": [], "count": 0})
        );
    }

    #[test]
    fn every_read_parses_back_and_needs_a_capability() {
        for read in Read::ALL {
            assert_eq!(Read::parse(read.as_str()), Some(read));
        }
        assert_eq!(Read::parse("tags"), None);
        assert_eq!(Read::Lists.capability(), Capability::Segments);
    }
}
