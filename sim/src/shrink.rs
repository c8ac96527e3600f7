//! `mimi-sim shrink`: a failing run, delta-debugged down to a small fixed fault schedule
//! (and fewer scripted steps) that still triggers the same violation on its own, written
//! as a scenario file for `scenarios/regressions/`.
//!
//! The method is Zeller and Hildebrandt's ddmin ("Simplifying and Isolating
//! Failure-Inducing Input", IEEE TSE 2002): split the current set into n chunks, keep a
//! chunk or a complement that still fails, otherwise double n; it ends 1-minimal
//! (removing any single element loses the failure). Each test is one re-execution of the
//! simulator with the input's seed and enforcement level; every candidate is a complete
//! scenario text, parsed and validated exactly as a file would be.
//!
//! Steps: (1) re-run the input and collect the fault windows that fired (the trace's
//! `fault-start` events carry `Window::describe()`); (2) turn them into
//! `[[faults.schedule]]` entries and drop `[faults.swarm]`, check that it still fails;
//! (3) ddmin over the windows; (4) halve each window's duration while it still fails;
//! (5) ddmin over the scripted steps (every `create` kept); (6) remove any window whose
//! removal still fails, so the written set is 1-minimal for the final script; (7) run the
//! written text once more as the proof.
//!
//! # Choices
//! * "The same violation": the first oracle the input run reports (runs stop at the first
//!   violation unless `on_violation = "record"`); a candidate fails the same way when its
//!   violations include that oracle id. An input that ended in a liveness failure is kept
//!   when the candidate's outcome is liveness.
//! * Windows are those that fired in the input run, not the whole plan: windows planned
//!   after the run stopped never acted.
//! * A step other than `create` may be removed when the failure remains: the driver
//!   abandons steps whose precondition never holds, so a removal never makes a file
//!   invalid; a candidate that does not validate counts as "does not fail".
//! * The reproducer keeps the input's seed (`[regression] seed`): keys, nonces and
//!   turmoil's latency draws derive from it. `mimi-sim run FILE --seed N` with that seed
//!   reproduces it; the file's top comment gives the command.
//! * Identical candidates are run once (a cache keyed by the candidate text); the count of
//!   re-executions counts real runs only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mimi_reports::records::trace;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::level;
use crate::exit::{EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK};
use crate::scenario::{EnforcementLevel, Scenario};
use crate::world::run::{run, scenario_hash, Outcome, RunReport};

/// Largest input file read (a trace of a long run is large; the header is line 1).
pub const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;
/// Durations are not halved below this.
pub const MIN_WINDOW_MS: u64 = 50;
/// Most re-executions one shrink may spend; past it the current (still failing)
/// configuration is written as it is.
pub const MAX_RUNS: u64 = 2_000;
/// Directory of the regression corpus.
pub const REGRESSIONS_DIR: &str = "scenarios/regressions";

/// Why shrinking could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShrinkError {
    /// The input file is unreadable or not a trace or run record.
    #[error("{0}")]
    BadInput(String),
    /// The input run met no violation and no liveness failure: nothing to shrink.
    #[error("{input}: seed {seed} under {level} did not fail (outcome ok): nothing to shrink")]
    NotFailing {
        input: String,
        seed: u64,
        level: &'static str,
    },
    /// Without the swarm, the fixed schedule of the windows that fired no longer fails.
    #[error("{input}: seed {seed}: the fired windows as a fixed schedule no longer trigger {target} (the failure depends on the swarm's exact timing or order); nothing written")]
    NotReproducible {
        input: String,
        seed: u64,
        target: String,
    },
}

/// The run to shrink: scenario text, seed and level, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scenario_text: String,
    /// The file the scenario came from (a record's `scenario_file`, or the trace).
    pub source: String,
    pub seed: u64,
    pub level: EnforcementLevel,
    /// Variant keys a matrix axis or `--variant` set (the record's `variant.overrides`).
    pub overrides: BTreeMap<String, String>,
}

