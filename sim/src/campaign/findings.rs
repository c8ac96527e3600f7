//! `mimi-sim findings`: runs every library scenario under every enforcement level of its
//! matrix for many seeds and writes `scenarios/FINDINGS.md` — a table per question:
//! variant × adversary/fault → runs, violations by oracle, split rate, liveness
//! failures, whether the file's expectation held, and the command that reproduces a row.
//!
//! Runs are spread over `jobs` worker processes (`mimi-sim batch`), each printing one
//! JSON record per seed; the table is a pure function of the records, so the file is
//! the same whatever `jobs` is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mimi_reports::records::run::{RunOutcome, RunRecord};

use crate::scenario::{CellJudgement, EnforcementLevel, Expectation, Scenario};

/// One cell of the matrix: a file under one enforcement level and one value of each of
/// its other axes.
#[derive(Debug, Clone)]
pub struct Cell {
    pub file: PathBuf,
    /// The scenario with the cell's level and axis values applied.
    pub scenario: Scenario,
    pub level: EnforcementLevel,
    /// `(variant key, value)` of the file's non-enforcement axes.
    pub overrides: Vec<(String, String)>,
}

impl Cell {
    /// `--variant KEY=VALUE` arguments that select this cell's axis values.
    pub fn variant_args(&self) -> Vec<String> {
        self.overrides
            .iter()
            .flat_map(|(k, v)| ["--variant".to_string(), format!("{k}={v}")])
            .collect()
    }
}

/// The cells of `files` (each file × its matrix).
pub fn cells(files: &[PathBuf]) -> Result<Vec<Cell>, String> {
    let mut out = Vec::new();
    for f in files {
        let (s, _) = Scenario::load(f).map_err(|e| e.to_string())?;
        for c in s.cells().map_err(|e| format!("{}: {e}", f.display()))? {
            out.push(Cell {
                file: f.clone(),
                scenario: c.scenario,
                level: c.level,
                overrides: c.overrides,
            });
        }
    }
    Ok(out)
}

/// Every `*.toml` in `dir`, sorted.
pub fn library(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

/// Per-seed timeout of a findings run (as the campaign's default `--timeout-ms`).
const SEED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs seeds `1..=seeds` of every cell in `jobs` worker processes — the campaign's
/// pool ([`super::pool`]) — and returns the records per cell index, in seed order. A
/// seed that crashed its worker or ran past [`SEED_TIMEOUT`] is an error naming the
/// cell and the seed (a findings table is not written from a partial set).
pub fn run_cells(cells: &[Cell], seeds: u64, jobs: usize) -> Result<Vec<Vec<RunRecord>>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut specs = Vec::with_capacity(cells.len());
    for c in cells {
        let text = std::fs::read_to_string(&c.file)
            .map_err(|e| format!("cannot read {}: {e}", c.file.display()))?;
        specs.push(super::CellSpec {
            path: c.file.clone(),
            file: c.file.display().to_string(),
            level: Some(c.level),
            enforcement: c.level.name().to_string(),
            overrides: c.overrides.clone(),
            scenario: c.scenario.clone(),
            text,
        });
    }
    let pairs: Vec<(usize, u64)> = (0..cells.len())
        .flat_map(|i| (1..=seeds).map(move |s| (i, s)))
        .collect();
    let work_dir = std::env::temp_dir().join(format!("mimi-sim-findings-{}", std::process::id()));
    let cfg = super::pool::Config {
        jobs,
        timeout: SEED_TIMEOUT,
        deadline: None,
        trace_dir: None,
        work_dir: &work_dir,
    };
    let got = super::pool::run(&exe, &specs, super::pool::tasks(&pairs), &cfg, &mut |_| {});
    let _ = std::fs::remove_dir_all(&work_dir);
    let (done, _) = got?;
    let mut results: Vec<Vec<RunRecord>> = vec![Vec::new(); cells.len()];
    for (i, seed, g) in done {
        let file = cells[i].file.display();
        match g {
            super::pool::Got::Record(r) => results[i].push(*r),
            super::pool::Got::Timeout => {
                return Err(format!(
                    "{file} ({}) seed {seed} ran longer than {SEED_TIMEOUT:?}",
                    cells[i].level.name()
                ))
            }
            super::pool::Got::Crash(e) => {
                return Err(format!(
                    "{file} ({}) seed {seed}: {e}",
                    cells[i].level.name()
                ))
            }
        }
    }
    for r in &mut results {
        r.sort_by_key(|v| v.seed);
    }
    Ok(results)
}

