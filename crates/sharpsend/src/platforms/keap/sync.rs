//! Keap's sync kinds: `contacts` (incremental on `last_updated`), and full listings of `tags`,
//! `campaigns`, `opportunities` (with their pipeline stage) and `orders`.
//!
//! Credentials come from the session and every call goes through [`tokens::call`] (a token near
//! expiry is refreshed first; a 401 refreshes once, single-flight, and retries once), so a long
//! sync outlives its access token without racing the API routes' refreshes.
//!
//! **Contacts** are read through REST v2 `GET /contacts` in id order, 1000 a page, walking
//! `next_page_token` (a keyset on id: a contact deleted mid-listing does not shift the pages,
//! so a full listing never skips a live contact and wrongly marks it deleted). An incremental
//! listing adds `filter=start_update_time==<since>`, which Keap applies as *updated at or
//! after* — inclusive, so a contact updated exactly at the watermark is read again (one upsert)
//! rather than lost. The watermark is the time the listing **started** (our clock) minus
//! [`CONTACT_LOOKBACK`]: a contact updated while the listing ran may already have been passed
//! (ids, not times, order the walk), and the newest `update_time` seen would skip it; the
//! lookback also absorbs clock skew between us and Keap. Per page the work is one request, one
//! decode and one mapping per contact (O(page)); nothing accumulates across pages.
//!
//! Keap's page tokens make the walk sequential (a page's request needs the previous page's
//! token), so the request for page N+1 is sent as soon as page N's token is known — before page
//! N's contacts are mapped and while the engine commits them (see [`Prefetch`]). At most one
//! page is requested ahead; it goes through the same rate budget, and if it fails for any
//! reason it is simply requested again the ordinary way (token refresh, retries, errors).
//!
//! **Consent** (issue 17): each synced contact's addresses carry their own
//! `email_opt_status`; one that says unsubscribed, complained or hard-bounced (fact sheet
//! `consent.md` §3.3, [`consent::suppression_reason`]) is offered to the ledger
//! ([`SyncSession::opt_outs`]). The status belongs to the address, so a contact holding two
//! addresses can offer one and not the other.
//!
//! The other kinds are v1 `limit`/`offset` listings of 1000 a page, read in full every run
//! (Keap's v1 lists have no change filter for them; they are small next to contacts).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use connectors::keap::{
    KeapError,
    crm::{ContactRows, MAX_PAGE, V1Collection},
    v2_contact,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{consent, tokens};
use crate::{
    error::Error,
    state::AppState,
    sync::source::SyncedOptOut,
    sync::source::{Page, SyncRecord, SyncSession, decode_cursor, encode_cursor, unknown_kind},
};

/// Subtracted from a contact listing's start to make the next watermark (clock skew, and
/// contacts updated while the listing ran).
pub const CONTACT_LOOKBACK: Duration = Duration::minutes(5);

/// The sync reader of an opened Keap session.
pub fn reader(state: &AppState, session: tokens::Session) -> Box<dyn SyncSession> {
    Box::new(KeapSync {
        state: state.clone(),
        session,
        prefetch: None,
    })
}

struct KeapSync {
    state: AppState,
    session: tokens::Session,
    prefetch: Option<Prefetch>,
}

impl Drop for KeapSync {
    fn drop(&mut self) {
        if let Some(p) = self.prefetch.take() {
            p.task.abort();
        }
    }
}

/// The next contact page, requested ahead (with the credential of the moment).
struct Prefetch {
    since: Option<DateTime<Utc>>,
    token: String,
    task: tokio::task::JoinHandle<Result<ContactRows, KeapError>>,
}

/// Where a contact listing is: `since` (absent on a full listing), Keap's page token, and when
/// the listing started. A watermark is `{"since": …}` alone.
#[derive(Serialize, Deserialize, Default)]
struct ContactCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<DateTime<Utc>>,
}

/// What the consent feed reads of a synced v2 contact.
#[derive(Deserialize)]
struct ContactConsent {
    #[serde(default)]
    email_addresses: Vec<AddressConsent>,
}

#[derive(Deserialize)]
struct AddressConsent {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_opt_status: Option<String>,
}

/// The addresses of synced contacts whose status says they must not be mailed.
fn contact_opt_outs(records: &[SyncRecord]) -> Vec<SyncedOptOut> {
    records
        .iter()
        .filter_map(|r| serde_json::from_str::<ContactConsent>(r.raw.get()).ok())
        .flat_map(|c| c.email_addresses)
        .filter_map(|a| {
            let reason = consent::suppression_reason(a.email_opt_status.as_deref()?)?;
            Some(SyncedOptOut {
                email: a.email?,
                reason,
            })
        })
        .collect()
}

/// Where a v1 listing is.
#[derive(Serialize, Deserialize)]
struct OffsetCursor {
    offset: u64,
}

