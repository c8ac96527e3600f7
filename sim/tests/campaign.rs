//! `mimi-sim campaign` and `merge` as CI meets them: a small campaign writes the folder
//! of the shared contract and re-runs a sample in other processes with the same trace
//! hashes; four shards merged equal the unsharded campaign run for run; a fault kind
//! that cannot fire fails the campaign; bad flags exit 2; a campaign cut short by its
//! budget (runs or determinism re-runs not made) is `incomplete` (exit 3), not passed;
//! the verdict names the cells not met and why.

use std::path::{Path, PathBuf};
use std::process::Command;

use mimi_reports::records::campaign::{CampaignStatus, PlanCell};
use mimi_reports::records::run::{CellRef, RunRecord};
use serde_json::Value;

mod common;
use common::{root, sim};

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn runs(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("runs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn campaign_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("campaign.json")).unwrap()).unwrap()
}

/// Runs without the one machine-dependent field.
fn without_wall(rs: &[Value]) -> Vec<Value> {
    rs.iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("wall_ms");
            r
        })
        .collect()
}

const FILES: [&str; 2] = ["scenarios/alice-adds-bob.toml", "scenarios/ban.toml"];

#[test]
fn a_small_campaign_writes_the_folder_and_checks_determinism() {
    let out = tmp("small");
    let o = sim(&[
        "campaign",
        FILES[0],
        FILES[1],
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--out",
        s(&out),
        "--resample-pct",
        "50",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The campaign writes its HTML report and says where it is.
    let index = out.join("report").join("index.html");
    assert!(index.is_file(), "no report at {}", index.display());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("report/index.html"), "{stdout}");
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(
        html.contains("scenarios/ban.toml"),
        "report names the cells"
    );
    let rs = runs(&out);
    // alice-adds-bob has no matrix (1 cell), ban has off/mls/full: 4 cells × 2 seeds.
    assert_eq!(rs.len(), 8);
    let keys: Vec<&str> = rs.iter().map(|r| r["run_key"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "runs.jsonl is sorted by run_key");
    assert!(keys.contains(&"scenarios/alice-adds-bob.toml|default|1"));
    assert!(keys.contains(&"scenarios/ban.toml|mls|2"));
    for r in &rs {
        assert_eq!(r["outcome"], "ok", "{r}");
        assert_eq!(r["timed_out"], false);
        assert_eq!(r["cell"]["scenario_file"], r["scenario_file"]);
        assert_eq!(r["build"]["cargo_lock_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(r["build"]["profile"], "debug");
        assert!(r["build"]["rustc"].as_str().unwrap().starts_with("rustc "));
        assert!(r["trace_hash"].is_string());
    }
    let c = campaign_json(&out);
    assert_eq!(c["format"], "mimi-sim-campaign/1");
    assert_eq!(c["status"], "passed", "{c}");
    assert_eq!(c["runs"], 8);
    assert_eq!(c["plan"]["runs_planned"], 8);
    assert_eq!(c["plan"]["seeds"], "1..2");
    assert_eq!(c["outcomes"]["ok"], 8);
    // 50 % by hash of the run key: some runs were re-run, all with the same hash.
    assert!(c["determinism"]["sampled"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["determinism"]["mismatches"], serde_json::json!([]));
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("PASSED"));
    // The same campaign again: equal line for line except wall_ms.
    let again = tmp("small-again");
    let o = sim(&[
        "campaign",
        FILES[0],
        FILES[1],
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--out",
        s(&again),
        "--resample-pct",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(without_wall(&runs(&again)), without_wall(&rs));
}

#[test]
fn four_shards_merged_equal_the_unsharded_campaign() {
    let whole = tmp("whole");
    let args = |out: &Path, shard: Option<String>| {
        let mut a: Vec<String> = [
            "campaign", FILES[0], FILES[1], "--seeds", "3", "--jobs", "2",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        a.extend(["--out".into(), s(out).into()]);
        if let Some(sh) = shard {
            a.extend(["--shard".into(), sh]);
        }
        a
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        sim(&refs)
    };
    assert_eq!(run(args(&whole, None)).status.code(), Some(0));
    let mut dirs = Vec::new();
    let mut total = 0;
    for i in 0..4 {
        let d = tmp(&format!("shard-{i}"));
        let o = run(args(&d, Some(format!("{i}/4"))));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        total += runs(&d).len();
        assert_eq!(campaign_json(&d)["plan"]["shard"], format!("{i}/4"));
        dirs.push(d);
    }
    assert_eq!(total, 12, "the shards partition the runs");
    let merged = tmp("merged");
    let mut a = vec!["merge".to_string()];
    a.extend(dirs.iter().map(|d| s(d).to_string()));
    a.extend(["--out".into(), s(&merged).into()]);
    let o = run(a);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(without_wall(&runs(&merged)), without_wall(&runs(&whole)));
    let (m, w) = (campaign_json(&merged), campaign_json(&whole));
    for k in [
        "plan",
        "runs",
        "outcomes",
        "unexpected",
        "faults_never_fired",
        "status",
    ] {
        assert_eq!(m[k], w[k], "campaign.json field {k}");
    }
    // A missing shard is reported.
    let partial = tmp("partial");
    let o = sim(&["merge", s(&dirs[0]), s(&dirs[1]), "--out", s(&partial)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(campaign_json(&partial)["failures"][0]
        .as_str()
        .unwrap()
        .contains("shards missing: 2/4, 3/4"));
}

#[test]
fn a_fault_kind_that_never_fires_fails_the_campaign() {
    let dir = tmp("planted");
    let text = std::fs::read_to_string(root().join(FILES[0]))
        .unwrap()
        .replace(
            "kinds = [\"partition\", \"hold\", \"loss\", \"latency\", \"flap\"]\ncount = [1, 2]",
            "kinds = [\"partition\"]\ncount = [0, 0]",
        );
    assert!(text.contains("count = [0, 0]"));
    let file = dir.join("silent-swarm.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.join("out");
    let o = sim(&[
        "campaign",
        s(&file),
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--out",
        s(&out),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let c = campaign_json(&out);
    assert_eq!(c["status"], "failed");
    assert_eq!(
        c["faults_never_fired"][0]["kinds"],
        serde_json::json!(["partition"])
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("never fired"));
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["campaign", FILES[0], "--shard", "5/4"], "0 <= i < N"),
        (vec!["campaign", FILES[0], "--seeds", "x"], "--seeds"),
        (vec!["campaign", FILES[0], "--seeds", "5..2"], "empty"),
        (vec!["campaign", FILES[0], "--shard", "1"], "i/N"),
        (vec!["campaign", "no-such-file.toml"], "no-such-file.toml"),
        (vec!["batch", FILES[0], "--seeds", "1..x"], "--seeds"),
    ] {
        let o = sim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .current_dir(root())
        .args(["campaign", FILES[0], "--shard", "env"])
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("JOB_COMPLETION_INDEX"));
}

#[test]
fn shard_env_reads_the_schedulers_index() {
    let out = tmp("env-shard");
    let o = Command::new(env!("CARGO_BIN_EXE_mimi-sim"))
        .current_dir(root())
        .args([
            "campaign",
            FILES[0],
            "--seeds",
            "2",
            "--shard",
            "env",
            "--out",
            s(&out),
        ])
        .env_remove("JOB_COMPLETION_INDEX")
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(campaign_json(&out)["plan"]["shard"], "1/2");
}

#[test]
fn a_seed_over_the_timeout_is_killed_and_recorded_and_a_spent_budget_stops_early() {
    let out = tmp("timeout");
    let o = sim(&[
        "campaign",
        FILES[0],
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--timeout-ms",
        "1",
        "--out",
        s(&out),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rs = runs(&out);
    assert_eq!(rs.len(), 2, "the worker restarted at the next seed");
    for r in &rs {
        assert_eq!(r["outcome"], "timeout", "{r}");
        assert_eq!(r["timed_out"], true);
    }
    let c = campaign_json(&out);
    assert_eq!(c["outcomes"]["timeout"], 2);
    assert_eq!(c["status"], "failed");
    // The stand-in records of the killed runs are run records the report reads.
    assert!(
        out.join("report").join("index.html").is_file(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = tmp("budget");
    let o = sim(&[
        "campaign",
        FILES[0],
        "--seeds",
        "2",
        "--budget-s",
        "0",
        "--out",
        s(&out),
    ]);
    // Cut short: not passed, exit 3 (nothing failed, but nothing was shown either).
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let c = campaign_json(&out);
    assert_eq!(c["budget_exhausted"], true);
    assert_eq!(c["status"], "incomplete", "{c}");
    assert_eq!(c["runs"], 0);
    assert_eq!(c["plan"]["runs_planned"], 2);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("campaign incomplete"), "{stdout}");
    assert!(
        stdout.contains("2 of 2 planned runs were not made"),
        "{stdout}"
    );
    assert!(std::fs::read_to_string(out.join("summary.md"))
        .unwrap()
        .contains("INCOMPLETE"));
}

/// One synthetic run record of `cell` (as a worker prints it, stamped).
fn record(file: &str, enforcement: &str, seed: u64, outcome: &str, ids: &[&str]) -> RunRecord {
    let as_expected = outcome == "ok";
    serde_json::from_value(serde_json::json!({
        "run_key": format!("{file}|{enforcement}|{seed}"),
        "cell": {"scenario_file": file, "enforcement": enforcement},
        "scenario_file": file,
        "scenario": "x",
        "variant": {"enforcement": enforcement},
        "seed": seed,
        "outcome": outcome,
        "expected": "ok",
        "as_expected": as_expected,
        "violations": ids.iter().map(|i| serde_json::json!({"id": i})).collect::<Vec<_>>(),
        "liveness": null,
        "faults_never_fired": [],
        "trace_hash": "h",
        "sim_time_ms": 0,
        "converged_at_ms": null,
    }))
    .unwrap()
}

/// A plan cell of x.toml under `enforcement` with its `[expect]`.
fn cell(enforcement: &str, expect: Value) -> PlanCell {
    PlanCell {
        cell: CellRef {
            scenario_file: "x.toml".into(),
            enforcement: enforcement.into(),
            variant: String::new(),
        },
        expect,
    }
}

fn plan(cells: Vec<PlanCell>, runs_planned: usize) -> mimi_sim::campaign::Plan {
    mimi_sim::campaign::Plan {
        files: vec!["x.toml".into()],
        seeds: (1, 3),
        shard: None,
        cells,
        runs_planned,
    }
}

/// A build identity for `judge` (campaign.json's `build`).
fn build() -> mimi_reports::records::campaign::Build {
    mimi_reports::records::campaign::Build {
        git_commit: "0".repeat(40),
        git_dirty: false,
        cargo_lock_sha256: "0".repeat(64),
        rustc: "rustc".into(),
        features: Vec::new(),
        profile: "debug".into(),
        mimi_sim_version: "0.1.0".into(),
    }
}

#[test]
fn a_budget_cut_before_the_determinism_re_runs_is_incomplete_not_passed() {
    use mimi_sim::campaign::{judge, status_code, Determinism};
    let cell = cell(
        "full",
        serde_json::json!({"outcome": "ok", "violations": [], "within_seeds": null}),
    );
    let runs: Vec<RunRecord> = (1..=3)
        .map(|s| record("x.toml", "full", s, "ok", &[]))
        .collect();
    let all = Determinism {
        sampled: 2,
        rerun: 2,
        mismatches: Vec::new(),
    };
    let c = judge(
        &plan(vec![cell.clone()], 3),
        &build(),
        &runs,
        &all,
        false,
        0,
        1,
        &[],
    )
    .unwrap();
    assert_eq!(c.status, CampaignStatus::Passed, "{c:?}");
    assert_eq!(status_code(&c), 0);
    let v = c.verdict.join("\n");
    assert!(v.contains("expectations: 1/1 cells met"), "{v}");
    assert!(v.contains("2 of 2 re-runs made"), "{v}");
    // Every run was made, but the budget ran out before the re-runs.
    let none = Determinism {
        sampled: 2,
        rerun: 0,
        mismatches: Vec::new(),
    };
    let c = judge(
        &plan(vec![cell], 3),
        &build(),
        &runs,
        &none,
        true,
        0,
        1,
        &[],
    )
    .unwrap();
    assert_eq!(c.status, CampaignStatus::Incomplete, "{c:?}");
    assert_eq!(status_code(&c), 3);
    assert!(c
        .verdict
        .join("\n")
        .contains("2 of 2 determinism re-runs were not made"));
    let md = mimi_sim::campaign::summary(&c, &runs);
    assert!(md.starts_with("# Campaign: INCOMPLETE"), "{md}");
}

#[test]
fn the_summary_says_which_cells_failed_and_why() {
    use mimi_sim::campaign::{judge, Determinism};
    // "within 2 seeds": seed 2 shows it, seed 3 is ok: met. "every seed": seed 2 is ok: not met.
    let within = cell(
        "mls",
        serde_json::json!({"outcome": "violation", "violations": ["no-split"], "within_seeds": 2}),
    );
    let every = cell(
        "full",
        serde_json::json!({"outcome": "violation", "violations": ["no-split"], "within_seeds": null}),
    );
    let mut runs = vec![
        record("x.toml", "mls", 1, "ok", &[]),
        record("x.toml", "mls", 2, "violation", &["no-split"]),
        record("x.toml", "mls", 3, "ok", &[]),
        record("x.toml", "full", 1, "violation", &["no-split"]),
        record("x.toml", "full", 2, "ok", &[]),
        record("x.toml", "full", 3, "violation", &["no-split"]),
    ];
    runs.sort_by(|a, b| a.run_key.cmp(&b.run_key));
    let det = Determinism::default();
    let c = judge(
        &plan(vec![within, every], 6),
        &build(),
        &runs,
        &det,
        false,
        0,
        1,
        &[],
    )
    .unwrap();
    assert_eq!(c.status, CampaignStatus::Failed, "{c:?}");
    let cells = &c.cell_verdicts;
    assert_eq!(cells[0].verdict, "met", "{:?}", cells[0]);
    assert!(cells[0].why.contains("seed 2 showed it"));
    assert_eq!(cells[1].verdict, "not met", "{:?}", cells[1]);
    let why = &cells[1].why;
    assert!(
        why.contains("in every seed") && why.contains("seeds 2"),
        "{why}"
    );
    let v = &c.verdict[0];
    assert!(
        v.contains("1/2 cells met; NOT met: x.toml under full"),
        "{v}"
    );
    assert!(c.failures[0].contains("x.toml under full"));
    // The cells' table in summary.md gives each cell's counts and verdict.
    let md = mimi_sim::campaign::summary(&c, &runs);
    assert!(
        md.contains("| x.toml | full | violation (no-split) in every seed | 3 | 1 | 2 | 0 | 0 | 0 | 2 | not met:"),
        "{md}"
    );
}

#[test]
fn a_plan_cell_whose_expect_is_not_an_expectation_is_an_error_not_ok() {
    use mimi_sim::campaign::{judge, Determinism};
    let bad = cell("full", serde_json::json!({"outcome": "fine"}));
    let runs = vec![record("x.toml", "full", 1, "ok", &[])];
    let e = judge(
        &plan(vec![bad], 1),
        &build(),
        &runs,
        &Determinism::default(),
        false,
        0,
        1,
        &[],
    )
    .unwrap_err();
    assert!(e.contains("x.toml under full"), "{e}");
}
