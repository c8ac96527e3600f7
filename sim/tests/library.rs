//! Every scenario of the library (`scenarios/*.toml`) under every cell of its matrix
//! meets its `[expect]`, judged by `Expectation::judge_cell` as `campaign` and `findings`
//! judge it: "ok" (every scripted step done or ended as declared) and "in every seed"
//! expectations for the first seeds run here; a "within N seeds" expectation over its
//! window, stopping at the first seed that shows it. `mimi-sim findings` runs 200+ seeds.

use std::path::Path;

use mimi_reports::records::run::RunRecord;
use mimi_sim::campaign::findings::{cells, judge, library};
use mimi_sim::world::run::run;

/// Seeds per cell expecting the same in every seed (findings runs hundreds).
const EVERY_SEED_SEEDS: u64 = 2;

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
        let seeds = e.within_seeds.map_or(EVERY_SEED_SEEDS, u64::from);
        let mut records = Vec::new();
        for seed in 1..=seeds {
            let r = run(&s, &resolved, &text, seed, false);
            n += 1;
            // The record as `run --json` prints it and `campaign` reads it.
            let v: RunRecord = serde_json::from_value(serde_json::to_value(&r).unwrap())
                .unwrap_or_else(|e| panic!("{label}: the record is not a RunRecord: {e}"));
            records.push(v);
            // A within-N window is met at its first hit (the rest may be ok).
            if e.within_seeds.is_some() && judge(&e, 1, &records).first_hit.is_some() {
                break;
            }
        }
        let j = judge(&e, 1, &records);
        if !j.met() {
            let got: Vec<String> = records
                .iter()
                .map(|r| {
                    format!(
                        "seed {}: {} {:?} {:?} {:?}",
                        r.seed,
                        r.outcome.name(),
                        r.violations
                            .iter()
                            .map(|v| v.id.as_str())
                            .collect::<Vec<_>>(),
                        r.liveness,
                        r.step_notes()
                            .iter()
                            .filter(|n| !n.declared)
                            .map(|n| format!("script[{}] {} {}", n.step, n.op, n.status))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            failures.push(format!(
                "{} under {} {}: {}; got {}",
                label,
                cell.level.name(),
                variant,
                j.explain(&e),
                got.join("; ")
            ));
        }
    }
    assert!(n > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small world: alice (a.example, the hub) creates a moderated room and adds bob
/// (b.example) as an attendee (role 3: no canSendMessage); `steps` are more steps.
fn small(steps: &str) -> String {
    format!(
        r#"name = "steps"
[world]
providers = ["a.example", "b.example"]
room = {{ name = "r", hub = "a.example", preset = "moderated" }}
users = [
  {{ name = "alice", provider = "a.example" }},
  {{ name = "bob", provider = "b.example" }},
  {{ name = "carol", provider = "b.example" }},
]
[phases]
chaos_ms = 500
heal_ms = 20000
[[script]]
at_ms = 0
client = "alice"
op = "create"
[[script]]
at_ms = 200
client = "alice"
op = "add"
user = "bob"
role = 3
{steps}"#
    )
}

fn run_text(text: &str, seed: u64) -> mimi_sim::world::run::RunReport {
    let s = mimi_sim::scenario::Scenario::parse("steps.toml", text).unwrap();
    let resolved = s.validate("steps.toml", text).unwrap();
    run(&s, &resolved, text, seed, false)
}

#[test]
fn a_step_that_never_happens_makes_the_run_incomplete_unless_declared() {
    // carol is never added, so "remove carol" never becomes ready: abandoned.
    let step = "[[script]]\nat_ms = 1000\nclient = \"alice\"\nop = \"remove\"\nuser = \"carol\"\n";
    let r = run_text(&small(step), 1);
    assert_eq!(
        r.outcome,
        mimi_sim::world::run::Outcome::Incomplete,
        "{r:?}"
    );
    assert!(!r.as_expected);
    assert_eq!((r.steps_total, r.steps_done), (3, 2));
    assert_eq!(r.steps_not_done.len(), 1);
    let n = &r.steps_not_done[0];
    assert_eq!((n.step, n.op, n.declared), (2, "remove", false));
    assert_eq!(n.end, mimi_sim::scenario::StepEnd::Abandoned);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["outcome"], "incomplete");
    assert_eq!(v["steps_not_done"][0]["status"], "abandoned");

    let declared = small(&format!("{step}may_abandon = true\n"));
    let r = run_text(&declared, 1);
    assert_eq!(r.outcome, mimi_sim::world::run::Outcome::Ok, "{r:?}");
    assert!(r.as_expected);
    assert!(r.steps_not_done[0].declared);
}

#[test]
fn a_step_refused_by_a_rule_it_does_not_declare_makes_the_run_incomplete() {
    // bob is an attendee: under full the hub refuses his message (rule submit-sender).
    let send = "[[script]]\nat_ms = 1500\nclient = \"bob\"\nop = \"send\"\ntext = \"hi\"\n";
    let r = run_text(&small(send), 1);
    assert_eq!(
        r.outcome,
        mimi_sim::world::run::Outcome::Incomplete,
        "{r:?}"
    );
    assert_eq!(
        r.steps_not_done[0].end,
        mimi_sim::scenario::StepEnd::Refused {
            rule: "submit-sender".into()
        },
        "{r:?}"
    );
    let wrong = small(&format!("{send}may_refuse = [\"mute\"]\n"));
    let r = run_text(&wrong, 1);
    assert_eq!(
        r.outcome,
        mimi_sim::world::run::Outcome::Incomplete,
        "{r:?}"
    );
    assert!(!r.steps_not_done[0].declared);
    let right = small(&format!(
        "{send}may_refuse = [\"mute\", \"submit-sender\"]\n"
    ));
    let r = run_text(&right, 1);
    assert_eq!(r.outcome, mimi_sim::world::run::Outcome::Ok, "{r:?}");
    assert!(r.steps_not_done[0].declared);
    // A declaration allows, it does not require: under off the message is delivered.
    let s = mimi_sim::scenario::Scenario::parse("steps.toml", &right)
        .unwrap()
        .at_level(mimi_sim::scenario::EnforcementLevel::Off);
    let resolved = s.validate("steps.toml", &right).unwrap();
    let r = run(&s, &resolved, &right, 1, false);
    assert_eq!(r.outcome, mimi_sim::world::run::Outcome::Ok, "{r:?}");
    assert_eq!(r.steps_done, 3);
}

#[test]
fn an_unknown_rule_in_may_refuse_names_the_line_and_the_field() {
    let text = small("[[script]]\nat_ms = 1500\nclient = \"bob\"\nop = \"send\"\ntext = \"hi\"\nmay_refuse = [\"no-such-rule\"]\n");
    let e = mimi_sim::scenario::Scenario::parse("steps.toml", &text)
        .unwrap_err()
        .to_string();
    // The line of the step's [[script]] table.
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "[[script]]")
        .nth(2)
        .unwrap()
        .0
        + 1;
    assert!(e.starts_with(&format!("steps.toml:{line}:")), "{e}");
    assert!(
        e.contains("field `script[2].may_refuse`: unknown hub rule \"no-such-rule\""),
        "{e}"
    );
    let text = small("[[script]]\nat_ms = 1500\nclient = \"bob\"\nop = \"send\"\ntext = \"hi\"\nmay_abandon = \"yes\"\n");
    let e = mimi_sim::scenario::Scenario::parse("steps.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(e.contains("may_abandon"), "{e}");
}

#[test]
fn within_seeds_is_every_seed_by_default_and_a_window_otherwise() {
    use mimi_sim::scenario::{Expectation, ExpectedOutcome};
    let every = Expectation {
        outcome: ExpectedOutcome::Violation,
        violations: vec!["no-split".into()],
        within_seeds: None,
    };
    let hit = |s| (s, "violation", vec!["no-split"]);
    let ok = |s| (s, "ok", vec![]);
    // Every seed: one ok run fails the cell, whichever seed it is.
    assert!(every.judge_cell(1, &[hit(1), hit(2)], true).met());
    let j = every.judge_cell(1, &[hit(1), ok(2)], true);
    assert!(!j.met());
    assert_eq!(j.unexpected, vec![2]);
    assert!(
        j.explain(&every).contains("in every seed"),
        "{}",
        j.explain(&every)
    );
    // Within 2: a hit in seeds first..first+1, the others ok or violations.
    let within = Expectation {
        within_seeds: Some(2),
        ..every.clone()
    };
    assert!(within.judge_cell(1, &[ok(1), hit(2), ok(3)], true).met());
    assert!(!within.judge_cell(1, &[ok(1), ok(2), hit(3)], true).met());
    // The window starts at the first seed asked for (a campaign's --seeds 5..8).
    assert!(within.judge_cell(5, &[ok(5), hit(6)], true).met());
    // Another outcome fails the cell even when the window had its hit.
    let j = within.judge_cell(1, &[hit(1), (2, "liveness", vec![])], true);
    assert!(!j.met());
    assert_eq!(j.unexpected, vec![2]);
    // An incomplete run is not ok: it fails an "ok" cell.
    let okay = Expectation {
        outcome: ExpectedOutcome::Ok,
        violations: vec![],
        within_seeds: None,
    };
    assert!(!okay
        .judge_cell(1, &[ok(1), (2, "incomplete", vec![])], true)
        .met());
    // A run's as_expected is the per-run half.
    assert!(!every.run_as_expected("ok", &[]));
    assert!(within.run_as_expected("ok", &[]));
    assert!(!okay.run_as_expected("incomplete", &[]));
}

#[test]
fn each_refused_step_gets_the_rule_of_the_refusal_of_its_own_request_bytes() {
    // Two refusals in a row by different rules: bob (an attendee) sends (rule
    // submit-sender) and removes alice (the room's policy). Each step is matched to the
    // hub's refusal by the SHA-256 of the request the client sent and the hub refused.
    let steps = "[[script]]\nat_ms = 1500\nclient = \"bob\"\nop = \"send\"\ntext = \"hi\"\n\
                 [[script]]\nat_ms = 1500\nclient = \"bob\"\nop = \"remove\"\nuser = \"alice\"\n";
    let r = run_text(&small(steps), 1);
    let ends: Vec<_> = r
        .steps_not_done
        .iter()
        .map(|n| (n.step, n.op, n.end.clone()))
        .collect();
    assert_eq!(
        ends,
        vec![
            (
                2,
                "send",
                mimi_sim::scenario::StepEnd::Refused {
                    rule: "submit-sender".into()
                }
            ),
            (
                3,
                "remove",
                mimi_sim::scenario::StepEnd::Refused {
                    rule: "policy".into()
                }
            ),
        ],
        "{r:?}"
    );
}
