//! `mimi-sim vectors content FILE...` prints each file's -08 message ID; a file that is not
//! a content message makes it exit 2 with a message naming the file.

use std::process::Command;

/// A vendored upstream example (`testdata/README.md`).
fn example(name: &str) -> String {
    format!(
        "{}/../testdata/mimi-content/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn prints_the_message_ids_of_the_drafts_examples() {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .args([
            "vectors",
            "content",
            &example("original.cbor"),
            &example("reply.cbor"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The IDs written in the examples' .edn headers (draft-ietf-mimi-content-08).
    assert!(text.contains("017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4"));
    assert!(text.contains("015354973c2b65ca937bf1e035ae53a5ab80e947afa43d46920d4202e5cc0b27"));
}

#[test]
fn bad_files_exit_2_naming_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .args([
            "vectors",
            "content",
            &example("original.edn"),
            "/nonexistent.cbor",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("original.edn") && err.contains("/nonexistent.cbor"),
        "{err}"
    );
}
