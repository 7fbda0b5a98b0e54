//! Iterable's sync kinds: `campaigns`, `lists`, `templates` (full listings), and `users` and
//! `events` through the export API (`GET /api/export/data.json`); the opt-in `metrics` is in
//! [`crate::sync::sources::metrics`].
//!
//! **Exports.** `users` is one export of `dataTypeName=user`; `events` one export per message
//! event type (the connector's [`EVENT_TYPES`], or the integration's `config.syncEventTypes`),
//! in turn. Each export costs one of the key's 4 per minute, which the connector's proactive
//! budget enforces (a page waits for its token rather than draw a 429). An export's window is
//! `[since, started)`: from the watermark (or the epoch) to the time the listing began.
//!
//! The export is read as a stream and served to the engine 1000 rows a page while the download
//! continues (the connector's
//! [`export_page`](connectors::iterable::IterableConnector::export_page)): this session keeps the
//! open export between pages, so memory holds one page, not the export. The cursor carries the
//! window, the event type and the connector's [`ExportPlace`] (the time slice and the rows of it
//! already served): a resumed run, or a read after Iterable cut the stream off, exports from
//! there without losing or re-serving rows, and a slice that keeps breaking is split into
//! smaller ones.
//!
//! **Watermark**: the newest row time seen (`profileUpdatedAt` for users, `createdAt` for
//! events) minus [`DEFAULT_LOOKBACK`] (15 minutes), never before the window's start. Iterable's
//! export is eventually consistent: rows appear minutes after the fact, so a row stamped just
//! before the newest one seen may still be missing; re-reading the last 15 minutes picks it up
//! next run. With no rows seen, the window's end minus the lookback.
//!
//! **Consent** (issue 17): a synced user whose `unsubscribedChannelIds` covers every consent
//! channel — the integration's `config.consentChannelIds`, else every Marketing + Email channel
//! of the project (one `GET /api/channels` a session, only once a page holds a user with any
//! unsubscribe) — is offered to the ledger as `unsubscribed` ([`SyncSession::opt_outs`]).
//! Iterable has no global unsubscribe flag, and a user off only some of those channels can still
//! be mailed, so is not. Its hard bounces and complaints end as the same channel unsubscribes,
//! which the stored profile cannot tell apart: they are recorded as `unsubscribed` too.
//!
//! **Keys**: users by `email`, else `userId:<userId>`; events by a derived id (type, messageId,
//! createdAt, person, campaign, url hashed), stable across re-reads, since Iterable's rows carry
//! none.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connectors::iterable::{
    Credentials, DEFAULT_LOOKBACK, EVENT_TYPES, ExportPlace, OpenExport,
    sync::{SYNC_PAGE, event_id, row_time, user_key},
    time_key,
};
use domain::{Platform, consent::Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::IterableSession;
use crate::{
    error::Error,
    state::AppState,
    sync::source::SyncedOptOut,
    sync::source::{Page, SyncRecord, SyncSession, decode_cursor, encode_cursor, unknown_kind},
};

/// The sync reader of an opened Iterable session.
pub fn reader(state: &AppState, session: IterableSession) -> Box<dyn SyncSession> {
    let types = session.settings.sync_event_types;
    let event_types = if types.is_empty() {
        EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect()
    } else {
        types
    };
    Box::new(IterableSync {
        state: state.clone(),
        integration_id: session.record.id,
        creds: session.creds,
        event_types,
        export: None,
        consent_channels: session
            .settings
            .consent_channel_ids
            .filter(|c| !c.is_empty()),
    })
}

struct IterableSync {
    state: AppState,
    integration_id: String,
    creds: Credentials,
    event_types: Vec<String>,
    /// The export being read, open between pages.
    export: Option<OpenExport>,
    /// The channels a user must be off to count as opted out: the config's, or (looked up once
    /// when first needed) the project's marketing email channels.
    consent_channels: Option<Vec<u64>>,
}

/// What the consent feed reads of a synced user's row.
#[derive(Deserialize)]
struct UserConsent {
    #[serde(default)]
    email: Option<String>,
    #[serde(
        default,
        rename = "unsubscribedChannelIds",
        deserialize_with = "super::consent::channel_ids"
    )]
    unsubscribed_channel_ids: Option<Vec<u64>>,
}

/// Whether a user off `unsubscribed` may not be mailed: every one of the (non-empty) consent
/// `channels` is among them.
pub fn opted_out(channels: &[u64], unsubscribed: &[u64]) -> bool {
    !channels.is_empty() && channels.iter().all(|c| unsubscribed.contains(c))
}

#[derive(Serialize, Deserialize)]
struct OffsetCursor {
    offset: u64,
}

