//! Keap CRM reads for the sync engine and the CRM routes: v1 `limit`/`offset` listings of tags,
//! campaigns, opportunities (with their pipeline stage), orders and sent emails (reporting),
//! the custom field models, and v2 contact pages walked by `next_page_token` (keyset on id, so a
//! listing is not shifted by deletes while it runs) with an optional `start_update_time` filter.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{KeapConnector, KeapCredential, KeapError, Req, errors, models};

/// Keap's largest page (v1 `limit`, v2 `page_size`): 1000 (platforms/keap.md §2).
pub const MAX_PAGE: u32 = 1000;

/// The v2 contact fields a sync reads: what the Contact shape needs plus what a publisher
/// usually wants kept raw.
pub const CONTACT_FIELDS: &str = "given_name,family_name,email_addresses,phone_numbers,tag_ids,create_time,update_time,custom_fields,leadsource_id,owner_id,score_value,company,job_title";

/// A v1 collection read with `limit`/`offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Collection {
    Tags,
    Campaigns,
    Opportunities,
    Orders,
}

impl V1Collection {
    fn path(self) -> &'static str {
        match self {
            V1Collection::Tags => "crm/rest/v1/tags",
            V1Collection::Campaigns => "crm/rest/v1/campaigns",
            V1Collection::Opportunities => "crm/rest/v1/opportunities",
            V1Collection::Orders => "crm/rest/v1/orders",
        }
    }

    /// The array's key in the answer (also the operation's noun).
    pub fn key(self) -> &'static str {
        match self {
            V1Collection::Tags => "tags",
            V1Collection::Campaigns => "campaigns",
            V1Collection::Opportunities => "opportunities",
            V1Collection::Orders => "orders",
        }
    }

    fn operation(self) -> &'static str {
        match self {
            V1Collection::Tags => "list_tags",
            V1Collection::Campaigns => "list_campaigns",
            V1Collection::Opportunities => "list_opportunities",
            V1Collection::Orders => "list_orders",
        }
    }

    /// The item as our shape (camelCase, ids as strings, RFC 3339 times); `None` without an id.
    pub fn normalize(self, v: &Value) -> Option<Value> {
        match self {
            V1Collection::Tags => tag(v),
            V1Collection::Campaigns => {
                models::campaign(v).and_then(|c| serde_json::to_value(c).ok())
            }
            V1Collection::Opportunities => opportunity(v),
            V1Collection::Orders => order(v),
        }
    }
}

/// One v1 page: Keap's items as sent, and its total of matches.
#[derive(Debug)]
pub struct V1Page {
    pub items: Vec<Value>,
    pub count: u64,
}

/// One v2 contact page: each contact's JSON as Keap sent it (map it with
/// [`models::v2_contact`]), and the token of the next page. Mapping is left to the caller so
/// that it can request the next page first: the token is all the next request needs.
#[derive(Debug)]
pub struct ContactRows {
    pub contacts: Vec<Box<serde_json::value::RawValue>>,
    pub next_page_token: Option<String>,
}

fn time_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(models::parse_time)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn id_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(models::id_string)
}

/// A tag: `{id, name, description, category, platform}`.
pub fn tag(t: &Value) -> Option<Value> {
    Some(json!({
        "id": id_of(t, "id")?,
        "name": t.get("name").and_then(Value::as_str),
        "description": t.get("description").and_then(Value::as_str),
        "category": t.get("category").and_then(|c| c.get("name")).and_then(Value::as_str),
        "platform": "keap",
    }))
}

/// An opportunity with its pipeline stage: `{id, title, contactId, contactEmail, stage: {id,
/// name, order, probability}, userId, projectedRevenueLow, projectedRevenueHigh,
/// estimatedCloseAt, createdAt, updatedAt, platform}`.
pub fn opportunity(o: &Value) -> Option<Value> {
    let contact = o.get("contact").unwrap_or(&Value::Null);
    let stage = o.get("stage").filter(|s| !s.is_null()).map(|s| {
        let details = s.get("details").unwrap_or(&Value::Null);
        json!({
            "id": id_of(s, "id"),
            "name": s.get("name").and_then(Value::as_str),
            "order": details.get("stage_order").and_then(Value::as_i64),
            "probability": details.get("probability").and_then(Value::as_f64),
        })
    });
    Some(json!({
        "id": id_of(o, "id")?,
        "title": o.get("opportunity_title").and_then(Value::as_str),
        "contactId": id_of(contact, "id"),
        "contactEmail": contact.get("email").and_then(Value::as_str).filter(|e| !e.is_empty()),
        "stage": stage,
        "userId": o.get("user").and_then(|u| id_of(u, "id")),
        "projectedRevenueLow": o.get("projected_revenue_low").and_then(Value::as_f64),
        "projectedRevenueHigh": o.get("projected_revenue_high").and_then(Value::as_f64),
        "estimatedCloseAt": time_of(o, "estimated_close_date"),
        "createdAt": time_of(o, "date_created"),
        "updatedAt": time_of(o, "last_updated"),
        "platform": "keap",
    }))
}

