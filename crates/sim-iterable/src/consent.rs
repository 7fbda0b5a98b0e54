//! Consent calls (issue 17): the Subscriptions API's one-group unsubscribe, the overwriting
//! `users/updateSubscriptions`, and GDPR `users/forget` / `users/forgotten`. Facts and sources:
//! `shared/platforms/consent.md` §1. Every unsubscribe made here emits the `emailUnSubscribe`
//! system webhook with `unsubSource: "API"`, so a client's echo detection can be tested.

use axum::{
    Json,
    body::Bytes,
    extract::{OriginalUri, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{
    data::{self, fmt_export, fmt_iso},
    errors,
    project::{Project, Shared, Store, StoredUser, lock, parse_json},
    users::{self, UpdateFail, UpdateReq},
    webhooks::{self, SendKind},
};

const DAY_MS: i64 = 86_400_000;

/// The three subscription groups of `/api/subscriptions/{subscriptionGroup}/…` (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    EmailList,
    MessageType,
    MessageChannel,
}

impl Group {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "emaillist" => Some(Self::EmailList),
            "messagetype" => Some(Self::MessageType),
            "messagechannel" => Some(Self::MessageChannel),
            _ => None,
        }
    }
}

/// SHA-256 hex of the trimmed, lower-cased address: what `GET /api/users/forgotten` lists.
pub fn forgotten_hash(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn ids(u: &StoredUser, field: &str) -> Vec<u64> {
    u.fields
        .get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Channel ids of the project (fixtures replace the generated ones).
fn channel_ids(store: &Store) -> Vec<u64> {
    match &store.fixtures.channels {
        Some(cs) => cs
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_u64))
            .collect(),
        None => data::CHANNELS.iter().map(|c| c.0).collect(),
    }
}

fn message_type_ids(store: &Store) -> Vec<u64> {
    match &store.fixtures.message_types {
        Some(ts) => ts
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_u64))
            .collect(),
        None => data::MESSAGE_TYPES.iter().map(|t| t.0).collect(),
    }
}

/// Keeps a changed profile as a written user.
fn store_user(store: &mut Store, mut u: StoredUser, now_ms: i64) {
    u.updated_ms = now_ms;
    u.fields
        .insert("profileUpdatedAt".into(), json!(fmt_iso(now_ms)));
    let lower = u.email.to_ascii_lowercase();
    if let Some(uid) = &u.user_id {
        store.user_ids.insert(uid.clone(), lower.clone());
    }
    store.users.insert(lower, u);
    store.evict_users();
}

/// What an API unsubscribe newly took away, for the `emailUnSubscribe` webhook.
#[derive(Debug, Default)]
struct Unsubscribed {
    channel_ids: Vec<u64>,
    message_type_ids: Vec<u64>,
    email_list_ids: Vec<u64>,
}

impl Unsubscribed {
    fn is_empty(&self) -> bool {
        self.channel_ids.is_empty()
            && self.message_type_ids.is_empty()
            && self.email_list_ids.is_empty()
    }
}

/// Emits `emailUnSubscribe` (`unsubSource: "API"`) through the project's system webhooks, in the
/// background as Iterable does. Field names from the RS fixtures (consent.md §1.2).
fn emit_unsubscribe(p: &Shared, u: &StoredUser, what: &Unsubscribed, now_ms: i64) {
    if what.is_empty() {
        return;
    }
    let mut fields = Map::new();
    fields.insert("unsubSource".into(), json!("API"));
    fields.insert("channelIds".into(), json!(what.channel_ids));
    fields.insert("emailListIds".into(), json!(what.email_list_ids));
    fields.insert("messageTypeIds".into(), json!(what.message_type_ids));
    if let [one] = what.channel_ids.as_slice() {
        fields.insert("channelId".into(), json!(one));
    }
    fields.insert("createdAt".into(), json!(fmt_export(now_ms)));
    fields.insert("email".into(), json!(u.email));
    let mut event = Map::new();
    event.insert("email".into(), json!(u.email));
    if let Some(id) = &u.user_id {
        event.insert("userId".into(), json!(id));
    }
    event.insert("eventName".into(), json!("emailUnSubscribe"));
    event.insert("dataFields".into(), Value::Object(fields));
    p.control.incr("unsubscribes_emitted");
    webhooks::spawn_delivery(p, Value::Object(event), SendKind::Other);
}

