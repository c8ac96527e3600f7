//! Variant axes: `[matrix]` keys other than `enforcement`, `[[expect.case]]`, and
//! `--variant KEY=VALUE`. One file stands for several protocol variants side by side;
//! each cell is selected, judged, recorded and replayed with its own values.

use std::path::Path;

use mimi_sim::scenario::{ExpectedOutcome, Scenario};
use serde_json::Value;

mod common;
use common::{root, sim};

const PARTITION: &str = "scenarios/hub-transfer-takeover-partition.toml";

#[test]
fn a_matrix_axis_gives_one_cell_per_value_each_with_its_expectation() {
    let (s, _) = Scenario::load(&root().join(PARTITION)).unwrap();
    let cells = s.cells().unwrap();
    let labels: Vec<String> = cells.iter().map(|c| c.variant_label()).collect();
    assert_eq!(
        labels,
        ["hub_transfer=takeover", "hub_transfer=takeover-unfenced"]
    );
    let fenced = cells[0].scenario.expectation();
    let unfenced = cells[1].scenario.expectation();
    assert_eq!(fenced.outcome, ExpectedOutcome::Violation);
    assert!(!fenced.violations.contains(&"hub-order".to_string()));
    assert!(unfenced.violations.contains(&"hub-order".to_string()));
    assert_eq!(
        cells[1]
            .scenario
            .overrides
            .get("hub_transfer")
            .map(String::as_str),
        Some("takeover-unfenced")
    );

    // The room-state axis: bound and hub-only, each under off, mls and full.
    let (s, _) = Scenario::load(&root().join("scenarios/room-state-binding.toml")).unwrap();
    let labels: Vec<String> = s
        .cells()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c.variant_label(), c.level.name()))
        .collect();
    assert_eq!(
        labels,
        [
            "room_state=bound off",
            "room_state=bound mls",
            "room_state=bound full",
            "room_state=hub-only off",
            "room_state=hub-only mls",
            "room_state=hub-only full",
        ]
    );

    // Two axes multiply; enforcement is the inner one.
    let text = std::fs::read_to_string(root().join("scenarios/drafts-flows.toml")).unwrap();
    let text = format!(
        "{text}\n[matrix]\nenforcement = [\"off\", \"full\"]\nleave_order = [\"atomic\", \"exiting\"]\n"
    );
    let text = text.replacen(
        "[matrix]\nenforcement = [\"off\", \"mls\", \"full\"]\n",
        "",
        1,
    );
    let s = Scenario::parse("two-axes", &text).unwrap();
    let got: Vec<(String, &str)> = s
        .cells()
        .unwrap()
        .iter()
        .map(|c| (c.variant_label(), c.level.name()))
        .collect();
    assert_eq!(
        got,
        [
            ("leave_order=atomic".to_string(), "off"),
            ("leave_order=atomic".to_string(), "full"),
            ("leave_order=exiting".to_string(), "off"),
            ("leave_order=exiting".to_string(), "full"),
        ]
    );
}

#[test]
fn bad_axes_cases_and_flags_are_named() {
    let text = std::fs::read_to_string(root().join(PARTITION)).unwrap();
    // A value the axis does not have: the line of the value.
    let bad = text.replace("\"takeover-unfenced\"]", "\"takeover-sideways\"]");
    let e = Scenario::parse("f.toml", &bad).unwrap_err().to_string();
    let line = bad
        .lines()
        .position(|l| l.contains("takeover-sideways"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!("f.toml:{line}:")), "{e}");
    assert!(e.contains("takeover-sideways"), "{e}");
    // A case on a key that is not a variant key.
    let bad = text.replace(
        "if = { hub_transfer = \"takeover-unfenced\" }",
        "if = { hub_transferr = \"takeover-unfenced\" }",
    );
    let e = Scenario::parse("f.toml", &bad).unwrap_err().to_string();
    assert!(
        e.contains("expect.case[0].if") && e.contains("hub_transferr"),
        "{e}"
    );
    // A case naming an unknown oracle.
    let bad = text.replace("\"handoff-keeps-accepted\"]", "\"handoff-keeps\"]");
    let e = Scenario::parse("f.toml", &bad).unwrap_err().to_string();
    assert!(
        e.contains("expect.case[0].violations") && e.contains("handoff-keeps"),
        "{e}"
    );
    // Wrong --variant flags exit 2 and say what to write.
    for (arg, want) in [
        ("leave_order", "KEY=VALUE"),
        ("leave_order=sideways", "sideways"),
        ("colour=blue", "not a variant key"),
    ] {
        let out = sim(&["run", PARTITION, "--variant", arg]);
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(want), "{arg}: {e}");
    }
}

#[test]
fn a_cell_selected_by_variant_is_recorded_and_replays_to_the_same_hash() {
    let dir = std::env::temp_dir().join(format!("mimi-sim-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.jsonl");
    let out = sim(&[
        "run",
        PARTITION,
        "--seed",
        "2",
        "--variant",
        "hub_transfer=takeover-unfenced",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["variant"]["overrides"]["hub_transfer"],
        "takeover-unfenced"
    );
    assert_eq!(v["as_expected"], true, "the unfenced case's expectation");
    let ids: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(ids.contains(&"hub-order"), "{ids:?}");
    // The fenced cell of the same seed differs.
    let out = sim(&["run", PARTITION, "--seed", "2", "--json"]);
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(f["trace_hash"], v["trace_hash"]);
    // Replaying the trace and the record sets the variant again.
    let out = sim(&["replay", trace.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rec = dir.join("r.json");
    let mut r = v.clone();
    r["scenario_file"] = Value::String(PARTITION.into());
    std::fs::write(&rec, r.to_string()).unwrap();
    let out = sim(&["replay", rec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_campaign_runs_every_cell_under_its_own_run_key() {
    let dir = std::env::temp_dir().join(format!("mimi-sim-matrix-c-{}", std::process::id()));
    let out = sim(&[
        "campaign",
        PARTITION,
        "--seeds",
        "1..2",
        "--jobs",
        "2",
        "--resample-pct",
        "0",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = std::fs::read_to_string(Path::new(&dir).join("runs.jsonl")).unwrap();
    let keys: Vec<String> = runs
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["run_key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 4);
    assert!(keys.contains(&format!("{PARTITION}|default,hub_transfer=takeover|1")));
    assert!(keys.contains(&format!(
        "{PARTITION}|default,hub_transfer=takeover-unfenced|2"
    )));
    let c: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("campaign.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(c["status"], "passed", "{c}");
    std::fs::remove_dir_all(&dir).ok();
}