/// An order: `{id, title, status, contactId, contactEmail, total, totalPaid, totalDue,
/// orderType, items: [{id, name, quantity, price}], orderedAt, createdAt, updatedAt, platform}`.
pub fn order(o: &Value) -> Option<Value> {
    let contact = o.get("contact").unwrap_or(&Value::Null);
    let money = |k: &str| {
        o.get(k).and_then(|v| {
            v.as_f64()
                .or_else(|| v.get("amount").and_then(Value::as_f64))
        })
    };
    let items: Vec<Value> = o
        .get("order_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    json!({
                        "id": id_of(i, "id"),
                        "name": i.get("name").and_then(Value::as_str),
                        "quantity": i.get("quantity").and_then(Value::as_f64),
                        "price": i.get("price").and_then(Value::as_f64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(json!({
        "id": id_of(o, "id")?,
        "title": o.get("title").and_then(Value::as_str),
        "status": o.get("status").and_then(Value::as_str).map(str::to_ascii_lowercase),
        "contactId": id_of(contact, "id"),
        "contactEmail": contact.get("email").and_then(Value::as_str).filter(|e| !e.is_empty()),
        "total": money("total"),
        "totalPaid": money("total_paid"),
        "totalDue": money("total_due"),
        "orderType": o.get("order_type").and_then(Value::as_str),
        "items": items,
        "orderedAt": time_of(o, "order_date"),
        "createdAt": time_of(o, "creation_date"),
        "updatedAt": time_of(o, "modification_date"),
        "platform": "keap",
    }))
}

/// A custom field of a record type: `{id, label, name, type, recordType, options, platform}`.
pub fn custom_field(f: &Value, record_type: &str) -> Option<Value> {
    Some(json!({
        "id": id_of(f, "id")?,
        "label": f.get("label").and_then(Value::as_str),
        "name": f.get("field_name").and_then(Value::as_str),
        "type": f.get("field_type").and_then(Value::as_str),
        "recordType": f.get("record_type").and_then(Value::as_str).map(str::to_ascii_lowercase).unwrap_or_else(|| record_type.to_owned()),
        "options": f.get("options").cloned().unwrap_or_else(|| json!([])),
        "platform": "keap",
    }))
}

/// One sent-email record (v1 `EmailSentQueryResult`): what reporting reads of it. Keap keeps
/// the first open and the first click of each email only.
#[derive(Clone, Debug, PartialEq)]
pub struct SentEmail {
    pub id: String,
    pub contact_id: Option<String>,
    pub to: Option<String>,
    pub sent: Option<DateTime<Utc>>,
    pub opened: Option<DateTime<Utc>>,
    pub clicked: Option<DateTime<Utc>>,
}

impl SentEmail {
    /// `None` without an id.
    pub fn from_v1(v: &Value) -> Option<Self> {
        let time = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(models::parse_time)
        };
        Some(Self {
            id: id_of(v, "id")?,
            contact_id: id_of(v, "contact_id"),
            to: v
                .get("sent_to_address")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            sent: time("sent_date"),
            opened: time("opened_date"),
            clicked: time("clicked_date"),
        })
    }
}

/// One page of sent emails and Keap's total of matches.
#[derive(Debug)]
pub struct SentEmailPage {
    pub emails: Vec<SentEmail>,
    pub count: u64,
}

/// The record types whose custom fields Keap models (v1 `/{type}/model`).
pub const CUSTOM_FIELD_RECORDS: [&str; 2] = ["contact", "opportunity"];

impl KeapConnector {
    /// One v1 page of `collection` (`limit` ≤ 1000); `since` filters orders by date (Keap's
    /// v1 `since`), and is ignored for the others.
    pub async fn list_v1(
        &self,
        cred: &KeapCredential,
        collection: V1Collection,
        limit: u32,
        offset: u64,
    ) -> Result<V1Page, KeapError> {
        let query = [
            ("limit", limit.clamp(1, MAX_PAGE).to_string()),
            ("offset", offset.to_string()),
        ];
        let what = format!("list {}", collection.key());
        let answer = self
            .request(
                cred,
                Req {
                    operation: collection.operation(),
                    what: &what,
                    method: reqwest::Method::GET,
                    path: collection.path(),
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let mut page: Value = Self::decode(&answer, &what)?;
        let items = match page.get_mut(collection.key()).map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(KeapError::Other(errors::malformed(&what))),
        };
        let count = page
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(offset + items.len() as u64);
        Ok(V1Page { items, count })
    }

    /// One page of the emails sent in `[since, until]` (REST v1 `GET /emails` with
    /// `since_sent_date`/`until_sent_date`, `limit` ≤ 1000, `offset`).
    pub async fn sent_emails(
        &self,
        cred: &KeapCredential,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
        offset: u64,
    ) -> Result<SentEmailPage, KeapError> {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let query = [
            ("limit", limit.clamp(1, MAX_PAGE).to_string()),
            ("offset", offset.to_string()),
            ("since_sent_date", t(since)),
            ("until_sent_date", t(until)),
        ];
        let answer = self
            .request(
                cred,
                Req {
                    operation: "list_emails",
                    what: "list sent emails",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v1/emails",
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let page: Value = Self::decode(&answer, "the sent email list")?;
        let emails: Vec<SentEmail> = match page.get("emails") {
            Some(Value::Array(items)) => items.iter().filter_map(SentEmail::from_v1).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(KeapError::Other(errors::malformed("the sent email list"))),
        };
        let count = page
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(offset + emails.len() as u64);
        Ok(SentEmailPage { emails, count })
    }

    /// The custom fields of a record type (`contact` or `opportunity`; v1 `/{type}s/model`).
    pub async fn custom_fields(
        &self,
        cred: &KeapCredential,
        record_type: &str,
    ) -> Result<Vec<Value>, KeapError> {
        let path = match record_type {
            "opportunity" => "crm/rest/v1/opportunities/model",
            _ => "crm/rest/v1/contacts/model",
        };
        let answer = self
            .request(
                cred,
                Req {
                    operation: "custom_fields",
                    what: "read the custom fields",
                    method: reqwest::Method::GET,
                    path,
                    query: &[],
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let model: Value = Self::decode(&answer, "the custom field model")?;
        Ok(model
            .get("custom_fields")
            .and_then(Value::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|f| custom_field(f, record_type))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// One v2 page of contacts in id order after `page_token`, optionally only those updated at
    /// or after `since` (`filter=start_update_time==…`, inclusive).
    pub async fn contacts_page(
        &self,
        cred: &KeapCredential,
        since: Option<DateTime<Utc>>,
        page_token: Option<&str>,
        page_size: u32,
    ) -> Result<ContactRows, KeapError> {
        let mut query = vec![
            ("page_size", page_size.clamp(1, MAX_PAGE).to_string()),
            ("fields", CONTACT_FIELDS.to_owned()),
        ];
        if let Some(t) = since {
            query.push((
                "filter",
                format!(
                    "start_update_time=={}",
                    t.to_rfc3339_opts(SecondsFormat::Millis, true)
                ),
            ));
        }
        if let Some(t) = page_token {
            query.push(("page_token", t.to_owned()));
        }
        let answer = self
            .request(
                cred,
                Req {
                    operation: "list_contacts_v2",
                    what: "list contacts",
                    method: reqwest::Method::GET,
                    path: "crm/rest/v2/contacts",
                    query: &query,
                    body: None,
                    idempotent: true,
                },
            )
            .await?;
        let page: models::V2ContactPage = Self::decode(&answer, "the contact list")?;
        Ok(ContactRows {
            contacts: page.contacts,
            next_page_token: page.next_page_token.filter(|t| !t.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opportunity_keeps_its_stage() {
        let o = opportunity(&json!({
            "id": 7, "opportunity_title": "Big deal",
            "contact": {"id": 3, "email": "a@x.com"},
            "stage": {"id": 2, "name": "Qualified", "details": {"stage_order": 2, "probability": 40}},
            "date_created": "2024-11-12T21:45:54.000+0000"
        }))
        .unwrap();
        assert_eq!(o["id"], "7");
        assert_eq!(o["contactId"], "3");
        assert_eq!(o["stage"]["id"], "2");
        assert_eq!(o["stage"]["name"], "Qualified");
        assert_eq!(o["createdAt"], "2024-11-12T21:45:54Z");
    }

    #[test]
    fn sent_email_reads_keap_times() {
        let e = SentEmail::from_v1(&json!({
            "id": 30001, "contact_id": 12, "sent_to_address": " a@x.com ",
            "sent_date": "2026-03-01T10:00:00.000+0000", "opened_date": null,
            "clicked_date": "2026-03-01T11:00:00.000+0000"
        }))
        .unwrap();
        assert_eq!(
            (e.id.as_str(), e.contact_id.as_deref()),
            ("30001", Some("12"))
        );
        assert_eq!(e.to.as_deref(), Some("a@x.com"));
        assert!(e.sent.is_some() && e.opened.is_none() && e.clicked.is_some());
        assert!(SentEmail::from_v1(&json!({"subject": "no id"})).is_none());
    }

    #[test]
    fn order_amounts_and_status() {
        let o = order(&json!({"id": 9, "status": "PAID", "total": 12.5, "contact": {"id": 1}}))
            .unwrap();
        assert_eq!(o["status"], "paid");
        assert_eq!(o["total"], 12.5);
        assert!(order(&json!({"title": "no id"})).is_none());
    }
}
