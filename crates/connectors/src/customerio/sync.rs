//! App API reads for the sync engine, each keeping Customer.io's JSON next to our shape:
//! campaigns, segments and broadcasts (one answer each), newsletters one page at a time
//! (`start`/`next`), and segment membership one page at a time.

use domain::shapes::Campaign;
use serde_json::Value;

use super::{Api, Credentials, CustomerioConnector, NEWSLETTER_PAGE, Segment, errors, reads};
use crate::ConnectorError;

/// Members read per membership page (Customer.io allows up to 30,000; 1000 keeps a page's
/// transaction small).
pub const MEMBERS_PAGE: u32 = 1000;

/// One member of a segment, as the membership endpoint identifies people.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The person's `id`, else `cio_<cio_id>` (how the App API addresses them), else the email.
    pub person_id: String,
    pub id: Option<String>,
    pub email: Option<String>,
    pub cio_id: Option<String>,
    /// The identifiers object as sent.
    pub raw: Value,
}

fn items(mut body: Value, key: &str, operation: &str) -> Result<Vec<Value>, ConnectorError> {
    match body.get_mut(key).map(Value::take) {
        Some(Value::Array(v)) => Ok(v),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(ConnectorError::new(
            domain::Platform::Customerio,
            crate::ErrorKind::Unavailable,
            format!("Customer.io's App API answered {operation} without a `{key}` list."),
        )),
    }
}

fn next_of(body: &Value) -> Option<String> {
    body.get("next")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

impl CustomerioConnector {
    async fn app_json(
        &self,
        creds: &Credentials,
        operation: &'static str,
        doing: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ConnectorError> {
        let answer = self
            .app_get(creds.region, &creds.api_key, operation, path, query)
            .await?;
        errors::parse(Api::App, doing, &answer)
    }

    /// Every campaign (journey), raw and as a Campaign.
    pub async fn campaigns_raw(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<(Value, Campaign)>, ConnectorError> {
        let body = self
            .app_json(
                creds,
                "list_campaigns",
                "listing campaigns",
                "/v1/campaigns",
                &[],
            )
            .await?;
        Ok(items(body, "campaigns", "listing campaigns")?
            .into_iter()
            .map(|v| {
                let c = reads::campaign(&v).campaign;
                (v, c)
            })
            .collect())
    }

    /// Every segment, raw and parsed.
    pub async fn segments_raw(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<(Value, Segment)>, ConnectorError> {
        let body = self
            .app_json(
                creds,
                "list_segments",
                "listing segments",
                "/v1/segments",
                &[],
            )
            .await?;
        Ok(items(body, "segments", "listing segments")?
            .into_iter()
            .map(|v| {
                let s = reads::segment(&v);
                (v, s)
            })
            .collect())
    }

    /// Every API-triggered broadcast, raw and as a Campaign.
    pub async fn broadcasts_raw(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<(Value, Campaign)>, ConnectorError> {
        let body = self
            .app_json(
                creds,
                "list_broadcasts",
                "listing broadcasts",
                "/v1/broadcasts",
                &[],
            )
            .await?;
        Ok(items(body, "broadcasts", "listing broadcasts")?
            .into_iter()
            .map(|v| {
                let c = reads::campaign(&v).campaign;
                (v, c)
            })
            .collect())
    }

    /// One page of newsletters, oldest first, from `start`; answers the page and the next
    /// `start` (none on the last page).
    pub async fn newsletters_page(
        &self,
        creds: &Credentials,
        start: Option<&str>,
    ) -> Result<(Vec<(Value, Campaign)>, Option<String>), ConnectorError> {
        let mut query = vec![
            ("limit", NEWSLETTER_PAGE.to_string()),
            ("sort", "asc".to_owned()),
        ];
        if let Some(s) = start {
            query.push(("start", s.to_owned()));
        }
        let body = self
            .app_json(
                creds,
                "list_newsletters",
                "listing newsletters",
                "/v1/newsletters",
                &query,
            )
            .await?;
        let next = next_of(&body).filter(|n| Some(n.as_str()) != start);
        let rows: Vec<(Value, Campaign)> = items(body, "newsletters", "listing newsletters")?
            .into_iter()
            .map(|v| {
                let c = reads::newsletter(&v);
                (v, c)
            })
            .collect();
        let next = next.filter(|_| !rows.is_empty());
        Ok((rows, next))
    }

    /// One page of a segment's members (`GET /v1/segments/{id}/membership`), from `start`;
    /// answers the members and the next `start` (none on the last page).
    pub async fn segment_members_page(
        &self,
        creds: &Credentials,
        segment_id: &str,
        start: Option<&str>,
    ) -> Result<(Vec<Member>, Option<String>), ConnectorError> {
        let mut query = vec![("limit", MEMBERS_PAGE.to_string())];
        if let Some(s) = start {
            query.push(("start", s.to_owned()));
        }
        let path = format!(
            "/v1/segments/{}/membership",
            crate::http::path_segment(domain::Platform::Customerio, segment_id)?
        );
        let body = self
            .app_json(
                creds,
                "segment_membership",
                "reading a segment's members",
                &path,
                &query,
            )
            .await?;
        let next = next_of(&body).filter(|n| Some(n.as_str()) != start);
        let members: Vec<Member> = items(body, "identifiers", "reading a segment's members")?
            .into_iter()
            .filter_map(|raw| {
                let s = |k: &str| {
                    raw.get(k)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                };
                let (id, email, cio_id) = (s("id"), s("email"), s("cio_id"));
                let person_id = id
                    .clone()
                    .or_else(|| cio_id.as_ref().map(|c| format!("cio_{c}")))
                    .or_else(|| email.clone())?;
                Some(Member {
                    person_id,
                    id,
                    email,
                    cio_id,
                    raw,
                })
            })
            .collect();
        let next = next.filter(|_| !members.is_empty());
        Ok((members, next))
    }
}
