//! Build identity stamped on every campaign record: git commit (and whether the tree
//! had uncommitted changes), the SHA-256 of the workspace's Cargo.lock, `rustc -V`, the
//! enabled features, the profile and the crate version.
//!
//! rustc, features and profile are baked in at build time (build.rs); git and Cargo.lock
//! are read at run time from the workspace the binary was built in (falling back to the
//! current directory), "unknown" when there is none.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// What built the binary that made a run: defined with the reports that show it.
pub use mimi_reports::records::campaign::Build;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The identity of this binary, as far as it can be found.
pub fn current() -> Build {
    let roots = [workspace_root(), PathBuf::from(".")];
    let (git_commit, git_dirty) = roots
        .iter()
        .find_map(|r| {
            let c = git(r, &["rev-parse", "HEAD"])?;
            let dirty = git(r, &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            Some((c, dirty))
        })
        .unwrap_or_else(|| ("unknown".into(), false));
    let cargo_lock_sha256 = roots
        .iter()
        .find_map(|r| std::fs::read(r.join("Cargo.lock")).ok())
        .map(|b| hex::encode(Sha256::digest(&b)))
        .unwrap_or_else(|| "unknown".into());
    let features = env!("MIMI_SIM_FEATURES")
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    Build {
        git_commit,
        git_dirty,
        cargo_lock_sha256,
        rustc: env!("MIMI_SIM_RUSTC").to_string(),
        features,
        profile: env!("MIMI_SIM_PROFILE").to_string(),
        mimi_sim_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}
