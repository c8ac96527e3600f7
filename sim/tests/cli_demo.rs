//! The built-in default job: exit 0 with agreement at every step, and the same seed gives
//! the same events hash in two separate processes (a determinism double-run), while
//! another seed gives another hash.

use std::process::Command;

fn demo(seed: u64) -> (bool, Vec<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .args(["demo", "--json", "--seed", &seed.to_string()])
        .output()
        .unwrap();
    let reports = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.success(), reports)
}

#[test]
fn demo_agrees_at_every_step_and_is_deterministic_across_processes() {
    let (ok, a) = demo(11);
    assert!(ok);
    assert_eq!(a.len(), 3, "one report per enforcement level");
    for r in &a {
        assert_eq!(r["failed_operations"].as_array().unwrap().len(), 0, "{r}");
        for s in r["steps"].as_array().unwrap() {
            assert_eq!(s["agreement"], true, "{s}");
        }
        assert_eq!(r["messages_delivered"], 6);
    }
    let (_, b) = demo(11);
    let (_, c) = demo(12);
    for i in 0..3 {
        assert_eq!(
            a[i]["events_hash"], b[i]["events_hash"],
            "same seed, other process, other hash"
        );
        assert_ne!(a[i]["events_hash"], c[i]["events_hash"]);
    }
}

#[test]
fn a_wrong_flag_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .args(["demo", "--seed", "not-a-number"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--seed"));
}
