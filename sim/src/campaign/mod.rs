//! `mimi-sim campaign` and `mimi-sim merge`: scenarios × enforcement levels × seeds in
//! parallel worker processes, written to a campaign folder (runs.jsonl, campaign.json,
//! summary.md, traces/) whose format is shared with `report` and `shrink`.
//!
//! * A run is one (scenario file, enforcement level, seed); its key is
//!   `"<scenario_file>|<enforcement>|<seed>"` ("default" when the file has no matrix).
//! * `--shard i/N` keeps the runs whose key hashes (SHA-256, first 8 bytes, mod N) to `i`:
//!   no coordinator, and a run stays in its shard when other files are added.
//!   `--shard env` reads `i` from `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job) or
//!   `SLURM_ARRAY_TASK_ID` (Slurm array) and `N` from `MIMI_SIM_SHARDS` or
//!   `SLURM_ARRAY_TASK_COUNT`; `--shard env/N` gives `N` explicitly.
//! * `merge DIR...` combines shard folders into the folder the unsharded campaign writes
//!   (equal line for line except `wall_ms`).
//! * A sample of runs (by hash of the run key, default 5 %) and every run that was not ok
//!   or not as expected is re-run in another worker process; a different trace hash fails
//!   the campaign. A fault kind enabled by a file that fired in none of its runs fails it.
//!
//! # Choices
//! * The orchestrator lives in the library (so tests and `merge` share it) but is the one
//!   place that uses processes, the clock (per-seed timeout, budget) and sleeps; the
//!   simulation itself stays sans-IO.
//! * Every cell is judged by `Expectation::judge_cell`, the one implementation that
//!   `findings` and the library test use: every run must be as expected and a
//!   "within N seeds" expectation needs a hit among the seeds `first..first + N`. A shard
//!   sees only part of a cell, so a shard judges only per-run checks (every run as
//!   expected, timeouts, crashes, determinism); the within-N windows and never-fired
//!   checks are made on the whole campaign (unsharded or merged).
//! * Status: `failed` if anything failed; else `incomplete` if the wall-clock budget
//!   ran out before every planned run and every determinism re-run was made (exit code
//!   3: what ran is judged, but the campaign did not show everything it set out to);
//!   else `passed`. `campaign.json`'s `verdict` lines (also printed, and at the top of
//!   `summary.md`) say what passed and why; `cell_verdicts` gives each cell's.
//! * A worker that dies without printing its record records outcome "crash" (a failure).
//! * Records are the reports' typed records (`mimi_reports::records`): a worker's line is
//!   read as a `RunRecord` (a line that is not one is an error naming the run), stamped
//!   with its run key, cell, build and `timed_out`, and judged from its typed fields;
//!   campaign.json is a `CampaignRecord`. Both are written through `serde_json::Value`, so
//!   their keys are sorted, and a record keeps the fields the campaign does not read
//!   (`RunRecord::rest`): runs.jsonl has every field the worker printed.

pub mod findings;
mod identity;
mod pool;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mimi_reports::records::campaign::{
    CampaignRecord, CampaignStatus, CellVerdict, DeterminismRecord, Mismatch, NeverFired, PlanCell,
    PlanRecord,
};
use mimi_reports::records::run::{CellRef, RunOutcome, RunRecord, VariantRef};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use identity::Build;

use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK};
use crate::scenario::{EnforcementLevel, Expectation, Scenario};

/// The campaign folder's format tag.
pub const FORMAT: &str = "mimi-sim-campaign/1";
/// The default output folder.
pub const DEFAULT_OUT: &str = "target/campaign";
/// Most shards a campaign can be split into.
pub const MAX_SHARDS: u64 = 100_000;
/// Most seeds per cell.
pub const MAX_SEEDS: u64 = 1_000_000;

/// `mimi-sim campaign` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignArgs {
    /// Scenario files (default: every scenarios/*.toml).
    pub files: Vec<PathBuf>,
    /// Seeds per cell: N (= 1..N) or an inclusive range A..B.
    #[arg(long, default_value = "20")]
    pub seeds: String,
    /// Worker processes (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The campaign folder.
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
    /// Run only shard i of N (0 <= i < N): "i/N", "env" or "env/N".
    #[arg(long)]
    pub shard: Option<String>,
    /// Per-seed timeout in milliseconds; a worker over it is killed.
    #[arg(long, default_value_t = 120_000)]
    pub timeout_ms: u64,
    /// Wall-clock budget in seconds: no new runs start after it.
    #[arg(long)]
    pub budget_s: Option<u64>,
    /// Percentage of runs re-run in another process to check determinism.
    #[arg(long, default_value_t = 5.0)]
    pub resample_pct: f64,
}

/// `mimi-sim merge` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Shard folders written by `campaign --shard`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: PathBuf,
}

/// One cell of the plan: a file under one enforcement level.
#[derive(Debug, Clone)]
pub struct CellSpec {
    pub path: PathBuf,
    /// The file as written in run keys.
    pub file: String,
    /// `None`: the file's own variant (no matrix).
    pub level: Option<EnforcementLevel>,
    /// The level's name, or "default".
    pub enforcement: String,
    /// The values of the file's other matrix axes (`--variant` arguments).
    pub overrides: Vec<(String, String)>,
    /// The scenario with the level and the overrides applied.
    pub scenario: Scenario,
    pub text: String,
}

impl CellSpec {
    /// The axis values as `key=value,...` ("" without axes).
    pub fn variant(&self) -> String {
        crate::scenario::variant_label(&self.overrides)
    }

    /// The cell as written in run keys: see [`cell_label`].
    pub fn label(&self) -> String {
        cell_label(&self.enforcement, &self.variant())
    }

    /// The cell as `campaign.json` and each record's `cell` give it.
    fn cell_ref(&self) -> CellRef {
        CellRef {
            scenario_file: self.file.clone(),
            enforcement: self.enforcement.clone(),
            variant: self.variant(),
        }
    }

