//! Deterministic seeded data: record `i` is a pure function of `(seed, workspace, i)`, so large
//! data sets (people, segment members) are generated on demand and never stored.

use serde_json::{Value, json};
use sim_core::{mix, pick};

use crate::config::SEED_EPOCH;

/// Sizes of the seeded data sets of each workspace.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub seed: u64,
    pub people: u64,
    pub campaigns: u64,
    pub segments: u64,
    pub broadcasts: u64,
    pub newsletters: u64,
    pub transactional: u64,
}

/// First id of broadcasts: they share the `/v1/campaigns/{id}` id space with campaigns.
pub const BROADCAST_ID_BASE: u64 = 1000;
/// First id of newsletters.
pub const NEWSLETTER_ID_BASE: u64 = 5000;

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Linus",
    "Frances", "John", "Hedy", "Tim", "Karen", "Dennis",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Torvalds",
    "Allen",
    "McCarthy",
    "Lamarr",
    "Berners-Lee",
    "Jones",
    "Ritchie",
];
const PLANS: &[&str] = &["free", "free", "premium", "founding"];
const TAGS: &[&str] = &[
    "newsletter",
    "onboarding",
    "retention",
    "promo",
    "weekly",
    "vip",
];

/// A workspace's seeded data generator.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub sizes: Sizes,
    /// Distinguishes the US and EU workspaces' data.
    salt: u64,
}

/// One seeded person.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedPerson {
    pub index: u64,
    pub cio_id: String,
    pub id: Option<String>,
    pub email: String,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub plan: &'static str,
    pub created_at: i64,
}

fn h(seed: u64, salt: u64, kind: u64, i: u64) -> u64 {
    mix(seed ^ mix(salt ^ mix(kind.wrapping_mul(0x1000_0000_0000) ^ i)))
}

