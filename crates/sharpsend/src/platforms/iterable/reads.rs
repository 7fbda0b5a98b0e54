//! Iterable's reads: campaigns (`GET /api/campaigns`, paged by the connector), lists (not paged
//! by Iterable) and templates. `limit`/`offset` map onto Iterable's `page`/`pageSize`.

use connectors::iterable::{CAMPAIGN_STATES, CampaignQuery, TemplateQuery, campaign_state};
use domain::reads::{Items, Listing, Read, ReadQuery};

use super::IterableSession;
use crate::{
    error::{Error, Result},
    paging,
    platforms::not_served,
    state::AppState,
};

const DEFAULT_LIMIT: u32 = 100;

/// A read with its filters checked.
pub(super) enum Plan {
    Campaigns(CampaignQuery),
    Lists,
    Templates(TemplateQuery),
}

/// Checks a read's query (before the integration is opened).
pub(super) fn plan(read: Read, q: &ReadQuery) -> Result<Plan> {
    match read {
        Read::Campaigns => {
            let (limit, offset) =
                paging::window(q.limit, q.offset, DEFAULT_LIMIT, paging::MAX_LIMIT)?;
            Ok(Plan::Campaigns(CampaignQuery {
                limit,
                offset,
                states: campaign_states(q.state.as_deref())?,
            }))
        }
        Read::Lists => Ok(Plan::Lists),
        Read::Templates => {
            let (limit, offset) =
                paging::window(q.limit, q.offset, DEFAULT_LIMIT, paging::MAX_LIMIT)?;
            Ok(Plan::Templates(TemplateQuery {
                limit,
                offset,
                template_type: template_type(q.kind.as_deref())?,
                message_medium: message_medium(q.channel.as_deref())?,
            }))
        }
        Read::Contacts | Read::Segments => Err(not_served(domain::Platform::Iterable, read)),
    }
}

pub(super) async fn read(
    state: &AppState,
    session: &IterableSession,
    read: Read,
    q: &ReadQuery,
) -> Result<Listing> {
    let iterable = &state.connectors.iterable;
    Ok(match plan(read, q)? {
        Plan::Campaigns(query) => {
            let page = iterable.list_campaigns(&session.creds, &query).await?;
            Listing::page(
                Items::Campaigns(page.campaigns),
                page.total,
                query.limit,
                query.offset,
            )
        }
        Plan::Lists => {
            let lists = iterable.list_lists(&session.creds).await?;
            Listing {
                total: Some(lists.len() as u64),
                items: Items::Other(Read::Lists, values(lists)?),
                count: None,
                limit: None,
                offset: None,
            }
        }
        Plan::Templates(query) => {
            let page = iterable.list_templates(&session.creds, &query).await?;
            Listing::page(
                Items::Other(Read::Templates, values(page.templates)?),
                page.total,
                query.limit,
                query.offset,
            )
        }
    })
}

fn values<T: serde::Serialize>(items: Vec<T>) -> Result<Vec<serde_json::Value>> {
    items
        .into_iter()
        .map(|i| serde_json::to_value(i).map_err(|e| Error::internal_from("rendering a read", e)))
        .collect()
}

/// `?state`: Iterable campaign states, comma-separated, any case, each once.
fn campaign_states(raw: Option<&str>) -> Result<Vec<&'static str>> {
    let mut states = Vec::new();
    for part in raw.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let s = campaign_state(part).ok_or_else(|| {
            Error::invalid(
                "state",
                format!(
                    "Unknown campaign state '{part}': use one or more of {} (comma-separated).",
                    CAMPAIGN_STATES.join(", ")
                ),
            )
        })?;
        if !states.contains(&s) {
            states.push(s);
        }
    }
    Ok(states)
}

/// `?type` of templates: `base`, `blast`, `triggered` or `workflow`, any case.
fn template_type(raw: Option<&str>) -> Result<Option<&'static str>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => ["Base", "Blast", "Triggered", "Workflow"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(t))
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(
                    "type",
                    format!("Unknown template type '{t}': use base, blast, triggered or workflow."),
                )
            }),
    }
}

/// `?channel` of templates, as Iterable's message medium.
fn message_medium(raw: Option<&str>) -> Result<Option<&'static str>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => match c.to_ascii_lowercase().as_str() {
            "email" => Ok(Some("Email")),
            "sms" => Ok(Some("SMS")),
            "push" => Ok(Some("Push")),
            "in_app" | "inapp" => Ok(Some("InApp")),
            _ => Err(Error::invalid(
                "channel",
                format!("Unknown channel '{c}': use email, sms, push or in_app."),
            )),
        },
    }
}