    /// The cell's [`Expectation`] as JSON (`within_seeds` null: every seed).
    fn expect(&self) -> Value {
        serde_json::to_value(self.scenario.expectation()).unwrap_or(Value::Null)
    }
}

/// The cell part of a run key: the enforcement level's name, then the other axes'
/// `key=value` if the file has any (`"full,leave_order=exiting"`).
pub fn cell_label(enforcement: &str, variant: &str) -> String {
    if variant.is_empty() {
        enforcement.to_string()
    } else {
        format!("{enforcement},{variant}")
    }
}

/// (scenario file, cell label) of a record's `cell` or a plan cell.
fn cell_id(c: &CellRef) -> (String, String) {
    (
        c.scenario_file.clone(),
        cell_label(&c.enforcement, &c.variant),
    )
}

/// (scenario file, cell label) of a record: its `cell`'s, ("", "") without one.
fn run_cell_id(r: &RunRecord) -> (String, String) {
    r.cell
        .as_ref()
        .map_or_else(|| (String::new(), String::new()), cell_id)
}

/// A record's run key ("" without one: campaigns stamp every record with its key).
fn key_of(r: &RunRecord) -> &str {
    r.run_key.as_deref().unwrap_or("")
}

/// `"<scenario_file>|<cell label>|<seed>"`.
pub fn run_key(file: &str, enforcement: &str, seed: u64) -> String {
    format!("{file}|{enforcement}|{seed}")
}

/// The trace file name of a run key (anything but `[A-Za-z0-9._-]` becomes `_`).
pub fn trace_file_name(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{s}.jsonl")
}

