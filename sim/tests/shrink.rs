//! `mimi-sim shrink`: ddmin finds 1-minimal sets (a planted predicate); shrinking a
//! failing enforcement-off run with a seeded swarm gives a fixed schedule of few windows,
//! each of which is needed (removing any one loses the violation), that reproduces the
//! violation on its own; a passing run is refused with exit 1 and a clear message.

use std::process::Command;

use mimi_sim::scenario::{EnforcementLevel, Scenario};
use mimi_sim::shrink::{ddmin, one_minimal, shrink, Origin, ShrinkError, Target};
use mimi_sim::world::run::run;

/// The drafts-flows world and swarm with the five steps of the off violation: Cathy's new
/// device joins by external commit while faults delay it, and Bob bans Cathy. Under
/// `off` the join lands after the ban at seed 45 (found by `batch`, shrunk by hand).
const SCENARIO: &str = r#"
name = "shrink-test"
[world]
providers = ["a.example", "b.example", "c.example"]
room = { name = "clubhouse", hub = "a.example", preset = "cooperative" }
users = [
  { name = "alice", provider = "a.example" },
  { name = "bob", provider = "b.example" },
  { name = "cathy", provider = "c.example", clients = 1, new_devices = 1 },
]
[variant]
enforcement = "off"
[phases]
chaos_ms = 20000
heal_ms = 60000
[network]
latency_ms = [1, 20]
[[script]]
at_ms = 0
client = "alice"
op = "create"
[[script]]
at_ms = 1000
client = "alice"
op = "add"
user = "bob"
role = 3
[[script]]
at_ms = 3000
client = "bob"
op = "add"
user = "cathy"
[[script]]
at_ms = 10000
client = "cathy/2"
op = "join"
[[script]]
at_ms = 14000
client = "bob"
op = "ban"
user = "cathy"
[faults.swarm]
kinds = ["partition", "partition-oneway", "hold", "loss", "latency"]
count = [1, 2]
duration_ms = [200, 4000]
"#;
const SEED: u64 = 45;
const ORACLE: &str = "removed-has-no-clients";

fn run_text(text: &str) -> mimi_sim::world::run::RunReport {
    let s = Scenario::parse("candidate", text).unwrap();
    let resolved = s.validate("candidate", text).unwrap();
    run(&s, &resolved, text, SEED, false)
}

fn violated(text: &str) -> bool {
    run_text(text).violations.iter().any(|v| v.id == ORACLE)
}

#[test]
fn ddmin_finds_the_planted_pair_and_one_minimal_removes_the_rest() {
    let items: Vec<u32> = (0..20).collect();
    let mut tests = 0;
    let mut fails = |s: &[u32]| {
        tests += 1;
        s.contains(&3) && s.contains(&17)
    };
    assert_eq!(ddmin(items.clone(), &mut fails), vec![3, 17]);
    assert!(tests < 60, "ddmin took {tests} tests for 20 items");
    // A failure that needs nothing: the empty set.
    assert!(ddmin(items.clone(), &mut |_| true).is_empty());
    // one_minimal from a non-minimal start.
    let mut fails = |s: &[u32]| s.contains(&5);
    assert_eq!(one_minimal(vec![1, 5, 9], &mut fails), vec![5]);
}

#[test]
fn shrinking_a_failing_off_run_gives_a_one_minimal_schedule_that_reproduces_alone() {
    let origin = Origin {
        scenario_text: SCENARIO.to_string(),
        source: "shrink-test".into(),
        seed: SEED,
        level: EnforcementLevel::Off,
        overrides: Default::default(),
    };
    // The input run fails with the swarm.
    assert!(violated(SCENARIO), "the test's input run must fail");
    let s = shrink(origin, true).unwrap();
    assert_eq!(s.target, Target::Oracle(ORACLE.into()));
    assert!(
        s.windows_before >= 2,
        "the swarm fired {} windows",
        s.windows_before
    );
    assert!(
        s.windows_after >= 1 && s.windows_after < s.windows_before,
        "{} -> {} windows",
        s.windows_before,
        s.windows_after
    );
    assert!(
        s.windows_after <= 3,
        "a handful of windows: {}",
        s.windows_after
    );
    assert_eq!(s.windows.len(), s.windows_after);
    // Steps: never more, and the room is still created first.
    assert!(s.steps_after <= s.steps_before && s.steps_before == 5);
    assert_eq!(s.steps.len(), s.steps_after);
    assert_eq!(s.steps[0]["op"].as_str(), Some("create"));
    assert!(s.runs >= 3, "re-executions counted: {}", s.runs);

    // The written file: valid, no swarm, a fixed schedule, the expectation, the seed.
    let sc = Scenario::parse("written", &s.text).unwrap();
    assert!(sc.faults.swarm.is_none());
    assert_eq!(sc.faults.schedule.len(), s.windows_after);
    assert_eq!(sc.variant.enforcement, EnforcementLevel::Off);
    assert!(sc.matrix.enforcement.is_empty());
    let reg = sc.regression.clone().unwrap();
    assert_eq!((reg.seed, reg.oracle.as_str()), (SEED, ORACLE));
    assert_eq!(reg.re_executions, s.runs);
    assert!(s.text.starts_with("# Reproducer:"));
    assert!(s.text.contains(&format!("--seed {SEED}")));

    // It reproduces on its own, as the file expects.
    let r = run_text(&s.text);
    assert!(r.violations.iter().any(|v| v.id == ORACLE));
    assert!(r.as_expected);

    // 1-minimal: without any single window, the violation is gone.
    let mut t: toml::Table = toml::from_str(&s.text).unwrap();
    let schedule = t["faults"]["schedule"].as_array().unwrap().clone();
    for i in 0..schedule.len() {
        let mut fewer = schedule.clone();
        fewer.remove(i);
        t.insert(
            "faults".into(),
            toml::Value::Table(toml::Table::from_iter([(
                "schedule".to_string(),
                toml::Value::Array(fewer),
            )])),
        );
        let text = toml::to_string(&t).unwrap();
        assert!(
            !violated(&text),
            "window {i} of {} can go: not 1-minimal",
            schedule.len()
        );
    }
}

#[test]
fn a_passing_run_exits_1_and_bad_input_exits_2() {
    let dir = std::env::temp_dir().join(format!("mimi-shrink-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/alice-adds-bob.toml"
    );
    let record = dir.join("record.json");
    std::fs::write(
        &record,
        serde_json::json!({"seed": 1, "variant": {"enforcement": "full"}, "scenario_file": file})
            .to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .arg("shrink")
        .arg(&record)
        .arg("--out")
        .arg(dir.join("never.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}");
    assert!(stdout.contains("did not fail") && stdout.contains("nothing to shrink"));
    assert!(!dir.join("never.toml").exists());

    let junk = dir.join("junk.json");
    std::fs::write(&junk, "not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .arg("shrink")
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    // The library says the same.
    let origin = mimi_sim::shrink::read_input(&record, None).unwrap();
    assert!(matches!(
        shrink(origin, true),
        Err(ShrinkError::NotFailing { seed: 1, .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}