/// `DELETE /api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}/user/{userEmail}`:
/// removes the user from one group and leaves every other alone (SPEC `unsubscribeSingleUser`).
pub async fn unsubscribe_single(
    State(p): State<Shared>,
    Path((group, id, email)): Path<(String, String, String)>,
) -> Response {
    let now = Project::now_ms();
    let mut store = lock(&p.store);
    if store.subscriptions_api_disabled {
        // SPEC: 404 "Endpoint not found" until the CSM enables the API for the project.
        return errors::envelope(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Endpoint not found",
            Value::Null,
        );
    }
    let Some(group) = Group::parse(&group) else {
        // Inferred wording; the SPEC names the three groups.
        return errors::bad_params(format!(
            "Invalid subscriptionGroup: {group}. Valid groups: emailList, messageType, messageChannel"
        ));
    };
    let Ok(id) = id.parse::<u64>() else {
        return errors::bad_params(format!("Invalid subscriptionGroupId: {id}"));
    };
    if !users::valid_email(&email) {
        return UpdateFail::InvalidEmail(email).response(p.project_id);
    }
    let known = match group {
        Group::MessageChannel => channel_ids(&store).contains(&id),
        Group::MessageType => message_type_ids(&store).contains(&id),
        Group::EmailList => {
            drop(store);
            let ok = p
                .lists()
                .iter()
                .any(|l| l.get("id").and_then(Value::as_u64) == Some(id));
            store = lock(&p.store);
            ok
        }
    };
    if !known {
        // Inferred: an unknown group id is a bad parameter.
        return errors::bad_params(format!("Subscription group {id} does not exist"));
    }
    let Some(mut u) = users::lookup_email(&store, &p.ds, &email) else {
        // Inferred (consent.md §6 lists it as unchecked): an unknown (or forgotten) user is not
        // created; the answer is the sim's usual unknown-user 400.
        return UpdateFail::NotFound.response(p.project_id);
    };
    let mut what = Unsubscribed::default();
    let (field, add) = match group {
        Group::MessageChannel => ("unsubscribedChannelIds", true),
        Group::MessageType => ("unsubscribedMessageTypeIds", true),
        Group::EmailList => ("emailListIds", false),
    };
    let mut current = ids(&u, field);
    let changed = if add {
        !current.contains(&id) && {
            current.push(id);
            true
        }
    } else {
        let before = current.len();
        current.retain(|x| *x != id);
        current.len() != before
    };
    if changed {
        match group {
            Group::MessageChannel => what.channel_ids.push(id),
            Group::MessageType => what.message_type_ids.push(id),
            Group::EmailList => what.email_list_ids.push(id),
        }
        u.fields.insert(field.into(), json!(current));
        store_user(&mut store, u.clone(), now);
    }
    drop(store);
    p.control.incr("subscriptions_unsubscribed");
    emit_unsubscribe(&p, &u, &what, now);
    errors::success()
}

/// An optional array of ids in an `UpdateSubscriptionsRequest`: absent or null means "leave".
fn id_array(v: &Value, key: &str) -> Result<Option<Vec<u64>>, Response> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_u64()
                    .ok_or_else(|| errors::bad_params(format!("{key} must hold integer ids")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(errors::bad_params(format!("{key} must be an array"))),
    }
}