/// Aggregated figures of one cell.
#[derive(Debug, Clone)]
pub struct Row {
    pub file: String,
    /// The cell's axis values, `key=value,...` ("" for a file without axes).
    pub variant: String,
    /// `--variant` arguments reproducing the cell (with a leading space), or "".
    pub variant_args: String,
    pub name: String,
    pub question: String,
    pub level: EnforcementLevel,
    pub adversary: String,
    pub faults: String,
    pub runs: usize,
    pub ok: usize,
    pub violation_runs: usize,
    pub liveness: usize,
    /// Runs with a scripted step that did not happen and is not declared.
    pub incomplete: usize,
    /// Runs with a step abandoned or refused as its declaration allows.
    pub declared_not_done: usize,
    pub by_oracle: BTreeMap<String, usize>,
    /// Runs in which the hub refused something, by rule (or code).
    pub rejections: BTreeMap<String, usize>,
    pub expectation: Expectation,
    pub expectation_met: bool,
    /// Why it was met or not ([`CellJudgement::explain`]).
    pub why: String,
    pub first_failing_seed: Option<u64>,
}

/// How a cell's records (one per seed; `first` the lowest seed asked for) stand against
/// `e` ([`Expectation::judge_cell`], the one implementation `campaign` and the library
/// test use too).
pub fn judge(e: &Expectation, first: u64, records: &[RunRecord]) -> CellJudgement {
    let runs: Vec<JudgedRun> = records.iter().map(judged_run).collect();
    e.judge_cell(first, &runs, true)
}

/// A run record (`run --json`, a campaign's `runs.jsonl` line) as
/// [`Expectation::judge_cell`] reads it: seed, outcome and the ids of its violations.
pub type JudgedRun<'a> = (u64, &'a str, Vec<&'a str>);

/// The one reading of a record into a [`JudgedRun`] (`findings` and `campaign`).
pub fn judged_run(r: &RunRecord) -> JudgedRun<'_> {
    (
        r.seed,
        r.outcome.name(),
        r.violations.iter().map(|v| v.id.as_str()).collect(),
    )
}

/// Whether `records` (seeds from 1) meet `e`.
pub fn expectation_met(e: &Expectation, records: &[RunRecord]) -> bool {
    judge(e, 1, records).met()
}

pub fn row(cell: &Cell, records: &[RunRecord]) -> Row {
    let s = &cell.scenario;
    let mut by_oracle = BTreeMap::new();
    let mut rejections = BTreeMap::new();
    let (mut ok, mut viol, mut live, mut incomplete, mut declared) = (0, 0, 0, 0, 0);
    let mut first_failing = None;
    for r in records {
        match r.outcome {
            RunOutcome::Ok => ok += 1,
            RunOutcome::Violation => viol += 1,
            RunOutcome::Incomplete => incomplete += 1,
            RunOutcome::Liveness | RunOutcome::Timeout | RunOutcome::Crash => live += 1,
        }
        if r.step_notes().iter().any(|n| n.declared) {
            declared += 1;
        }
        if r.outcome != RunOutcome::Ok && first_failing.is_none() {
            first_failing = Some(r.seed);
        }
        for k in r.hub_rejections.keys() {
            *rejections.entry(k.clone()).or_insert(0) += 1;
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &r.violations {
            if seen.insert(v.id.as_str()) {
                *by_oracle.entry(v.id.clone()).or_insert(0) += 1;
            }
        }
    }
    let mut kinds: Vec<String> = s
        .faults
        .schedule
        .iter()
        .map(|f| f.get_ref().fault.kind().to_string())
        .collect();
    if let Some(sw) = &s.faults.swarm {
        kinds.extend(sw.get_ref().kinds.iter().map(|k| format!("{k}*")));
    }
    kinds.sort();
    kinds.dedup();
    let expectation = s.expectation();
    let judgement = judge(&expectation, 1, records);
    Row {
        file: cell.file.display().to_string(),
        variant: crate::scenario::variant_label(&cell.overrides),
        variant_args: cell
            .overrides
            .iter()
            .map(|(k, v)| format!(" --variant {k}={v}"))
            .collect(),
        name: s.name.clone(),
        question: s.question.clone().unwrap_or_else(|| s.name.clone()),
        level: cell.level,
        adversary: s
            .adversaries
            .iter()
            .map(|a| format!("{} @ {}", a.get_ref().behaviour, a.get_ref().provider))
            .collect::<Vec<_>>()
            .join(", "),
        faults: if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(" ")
        },
        runs: records.len(),
        ok,
        violation_runs: viol,
        liveness: live,
        incomplete,
        declared_not_done: declared,
        by_oracle,
        rejections,
        expectation_met: judgement.met(),
        why: judgement.explain(&expectation),
        expectation,
        first_failing_seed: first_failing,
    }
}

