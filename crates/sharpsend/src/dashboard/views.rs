//! What the templates show: page structs (askama, autoescaped) and the view models built from
//! the API's JSON. Every string that came from a platform or a user reaches the page through
//! askama's HTML escaping.

use askama::Template;
use serde_json::Value;

/// A link in the top navigation. Pages added later (analytics) add an entry in [`nav`].
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

/// The main navigation, with `active` marking the current section.
pub fn nav(active: &str) -> Vec<NavItem> {
    [
        ("/", "Integrations"),
        ("/events", "Events"),
        ("/consent", "Consent"),
        ("/destinations", "Destinations"),
    ]
    .into_iter()
    .map(|(href, label)| NavItem {
        href,
        label,
        active: href == active,
    })
    .collect()
}

/// A one-line notice.
#[derive(Clone)]
pub struct Flash {
    /// `ok` or `fail`: the CSS class.
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "ok",
            text: text.into(),
        }
    }

    pub fn fail(text: impl Into<String>) -> Self {
        Self {
            kind: "fail",
            text: text.into(),
        }
    }
}

/// What every page's frame shows (base.html).
#[derive(Default)]
pub struct Chrome {
    pub title: String,
    pub signed_in: bool,
    pub publisher: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub flash: Option<Flash>,
}

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub heading: String,
    pub text: String,
}

pub struct Capability {
    pub name: String,
    pub supported: bool,
    pub note: Option<String>,
}

/// A time as the dashboard shows it: a readable date (`4 Dec 2026, 17:40 UTC`; the page's
/// script turns it into the reader's local time), the exact UTC time on hover, and the RFC 3339
/// value in `datetime`. A value that is not a time is shown as it came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    /// RFC 3339, for `<time datetime>` (empty when the value is not a time).
    pub iso: String,
    /// Readable, in UTC.
    pub text: String,
    /// The exact UTC time, to the second.
    pub exact: String,
}

impl Stamp {
    pub fn parse(raw: &str) -> Stamp {
        match chrono::DateTime::parse_from_rfc3339(raw) {
            Ok(t) => {
                let t = t.with_timezone(&chrono::Utc);
                Stamp {
                    iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    text: t.format("%-d %b %Y, %H:%M UTC").to_string(),
                    exact: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                }
            }
            Err(_) => Stamp {
                text: raw.to_owned(),
                ..Stamp::default()
            },
        }
    }
}

pub struct JobView {
    pub job_id: String,
    pub status: String,
    pub counts: Vec<(String, String)>,
    pub pages: i64,
    pub current_kind: Option<String>,
    pub created_at: Stamp,
    pub finished_at: Option<Stamp>,
    pub error: Option<String>,
}

impl JobView {
    pub fn from_json(j: &Value) -> Self {
        let text = |k: &str| j[k].as_str().map(str::to_owned);
        Self {
            job_id: text("jobId").unwrap_or_default(),
            status: text("status").unwrap_or_default(),
            counts: j["counts"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                .unwrap_or_default(),
            pages: j["pages"].as_i64().unwrap_or(0),
            current_kind: text("currentKind"),
            created_at: Stamp::parse(&text("createdAt").unwrap_or_default()),
            finished_at: text("finishedAt").map(|t| Stamp::parse(&t)),
            error: j["error"]["error"]
                .as_str()
                .map(|e| format!("{} ({})", e, j["error"]["code"].as_str().unwrap_or("ERROR"))),
        }
    }
}

/// One platform's card.
pub struct Card {
    pub platform: &'static str,
    pub name: String,
    pub auth: String,
    /// `not_connected`, `connected`, `reauth_required` or `error`.
    pub status: String,
    pub status_label: String,
    pub reason: Option<String>,
    pub connected: bool,
    pub region: Option<String>,
    pub credentials: Vec<(String, String)>,
    pub config: Vec<(String, String)>,
    pub connected_at: Stamp,
    /// When the OAuth access token expires (Keap OAuth).
    pub token_expires_at: Option<Stamp>,
    pub last_sync: Option<JobView>,
    pub webhook_url: String,
    pub setup: Vec<&'static str>,
    pub capabilities: Vec<Capability>,
    pub flash: Option<Flash>,
}

fn status_label(status: &str) -> &'static str {
    match status {
        "connected" => "Connected",
        "reauth_required" => "Reconnect needed",
        "error" => "Error",
        _ => "Not connected",
    }
}

/// A config value as one line of text.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(show).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