fn key_hash(tag: &str, key: &str) -> u64 {
    let d = Sha256::digest(format!("{tag}|{key}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The shard (0-based) a run key belongs to among `n`.
pub fn shard_of(key: &str, n: u64) -> u64 {
    key_hash("shard", key) % n.max(1)
}

/// Whether the determinism check re-runs `key` at `pct` percent.
pub fn sampled(key: &str, pct: f64) -> bool {
    ((key_hash("resample", key) % 10_000) as f64) < pct * 100.0
}

/// Parses seeds: `N` (1..N), `A..B` (inclusive) or a comma list of those.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let num = |x: &str| {
            x.trim().parse::<u64>().map_err(|_| {
                format!("--seeds {s:?}: {x:?} is not a number; give N, A..B or a comma list")
            })
        };
        let (a, b) = match part.split_once("..") {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            return Err(format!("--seeds {s:?}: {a}..{b} is empty (A must be <= B)"));
        }
        if b - a >= MAX_SEEDS || out.len() as u64 + (b - a) >= MAX_SEEDS {
            return Err(format!("--seeds {s:?}: more than {MAX_SEEDS} seeds"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The campaign `--seeds` value: `N` means `1..N`. Returns (first, last).
pub fn parse_campaign_seeds(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a.trim().parse::<u64>(), b.trim().parse::<u64>()),
        None => (Ok(1), s.trim().parse::<u64>()),
    };
    match (a, b) {
        (Ok(a), Ok(b)) if a <= b && b - a < MAX_SEEDS => Ok((a, b)),
        (Ok(a), Ok(b)) if a > b => Err(format!("--seeds {s:?}: the range is empty")),
        (Ok(_), Ok(_)) => Err(format!("--seeds {s:?}: more than {MAX_SEEDS} seeds")),
        _ => Err(format!(
            "--seeds {s:?}: give a count N (seeds 1..N) or an inclusive range A..B"
        )),
    }
}

/// Parses `--shard`: "i/N", "env" or "env/N". Returns (i, N).
pub fn parse_shard(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
    let (i, n) = s.split_once('/').unwrap_or((s, ""));
    let from_env = |names: &[&str]| {
        names
            .iter()
            .find_map(|k| env(k).map(|v| (k.to_string(), v)))
    };
    let i = if i == "env" {
        let (k, v) =
            from_env(&["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID"]).ok_or_else(|| {
                "--shard env: neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set"
                    .to_string()
            })?;
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("--shard env: {k}={v:?} is not a number"))?
    } else {
        i.parse::<u64>()
            .map_err(|_| format!("--shard {s:?}: give i/N (0 <= i < N), env or env/N"))?
    };
    let n = if n.is_empty() {
        if !s.starts_with("env") {
            return Err(format!(
                "--shard {s:?}: give i/N (0 <= i < N), env or env/N"
            ));
        }
        let (k, v) = from_env(&["MIMI_SIM_SHARDS", "SLURM_ARRAY_TASK_COUNT"]).ok_or_else(|| {
            "--shard env: set MIMI_SIM_SHARDS (or SLURM_ARRAY_TASK_COUNT), or give env/N"
                .to_string()
        })?;
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("--shard env: {k}={v:?} is not a number"))?
    } else {
        n.parse::<u64>()
            .map_err(|_| format!("--shard {s:?}: N is not a number"))?
    };
    if n == 0 || n > MAX_SHARDS || i >= n {
        return Err(format!(
            "--shard {s:?}: need 0 <= i < N <= {MAX_SHARDS}, got i = {i}, N = {n}"
        ));
    }
    Ok((i, n))
}

/// The cells of `files`, each loaded and validated.
pub fn plan_cells(files: &[PathBuf]) -> Result<Vec<CellSpec>, String> {
    let mut out = Vec::new();
    for path in files {
        let (s, text) = Scenario::load(path).map_err(|e| e.to_string())?;
        let file = path.display().to_string();
        for c in s.cells().map_err(|e| format!("{file}: {e}"))? {
            c.scenario
                .validate(&file, &text)
                .map_err(|e| e.to_string())?;
            let level = c.level_from_matrix.then_some(c.level);
            out.push(CellSpec {
                path: path.clone(),
                file: file.clone(),
                level,
                enforcement: level.map_or("default", |l| l.name()).to_string(),
                overrides: c.overrides,
                scenario: c.scenario,
                text: text.clone(),
            });
        }
    }
    Ok(out)
}

/// The stand-in record of a run whose worker was killed at the timeout or died (`error`:
/// the end of its stderr): the fields of a run record, no trace hash.
fn synthetic(
    cell: &CellSpec,
    seed: u64,
    outcome: RunOutcome,
    wall_ms: u64,
    error: Option<&str>,
) -> RunRecord {
    let rest: Map<String, Value> = [
        (
            "scenario_sha256",
            json!(crate::world::run::scenario_hash(&cell.text)),
        ),
        ("trace_events", json!(0)),
        ("wall_ms", json!(wall_ms)),
        ("faults", json!({})),
        ("ops", Value::Null),
        ("messages_accepted", json!(0)),
        ("messages_received", json!(0)),
        ("state_table", json!([])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    RunRecord {
        run_key: None,
        cell: None,
        build: None,
        timed_out: None,
        scenario_file: Some(cell.file.clone()),
        scenario: cell.scenario.name.clone(),
        variant: VariantRef {
            enforcement: cell.scenario.variant.enforcement.name().to_string(),
            rest: Map::new(),
        },
        seed,
        outcome,
        expected: cell.scenario.expectation().outcome,
        as_expected: false,
        violations: Vec::new(),
        liveness: error.map(str::to_string),
        steps_not_done: None,
        trace_hash: None,
        sim_time_ms: 0,
        converged_at_ms: None,
        faults_never_fired: Vec::new(),
        hub_rejections: BTreeMap::new(),
        rest,
    }
}

/// Adds what the campaign knows to a worker's (or a stand-in) record: its run key, cell,
/// build and whether it timed out.
fn stamp(r: &mut RunRecord, cell: &CellSpec, seed: u64, build: &Build, timed_out: bool) {
    r.run_key = Some(run_key(&cell.file, &cell.label(), seed));
    r.cell = Some(cell.cell_ref());
    r.build = Some(build.clone());
    r.timed_out = Some(timed_out);
}

/// The run outcomes a cell's expectation judges (timeouts and crashes fail on their own).
fn judged(o: RunOutcome) -> bool {
    matches!(
        o,
        RunOutcome::Ok | RunOutcome::Violation | RunOutcome::Liveness | RunOutcome::Incomplete
    )
}

fn failing(r: &RunRecord) -> bool {
    r.outcome != RunOutcome::Ok || !r.as_expected
}

/// What the campaign was asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub files: Vec<String>,
    pub seeds: (u64, u64),
    pub shard: Option<(u64, u64)>,
    /// Each cell with its expectation (`expect`: the cell's [`Expectation`] as JSON).
    pub cells: Vec<PlanCell>,
    pub runs_planned: usize,
}

impl Plan {
    /// campaign.json's `plan`.
    fn record(&self) -> PlanRecord {
        let levels: BTreeSet<&str> = self
            .cells
            .iter()
            .map(|c| c.cell.enforcement.as_str())
            .collect();
        PlanRecord {
            scenarios: self.files.clone(),
            cells: self.cells.clone(),
            seeds: format!("{}..{}", self.seeds.0, self.seeds.1),
            levels: levels.into_iter().map(str::to_string).collect(),
            runs_planned: self.runs_planned as u64,
            shard: self.shard.map(|(i, n)| format!("{i}/{n}")),
        }
    }
}

/// A plan cell's [`Expectation`]: ok in every seed when the cell gives none (null).
fn expectation(c: &PlanCell) -> Result<Expectation, String> {
    if c.expect.is_null() {
        return Ok(Expectation {
            outcome: crate::scenario::ExpectedOutcome::Ok,
            violations: Vec::new(),
            within_seeds: None,
        });
    }
    serde_json::from_value(c.expect.clone()).map_err(|e| {
        let (file, cell) = cell_id(&c.cell);
        format!("the plan's cell {file} under {cell}: its expect is not an expectation: {e}")
    })
}

/// The determinism check's result.
#[derive(Debug, Clone, Default)]
pub struct Determinism {
    /// Runs chosen for a re-run (the sample and every failing run).
    pub sampled: usize,
    /// Re-runs that were made (fewer than `sampled` when the budget ran out).
    pub rerun: usize,
    pub mismatches: Vec<Mismatch>,
}

/// Judges runs (sorted by run key): `campaign.json`. Fails when a plan cell's `expect`
/// is not an [`Expectation`] (a shard's campaign.json edited by hand).
#[allow(clippy::too_many_arguments)]
pub fn judge(
    plan: &Plan,
    build: &Build,
    runs: &[RunRecord],
    det: &Determinism,
    budget_exhausted: bool,
    wall_ms: u64,
    jobs: usize,
    extra_failures: &[String],
) -> Result<CampaignRecord, String> {
    let mut outcomes: BTreeMap<String, u64> =
        ["ok", "violation", "liveness", "incomplete", "timeout"]
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
    let mut unexpected = Vec::new();
    let mut failures: Vec<String> = extra_failures.to_vec();
    let mut by_cell: BTreeMap<(String, String), Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        *outcomes.entry(r.outcome.name().to_string()).or_insert(0) += 1;
        if !r.as_expected {
            unexpected.push(key_of(r).to_string());
        }
        by_cell.entry(run_cell_id(r)).or_default().push(r);
    }
    let bad: Vec<String> = runs
        .iter()
        .filter(|r| matches!(r.outcome, RunOutcome::Timeout | RunOutcome::Crash))
        .map(|r| format!("{} ({})", key_of(r), r.outcome.name()))
        .collect();
    if !bad.is_empty() {
        failures.push(format!(
            "{} runs timed out or crashed: {}",
            bad.len(),
            bad.join(", ")
        ));
    }
    let whole = plan.shard.is_none();
    let cells = judge_cells(plan, &by_cell, budget_exhausted)?;
    failures.extend(cells.failures.iter().cloned());
    let never = if whole { never_fired(runs) } else { Vec::new() };
    for n in &never {
        failures.push(format!(
            "{}: enabled fault kinds never fired in any run: {}",
            n.scenario_file,
            n.kinds.join(", ")
        ));
    }
    if !det.mismatches.is_empty() {
        failures.push(format!(
            "{} runs gave another trace hash when re-run in another process",
            det.mismatches.len()
        ));
    }
    let short = not_made(plan, runs.len(), det, &cells.not_judged);
    let status = if !failures.is_empty() {
        CampaignStatus::Failed
    } else if !short.is_empty() || budget_exhausted {
        CampaignStatus::Incomplete
    } else {
        CampaignStatus::Passed
    };
    let verdict = verdict_lines(
        plan,
        &cells,
        runs.len(),
        unexpected.len(),
        det,
        whole.then_some(never.len()),
        &short,
    );
    let record = CampaignRecord {
        format: FORMAT.to_string(),
        status,
        verdict,
        plan: plan.record(),
        determinism: DeterminismRecord {
            sampled: det.sampled as u64,
            rerun: det.rerun as u64,
            mismatches: det.mismatches.clone(),
        },
        build: build.clone(),
        failures,
        faults_never_fired: never,
        runs: runs.len() as u64,
        outcomes,
        unexpected,
        budget_exhausted,
        cell_verdicts: cells.verdicts,
        wall_ms,
        jobs: jobs as u64,
    };
    Ok(record)
}

/// campaign.json's `verdict`: a line each for the expectations, the runs, determinism and
/// the fault kinds (`never`: files with kinds that never fired, `None` in a shard), then
/// what was `short` (not made).
fn verdict_lines(
    plan: &Plan,
    cells: &CellJudgements,
    runs: usize,
    unexpected: usize,
    det: &Determinism,
    never: Option<usize>,
    short: &[String],
) -> Vec<String> {
    let faults_line = match never {
        None => "faults: not judged in a shard (judged when merged)".to_string(),
        Some(0) => "faults: every enabled kind fired in some run of its file".to_string(),
        Some(n) => format!("faults: {n} files with enabled kinds that never fired"),
    };
    let mut verdict = vec![
        format!(
            "expectations: {}/{} cells met{}{}",
            cells.met,
            plan.cells.len(),
            if cells.not_met.is_empty() {
                String::new()
            } else {
                format!("; NOT met: {}", cells.not_met.join(", "))
            },
            if cells.not_judged.is_empty() {
                String::new()
            } else {
                format!("; not judged (budget): {}", cells.not_judged.len())
            }
        ),
        format!(
            "runs: {runs} of {} planned; {unexpected} not as expected",
            plan.runs_planned
        ),
        format!(
            "determinism: {} of {} re-runs made in another process, {} differ",
            det.rerun,
            det.sampled,
            det.mismatches.len()
        ),
        faults_line,
    ];
    verdict.extend(short.iter().map(|s| format!("INCOMPLETE: {s}")));
    verdict
}

/// Every cell of the plan judged by its expectation.
struct CellJudgements {
    verdicts: Vec<CellVerdict>,
    met: usize,
    /// `"<file> under <cell>"` of the cells not met, and of those the budget left unjudged.
    not_met: Vec<String>,
    not_judged: Vec<String>,
    /// Why each cell not met failed.
    failures: Vec<String>,
}

/// Judges each cell of `plan` on its runs; a window the budget cut short is not judged
/// (the campaign is then incomplete, not failed).
fn judge_cells(
    plan: &Plan,
    by_cell: &BTreeMap<(String, String), Vec<&RunRecord>>,
    budget_exhausted: bool,
) -> Result<CellJudgements, String> {
    let whole = plan.shard.is_none();
    let mut out = CellJudgements {
        verdicts: Vec::new(),
        met: 0,
        not_met: Vec::new(),
        not_judged: Vec::new(),
        failures: Vec::new(),
    };
    for c in &plan.cells {
        let id = cell_id(&c.cell);
        let (file, enf) = (&id.0, &id.1);
        let rs: Vec<&RunRecord> = by_cell.get(&id).cloned().unwrap_or_default();
        let runs: Vec<crate::campaign::findings::JudgedRun> = rs
            .iter()
            .filter(|r| judged(r.outcome))
            .map(|r| crate::campaign::findings::judged_run(r))
            .collect();
        let e = expectation(c)?;
        let j = e.judge_cell(plan.seeds.0, &runs, whole);
        let window_cut = j
            .window
            .is_some_and(|(a, b, n)| n < (b - a + 1) as usize && j.first_hit.is_none());
        let verdict = if j.met() {
            out.met += 1;
            "met"
        } else if budget_exhausted && j.unexpected.is_empty() && window_cut {
            out.not_judged.push(format!("{file} under {enf}"));
            "not judged"
        } else {
            out.not_met.push(format!("{file} under {enf}"));
            out.failures
                .push(format!("{file} under {enf}: {}", j.explain(&e)));
            "not met"
        };
        out.verdicts.push(CellVerdict {
            scenario_file: file.clone(),
            cell: enf.clone(),
            expected: e.describe(),
            runs: runs.len() as u64,
            verdict: verdict.to_string(),
            why: j.explain(&e),
        });
    }
    Ok(out)
}

/// Per scenario file, the enabled fault kinds that fired in none of its judged runs.
fn never_fired(runs: &[RunRecord]) -> Vec<NeverFired> {
    let mut per_file: BTreeMap<&str, Option<BTreeSet<String>>> = BTreeMap::new();
    for r in runs {
        if !judged(r.outcome) {
            continue;
        }
        let kinds: BTreeSet<String> = r.faults_never_fired.iter().cloned().collect();
        let e = per_file
            .entry(r.cell.as_ref().map_or("", |c| c.scenario_file.as_str()))
            .or_insert(None);
        *e = Some(match e.take() {
            None => kinds,
            Some(prev) => prev.intersection(&kinds).cloned().collect(),
        });
    }
    per_file
        .into_iter()
        .filter_map(|(file, kinds)| {
            let kinds = kinds.unwrap_or_default();
            (!kinds.is_empty()).then(|| NeverFired {
                kinds: kinds.into_iter().collect(),
                scenario_file: file.to_string(),
            })
        })
        .collect()
}

/// What the campaign set out to do and did not: planned runs, determinism re-runs and
/// within-N windows not made (the budget ran out).
fn not_made(plan: &Plan, made: usize, det: &Determinism, not_judged: &[String]) -> Vec<String> {
    let mut short = Vec::new();
    if made < plan.runs_planned {
        short.push(format!(
            "{} of {} planned runs were not made",
            plan.runs_planned - made,
            plan.runs_planned
        ));
    }
    if det.rerun < det.sampled {
        short.push(format!(
            "{} of {} determinism re-runs were not made",
            det.sampled - det.rerun,
            det.sampled
        ));
    }
    if !not_judged.is_empty() {
        short.push(format!(
            "{} cells' within_seeds windows were not run: {}",
            not_judged.len(),
            not_judged.join(", ")
        ));
    }
    short
}

/// The Markdown summary of a campaign and its runs.
pub fn summary(c: &CampaignRecord, runs: &[RunRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Campaign: {}\n", c.status.name().to_uppercase());
    let plan = &c.plan;
    let _ = writeln!(
        s,
        "{} runs of {} planned ({} files, seeds {}, shard {}), {} worker processes, {:.1} s wall.\n",
        c.runs,
        plan.runs_planned,
        plan.scenarios.len(),
        plan.seeds,
        plan.shard.as_deref().unwrap_or("none"),
        c.jobs,
        c.wall_ms as f64 / 1000.0
    );
    for v in &c.verdict {
        let _ = writeln!(s, "* {v}");
    }
    let o = |k: &str| c.outcomes.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "\nOutcomes: ok {}, violation {}, liveness {}, incomplete {}, timeout {}. Runs not as expected: {}.",
        o("ok"),
        o("violation"),
        o("liveness"),
        o("incomplete"),
        o("timeout"),
        c.unexpected.len()
    );
    if c.budget_exhausted {
        let _ = writeln!(
            s,
            "\n**The wall-clock budget ran out before every run and determinism re-run was made: the campaign is not passed.**"
        );
    }
    let b = &c.build;
    let _ = writeln!(
        s,
        "\nBuild: commit {}{}, {} ({}), Cargo.lock {}.\n",
        b.git_commit,
        if b.git_dirty { " (dirty)" } else { "" },
        b.rustc,
        b.profile,
        b.cargo_lock_sha256.get(..12).unwrap_or("?")
    );
    if !c.failures.is_empty() {
        let _ = writeln!(s, "## Failures\n");
        for x in &c.failures {
            let _ = writeln!(s, "* {x}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Cells\n");
    let _ = writeln!(
        s,
        "| scenario | enforcement | expected | runs | ok | violation | liveness | incomplete | timeout | not as expected | verdict |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    let mut cells: BTreeMap<(String, String), [usize; 6]> = BTreeMap::new();
    for r in runs {
        let e = cells.entry(run_cell_id(r)).or_default();
        match r.outcome {
            RunOutcome::Ok => e[0] += 1,
            RunOutcome::Violation => e[1] += 1,
            RunOutcome::Liveness => e[2] += 1,
            RunOutcome::Incomplete => e[3] += 1,
            RunOutcome::Timeout | RunOutcome::Crash => e[4] += 1,
        }
        if !r.as_expected {
            e[5] += 1;
        }
    }
    let verdicts: BTreeMap<(String, String), &CellVerdict> = c
        .cell_verdicts
        .iter()
        .map(|v| ((v.scenario_file.clone(), v.cell.clone()), v))
        .collect();
    for cell in &plan.cells {
        let k = cell_id(&cell.cell);
        let n = cells.get(&k).copied().unwrap_or_default();
        let v = verdicts.get(&k);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.0,
            k.1,
            v.map_or("?", |v| v.expected.as_str()),
            n[..5].iter().sum::<usize>(),
            n[0],
            n[1],
            n[2],
            n[3],
            n[4],
            n[5],
            v.map_or("?".to_string(), |v| format!("{}: {}", v.verdict, v.why))
        );
    }
    s
}

/// Writes the report of the folder (`mimi-sim report DIR`): DIR/report/index.html.
pub fn write_report(dir: &Path) -> Result<PathBuf, String> {
    mimi_reports::report_campaign(dir)
        .map(|w| w.index)
        .map_err(|e| e.to_string())
}

/// Writes `runs.jsonl`, `campaign.json` and `summary.md` into `dir`. The records are
/// written through `serde_json::Value`, so their keys are sorted.
pub fn write_folder(
    dir: &Path,
    campaign: &CampaignRecord,
    runs: &[RunRecord],
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut text = String::new();
    for r in runs {
        let v = serde_json::to_value(r).map_err(|e| format!("run {}: {e}", key_of(r)))?;
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let c = serde_json::to_value(campaign)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .map_err(|e| format!("campaign.json: {e}"))?;
    let w = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    w("runs.jsonl", &text)?;
    w("campaign.json", &(c + "\n"))?;
    w("summary.md", &summary(campaign, runs))
}

fn sort_runs(runs: &mut [RunRecord]) {
    runs.sort_by(|a, b| key_of(a).cmp(key_of(b)));
}

struct Progress {
    started: Instant,
    last: Instant,
    total: usize,
    /// On a terminal: an `indicatif` bar; elsewhere (CI logs) a line every 10 s.
    bar: Option<indicatif::ProgressBar>,
    label: &'static str,
    shown: usize,
}

impl Progress {
    fn new(total: usize, label: &'static str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} runs, {elapsed}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("#>-");
            bar.set_style(style);
            bar.set_prefix(label);
            bar
        });
        Progress {
            started: Instant::now(),
            last: Instant::now(),
            total,
            bar,
            label,
            shown: usize::MAX,
        }
    }

    fn show(&mut self, done: usize) {
        if done == self.shown {
            return;
        }
        self.shown = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            if done >= self.total {
                bar.finish();
            }
        } else if self.last.elapsed() >= Duration::from_secs(10) || done >= self.total {
            self.last = Instant::now();
            eprintln!(
                "{}: {done}/{} runs ({:.0} %), {:.0} s elapsed",
                self.label,
                self.total,
                100.0 * done as f64 / self.total.max(1) as f64,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

fn bad(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mimi-sim: {msg}");
    ExitCode::from(EXIT_BAD_INPUT)
}

/// `mimi-sim campaign`.
pub fn main(a: &CampaignArgs) -> ExitCode {
    match campaign(a) {
        Ok(c) => ExitCode::from(status_code(&c)),
        Err(e) => bad(e),
    }
}

/// Runs a campaign and writes its folder; its campaign.json. `Err`: bad input or a
/// broken worker pool.
pub fn campaign(a: &CampaignArgs) -> Result<CampaignRecord, String> {
    let started = Instant::now();
    let (cells, plan, pairs) = plan(a)?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let build = identity::current();
    let out = &a.out;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let traces = out.join("traces");
    let work = out.join(".work");
    let _ = std::fs::remove_dir_all(&traces);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&traces)
        .map_err(|e| format!("cannot create {}: {e}", traces.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    eprintln!(
        "campaign: {} cells × seeds {}..{}{} = {} runs on {jobs} worker processes → {}",
        cells.len(),
        plan.seeds.0,
        plan.seeds.1,
        plan.shard
            .map_or(String::new(), |(i, n)| format!(", shard {i}/{n}")),
        pairs.len(),
        out.display()
    );
    let cfg = pool::Config {
        jobs,
        timeout: Duration::from_millis(a.timeout_ms),
        deadline: a.budget_s.map(|b| started + Duration::from_secs(b)),
        trace_dir: Some(&traces),
        work_dir: &work,
    };
    let mut prog = Progress::new(pairs.len(), "campaign");
    let (got, cut_short) = pool::run(&exe, &cells, pool::tasks(&pairs), &cfg, &mut |d| {
        prog.show(d)
    })?;
    let mut runs: Vec<RunRecord> = got
        .into_iter()
        .map(|(ci, seed, g)| {
            let c = &cells[ci];
            let (mut r, timed_out) = match g {
                pool::Got::Record(r) => (*r, false),
                pool::Got::Timeout => (
                    synthetic(c, seed, RunOutcome::Timeout, a.timeout_ms, None),
                    true,
                ),
                pool::Got::Crash(e) => (synthetic(c, seed, RunOutcome::Crash, 0, Some(&e)), false),
            };
            stamp(&mut r, c, seed, &build, timed_out);
            r
        })
        .collect();
    sort_runs(&mut runs);
    let (det, cut) = if cut_short {
        (resample_plan(&cells, &runs, a.resample_pct).0, true)
    } else {
        let cfg = pool::Config {
            trace_dir: None,
            ..cfg
        };
        rerun_elsewhere(&exe, &cells, &runs, a.resample_pct, &cfg)?
    };
    let _ = std::fs::remove_dir_all(&work);
    let wall_ms = started.elapsed().as_millis() as u64;
    let c = judge(&plan, &build, &runs, &det, cut, wall_ms, jobs, &[])?;
    write_folder(out, &c, &runs)?;
    finish(out, &c);
    Ok(c)
}

/// The campaign's cells, its plan and the (cell, seed) pairs to run (this shard's, in
/// order); `Err` names a bad option.
#[allow(clippy::type_complexity)]
fn plan(a: &CampaignArgs) -> Result<(Vec<CellSpec>, Plan, Vec<(usize, u64)>), String> {
    let seeds = parse_campaign_seeds(&a.seeds)?;
    let shard = match &a.shard {
        Some(s) => Some(parse_shard(s, &|k| std::env::var(k).ok())?),
        None => None,
    };
    if !(0.0..=100.0).contains(&a.resample_pct) {
        return Err(format!(
            "--resample-pct {}: give a percentage 0..100",
            a.resample_pct
        ));
    }
    if a.timeout_ms == 0 {
        return Err("--timeout-ms 0: give a positive per-seed timeout".into());
    }
    if a.jobs == Some(0) {
        return Err("--jobs 0: give at least one worker".into());
    }
    let files = if a.files.is_empty() {
        crate::campaign::findings::library(Path::new("scenarios"))?
    } else {
        a.files.clone()
    };
    let cells = plan_cells(&files)?;
    let mut pairs: Vec<(usize, u64)> = Vec::new();
    for (ci, c) in cells.iter().enumerate() {
        for seed in seeds.0..=seeds.1 {
            let key = run_key(&c.file, &c.label(), seed);
            if shard.is_none_or(|(i, n)| shard_of(&key, n) == i) {
                pairs.push((ci, seed));
            }
        }
    }
    let plan = Plan {
        files: files.iter().map(|f| f.display().to_string()).collect(),
        seeds,
        shard,
        cells: cells
            .iter()
            .map(|c| PlanCell {
                cell: c.cell_ref(),
                expect: c.expect(),
            })
            .collect(),
        runs_planned: pairs.len(),
    };
    Ok((cells, plan, pairs))
}

/// The runs to re-run for the determinism check (a sample by run key and every failing
/// run with a trace), by (cell, seed), with the index of each run: and the check with
/// none of them re-run yet.
#[allow(clippy::type_complexity)]
fn resample_plan(
    cells: &[CellSpec],
    runs: &[RunRecord],
    pct: f64,
) -> (
    Determinism,
    Vec<(usize, u64)>,
    BTreeMap<(usize, u64), usize>,
) {
    let index: BTreeMap<(usize, u64), usize> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let id = run_cell_id(r);
            let ci = cells
                .iter()
                .position(|c| id.0 == c.file && id.1 == c.label())?;
            Some(((ci, r.seed), i))
        })
        .collect();
    let resample: Vec<(usize, u64)> = index
        .iter()
        .filter(|(_, &i)| {
            let r = &runs[i];
            r.trace_hash.is_some() && (failing(r) || sampled(key_of(r), pct))
        })
        .map(|(k, _)| *k)
        .collect();
    let det = Determinism {
        sampled: resample.len(),
        rerun: 0,
        mismatches: Vec::new(),
    };
    (det, resample, index)
}

/// Re-runs the determinism sample in other worker processes and compares trace hashes;
/// also whether the budget cut the re-runs short.
fn rerun_elsewhere(
    exe: &Path,
    cells: &[CellSpec],
    runs: &[RunRecord],
    pct: f64,
    cfg: &pool::Config,
) -> Result<(Determinism, bool), String> {
    let (mut det, resample, index) = resample_plan(cells, runs, pct);
    if resample.is_empty() {
        return Ok((det, false));
    }
    let mut prog = Progress::new(resample.len(), "determinism re-runs");
    let (again, cut) = pool::run(exe, cells, pool::tasks(&resample), cfg, &mut |d| {
        prog.show(d)
    })?;
    for (ci, seed, g) in again {
        let Some(&i) = index.get(&(ci, seed)) else {
            continue;
        };
        det.rerun += 1;
        let r = &runs[i];
        let child = match g {
            pool::Got::Record(again) => again.trace_hash,
            pool::Got::Timeout => Some("timeout".to_string()),
            pool::Got::Crash(_) => Some("crash".to_string()),
        };
        if child != r.trace_hash {
            det.mismatches.push(Mismatch {
                run_key: key_of(r).to_string(),
                hash: r.trace_hash.clone(),
                child_hash: child,
            });
        }
    }
    det.mismatches.sort_by(|a, b| a.run_key.cmp(&b.run_key));
    Ok((det, cut))
}

/// The exit code of a campaign: 0 passed, 1 failed, 3 incomplete (the budget ran out
/// before every run or determinism re-run was made, and nothing failed).
pub fn status_code(c: &CampaignRecord) -> u8 {
    match c.status {
        CampaignStatus::Passed => EXIT_OK,
        CampaignStatus::Incomplete => EXIT_INCOMPLETE,
        CampaignStatus::Failed => EXIT_FAILED,
    }
}

fn finish(out: &Path, c: &CampaignRecord) {
    let report = write_report(out);
    println!(
        "campaign {}: {} runs; folder {}",
        c.status.name(),
        c.runs,
        out.display()
    );
    for v in &c.verdict {
        println!("  {v}");
    }
    for f in &c.failures {
        println!("FAILED: {f}");
    }
    match report {
        Ok(p) => println!("report: {}", p.display()),
        Err(e) => eprintln!("mimi-sim: no report: {e}"),
    }
}

/// A campaign folder's campaign.json and runs.jsonl. A file that is not of its record
/// type is an error naming the file (and the line).
fn read_folder(dir: &Path) -> Result<(CampaignRecord, Vec<RunRecord>), String> {
    let cj = dir.join("campaign.json");
    let text =
        std::fs::read_to_string(&cj).map_err(|e| format!("cannot read {}: {e}", cj.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cj.display()))?;
    // The format tag first: another file is "not a campaign folder", not a missing field.
    if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!("{}: not a {FORMAT} folder", cj.display()));
    }
    let c: CampaignRecord = serde_json::from_value(v)
        .map_err(|e| format!("{}: not a campaign record: {e}", cj.display()))?;
    let rj = dir.join("runs.jsonl");
    let text =
        std::fs::read_to_string(&rj).map_err(|e| format!("cannot read {}: {e}", rj.display()))?;
    let runs = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not a run record: {e}", rj.display(), i + 1))
        })
        .collect::<Result<Vec<RunRecord>, String>>()?;
    Ok((c, runs))
}

