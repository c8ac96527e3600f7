//! The `run` and `replay` commands: loading, running, printing, exit codes.

pub mod demo;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use mimi_reports::records::run::RunRecord;
use mimi_reports::records::trace::{Header, LineError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scenario::{EnforcementLevel, Scenario};
use crate::world::run::{run as run_scenario, scenario_hash, Outcome, RunReport};

pub use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK};

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mimi-sim: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// Parses an enforcement level name.
pub fn level(name: Option<&str>) -> Option<EnforcementLevel> {
    match name? {
        "off" => Some(EnforcementLevel::Off),
        "mls" => Some(EnforcementLevel::Mls),
        _ => Some(EnforcementLevel::Full),
    }
}

/// The seed `run` uses when none is given: a regression file's recorded seed, else 1.
/// (A file that cannot be read gets 1; `run` then reports what is wrong with it.)
pub fn default_seed(path: &Path) -> u64 {
    Scenario::load(path)
        .ok()
        .and_then(|(s, _)| s.regression.map(|r| r.seed))
        .unwrap_or(1)
}

/// Loads a scenario and runs it once; the CLI's error text on failure.
pub fn load_and_run(
    path: &Path,
    seed: u64,
    keep_trace: bool,
    enforcement: Option<&str>,
    variants: &[String],
) -> Result<RunReport, String> {
    let (s, text) = Scenario::load(path).map_err(|e| e.to_string())?;
    let s = match level(enforcement) {
        Some(l) => s.at_level(l),
        None => s,
    };
    let s = s.with_variants(variants)?;
    let file = path.display().to_string();
    let resolved = s.validate(&file, &text).map_err(|e| e.to_string())?;
    let mut r = run_scenario(&s, &resolved, &text, seed, keep_trace);
    r.scenario_file = Some(file);
    Ok(r)
}

/// The JSON record of a run (what `run --json` and `batch` print and campaigns store),
/// with its keys sorted (written through `serde_json::Value`, as every record file is).
pub fn record(r: &impl Serialize) -> String {
    serde_json::to_value(r).unwrap_or(Value::Null).to_string()
}

/// The line `run --json` prints: the run's record and, with `--check-determinism`, what
/// the re-run in a child process gave.
#[derive(Debug, Serialize)]
struct RunLine<'a> {
    #[serde(flatten)]
    report: &'a RunReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    determinism: Option<ChildRun>,
}

/// The re-run of `--check-determinism`.
#[derive(Debug, Clone, Serialize)]
struct ChildRun {
    /// Whether the child's trace hash equals the run's.
    same: bool,
    child_trace_hash: String,
}

