//! Event destinations (issue 19): events pushed, signed, to the publisher's (or the
//! operator's) own endpoints, at least once and in order per reader.
//!
//! Every received webhook event becomes a message per matching destination in the same write
//! that stores it (`store::DestinationStore`); our own events — a new suppression, a finished
//! sync, an integration needing reauthorisation — are published by [`events`]. [`worker`]
//! delivers them with the Standard Webhooks headers ([`signing`]) to URLs [`guard`] admits.
//! Handlers only translate HTTP: the use cases are here.

pub mod events;
pub mod guard;
pub mod outbound;
pub mod signing;
pub mod worker;

use chrono::{DateTime, Duration, Utc};
use domain::Platform;
use secrecy::{ExposeSecret as _, SecretString};
use store::{
    Attempt, Destination, DestinationOwner, DestinationPatch, Message, MessagePage, MessageStatus,
    NewDestination,
};
use vault::Aad;

use crate::{error::Error, state::AppState};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);
/// Most destinations one owner may register.
pub const MAX_PER_OWNER: usize = 50;
/// Most entries in a filter list.
pub const MAX_FILTERS: usize = 100;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;

/// The vault field the signing secrets are sealed under (with the destination id).
pub const SECRET_FIELD: &str = "signingSecret";

/// The event types we push that are not received from a platform.
pub const OWN_EVENT_TYPES: [&str; 4] = [
    events::SUPPRESSION_CREATED,
    events::SYNC_SUCCEEDED,
    events::SYNC_FAILED,
    events::REAUTH_REQUIRED,
];

/// A destination to register, as the caller gave it (checked here).
#[derive(Clone, Debug, Default)]
pub struct Registration {
    pub url: String,
    pub event_types: Vec<String>,
    pub platforms: Vec<Platform>,
    pub description: Option<String>,
}

/// A registered destination with its secret, which is shown this once.
pub struct Created {
    pub destination: Destination,
    pub secret: SecretString,
}

fn new_id() -> String {
    format!("dst_{}", uuid::Uuid::new_v4().simple())
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!(
        "No destination '{}' here: list them with GET …/destinations.",
        id.chars().take(64).collect::<String>()
    ))
}

