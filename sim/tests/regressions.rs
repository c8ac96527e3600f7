//! The regression corpus: every `scenarios/regressions/*.toml` (reproducers written by
//! `mimi-sim shrink`) replays with its `[regression] seed` and meets its `[expect]`:
//! the recorded violation (or liveness failure) happens again, from the fixed fault
//! schedule alone (a reproducer has no swarm).

use std::path::Path;

use mimi_sim::scenario::{ExpectedOutcome, Scenario};
use mimi_sim::shrink::replay_regression;
use mimi_sim::world::run::Outcome;

#[test]
fn every_regression_reproduces_its_recorded_failure() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus has reproducers");
    let mut failures = Vec::new();
    for f in &files {
        let (s, _) = Scenario::load(f).unwrap();
        assert!(
            s.faults.swarm.is_none(),
            "{}: a reproducer has no swarm",
            f.display()
        );
        let reg = s.regression.clone().expect("a [regression] table");
        let e = s.expectation();
        assert_ne!(
            e.outcome,
            ExpectedOutcome::Ok,
            "{}: expects a failure",
            f.display()
        );
        let r = replay_regression(f).unwrap();
        let ids: Vec<&str> = r.violations.iter().map(|v| v.id).collect();
        let same = match r.outcome {
            Outcome::Liveness => reg.oracle == "liveness",
            Outcome::Violation => ids.contains(&reg.oracle.as_str()),
            Outcome::Ok | Outcome::Incomplete => false,
        };
        if !r.as_expected || !same {
            failures.push(format!(
                "{}: seed {}: outcome {} {ids:?} (expected {:?} {:?}, oracle {})",
                f.display(),
                reg.seed,
                r.outcome.name(),
                e.outcome,
                e.violations,
                reg.oracle
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