/// An export listing's place, or (with `since` alone) a watermark.
#[derive(Serialize, Deserialize, Default)]
struct ExportCursor {
    /// Watermark: where the next listing's window starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<Utc>>,
    /// The window `[start, end)` of the listing in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<DateTime<Utc>>,
    /// Which event type (index into the session's types); 0 for users.
    #[serde(default)]
    types: usize,
    /// Where the current export stands: its time slice and the rows of it served.
    #[serde(flatten)]
    place: ExportPlace,
    /// The newest row time seen so far in this listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<DateTime<Utc>>,
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn lookback() -> chrono::Duration {
    chrono::Duration::from_std(DEFAULT_LOOKBACK).unwrap_or_default()
}

impl IterableSync {
    /// Synced users off every consent channel, as `unsubscribed`.
    async fn user_opt_outs(&mut self, records: &[SyncRecord]) -> Result<Vec<SyncedOptOut>, Error> {
        let users: Vec<(String, Vec<u64>)> = records
            .iter()
            .filter_map(|r| serde_json::from_str::<UserConsent>(r.raw.get()).ok())
            .filter_map(|u| Some((u.email?, u.unsubscribed_channel_ids?)))
            .collect();
        if users.is_empty() {
            // No user on this page has any unsubscribe: no channel lookup either.
            return Ok(Vec::new());
        }
        let channels = match &self.consent_channels {
            Some(c) => c.clone(),
            None => {
                let c = self
                    .state
                    .connectors
                    .iterable
                    .marketing_email_channel_ids(&self.creds)
                    .await?;
                self.consent_channels = Some(c.clone());
                c
            }
        };
        Ok(users
            .into_iter()
            .filter(|(_, unsubscribed)| opted_out(&channels, unsubscribed))
            .map(|(email, _)| SyncedOptOut {
                email,
                reason: Reason::Unsubscribed,
            })
            .collect())
    }

