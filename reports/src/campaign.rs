//! A campaign folder's records (runs.jsonl, campaign.json) grouped into cells, with
//! the rates and quantiles the pages and the Markdown summary show.
//!
//! # Choices
//! * A cell is (scenario file, the file's other matrix axes, enforcement) from the
//!   record's `cell`, else from its `run_key`, else from `variant.enforcement`. A cell
//!   with axis values shows as `file (key=value)`.
//! * "Failing" runs are those whose outcome is not "ok" or whose `as_expected` is false;
//!   the page lists at most [`MAX_FAILING_LISTED`] of them.
//! * Violation ids are read from `id` (or `oracle`, as older records named it).
//! * A record that is not a run record (a missing field, a field of the wrong type) is
//!   an error naming its line: the report does not guess.

use std::collections::BTreeMap;

use crate::records::run::{ExpectedOutcome, RunOutcome, RunRecord};
use crate::stats::{wilson, Rate, Z95};

/// Most failing runs listed on the campaign page and in the summary.
pub const MAX_FAILING_LISTED: usize = 500;
/// Longest runs.jsonl accepted (lines).
pub const MAX_RUNS: usize = 5_000_000;
/// The enforcement levels in column order.
pub const LEVELS: [&str; 4] = ["off", "mls", "full", "default"];

/// One run record, with the fields the report reads.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_key: String,
    pub scenario_file: String,
    pub scenario: String,
    pub enforcement: String,
    /// The values of the file's other matrix axes, `key=value,...` ("" without).
    pub variant: String,
    pub seed: u64,
    pub outcome: RunOutcome,
    pub expected: ExpectedOutcome,
    pub as_expected: bool,
    pub violations: Vec<String>,
    pub liveness: Option<String>,
    /// The scripted steps that did not happen and are not declared (`steps_not_done`),
    /// as "script[3] send refused", joined by "; " (`None` if there are none).
    pub incomplete: Option<String>,
    /// `None` for a run that timed out or crashed.
    pub trace_hash: Option<String>,
    pub sim_time_ms: u64,
    pub converged_at_ms: Option<u64>,
    /// Where the record is: the campaign's runs.jsonl and its 1-based line (for `shrink`).
    pub runs_file: String,
    pub line: usize,
}

/// The statistics of one cell.
#[derive(Debug, Clone)]
pub struct Cell {
    pub scenario_file: String,
    pub enforcement: String,
    pub n: u64,
    pub violation: Rate,
    pub liveness: Rate,
    pub timeouts: u64,
    pub unexpected: u64,
    pub convergence_ms: Vec<u64>,
    pub sim_ms: Vec<u64>,
}

/// Why the campaign records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("runs.jsonl line {line} is not a run record: {reason}")]
    BadRecord { line: usize, reason: String },
    #[error("runs.jsonl has more than {MAX_RUNS} lines")]
    TooMany,
}

/// Parses runs.jsonl (blank lines ignored).
pub fn parse_runs(text: &str) -> Result<Vec<Run>, CampaignError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if i >= MAX_RUNS {
            return Err(CampaignError::TooMany);
        }
        if l.trim().is_empty() {
            continue;
        }
        let rec: RunRecord = serde_json::from_str(l).map_err(|e| CampaignError::BadRecord {
            line: i + 1,
            reason: e.to_string(),
        })?;
        let mut r = Run::of(rec);
        r.line = i + 1;
        out.push(r);
    }
    Ok(out)
}

impl Run {
    /// Why the run failed, for the failing-runs lists: its violations, else its liveness
    /// failure, else why it is incomplete, else "—".
    pub fn why(&self) -> String {
        if self.violations.is_empty() {
            self.liveness
                .clone()
                .or_else(|| self.incomplete.clone())
                .unwrap_or_else(|| "—".into())
        } else {
            self.violations.join(", ")
        }
    }