/// `mimi-sim merge`.
pub fn merge_main(a: &MergeArgs) -> ExitCode {
    match merge(&a.dirs, &a.out) {
        Ok(c) => {
            finish(&a.out, &c);
            ExitCode::from(status_code(&c))
        }
        Err(e) => bad(e),
    }
}

/// Merges shard folders into `out`; the merged campaign.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<CampaignRecord, String> {
    let mut first: Option<CampaignRecord> = None;
    let mut runs: BTreeMap<String, RunRecord> = BTreeMap::new();
    let mut shards: BTreeSet<u64> = BTreeSet::new();
    let mut n_shards: Option<u64> = None;
    let mut det = Determinism::default();
    let (mut wall, mut jobs, mut planned, mut budget) = (0u64, 0usize, 0usize, false);
    let mut failures = Vec::new();
    for d in dirs {
        let (c, rs) = read_folder(d)?;
        let plan = &c.plan;
        if let Some(f) = &first {
            for (k, same) in [
                ("scenarios", f.plan.scenarios == plan.scenarios),
                ("seeds", f.plan.seeds == plan.seeds),
                ("cells", f.plan.cells == plan.cells),
            ] {
                if !same {
                    return Err(format!(
                        "{}: its plan's {k} differs from {}'s; merge shards of one campaign",
                        d.display(),
                        dirs[0].display()
                    ));
                }
            }
            if f.build != c.build {
                failures.push(format!("{} was made by another build", d.display()));
            }
        }
        let shard = plan
            .shard
            .as_deref()
            .ok_or_else(|| format!("{}: not a shard (plan.shard is null)", d.display()))?;
        let (i, n) = parse_shard(shard, &|_| None)?;
        if n_shards.is_some_and(|m| m != n) {
            return Err(format!("{}: shard {shard} of another split", d.display()));
        }
        n_shards = Some(n);
        if !shards.insert(i) {
            return Err(format!("{}: shard {shard} given twice", d.display()));
        }
        for r in rs {
            let k = key_of(&r).to_string();
            if runs.insert(k.clone(), r).is_some() {
                return Err(format!("{}: run {k} is in two shards", d.display()));
            }
        }
        det.sampled += c.determinism.sampled as usize;
        det.rerun += c.determinism.rerun as usize;
        det.mismatches
            .extend(c.determinism.mismatches.iter().cloned());
        wall = wall.max(c.wall_ms);
        jobs = jobs.max(c.jobs as usize);
        planned += plan.runs_planned as usize;
        budget |= c.budget_exhausted;
        let tdir = d.join("traces");
        if let Ok(rd) = std::fs::read_dir(&tdir) {
            let to = out.join("traces");
            std::fs::create_dir_all(&to)
                .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
            for e in rd.flatten() {
                std::fs::copy(e.path(), to.join(e.file_name()))
                    .map_err(|x| format!("cannot copy {}: {x}", e.path().display()))?;
            }
        }
        if first.is_none() {
            first = Some(c);
        }
    }
    let Some(f) = first else {
        return Err("merge: give at least one shard folder".into());
    };
    let n = n_shards.unwrap_or(1);
    let missing: Vec<String> = (0..n)
        .filter(|i| !shards.contains(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        failures.push(format!("shards missing: {}", missing.join(", ")));
    }
    det.mismatches.sort_by(|a, b| a.run_key.cmp(&b.run_key));
    let plan = Plan {
        seeds: parse_campaign_seeds(&f.plan.seeds)?,
        files: f.plan.scenarios,
        shard: None,
        cells: f.plan.cells,
        runs_planned: planned,
    };
    let runs: Vec<RunRecord> = runs.into_values().collect();
    let c = judge(&plan, &f.build, &runs, &det, budget, wall, jobs, &failures)?;
    write_folder(out, &c, &runs)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> Build {
        Build {
            git_commit: "c0".into(),
            git_dirty: false,
            cargo_lock_sha256: "ab".into(),
            rustc: "rustc 1.95.0".into(),
            features: Vec::new(),
            profile: "debug".into(),
            mimi_sim_version: "0.1.0".into(),
        }
    }

    /// The stand-in record of a timed-out run, stamped, is the line the campaign wrote
    /// when records were `serde_json::Value`s: same fields, same order, no steps.
    #[test]
    fn a_stamped_stand_in_record_is_written_as_before() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/alice-adds-bob.toml");
        let mut c = plan_cells(&[file]).unwrap().remove(0);
        c.file = "scenarios/alice-adds-bob.toml".into();
        let mut r = synthetic(&c, 1, RunOutcome::Timeout, 1, None);
        stamp(&mut r, &c, 1, &build(), true);
        let sha = crate::world::run::scenario_hash(&c.text);
        let want = format!(
            r#"{{"as_expected":false,"build":{{"cargo_lock_sha256":"ab","features":[],"git_commit":"c0","git_dirty":false,"mimi_sim_version":"0.1.0","profile":"debug","rustc":"rustc 1.95.0"}},"cell":{{"enforcement":"default","scenario_file":"scenarios/alice-adds-bob.toml"}},"converged_at_ms":null,"expected":"ok","faults":{{}},"faults_never_fired":[],"hub_rejections":{{}},"liveness":null,"messages_accepted":0,"messages_received":0,"ops":null,"outcome":"timeout","run_key":"scenarios/alice-adds-bob.toml|default|1","scenario":"alice-adds-bob","scenario_file":"scenarios/alice-adds-bob.toml","scenario_sha256":"{sha}","seed":1,"sim_time_ms":0,"state_table":[],"timed_out":true,"trace_events":0,"trace_hash":null,"variant":{{"enforcement":"full"}},"violations":[],"wall_ms":1}}"#
        );
        assert_eq!(serde_json::to_value(&r).unwrap().to_string(), want);
        // A crash keeps the worker's last words as its liveness note.
        let r = synthetic(&c, 2, RunOutcome::Crash, 0, Some("worker exited"));
        assert_eq!(r.liveness.as_deref(), Some("worker exited"));
        assert!(failing(&r) && !judged(r.outcome));
    }

    /// A worker's record, stamped and written, is the worker's line plus the stamp.
    #[test]
    fn a_workers_record_keeps_every_field_when_stamped() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ban.toml");
        let c = plan_cells(&[file]).unwrap().remove(1);
        let resolved = c.scenario.validate(&c.file, &c.text).unwrap();
        let line = serde_json::to_value(crate::world::run::run(
            &c.scenario,
            &resolved,
            &c.text,
            2,
            false,
        ))
        .unwrap();
        let mut r: RunRecord = serde_json::from_value(line.clone()).unwrap();
        stamp(&mut r, &c, 2, &build(), false);
        let mut want = line;
        want["run_key"] = json!(run_key(&c.file, &c.label(), 2));
        want["cell"] = json!({"scenario_file": c.file, "enforcement": c.enforcement});
        want["build"] = serde_json::to_value(build()).unwrap();
        want["timed_out"] = json!(false);
        assert_eq!(serde_json::to_value(&r).unwrap(), want);
    }
}