impl Card {
    /// `info`: the platform's entry of `GET /api/platforms`; `integration`: its integration,
    /// when connected.
    pub fn build(platform: &'static str, info: &Value, integration: Option<&Value>) -> Self {
        let capabilities = info["capabilities"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(name, s)| Capability {
                        name: name.replace('_', " "),
                        supported: s["supported"].as_bool().unwrap_or(false),
                        note: s["note"].as_str().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut card = Card {
            platform,
            name: info["name"].as_str().unwrap_or(platform).to_owned(),
            auth: info["auth"]
                .as_str()
                .map(|a| format!("Not connected. Authentication: {a}."))
                .unwrap_or_else(|| "Not connected.".into()),
            status: "not_connected".into(),
            status_label: status_label("").into(),
            reason: None,
            connected: false,
            region: None,
            credentials: vec![],
            config: vec![],
            connected_at: Stamp::default(),
            token_expires_at: None,
            last_sync: None,
            webhook_url: String::new(),
            setup: setup_steps(platform),
            capabilities,
            flash: None,
        };
        if let Some(i) = integration {
            let status = i["status"].as_str().unwrap_or("error").to_owned();
            card.status_label = status_label(&status).into();
            card.status = status;
            card.connected = true;
            card.reason = i["statusReason"].as_str().map(str::to_owned);
            card.region = i["region"].as_str().map(str::to_owned);
            card.credentials = i["credentials"]
                .as_object()
                .map(|m| {
                    m.iter()
                        // A time, shown as one below (`tokenExpiresAt`), not masked here.
                        .filter(|(k, _)| k.as_str() != crate::platforms::fields::EXPIRES_AT)
                        .map(|(k, v)| (k.clone(), show(v)))
                        .collect()
                })
                .unwrap_or_default();
            card.token_expires_at = i["tokenExpiresAt"].as_str().map(Stamp::parse);
            card.config = i["config"]
                .as_object()
                .map(|m| {
                    m.iter()
                        // Internal bookkeeping (registered hook ids) is not for the card.
                        .filter(|(k, _)| k.as_str() != "hooks")
                        .map(|(k, v)| (k.clone(), show(v)))
                        .collect()
                })
                .unwrap_or_default();
            card.connected_at = Stamp::parse(i["connectedAt"].as_str().unwrap_or_default());
            card.last_sync = i["lastSync"]
                .is_object()
                .then(|| JobView::from_json(&i["lastSync"]));
            card.webhook_url = i["webhookUrl"].as_str().unwrap_or_default().to_owned();
        }
        card
    }
}

/// Where to paste the webhook URL, per platform.
fn setup_steps(platform: &str) -> Vec<&'static str> {
    match platform {
        "iterable" => vec![
            "In Iterable open Integrations › System Webhooks and choose Create Webhook.",
            "Paste the webhook URL above as the endpoint; choose the events to send (email and SMS send, open, click, bounce, unsubscribe).",
            "Under Authentication choose Basic and paste the webhook secret SharpSend showed once when you connected (reconnect to get a new one); save and enable the webhook.",
        ],
        "customerio" => vec![
            "In Customer.io open Settings › Workspace Settings › Reporting Webhooks and add a webhook.",
            "Paste the webhook URL above and pick the message events to report.",
            "Copy the webhook's signing key and reconnect here with it in “Webhook signing key”, so SharpSend can verify each delivery.",
        ],
        "keap" => vec![
            "Nothing to do by hand: SharpSend registers Keap REST hooks at this URL when you connect.",
            "Keap confirms each hook with a handshake; hooks that fail to register are listed in the integration's config.",
        ],
        _ => vec![],
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub cards: Vec<Card>,
    pub picker_error: Option<String>,
}

/// One input of a connect form.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub secret: bool,
    pub required: bool,
    pub value: String,
    pub options: Vec<&'static str>,
    pub help: Option<&'static str>,
    pub error: Option<String>,
}

impl Field {
    /// Whether option `o` of a select is the chosen one.
    pub fn selected(&self, o: &str) -> bool {
        self.value == o
    }
}

/// A test-connection result.
pub struct TestResult {
    pub ok: bool,
    pub text: String,
    pub facts: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "connect.html")]
pub struct ConnectPage {
    pub chrome: Chrome,
    pub platform: &'static str,
    pub name: &'static str,
    pub fields: Vec<Field>,
    pub test: Option<TestResult>,
    pub form_error: Option<String>,
}