/// Event type filters: `subject.action` or `subject.*`, at most [`MAX_FILTERS`], no repeats.
fn check_event_types(types: &[String]) -> Result<(), Error> {
    if types.len() > MAX_FILTERS {
        return Err(Error::invalid(
            "eventTypes",
            format!("At most {MAX_FILTERS} event types."),
        ));
    }
    for t in types {
        let ok = match t.strip_suffix(".*") {
            Some(subject) => domain::events::is_event_type(&format!("{subject}.x")),
            None => domain::events::is_event_type(t),
        };
        if !ok || t.len() > 100 {
            return Err(Error::invalid(
                "eventTypes",
                format!(
                    "'{}' is not an event type: use subject.action (email.opened, sync.failed) or subject.* (email.*).",
                    t.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

fn check_description(d: Option<&str>) -> Result<(), Error> {
    if d.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(Error::invalid(
            "description",
            format!("`description` is longer than {MAX_DESCRIPTION} characters."),
        ));
    }
    Ok(())
}

fn seal(state: &AppState, id: &str, secret: &SecretString) -> Result<(u32, Vec<u8>), Error> {
    let sealed = state
        .vault
        .seal(
            Aad {
                integration_id: id,
                field: SECRET_FIELD,
            },
            secret,
        )
        .map_err(Error::internal)?;
    Ok((sealed.key_id.0, sealed.bytes))
}

/// The keys that sign now: the current secret's, and the previous one's until its overlap ends.
pub fn signing_keys(
    state: &AppState,
    destination: &Destination,
    now: DateTime<Utc>,
) -> Result<Vec<Vec<u8>>, Error> {
    let open = |bytes: &[u8]| -> Result<Vec<u8>, Error> {
        let secret = state
            .vault
            .open(
                Aad {
                    integration_id: &destination.id,
                    field: SECRET_FIELD,
                },
                bytes,
            )
            .map_err(Error::internal)?;
        signing::secret_key(secret.expose_secret())
            .ok_or_else(|| Error::internal("a stored signing secret is not whsec_…"))
    };
    let mut keys = vec![open(&destination.secret)?];
    if let Some((old, until)) = &destination.old_secret
        && *until > now
    {
        keys.push(open(old)?);
    }
    Ok(keys)
}

/// Registers a destination after checking its URL (form and addresses) and filters.
pub async fn create(
    state: &AppState,
    owner: DestinationOwner,
    reg: Registration,
) -> Result<Created, Error> {
    let url = guard::check(&reg.url, state.config.destinations_allow_private).await?;
    check_event_types(&reg.event_types)?;
    check_description(reg.description.as_deref())?;
    if state.store.list_destinations(&owner).await?.len() >= MAX_PER_OWNER {
        return Err(Error::invalid(
            "url",
            format!("At most {MAX_PER_OWNER} destinations: delete one first."),
        ));
    }
    let id = new_id();
    let secret = signing::new_secret();
    let (key_id, sealed) = seal(state, &id, &secret)?;
    let mut platforms = reg.platforms;
    platforms.sort_by_key(|p| p.as_str());
    platforms.dedup();
    let mut event_types = reg.event_types;
    event_types.dedup();
    let destination = state
        .store
        .create_destination(NewDestination {
            id,
            owner,
            url: url.to_string(),
            description: reg.description,
            event_types,
            platforms,
            secret_key_id: key_id,
            secret: sealed,
            now: Utc::now(),
        })
        .await?;
    tracing::info!(destination = %destination.id, publisher = destination.publisher_id.as_deref().unwrap_or("*"), "destination registered");
    Ok(Created {
        destination,
        secret,
    })
}

pub async fn get(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
) -> Result<Destination, Error> {
    state
        .store
        .get_destination(owner, id)
        .await?
        .ok_or_else(|| not_found(id))
}

pub async fn list(state: &AppState, owner: &DestinationOwner) -> Result<Vec<Destination>, Error> {
    Ok(state.store.list_destinations(owner).await?)
}

/// Changes a destination; a new URL is checked like a registration's.
pub async fn update(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    mut patch: DestinationPatch,
) -> Result<Destination, Error> {
    if let Some(url) = &patch.url {
        patch.url = Some(
            guard::check(url, state.config.destinations_allow_private)
                .await?
                .to_string(),
        );
    }
    if let Some(types) = &patch.event_types {
        check_event_types(types)?;
    }
    if let Some(d) = &patch.description {
        check_description(d.as_deref())?;
    }
    let updated = state
        .store
        .update_destination(owner, id, patch, Utc::now())
        .await?
        .ok_or_else(|| not_found(id))?;
    // Re-enabled: its pending messages may go now.
    state.outbound.wake();
    Ok(updated)
}

pub async fn delete(state: &AppState, owner: &DestinationOwner, id: &str) -> Result<(), Error> {
    if state.store.delete_destination(owner, id).await? {
        tracing::info!(destination = %id, "destination deleted");
        Ok(())
    } else {
        Err(not_found(id))
    }
}

/// A new secret; the current one keeps signing for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
) -> Result<Created, Error> {
    get(state, owner, id).await?;
    let secret = signing::new_secret();
    let (key_id, sealed) = seal(state, id, &secret)?;
    let now = Utc::now();
    let destination = state
        .store
        .rotate_destination_secret(owner, id, key_id, sealed, now + ROTATION_OVERLAP, now)
        .await?
        .ok_or_else(|| not_found(id))?;
    tracing::info!(destination = %id, "destination secret rotated");
    Ok(Created {
        destination,
        secret,
    })
}

pub async fn messages(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    status: Option<MessageStatus>,
    limit: u32,
    before: Option<i64>,
) -> Result<MessagePage, Error> {
    get(state, owner, id).await?;
    Ok(state.store.list_messages(id, status, limit, before).await?)
}

/// Queues one message again now, with a new schedule.
pub async fn retry(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    message_id: &str,
) -> Result<(Message, Vec<Attempt>), Error> {
    get(state, owner, id).await?;
    let unknown = || {
        Error::not_found(format!(
            "No message '{}' for this destination.",
            message_id.chars().take(64).collect::<String>()
        ))
    };
    let (_, attempts) = state
        .store
        .get_message(id, message_id)
        .await?
        .ok_or_else(unknown)?;
    let message = state
        .store
        .retry_message(id, message_id, Utc::now())
        .await?
        .ok_or_else(|| {
            Error::coded(
                domain::ErrorCode::Conflict,
                "The message is being delivered right now: retry it once the attempt ends.",
            )
        })?;
    state.outbound.wake();
    Ok((message, attempts))
}

/// Queues every message from `since` on again now; answers how many.
pub async fn replay(
    state: &AppState,
    owner: &DestinationOwner,
    id: &str,
    since: DateTime<Utc>,
) -> Result<u64, Error> {
    get(state, owner, id).await?;
    let n = state.store.replay_messages(id, since, Utc::now()).await?;
    tracing::info!(destination = %id, messages = n, "destination replay queued");
    state.outbound.wake();
    Ok(n)
}
