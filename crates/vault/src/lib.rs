//! The credential vault (CONTRACT §5).
//!
//! Every stored secret is sealed on its own with XChaCha20-Poly1305 under the active master key,
//! in a self-describing envelope:
//!
//! ```text
//! [version: 1 byte = 0x01][key id: 4 bytes, big-endian][nonce: 24 bytes][ciphertext + 16-byte tag]
//! ```
//!
//! The associated data binds each ciphertext to its integration and field ([`Aad`]), so a blob
//! copied to another row or field fails to open. The key id names which master key sealed it, so
//! the keyring can hold the new key and the retired ones at once: new writes use the active key,
//! old rows still open, and `sharpsend vault rotate` re-seals them at leisure — no downtime.
//!
//! A wrong key, a tampered or truncated blob, or an unknown key id is an error, never a panic and
//! never a plaintext fallback.
#![forbid(unsafe_code)]

pub mod keyring;

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

pub use keyring::{KeyId, KeySource, Keyring, MasterKey, MasterKeyError};

const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// What a ciphertext is bound to: the integration that owns it and the credential field.
#[derive(Clone, Copy, Debug)]
pub struct Aad<'a> {
    pub integration_id: &'a str,
    pub field: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Length-prefixed so that ("a:b", "c") and ("a", "b:c") can never collide.
        let mut out = b"sharpsend/credential/v1".to_vec();
        for part in [self.integration_id, self.field] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Why a sealed secret could not be opened (or sealed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("stored secret is malformed (too short or unknown envelope version)")]
    Malformed,
    #[error("stored secret was sealed with master key {0}, which this keyring does not hold")]
    UnknownKey(KeyId),
    #[error(
        "stored secret failed authentication: wrong master key, tampered data, or moved from another row"
    )]
    Tampered,
    #[error("stored secret is not valid UTF-8")]
    NotUtf8,
    #[error("encryption failed")]
    Seal,
}

/// A sealed secret as stored: the envelope bytes and the id of the key that sealed them.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: KeyId,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Reads the key id of an envelope without opening it.
pub fn envelope_key_id(bytes: &[u8]) -> Result<KeyId, VaultError> {
    if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != ENVELOPE_VERSION {
        return Err(VaultError::Malformed);
    }
    let mut id = [0u8; 4];
    id.copy_from_slice(&bytes[1..5]);
    Ok(KeyId(u32::from_be_bytes(id)))
}

/// Seals and opens secrets with a keyring. Holds the keyring's source so a file keyring that was
/// rotated by another process can be re-read when an unknown key id turns up.
pub struct Vault {
    keyring: std::sync::RwLock<std::sync::Arc<Keyring>>,
    source: KeySource,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("active_key_id", &self.active_key_id())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn new(keyring: Keyring, source: KeySource) -> Self {
        Self {
            keyring: std::sync::RwLock::new(std::sync::Arc::new(keyring)),
            source,
        }
    }

    /// Loads the keyring from its source (creating the key file on first use).
    pub fn load(source: KeySource) -> Result<Self, MasterKeyError> {
        let keyring = source.load()?;
        Ok(Self::new(keyring, source))
    }

    fn keyring(&self) -> std::sync::Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn active_key_id(&self) -> KeyId {
        self.keyring().active().id()
    }

    /// Whether this keyring can open secrets sealed under `id`.
    pub fn knows(&self, id: KeyId) -> bool {
        self.keyring().get(id).is_some()
    }

