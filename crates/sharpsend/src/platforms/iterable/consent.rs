//! Iterable's side of the consent ledger (issue 17; fact sheet `consent.md` §1).
//!
//! An opt-out takes the reader off each consent channel with the Subscriptions API's one-group
//! `DELETE`, which leaves every other subscription alone. A project whose CSM has not enabled
//! that API answers 404; then the fallback reads the user, merges the channels into the stored
//! `unsubscribedChannelIds` and writes the whole array back with `updateSubscriptions` — which
//! **overwrites** — so the read-merge-write of one (integration, address) runs under a lock.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, Weak},
};

use connectors::iterable::ChannelUnsubscribe;
use domain::consent::Applied;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::IterableSession;
use crate::{error::Result, state::AppState};

/// `consentChannelIds`: ids as numbers or numeric strings; anything else reads as absent.
pub fn channel_ids<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<u64>>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    let Some(Value::Array(items)) = v else {
        return Ok(None);
    };
    let mut ids: Vec<u64> = Vec::new();
    for id in items.iter().filter_map(|x| match x {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok((!ids.is_empty()).then_some(ids))
}

/// One async lock per (integration, address) for the fallback's read-merge-write. In-process
/// only: two replicas could still interleave, which the ledger's job engine avoids by running
/// one job per (publisher, email, platform) at a time. Entries are dropped once unused.
static MERGE_LOCKS: LazyLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Mutex::default);

fn merge_lock(integration_id: &str, email: &str) -> Arc<tokio::sync::Mutex<()>> {
    let key = format!("{integration_id}\u{0}{email}");
    let mut locks = MERGE_LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(l) = locks.get(&key).and_then(Weak::upgrade) {
        return l;
    }
    locks.retain(|_, l| l.strong_count() > 0);
    let l = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(key, Arc::downgrade(&l));
    l
}

fn list(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// The channels an opt-out covers: the config's, else every marketing email channel.
async fn channels(state: &AppState, s: &IterableSession) -> Result<Vec<u64>> {
    match &s.settings.consent_channel_ids {
        Some(ids) if !ids.is_empty() => Ok(ids.clone()),
        _ => Ok(state
            .connectors
            .iterable
            .marketing_email_channel_ids(&s.creds)
            .await?),
    }
}

pub async fn opt_out(state: &AppState, s: &IterableSession, email: &str) -> Result<Applied> {
    let channels = channels(state, s).await?;
    if channels.is_empty() {
        return Ok(Applied::NothingToDo {
            detail: "the Iterable project has no marketing email channel".into(),
        });
    }
    let conn = &state.connectors.iterable;
    for id in &channels {
        match conn.unsubscribe_channel(&s.creds, *id, email).await? {
            ChannelUnsubscribe::Done => {}
            ChannelUnsubscribe::UnknownUser => {
                return Ok(Applied::NothingToDo {
                    detail: "Iterable has no user with this address".into(),
                });
            }
            ChannelUnsubscribe::NotEnabled => return merge(state, s, email, &channels).await,
        }
    }
    Ok(Applied::Done {
        detail: format!(
            "DELETE /api/subscriptions/messageChannel/{{id}}/user for channels {}",
            list(&channels)
        ),
    })
}

/// The fallback: GET the user, add the channels to the stored unsubscribes, write the union.
async fn merge(
    state: &AppState,
    s: &IterableSession,
    email: &str,
    channels: &[u64],
) -> Result<Applied> {
    let lock = merge_lock(&s.record.id, email);
    let _held = lock.lock().await;
    let conn = &state.connectors.iterable;
    let Some(stored) = conn.subscriptions(&s.creds, email).await? else {
        return Ok(Applied::NothingToDo {
            detail: "Iterable has no user with this address".into(),
        });
    };
    let mut ids = stored.unsubscribed_channel_ids;
    let before = ids.len();
    for id in channels {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    if ids.len() == before {
        // Nothing new: no write, so no echo webhook either.
        return Ok(Applied::Done {
            detail: format!(
                "already unsubscribed from channels {} (Subscriptions API not enabled)",
                list(channels)
            ),
        });
    }
    conn.set_unsubscribed_channels(&s.creds, email, &ids)
        .await?;
    Ok(Applied::Done {
        detail: format!(
            "Subscriptions API not enabled: updateSubscriptions with unsubscribedChannelIds merged with channels {}",
            list(channels)
        ),
    })
}

pub async fn erase(state: &AppState, s: &IterableSession, email: &str) -> Result<Applied> {
    state
        .connectors
        .iterable
        .forget_user(&s.creds, email)
        .await?;
    Ok(Applied::Done {
        detail: "POST /api/users/forget".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::IterableSettings;

    #[test]
    fn consent_channel_ids_read_leniently_and_never_cost_other_settings() {
        let s: IterableSettings = serde_json::from_value(
            serde_json::json!({"syncEventTypes": ["emailOpen"], "consentChannelIds": [41001, "41007", "x", 41001]}),
        )
        .unwrap();
        assert_eq!(s.consent_channel_ids, Some(vec![41001, 41007]));
        assert_eq!(s.sync_event_types, vec!["emailOpen".to_owned()]);
        for bad in [
            serde_json::json!("41001"),
            serde_json::json!([]),
            serde_json::json!(null),
        ] {
            let s: IterableSettings = serde_json::from_value(
                serde_json::json!({"syncEventTypes": ["emailOpen"], "consentChannelIds": bad}),
            )
            .unwrap();
            assert_eq!(s.consent_channel_ids, None);
            assert_eq!(s.sync_event_types, vec!["emailOpen".to_owned()]);
        }
        let s: IterableSettings = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(s.consent_channel_ids, None);
    }

    #[test]
    fn one_lock_per_integration_and_address() {
        let a = super::merge_lock("int-1", "a@example.com");
        let b = super::merge_lock("int-1", "a@example.com");
        let c = super::merge_lock("int-1", "b@example.com");
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(!std::sync::Arc::ptr_eq(&a, &c));
    }
}
