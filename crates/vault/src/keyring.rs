//! Master keys, the keyring (active + retired keys) and where it comes from.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

/// Names a master key without revealing it: the first four bytes of a SHA-256 over the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// 32 bytes of key material and its id. `Debug` shows the id only.
#[derive(Clone)]
pub struct MasterKey {
    id: KeyId,
    material: std::sync::Arc<SecretBox<[u8; 32]>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// Why a master key or key file could not be used. Messages name the variable or file.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "{origin}: not valid base64 (expected base64 of 32 random bytes, e.g. from `openssl rand -base64 32`)"
    )]
    NotBase64 { origin: String },
    #[error("{origin}: decodes to {len} bytes; a master key is exactly 32 bytes")]
    WrongLength { origin: String, len: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the key file holds no key")]
    EmptyFile { path: String },
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"sharpsend master key id v1");
        h.update(bytes);
        let digest = h.finalize();
        let id = KeyId(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]));
        Self {
            id,
            material: std::sync::Arc::new(SecretBox::new(Box::new(bytes))),
        }
    }

    /// A fresh key from the OS's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses base64 of 32 bytes; `origin` names where it came from for the error message.
    pub fn parse_base64(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        let decoded = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::NotBase64 {
                origin: origin.to_owned(),
            })?;
        let bytes: [u8; 32] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::WrongLength {
                    origin: origin.to_owned(),
                    len: decoded.len(),
                })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn material(&self) -> &[u8; 32] {
        self.material.expose_secret()
    }

    /// The key as base64, for writing the key file. Handle the result as a secret.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.material()))
    }
}

/// The active key (seals) and retired keys (still open).
#[derive(Clone, Debug)]
pub struct Keyring {
    active: MasterKey,
    retired: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(active: MasterKey, retired: Vec<MasterKey>) -> Self {
        let retired = retired
            .into_iter()
            .filter(|k| k.id() != active.id())
            .collect();
        Self { active, retired }
    }

    pub fn active(&self) -> &MasterKey {
        &self.active
    }

    pub fn retired(&self) -> &[MasterKey] {
        &self.retired
    }

    pub fn get(&self, id: KeyId) -> Option<&MasterKey> {
        std::iter::once(&self.active)
            .chain(&self.retired)
            .find(|k| k.id() == id)
    }
}

/// Where the keyring comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `SHARPSEND_MASTER_KEY` (active) and `SHARPSEND_MASTER_KEY_RETIRED` (comma-separated).
    Env {
        active: SecretString,
        retired: Option<SecretString>,
    },
    /// A key file: one base64 key per line, the first active, the rest retired. Created with a
    /// fresh key (mode 0600) when missing.
    File(PathBuf),
    /// A keyring given in code (tests).
    Fixed,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env { .. } => f.write_str("Env(SHARPSEND_MASTER_KEY)"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Fixed => f.write_str("Fixed"),
        }
    }
}

impl KeySource {
    pub(crate) fn reloadable(&self) -> bool {
        matches!(self, KeySource::File(_))
    }

    /// Reads the keyring; a missing key file is created with a new key and a warning.
    pub fn load(&self) -> Result<Keyring, MasterKeyError> {
        match self {
            KeySource::Env { active, retired } => {
                let active =
                    MasterKey::parse_base64(active.expose_secret(), "SHARPSEND_MASTER_KEY")?;
                let retired = match retired {
                    None => vec![],
                    Some(list) => list
                        .expose_secret()
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .enumerate()
                        .map(|(i, k)| {
                            MasterKey::parse_base64(
                                k,
                                &format!("SHARPSEND_MASTER_KEY_RETIRED (entry {})", i + 1),
                            )
                        })
                        .collect::<Result<_, _>>()?,
                };
                Ok(Keyring::new(active, retired))
            }
            KeySource::File(path) => match read_key_file(path) {
                Ok(k) => Ok(k),
                Err(MasterKeyError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    let keyring = Keyring::new(MasterKey::generate(), vec![]);
                    write_key_file(path, &keyring)?;
                    tracing::warn!(
                        path = %path.display(),
                        key_id = %keyring.active().id(),
                        "SHARPSEND_MASTER_KEY is not set: created a new master key file. Back it up: \
                         without it the stored credentials cannot be decrypted. In production set \
                         SHARPSEND_MASTER_KEY instead."
                    );
                    Ok(keyring)
                }
                Err(e) => Err(e),
            },
            KeySource::Fixed => Ok(Keyring::new(MasterKey::generate(), vec![])),
        }
    }
}

fn io_err(path: &Path, source: std::io::Error) -> MasterKeyError {
    MasterKeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a key file: the first line is the active key, later lines are retired keys.
pub fn read_key_file(path: &Path) -> Result<Keyring, MasterKeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    warn_if_readable_by_others(path);
    let origin = path.display().to_string();
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| MasterKey::parse_base64(l, &format!("{origin} (key {})", i + 1)));
    let active = keys.next().ok_or_else(|| MasterKeyError::EmptyFile {
        path: origin.clone(),
    })??;
    let retired = keys.collect::<Result<Vec<_>, _>>()?;
    Ok(Keyring::new(active, retired))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Writes a keyring to `path` atomically (temp file, fsync, rename) with mode 0600, creating the
/// folder if needed.
pub fn write_key_file(path: &Path, keyring: &Keyring) -> Result<(), MasterKeyError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The data folder: created 0700 (an existing one is left as it is).
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_err(dir, e))?;
    let tmp = path.with_extension("key.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut text = String::from(
        "# SharpSend master keys: the first line seals, the others still open. Keep secret.\n",
    );
    for key in std::iter::once(keyring.active()).chain(keyring.retired()) {
        text.push_str(key.to_base64().expose_secret());
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .map_err(|e| io_err(&tmp, e))?;
    file.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_with_mode_0600_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let first = KeySource::File(path.clone()).load().unwrap();
        let second = KeySource::File(path.clone()).load().unwrap();
        assert_eq!(first.active().id(), second.active().id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir = std::fs::metadata(path.parent().unwrap()).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn env_key_errors_name_the_variable() {
        let err = KeySource::Env {
            active: SecretString::from("not base64!"),
            retired: None,
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(err.contains("SHARPSEND_MASTER_KEY"), "{err}");
        let err = KeySource::Env {
            active: SecretString::from(STANDARD.encode([0u8; 16])),
            retired: None,
        }
        .load()
        .unwrap_err()
        .to_string();
        assert!(err.contains("16 bytes"), "{err}");
    }

    #[test]
    fn debug_never_shows_material() {
        let k = MasterKey::generate();
        let b64 = k.to_base64();
        let dbg = format!("{:?} {:?}", k, Keyring::new(k.clone(), vec![]));
        assert!(!dbg.contains(b64.expose_secret()));
        let src = KeySource::Env {
            active: b64.clone(),
            retired: None,
        };
        assert!(!format!("{src:?}").contains(b64.expose_secret()));
    }
}