#[derive(Template)]
#[template(path = "disconnect.html")]
pub struct DisconnectPage {
    pub chrome: Chrome,
    pub platform: &'static str,
    pub name: &'static str,
}

/// One row of a records table; campaigns link to their metrics page.
pub struct RecordRow {
    pub cells: Vec<String>,
    pub href: Option<String>,
}

/// A page of synced records.
pub struct RecordTable {
    pub key: &'static str,
    pub title: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<RecordRow>,
    pub error: Option<String>,
    pub paged: bool,
    pub first_href: String,
    pub next_href: Option<String>,
}

#[derive(Template)]
#[template(path = "sync.html")]
pub struct SyncPage {
    pub chrome: Chrome,
    pub platform: &'static str,
    pub name: &'static str,
    /// The platform's sync kinds, offered as checkboxes (none ticked: all of them).
    pub kinds: Vec<String>,
    /// Opt-in kinds (`metrics`): offered too, but only run when ticked.
    pub optional_kinds: Vec<String>,
    pub current: Option<JobView>,
    pub jobs: Vec<JobView>,
    pub tables: Vec<RecordTable>,
    pub limits: LimitsPanel,
}

pub struct EventRow {
    pub received_at: Stamp,
    pub platform: String,
    pub kind: String,
    pub email: String,
    pub campaign: String,
}

#[derive(Template)]
#[template(path = "events.html")]
pub struct EventsPage {
    pub chrome: Chrome,
    pub platforms: Vec<&'static str>,
    pub platform: String,
    pub kind: String,
    pub events: Vec<EventRow>,
    pub error: Option<String>,
    pub next_href: Option<String>,
}

/// After an Iterable connect: the webhook secret, shown this once.
#[derive(Template)]
#[template(path = "secret.html")]
pub struct SecretPage {
    pub chrome: Chrome,
    pub platform: &'static str,
    pub name: &'static str,
    pub secret: String,
    pub webhook_url: String,
}

impl EventsPage {
    /// Whether `p` is the platform filtered on.
    pub fn is_platform(&self, p: &str) -> bool {
        self.platform == p
    }
}

/// One endpoint class of the limits panel (`GET …/{platform}/limits`).
pub struct LimitRow {
    pub class: String,
    /// "10 per 60 s, burst 10", or "none" for a class only the platform's 429s limit.
    pub budget: String,
    /// "3 in 60 s".
    pub used: String,
    pub rate_limited: String,
    pub refused: String,
    /// "now", or the RFC 3339 time the next request may go without waiting.
    pub next_free: String,
}

impl LimitRow {
    pub fn from_json(c: &Value, now: chrono::DateTime<chrono::Utc>) -> Self {
        let num = |v: &Value| match v.as_f64() {
            Some(f) if f.fract() == 0.0 => format!("{f:.0}"),
            Some(f) => format!("{f}"),
            None => "—".to_owned(),
        };
        let budget = &c["budget"];
        let next_free = match c["nextFreeAt"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            Some(t) if t.with_timezone(&chrono::Utc) <= now => "now".to_owned(),
            Some(t) => t
                .with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
            None => "—".to_owned(),
        };
        Self {
            class: c["class"].as_str().unwrap_or_default().to_owned(),
            budget: if budget.is_object() {
                format!(
                    "{} per {} s, burst {}",
                    num(&budget["rate"]),
                    num(&budget["perSeconds"]),
                    num(&budget["burst"])
                )
            } else {
                "none (platform 429s only)".to_owned()
            },
            used: format!("{} in {} s", num(&c["used"]), num(&c["windowSeconds"])),
            rate_limited: num(&c["rateLimitedLastHour"]),
            refused: num(&c["refusedLastHour"]),
            next_free,
        }
    }
}

/// The limits panel of an integration.
pub struct LimitsPanel {
    pub rows: Vec<LimitRow>,
    /// The figures are every replica's (the API's `scope` is `shared`).
    pub shared: bool,
    pub error: Option<String>,
}

