//! The hub-shadow replay against the mlswg/mls-implementations passive-client vectors
//! (written by mls-rs and MLSpp), plus planted faults showing that it notices tampering,
//! and the exit codes of `mimi-sim vectors mls`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mimi_sim::vectors::rfc9420::decode_key_package;
use mimi_sim::vectors::{
    check_key_package, parse_passive_client_tests, replay_passive_client_tests, replay_test,
    Disagreement, HubViewOrigin, KeyPackageCheck, PassiveClientTest, ReplayReport,
    Rfc9420CheckCounts, SkipReason, Step, TestOutcome, Verdict,
};

/// The vendored vector files (`testdata/README.md` gives their source and licence).
const HANDLING_COMMIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/mls/passive-client-handling-commit.json"
);
const WELCOME: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/mls/passive-client-welcome.json"
);

/// Bytes at the end of a member's commit PublicMessage (RFC 9420 §6.2) for the SHA-256
/// suites: membership_tag<V> (1 + 32) after confirmation_tag<V> (1 + 32) after the
/// Ed25519 signature<V> (1 + 64).
const MAC_FIELD: usize = 33;
const ED25519_SIGNATURE_FIELD: usize = 65;

fn load_file(path: &str) -> Vec<PassiveClientTest> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e} (vendored in testdata/mls/)"));
    parse_passive_client_tests(&bytes).expect("vector file parses")
}

fn load() -> Vec<PassiveClientTest> {
    load_file(HANDLING_COMMIT)
}

fn unsupported(suite: u16) -> String {
    SkipReason::UnsupportedCipherSuite(suite).to_string()
}

#[test]
fn handling_commit_vectors_all_agree_on_client_and_hub() {
    let tests = load();
    assert_eq!(tests.len(), 91);

    let mut report = ReplayReport::default();
    for (index, test) in tests.iter().enumerate() {
        let check = check_key_package(&test.key_package);
        assert_eq!(check, KeyPackageCheck::Conforms, "test {index}");
        report.record_check(&check);
        let outcome = replay_test(index, test);
        if (1..=3).contains(&test.cipher_suite) {
            // Every test of a supported suite is replayed on both sides and agrees.
            match &outcome {
                TestOutcome::Replayed {
                    hub_skipped: None,
                    hub_view: Some(_),
                    epochs_agreeing,
                    failure: None,
                } => assert_eq!(*epochs_agreeing, 1 + test.epochs.len(), "test {index}"),
                other => panic!("test {index} (suite {}): {other:?}", test.cipher_suite),
            }
        } else {
            assert_eq!(
                outcome,
                TestOutcome::Skipped(SkipReason::UnsupportedCipherSuite(test.cipher_suite)),
                "test {index}"
            );
        }
        report.record(outcome);
    }

    assert_eq!(report.tests, 91);
    assert_eq!(report.run, 39);
    assert_eq!(report.agreeing, report.run);
    assert_eq!(report.disagreeing, 0);
    assert!(!report.has_disagreement());
    assert!(report.failures.is_empty());
    // The join plus two epochs per test.
    assert_eq!(report.epochs_agreeing, 39 * 3);
    assert_eq!(
        report.hub_views_from_group_info + report.hub_views_after_expired_lifetime,
        39
    );
    let expected: BTreeMap<String, usize> = (4..=7).map(|s| (unsupported(s), 13)).collect();
    assert_eq!(
        report.skipped, expected,
        "only unsupported suites are skipped"
    );
    assert_eq!(
        report.client_only.checked, 0,
        "no private handshakes in this file"
    );
    // Every key package was read by our RFC 9420 check and none breaks it: their
    // capabilities list no extensions and they carry none (decoded: 91 of 91).
    assert_eq!(
        report.rfc9420_check,
        Rfc9420CheckCounts {
            key_packages_checked: 91,
            key_packages_undecodable: 0
        }
    );
    assert_eq!(report.violating_rfc9420, 0);

    // The file-level entry point totals the same.
    assert_eq!(replay_passive_client_tests(&tests), report);
}