/// The failure a candidate must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A violation of this oracle id.
    Oracle(String),
    /// A liveness failure.
    Liveness,
}

impl Target {
    /// The oracle id, or "liveness".
    pub fn id(&self) -> &str {
        match self {
            Target::Oracle(o) => o,
            Target::Liveness => "liveness",
        }
    }

    /// The failure of a run, if it failed.
    pub fn of(r: &RunReport) -> Option<Target> {
        match r.outcome {
            // An incomplete run (a step that did not happen) is not shrunk (yet).
            Outcome::Ok | Outcome::Incomplete => None,
            Outcome::Violation => r.violations.first().map(|v| Target::Oracle(v.id.into())),
            Outcome::Liveness => Some(Target::Liveness),
        }
    }

    /// Whether `r` failed this way.
    pub fn matches(&self, r: &RunReport) -> bool {
        match self {
            Target::Oracle(o) => r.violations.iter().any(|v| v.id == o.as_str()),
            Target::Liveness => r.outcome == Outcome::Liveness,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Oracle(o) => write!(f, "a violation of {o}"),
            Target::Liveness => f.write_str("a liveness failure"),
        }
    }
}

fn bad(msg: impl Into<String>) -> ShrinkError {
    ShrinkError::BadInput(msg.into())
}

/// Reads the input: a JSONL trace (its header line), a run record (`run --json`), or a
/// campaign's `runs.jsonl` (line `line`, 1-based; default the first).
pub fn read_input(path: &Path, line: Option<usize>) -> Result<Origin, ShrinkError> {
    let shown = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|e| bad(format!("cannot read {shown}: {e}")))?
        .len();
    if size > MAX_INPUT_BYTES {
        return Err(bad(format!(
            "{shown}: {size} bytes, more than the {MAX_INPUT_BYTES} read"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    read_input_text(&shown, &text, line, &|file| std::fs::read_to_string(file))
}

/// [`read_input`] on the file's text (`shown` names it in errors); `read_scenario`
/// reads the scenario file a run record names.
pub fn read_input_text(
    shown: &str,
    text: &str,
    line: Option<usize>,
    read_scenario: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Origin, ShrinkError> {
    let n = line.unwrap_or(1);
    // A pretty-printed record spans lines: try the whole file first.
    let v: Value = match (line, serde_json::from_str::<Value>(text)) {
        (None, Ok(v)) => v,
        _ => {
            let Some(l) = text.lines().nth(n.saturating_sub(1)).filter(|_| n >= 1) else {
                return Err(bad(format!("{shown}: has no line {n}")));
            };
            serde_json::from_str(l).map_err(|e| {
                bad(format!(
                    "{shown}:{n}: not JSON ({e}); give a trace written by --trace, a record printed by run --json, or a line of runs.jsonl"
                ))
            })?
        }
    };
    let at = format!("{shown}:{n}");
    let input: InputLine = serde_json::from_value(v).map_err(|e| {
        bad(format!(
            "{at}: neither a trace header nor a run record with `seed`, `variant` and \
             `scenario_file` ({e})"
        ))
    })?;
    let seed = input.seed;
    let lvl = level(input.variant.enforcement.as_deref())
        .ok_or_else(|| bad(format!("{at}: no `variant.enforcement` field")))?;
    let overrides: BTreeMap<String, String> = input
        .variant
        .overrides
        .iter()
        .filter_map(|(k, x)| Some((k.clone(), x.as_str()?.to_string())))
        .collect();
    if input.kind.as_deref() == Some("header") {
        let t = input
            .scenario_toml
            .ok_or_else(|| bad(format!("{at}: the trace header has no `scenario_toml`")))?;
        let name = input.scenario.as_deref().unwrap_or("?");
        return Ok(Origin {
            scenario_text: t,
            source: format!("the trace {shown} of scenario {name}"),
            seed,
            level: lvl,
            overrides,
        });
    }
    let file = input.scenario_file.ok_or_else(|| {
        bad(format!(
            "{at}: neither a trace header nor a run record with `scenario_file`"
        ))
    })?;
    let stext = read_scenario(&file)
        .map_err(|e| bad(format!("{at}: cannot read its scenario {file}: {e}")))?;
    if let Some(want) = input.scenario_sha256 {
        if want != scenario_hash(&stext) {
            return Err(bad(format!(
                "{file} changed since the record was made (its SHA-256 differs); shrink the run's trace instead"
            )));
        }
    }
    Ok(Origin {
        scenario_text: stext,
        source: file,
        seed,
        level: lvl,
        overrides,
    })
}

/// What `shrink` reads of its input line: a trace header (`kind` "header", with the
/// scenario it ran) or a run record (with the scenario file it names).
#[derive(Debug, Deserialize)]
struct InputLine {
    #[serde(default)]
    kind: Option<String>,
    seed: u64,
    #[serde(default)]
    variant: RecordedVariant,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    scenario_toml: Option<String>,
    #[serde(default)]
    scenario_file: Option<String>,
    #[serde(default)]
    scenario_sha256: Option<String>,
}

/// The part of a recorded variant a shrink re-applies: its level and overrides.
#[derive(Debug, Default, Deserialize)]
struct RecordedVariant {
    #[serde(default)]
    enforcement: Option<String>,
    #[serde(default)]
    overrides: BTreeMap<String, Value>,
}

/// What a shrink produced.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub target: Target,
    /// The reproducer's text (with its top comment).
    pub text: String,
    /// The reproducer's name (also the default file stem).
    pub name: String,
    /// Re-executions, including the input's own run and the final proof.
    pub runs: u64,
    pub windows_before: usize,
    pub windows_after: usize,
    pub steps_before: usize,
    pub steps_after: usize,
    /// The final schedule entries and steps (TOML tables), for checks.
    pub windows: Vec<toml::Table>,
    pub steps: Vec<toml::Table>,
    /// The re-execution budget ran out before the end (the result still fails).
    pub budget_exhausted: bool,
}

/// The scenario's fixed parts and the test oracle over candidates.
pub struct Shrinker {
    base: toml::Table,
    name: String,
    origin: Origin,
    target: Target,
    runs: u64,
    max_runs: u64,
    cache: BTreeMap<String, bool>,
}

/// A `fault-start` event's window as a `[[faults.schedule]]` entry.
pub fn schedule_entry(window: &trace::Fault) -> Option<toml::Table> {
    let mut t = toml::Table::new();
    let int = |n: u64| i64::try_from(n).ok().map(toml::Value::Integer);
    t.insert("at_ms".into(), int(window.start_ms)?);
    t.insert(
        "for_ms".into(),
        int(window.end_ms.saturating_sub(window.start_ms))?,
    );
    // The fault's own fields, in name order.
    let text = |x: &Option<String>| x.clone().map(toml::Value::String);
    let fields = [
        ("a", text(&window.a)),
        ("b", text(&window.b)),
        ("client", text(&window.client)),
        ("from", text(&window.from)),
        ("kind", Some(toml::Value::String(window.kind.clone()))),
        ("max_ms", window.max_ms.and_then(int)),
        ("min_ms", window.min_ms.and_then(int)),
        ("provider", text(&window.provider)),
        ("rate", window.rate.map(toml::Value::Float)),
        ("to", text(&window.to)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            t.insert(k.into(), v);
        }
    }
    Some(t)
}

/// The windows that fired in a trace (its `fault-start` events), as schedule entries.
pub fn fired_windows(trace: &[String]) -> Vec<toml::Table> {
    trace
        .iter()
        .filter_map(|l| trace::Event::parse(l).ok())
        .filter_map(|e| match e.what {
            trace::What::FaultStart { fault } => schedule_entry(&fault),
            _ => None,
        })
        .collect()
}

fn is_create(step: &toml::Table) -> bool {
    step.get("op").and_then(toml::Value::as_str) == Some("create")
}

fn int(t: &toml::Table, k: &str) -> u64 {
    t.get(k)
        .and_then(toml::Value::as_integer)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

impl Shrinker {
    /// Runs the input once (the first re-execution) and fixes the failure to keep.
    /// Returns the shrinker and the windows that fired.
    pub fn start(origin: Origin) -> Result<(Shrinker, Vec<toml::Table>), ShrinkError> {
        let label = origin.source.clone();
        let s = Scenario::parse(&label, &origin.scenario_text)
            .map_err(|e| bad(e.to_string()))?
            .at_level(origin.level);
        let mut s = s;
        for (k, v) in &origin.overrides {
            s.set_variant(k, v)
                .map_err(|e| bad(format!("{label}: {e}")))?;
        }
        let resolved = s
            .validate(&label, &origin.scenario_text)
            .map_err(|e| bad(e.to_string()))?;
        let r = run(&s, &resolved, &origin.scenario_text, origin.seed, true);
        let Some(target) = Target::of(&r) else {
            return Err(ShrinkError::NotFailing {
                input: origin.source.clone(),
                seed: origin.seed,
                level: origin.level.name(),
            });
        };
        let windows = fired_windows(r.trace.as_deref().unwrap_or_default());
        let mut base: toml::Table = toml::from_str(&origin.scenario_text)
            .map_err(|e| bad(format!("{label}: {}", e.message())))?;
        for k in ["script", "faults", "matrix", "expect", "regression"] {
            base.remove(k);
        }
        let mut variant = match base.remove("variant") {
            Some(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        variant.insert(
            "enforcement".into(),
            toml::Value::String(origin.level.name().into()),
        );
        for (k, v) in &origin.overrides {
            variant.insert(k.clone(), toml::Value::String(v.clone()));
        }
        base.insert("variant".into(), toml::Value::Table(variant));
        let name = format!(
            "{}-{}-{}-s{}",
            s.name,
            origin.level.name(),
            target.id(),
            origin.seed
        );
        base.insert("name".into(), toml::Value::String(name.clone()));
        base.insert(
            "question".into(),
            toml::Value::String(format!(
                "Regression: does {target} still happen under {} (shrunk from {} seed {})?",
                origin.level.name(),
                s.name,
                origin.seed
            )),
        );
        let sh = Shrinker {
            base,
            name,
            origin,
            target,
            runs: 1,
            max_runs: MAX_RUNS,
            cache: BTreeMap::new(),
        };
        Ok((sh, windows))
    }

    /// The scripted steps of the input, as tables.
    pub fn steps(&self) -> Vec<toml::Table> {
        let t: toml::Table = toml::from_str(&self.origin.scenario_text).unwrap_or_default();
        match t.get("script") {
            Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_table().cloned()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// The candidate's scenario text (without the top comment).
    pub fn candidate(&self, windows: &[toml::Table], steps: &[toml::Table]) -> String {
        let mut t = self.base.clone();
        let arr = |v: &[toml::Table]| {
            toml::Value::Array(v.iter().cloned().map(toml::Value::Table).collect())
        };
        t.insert("script".into(), arr(steps));
        if !windows.is_empty() {
            let mut f = toml::Table::new();
            f.insert("schedule".into(), arr(windows));
            t.insert("faults".into(), toml::Value::Table(f));
        }
        let mut e = toml::Table::new();
        match &self.target {
            Target::Oracle(o) => {
                e.insert("outcome".into(), toml::Value::String("violation".into()));
                e.insert(
                    "violations".into(),
                    toml::Value::Array(vec![toml::Value::String(o.clone())]),
                );
            }
            Target::Liveness => {
                e.insert("outcome".into(), toml::Value::String("liveness".into()));
            }
        }
        t.insert("expect".into(), toml::Value::Table(e));
        in_order(t)
    }

    /// Runs a scenario text once; `None` if it does not parse or validate.
    fn execute(&mut self, text: &str) -> Option<RunReport> {
        let s = Scenario::parse(&self.name, text).ok()?;
        let resolved = s.validate(&self.name, text).ok()?;
        self.runs += 1;
        Some(run(&s, &resolved, text, self.origin.seed, false))
    }

    /// Whether the candidate still fails the same way (cached per text). Past the budget,
    /// every new candidate counts as "does not fail", which keeps the current one.
    pub fn fails(&mut self, windows: &[toml::Table], steps: &[toml::Table]) -> bool {
        let text = self.candidate(windows, steps);
        if let Some(&b) = self.cache.get(&text) {
            return b;
        }
        if self.runs >= self.max_runs {
            return false;
        }
        let b = self.execute(&text).is_some_and(|r| self.target.matches(&r));
        self.cache.insert(text, b);
        b
    }
}

/// Order of the top-level keys in a written reproducer (others follow, sorted).
const KEY_ORDER: [&str; 13] = [
    "name",
    "question",
    "world",
    "variant",
    "phases",
    "network",
    "oracles",
    "adversaries",
    "script",
    "faults",
    "expect",
    "matrix",
    "regression",
];

/// The table as TOML text, its top-level keys in [`KEY_ORDER`] (a `toml::Table` sorts).
fn in_order(mut t: toml::Table) -> String {
    let mut out = String::new();
    let mut keys: Vec<String> = KEY_ORDER.iter().map(|k| k.to_string()).collect();
    keys.extend(
        t.keys()
            .filter(|k| !KEY_ORDER.contains(&k.as_str()))
            .cloned(),
    );
    for k in keys {
        let Some(v) = t.remove(&k) else { continue };
        let mut one = toml::Table::new();
        one.insert(k, v);
        let part = toml::to_string(&one).unwrap_or_default();
        if !out.is_empty() && part.starts_with('[') {
            out.push('\n');
        }
        out.push_str(&part);
    }
    out
}

/// ddmin over `items`: a 1-minimal subsequence for which `fails` holds, given that it
/// holds for `items`. Keeps the items' order.
pub fn ddmin<T: Clone>(items: Vec<T>, fails: &mut dyn FnMut(&[T]) -> bool) -> Vec<T> {
    let mut c = items;
    if c.is_empty() {
        return c;
    }
    if fails(&[]) {
        return Vec::new();
    }
    let mut n = 2usize;
    while c.len() >= 2 {
        let len = c.len();
        let n_now = n.min(len);
        let bounds: Vec<(usize, usize)> = (0..n_now)
            .map(|i| (i * len / n_now, (i + 1) * len / n_now))
            .collect();
        let mut next = None;
        for &(a, b) in &bounds {
            let subset: Vec<T> = c[a..b].to_vec();
            if fails(&subset) {
                next = Some((subset, 2));
                break;
            }
        }
        if next.is_none() && n_now > 2 {
            for &(a, b) in &bounds {
                let mut comp: Vec<T> = c[..a].to_vec();
                comp.extend_from_slice(&c[b..]);
                if fails(&comp) {
                    next = Some((comp, (n_now - 1).max(2)));
                    break;
                }
            }
        }
        match next {
            Some((smaller, m)) => {
                c = smaller;
                n = m;
            }
            None if n_now >= len => break,
            None => n = (2 * n_now).min(len),
        }
    }
    c
}

/// Removes single items while `fails` still holds, until none can go: the result is
/// 1-minimal whatever happened before.
pub fn one_minimal<T: Clone>(items: Vec<T>, fails: &mut dyn FnMut(&[T]) -> bool) -> Vec<T> {
    let mut c = items;
    let mut i = 0;
    while i < c.len() {
        let mut without = c.clone();
        without.remove(i);
        if fails(&without) {
            c = without;
            i = 0;
        } else {
            i += 1;
        }
    }
    c
}

/// Shrinks the run of `origin`. `shrink_steps`: also remove scripted steps.
pub fn shrink(origin: Origin, shrink_steps: bool) -> Result<Shrunk, ShrinkError> {
    shrink_with_budget(origin, shrink_steps, MAX_RUNS)
}

/// [`shrink`] with a re-execution budget.
pub fn shrink_with_budget(
    origin: Origin,
    shrink_steps: bool,
    max_runs: u64,
) -> Result<Shrunk, ShrinkError> {
    let (mut sh, fired) = Shrinker::start(origin)?;
    sh.max_runs = max_runs;
    let all_steps = sh.steps();
    let windows_before = fired.len();
    if !sh.fails(&fired, &all_steps) {
        return Err(ShrinkError::NotReproducible {
            input: sh.origin.source.clone(),
            seed: sh.origin.seed,
            target: sh.target.to_string(),
        });
    }
    // (3) ddmin over the windows.
    let steps = all_steps.clone();
    let mut windows = ddmin(fired, &mut |w| sh.fails(w, &steps));
    // (4) halve durations.
    for i in 0..windows.len() {
        while let Some(w) = windows.get(i) {
            let half = int(w, "for_ms") / 2;
            if half < MIN_WINDOW_MS {
                break;
            }
            let mut trial = windows.clone();
            if let Some(t) = trial.get_mut(i) {
                t.insert("for_ms".into(), toml::Value::Integer(half as i64));
            }
            if sh.fails(&trial, &steps) {
                windows = trial;
            } else {
                break;
            }
        }
    }
    // (5) ddmin over the steps; every `create` stays.
    let mut steps = all_steps.clone();
    if shrink_steps {
        let creates: Vec<usize> = (0..steps.len())
            .filter(|&i| steps.get(i).is_some_and(is_create))
            .collect();
        let others: Vec<usize> = (0..steps.len()).filter(|i| !creates.contains(i)).collect();
        let pick = |keep: &[usize]| -> Vec<toml::Table> {
            all_steps
                .iter()
                .enumerate()
                .filter(|(i, _)| creates.contains(i) || keep.contains(i))
                .map(|(_, s)| s.clone())
                .collect()
        };
        let w = windows.clone();
        let kept = ddmin(others, &mut |keep| sh.fails(&w, &pick(keep)));
        steps = pick(&kept);
    }
    // (6) 1-minimal windows for the final script.
    let s2 = steps.clone();
    let windows = one_minimal(windows, &mut |w| sh.fails(w, &s2));
    let budget_exhausted = sh.runs >= sh.max_runs;
    // (7) the written text, run once more.
    let body = sh.candidate(&windows, &steps);
    let header = header(
        &sh,
        windows_before,
        windows.len(),
        all_steps.len(),
        steps.len(),
    );
    let provisional = format!("{header}{body}");
    let text = with_regression(&provisional, &sh, sh.runs + 1);
    let proof = sh.execute(&text);
    if !proof.as_ref().is_some_and(|r| sh.target.matches(r)) {
        return Err(ShrinkError::NotReproducible {
            input: sh.origin.source.clone(),
            seed: sh.origin.seed,
            target: sh.target.to_string(),
        });
    }
    Ok(Shrunk {
        target: sh.target.clone(),
        name: sh.name.clone(),
        text,
        runs: sh.runs,
        windows_before,
        windows_after: windows.len(),
        steps_before: all_steps.len(),
        steps_after: steps.len(),
        windows,
        steps,
        budget_exhausted,
    })
}

fn header(sh: &Shrinker, wb: usize, wa: usize, sb: usize, sa: usize) -> String {
    let o = &sh.origin;
    let file = format!("{REGRESSIONS_DIR}/{}.toml", sh.name);
    format!(
        "# Reproducer: {} under enforcement {}, with a fixed fault schedule and no swarm.\n\
         # Shrunk by `mimi-sim shrink` from {} seed {} ({} fault windows -> {}, {} steps -> {}).\n\
         # Run it with its seed (keys and latency derive from it):\n\
         #   mimi-sim run {file} --seed {}\n",
        sh.target,
        o.level.name(),
        o.source,
        o.seed,
        wb,
        wa,
        sb,
        sa,
        o.seed
    )
}

/// Appends the `[regression]` table; `runs` is the re-execution count including the
/// final proof run.
fn with_regression(text: &str, sh: &Shrinker, runs: u64) -> String {
    let mut r = toml::Table::new();
    r.insert("seed".into(), toml::Value::Integer(sh.origin.seed as i64));
    r.insert(
        "shrunk_from".into(),
        toml::Value::String(format!(
            "{} seed {} enforcement {}",
            sh.origin.source,
            sh.origin.seed,
            sh.origin.level.name()
        )),
    );
    r.insert("re_executions".into(), toml::Value::Integer(runs as i64));
    r.insert("oracle".into(), toml::Value::String(sh.target.id().into()));
    let mut top = toml::Table::new();
    top.insert("regression".into(), toml::Value::Table(r));
    format!("{text}\n{}", in_order(top))
}

/// Runs a regression file with its `[regression] seed`; the report, or why it could not.
pub fn replay_regression(path: &Path) -> Result<RunReport, String> {
    let (s, text) = Scenario::load(path).map_err(|e| e.to_string())?;
    let seed = s
        .regression
        .as_ref()
        .map(|r| r.seed)
        .ok_or_else(|| format!("{}: no [regression] seed", path.display()))?;
    let label = path.display().to_string();
    let resolved = s.validate(&label, &text).map_err(|e| e.to_string())?;
    let mut r = run(&s, &resolved, &text, seed, false);
    r.scenario_file = Some(label);
    Ok(r)
}

/// `mimi-sim shrink`: exit 0 on a written reproducer, 1 if the input did not fail (or
/// its failure did not survive fixing the schedule), 2 on bad input.
pub fn command(input: &Path, out: Option<&Path>, line: Option<usize>, steps: bool) -> ExitCode {
    let wall = std::time::Instant::now();
    let origin = match read_input(input, line) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mimi-sim: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    eprintln!(
        "shrink: {} seed {} under {}: re-running",
        origin.source,
        origin.seed,
        origin.level.name()
    );
    let s = match shrink(origin, steps) {
        Ok(s) => s,
        Err(e @ ShrinkError::BadInput(_)) => {
            eprintln!("mimi-sim: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
        Err(e) => {
            println!("shrink: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let path: PathBuf = out.map_or_else(
        || Path::new(REGRESSIONS_DIR).join(format!("{}.toml", s.name)),
        Path::to_path_buf,
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("mimi-sim: cannot create {}: {e}", dir.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let default = format!("{REGRESSIONS_DIR}/{}.toml", s.name);
    let text = s.text.replace(&default, &path.display().to_string());
    if let Err(e) = std::fs::write(&path, &text) {
        eprintln!("mimi-sim: cannot write {}: {e}", path.display());
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    println!("shrink: reproduces {}", s.target);
    println!("re-executions: {}", s.runs);
    println!("fault windows: {} -> {}", s.windows_before, s.windows_after);
    println!("steps: {} -> {}", s.steps_before, s.steps_after);
    println!("wall: {} ms", wall.elapsed().as_millis());
    if s.budget_exhausted {
        println!("note: the budget of {MAX_RUNS} re-executions ran out; the result fails but may not be minimal");
    }
    println!("wrote {}", path.display());
    ExitCode::from(EXIT_OK)
}
