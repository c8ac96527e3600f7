//! What a scenario expects (`[expect]`, its level tables and `[[expect.case]]`) and the
//! one place a run and a matrix cell are judged against it ([`Expectation`];
//! `scenarios/README.md`, "How a cell is judged").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::EnforcementLevel;

/// What the scenario expects: for every enforcement level of the matrix unless a
/// level's own table (`[expect.off]`, `[expect.mls]`, `[expect.full]`) says otherwise.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// "ok", "violation" or "liveness".
    #[serde(default)]
    pub outcome: ExpectedOutcome,
    /// Oracle ids that must be among the violations (with outcome = "violation").
    #[serde(default)]
    pub violations: Vec<Spanned<String>>,
    /// Only with outcome "violation" or "liveness" (see [`Expectation`]): the expected
    /// failure must show in at least one of the first `within_seeds` seeds of the cell,
    /// and the other runs may be ok. Without it, every seed must show it.
    #[serde(default)]
    pub within_seeds: Option<u32>,
    #[serde(default)]
    pub off: Option<Box<Expect>>,
    #[serde(default)]
    pub mls: Option<Box<Expect>>,
    #[serde(default)]
    pub full: Option<Box<Expect>>,
    /// Expectations of particular matrix cells: the first case whose `if` matches the
    /// cell's variant wins over the level tables and the file's default.
    #[serde(default)]
    pub case: Vec<ExpectCase>,
}

/// `[[expect.case]]`: `if = { leave_order = "exiting", enforcement = "full" }` and the
/// expectation of the cells that match.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectCase {
    #[serde(rename = "if")]
    pub when: Spanned<BTreeMap<String, String>>,
    #[serde(default)]
    pub outcome: ExpectedOutcome,
    #[serde(default)]
    pub violations: Vec<Spanned<String>>,
    #[serde(default)]
    pub within_seeds: Option<u32>,
}

/// The expectation of one matrix cell, and the one place it is judged: per run by
/// [`Expectation::run_as_expected`] (`run`, `batch`, records' `as_expected`) and per cell
/// by [`Expectation::judge_cell`] (`campaign`, `findings`, `sim/tests/library.rs`).
///
/// * outcome "ok": every run is `ok` (no violation, converged, every scripted step done
///   or ended as its `may_abandon`/`may_refuse` allows).
/// * "violation"/"liveness" without `within_seeds`: every run shows it (a violation run
///   with every oracle of `violations` among its violations).
/// * with `within_seeds = N`: at least one of the first N seeds of the cell (the seeds
///   `first..first+N` of the seeds run, `first` being the lowest) shows it, and every
///   other run is either `ok` or has the expected outcome (a violation run need not name
///   every listed oracle). A cell whose window was not run completely and showed no hit
///   is not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    pub outcome: ExpectedOutcome,
    pub violations: Vec<String>,
    /// `None`: every seed; `Some(n)`: within the first n seeds.
    pub within_seeds: Option<u32>,
}

/// What a cell's runs showed against its [`Expectation`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CellJudgement {
    /// Runs judged.
    pub runs: usize,
    /// Seeds of the runs that were not as expected.
    pub unexpected: Vec<u64>,
    /// With `within_seeds`: the window's seeds (inclusive) and how many of them ran.
    pub window: Option<(u64, u64, usize)>,
    /// The first seed that showed the expected outcome (with every listed oracle).
    pub first_hit: Option<u64>,
}

impl CellJudgement {
    /// Whether the cell met its expectation.
    pub fn met(&self) -> bool {
        self.unexpected.is_empty() && (self.window.is_none() || self.first_hit.is_some())
    }

    /// Why the cell met its expectation or not, in one sentence.
    pub fn explain(&self, e: &Expectation) -> String {
        let seeds = |v: &[u64]| {
            let mut s: Vec<String> = v.iter().take(5).map(u64::to_string).collect();
            if v.len() > 5 {
                s.push(format!("… ({} in all)", v.len()));
            }
            s.join(", ")
        };
        let want = e.describe();
        if !self.unexpected.is_empty() {
            return format!(
                "expected {want}; {} of {} runs were not (seeds {})",
                self.unexpected.len(),
                self.runs,
                seeds(&self.unexpected)
            );
        }
        match (self.window, self.first_hit) {
            (Some((a, b, n)), None) => format!(
                "expected {want}; none of the {n} runs of seeds {a}..={b} showed it{}",
                if n < (b - a + 1) as usize {
                    " (the window was not run completely)"
                } else {
                    ""
                }
            ),
            (Some(_), Some(hit)) => format!(
                "{want}: seed {hit} showed it; the other runs were ok or showed the expected outcome"
            ),
            (None, _) => format!("{want}: all {} runs", self.runs),
        }
    }
}