#[test]
fn welcome_vectors_all_agree_and_none_breaks_rfc_9420() {
    let tests = load_file(WELCOME);
    assert_eq!(tests.len(), 56);
    assert!(tests.iter().all(|t| t.epochs.is_empty()), "joins only");
    let with_tree = tests.iter().filter(|t| t.ratchet_tree.is_some()).count();
    assert_eq!(
        with_tree, 28,
        "half bring the ratchet tree beside the Welcome"
    );

    let report = replay_passive_client_tests(&tests);
    assert_eq!(report.tests, 56);
    // 8 tests for each of suites 1-3.
    assert_eq!(report.run, 24);
    assert_eq!(report.agreeing, 24, "{report}");
    assert_eq!(report.disagreeing, 0, "{report}");
    assert_eq!(
        report.epochs_agreeing, 24,
        "the join is the only epoch check"
    );
    let expected: BTreeMap<String, usize> = (4..=7).map(|s| (unsupported(s), 8)).collect();
    assert_eq!(report.skipped, expected);
    assert_eq!(report.rfc9420_check.key_packages_checked, 56);
    assert_eq!(report.rfc9420_check.key_packages_undecodable, 0);
    assert_eq!(report.violating_rfc9420, 0);
}

// ---- inputs that break RFC 9420 ----

/// Where a planted extension goes.
#[derive(Clone, Copy)]
enum Plant {
    /// The KeyPackage's own `extensions` (RFC 9420 §10).
    KeyPackageExtensions,
    /// `leaf_node.extensions` (RFC 9420 §7.2).
    LeafExtensions,
}

/// `last_resort` (draft-ietf-mls-extensions): the KeyPackage extension some generators
/// emit without listing it in the leaf's capabilities.
const LAST_RESORT: u16 = 0x000a;

/// Adds an extension of `extension_type` with empty data to a suite-1 vector key package
/// that carries none. Such a key package ends (RFC 9420 §7.2, §10) with
/// `leaf_node.extensions<V>` = 0x00, the leaf's Ed25519 `signature<V>` (0x40 0x40 and 64
/// bytes), the KeyPackage's `extensions<V>` = 0x00 and its `signature<V>` (0x40 0x40, 64).
/// Signatures are left as they are: the RFC check reads structure only.
fn plant_extension(key_package: &mut Vec<u8>, plant: Plant, extension_type: u16) {
    const SIGNED_TAIL: usize = 1 + 2 + 64;
    let at = match plant {
        Plant::KeyPackageExtensions => key_package.len() - SIGNED_TAIL,
        Plant::LeafExtensions => key_package.len() - 2 * SIGNED_TAIL,
    };
    assert_eq!(
        key_package[at..at + 3],
        [0x00, 0x40, 0x40],
        "an empty extensions<V> before a 64-byte signature<V>"
    );
    let [hi, lo] = extension_type.to_be_bytes();
    // extensions<V> of one Extension { extension_type, extension_data<V> = empty }.
    key_package.splice(at..at + 1, [0x03, hi, lo, 0x00]);
}

#[test]
fn a_key_package_extension_missing_from_capabilities_is_reported_as_violating_rfc_9420() {
    let mut test = load().swap_remove(0);
    assert_eq!(test.cipher_suite, 1);
    plant_extension(
        &mut test.key_package,
        Plant::KeyPackageExtensions,
        LAST_RESORT,
    );
    let fields = decode_key_package(&test.key_package).expect("the plant still decodes");
    assert_eq!(fields.key_package_extensions, vec![LAST_RESORT]);
    assert!(fields.capability_extensions.is_empty());

    let TestOutcome::ViolatesRfc9420(found) = replay_test(0, &test) else {
        panic!("the planted violation went unnoticed");
    };
    assert_eq!(found.test, 0);
    match found.violations.as_slice() {
        [v] => {
            assert_eq!(v.section, "RFC 9420 §10");
            assert!(v.detail.contains("0x000a"), "{v}");
        }
        other => panic!("expected one violation: {other:?}"),
    }
    assert!(
        matches!(found.client, Verdict::Rejected(_)),
        "openmls refuses it too: {}",
        found.client
    );

    // In a file: not agreement, not disagreement.
    let mut tests = load();
    tests[0] = test;
    let report = replay_passive_client_tests(&tests);
    assert_eq!(report.violating_rfc9420, 1);
    assert_eq!(
        (report.run, report.agreeing, report.disagreeing),
        (38, 38, 0)
    );
    assert!(!report.has_disagreement());
    assert_eq!(report.rfc9420_violations[0].test, 0);
    assert_eq!(report.rfc9420_check.key_packages_checked, 91);
}

