//! One workspace's people, events, segment edits, triggers and sends: the seeded data plus what
//! was written through Track / CDP / App, bounded in memory.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::{Map, Value, json};

use crate::{
    config::{MAX_SEGMENT_ADDITIONS, MAX_STORED_EVENTS, MAX_STORED_PEOPLE, MAX_STORED_SENDS},
    data::{IdKind, SeedPerson, Seeded},
};

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A person as the workspace knows them.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub cio_id: String,
    pub id: Option<String>,
    pub email: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub unsubscribed: bool,
    pub devices: BTreeMap<String, Value>,
    pub seed_index: Option<u64>,
}

impl Person {
    fn from_seed(p: &SeedPerson) -> Self {
        let mut attributes = Map::new();
        attributes.insert("first_name".into(), json!(p.first_name));
        attributes.insert("last_name".into(), json!(p.last_name));
        attributes.insert("plan".into(), json!(p.plan));
        Self {
            cio_id: p.cio_id.clone(),
            id: p.id.clone(),
            email: Some(p.email.clone()),
            attributes,
            created_at: p.created_at,
            updated_at: p.created_at,
            unsubscribed: false,
            devices: BTreeMap::new(),
            seed_index: Some(p.index),
        }
    }

    /// `{"email", "id", "cio_id"}` as the App API lists people.
    pub fn identifiers(&self) -> Value {
        json!({"email": self.email, "id": self.id, "cio_id": self.cio_id})
    }