impl KeapSync {
    async fn contacts(&mut self, cursor: Option<&str>) -> Result<Page, Error> {
        let c: ContactCursor = match cursor {
            None => ContactCursor::default(),
            Some(s) => decode_cursor("contacts", s)?,
        };
        let started = c.started.unwrap_or_else(Utc::now);
        let keap = self.state.connectors.keap.clone();
        let (since, token) = (c.since, c.token);
        let ahead = match (self.prefetch.take(), token.as_deref()) {
            (Some(p), Some(t)) if p.since == since && p.token == t => p.task.await.ok(),
            (Some(p), _) => {
                p.task.abort();
                None
            }
            (None, _) => None,
        };
        let page = match ahead {
            Some(Ok(page)) => page,
            // Not requested ahead, or that request failed: ask again the ordinary way.
            _ => {
                tokens::call(&self.state, &mut self.session, |cred| {
                    let keap = keap.clone();
                    let token = token.clone();
                    async move {
                        keap.contacts_page(&cred, since, token.as_deref(), MAX_PAGE)
                            .await
                    }
                })
                .await?
            }
        };
        if let Some(next) = &page.next_page_token {
            let (cred, next_token) = (self.session.cred.clone(), next.clone());
            self.prefetch = Some(Prefetch {
                since,
                token: next.clone(),
                task: tokio::spawn(async move {
                    keap.contacts_page(&cred, since, Some(&next_token), MAX_PAGE)
                        .await
                }),
            });
        }
        let mut records = Vec::with_capacity(page.contacts.len());
        for raw in page.contacts {
            // A contact without an id cannot be kept (nor was one ever stored).
            let Some(contact) = v2_contact(&raw) else {
                continue;
            };
            records
                .push(SyncRecord::new(contact.id.clone(), &contact, raw).map_err(Error::internal)?);
        }
        Ok(match page.next_page_token {
            Some(token) => Page {
                records,
                next: Some(encode_cursor(&ContactCursor {
                    since,
                    token: Some(token),
                    started: Some(started),
                })?),
                watermark: None,
            },
            None => Page {
                records,
                next: None,
                watermark: Some(encode_cursor(&ContactCursor {
                    since: Some(started - CONTACT_LOOKBACK),
                    ..ContactCursor::default()
                })?),
            },
        })
    }

    async fn listing(
        &mut self,
        collection: V1Collection,
        cursor: Option<&str>,
    ) -> Result<Page, Error> {
        let offset = match cursor {
            None => 0,
            Some(s) => decode_cursor::<OffsetCursor>(collection.key(), s)?.offset,
        };
        let keap = self.state.connectors.keap.clone();
        let page = tokens::call(&self.state, &mut self.session, |cred| {
            let keap = keap.clone();
            async move { keap.list_v1(&cred, collection, MAX_PAGE, offset).await }
        })
        .await?;
        let got = page.items.len() as u64;
        let records = page
            .items
            .into_iter()
            .filter_map(|raw| {
                let normalized = collection.normalize(&raw)?;
                let platform_id = normalized.get("id").and_then(Value::as_str)?.to_owned();
                SyncRecord::from_values(platform_id, &normalized, &raw).ok()
            })
            .collect();
        let end = offset + got;
        if got == 0 || end >= page.count {
            return Ok(Page::last(records));
        }
        Ok(Page {
            records,
            next: Some(encode_cursor(&OffsetCursor { offset: end })?),
            watermark: None,
        })
    }
}

#[async_trait]
impl SyncSession for KeapSync {
    async fn page(&mut self, kind: &str, cursor: Option<&str>) -> Result<Page, Error> {
        match kind {
            "contacts" => self.contacts(cursor).await,
            "tags" => self.listing(V1Collection::Tags, cursor).await,
            "campaigns" => self.listing(V1Collection::Campaigns, cursor).await,
            "opportunities" => self.listing(V1Collection::Opportunities, cursor).await,
            "orders" => self.listing(V1Collection::Orders, cursor).await,
            other => Err(unknown_kind(domain::Platform::Keap, other)),
        }
    }

    async fn opt_outs(
        &mut self,
        kind: &str,
        records: &[SyncRecord],
    ) -> Result<Vec<SyncedOptOut>, Error> {
        Ok(match kind {
            "contacts" => contact_opt_outs(records),
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::consent::Reason;

    use super::*;

    fn contact(v: serde_json::Value) -> SyncRecord {
        SyncRecord::from_values("1".into(), &serde_json::json!({}), &v).unwrap()
    }

    #[test]
    fn each_address_of_a_contact_is_judged_by_its_own_status() {
        let records = [
            contact(serde_json::json!({"id": "1", "email_addresses": [
                {"email": "a@x.com", "field": "EMAIL1", "is_opt_in": false, "email_opt_status": "MANUAL"},
                {"email": "b@x.com", "field": "EMAIL2", "is_opt_in": true, "email_opt_status": "CONFIRMED"},
            ]})),
            contact(serde_json::json!({"id": "2", "email_addresses": [
                {"email": "c@x.com", "field": "EMAIL1", "email_opt_status": "SPAM"},
                {"email": "d@x.com", "field": "EMAIL2", "email_opt_status": "HARD_BOUNCE"},
                {"email": "e@x.com", "field": "EMAIL3", "email_opt_status": "BOUNCE"},
            ]})),
            // No addresses, an address without a status, and a contact that is not an object.
            contact(serde_json::json!({"id": "3"})),
            contact(serde_json::json!({"id": "4", "email_addresses": [{"email": "f@x.com"}]})),
            contact(serde_json::json!([1, 2])),
        ];
        let got: Vec<(String, Reason)> = contact_opt_outs(&records)
            .into_iter()
            .map(|o| (o.email, o.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a@x.com".to_owned(), Reason::Unsubscribed),
                ("c@x.com".to_owned(), Reason::Complained),
                ("d@x.com".to_owned(), Reason::Bounced),
            ]
        );
    }
}