fn write_trace(path: &Path, lines: &[String]) -> Result<(), String> {
    let mut f = std::fs::File::create(path)
        .map_err(|e| format!("cannot write the trace to {}: {e}", path.display()))?;
    for l in lines {
        writeln!(f, "{l}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs the same scenario and seed in a child process; returns its trace hash.
pub fn child_hash(
    path: &Path,
    seed: u64,
    enforcement: Option<&str>,
    variants: &[String],
) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("run")
        .arg(path)
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--json");
    if let Some(e) = enforcement {
        cmd.arg("--enforcement").arg(e);
    }
    for kv in variants {
        cmd.arg("--variant").arg(kv);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start the child process: {e}"))?;
    let child: RunRecord = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "the child printed no run record ({e}); its stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    child
        .trace_hash
        .ok_or_else(|| "the child's record has no trace_hash".into())
}

/// `mimi-sim run`.
pub fn run(
    path: &Path,
    seed: u64,
    trace: Option<&Path>,
    json_out: bool,
    check_determinism: bool,
    enforcement: Option<&str>,
    variants: &[String],
) -> ExitCode {
    let mut report = match load_and_run(path, seed, trace.is_some(), enforcement, variants) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    if let (Some(p), Some(lines)) = (trace, report.trace.take()) {
        if let Err(e) = write_trace(p, &lines) {
            return bad(e);
        }
    }
    let mut determinism = None;
    if check_determinism {
        determinism = Some(match child_hash(path, seed, enforcement, variants) {
            Ok(h) => (h == report.trace_hash, h),
            Err(e) => return bad(e),
        });
    }
    if json_out {
        let line = RunLine {
            report: &report,
            determinism: determinism.as_ref().map(|(same, h)| ChildRun {
                same: *same,
                child_trace_hash: h.clone(),
            }),
        };
        println!("{}", record(&line));
    } else {
        print_summary(&report);
        if let Some(p) = trace {
            println!("trace: {}", p.display());
        }
        if let Some((same, h)) = &determinism {
            if *same {
                println!("determinism: a child process gave the same trace hash");
            } else {
                println!("determinism: MISMATCH, the child process gave {h}");
            }
        }
    }
    let failed = report.outcome != Outcome::Ok || determinism.is_some_and(|(same, _)| !same);
    ExitCode::from(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// The human summary of one run.
pub fn print_summary(r: &RunReport) {
    println!(
        "scenario {}  seed {}  variant {}",
        r.scenario, r.seed, r.variant
    );
    let conv = r
        .converged_at_ms
        .map(|t| format!(" (converged at {:.1} s)", t as f64 / 1000.0))
        .unwrap_or_default();
    println!(
        "outcome: {}{conv}   expected: {}{}",
        r.outcome.name(),
        r.expected.name(),
        if r.as_expected {
            ""
        } else {
            "  (NOT as expected)"
        }
    );
    let faults: Vec<String> = r.faults.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    println!(
        "faults: {}",
        if faults.is_empty() {
            "none".into()
        } else {
            faults.join(" ")
        }
    );
    if !r.faults_never_fired.is_empty() {
        println!(
            "WARNING: enabled fault kinds that never fired: {}",
            r.faults_never_fired.join(", ")
        );
    }
    println!(
        "ops: {} issued, {} succeeded, {} failed, {} refused, {} abandoned; messages: {} accepted, {} received",
        r.ops.issued,
        r.ops.succeeded,
        r.ops.failed,
        r.ops.refused,
        r.ops.abandoned,
        r.messages_accepted,
        r.messages_received
    );
    println!(
        "time: {:.1} s simulated in {} ms wall ({:.0}x)",
        r.sim_time_ms as f64 / 1000.0,
        r.wall_ms,
        r.sim_time_ms as f64 / r.wall_ms.max(1) as f64
    );
    println!("trace: {} events, hash {}", r.trace_events, r.trace_hash);
    println!(
        "steps: {} of {} done{}",
        r.steps_done,
        r.steps_total,
        if r.steps_not_done.iter().any(|n| !n.declared) {
            "; INCOMPLETE: steps that did not happen and are not declared may_abandon/may_refuse:"
        } else if r.steps_not_done.is_empty() {
            ""
        } else {
            "; the others ended as their step declares:"
        }
    );
    for n in &r.steps_not_done {
        println!("  {}", n.describe());
    }
    if let Some(l) = &r.liveness {
        println!("LIVENESS: {l}");
    }
    for v in &r.violations {
        println!("VIOLATION [{}] {}", v.id, v.message);
        println!(
            "  witness: nodes {:?}, epochs {:?}, trace lines {:?}, at {} ms",
            v.witness.nodes, v.witness.epochs, v.witness.trace_lines, v.witness.at_ms
        );
    }
    if !r.state_table.is_empty() {
        println!(
            "{:<34} {:<8} {:<7} {:>5} {:>7} {:>5} {:>5}  note",
            "node", "role", "status", "epoch", "members", "log", "idle"
        );
        for s in &r.state_table {
            let o = |x: Option<u64>| x.map_or("-".into(), |v| v.to_string());
            println!(
                "{:<34} {:<8} {:<7} {:>5} {:>7} {:>5} {:>5}  {}",
                s.node,
                s.role,
                s.status,
                o(s.epoch),
                o(s.members.map(|m| m as u64)),
                s.log,
                if s.idle { "yes" } else { "no" },
                s.note
            );
        }
    }
    if r.outcome != Outcome::Ok {
        if let Some(f) = &r.scenario_file {
            println!(
                "reproduce: mimi-sim run {f} --enforcement {} --seed {} --trace run.jsonl",
                r.variant["enforcement"].as_str().unwrap_or("full"),
                r.seed
            );
        }
    }
}

/// `mimi-sim replay`.
pub fn replay(path: &Path) -> ExitCode {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return bad(format!("cannot read {shown}: {e}")),
    };
    let Some(first) = text.lines().next() else {
        return bad(format!("{shown}: the file is empty"));
    };
    match Header::parse(first) {
        Ok(header) => replay_trace(path, &text, &header),
        Err(LineError::NotAHeader) => match serde_json::from_str::<RecordToReplay>(first) {
            Ok(record) => replay_record(path, &record),
            Err(e) => bad(format!(
                "{shown}:1: neither a trace header nor a run record with `scenario_file`, \
                 `seed` and `trace_hash` ({e})"
            )),
        },
        Err(LineError::NotJson(e)) => bad(format!(
            "{shown}:1: not JSON ({e}); give a trace written by --trace or a record printed \
             by run --json"
        )),
        Err(e) => bad(format!("{shown}:1: {e}")),
    }
}

/// What `replay` reads of a run record (`run --json`, a line of runs.jsonl).
#[derive(Debug, Deserialize)]
struct RecordToReplay {
    scenario_file: String,
    seed: u64,
    trace_hash: String,
    /// The run's variant: its level and the overrides it was run with.
    #[serde(default)]
    variant: Value,
    #[serde(default)]
    scenario_sha256: Option<String>,
}

/// `scenario` at the level and with the overrides of a recorded `variant`.
fn as_recorded(s: Scenario, variant: &Value) -> Result<Scenario, String> {
    let s = match level(variant["enforcement"].as_str()) {
        Some(l) => s.at_level(l),
        None => s,
    };
    s.with_recorded_overrides(variant)
}

/// Runs a trace's embedded scenario again; shows the first line that differs, if any.
fn replay_trace(path: &Path, text: &str, header: &Header) -> ExitCode {
    let (toml_text, seed) = (header.scenario_toml.as_str(), header.seed);
    let label = format!("{} (embedded scenario)", path.display());
    let s = match Scenario::parse(&label, toml_text) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let s = match as_recorded(s, &header.variant) {
        Ok(s) => s,
        Err(e) => return bad(format!("{label}: {e}")),
    };
    let resolved = match s.validate(&label, toml_text) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let mut r = run_scenario(&s, &resolved, toml_text, seed, true);
    let recorded = crate::observe::record::hash_lines(text.lines());
    if r.trace_hash == recorded {
        println!(
            "replay of {}: seed {seed}, scenario {}: same trace hash {} ({} events, outcome {})",
            path.display(),
            s.name,
            r.trace_hash,
            r.trace_events,
            r.outcome.name()
        );
        return ExitCode::from(EXIT_OK);
    }
    let new = r.trace.take().unwrap_or_default();
    let diff = text
        .lines()
        .zip(new.iter())
        .position(|(a, b)| a != b)
        .map_or(new.len().min(text.lines().count()), |i| i);
    println!(
        "replay of {}: DIFFERENT trace hash: recorded {recorded}, now {}; first difference at line {}",
        path.display(),
        r.trace_hash,
        diff + 1
    );
    if let Some(a) = text.lines().nth(diff) {
        println!("  recorded: {a}");
    }
    if let Some(b) = new.get(diff) {
        println!("  now:      {b}");
    }
    ExitCode::from(EXIT_FAILED)
}

/// Runs a run record's scenario file again (refused if the file changed since).
fn replay_record(path: &Path, record: &RecordToReplay) -> ExitCode {
    let (file, hash, seed) = (
        record.scenario_file.as_str(),
        record.trace_hash.as_str(),
        record.seed,
    );
    let (s, stext) = match Scenario::load(Path::new(file)) {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    let s = match as_recorded(s, &record.variant) {
        Ok(s) => s,
        Err(e) => return bad(format!("{file}: {e}")),
    };
    if let Some(want) = &record.scenario_sha256 {
        if *want != scenario_hash(&stext) {
            return bad(format!(
                "{file} changed since the record was made (its SHA-256 differs); replay the trace instead"
            ));
        }
    }
    let resolved = match s.validate(file, &stext) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let r = run_scenario(&s, &resolved, &stext, seed, false);
    if r.trace_hash == hash {
        println!(
            "replay of {}: seed {seed}, {file}: same trace hash {hash} (outcome {})",
            path.display(),
            r.outcome.name()
        );
        ExitCode::from(EXIT_OK)
    } else {
        println!(
            "replay of {}: DIFFERENT trace hash: recorded {hash}, now {}",
            path.display(),
            r.trace_hash
        );
        ExitCode::from(EXIT_FAILED)
    }
}

/// `mimi-sim batch`: one JSON record per seed (`A..B`, `N` or a comma list of those).
/// With `trace_dir`, the trace of every run that is not ok or not as expected is written
/// there as `<sanitised run key>.jsonl` (the campaign folder's `traces/`).
pub fn batch(
    path: &Path,
    seeds: &str,
    enforcement: Option<&str>,
    variants: &[String],
    trace_dir: Option<&Path>,
) -> ExitCode {
    let seeds = match crate::campaign::parse_seeds(seeds) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let (s, text) = match Scenario::load(path) {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    let s = match level(enforcement) {
        Some(l) => s.at_level(l),
        None => s,
    };
    let s = match s.with_variants(variants) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let file = path.display().to_string();
    let resolved = match s.validate(&file, &text) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    for seed in seeds {
        let mut r = run_scenario(&s, &resolved, &text, seed, trace_dir.is_some());
        r.scenario_file = Some(file.clone());
        if let (Some(dir), Some(lines)) = (trace_dir, r.trace.take()) {
            if r.outcome != Outcome::Ok || !r.as_expected {
                let cell = crate::campaign::cell_label(
                    enforcement.unwrap_or("default"),
                    &s.variant_label(),
                );
                let key = crate::campaign::run_key(&file, &cell, seed);
                let p = dir.join(crate::campaign::trace_file_name(&key));
                if let Err(e) = write_trace(&p, &lines) {
                    return bad(e);
                }
            }
        }
        println!("{}", record(&r));
    }
    ExitCode::from(EXIT_OK)
}

/// `mimi-sim findings`.
pub fn findings(
    files: &[std::path::PathBuf],
    seeds: u64,
    jobs: Option<usize>,
    out: &Path,
) -> ExitCode {
    use crate::campaign::findings as f;
    let files = if files.is_empty() {
        match f::library(Path::new("scenarios")) {
            Ok(v) => v,
            Err(e) => return bad(e),
        }
    } else {
        files.to_vec()
    };
    let cells = match f::cells(&files) {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!(
        "findings: {} cells × {seeds} seeds on {jobs} worker processes",
        cells.len()
    );
    let records = match f::run_cells(&cells, seeds, jobs) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let rows: Vec<f::Row> = cells
        .iter()
        .zip(&records)
        .map(|(c, r)| f::row(c, r))
        .collect();
    let command = format!("mimi-sim findings --seeds {seeds}");
    let page = f::render(&rows, seeds, &command);
    if let Err(e) = std::fs::write(out, &page) {
        return bad(format!("cannot write {}: {e}", out.display()));
    }
    let failed: Vec<&f::Row> = rows.iter().filter(|r| !r.expectation_met).collect();
    println!("wrote {} ({} rows)", out.display(), rows.len());
    for r in &failed {
        println!(
            "EXPECTATION NOT MET: {} under {}{}: {}",
            r.file,
            r.level.name(),
            if r.variant.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.variant)
            },
            r.why
        );
    }
    ExitCode::from(if failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}
