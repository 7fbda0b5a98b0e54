//! Who may call what (CONTRACT §3): the admin token and publisher API keys.
//!
//! Tokens are high-entropy random strings, so a SHA-256 digest is a safe verifier (no password
//! hashing needed); only digests are stored, and digests are compared in constant time.

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use domain::PublisherId;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::{ApiKeyRecord, NewApiKey, Store, StoreError};
use subtle::ConstantTimeEq;

// `Principal` lives in its own module so the read cache can hold principals without importing
// the authenticator; re-exported here because routes name it `auth::Principal`.
use crate::cache::ReadCache;
pub use crate::principal::Principal;

/// The settings key under which the admin token's digest is kept.
const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";
/// Publisher API keys start with this, so a leaked one is recognisable (and scannable).
pub const API_KEY_PREFIX: &str = "ssk_";
/// A generated admin token starts with this.
pub const ADMIN_TOKEN_PREFIX: &str = "ssa_";

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token(prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What `bootstrap` did about the admin token, so `serve` can print a new one once.
pub enum AdminBootstrap {
    /// From `SHARPSEND_ADMIN_TOKEN`.
    FromEnv,
    /// Generated earlier; its digest was in the database.
    Existing,
    /// Generated now: print it once.
    Generated(SecretString),
}

/// Authenticates bearer tokens and issues publisher keys.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache: Arc<ReadCache>,
    admin_digest: [u8; 32],
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

/// The failure of a bearer-token check; the message is for the caller.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown token")]
    Unknown,
    #[error("this API key was revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Authenticator {
    /// Sets up the admin token: from the environment, from the stored digest, or generated now
    /// (stored as a digest; several replicas starting at once agree on one).
    pub async fn bootstrap(
        store: Arc<dyn Store>,
        cache: Arc<ReadCache>,
        from_env: Option<&SecretString>,
    ) -> Result<(Self, AdminBootstrap), StoreError> {
        if let Some(token) = from_env {
            let admin_digest = digest(token.expose_secret());
            return Ok((
                Self {
                    store,
                    cache,
                    admin_digest,
                },
                AdminBootstrap::FromEnv,
            ));
        }
        let stored = |hex_digest: String| -> Result<[u8; 32], StoreError> {
            let bytes = hex::decode(&hex_digest)
                .map_err(|_| StoreError::Corrupt(ADMIN_TOKEN_SETTING.into()))?;
            bytes
                .try_into()
                .map_err(|_| StoreError::Corrupt(ADMIN_TOKEN_SETTING.into()))
        };
        if let Some(existing) = store.get_setting(ADMIN_TOKEN_SETTING).await? {
            let admin_digest = stored(existing)?;
            return Ok((
                Self {
                    store,
                    cache,
                    admin_digest,
                },
                AdminBootstrap::Existing,
            ));
        }
        let token = random_token(ADMIN_TOKEN_PREFIX);
        let new_digest = digest(token.expose_secret());
        if store
            .put_setting_if_absent(ADMIN_TOKEN_SETTING, &hex::encode(new_digest))
            .await?
        {
            return Ok((
                Self {
                    store,
                    cache,
                    admin_digest: new_digest,
                },
                AdminBootstrap::Generated(token),
            ));
        }
        // Another replica generated one first: use theirs.
        let existing = store
            .get_setting(ADMIN_TOKEN_SETTING)
            .await?
            .ok_or_else(|| StoreError::Other("admin token setting vanished".into()))?;
        let admin_digest = stored(existing)?;
        Ok((
            Self {
                store,
                cache,
                admin_digest,
            },
            AdminBootstrap::Existing,
        ))
    }

    /// Who a bearer token belongs to.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let presented = digest(token);
        if bool::from(presented.ct_eq(&self.admin_digest)) {
            return Ok(Principal::Admin);
        }
        if !token.starts_with(API_KEY_PREFIX) {
            return Err(AuthError::Unknown);
        }
        if let Some(principal) = self.cache.principal(&presented) {
            return Ok(principal);
        }
        // Tag before reading, so a write between the read and the put makes the entry stale.
        let epoch = self.cache.epoch();
        let record = self
            .store
            .find_api_key_by_hash(&hex::encode(presented))
            .await?
            .ok_or(AuthError::Unknown)?;
        // The lookup matched on the digest; compare again in constant time so the answer does not
        // depend on how a database compares strings.
        let stored = hex::decode(&record.key_hash).unwrap_or_default();
        if !bool::from(stored.as_slice().ct_eq(&presented)) {
            return Err(AuthError::Unknown);
        }
        if record.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        let publisher = PublisherId::parse(&record.publisher_id)
            .map_err(|_| StoreError::Corrupt(format!("api_keys.publisher_id of {}", record.id)))?;
        let principal = Principal::Publisher {
            publisher,
            key_id: record.id,
        };
        self.cache
            .put_principal(presented, epoch, principal.clone());
        Ok(principal)
    }

    /// Creates a publisher API key; the key is in the answer and nowhere else, ever.
    pub async fn create_api_key(
        &self,
        publisher: &PublisherId,
    ) -> Result<(ApiKeyRecord, SecretString), StoreError> {
        let key = random_token(API_KEY_PREFIX);
        let prefix: String = key
            .expose_secret()
            .chars()
            .take(API_KEY_PREFIX.len() + 4)
            .collect();
        let record = self
            .store
            .create_api_key(NewApiKey {
                id: format!("key_{}", uuid::Uuid::now_v7().simple()),
                publisher_id: publisher.clone(),
                key_hash: hex::encode(digest(key.expose_secret())),
                prefix,
                created_at: Utc::now(),
            })
            .await?;
        Ok((record, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::testing::TestDb;

    #[tokio::test]
    async fn admin_token_is_generated_once_and_keys_authenticate() {
        let db = TestDb::sqlite();
        let store = db.open().await.unwrap();
        let cache = Arc::new(ReadCache::new(store.clone()));
        cache.poll().await;
        let (auth, boot) = Authenticator::bootstrap(store.clone(), cache.clone(), None)
            .await
            .unwrap();
        let AdminBootstrap::Generated(token) = boot else {
            panic!("first start generates a token")
        };
        assert!(token.expose_secret().starts_with(ADMIN_TOKEN_PREFIX));
        assert_eq!(
            auth.authenticate(token.expose_secret()).await.unwrap(),
            Principal::Admin
        );
        let (again, boot) = Authenticator::bootstrap(store.clone(), cache.clone(), None)
            .await
            .unwrap();
        assert!(
            matches!(boot, AdminBootstrap::Existing),
            "second start reuses it"
        );
        assert_eq!(
            again.authenticate(token.expose_secret()).await.unwrap(),
            Principal::Admin
        );

        let publisher = PublisherId::parse("pub1").unwrap();
        let (record, key) = auth.create_api_key(&publisher).await.unwrap();
        assert!(key.expose_secret().starts_with("ssk_"));
        assert!(!record.key_hash.contains(key.expose_secret()));
        match auth.authenticate(key.expose_secret()).await.unwrap() {
            Principal::Publisher {
                publisher: p,
                key_id,
            } => {
                assert_eq!(p, publisher);
                assert_eq!(key_id, record.id);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            auth.authenticate("ssk_nope").await,
            Err(AuthError::Unknown)
        ));
        assert!(matches!(
            auth.authenticate("whatever").await,
            Err(AuthError::Unknown)
        ));
        store.revoke_api_key(&record.id).await.unwrap();
        assert!(matches!(
            auth.authenticate(key.expose_secret()).await,
            Err(AuthError::Revoked)
        ));
    }
}