#[test]
fn a_leaf_extension_missing_from_capabilities_is_reported_as_violating_rfc_9420() {
    let mut test = load().swap_remove(1);
    assert_eq!(test.cipher_suite, 1);
    plant_extension(&mut test.key_package, Plant::LeafExtensions, 0xff02);
    let TestOutcome::ViolatesRfc9420(found) = replay_test(1, &test) else {
        panic!("the planted violation went unnoticed");
    };
    match found.violations.as_slice() {
        [v] => {
            assert_eq!(v.section, "RFC 9420 §7.2");
            assert!(v.detail.contains("leaf_node extension(s) 0xff02"), "{v}");
        }
        other => panic!("expected one violation: {other:?}"),
    }

    // A default extension type (application_id) need not be listed: no violation, and
    // the replay runs (and fails on the broken leaf signature: a disagreement).
    let mut test = load().swap_remove(1);
    plant_extension(&mut test.key_package, Plant::LeafExtensions, 0x0001);
    assert_eq!(
        check_key_package(&test.key_package),
        KeyPackageCheck::Conforms
    );
    assert!(matches!(
        replay_test(1, &test),
        TestOutcome::Replayed {
            failure: Some(_),
            ..
        }
    ));
}

/// Flip one bit of `bytes[index]`.
fn flip(bytes: &mut [u8], index: usize) {
    bytes[index] ^= 0x01;
}

#[test]
fn tampered_membership_tag_is_rejected_by_the_client_and_accepted_by_the_hub() {
    // The hub cannot check membership tags (it lacks the membership key): this is the
    // hub-vs-member split the replay must expose, not hide.
    let mut test = load().swap_remove(0);
    assert_eq!(test.cipher_suite, 1);
    let commit = &mut test.epochs[1].commit;
    let last = commit.len() - 1;
    flip(commit, last);

    let TestOutcome::Replayed {
        failure: Some(failure),
        epochs_agreeing,
        ..
    } = replay_test(0, &test)
    else {
        panic!("tampering went unnoticed");
    };
    assert_eq!(epochs_agreeing, 2, "join and epoch 1 still agree");
    assert_eq!(failure.test, 0);
    assert_eq!(failure.epoch, 2);
    match failure.disagreements.as_slice() {
        [Disagreement::Rejected {
            step: Step::Commit,
            client: Verdict::Rejected(_),
            hub: Verdict::Accepted,
        }] => {}
        other => panic!("unexpected disagreement: {other:?}"),
    }
}

#[test]
fn tampered_commit_signature_is_rejected_by_both() {
    let mut test = load().swap_remove(0);
    let commit = &mut test.epochs[0].commit;
    let inside_signature = commit.len() - 2 * MAC_FIELD - ED25519_SIGNATURE_FIELD / 2;
    flip(commit, inside_signature);

    let TestOutcome::Replayed {
        failure: Some(failure),
        ..
    } = replay_test(0, &test)
    else {
        panic!("tampering went unnoticed");
    };
    assert_eq!(failure.epoch, 1);
    assert!(
        matches!(
            failure.disagreements.as_slice(),
            [Disagreement::Rejected {
                step: Step::Commit,
                client: Verdict::Rejected(_),
                hub: Verdict::Rejected(_),
            }]
        ),
        "{failure}"
    );
}

#[test]
fn tampered_proposal_is_reported_at_its_index() {
    let tests = load();
    let (index, mut test) = tests
        .into_iter()
        .enumerate()
        .find(|(_, t)| t.cipher_suite == 1 && t.epochs[1].proposals.len() > 1)
        .expect("a suite-1 test with several proposals");
    let proposal = &mut test.epochs[1].proposals[1];
    let inside_signature = proposal.len() - MAC_FIELD - ED25519_SIGNATURE_FIELD / 2;
    flip(proposal, inside_signature);

    let TestOutcome::Replayed {
        failure: Some(failure),
        ..
    } = replay_test(index, &test)
    else {
        panic!("tampering went unnoticed");
    };
    assert_eq!((failure.test, failure.epoch), (index, 2));
    assert!(
        matches!(
            failure.disagreements.as_slice(),
            [Disagreement::Rejected {
                step: Step::Proposal { index: 1 },
                client: Verdict::Rejected(_),
                hub: Verdict::Rejected(_),
            }]
        ),
        "{failure}"
    );
}

