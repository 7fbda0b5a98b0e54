//! Deterministic, lazily generated project data: record `i` is a pure function of `(seed, i)`.
//!
//! Users and events are spread evenly over the year before the anchor time, so a time window of
//! an export maps to an index range and a million records are produced row by row, never stored.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sim_core::{mix, pick};

/// Generated users and events span this long before the anchor.
pub const SPAN_MS: i64 = 365 * 24 * 3600 * 1000;

pub const CAMPAIGN_ID_BASE: u64 = 2_100_000;
pub const TEMPLATE_ID_BASE: u64 = 3_000_000;
pub const LIST_ID_BASE: u64 = 960_000;

/// `(id, name, channelType, messageMedium)`; modelled on the recorded default channels.
pub const CHANNELS: &[(u64, &str, &str, &str)] = &[
    (41001, "Marketing Channel", "Marketing", "Email"),
    (41002, "Transactional Channel", "Transactional", "Email"),
    (41003, "Push Marketing Channel", "Marketing", "Push"),
    (41004, "Default SMS channel", "Marketing", "SMS"),
    (41005, "Default WebPush channel", "Marketing", "WebPush"),
    // Inferred: in-app campaigns need a channel; the SPEC's enum omits InApp (and WebPush, which
    // the recorded channels show).
    (41006, "In-App Marketing Channel", "Marketing", "InApp"),
    // A second marketing email channel, so "every Marketing+Email channel" means more than one.
    (41007, "Newsletter Channel", "Marketing", "Email"),
];

/// `(id, name, channelId, subscriptionPolicy)`.
pub const MESSAGE_TYPES: &[(u64, &str, u64, &str)] = &[
    (51001, "Marketing Message", 41001, "OptOut"),
    (51002, "Transactional Message", 41002, "OptOut"),
    (51003, "Push Marketing Message", 41003, "OptOut"),
    (51004, "Default SMS message type", 41004, "OptOut"),
    (51005, "Default WebPush message type", 41005, "OptOut"),
    (51006, "Breaking News Alerts", 41001, "OptIn"),
    (51007, "In-App Marketing Message", 41006, "OptOut"),
];

/// The first campaigns cover every type, medium and state, so any seed shows them all:
/// `(triggered, medium, state)`.
const COVERAGE: &[(bool, &str, &str)] = &[
    (true, "Email", "Running"),
    (true, "SMS", "Running"),
    (true, "Push", "Running"),
    (true, "InApp", "Running"),
    (false, "Email", "Finished"),
    (false, "Email", "Draft"),
    (false, "Email", "Ready"),
    (false, "Email", "Scheduled"),
    (false, "Email", "Running"),
    (false, "Email", "Starting"),
    (false, "Email", "Aborted"),
    (false, "Email", "Recurring"),
    (false, "Email", "Archived"),
    (false, "Push", "Finished"),
    (false, "SMS", "Finished"),
    (false, "InApp", "Finished"),
    (true, "Email", "Draft"),
];

const FIRST: &[&str] = &[
    "ada", "ben", "chloe", "dev", "elena", "farid", "grace", "hugo", "ines", "jonas", "kira",
    "liam", "maya", "noah", "olga", "priya", "quinn", "rosa", "sami", "tess",
];
const LAST: &[&str] = &[
    "adams", "bauer", "costa", "diaz", "evans", "fischer", "garcia", "haddad", "ito", "jensen",
    "kowalski", "larsen", "moreau", "nakamura", "okafor", "patel", "rossi", "silva", "tanaka",
    "weber",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "inbox.example.io",
];
const CITIES: &[&str] = &["Berlin", "Lisbon", "Austin", "Toronto", "Osaka", "Lagos"];
const SOURCES: &[&str] = &["API", "Import", "ListAPI", "Form"];
const EDITORS: &[&str] = &[
    "editor@sandbox-publisher.example",
    "growth@sandbox-publisher.example",
    "ops@sandbox-publisher.example",
];
const BLAST_NAMES: &[&str] = &[
    "Weekly Digest",
    "Morning Briefing",
    "Breaking News",
    "Weekend Long Reads",
    "Product Update",
    "Subscriber Survey",
];
const TRIGGERED_NAMES: &[&str] = &[
    "Welcome Email",
    "Double Opt-In Confirmation",
    "Trial Ending Reminder",
    "Win-back Nudge",
    "Payment Receipt",
];
const LIST_NAMES: &[&str] = &[
    "Newsletter subscribers",
    "Daily briefing",
    "Weekly digest",
    "Breaking news alerts",
    "Paid members",
    "Events & webinars",
    "Product updates",
];

