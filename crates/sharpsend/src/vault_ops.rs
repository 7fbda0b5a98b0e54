//! Master-key rotation (`sharpsend vault rotate`): re-seal every stored secret (platform
//! credentials and event destinations' signing secrets) under the active key. Old keys stay in the keyring until no row needs them, so running servers keep working
//! throughout (docs/security.md#rotating-the-master-key).

use std::sync::Arc;

use store::{SealedField, Store};
use vault::{Aad, KeySource, Keyring, MasterKey, Vault, keyring::write_key_file};

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Secrets re-sealed under the active key.
    pub resealed: u64,
    /// Secrets that changed under us (a token refresh) and were already re-sealed by their writer.
    pub changed_concurrently: u64,
}

/// Re-seals every secret that is not under the vault's active key.
pub async fn reseal_all(store: &Arc<dyn Store>, vault: &Vault) -> anyhow::Result<RotationReport> {
    let active = vault.active_key_id();
    let mut report = RotationReport::default();
    loop {
        let batch = store.credentials_not_under(active.0, 200).await?;
        if batch.is_empty() {
            break;
        }
        let mut progressed = false;
        for row in batch {
            let aad = Aad {
                integration_id: &row.integration_id,
                field: &row.sealed.field,
            };
            let secret = vault.open(aad, &row.sealed.ciphertext).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} of integration {} (sealed under key {:08x}): {e}. Is the old key in \
                     SHARPSEND_MASTER_KEY_RETIRED or the key file?",
                    row.sealed.field,
                    row.integration_id,
                    row.sealed.key_id
                )
            })?;
            let sealed = vault.seal(aad, &secret)?;
            let new = SealedField {
                field: row.sealed.field.clone(),
                key_id: sealed.key_id.0,
                ciphertext: sealed.bytes,
            };
            if store.reseal_credential(&row, &new).await? {
                report.resealed += 1;
            } else {
                report.changed_concurrently += 1;
            }
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    reseal_destination_secrets(store, vault, &mut report).await?;
    Ok(report)
}

/// The event destinations' signing secrets (the current one and a rotated-out one still
/// signing), sealed under the destination's id.
async fn reseal_destination_secrets(
    store: &Arc<dyn Store>,
    vault: &Vault,
    report: &mut RotationReport,
) -> anyhow::Result<()> {
    let active = vault.active_key_id();
    for d in store.all_destinations().await? {
        let current = Some(d.secret.as_slice());
        let previous = d.old_secret.as_ref().map(|(s, _)| s.as_slice());
        for (is_previous, sealed) in [(false, current), (true, previous)] {
            let Some(sealed) = sealed else { continue };
            if vault::envelope_key_id(sealed).is_ok_and(|k| k == active) {
                continue;
            }
            let aad = Aad {
                integration_id: &d.id,
                field: crate::destinations::SECRET_FIELD,
            };
            let secret = vault.open(aad, sealed).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the signing secret of destination {}: {e}. Is the old key in \
                     SHARPSEND_MASTER_KEY_RETIRED or the key file?",
                    d.id
                )
            })?;
            let new = vault.seal(aad, &secret)?;
            if store
                .reseal_destination_secret(&d.id, is_previous, sealed, &new.bytes, new.key_id.0)
                .await?
            {
                report.resealed += 1;
            } else {
                report.changed_concurrently += 1;
            }
        }
    }
    Ok(())
}

/// Whether any destination secret is sealed under another key than `active`.
async fn destination_secrets_outside(
    store: &Arc<dyn Store>,
    active: vault::KeyId,
) -> anyhow::Result<bool> {
    Ok(store.all_destinations().await?.iter().any(|d| {
        std::iter::once(d.secret.as_slice())
            .chain(d.old_secret.as_ref().map(|(s, _)| s.as_slice()))
            .any(|s| !vault::envelope_key_id(s).is_ok_and(|k| k == active))
    }))
}

/// `vault rotate`: with a key file, a new key goes first in the file (older keys stay, so running
/// servers still open old rows and pick the new key up by themselves); with
/// `SHARPSEND_MASTER_KEY`, the active key is the one the operator set. Then every secret is
/// re-sealed under the active key. Answers the vault used and what it did.
pub async fn rotate(
    store: &Arc<dyn Store>,
    source: &KeySource,
) -> anyhow::Result<(Vault, RotationReport)> {
    let vault = match source {
        KeySource::File(path) => {
            let current = source.load()?;
            let mut retired = vec![current.active().clone()];
            retired.extend(current.retired().iter().cloned());
            let next = Keyring::new(MasterKey::generate(), retired);
            write_key_file(path, &next)?;
            tracing::info!(key_id = %next.active().id(), path = %path.display(), "new master key written");
            Vault::new(next, source.clone())
        }
        _ => Vault::load(source.clone())?,
    };
    let report = reseal_all(store, &vault).await?;
    Ok((vault, report))
}

/// Drops retired keys from a key file once no secret needs them.
pub async fn prune(store: &Arc<dyn Store>, source: &KeySource) -> anyhow::Result<()> {
    let KeySource::File(path) = source else {
        anyhow::bail!(
            "with SHARPSEND_MASTER_KEY, prune by removing SHARPSEND_MASTER_KEY_RETIRED from the environment"
        );
    };
    let keyring = source.load()?;
    if !store
        .credentials_not_under(keyring.active().id().0, 1)
        .await?
        .is_empty()
        || destination_secrets_outside(store, keyring.active().id()).await?
    {
        anyhow::bail!(
            "some credentials or destination secrets still use a retired key; run `sharpsend vault rotate` again before pruning"
        );
    }
    write_key_file(path, &Keyring::new(keyring.active().clone(), vec![]))?;
    Ok(())
}