/// `POST /api/users/updateSubscriptions`: every non-null array replaces the stored one; arrays
/// left out or null stay as they are (SPEC: "overwrites (does not merge)").
pub async fn update_subscriptions(State(p): State<Shared>, body: Bytes) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut arrays = Vec::new();
    for (key, field) in [
        ("emailListIds", "emailListIds"),
        ("unsubscribedChannelIds", "unsubscribedChannelIds"),
        ("unsubscribedMessageTypeIds", "unsubscribedMessageTypeIds"),
        ("subscribedMessageTypeIds", "subscribedMessageTypeIds"),
    ] {
        match id_array(&v, key) {
            Ok(Some(a)) => arrays.push((field, a)),
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    // Identify (and create when unknown, inferred) through the users/update rules, which also
    // refuse forgotten users with 409 `ForgottenUserError`.
    let mut ident = Map::new();
    for k in ["email", "userId"] {
        if let Some(x) = v.get(k) {
            ident.insert(k.into(), x.clone());
        }
    }
    let req = match UpdateReq::from_json(&Value::Object(ident)) {
        Ok(r) => r,
        Err(e) => return e.response(p.project_id),
    };
    let now = Project::now_ms();
    let mut store = lock(&p.store);
    let ok = match users::apply_update(&mut store, &p.ds, req, now) {
        Ok(ok) => ok,
        Err(e) => return e.response(p.project_id),
    };
    let Some(mut u) = users::lookup_email(&store, &p.ds, &ok.email) else {
        return errors::bad_params("user vanished");
    };
    let mut what = Unsubscribed::default();
    for (field, new) in arrays {
        let old = ids(&u, field);
        match field {
            "unsubscribedChannelIds" => {
                what.channel_ids = new.iter().filter(|x| !old.contains(x)).copied().collect();
            }
            "unsubscribedMessageTypeIds" => {
                what.message_type_ids = new.iter().filter(|x| !old.contains(x)).copied().collect();
            }
            "emailListIds" => {
                what.email_list_ids = old.iter().filter(|x| !new.contains(x)).copied().collect();
            }
            _ => {}
        }
        u.fields.insert(field.into(), json!(new));
    }
    store_user(&mut store, u.clone(), now);
    drop(store);
    p.control.incr("subscriptions_updated");
    emit_unsubscribe(&p, &u, &what, now);
    errors::success()
}

/// `POST /api/users/forget` `{email}` or `{userId}`, never both: deletes the user and refuses
/// any later collection about them. 3/s (the gate) and 1000 per 24 h per project (here).
pub async fn forget(State(p): State<Shared>, uri: OriginalUri, body: Bytes) -> Response {
    let v: Value = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
    };
    let (email, user_id) = match (s("email"), s("userId")) {
        (Some(e), None) => (Some(e), None),
        (None, Some(u)) => (None, Some(u)),
        // Inferred wording; the SPEC says to forget by email or by userId.
        (Some(_), Some(_)) => {
            return errors::bad_params("Provide either email or userId, not both");
        }
        (None, None) => return errors::bad_params("Either email or userId must be provided"),
    };
    if let Some(e) = &email
        && !users::valid_email(e)
    {
        return UpdateFail::InvalidEmail(e.clone()).response(p.project_id);
    }
    let now = Project::now_ms();
    let mut store = lock(&p.store);
    while store.forget_log.front().is_some_and(|t| *t <= now - DAY_MS) {
        store.forget_log.pop_front();
    }
    if store.forget_log.len() >= store.forget_daily_cap {
        drop(store);
        p.control.incr("forget_daily_cap_hit");
        return p.control.rate_limited(uri.path());
    }
    store.forget_log.push_back(now);
    let user = match (&email, &user_id) {
        (Some(e), _) => users::lookup_email(&store, &p.ds, e),
        (None, Some(u)) => users::lookup_user_id(&store, &p.ds, u),
        _ => None,
    };
    if let Some(u) = &user {
        let lower = u.email.to_ascii_lowercase();
        store.users.remove(&lower);
        if let Some(id) = &u.user_id {
            store.user_ids.remove(id);
            store.forgotten_user_ids.insert(id.clone());
        }
        store.deleted.insert(lower.clone());
        store.forgotten_emails.insert(lower);
    }
    if let Some(e) = &email {
        store.forgotten_emails.insert(e.to_lowercase());
    }
    if let Some(u) = &user_id {
        store.forgotten_user_ids.insert(u.clone());
    }
    drop(store);
    p.control.incr("users_forgotten");
    // Iterable finishes within 10 minutes; done at once here.
    errors::success()
}

/// `GET /api/users/forgotten` → `{hashedEmails: [sha256 hex of trimmed lower-cased email]}`.
pub async fn forgotten(State(p): State<Shared>) -> Response {
    let mut hashes: Vec<String> = lock(&p.store)
        .forgotten_emails
        .iter()
        .map(|e| forgotten_hash(e))
        .collect();
    hashes.sort();
    Json(json!({ "hashedEmails": hashes })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_case_insensitive() {
        assert_eq!(Group::parse("MESSAGECHANNEL"), Some(Group::MessageChannel));
        assert_eq!(Group::parse("emailList"), Some(Group::EmailList));
        assert_eq!(Group::parse("messagetype"), Some(Group::MessageType));
        assert_eq!(Group::parse("channel"), None);
    }

    #[test]
    fn forgotten_hash_trims_and_lowercases() {
        // sha256("ada@example.com")
        assert_eq!(
            forgotten_hash("  Ada@Example.com "),
            forgotten_hash("ada@example.com")
        );
        assert_eq!(forgotten_hash("").len(), 64);
    }
}