impl Expectation {
    /// "ok", "violation (no-split) within 20 seeds", "liveness in every seed".
    pub fn describe(&self) -> String {
        let what = match self.outcome {
            ExpectedOutcome::Ok => return "ok in every seed".into(),
            ExpectedOutcome::Violation if self.violations.is_empty() => "violation".to_string(),
            ExpectedOutcome::Violation => format!("violation ({})", self.violations.join(", ")),
            ExpectedOutcome::Liveness => "liveness".to_string(),
        };
        match self.within_seeds {
            Some(n) => format!("{what} within {n} seeds"),
            None => format!("{what} in every seed"),
        }
    }

    /// Whether a run with `outcome` (`Outcome::name`) and these violation ids shows the
    /// expected outcome itself (with every listed oracle).
    pub fn hit(&self, outcome: &str, ids: &[&str]) -> bool {
        outcome == self.outcome.name() && self.violations.iter().all(|v| ids.contains(&v.as_str()))
    }

    /// Whether one run is as expected (see the type's doc): a hit, or, with
    /// `within_seeds`, `ok` or the expected outcome.
    pub fn run_as_expected(&self, outcome: &str, ids: &[&str]) -> bool {
        self.hit(outcome, ids)
            || (self.within_seeds.is_some() && (outcome == "ok" || outcome == self.outcome.name()))
    }

    /// Judges a cell from its runs: `(seed, outcome, violation ids)`; `first` is the
    /// lowest seed of the seeds asked for. `whole`: all the cell's runs are here (not a
    /// shard's part), so the `within_seeds` window is judged too.
    pub fn judge_cell(
        &self,
        first: u64,
        runs: &[(u64, &str, Vec<&str>)],
        whole: bool,
    ) -> CellJudgement {
        let mut j = CellJudgement {
            runs: runs.len(),
            ..CellJudgement::default()
        };
        let mut sorted: Vec<&(u64, &str, Vec<&str>)> = runs.iter().collect();
        sorted.sort_by_key(|r| r.0);
        for (seed, outcome, ids) in sorted.iter().map(|r| (r.0, r.1, &r.2)) {
            if !self.run_as_expected(outcome, ids) {
                j.unexpected.push(seed);
            }
        }
        if let (Some(n), true) = (self.within_seeds, whole) {
            let last = first + u64::from(n) - 1;
            let in_window: Vec<_> = sorted
                .iter()
                .filter(|r| r.0 >= first && r.0 <= last)
                .collect();
            j.window = Some((first, last, in_window.len()));
            j.first_hit = in_window.iter().find(|r| self.hit(r.1, &r.2)).map(|r| r.0);
        }
        j
    }
}

impl ExpectCase {
    /// The case's expectation as an `[expect]` table without level tables (so it is
    /// validated and resolved the way `[expect]` is).
    pub fn as_expect(&self) -> Expect {
        Expect {
            outcome: self.outcome,
            violations: self.violations.clone(),
            within_seeds: self.within_seeds,
            ..Expect::default()
        }
    }
}

impl Expect {
    /// The expectation of a cell whose variant has these `values` (see
    /// [`super::Scenario::variant_values`]): the first matching `[[expect.case]]`, else the
    /// level's table, else the file's default.
    pub fn for_variant(&self, values: &BTreeMap<&'static str, String>) -> Expectation {
        let hit = self.case.iter().find(|c| {
            c.when
                .get_ref()
                .iter()
                .all(|(k, v)| values.get(k.as_str()) == Some(v))
        });
        if let Some(c) = hit {
            return c.as_expect().at(EnforcementLevel::Full);
        }
        let level = match values.get("enforcement").map(String::as_str) {
            Some("off") => EnforcementLevel::Off,
            Some("mls") => EnforcementLevel::Mls,
            _ => EnforcementLevel::Full,
        };
        self.at(level)
    }

    /// The expectation under `level`.
    pub fn at(&self, level: EnforcementLevel) -> Expectation {
        let own = match level {
            EnforcementLevel::Off => self.off.as_deref(),
            EnforcementLevel::Mls => self.mls.as_deref(),
            EnforcementLevel::Full => self.full.as_deref(),
        };
        let e = own.unwrap_or(self);
        Expectation {
            outcome: e.outcome,
            violations: e.violations.iter().map(|v| v.get_ref().clone()).collect(),
            within_seeds: e.within_seeds,
        }
    }
}

/// The outcome an `[expect]` allows: the reports' definition, which the run records
/// carry too.
pub use mimi_reports::records::run::ExpectedOutcome;
