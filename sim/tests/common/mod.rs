//! What the CLI tests share: the repository root and a `mimi-sim` run from it.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root (scenario paths in the tests are relative to it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the `mimi-sim` binary with `args` from the repository root.
pub fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}