    async fn campaigns(&mut self, cursor: Option<&str>) -> Result<Page, Error> {
        let offset = offset_of("campaigns", cursor)?;
        let (rows, total) = self
            .state
            .connectors
            .iterable
            .campaigns_page(&self.creds, offset)
            .await?;
        let records = rows
            .into_iter()
            .map(|(raw, c)| {
                SyncRecord::from_values(c.id.clone(), &c, &raw).map_err(Error::internal)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        offset_page(records, offset, total)
    }

    async fn templates(&mut self, cursor: Option<&str>) -> Result<Page, Error> {
        let offset = offset_of("templates", cursor)?;
        let (rows, total) = self
            .state
            .connectors
            .iterable
            .templates_page(&self.creds, offset)
            .await?;
        let records = rows
            .into_iter()
            .map(|(raw, t)| {
                SyncRecord::from_values(t.id.clone(), &t, &raw).map_err(Error::internal)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        offset_page(records, offset, total)
    }

    async fn lists(&mut self) -> Result<Page, Error> {
        let rows = self
            .state
            .connectors
            .iterable
            .lists_raw(&self.creds)
            .await?;
        let records = rows
            .into_iter()
            .map(|(raw, l)| {
                SyncRecord::from_values(l.id.clone(), &l, &raw).map_err(Error::internal)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Page::last(records))
    }

    /// `users` (one export) or `events` (one export per type), 1000 rows a page.
    async fn exported(&mut self, kind: &str, cursor: Option<&str>) -> Result<Page, Error> {
        let users = kind == "users";
        let mut c: ExportCursor = match cursor {
            None => ExportCursor::default(),
            Some(s) => decode_cursor(kind, s)?,
        };
        let (start, end) = match (c.start, c.end) {
            (Some(s), Some(e)) => (s, e),
            // Whole seconds: Iterable's export takes times to the second, so the window we
            // record is exactly the one it applies (a row in the current second is left to the
            // next run rather than cut off by a truncated end).
            _ => (
                whole_seconds(c.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
                whole_seconds(Utc::now()),
            ),
        };
        let data_type = if users {
            "user".to_owned()
        } else {
            self.event_types.get(c.types).cloned().ok_or_else(|| {
                Error::invalid(
                    "cursor",
                    "The events cursor names an event type past the configured ones.",
                )
            })?
        };
        let page = self
            .state
            .connectors
            .iterable
            .export_page(
                &self.creds,
                &mut self.export,
                &data_type,
                start,
                end,
                &c.place,
                SYNC_PAGE as usize,
            )
            .await?;
        let time_key = time_key(&data_type);
        let mut records = Vec::with_capacity(page.rows.len());
        for raw in &page.rows {
            if let Some(t) = row_time(raw, time_key) {
                c.newest = Some(c.newest.map_or(t, |n| n.max(t)));
            }
            let (platform_id, normalized) = if users {
                let Some(id) = user_key(raw) else { continue };
                (id, user_shape(raw, time_key))
            } else {
                let id = event_id(&data_type, raw);
                (id.clone(), event_shape(&id, &data_type, raw))
            };
            records.push(
                SyncRecord::from_values(platform_id, &normalized, raw).map_err(Error::internal)?,
            );
        }
        let more_types = !users && c.types + 1 < self.event_types.len();
        if page.next.is_some() || more_types {
            match page.next {
                Some(place) => c.place = place,
                None => {
                    c.types += 1;
                    c.place = ExportPlace::default();
                    self.export = None;
                }
            }
            c.start = Some(start);
            c.end = Some(end);
            c.since = None;
            return Ok(Page {
                records,
                next: Some(encode_cursor(&c)?),
                watermark: None,
            });
        }
        self.export = None;
        let since = (c.newest.unwrap_or(end) - lookback()).max(start);
        Ok(Page {
            records,
            next: None,
            watermark: Some(encode_cursor(&ExportCursor {
                since: Some(since),
                ..ExportCursor::default()
            })?),
        })
    }
}

fn offset_of(kind: &str, cursor: Option<&str>) -> Result<u64, Error> {
    Ok(match cursor {
        None => 0,
        Some(s) => decode_cursor::<OffsetCursor>(kind, s)?.offset,
    })
}

fn offset_page(records: Vec<SyncRecord>, offset: u64, total: u64) -> Result<Page, Error> {
    let end = offset + records.len() as u64;
    if records.len() < SYNC_PAGE as usize || end >= total {
        return Ok(Page::last(records));
    }
    Ok(Page {
        records,
        next: Some(encode_cursor(&OffsetCursor { offset: end })?),
        watermark: None,
    })
}

fn text(row: &Value, key: &str) -> Value {
    row.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or(Value::Null, |s| Value::String(s.to_owned()))
}

fn id_text(row: &Value, key: &str) -> Value {
    match row.get(key) {
        Some(Value::Number(n)) => Value::String(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Value::String(s.clone()),
        _ => Value::Null,
    }
}

fn time_text(row: &Value, key: &str) -> Value {
    row_time(row, key).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// A user: `{id, email, userId, signupDate, updatedAt, platform}` (the profile stays in `raw`).
fn user_shape(row: &Value, time_key: &str) -> Value {
    serde_json::json!({
        "id": user_key(row),
        "email": text(row, "email"),
        "userId": text(row, "userId"),
        "signupDate": time_text(row, "signupDate"),
        "updatedAt": time_text(row, time_key),
        "platform": "iterable",
    })
}

/// A message event: `{id, type, occurredAt, email, userId, campaignId, templateId, messageId,
/// platform}`.
fn event_shape(id: &str, data_type: &str, row: &Value) -> Value {
    serde_json::json!({
        "id": id,
        "type": data_type,
        "occurredAt": time_text(row, "createdAt"),
        "email": text(row, "email"),
        "userId": text(row, "userId"),
        "campaignId": id_text(row, "campaignId"),
        "templateId": id_text(row, "templateId"),
        "messageId": text(row, "messageId"),
        "platform": "iterable",
    })
}

#[async_trait]
impl SyncSession for IterableSync {
    async fn page(&mut self, kind: &str, cursor: Option<&str>) -> Result<Page, Error> {
        match kind {
            "campaigns" => self.campaigns(cursor).await,
            "lists" => self.lists().await,
            "templates" => self.templates(cursor).await,
            "users" | "events" => self.exported(kind, cursor).await,
            "metrics" => {
                crate::sync::sources::metrics::iterable_page(
                    &self.state,
                    &self.integration_id,
                    &self.creds,
                    cursor,
                )
                .await
            }
            other => Err(unknown_kind(Platform::Iterable, other)),
        }
    }

    async fn opt_outs(
        &mut self,
        kind: &str,
        records: &[SyncRecord],
    ) -> Result<Vec<SyncedOptOut>, Error> {
        match kind {
            "users" => self.user_opt_outs(records).await,
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_opted_out_only_when_off_every_consent_channel() {
        assert!(opted_out(&[41001, 41007], &[41003, 41007, 41001]));
        assert!(!opted_out(&[41001, 41007], &[41001]));
        assert!(!opted_out(&[41001], &[]));
        // A project with no marketing email channel opts no one out.
        assert!(!opted_out(&[], &[41001]));
    }

    #[test]
    fn a_user_row_reads_leniently() {
        let u: UserConsent = serde_json::from_str(
            r#"{"email":"a@x.com","unsubscribedChannelIds":[41001,"41007"],"firstName":"A"}"#,
        )
        .unwrap();
        assert_eq!(u.email.as_deref(), Some("a@x.com"));
        assert_eq!(u.unsubscribed_channel_ids, Some(vec![41001, 41007]));
        let u: UserConsent = serde_json::from_str(r#"{"userId":"u1"}"#).unwrap();
        assert_eq!((u.email, u.unsubscribed_channel_ids), (None, None));
    }
}