/// One metric of a campaign: its total and where it came from.
pub struct MetricRow {
    pub key: &'static str,
    pub total: u64,
    pub source: String,
    pub series_source: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
pub struct CampaignPage {
    pub chrome: Chrome,
    pub platform: &'static str,
    pub name: &'static str,
    pub campaign_id: String,
    pub campaign_name: String,
    /// This page's path (the range form submits to it).
    pub action: String,
    /// The form's values, as entered.
    pub from: String,
    pub to: String,
    pub interval: String,
    /// The range the API answered for (RFC 3339), when it answered.
    pub range: Option<(Stamp, Stamp)>,
    pub error: Option<String>,
    pub error_field: Option<String>,
    /// Complete SVG documents from `analytics::chart` (escaped there; no script, no style).
    pub line_svg: Option<String>,
    pub bar_svg: Option<String>,
    pub metrics: Vec<MetricRow>,
    /// Metric keys no source reports for this platform.
    pub absent: Vec<&'static str>,
    /// `false` when the integration has received no webhook event: the page says why the
    /// webhook-counted figures are missing and how to set webhooks up.
    pub webhooks_received: bool,
}

impl CampaignPage {
    pub fn is_interval(&self, i: &str) -> bool {
        self.interval == i
    }

    pub fn field_error(&self, f: &str) -> bool {
        self.error_field.as_deref() == Some(f)
    }
}

/// Where one platform stands with a suppression or an erasure (`PlatformProgress`).
pub struct ProgressView {
    pub platform: String,
    /// `pending`, `done`, `failed` or `skipped`: also the pill's CSS class.
    pub status: String,
    pub at: Stamp,
    /// Why it failed or was skipped, or the last error of a retried `pending` one.
    pub error: Option<String>,
}

impl ProgressView {
    pub fn list(v: &Value) -> Vec<Self> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| Self {
                        platform: p["platform"].as_str().unwrap_or_default().to_owned(),
                        status: p["status"].as_str().unwrap_or_default().to_owned(),
                        at: Stamp::parse(p["at"].as_str().unwrap_or_default()),
                        error: p["error"].as_str().map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One ledger entry (`SuppressionView`).
pub struct SuppressionRow {
    pub email: String,
    pub reason: String,
    /// Where it came from, as one line: "webhook from iterable (event evt_1)", "API (key_…)".
    pub source: String,
    pub created_at: Stamp,
    pub platforms: Vec<ProgressView>,
}

impl SuppressionRow {
    pub fn from_json(s: &Value) -> Self {
        let src = &s["source"];
        let text = |k: &str| src[k].as_str().unwrap_or_default();
        let mut source = match text("kind") {
            "webhook" => format!("webhook from {}", text("platform")),
            "sync" => format!("sync of {}", text("platform")),
            "api" => "API".to_owned(),
            other => other.to_owned(),
        };
        if let Some(e) = src["eventId"].as_str() {
            source.push_str(&format!(" (event {e})"));
        }
        if let Some(p) = src["principal"].as_str() {
            source.push_str(&format!(" ({p})"));
        }
        Self {
            email: s["email"].as_str().unwrap_or_default().to_owned(),
            reason: s["reason"].as_str().unwrap_or_default().to_owned(),
            source,
            created_at: Stamp::parse(s["createdAt"].as_str().unwrap_or_default()),
            platforms: ProgressView::list(&s["platforms"]),
        }
    }
}

/// One reason of the propagate setting, as a checkbox.
pub struct ReasonBox {
    pub reason: &'static str,
    pub checked: bool,
}

/// One audit log entry.
pub struct AuditRow {
    pub at: Stamp,
    pub principal: String,
    pub action: String,
    /// The entry's `detail` as compact JSON text (escaped by the template).
    pub detail: String,
}

/// The Consent page: the ledger, the propagate setting, the add and erase forms, the audit log.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub chrome: Chrome,
    /// The ledger's filters, as entered.
    pub email: String,
    pub reason: String,
    pub reasons: Vec<&'static str>,
    pub rows: Vec<SuppressionRow>,
    /// The filtered address was erased (the API's `{"erased": true}` entry).
    pub erased_match: bool,
    pub ledger_error: Option<String>,
    pub ledger_error_field: Option<String>,
    pub ledger_paged: bool,
    pub ledger_first_href: String,
    pub ledger_next_href: Option<String>,
    pub settings: Vec<ReasonBox>,
    pub settings_error: Option<String>,
    /// The add form's values and its error, next to `add_error_field` when the API named one.
    pub add_email: String,
    pub add_reason: String,
    pub add_error: Option<String>,
    pub add_error_field: Option<String>,
    pub erase_email: String,
    pub erase_error: Option<String>,
    pub audit: Vec<AuditRow>,
    pub audit_error: Option<String>,
    pub audit_paged: bool,
    pub audit_first_href: String,
    pub audit_next_href: Option<String>,
}

impl ConsentPage {
    pub fn is_reason(&self, r: &str) -> bool {
        self.reason == r
    }

