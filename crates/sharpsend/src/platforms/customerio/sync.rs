//! Customer.io's sync kinds, all full listings from the App API (it has no change feed for
//! them): `campaigns`, `segments` and `broadcasts` (one answer each), `newsletters` (a page per
//! `start`/`next` cursor), and `segment_members` of the integration's `config.segmentIds`
//! (a page per membership cursor, segment after segment; records keyed `segmentId:personId`);
//! the opt-in `metrics` is in [`super::metrics`].

use async_trait::async_trait;
use connectors::customerio::Credentials;
use domain::{Platform, shapes::Campaign};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::CustomerioSession;
use crate::{
    error::Error,
    state::AppState,
    sync::source::{Page, SyncRecord, SyncSession, decode_cursor, encode_cursor, unknown_kind},
};

/// The sync reader of an opened Customer.io session.
pub fn reader(state: &AppState, session: CustomerioSession) -> Box<dyn SyncSession> {
    Box::new(CustomerioSync {
        state: state.clone(),
        integration_id: session.record.id,
        creds: session.creds,
        segment_ids: session.settings.segment_ids,
    })
}

struct CustomerioSync {
    state: AppState,
    integration_id: String,
    creds: Credentials,
    segment_ids: Vec<String>,
}

/// Where a newsletter listing is: Customer.io's `start`.
#[derive(Serialize, Deserialize)]
struct StartCursor {
    start: String,
}

/// Where a membership listing is: which configured segment, and its `start`.
#[derive(Serialize, Deserialize)]
struct MembersCursor {
    segment: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<String>,
}

fn campaign_records(rows: Vec<(Value, Campaign)>) -> Result<Vec<SyncRecord>, Error> {
    rows.into_iter()
        .map(|(raw, c)| SyncRecord::from_values(c.id.clone(), &c, &raw).map_err(Error::internal))
        .collect()
}

impl CustomerioSync {
    async fn newsletters(&mut self, cursor: Option<&str>) -> Result<Page, Error> {
        let start = match cursor {
            None => None,
            Some(s) => Some(decode_cursor::<StartCursor>("newsletters", s)?.start),
        };
        let (rows, next) = self
            .state
            .connectors
            .customerio
            .newsletters_page(&self.creds, start.as_deref())
            .await?;
        let records = campaign_records(rows)?;
        Ok(match next {
            Some(start) => Page {
                records,
                next: Some(encode_cursor(&StartCursor { start })?),
                watermark: None,
            },
            None => Page::last(records),
        })
    }

    async fn segment_members(&mut self, cursor: Option<&str>) -> Result<Page, Error> {
        let mut c = match cursor {
            None => MembersCursor {
                segment: 0,
                start: None,
            },
            Some(s) => decode_cursor("segment_members", s)?,
        };
        let Some(segment) = self.segment_ids.get(c.segment).cloned() else {
            // No segments configured (or the configuration shrank): nothing to read.
            return Ok(Page::last(Vec::new()));
        };
        let (members, next) = self
            .state
            .connectors
            .customerio
            .segment_members_page(&self.creds, &segment, c.start.as_deref())
            .await?;
        let records = members
            .into_iter()
            .map(|m| {
                let id = format!("{segment}:{}", m.person_id);
                let normalized = json!({
                    "id": id,
                    "segmentId": segment,
                    "personId": m.person_id,
                    "email": m.email,
                    "cioId": m.cio_id,
                    "platform": "customerio",
                });
                SyncRecord::from_values(id, &normalized, &m.raw).map_err(Error::internal)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        match next {
            Some(start) => c.start = Some(start),
            None if c.segment + 1 < self.segment_ids.len() => {
                c.segment += 1;
                c.start = None;
            }
            None => return Ok(Page::last(records)),
        }
        Ok(Page {
            records,
            next: Some(encode_cursor(&c)?),
            watermark: None,
        })
    }
}

#[async_trait]
impl SyncSession for CustomerioSync {
    async fn page(&mut self, kind: &str, cursor: Option<&str>) -> Result<Page, Error> {
        let cio = self.state.connectors.customerio.clone();
        match kind {
            "campaigns" => Ok(Page::last(campaign_records(
                cio.campaigns_raw(&self.creds).await?,
            )?)),
            "broadcasts" => Ok(Page::last(campaign_records(
                cio.broadcasts_raw(&self.creds).await?,
            )?)),
            "segments" => {
                let rows = cio.segments_raw(&self.creds).await?;
                let records = rows
                    .into_iter()
                    .map(|(raw, s)| {
                        let view = domain::shapes::SegmentView::from(s);
                        SyncRecord::from_values(view.id.clone(), &view, &raw)
                            .map_err(Error::internal)
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(Page::last(records))
            }
            "newsletters" => self.newsletters(cursor).await,
            "segment_members" => self.segment_members(cursor).await,
            "metrics" => {
                crate::sync::sources::metrics::customerio_page(
                    &self.state,
                    &self.integration_id,
                    &self.creds,
                    cursor,
                )
                .await
            }
            other => Err(unknown_kind(Platform::Customerio, other)),
        }
    }
}
