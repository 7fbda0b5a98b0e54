//! Customer.io's reads: campaigns (journeys) and segments, which the App API gives whole and we
//! window; people, which it finds only by email.

use connectors::customerio::CampaignFilter;
use domain::{
    Platform,
    reads::{Items, Listing, Read, ReadQuery},
    shapes::{Contact, SegmentView},
};

use super::CustomerioSession;
use crate::{
    error::{Error, Result},
    paging,
    platforms::not_served,
    state::AppState,
};

const DEFAULT_LIMIT: u32 = 100;

/// A read with its filters checked.
pub(super) enum Plan {
    Campaigns {
        filter: CampaignFilter,
        limit: u32,
        offset: u64,
    },
    Segments {
        limit: u32,
        offset: u64,
    },
    Contacts {
        email: String,
    },
}

/// Checks a read's query (before the integration is opened).
pub(super) fn plan(read: Read, q: &ReadQuery) -> Result<Plan> {
    match read {
        Read::Campaigns => {
            if let Some(s) = &q.state
                && !matches!(s.as_str(), "running" | "draft" | "stopped")
            {
                return Err(Error::invalid(
                    "state",
                    format!("Unknown campaign state '{s}': use running, draft or stopped."),
                ));
            }
            let (limit, offset) =
                paging::window(q.limit, q.offset, DEFAULT_LIMIT, paging::MAX_LIMIT)?;
            Ok(Plan::Campaigns {
                filter: CampaignFilter {
                    state: q.state.clone(),
                    active: q.active,
                    kind: q.kind.clone(),
                },
                limit,
                offset,
            })
        }
        Read::Segments => {
            let (limit, offset) =
                paging::window(q.limit, q.offset, DEFAULT_LIMIT, paging::MAX_LIMIT)?;
            Ok(Plan::Segments { limit, offset })
        }
        Read::Contacts => {
            let email = q.email.as_deref().map(str::trim).unwrap_or_default();
            if email.is_empty() {
                return Err(Error::invalid(
                    "email",
                    "Customer.io people are looked up by email: add ?email=person@example.com.",
                ));
            }
            if !email.contains('@') || email.len() > 254 {
                return Err(Error::invalid(
                    "email",
                    format!("`{email}` is not an email address."),
                ));
            }
            Ok(Plan::Contacts {
                email: email.to_owned(),
            })
        }
        Read::Lists | Read::Templates => Err(not_served(Platform::Customerio, read)),
    }
}

pub(super) async fn read(
    state: &AppState,
    session: &CustomerioSession,
    read: Read,
    q: &ReadQuery,
) -> Result<Listing> {
    let customerio = &state.connectors.customerio;
    let creds = &session.creds;
    Ok(match plan(read, q)? {
        Plan::Campaigns {
            filter,
            limit,
            offset,
        } => {
            let all = customerio.list_campaigns(creds, &filter).await?;
            Listing::window(Items::Campaigns(all), limit, offset)
        }
        Plan::Segments { limit, offset } => {
            let all = customerio.list_segments(creds).await?;
            let views = all
                .into_iter()
                .map(|s| {
                    serde_json::to_value(SegmentView::from(s))
                        .map_err(|e| Error::internal_from("rendering a segment", e))
                })
                .collect::<Result<Vec<_>>>()?;
            Listing::window(Items::Other(Read::Segments, views), limit, offset)
        }
        Plan::Contacts { email } => {
            let people = customerio.find_people_by_email(creds, &email).await?;
            let contacts: Vec<Contact> = people
                .into_iter()
                .map(|p| Contact {
                    id: p.id,
                    email: p.email,
                    first_name: None,
                    last_name: None,
                    phone: None,
                    tag_ids: Vec::new(),
                    lead_score: None,
                    created_at: None,
                    updated_at: None,
                    platform: Platform::Customerio,
                })
                .collect();
            Listing {
                count: Some(contacts.len() as u64),
                items: Items::Contacts(contacts),
                total: None,
                limit: None,
                offset: None,
            }
        }
    })
}