    pub fn is_add_reason(&self, r: &str) -> bool {
        self.add_reason == r
    }

    pub fn ledger_error_on(&self, f: &str) -> bool {
        self.ledger_error_field.as_deref() == Some(f)
    }

    pub fn add_error_on(&self, f: &str) -> bool {
        self.add_error_field.as_deref() == Some(f)
    }
}

/// The erase form's second step: the address typed again before anything is erased.
#[derive(Template)]
#[template(path = "erase_confirm.html")]
pub struct EraseConfirmPage {
    pub chrome: Chrome,
    pub email: String,
    pub error: Option<String>,
}

/// One erasure request and where each platform stands (`GET …/erasures/{id}`).
#[derive(Template)]
#[template(path = "erasure.html")]
pub struct ErasurePage {
    pub chrome: Chrome,
    pub erasure_id: String,
    pub status: String,
    pub created_at: Stamp,
    pub platforms: Vec<ProgressView>,
    pub error: Option<String>,
}

/// One destination in the Destinations page's table.
pub struct DestinationRow {
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// The filters as shown: `all` when empty.
    pub event_types: String,
    pub platforms: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Stamp,
}

/// A platform checkbox of the add form.
pub struct PlatformBox {
    pub platform: &'static str,
    pub name: &'static str,
    pub checked: bool,
}

/// The Destinations page: the publisher's destinations and the form to add one.
#[derive(Template)]
#[template(path = "destinations.html")]
pub struct DestinationsPage {
    pub chrome: Chrome,
    pub rows: Vec<DestinationRow>,
    pub list_error: Option<String>,
    /// The add form's values, as entered, and its error.
    pub add_url: String,
    pub add_event_types: String,
    pub add_description: String,
    pub platforms: Vec<PlatformBox>,
    pub add_error: Option<String>,
}

/// One delivery attempt of a message.
pub struct AttemptRow {
    pub at: Stamp,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The first 1 KiB of the answer, rendered as text.
    pub response: Option<String>,
    pub error: Option<String>,
}

/// One message of a destination, with its attempts (oldest first).
pub struct MessageRow {
    pub id: String,
    pub event_type: String,
    pub status: &'static str,
    pub created_at: Stamp,
    pub next_attempt_at: Option<Stamp>,
    pub attempts: Vec<AttemptRow>,
}

/// One destination: its settings, actions and messages.
#[derive(Template)]
#[template(path = "destination.html")]
pub struct DestinationPage {
    pub chrome: Chrome,
    pub destination: DestinationRow,
    /// Until when the rotated-out secret still signs.
    pub previous_secret_until: Option<Stamp>,
    /// The status filter, as chosen (`""`: all).
    pub status: String,
    pub statuses: [&'static str; 3],
    pub messages: Vec<MessageRow>,
    pub messages_error: Option<String>,
    pub paged: bool,
    pub first_href: String,
    pub next_href: Option<String>,
    /// The replay form's value, as entered, and the error of the last action.
    pub replay_since: String,
    pub action_error: Option<String>,
}

impl DestinationPage {
    pub fn is_status(&self, s: &str) -> bool {
        self.status == s
    }
}

/// A destination's signing secret, shown once: after creating it or rotating it.
#[derive(Template)]
#[template(path = "destination_secret.html")]
pub struct DestinationSecretPage {
    pub chrome: Chrome,
    pub id: String,
    pub url: String,
    pub secret: String,
    /// After a rotation: until when the previous secret still signs.
    pub previous_until: Option<Stamp>,
}

/// Deleting a destination, second step: its id typed again.
#[derive(Template)]
#[template(path = "destination_delete.html")]
pub struct DestinationDeletePage {
    pub chrome: Chrome,
    pub id: String,
    pub url: String,
    pub error: Option<String>,
}

#[cfg(test)]
mod stamp_tests {
    use super::Stamp;

    #[test]
    fn a_time_reads_as_a_date_with_the_exact_time_kept() {
        let s = Stamp::parse("2026-12-04T17:40:05.123456789+01:00");
        assert_eq!(s.iso, "2026-12-04T16:40:05Z");
        assert_eq!(s.text, "4 Dec 2026, 16:40 UTC");
        assert_eq!(s.exact, "2026-12-04 16:40:05 UTC");
        let other = Stamp::parse("not a time");
        assert_eq!(
            (other.iso.as_str(), other.text.as_str()),
            ("", "not a time")
        );
    }
}