/// Sizes and anchor of one generated project.
#[derive(Clone, Debug)]
pub struct Gen {
    pub seed: u64,
    pub anchor_ms: i64,
    pub campaigns: u64,
    pub templates: u64,
    pub lists: u64,
    pub users: u64,
    pub events: u64,
    /// Every generated campaign event is of this export type (`Options::event_type`).
    pub event_type: Option<&'static str>,
}

fn h(seed: u64, kind: u64, i: u64) -> u64 {
    mix(seed ^ mix(kind.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(i)))
}

const K_CAMPAIGN: u64 = 1;
const K_TEMPLATE: u64 = 2;
const K_LIST: u64 = 3;
const K_MEMBER: u64 = 4;
const K_USER: u64 = 5;
const K_EVENT: u64 = 6;

/// Epoch ms as Iterable's export writes event times: `2021-04-14 16:49:02 +00:00`.
pub fn fmt_export(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S +00:00")
        .to_string()
}

/// Epoch ms as `profileUpdatedAt` appears in a user export: `2021-04-14T16:48:01+00:00`.
pub fn fmt_iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// Parses `yyyy-MM-dd HH:mm:ss [ZZ]` (also `T` as separator, `Z`, `+00:00`, `+0000`, or a bare
/// date) into epoch ms. The SPEC's format is the first; the others are accepted leniently
/// (inferred).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let with_t = s.replacen(' ', "T", 1);
    for cand in [s, with_t.as_str()] {
        if let Ok(dt) = DateTime::parse_from_rfc3339(cand) {
            return Some(dt.timestamp_millis());
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S %:z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Timestamp of record `i` of `n` spread evenly over `[base, base + span)`.
pub fn spread(base: i64, span: i64, n: u64, i: u64) -> i64 {
    if n == 0 {
        return base;
    }
    let off = i128::from(span) * i128::from(i) / i128::from(n);
    // `off < span`, which fits in i64.
    #[allow(clippy::cast_possible_truncation)]
    let off = off as i64;
    base + off
}

/// The indices `i < n` whose [`spread`] timestamp lies in `[start, end)`.
pub fn index_range(base: i64, span: i64, n: u64, start: i64, end: i64) -> Range<u64> {
    if n == 0 || end <= start {
        return 0..0;
    }
    let first_at_or_after = |t: i64| -> u64 {
        if t <= base {
            return 0;
        }
        // Estimate, then correct for integer rounding.
        let est = (i128::from(t - base) * i128::from(n)) / i128::from(span.max(1));
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut i = est.clamp(0, i128::from(n)) as u64;
        while i > 0 && spread(base, span, n, i - 1) >= t {
            i -= 1;
        }
        while i < n && spread(base, span, n, i) < t {
            i += 1;
        }
        i
    };
    let lo = first_at_or_after(start);
    let hi = first_at_or_after(end);
    lo..hi.max(lo)
}

/// What a generated campaign is, besides its JSON.
#[derive(Clone, Debug)]
pub struct CampaignMeta {
    pub id: u64,
    pub triggered: bool,
    pub medium: &'static str,
    pub state: &'static str,
}

/// What a generated template is, besides its JSON.
#[derive(Clone, Debug)]
pub struct TemplateRec {
    pub value: Value,
    pub template_type: String,
    pub medium: String,
}

impl Gen {
    fn base(&self) -> i64 {
        self.anchor_ms - SPAN_MS
    }

    pub fn templates_total(&self) -> u64 {
        self.templates.max(self.campaigns)
    }

    pub fn list_id(&self, j: u64) -> u64 {
        LIST_ID_BASE + j * 3
    }

    pub fn campaign_id(&self, i: u64) -> u64 {
        CAMPAIGN_ID_BASE + i * 13
    }

    pub fn template_id(&self, i: u64) -> u64 {
        TEMPLATE_ID_BASE + i * 11
    }

    pub fn campaign_meta(&self, i: u64) -> CampaignMeta {
        let x = h(self.seed, K_CAMPAIGN, i);
        if let Some(&(triggered, medium, state)) =
            usize::try_from(i).ok().and_then(|i| COVERAGE.get(i))
        {
            return CampaignMeta {
                id: self.campaign_id(i),
                triggered,
                medium,
                state,
            };
        }
        let triggered = x % 10 < 3;
        let medium = match (x >> 8) % 20 {
            0..=12 => "Email",
            13..=15 => "Push",
            16..=17 => "SMS",
            _ => "InApp",
        };
        let r = (x >> 16) % 100;
        let state = if triggered {
            match r {
                0..=69 => "Running",
                70..=79 => "Ready",
                80..=89 => "Draft",
                _ => "Finished",
            }
        } else {
            match r {
                0..=54 => "Finished",
                55..=59 => "Running",
                60..=69 => "Scheduled",
                70..=79 => "Draft",
                80..=84 => "Ready",
                85..=89 => "Aborted",
                90..=92 => "Starting",
                93..=95 => "Recurring",
                _ => "Archived",
            }
        };
        CampaignMeta {
            id: self.campaign_id(i),
            triggered,
            medium,
            state,
        }
    }

    /// Campaign `i` as `GET /api/campaigns` returns it (`CampaignDetails`).
    pub fn campaign(&self, i: u64) -> Value {
        let m = self.campaign_meta(i);
        let x = h(self.seed, K_CAMPAIGN, i);
        let created = spread(self.base(), SPAN_MS, self.campaigns, i) + (x % 3_600_000) as i64;
        let updated = created + ((x >> 20) % (7 * 86_400_000)) as i64;
        let name = if m.triggered {
            format!("{} #{}", pick(TRIGGERED_NAMES, x >> 24), i + 1)
        } else {
            format!(
                "{} — {}",
                pick(BLAST_NAMES, x >> 24),
                DateTime::<Utc>::from_timestamp_millis(created)
                    .unwrap_or_default()
                    .format("%a, %b %d %Y")
            )
        };
        let editor = *pick(EDITORS, x >> 30);
        let mut c = Map::new();
        c.insert("id".into(), json!(m.id));
        c.insert("createdAt".into(), json!(created));
        c.insert("updatedAt".into(), json!(updated));
        c.insert("name".into(), json!(name));
        c.insert("templateId".into(), json!(self.template_id(i)));
        c.insert("messageMedium".into(), json!(m.medium));
        c.insert("createdByUserId".into(), json!(editor));
        c.insert("updatedByUserId".into(), json!(editor));
        c.insert("campaignState".into(), json!(m.state));
        c.insert("suppressionListIds".into(), json!([]));
        c.insert(
            "labels".into(),
            if (x >> 34).is_multiple_of(3) {
                json!(["newsletter"])
            } else {
                json!([])
            },
        );
        c.insert(
            "type".into(),
            json!(if m.triggered { "Triggered" } else { "Blast" }),
        );
        if !m.triggered {
            let standard: Vec<u64> = (2..self.lists).map(|j| self.list_id(j)).collect();
            if !standard.is_empty() {
                let mut ids = vec![*pick(&standard, x >> 36)];
                let second = *pick(&standard, x >> 44);
                if (x >> 40).is_multiple_of(2) && second != ids[0] {
                    ids.push(second);
                }
                c.insert("listIds".into(), json!(ids));
            }
            if self.lists > 0 && (x >> 50).is_multiple_of(2) {
                c.insert("suppressionListIds".into(), json!([self.list_id(0)]));
            }
            match m.state {
                "Finished" => {
                    c.insert("startAt".into(), json!(updated));
                    c.insert("endedAt".into(), json!(updated + 300_000));
                    c.insert("sendSize".into(), json!(100 + (x >> 12) % 50_000));
                }
                "Running" | "Aborted" | "Starting" | "Recurring" => {
                    c.insert("startAt".into(), json!(updated));
                }
                "Scheduled" => {
                    c.insert(
                        "startAt".into(),
                        json!(self.anchor_ms + 86_400_000 * (1 + (x % 14) as i64)),
                    );
                }
                _ => {}
            }
        }
        Value::Object(c)
    }

    pub fn list(&self, j: u64) -> Value {
        let x = h(self.seed, K_LIST, j);
        let created = self.base() - 30 * 86_400_000 + (j as i64) * 86_400_000;
        let mut l = Map::new();
        l.insert("id".into(), json!(self.list_id(j)));
        l.insert("createdAt".into(), json!(created + (x % 86_400_000) as i64));
        match j {
            0 => {
                l.insert("name".into(), json!("Global suppression list"));
                l.insert("listType".into(), json!("Suppression"));
                l.insert("isGlobalSuppressionEnabled".into(), json!(true));
            }
            1 => {
                l.insert("name".into(), json!("Engaged readers (last 30 days)"));
                l.insert("listType".into(), json!("Dynamic"));
            }
            _ => {
                let base = LIST_NAMES[((j - 2) as usize) % LIST_NAMES.len()];
                let name = if j - 2 < LIST_NAMES.len() as u64 {
                    base.to_owned()
                } else {
                    format!("{base} {}", j - 1)
                };
                l.insert("name".into(), json!(name));
                l.insert("listType".into(), json!("Standard"));
            }
        }
        Value::Object(l)
    }

    /// Whether generated user `i` is on list `j`.
    pub fn is_member(&self, i: u64, j: u64) -> bool {
        let pct = match j {
            0 => 1,
            1 => 10,
            _ => 20 + h(self.seed, K_LIST, j) % 50,
        };
        h(self.seed, K_MEMBER, (i << 16) ^ j) % 100 < pct
    }

    pub fn template(&self, i: u64) -> TemplateRec {
        let x = h(self.seed, K_TEMPLATE, i);
        let (ttype, medium, campaign) = if i < self.campaigns {
            let m = self.campaign_meta(i);
            let t = if m.triggered { "Triggered" } else { "Blast" };
            (t, m.medium, Some(m.id))
        } else {
            let medium = match x % 10 {
                0..=6 => "Email",
                7 => "Push",
                8 => "SMS",
                _ => "InApp",
            };
            ("Base", medium, None)
        };
        let created = if i < self.campaigns {
            spread(self.base(), SPAN_MS, self.campaigns, i) - 60_000
        } else {
            spread(self.base(), SPAN_MS, self.templates_total(), i) + (x % 3_600_000) as i64
        };
        let updated = created + ((x >> 20) % (3 * 86_400_000)) as i64;
        let message_type = match medium {
            "Push" => 51003,
            "SMS" => 51004,
            "InApp" => 51007,
            _ if ttype == "Triggered" => 51002,
            _ => 51001,
        };
        let mut t = Map::new();
        t.insert("templateId".into(), json!(self.template_id(i)));
        t.insert("createdAt".into(), json!(created));
        t.insert("updatedAt".into(), json!(updated));
        t.insert(
            "name".into(),
            json!(match campaign {
                Some(_) => format!("Campaign {} Template", i + 1),
                None => format!("{medium} base template {}", i + 1),
            }),
        );
        t.insert("creatorUserId".into(), json!(*pick(EDITORS, x >> 30)));
        t.insert("messageTypeId".into(), json!(message_type));
        if let Some(c) = campaign {
            t.insert("campaignId".into(), json!(c));
        }
        TemplateRec {
            value: Value::Object(t),
            template_type: ttype.to_owned(),
            medium: medium.to_owned(),
        }
    }

    pub fn user_email(&self, i: u64) -> String {
        let x = h(self.seed, K_USER, i);
        format!(
            "{}.{}{}@{}",
            pick(FIRST, x),
            pick(LAST, x >> 8),
            i,
            pick(DOMAINS, x >> 16)
        )
    }

    pub fn user_id(&self, i: u64) -> String {
        format!("usr{i:07}")
    }

    /// The generated user index an email names, if any.
    pub fn user_index_by_email(&self, email: &str) -> Option<u64> {
        let local = email.split('@').next()?;
        let digits: String = local
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let i: u64 = digits.parse().ok()?;
        (i < self.users && self.user_email(i).eq_ignore_ascii_case(email)).then_some(i)
    }

    pub fn user_index_by_id(&self, user_id: &str) -> Option<u64> {
        let i: u64 = user_id.strip_prefix("usr")?.parse().ok()?;
        (i < self.users && self.user_id(i) == user_id).then_some(i)
    }

    pub fn user_updated_ms(&self, i: u64) -> i64 {
        spread(self.base(), SPAN_MS, self.users, i)
    }

    pub fn user_range(&self, start: i64, end: i64) -> Range<u64> {
        index_range(self.base(), SPAN_MS, self.users, start, end)
    }

    /// User `i`'s profile fields (everything but `email` and `userId`), as `dataFields`.
    pub fn user_fields(&self, i: u64) -> Map<String, Value> {
        let x = h(self.seed, K_USER, i);
        let updated = self.user_updated_ms(i);
        let signup = updated - ((x >> 24) % (200 * 86_400_000)) as i64;
        let mut f = Map::new();
        let first = *pick(FIRST, x);
        let last = *pick(LAST, x >> 8);
        f.insert("firstName".into(), json!(capitalize(first)));
        f.insert("lastName".into(), json!(capitalize(last)));
        f.insert("city".into(), json!(*pick(CITIES, x >> 32)));
        f.insert("signupDate".into(), json!(fmt_export(signup)));
        f.insert("signupSource".into(), json!(*pick(SOURCES, x >> 40)));
        f.insert("profileUpdatedAt".into(), json!(fmt_iso(updated)));
        let lists: Vec<u64> = (0..self.lists)
            .filter(|&j| j != 0 && self.is_member(i, j))
            .map(|j| self.list_id(j))
            .collect();
        f.insert("emailListIds".into(), json!(lists));
        f.insert("unsubscribedChannelIds".into(), json!([]));
        f.insert(
            "unsubscribedMessageTypeIds".into(),
            if (x >> 48).is_multiple_of(10) {
                json!([51006])
            } else {
                json!([])
            },
        );
        f
    }

    pub fn event_range(&self, start: i64, end: i64) -> Range<u64> {
        index_range(self.base(), SPAN_MS, self.events, start, end)
    }

    /// Indices of user `u`'s generated events, newest first.
    pub fn user_event_indices(&self, u: u64) -> impl Iterator<Item = u64> + use<> {
        let (users, events) = (self.users, self.events);
        let count = if users == 0 || u >= users || u >= events {
            0
        } else {
            (events - 1 - u) / users + 1
        };
        (0..count).rev().map(move |k| u + k * users)
    }

    /// Generated event `j`: its export `dataTypeName` and its export row.
    pub fn event(&self, j: u64) -> (&'static str, Map<String, Value>) {
        let x = h(self.seed, K_EVENT, j);
        let at = spread(self.base(), SPAN_MS, self.events, j) + (x % 1000) as i64;
        // Event j belongs to user j mod users, so a user's events are found by stepping through
        // indices (`user_event_indices`) rather than scanning a million events.
        let user = (self.users > 0).then(|| j % self.users);
        let mut row = Map::new();
        row.insert("createdAt".into(), json!(fmt_export(at)));
        if let Some(u) = user {
            row.insert("email".into(), json!(self.user_email(u)));
            row.insert("userId".into(), json!(self.user_id(u)));
        }
        let r = (x >> 40) % 100;
        if self.campaigns == 0 || (r >= 92 && self.event_type.is_none()) {
            row.insert("eventName".into(), json!("articleRead"));
            row.insert(
                "dataFields".into(),
                json!({"articleId": (x >> 20) % 5000, "section": *pick(&["news", "opinion", "culture"], x >> 30)}),
            );
            return ("customEvent", row);
        }
        let ci = (x >> 16) % self.campaigns;
        let m = self.campaign_meta(ci);
        let kind: &'static str = self.event_type.unwrap_or(match (m.medium, r) {
            ("Email", 0..=39) => "emailSend",
            ("Email", 40..=69) => "emailOpen",
            ("Email", 70..=84) => "emailClick",
            ("Email", 85..=88) => "emailBounce",
            ("Email", _) => "emailUnSubscribe",
            ("Push", 0..=59) => "pushSend",
            ("Push", _) => "pushOpen",
            ("SMS", 0..=79) => "smsSend",
            ("SMS", _) => "smsClick",
            (_, 0..=49) => "inAppSend",
            (_, 50..=79) => "inAppOpen",
            _ => "inAppClick",
        });
        let channel = match m.medium {
            "Push" => 41003,
            "SMS" => 41004,
            "InApp" => 41006,
            _ if m.triggered => 41002,
            _ => 41001,
        };
        row.insert("campaignId".into(), json!(m.id));
        row.insert("templateId".into(), json!(self.template_id(ci)));
        row.insert("channelId".into(), json!(channel));
        row.insert(
            "messageTypeId".into(),
            json!(match channel {
                41003 => 51003,
                41004 => 51004,
                41006 => 51007,
                41002 => 51002,
                _ => 51001,
            }),
        );
        row.insert("contentId".into(), json!(1_000_000 + (x >> 24) % 900_000));
        row.insert(
            "messageId".into(),
            json!(format!("{:016x}{:016x}", mix(x), mix(x ^ 1))),
        );
        match kind {
            "emailOpen" | "emailClick" | "pushOpen" | "smsClick" | "inAppOpen" | "inAppClick" => {
                row.insert(
                    "ip".into(),
                    json!(format!("203.0.113.{}", (x >> 32) % 250 + 1)),
                );
                row.insert(
                    "userAgent".into(),
                    json!("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"),
                );
                if kind == "emailClick" || kind == "smsClick" {
                    row.insert(
                        "url".into(),
                        json!(format!(
                            "https://news.sandbox-publisher.example/a/{}",
                            (x >> 20) % 5000
                        )),
                    );
                    row.insert("hrefIndex".into(), json!((x >> 44) % 12));
                }
            }
            "emailBounce" => {
                row.insert("recipientState".into(), json!("HardBounce"));
                row.insert(
                    "bounceMessage".into(),
                    json!("550 5.1.1 The email account that you tried to reach does not exist"),
                );
            }
            "emailUnSubscribe" => {
                row.insert("unsubSource".into(), json!("EmailLink"));
                row.insert("channelIds".into(), json!([channel]));
            }
            _ => {}
        }
        (kind, row)
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen_(users: u64) -> Gen {
        Gen {
            seed: 7,
            anchor_ms: 1_767_225_600_000,
            campaigns: 50,
            templates: 60,
            lists: 6,
            users,
            events: 1000,
            event_type: None,
        }
    }

    #[test]
    fn one_event_type_makes_every_event_that_type() {
        let mixed = gen_(10);
        let kinds: std::collections::BTreeSet<_> = (0..1000).map(|j| mixed.event(j).0).collect();
        assert!(
            kinds.len() > 3 && kinds.contains("customEvent"),
            "{kinds:?}"
        );
        let one = Gen {
            event_type: Some("emailSend"),
            ..mixed.clone()
        };
        for j in 0..1000 {
            let (kind, row) = one.event(j);
            assert_eq!(kind, "emailSend", "event {j}");
            assert!(row.contains_key("messageId"), "event {j}: a campaign event");
            assert_eq!(row["createdAt"], mixed.event(j).1["createdAt"], "event {j}");
        }
    }

    #[test]
    fn index_range_matches_a_scan() {
        let g = gen_(997);
        let base = g.anchor_ms - SPAN_MS;
        for (s, e) in [
            (base - 10, base + 1),
            (base + 12345, base + 9_999_999_999),
            (base + SPAN_MS / 2, base + SPAN_MS / 2 + 1),
            (base + SPAN_MS, base + SPAN_MS + 5),
        ] {
            let scan: Vec<u64> = (0..g.users)
                .filter(|&i| {
                    let t = g.user_updated_ms(i);
                    t >= s && t < e
                })
                .collect();
            let r = g.user_range(s, e);
            assert_eq!(r.clone().collect::<Vec<_>>(), scan, "window {s}..{e}");
        }
    }

    #[test]
    fn emails_map_back_to_their_index() {
        let g = gen_(1_000_000);
        for i in [0, 1, 9, 10, 123_456, 999_999] {
            let e = g.user_email(i);
            assert_eq!(g.user_index_by_email(&e), Some(i));
            assert_eq!(g.user_index_by_id(&g.user_id(i)), Some(i));
        }
        assert_eq!(g.user_index_by_email("nobody1@example.com"), None);
        assert_eq!(g.user_index_by_id("usr9999999"), None);
    }

    #[test]
    fn generation_is_deterministic() {
        let g = gen_(10);
        assert_eq!(g.campaign(3), g.campaign(3));
        assert_eq!(g.event(5), g.event(5));
        let other = Gen {
            seed: 8,
            ..g.clone()
        };
        assert_ne!(g.user_email(3), other.user_email(3));
    }

    #[test]
    fn user_event_indices_are_exactly_that_users_events() {
        let g = gen_(7);
        let mine: Vec<u64> = g.user_event_indices(3).collect();
        let scan: Vec<u64> = (0..g.events)
            .rev()
            .filter(|&j| g.event(j).1["userId"] == g.user_id(3))
            .collect();
        assert_eq!(mine, scan);
        assert_eq!(g.user_event_indices(7).count(), 0);
    }

    #[test]
    fn parses_the_spec_datetime_forms() {
        let want = 1_618_418_942_000;
        assert_eq!(parse_datetime("2021-04-14 16:49:02"), Some(want));
        assert_eq!(parse_datetime("2021-04-14 16:49:02 +00:00"), Some(want));
        assert_eq!(parse_datetime("2021-04-14T16:49:02Z"), Some(want));
        assert_eq!(parse_datetime("2021-04-14 18:49:02 +0200"), Some(want));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(fmt_export(want), "2021-04-14 16:49:02 +00:00");
        assert_eq!(fmt_iso(want), "2021-04-14T16:49:02+00:00");
    }
}
