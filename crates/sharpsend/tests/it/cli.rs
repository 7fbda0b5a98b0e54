//! The CLI end to end, as an operator uses it: a fresh folder, the embedded defaults.

use std::process::Command;

fn sharpsend(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sharpsend"));
    cmd.args(args).current_dir(dir).env("RUST_LOG", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("SHARPSEND_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_api_keys_and_vault_commands_on_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let (ok, out, err) = sharpsend(d, &["migrate"]);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied (sqlite)"));
    assert!(
        d.join("data/sharpsend.db").exists(),
        "the default database and its folder are created"
    );

    let (ok, out, err) = sharpsend(d, &["api-keys", "create", "--publisher", "pub-a"]);
    assert!(ok, "{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("ssk_"));

    let (ok, out, _) = sharpsend(d, &["api-keys", "list", "--publisher", "pub-a"]);
    assert!(ok);
    assert!(out.contains(&id) && out.contains("active") && !out.contains(&key));

    let (ok, out, _) = sharpsend(d, &["api-keys", "revoke", &id]);
    assert!(ok && out.contains("revoked"));
    let (_, out, _) = sharpsend(d, &["api-keys", "list", "--publisher", "pub-a"]);
    assert!(out.contains("revoked"));
    let (ok, _, err) = sharpsend(d, &["api-keys", "revoke", "key_nope"]);
    assert!(!ok && err.contains("no API key"));
    let (ok, _, err) = sharpsend(d, &["api-keys", "create", "--publisher", "admin"]);
    assert!(!ok && err.contains("reserved"), "{err}");

    // Key file rotation: a new active key, the old one kept until pruned.
    let (ok, _, err) = sharpsend(d, &["vault", "status"]);
    assert!(ok, "{err}");
    let key_file = d.join("data/master.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    let (ok, out, err) = sharpsend(d, &["vault", "rotate"]);
    assert!(ok, "{err}");
    assert!(out.contains("re-encrypted 0 credential(s)"), "{out}");
    let (_, status, _) = sharpsend(d, &["vault", "status"]);
    assert!(status.contains("retired key"), "{status}");
    let (ok, _, err) = sharpsend(d, &["vault", "rotate", "--prune"]);
    assert!(ok, "{err}");
    let (_, status, _) = sharpsend(d, &["vault", "status"]);
    assert!(!status.contains("retired key"), "{status}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Configuration errors name the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_sharpsend"))
        .args(["migrate"])
        .current_dir(d)
        .env("SHARPSEND_DATABASE_URL", "mysql://nope")
        .env("SHARPSEND_UPSTREAM_TIMEOUT_MS", "soon")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("SHARPSEND_DATABASE_URL") && err.contains("SHARPSEND_UPSTREAM_TIMEOUT_MS"),
        "{err}"
    );
}
