//! The vendors' reference data the simulators' fidelity tests compare against: specs and
//! recorded answers under `../shared/vendor/<platform>/` beside the repository clone. It is the
//! vendors' text, not ours, so it stays outside the repository; a plain clone has no such folder.

use std::{io::Write as _, path::PathBuf};

/// Set to `1` (as `.ci/run` does) to make a missing vendor folder fail the tests that need it.
pub const REQUIRE_VENDOR: &str = "SHARPSEND_REQUIRE_VENDOR";

/// `../shared/vendor/<platform>` seen from a simulator crate (its `CARGO_MANIFEST_DIR`).
fn path(manifest_dir: &str, platform: &str) -> PathBuf {
    PathBuf::from(manifest_dir).join(format!("../../../shared/vendor/{platform}"))
}

/// The folder, which must be there (call [`missing`] first to skip without it).
pub fn dir(manifest_dir: &str, platform: &str) -> PathBuf {
    let dir = path(manifest_dir, platform);
    assert!(
        dir.join("SOURCE.txt").is_file(),
        "vendored {platform} reference data missing at {} (../shared/vendor/{platform} beside the clone)",
        dir.display()
    );
    dir
}

/// Whether a test that reads [`dir`] must skip: true, after a loud notice, when the folder is
/// absent; a failure instead when [`REQUIRE_VENDOR`] is `1`, so CI runs every fidelity test. The
/// notice goes straight to stderr: the test harness hides `eprintln!` of a passing test.
pub fn missing(manifest_dir: &str, platform: &str) -> bool {
    let dir = path(manifest_dir, platform);
    if dir.join("SOURCE.txt").is_file() {
        return false;
    }
    let required = std::env::var(REQUIRE_VENDOR).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{REQUIRE_VENDOR} is set but the vendored {platform} reference data is missing at {}: \
         put the shared folder (with vendor/{platform}/SOURCE.txt) beside the repository clone",
        dir.display()
    );
    let test = std::thread::current()
        .name()
        .unwrap_or("a fidelity test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "\n  !!! SKIPPING {test}: the vendored {platform} reference data is missing at {}\n  \
         !!! (../shared/vendor/{platform} beside the repository clone). Put the shared folder there to\n  \
         !!! run it; with {REQUIRE_VENDOR}=1 (as CI sets it) the test fails instead.\n",
        dir.display()
    );
    true
}