    /// Seals `plaintext` under the active key, bound to `aad`.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &SecretString) -> Result<Sealed, VaultError> {
        let keyring = self.keyring();
        let key = keyring.active();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(key.material().into());
        let ad = aad.bytes();
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &ad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        bytes.push(ENVELOPE_VERSION);
        bytes.extend_from_slice(&key.id().0.to_be_bytes());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: key.id(),
            bytes,
        })
    }

    /// Opens a sealed secret bound to `aad`.
    pub fn open(&self, aad: Aad<'_>, bytes: &[u8]) -> Result<SecretString, VaultError> {
        let key_id = envelope_key_id(bytes)?;
        let mut keyring = self.keyring();
        if keyring.get(key_id).is_none() && self.source.reloadable() {
            // Another process may have rotated the key file since we loaded it.
            if let Ok(fresh) = self.source.load() {
                let fresh = std::sync::Arc::new(fresh);
                *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
                keyring = fresh;
            }
        }
        let key = keyring.get(key_id).ok_or(VaultError::UnknownKey(key_id))?;
        let cipher = XChaCha20Poly1305::new(key.material().into());
        let plaintext = cipher
            .decrypt(
                XNonce::from_slice(&bytes[5..HEADER_LEN]),
                Payload {
                    msg: &bytes[HEADER_LEN..],
                    aad: &aad.bytes(),
                },
            )
            .map_err(|_| VaultError::Tampered)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| VaultError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::new(
            Keyring::new(MasterKey::generate(), vec![]),
            KeySource::Fixed,
        )
    }

    fn err(r: Result<SecretString, VaultError>) -> VaultError {
        r.expect_err("expected an error")
    }

    const AAD: Aad<'static> = Aad {
        integration_id: "int_1",
        field: "apiKey",
    };

    #[test]
    fn round_trip() {
        let v = vault();
        let sealed = v.seal(AAD, &SecretString::from("s3cret-value")).unwrap();
        assert_eq!(sealed.key_id, v.active_key_id());
        assert_eq!(
            v.open(AAD, &sealed.bytes).unwrap().expose_secret(),
            "s3cret-value"
        );
        assert!(!sealed.bytes.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let v = vault();
        let a = v.seal(AAD, &SecretString::from("x")).unwrap();
        let b = v.seal(AAD, &SecretString::from("x")).unwrap();
        assert_ne!(a.bytes, b.bytes, "nonces must be random");
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let v = vault();
        let sealed = v.seal(AAD, &SecretString::from("tamper me")).unwrap();
        for i in 0..sealed.bytes.len() {
            let mut bad = sealed.bytes.clone();
            bad[i] ^= 0x01;
            let err = v.open(AAD, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    VaultError::Tampered | VaultError::Malformed | VaultError::UnknownKey(_)
                ),
                "byte {i}: {err:?}"
            );
        }
        assert_eq!(err(v.open(AAD, &sealed.bytes[..10])), VaultError::Malformed);
        assert_eq!(err(v.open(AAD, &[])), VaultError::Malformed);
    }

    #[test]
    fn blob_moved_to_another_row_or_field_fails() {
        let v = vault();
        let sealed = v.seal(AAD, &SecretString::from("x")).unwrap();
        let other_row = Aad {
            integration_id: "int_2",
            field: "apiKey",
        };
        let other_field = Aad {
            integration_id: "int_1",
            field: "refreshToken",
        };
        assert_eq!(err(v.open(other_row, &sealed.bytes)), VaultError::Tampered);
        assert_eq!(
            err(v.open(other_field, &sealed.bytes)),
            VaultError::Tampered
        );
    }

    #[test]
    fn wrong_key_is_a_clean_error() {
        let v = vault();
        let sealed = v.seal(AAD, &SecretString::from("x")).unwrap();
        let other = vault();
        assert_eq!(
            err(other.open(AAD, &sealed.bytes)),
            (VaultError::UnknownKey(sealed.key_id))
        );
        // Same key id but other material (a forged header) still fails authentication.
        let mut forged = other.seal(AAD, &SecretString::from("x")).unwrap().bytes;
        forged[1..5].copy_from_slice(&sealed.key_id.0.to_be_bytes());
        assert_eq!(err(v.open(AAD, &forged)), VaultError::Tampered);
    }

    #[test]
    fn retired_keys_still_open() {
        let old = MasterKey::generate();
        let old_vault = Vault::new(Keyring::new(old.clone(), vec![]), KeySource::Fixed);
        let sealed = old_vault.seal(AAD, &SecretString::from("kept")).unwrap();
        let new_vault = Vault::new(
            Keyring::new(MasterKey::generate(), vec![old]),
            KeySource::Fixed,
        );
        assert_ne!(new_vault.active_key_id(), sealed.key_id);
        assert_eq!(
            new_vault.open(AAD, &sealed.bytes).unwrap().expose_secret(),
            "kept"
        );
        let resealed = new_vault.seal(AAD, &SecretString::from("kept")).unwrap();
        assert_eq!(resealed.key_id, new_vault.active_key_id());
    }
}