    /// The report's view of a record: its cell from `cell`, else from `run_key`, else
    /// from the record's own file and variant.
    pub fn of(v: RunRecord) -> Run {
        let key = v.run_key.clone().unwrap_or_default();
        let mut parts = key.rsplitn(3, '|');
        let (_, key_level, key_file) = (parts.next(), parts.next(), parts.next());
        let cell = v.cell.as_ref();
        let scenario_file = cell
            .map(|c| c.scenario_file.clone())
            .filter(|x| !x.is_empty())
            .or_else(|| key_file.map(String::from))
            .unwrap_or_else(|| v.scenario_file.clone().unwrap_or_default());
        let (key_level, key_variant) = match key_level.map(|k| k.split_once(',')) {
            Some(Some((l, v))) => (Some(l), v.to_string()),
            _ => (key_level, String::new()),
        };
        let variant = cell
            .map(|c| c.variant.clone())
            .filter(|x| !x.is_empty())
            .unwrap_or(key_variant);
        let enforcement = cell
            .map(|c| c.enforcement.clone())
            .filter(|x| !x.is_empty())
            .or_else(|| key_level.map(String::from))
            .or_else(|| Some(v.variant.enforcement.clone()).filter(|x| !x.is_empty()))
            .unwrap_or_else(|| "default".into());
        let notes: Vec<String> = v
            .step_notes()
            .iter()
            .filter(|n| !n.declared)
            .map(|n| {
                format!(
                    "script[{}] {} {}{}",
                    n.step,
                    n.op,
                    n.status,
                    n.rule
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        Run {
            run_key: if key.is_empty() {
                format!("{scenario_file}|{enforcement}|{}", v.seed)
            } else {
                key
            },
            scenario_file,
            scenario: v.scenario,
            enforcement,
            variant,
            seed: v.seed,
            outcome: v.outcome,
            expected: v.expected,
            as_expected: v.as_expected,
            violations: v.violations.into_iter().map(|x| x.id).collect(),
            liveness: v.liveness,
            incomplete: (!notes.is_empty()).then(|| notes.join("; ")),
            trace_hash: v.trace_hash,
            sim_time_ms: v.sim_time_ms,
            converged_at_ms: v.converged_at_ms,
            runs_file: String::new(),
            line: 0,
        }
    }

    pub fn failing(&self) -> bool {
        self.outcome != RunOutcome::Ok || !self.as_expected
    }

    /// The one-line command that reproduces this run with its trace.
    pub fn replay_command(&self) -> String {
        format!(
            "mimi-sim run {} --seed {}{} --trace run.jsonl",
            self.scenario_file,
            self.seed,
            self.level_flag()
        )
    }

    /// The one-line command that shrinks this run.
    pub fn shrink_command(&self) -> String {
        let file = if self.runs_file.is_empty() {
            "runs.jsonl"
        } else {
            &self.runs_file
        };
        format!("mimi-sim shrink {file} --line {}", self.line)
    }

    fn level_flag(&self) -> String {
        let mut f = if matches!(self.enforcement.as_str(), "off" | "mls" | "full") {
            format!(" --enforcement {}", self.enforcement)
        } else {
            String::new()
        };
        for kv in self.variant.split(',').filter(|x| !x.is_empty()) {
            f.push_str(&format!(" --variant {kv}"));
        }
        f
    }

    /// The scenario file, with the cell's axis values if any: `file (key=value)`.
    pub fn file_and_variant(&self) -> String {
        if self.variant.is_empty() {
            self.scenario_file.clone()
        } else {
            format!("{} ({})", self.scenario_file, self.variant)
        }
    }
}

/// Groups runs into cells, ordered by (scenario file, level in [`LEVELS`] order).
pub fn cells(runs: &[Run]) -> Vec<Cell> {
    let mut by: BTreeMap<(String, usize, String), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        let rank = LEVELS
            .iter()
            .position(|l| *l == r.enforcement)
            .unwrap_or(LEVELS.len());
        by.entry((r.file_and_variant(), rank, r.enforcement.clone()))
            .or_default()
            .push(r);
    }
    by.into_iter()
        .map(|((file, _, level), rs)| {
            let n = rs.len() as u64;
            let count = |f: &dyn Fn(&Run) -> bool| rs.iter().filter(|r| f(r)).count() as u64;
            Cell {
                scenario_file: file,
                enforcement: level,
                n,
                violation: wilson(count(&|r| r.outcome == RunOutcome::Violation), n, Z95),
                liveness: wilson(count(&|r| r.outcome == RunOutcome::Liveness), n, Z95),
                timeouts: count(&|r| r.outcome == RunOutcome::Timeout),
                unexpected: count(&|r| !r.as_expected),
                convergence_ms: rs.iter().filter_map(|r| r.converged_at_ms).collect(),
                sim_ms: rs.iter().map(|r| r.sim_time_ms).collect(),
            }
        })
        .collect()
}
