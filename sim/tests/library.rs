//! Every scenario of the library (`scenarios/*.toml`) under every enforcement level of
//! its matrix meets its `[expect]`: "ok" holds for the first seeds run here, and an
//! expected violation (or liveness failure) with the expected oracles happens within
//! the file's `within_seeds` seeds. `mimi-sim findings` runs the same with 200+ seeds.

use std::path::Path;

use mimi_sim::findings::{cells, expectation_met, library};
use mimi_sim::run::run;
use mimi_sim::scenario::ExpectedOutcome;

/// Seeds per "ok" cell in the test suite (findings runs hundreds).
const OK_SEEDS: u64 = 2;

#[test]
fn every_library_scenario_meets_its_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = library(&dir).unwrap();
    assert!(files.len() >= 10, "the library has its scenarios");
    let mut failures = Vec::new();
    let mut n = 0;
    for cell in cells(&files).unwrap() {
        let text = std::fs::read_to_string(&cell.file).unwrap();
        let s = cell.scenario.at_level(cell.level);
        let label = cell.file.display().to_string();
        let variant = mimi_sim::scenario::variant_label(&cell.overrides);
        let resolved = s.validate(&label, &text).unwrap();
        let e = s.expectation();
        let seeds = match e.outcome {
            ExpectedOutcome::Ok => OK_SEEDS,
            _ => u64::from(e.within_seeds),
        };
        let mut records = Vec::new();
        for seed in 1..=seeds {
            let r = run(&s, &resolved, &text, seed, false);
            n += 1;
            let v = serde_json::to_value(&r).unwrap();
            let done =
                e.outcome != ExpectedOutcome::Ok && expectation_met(&e, std::slice::from_ref(&v));
            records.push(v);
            if done {
                break;
            }
        }
        if !expectation_met(&e, &records) {
            let got: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "seed {}: {} {:?} {}",
                        r["seed"],
                        r["outcome"],
                        r["violations"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v["id"].as_str().unwrap().to_string())
                            .collect::<Vec<_>>(),
                        r["liveness"]
                    )
                })
                .collect();
            failures.push(format!(
                "{} under {} {}: expected {:?}, got {}",
                label,
                cell.level.name(),
                variant,
                e,
                got.join("; ")
            ));
        }
    }
    assert!(n > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