#[test]
fn wrong_expected_epoch_authenticator_is_a_disagreement() {
    let mut test = load().swap_remove(13);
    assert_eq!(test.cipher_suite, 2, "covers the P-256 suite too");
    let expected = &mut test.epochs[1].epoch_authenticator;
    flip(expected, 0);
    let wanted = hex::encode(&*expected);

    let TestOutcome::Replayed {
        failure: Some(failure),
        epochs_agreeing,
        ..
    } = replay_test(13, &test)
    else {
        panic!("a wrong authenticator went unnoticed");
    };
    assert_eq!(epochs_agreeing, 2);
    assert_eq!(failure.epoch, 2);
    match failure.disagreements.as_slice() {
        [Disagreement::EpochAuthenticator { expected, client }] => {
            assert_eq!(expected, &wanted);
            assert_ne!(client, &wanted);
        }
        other => panic!("unexpected disagreement: {other:?}"),
    }

    // And at the join: the initial authenticator.
    let mut test = load().swap_remove(26);
    flip(&mut test.initial_epoch_authenticator, 5);
    let outcome = replay_test(26, &test);
    assert!(
        matches!(&outcome, TestOutcome::Replayed { failure: Some(f), epochs_agreeing: 0, .. }
            if f.epoch == 0 && matches!(f.disagreements.as_slice(), [Disagreement::EpochAuthenticator { .. }])),
        "{outcome:?}"
    );
}

#[test]
fn wrong_private_key_fails_the_join_without_panicking() {
    let mut test = load().swap_remove(1);
    flip(&mut test.init_priv, 3);
    let outcome = replay_test(1, &test);
    assert!(
        matches!(&outcome, TestOutcome::Replayed { failure: Some(f), hub_view: None, .. }
            if f.epoch == 0 && matches!(f.disagreements.as_slice(), [Disagreement::Rejected {
                step: Step::Welcome, client: Verdict::Rejected(_), hub: Verdict::NotRun }])),
        "{outcome:?}"
    );

    let mut test = load().swap_remove(1);
    test.signature_priv.pop();
    let outcome = replay_test(1, &test);
    assert!(
        matches!(&outcome, TestOutcome::Replayed { failure: Some(f), .. }
            if matches!(f.disagreements.as_slice(), [Disagreement::Rejected {
                step: Step::SignatureKey, .. }])),
        "{outcome:?}"
    );
}

#[test]
fn hub_view_origin_is_reported() {
    let test = load().swap_remove(0);
    let TestOutcome::Replayed {
        hub_view: Some(origin),
        ..
    } = replay_test(0, &test)
    else {
        panic!("no hub view");
    };
    // The vectors' trees hold leaves that expired in March 2025; openmls' from_external
    // rejects them for that reason only, so the hub loads the client's checked state.
    assert_eq!(origin, HubViewOrigin::ClientStateAfterExpiredLifetime);
}

#[test]
fn private_handshake_skips_the_hub_but_still_checks_the_client() {
    // A syntactically valid PrivateMessage (RFC 9420 §6.3): version 1, wire format 2,
    // group_id<V>, epoch, content_type commit, authenticated_data<V>,
    // encrypted_sender_data<V>, ciphertext<V>. The hub cannot read it; the client tries
    // and, as the bytes are not a real ciphertext of this group, rejects it.
    let private_commit = [
        0x00, 0x01, 0x00, 0x02, 0x01, 0xaa, 0, 0, 0, 0, 0, 0, 0, 1, 0x03, 0x00, 0x01, 0xbb, 0x01,
        0xcc,
    ];
    let mut test = load().swap_remove(2);
    test.epochs[1].commit = private_commit.to_vec();

    let outcome = replay_test(2, &test);
    let TestOutcome::Replayed {
        hub_skipped: Some(SkipReason::PrivateHandshake),
        hub_view: None,
        epochs_agreeing: 2,
        failure: Some(failure),
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert!(
        matches!(
            failure.disagreements.as_slice(),
            [Disagreement::Rejected {
                step: Step::Commit,
                client: Verdict::Rejected(_),
                hub: Verdict::NotRun,
            }]
        ),
        "{failure}"
    );

    let mut report = ReplayReport::default();
    report.record(outcome);
    assert_eq!((report.run, report.agreeing, report.disagreeing), (0, 0, 1));
    assert_eq!(report.skipped.get("private handshake"), Some(&1));
    assert_eq!(report.client_only.checked, 1);
    assert_eq!(report.client_only.agreeing, 0);
}

// ---- the command line ----

fn mimi_sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mls_vectors");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

#[test]
fn cli_exits_0_when_all_agree_and_prints_one_json_object() {
    let out = mimi_sim()
        .args(["vectors", "mls", HANDLING_COMMIT, "--json"])
        .output()
        .expect("run mimi-sim");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["tests"], 91);
    assert_eq!(json["run"], 39);
    assert_eq!(json["agreeing"], 39);
    assert_eq!(json["disagreeing"], 0);
    assert_eq!(json["skipped"]["unsupported cipher suite 7"], 13);
    assert_eq!(json["violating_rfc9420"], 0);
    assert_eq!(json["rfc9420_check"]["key_packages_checked"], 91);

    let human = mimi_sim()
        .args(["vectors", "mls", HANDLING_COMMIT])
        .output()
        .expect("run mimi-sim");
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("tests:     91"), "{text}");
    assert!(text.contains("agreeing:  39"), "{text}");
    assert!(text.contains("violates RFC 9420: 0"), "{text}");
}