fn pct(n: usize, d: usize) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1} %", 100.0 * n as f64 / d as f64)
    }
}

/// The Markdown page.
pub fn render(rows: &[Row], seeds: u64, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Findings\n\nGenerated by `{command}` from {seeds} seeds per row (seeds 1..={seeds}); do not edit by hand.\n\
         Each row is one scenario file under one hub enforcement level (and, in parentheses, the\n\
         values of the file's other matrix axes). *split rate*: runs in which\n\
         honest clients at one epoch disagreed (`no-split`). *violations by oracle*: runs in which each\n\
         oracle fired. *hub refused*: runs in which the hub rejected a request, by enforcement rule\n\
         (or by answer code where no rule applies, e.g. wrongEpoch from ordinary races).\n\
         *incomplete*: runs that converged without a violation but in which a scripted step\n\
         did not happen (abandoned, refused by the hub, failed) and the step does not declare it\n\
         (`may_abandon`, `may_refuse`); *declared*: runs in which a step was abandoned or refused\n\
         as its declaration allows (counted in *ok* when nothing else failed).\n\
         *expected*: the file's `[expect]` for that cell held (✓) or not (✗), judged as `campaign`\n\
         judges it (`Expectation::judge_cell`).\n\
         Faults marked `*` come from the seeded swarm.\n"
    );
    let mut by_q: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_q.entry(r.question.clone()).or_default().push(r);
    }
    for (q, rs) in by_q {
        let _ = writeln!(s, "## {q}\n");
        let _ = writeln!(
            s,
            "| scenario | enforcement | adversary | faults | runs | ok | violations by oracle | split rate | liveness failures | incomplete | declared | hub refused (runs, by rule) | expected | reproduce |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in rs {
            let viol = if r.by_oracle.is_empty() {
                "none".to_string()
            } else {
                r.by_oracle
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let split = r
                .by_oracle
                .get(crate::observe::oracles::NO_SPLIT)
                .copied()
                .unwrap_or(0);
            let expect = format!(
                "{} {}",
                if r.expectation_met { "✓" } else { "✗" },
                r.expectation.describe()
            );
            let seed = r.first_failing_seed.unwrap_or(1);
            let refused = if r.rejections.is_empty() {
                "none".to_string()
            } else {
                r.rejections
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | `mimi-sim run {} --enforcement {}{} --seed {seed}` |",
                if r.variant.is_empty() {
                    r.name.clone()
                } else {
                    format!("{} ({})", r.name, r.variant)
                },
                r.level.name(),
                if r.adversary.is_empty() { "—" } else { &r.adversary },
                r.faults,
                r.runs,
                r.ok,
                viol,
                pct(split, r.runs),
                r.liveness,
                r.incomplete,
                r.declared_not_done,
                refused,
                expect,
                r.file,
                r.level.name(),
                r.variant_args
            );
        }
        let _ = writeln!(s);
    }
    s
}