    /// The customer object of `GET /v1/customers/{id}/attributes` (and the control reads).
    pub fn to_json(&self) -> Value {
        let mut attrs = self.attributes.clone();
        attrs.insert("cio_id".into(), json!(self.cio_id));
        if let Some(id) = &self.id {
            attrs.insert("id".into(), json!(id));
        }
        if let Some(email) = &self.email {
            attrs.insert("email".into(), json!(email));
        }
        attrs.insert("created_at".into(), json!(self.created_at.to_string()));
        json!({
            "id": self.id,
            "email": self.email,
            "cio_id": self.cio_id,
            "identifiers": self.identifiers(),
            "attributes": attrs,
            "timestamps": {"created_at": self.created_at, "updated_at": self.updated_at},
            "unsubscribed": self.unsubscribed,
            "devices": self.devices.values().cloned().collect::<Vec<_>>(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// How a Track path `{identifier}` names a person: `cio_<id>` is a cio_id, a value with `@` is an
/// email, anything else (phone numbers too) is an id [TS track_customer_id].
pub fn classify(identifier: &str) -> (IdKind, String) {
    if let Some(rest) = identifier.strip_prefix("cio_") {
        (IdKind::CioId, rest.to_owned())
    } else if identifier.contains('@') {
        (IdKind::Email, identifier.to_owned())
    } else {
        (IdKind::Id, identifier.to_owned())
    }
}

/// One workspace's mutable state over its seeded data.
#[derive(Debug)]
pub struct Store {
    pub seeded: Seeded,
    people: HashMap<String, Person>,
    by_id: HashMap<String, String>,
    by_email: HashMap<String, String>,
    order: VecDeque<String>,
    /// Seeded people that were written (now in `people`) or deleted.
    touched: HashSet<u64>,
    events: VecDeque<Value>,
    seg_added: HashMap<u64, Vec<String>>,
    seg_removed: HashMap<u64, HashSet<String>>,
    /// People created by writes (not seeded), in creation order: they join segment 1 ("All
    /// readers") after the seeded people. May hold ids since deleted; reads skip those.
    new_people: Vec<String>,
    pub triggers: Vec<Value>,
    sends: VecDeque<Value>,
    next_cio: u64,
    /// Identifier sets blocked by a person suppress (`{id, email}` of the suppressed person):
    /// later identify calls naming either are ignored until `unsuppress` frees them [TS].
    suppressions: Vec<Suppression>,
    /// Lower-cased emails and ids of people deleted or suppressed through the API (control reads).
    pub deleted: HashSet<String>,
    /// People whose `unsubscribed` attribute just became true, for the `customer`/`unsubscribed`
    /// reporting webhook; drained by the handler once the store is released.
    pub newly_unsubscribed: Vec<Person>,
}

/// One suppressed person's identifiers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suppression {
    pub id: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
}

impl Suppression {
    fn names(&self, kind: IdKind, value: &str) -> bool {
        match kind {
            IdKind::Id => self.id.as_deref() == Some(value),
            IdKind::Email => self.email.as_deref() == Some(value.to_ascii_lowercase().as_str()),
            IdKind::CioId => false,
        }
    }
}

/// Customer.io reads `unsubscribed` as true from `true` (any case, also as a string), `1` and
/// `"1"`; anything else is false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => s.trim().eq_ignore_ascii_case("true") || s.trim() == "1",
        _ => false,
    }
}

impl Store {
    pub fn new(seeded: Seeded) -> Self {
        Self {
            seeded,
            people: HashMap::new(),
            by_id: HashMap::new(),
            by_email: HashMap::new(),
            order: VecDeque::new(),
            touched: HashSet::new(),
            events: VecDeque::new(),
            seg_added: HashMap::new(),
            seg_removed: HashMap::new(),
            new_people: Vec::new(),
            triggers: Vec::new(),
            sends: VecDeque::new(),
            next_cio: 1,
            suppressions: Vec::new(),
            deleted: HashSet::new(),
            newly_unsubscribed: Vec::new(),
        }
    }

    /// Forgets everything written; the seeded data is back as at start.
    pub fn clear(&mut self) {
        *self = Self::new(self.seeded.clone());
    }

    fn lookup_cio(&self, kind: IdKind, value: &str) -> Option<String> {
        match kind {
            IdKind::CioId => self.people.contains_key(value).then(|| value.to_owned()),
            IdKind::Id => self.by_id.get(value).cloned(),
            IdKind::Email => self.by_email.get(&value.to_ascii_lowercase()).cloned(),
        }
    }

    fn seed_lookup(&self, kind: IdKind, value: &str) -> Option<SeedPerson> {
        self.seeded
            .find_person(kind, value)
            .filter(|p| !self.touched.contains(&p.index))
    }

    /// The person with this identifier, if any.
    pub fn find(&self, kind: IdKind, value: &str) -> Option<Person> {
        if let Some(cio) = self.lookup_cio(kind, value) {
            return self.people.get(&cio).cloned();
        }
        self.seed_lookup(kind, value).map(|p| Person::from_seed(&p))
    }

    /// The cio_id of the person, bringing a seeded person into the written set.
    fn materialize(&mut self, kind: IdKind, value: &str) -> Option<String> {
        if let Some(cio) = self.lookup_cio(kind, value) {
            return Some(cio);
        }
        let seed = self.seed_lookup(kind, value)?;
        self.touched.insert(seed.index);
        let p = Person::from_seed(&seed);
        let cio = p.cio_id.clone();
        self.insert(p);
        Some(cio)
    }

    fn insert(&mut self, p: Person) {
        let cio = p.cio_id.clone();
        if let Some(id) = &p.id {
            self.by_id.insert(id.clone(), cio.clone());
        }
        if let Some(email) = &p.email {
            self.by_email
                .insert(email.to_ascii_lowercase(), cio.clone());
        }
        if p.seed_index.is_none() {
            self.new_people.push(cio.clone());
        }
        self.people.insert(cio.clone(), p);
        self.order.push_back(cio);
        while self.people.len() > MAX_STORED_PEOPLE {
            match self.order.pop_front() {
                Some(old) => self.remove_cio(&old),
                None => break,
            }
        }
        if self.new_people.len() > 2 * MAX_STORED_PEOPLE {
            let people = &self.people;
            self.new_people.retain(|c| people.contains_key(c));
        }
    }

    /// Members of `segment` beyond the seeded span that are not manual additions.
    fn extra(&self, segment: u64) -> &[String] {
        if segment == 1 { &self.new_people } else { &[] }
    }

    fn remove_cio(&mut self, cio: &str) {
        if let Some(p) = self.people.remove(cio) {
            if let Some(id) = &p.id
                && self.by_id.get(id).is_some_and(|c| c == cio)
            {
                self.by_id.remove(id);
            }
            if let Some(email) = &p.email {
                let key = email.to_ascii_lowercase();
                if self.by_email.get(&key).is_some_and(|c| c == cio) {
                    self.by_email.remove(&key);
                }
            }
        }
    }

    /// Identify: create or update the person `kind`/`value` with `attrs`. With `update_only`
    /// (`_update: true`) an unknown person is not created. Returns the cio_id when applied.
    pub fn upsert(
        &mut self,
        kind: IdKind,
        value: &str,
        attrs: &Map<String, Value>,
        update_only: bool,
    ) -> Option<String> {
        let t = now();
        let named = |k: &str| match attrs.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if self.is_suppressed(kind, value)
            || named("email").is_some_and(|e| self.is_suppressed(IdKind::Email, &e))
            || named("id").is_some_and(|i| self.is_suppressed(IdKind::Id, &i))
        {
            // A suppressed identifier is ignored, with the usual 200 [TS suppress].
            return None;
        }
        let cio = match self.materialize(kind, value) {
            Some(cio) => cio,
            None if update_only => return None,
            None => {
                if kind == IdKind::CioId {
                    // A cio_id that does not exist cannot be created by the caller.
                    return None;
                }
                let cio = format!("{:012x}", 0xa000_0000_0000_u64 + self.next_cio);
                self.next_cio += 1;
                let mut p = Person {
                    cio_id: cio.clone(),
                    id: None,
                    email: None,
                    attributes: Map::new(),
                    created_at: t,
                    updated_at: t,
                    unsubscribed: false,
                    devices: BTreeMap::new(),
                    seed_index: None,
                };
                match kind {
                    IdKind::Id => p.id = Some(value.to_owned()),
                    IdKind::Email => p.email = Some(value.to_owned()),
                    IdKind::CioId => {}
                }
                self.insert(p);
                cio
            }
        };
        let mut p = self.people.remove(&cio)?;
        let was_unsubscribed = p.unsubscribed;
        for (k, v) in attrs {
            match k.as_str() {
                "_update" | "_timestamp" | "cio_relationships" => {}
                "email" => {
                    if let Some(e) = v.as_str() {
                        if let Some(old) = &p.email {
                            self.by_email.remove(&old.to_ascii_lowercase());
                        }
                        self.by_email.insert(e.to_ascii_lowercase(), cio.clone());
                        p.email = Some(e.to_owned());
                    }
                }
                "id" => {
                    let id = match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    };
                    if let Some(id) = id {
                        if let Some(old) = &p.id {
                            self.by_id.remove(old);
                        }
                        self.by_id.insert(id.clone(), cio.clone());
                        p.id = Some(id);
                    }
                }
                "unsubscribed" => {
                    p.unsubscribed = truthy(v);
                }
                "created_at" => {
                    if let Some(ts) = v.as_i64() {
                        p.created_at = ts;
                    }
                }
                _ => {
                    if v.is_null() || v.as_str() == Some("") {
                        // Track API: an empty value removes the attribute.
                        p.attributes.remove(k);
                    } else {
                        p.attributes.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        p.updated_at = t;
        if p.unsubscribed && !was_unsubscribed {
            self.newly_unsubscribed.push(p.clone());
        }
        self.people.insert(cio.clone(), p);
        Some(cio)
    }

    /// Whether an identify naming `kind`/`value` is ignored because of a suppress.
    pub fn is_suppressed(&self, kind: IdKind, value: &str) -> bool {
        self.suppressions.iter().any(|s| s.names(kind, value))
    }

    /// Person suppress: deletes the person and blocks their id and email (and the identifier
    /// given, when nobody holds it) from being added again [TS suppress].
    pub fn suppress(&mut self, kind: IdKind, value: &str) {
        let mut s = Suppression::default();
        if let Some(p) = self.find(kind, value) {
            s.id.clone_from(&p.id);
            s.email = p.email.as_deref().map(str::to_ascii_lowercase);
            self.delete(kind, value);
        }
        match kind {
            IdKind::Id if s.id.is_none() => s.id = Some(value.to_owned()),
            IdKind::Email if s.email.is_none() => s.email = Some(value.to_ascii_lowercase()),
            _ => {}
        }
        for k in s.id.iter().chain(s.email.iter()) {
            self.deleted.insert(k.to_ascii_lowercase());
        }
        if (s.id.is_some() || s.email.is_some()) && !self.suppressions.contains(&s) {
            self.suppressions.push(s);
        }
    }

    /// Frees the identifiers of every suppression naming `kind`/`value`; the deleted profile is
    /// not restored.
    pub fn unsuppress(&mut self, kind: IdKind, value: &str) {
        self.suppressions.retain(|s| !s.names(kind, value));
    }

    /// Applies `f` to the (materialized) person; false when there is no such person.
    pub fn update(&mut self, kind: IdKind, value: &str, f: impl FnOnce(&mut Person)) -> bool {
        let Some(cio) = self.materialize(kind, value) else {
            return false;
        };
        match self.people.get_mut(&cio) {
            Some(p) => {
                f(p);
                p.updated_at = now();
                true
            }
            None => false,
        }
    }

    /// Deletes a person; true when there was one.
    pub fn delete(&mut self, kind: IdKind, value: &str) -> bool {
        match self.materialize(kind, value) {
            Some(cio) => {
                if let Some(p) = self.people.get(&cio) {
                    for k in p.id.iter().chain(p.email.iter()) {
                        self.deleted.insert(k.to_ascii_lowercase());
                    }
                }
                self.remove_cio(&cio);
                true
            }
            None => false,
        }
    }

    /// Merges `secondary` into `primary` (attributes missing on the primary); false when the
    /// primary does not exist.
    pub fn merge(&mut self, primary: (IdKind, &str), secondary: (IdKind, &str)) -> bool {
        let Some(p_cio) = self.materialize(primary.0, primary.1) else {
            return false;
        };
        let Some(s_cio) = self.materialize(secondary.0, secondary.1) else {
            return true;
        };
        if p_cio == s_cio {
            return true;
        }
        let Some(sec) = self.people.get(&s_cio).cloned() else {
            return true;
        };
        self.remove_cio(&s_cio);
        if let Some(p) = self.people.get_mut(&p_cio) {
            for (k, v) in sec.attributes {
                p.attributes.entry(k).or_insert(v);
            }
            p.devices.extend(sec.devices);
            if p.email.is_none() {
                p.email = sec.email.clone();
            }
            if p.id.is_none() {
                p.id = sec.id.clone();
            }
        }
        if let Some(e) = &sec.email {
            self.by_email
                .entry(e.to_ascii_lowercase())
                .or_insert(p_cio.clone());
        }
        true
    }

    pub fn record_event(&mut self, event: Value) {
        self.events.push_back(event);
        while self.events.len() > MAX_STORED_EVENTS {
            self.events.pop_front();
        }
    }

    /// Stored events, oldest first; `customer` filters by id, email or cio_id.
    pub fn events(&self, customer: Option<&str>) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| {
                customer.is_none_or(|c| {
                    ["customer_id", "email", "cio_id", "anonymous_id", "user_id"]
                        .iter()
                        .any(|k| e.get(*k).and_then(Value::as_str) == Some(c))
                })
            })
            .cloned()
            .collect()
    }

    pub fn record_send(&mut self, send: Value) {
        self.sends.push_back(send);
        while self.sends.len() > MAX_STORED_SENDS {
            self.sends.pop_front();
        }
    }

    pub fn sends(&self) -> Vec<Value> {
        self.sends.iter().cloned().collect()
    }

    // ------------------------------------------------------------ segments

    fn seed_in_segment(&self, segment: u64, index: u64) -> bool {
        let people = self.seeded.sizes.people;
        if people == 0 {
            return false;
        }
        let (count, offset) = self.seeded.segment_span(segment);
        (index + people - offset % people) % people < count
    }

    /// Whether the person with cio_id `cio` is in `segment` now.
    pub fn in_segment(&self, segment: u64, p: &Person) -> bool {
        if self
            .seg_removed
            .get(&segment)
            .is_some_and(|r| r.contains(&p.cio_id))
        {
            return false;
        }
        if segment == 1 {
            return true;
        }
        p.seed_index
            .is_some_and(|i| self.seed_in_segment(segment, i))
            || self
                .seg_added
                .get(&segment)
                .is_some_and(|a| a.contains(&p.cio_id))
    }

    /// Positions in the membership list: the seeded members, then the added ones.
    pub fn segment_positions(&self, segment: u64) -> u64 {
        let (count, _) = self.seeded.segment_span(segment);
        count
            + self.extra(segment).len() as u64
            + self.seg_added.get(&segment).map_or(0, |a| a.len() as u64)
    }

    /// Members at positions `[start, start + limit)`, skipping deleted and removed people.
    pub fn segment_members(&self, segment: u64, start: u64, limit: u64) -> Vec<Person> {
        let (count, _) = self.seeded.segment_span(segment);
        let total = self.segment_positions(segment);
        let removed = self.seg_removed.get(&segment);
        let end = start.saturating_add(limit).min(total);
        let mut out = Vec::new();
        for pos in start..end {
            let person = if pos < count {
                let index = self.seeded.segment_member(segment, pos);
                let Some(seed) = self.seeded.person(index) else {
                    continue;
                };
                if self.touched.contains(&index) {
                    self.people.get(&seed.cio_id).cloned()
                } else {
                    Some(Person::from_seed(&seed))
                }
            } else {
                let i = usize::try_from(pos - count).unwrap_or(usize::MAX);
                let extra = self.extra(segment);
                if i < extra.len() {
                    self.people.get(&extra[i]).cloned()
                } else {
                    self.seg_added
                        .get(&segment)
                        .and_then(|a| a.get(i - extra.len()))
                        .and_then(|cio| self.people.get(cio).cloned())
                }
            };
            if let Some(p) = person
                && !removed.is_some_and(|r| r.contains(&p.cio_id))
            {
                out.push(p);
            }
        }
        out
    }

    /// Current member count: the seeded span less deleted people, plus written people (segment
    /// 1) and additions, less removals.
    pub fn segment_count(&self, segment: u64) -> u64 {
        let (count, _) = self.seeded.segment_span(segment);
        let deleted_seeds = self
            .touched
            .iter()
            .filter(|i| self.seed_in_segment(segment, **i))
            .filter(|i| {
                self.seeded
                    .person(**i)
                    .is_none_or(|s| !self.people.contains_key(&s.cio_id))
            })
            .count() as u64;
        let live =
            |list: &[String]| list.iter().filter(|c| self.people.contains_key(*c)).count() as u64;
        let added = self.seg_added.get(&segment).map_or(0, |a| live(a));
        let removed = self.seg_removed.get(&segment).map_or(0, |r| r.len() as u64);
        (count - deleted_seeds.min(count) + live(self.extra(segment)) + added)
            .saturating_sub(removed)
    }

    /// Adds people (who must exist) to a manual segment; unknown identifiers are skipped.
    pub fn segment_add(&mut self, segment: u64, kind: IdKind, values: &[String]) {
        for v in values {
            let Some(cio) = self.materialize(kind, v) else {
                continue;
            };
            if let Some(r) = self.seg_removed.get_mut(&segment)
                && r.remove(&cio)
            {
                continue;
            }
            let Some(p) = self.people.get(&cio) else {
                continue;
            };
            if self.in_segment(segment, p) {
                continue;
            }
            let added = self.seg_added.entry(segment).or_default();
            if added.len() < MAX_SEGMENT_ADDITIONS {
                added.push(cio);
            }
        }
    }

    /// Removes people from a manual segment.
    pub fn segment_remove(&mut self, segment: u64, kind: IdKind, values: &[String]) {
        for v in values {
            if let Some(p) = self.find(kind, v) {
                let was_added = self
                    .seg_added
                    .get_mut(&segment)
                    .map(|a| {
                        let before = a.len();
                        a.retain(|c| c != &p.cio_id);
                        before != a.len()
                    })
                    .unwrap_or(false);
                let seeded_member = p
                    .seed_index
                    .is_some_and(|i| self.seed_in_segment(segment, i));
                if seeded_member && !was_added {
                    self.seg_removed
                        .entry(segment)
                        .or_default()
                        .insert(p.cio_id.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Sizes;

    fn store() -> Store {
        Store::new(Seeded::new(
            Sizes {
                seed: 1,
                people: 100,
                campaigns: 3,
                segments: 8,
                broadcasts: 2,
                newsletters: 3,
                transactional: 6,
            },
            1,
        ))
    }

    #[test]
    fn classify_follows_the_track_identifier_rules() {
        assert_eq!(classify("cio_abc"), (IdKind::CioId, "abc".into()));
        assert_eq!(classify("a@b.c"), (IdKind::Email, "a@b.c".into()));
        assert_eq!(
            classify("+15551234567"),
            (IdKind::Id, "+15551234567".into())
        );
        assert_eq!(classify("1/"), (IdKind::Id, "1/".into()));
    }

    #[test]
    fn identify_creates_updates_and_respects_update_only() {
        let mut s = store();
        let attrs = json!({"email": "n@example.com", "plan": "gold"});
        let attrs = attrs.as_object().unwrap();
        assert!(s.upsert(IdKind::Id, "new-1", attrs, true).is_none());
        let cio = s.upsert(IdKind::Id, "new-1", attrs, false).unwrap();
        let p = s.find(IdKind::Email, "N@example.com").unwrap();
        assert_eq!(p.cio_id, cio);
        assert_eq!(p.attributes["plan"], "gold");
        assert!(s.delete(IdKind::CioId, &cio));
        assert!(s.find(IdKind::Id, "new-1").is_none());
    }

    #[test]
    fn seeded_people_can_be_changed_and_deleted() {
        let mut s = store();
        let seed = s.seeded.person(3).unwrap();
        let attrs = json!({"plan": "gold"});
        s.upsert(IdKind::Email, &seed.email, attrs.as_object().unwrap(), true)
            .unwrap();
        assert_eq!(
            s.find(IdKind::CioId, &seed.cio_id).unwrap().attributes["plan"],
            "gold"
        );
        assert!(s.delete(IdKind::Email, &seed.email));
        assert!(s.find(IdKind::CioId, &seed.cio_id).is_none());
        let members = s.segment_members(1, 0, 100);
        assert_eq!(members.len(), 99, "a deleted person leaves every segment");
    }

    #[test]
    fn written_people_join_segment_one() {
        let mut s = store();
        s.upsert(IdKind::Id, "w-1", &Map::new(), false).unwrap();
        assert_eq!(s.segment_count(1), 101);
        let all = s.segment_members(1, 0, u64::MAX);
        assert_eq!(all.last().unwrap().id.as_deref(), Some("w-1"));
        s.delete(IdKind::Id, "w-1");
        assert_eq!(s.segment_count(1), 100);
        assert_eq!(s.segment_members(1, 0, u64::MAX).len(), 100);
    }

    #[test]
    fn manual_segment_edits_show_in_membership() {
        let mut s = store();
        let attrs = Map::new();
        s.upsert(IdKind::Id, "added-1", &attrs, false).unwrap();
        let before = s.segment_count(3);
        s.segment_add(3, IdKind::Id, &["added-1".into(), "missing".into()]);
        assert_eq!(s.segment_count(3), before + 1);
        let all = s.segment_members(3, 0, u64::MAX);
        assert!(all.iter().any(|p| p.id.as_deref() == Some("added-1")));
        s.segment_remove(3, IdKind::Id, &["added-1".into()]);
        let all = s.segment_members(3, 0, u64::MAX);
        assert!(!all.iter().any(|p| p.id.as_deref() == Some("added-1")));
        assert_eq!(s.segment_count(3), before);
        // Removing someone who is not a member changes nothing.
        let outsider = (0..100)
            .filter_map(|i| s.seeded.person(i))
            .find(|p| !s.seed_in_segment(3, p.index) && p.id.is_some())
            .unwrap();
        s.segment_remove(3, IdKind::Id, &[outsider.id.unwrap()]);
        assert_eq!(s.segment_count(3), before);
    }
}