#[test]
fn cli_exits_1_on_a_tampered_file() {
    let text = std::fs::read_to_string(HANDLING_COMMIT).expect("vector file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let commit = json[0]["epochs"][1]["commit"]
        .as_str()
        .expect("commit hex")
        .to_string();
    // Flip the last hex digit: one bit of the membership tag.
    let mut tampered = commit.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == '0' { '1' } else { '0' });
    json[0]["epochs"][1]["commit"] = serde_json::Value::String(tampered);
    let path = scratch("tampered-handling-commit.json");
    std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");

    let report = vectors_mls_json(&path, 1, "a disagreement exits 1");
    assert_eq!(report["disagreeing"], 1);
    assert_eq!(report["agreeing"], 38);
    assert_eq!(report["failures"][0]["test"], 0);
    assert_eq!(report["failures"][0]["epoch"], 2);
    assert_eq!(report["failures"][0]["disagreements"][0]["hub"], "accepted");
}

#[test]
fn cli_reports_a_vector_violating_rfc_9420_on_its_own_line_and_exits_0() {
    let text = std::fs::read_to_string(HANDLING_COMMIT).expect("vector file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut key_package = hex::decode(json[0]["key_package"].as_str().expect("hex")).unwrap();
    plant_extension(&mut key_package, Plant::KeyPackageExtensions, LAST_RESORT);
    json[0]["key_package"] = serde_json::Value::String(hex::encode(&key_package));
    let path = scratch("violating-handling-commit.json");
    std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");

    let report = vectors_mls_json(&path, 0, "a violation is not a disagreement");
    assert_eq!(report["violating_rfc9420"], 1);
    assert_eq!(report["agreeing"], 38);
    assert_eq!(report["disagreeing"], 0);
    let found = &report["rfc9420_violations"][0];
    assert_eq!(found["test"], 0);
    assert_eq!(found["violations"][0]["section"], "RFC 9420 §10");

    let human = mimi_sim()
        .args(["vectors", "mls"])
        .arg(&path)
        .output()
        .expect("run mimi-sim");
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("violates RFC 9420: 1"), "{text}");
    assert!(
        text.contains("RFC test 0: RFC 9420 §10: a KeyPackage's extensions must be listed"),
        "{text}"
    );
    assert!(text.contains("agreeing:  38"), "{text}");
}

#[test]
fn cli_exits_2_on_bad_input_and_names_the_file() {
    let missing = scratch("no-such-file.json");
    let _ = std::fs::remove_file(&missing);
    let out = mimi_sim()
        .args(["vectors", "mls"])
        .arg(&missing)
        .output()
        .expect("run mimi-sim");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-file.json"), "{err}");

    let malformed = scratch("malformed.json");
    std::fs::write(&malformed, b"[{\"cipher_suite\": 1,").expect("write");
    let out = mimi_sim()
        .args(["vectors", "mls"])
        .arg(&malformed)
        .output()
        .expect("run mimi-sim");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("malformed.json") && err.contains("JSON"),
        "{err}"
    );

    let bad_hex = scratch("bad-hex.json");
    let text = std::fs::read_to_string(HANDLING_COMMIT).expect("vector file");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json[3]["welcome"] = serde_json::Value::String("zz".into());
    std::fs::write(&bad_hex, serde_json::to_vec(&json).expect("encode")).expect("write");
    let out = mimi_sim()
        .args(["vectors", "mls"])
        .arg(&bad_hex)
        .output()
        .expect("run mimi-sim");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("test 3") && err.contains("welcome"), "{err}");
}

/// `mimi-sim vectors mls PATH --json`: checks the exit code (`why` says what it means) and
/// returns the one JSON report it prints.
fn vectors_mls_json(path: &std::path::Path, code: i32, why: &str) -> serde_json::Value {
    let out = mimi_sim()
        .args(["vectors", "mls"])
        .arg(path)
        .arg("--json")
        .output()
        .expect("run mimi-sim");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{why}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}