fn small(hash: u64, modulo: u64) -> u64 {
    hash % modulo.max(1)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Seeded {
    pub fn new(sizes: Sizes, salt: u64) -> Self {
        Self { sizes, salt }
    }

    fn h(&self, kind: u64, i: u64) -> u64 {
        h(self.sizes.seed, self.salt, kind, i)
    }

    /// A deterministic hash for generated figures (`metrics`).
    pub fn metric_hash(&self, kind: u64, i: u64) -> u64 {
        self.h(0x6d65_7472 ^ kind, i)
    }

    /// The 4-hex-digit prefix of this workspace's seeded `cio_id`s.
    fn cio_prefix(&self) -> String {
        format!("{:04x}", self.h(0, 0) & 0xffff)
    }

    // ------------------------------------------------------------ people

    pub fn person(&self, i: u64) -> Option<SeedPerson> {
        if i >= self.sizes.people {
            return None;
        }
        let x = self.h(1, i);
        let first = *pick(FIRST, x);
        let last = *pick(LAST, x >> 8);
        // Every 17th person was imported by email only and has no id (membership `ids` has "").
        let id = (i % 17 != 16).then(|| format!("{}", 100_000 + i));
        Some(SeedPerson {
            index: i,
            cio_id: format!("{}{:08x}", self.cio_prefix(), i),
            id,
            email: format!(
                "{}.{}{}@example.com",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                i
            ),
            first_name: first,
            last_name: last,
            plan: pick::<&str>(PLANS, x >> 16),
            created_at: SEED_EPOCH - to_i64(small(x >> 24, 3 * 365 * 86_400)),
        })
    }

    /// The seeded person with this `cio_id`, `id` or email.
    pub fn find_person(&self, kind: IdKind, value: &str) -> Option<SeedPerson> {
        let index = match kind {
            IdKind::CioId => {
                let rest = value.strip_prefix(&self.cio_prefix())?;
                if rest.len() != 8 {
                    return None;
                }
                u64::from_str_radix(rest, 16).ok()?
            }
            IdKind::Id => value.parse::<u64>().ok()?.checked_sub(100_000)?,
            IdKind::Email => {
                let local = value.split('@').next()?;
                let digits: String = local
                    .chars()
                    .rev()
                    .take_while(char::is_ascii_digit)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                digits.parse::<u64>().ok()?
            }
        };
        let p = self.person(index)?;
        let matches = match kind {
            IdKind::CioId => p.cio_id == value,
            IdKind::Id => p.id.as_deref() == Some(value),
            IdKind::Email => p.email.eq_ignore_ascii_case(value),
        };
        matches.then_some(p)
    }

    // ------------------------------------------------------------ segments

    /// Segment ids are 1..=segments.
    pub fn segment_count(&self) -> u64 {
        self.sizes.segments
    }

    pub fn segment_exists(&self, id: u64) -> bool {
        id >= 1 && id <= self.sizes.segments
    }

    /// Whether segment `id` is a manual segment (Track add/remove works only on those).
    pub fn segment_is_manual(&self, id: u64) -> bool {
        id % 4 == 3
    }

    /// How many seeded members segment `id` has, and the person index of the first.
    pub fn segment_span(&self, id: u64) -> (u64, u64) {
        let people = self.sizes.people;
        if id == 1 || people == 0 {
            return (people, 0);
        }
        let x = self.h(2, id);
        // 5% .. 65% of everyone, a contiguous (wrapping) block of people.
        let pct = 5 + small(x, 61);
        let count = (people * pct / 100).max(1).min(people);
        (count, small(x >> 20, people))
    }

    /// The person index of seeded member `j` of segment `id`.
    pub fn segment_member(&self, id: u64, j: u64) -> u64 {
        let (_, offset) = self.segment_span(id);
        (offset + j) % self.sizes.people.max(1)
    }

    pub fn segment(&self, id: u64, member_count: u64) -> Value {
        const NAMES: &[&str] = &[
            "All readers",
            "Paid subscribers",
            "Opened in the last 30 days",
            "Imported: conference leads",
            "Weekly digest subscribers",
            "Churn risk",
            "Never opened",
            "Manual: VIP list",
            "Trial ending this week",
            "Clicked a sponsor link",
        ];
        let x = self.h(3, id);
        let idx = usize::try_from((id - 1) % NAMES.len() as u64).unwrap_or(0);
        let name = if id as usize <= NAMES.len() {
            NAMES[idx].to_owned()
        } else {
            format!("{} #{id}", NAMES[idx])
        };
        let manual = self.segment_is_manual(id);
        let created = SEED_EPOCH - to_i64(small(x, 400 * 86_400)) - 86_400;
        let updated = created + to_i64(small(x >> 12, 86_400 * 30));
        // One dynamic segment is still building, as real workspaces often show.
        let (state, progress) = if !manual && id.is_multiple_of(5) {
            ("build", json!(small(x >> 30, 99)))
        } else if manual {
            ("events", Value::Null)
        } else {
            ("finished", Value::Null)
        };
        let tags = if x.is_multiple_of(3) {
            Value::Null
        } else {
            json!([pick(TAGS, x >> 5)])
        };
        let _ = member_count;
        json!({
            "id": id,
            "deduplicate_id": format!("{id}:{updated}"),
            "name": name,
            "description": format!("{name} (sandbox segment)"),
            "state": state,
            "progress": progress,
            "type": if manual { "manual" } else { "dynamic" },
            "tags": tags,
            "created_at": created,
            "updated_at": updated,
        })
    }

    // ------------------------------------------------------------ campaigns

    pub fn campaign_exists(&self, id: u64) -> bool {
        id >= 1 && id <= self.sizes.campaigns
    }

    pub fn campaign(&self, id: u64) -> Value {
        const NAMES: &[&str] = &[
            "Welcome series",
            "Trial nurture",
            "Win-back",
            "Renewal reminder",
            "Birthday perk",
            "Referral ask",
            "Sponsor follow-up",
            "Onboarding survey",
        ];
        const TYPES: &[&str] = &["segment", "event", "segment", "date", "form", "event"];
        const STATES: &[&str] = &["running", "running", "draft", "stopped", "running"];
        const ACTIONS: &[&str] = &["email", "email", "push", "sms", "webhook", "in_app"];
        let x = self.h(4, id);
        let base = NAMES[usize::try_from((id - 1) % NAMES.len() as u64).unwrap_or(0)];
        let name = if id as usize <= NAMES.len() {
            base.to_owned()
        } else {
            format!("{base} {id}")
        };
        let kind = *pick(TYPES, x);
        let state = *pick(STATES, x >> 7);
        let created = SEED_EPOCH - to_i64(small(x >> 11, 500 * 86_400)) - 86_400;
        let updated = created + to_i64(small(x >> 17, 20 * 86_400));
        let actions: Vec<Value> = (0..1 + small(x >> 23, 3))
            .map(|k| json!({"type": pick(ACTIONS, x >> (29 + k)), "id": id * 100 + k + 1}))
            .collect();
        let mut c = json!({
            "id": id,
            "deduplicate_id": format!("{id}:{updated}"),
            "name": name,
            "description": format!("{name} (sandbox campaign)"),
            "type": kind,
            "created": created,
            "updated": updated,
            "active": state == "running",
            "state": state,
            "actions": actions,
            "first_started": if state == "draft" { 0 } else { created + 3600 },
            "tags": [pick(TAGS, x >> 37)],
            "filter_segment_ids": [],
        });
        let segs = self.sizes.segments.max(1);
        match kind {
            "segment" => {
                c["trigger_segment_ids"] = json!([1 + small(x >> 41, segs)]);
            }
            "event" => {
                c["event_name"] = json!(pick(&["signed_up", "trial_started", "purchase"], x >> 43));
            }
            "date" => {
                c["frequency"] = json!("yearly");
                c["date_attribute"] = json!("created_at");
                c["timezone"] = json!("UTC");
                c["use_customer_timezone"] = json!(false);
                c["start_hour"] = json!(9);
                c["start_minutes"] = json!(0);
            }
            _ => {}
        }
        c
    }

    // ------------------------------------------------------------ broadcasts

    /// Broadcast ids are `BROADCAST_ID_BASE + 1 ..= BROADCAST_ID_BASE + broadcasts`.
    pub fn broadcast_exists(&self, id: u64) -> bool {
        id > BROADCAST_ID_BASE && id <= BROADCAST_ID_BASE + self.sizes.broadcasts
    }

    pub fn broadcast_ids(&self) -> impl Iterator<Item = u64> {
        (1..=self.sizes.broadcasts).map(|k| BROADCAST_ID_BASE + k)
    }

    pub fn broadcast(&self, id: u64) -> Value {
        const NAMES: &[&str] = &[
            "Breaking news alert",
            "Issue published",
            "Sponsor spotlight",
            "Event reminder",
            "Price change notice",
        ];
        let k = id - BROADCAST_ID_BASE;
        let x = self.h(5, id);
        let name = NAMES[usize::try_from((k - 1) % NAMES.len() as u64).unwrap_or(0)];
        // The last broadcast is a draft (cannot be triggered).
        let draft = k == self.sizes.broadcasts && k > 1;
        let created = SEED_EPOCH - to_i64(small(x, 300 * 86_400)) - 86_400;
        let updated = created + to_i64(small(x >> 13, 10 * 86_400));
        json!({
            "id": id,
            "deduplicate_id": format!("{id}:{updated}"),
            "name": name,
            "type": "triggered_broadcast",
            "created": created,
            "updated": updated,
            "active": !draft,
            "state": if draft { "draft" } else { "running" },
            "actions": [{"id": id * 10 + 1, "type": pick(&["email", "push", "sms"], x >> 19)}],
            "first_started": if draft { 0 } else { created + 600 },
            "tags": [pick(TAGS, x >> 23)],
            "created_by": "sandbox@example.com",
        })
    }

    pub fn broadcast_is_draft(&self, id: u64) -> bool {
        let k = id - BROADCAST_ID_BASE;
        k == self.sizes.broadcasts && k > 1
    }

    // ------------------------------------------------------------ newsletters

    pub fn newsletter_exists(&self, id: u64) -> bool {
        id > NEWSLETTER_ID_BASE && id <= NEWSLETTER_ID_BASE + self.sizes.newsletters
    }

    /// Newsletter `k` (1-based) was created before newsletter `k + 1`.
    pub fn newsletter(&self, id: u64) -> Value {
        let k = id - NEWSLETTER_ID_BASE;
        let x = self.h(6, id);
        let n = self.sizes.newsletters;
        // One issue a week, newest last; the newest one is a draft.
        let created = SEED_EPOCH - to_i64((n + 1 - k) * 7 * 86_400) + to_i64(small(x, 3600));
        let updated = created + to_i64(small(x >> 11, 86_400));
        let segs = self.sizes.segments.max(1);
        let mut v = json!({
            "id": id,
            "deduplicate_id": format!("{id}:{updated}"),
            "type": if k.is_multiple_of(9) { "push" } else { "email" },
            "content_ids": [id * 10 + 1],
            "name": format!("Weekly Digest #{k}"),
            "created": created,
            "updated": updated,
            "recipient_segment_ids": [1 + small(x >> 17, segs)],
            "tags": [pick(TAGS, x >> 23)],
            "subscription_topic_id": 1 + small(x >> 29, 3),
        });
        if k != n {
            v["sent_at"] = json!(updated + 3600);
        }
        v
    }

    // ------------------------------------------------------------ transactional messages

    pub fn transactional_exists(&self, id: u64) -> bool {
        id >= 1 && id <= self.sizes.transactional
    }

    /// The channel (`email`, `sms`, `push`, `in_app`) and trigger name of transactional message `id`.
    pub fn transactional_kind(&self, id: u64) -> (&'static str, String) {
        const KINDS: &[(&str, &str)] = &[
            ("email", "password_reset"),
            ("email", "welcome"),
            ("email", "receipt"),
            ("sms", "login_code"),
            ("push", "breaking_news"),
            ("in_app", "renewal_prompt"),
        ];
        let (channel, name) = KINDS[usize::try_from((id - 1) % KINDS.len() as u64).unwrap_or(0)];
        if id as usize <= KINDS.len() {
            (channel, name.to_owned())
        } else {
            (channel, format!("{name}_{id}"))
        }
    }

    pub fn transactional(&self, id: u64) -> Value {
        let x = self.h(7, id);
        let (_, name) = self.transactional_kind(id);
        let created = SEED_EPOCH - to_i64(small(x, 600 * 86_400)) - 86_400;
        json!({
            "id": id,
            "name": name,
            "send_to_unsubscribed": true,
            "link_tracking": true,
            "open_tracking": true,
            "hide_message_body": false,
            "queue_drafts": false,
            "created_at": created,
            "updated_at": created + to_i64(small(x >> 9, 86_400)),
        })
    }

    /// The transactional message a `transactional_message_id` names: an integer id, a string of
    /// one, or a trigger name (case-insensitive).
    pub fn resolve_transactional(&self, v: &Value) -> Option<u64> {
        match v {
            Value::Number(n) => n.as_u64().filter(|id| self.transactional_exists(*id)),
            Value::String(s) => {
                if let Ok(id) = s.parse::<u64>() {
                    return self.transactional_exists(id).then_some(id);
                }
                (1..=self.sizes.transactional)
                    .find(|id| self.transactional_kind(*id).1.eq_ignore_ascii_case(s))
            }
            _ => None,
        }
    }
}

/// Which identifier a value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdKind {
    Id,
    Email,
    CioId,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Id => "id",
            IdKind::Email => "email",
            IdKind::CioId => "cio_id",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Seeded {
        Seeded::new(
            Sizes {
                seed: 7,
                people: 1000,
                campaigns: 10,
                segments: 10,
                broadcasts: 4,
                newsletters: 30,
                transactional: 6,
            },
            1,
        )
    }

    #[test]
    fn people_round_trip_through_every_identifier() {
        let s = seeded();
        for i in [0, 1, 16, 33, 999] {
            let p = s.person(i).unwrap();
            assert_eq!(s.find_person(IdKind::CioId, &p.cio_id), Some(p.clone()));
            assert_eq!(s.find_person(IdKind::Email, &p.email), Some(p.clone()));
            match &p.id {
                Some(id) => assert_eq!(s.find_person(IdKind::Id, id), Some(p.clone())),
                None => assert_eq!(i % 17, 16),
            }
        }
        assert!(s.person(1000).is_none());
        assert!(s.find_person(IdKind::Id, "101000").is_none());
        assert!(s.find_person(IdKind::Email, "nobody@example.com").is_none());
    }

    #[test]
    fn data_is_deterministic_per_seed_and_workspace() {
        let a = seeded();
        let b = seeded();
        assert_eq!(a.campaign(3), b.campaign(3));
        assert_eq!(a.person(5), b.person(5));
        let other = Seeded::new(a.sizes.clone(), 2);
        assert_ne!(a.person(5).unwrap().cio_id, other.person(5).unwrap().cio_id);
    }

    #[test]
    fn transactional_ids_resolve_by_number_string_and_trigger_name() {
        let s = seeded();
        assert_eq!(s.resolve_transactional(&json!(2)), Some(2));
        assert_eq!(s.resolve_transactional(&json!("2")), Some(2));
        assert_eq!(s.resolve_transactional(&json!("PASSWORD_RESET")), Some(1));
        assert_eq!(s.resolve_transactional(&json!(99)), None);
        assert_eq!(s.resolve_transactional(&json!("nope")), None);
    }

    #[test]
    fn segment_one_holds_everyone() {
        let s = seeded();
        assert_eq!(s.segment_span(1), (1000, 0));
        let (n, _) = s.segment_span(2);
        assert!((50..=650).contains(&n));
    }
}
