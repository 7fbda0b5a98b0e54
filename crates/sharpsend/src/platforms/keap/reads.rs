//! Keap's reads (REST v1, offset paging with Keap's own totals): contacts, campaigns, and tags
//! as Keap's segments. Every call goes through [`tokens::call`], which refreshes an OAuth token
//! near expiry and retries once on a 401.

use chrono::{DateTime, Utc};
use connectors::keap::ContactQuery;
use domain::{
    Platform,
    reads::{Items, Listing, Read, ReadQuery},
};

use super::{KeapSession, tokens};
use crate::{
    error::{Error, Result},
    paging,
    platforms::not_served,
    state::AppState,
};

/// A read with its filters checked.
pub(super) enum Plan {
    Contacts(ContactQuery),
    Campaigns { limit: u32, offset: u64 },
    Tags { limit: u32, offset: u64 },
}

/// Checks a read's query (before the integration is opened).
pub(super) fn plan(read: Read, q: &ReadQuery) -> Result<Plan> {
    match read {
        Read::Contacts => {
            let (limit, offset) = paging::window(q.limit, q.offset, 50, paging::MAX_LIMIT)?;
            let since = match q.since.as_deref() {
                None => None,
                Some(s) => Some(
                    DateTime::parse_from_rfc3339(s)
                        .map_err(|_| {
                            Error::invalid(
                                "since",
                                "`since` must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z.",
                            )
                        })?
                        .with_timezone(&Utc),
                ),
            };
            Ok(Plan::Contacts(ContactQuery {
                limit,
                offset,
                email: q.email.clone().filter(|e| !e.trim().is_empty()),
                since,
            }))
        }
        Read::Campaigns => {
            let (limit, offset) = paging::window(q.limit, q.offset, 100, paging::MAX_LIMIT)?;
            Ok(Plan::Campaigns { limit, offset })
        }
        Read::Segments => {
            let (limit, offset) = paging::window(q.limit, q.offset, 100, paging::MAX_LIMIT)?;
            Ok(Plan::Tags { limit, offset })
        }
        Read::Lists | Read::Templates => Err(not_served(Platform::Keap, read)),
    }
}

pub(super) async fn read(
    state: &AppState,
    session: &mut KeapSession,
    read: Read,
    q: &ReadQuery,
) -> Result<Listing> {
    let keap = state.connectors.keap.clone();
    Ok(match plan(read, q)? {
        Plan::Contacts(query) => {
            let page = tokens::call(state, session, |cred| {
                let keap = keap.clone();
                let query = query.clone();
                async move { keap.list_contacts(&cred, &query).await }
            })
            .await?;
            Listing {
                items: Items::Contacts(page.contacts),
                total: None,
                count: Some(page.count),
                limit: Some(query.limit),
                offset: Some(query.offset),
            }
        }
        Plan::Campaigns { limit, offset } => {
            let (campaigns, total) = tokens::call(state, session, |cred| {
                let keap = keap.clone();
                async move { keap.list_campaigns(&cred, limit, offset).await }
            })
            .await?;
            Listing::page(Items::Campaigns(campaigns), total, limit, offset)
        }
        Plan::Tags { limit, offset } => {
            let (tags, total) = tokens::call(state, session, |cred| {
                let keap = keap.clone();
                async move { keap.list_tags(&cred, limit, offset).await }
            })
            .await?;
            Listing::page(Items::Other(Read::Segments, tags), total, limit, offset)
        }
    })
}
