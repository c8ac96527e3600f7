//! A campaign folder's records (runs.jsonl, campaign.json) grouped into cells, with
//! the rates and quantiles the pages and the Markdown summary show.
//!
//! # Choices
//! * A cell is (scenario file, the file's other matrix axes, enforcement) from the
//!   record's `cell`, else from its `run_key`, else from `variant.enforcement`. A cell
//!   with axis values shows as `file (key=value)`.
//! * "Failing" runs are those whose outcome is not "ok" or whose `as_expected` is false;
//!   the page lists at most [`MAX_FAILING_LISTED`] of them.
//! * Violation ids are read from `oracle` or, as `run --json` writes them today, `id`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::stats::{wilson, Rate, Z95};

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
    pub outcome: String,
    pub expected: String,
    pub as_expected: bool,
    pub violations: Vec<String>,
    pub liveness: Option<String>,
    /// The scripted steps that did not happen and are not declared (`steps_not_done`),
    /// as "script[3] send refused", joined by "; " (`None` if there are none).
    pub incomplete: Option<String>,
    pub trace_hash: String,
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
    #[error("runs.jsonl line {line} is not a JSON object: {reason}")]
    BadRecord { line: usize, reason: String },
    #[error("runs.jsonl has more than {MAX_RUNS} lines")]
    TooMany,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
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
        let v: Value = serde_json::from_str(l).map_err(|e| CampaignError::BadRecord {
            line: i + 1,
            reason: e.to_string(),
        })?;
        if !v.is_object() {
            return Err(CampaignError::BadRecord {
                line: i + 1,
                reason: "not an object".into(),
            });
        }
        let mut r = run_of(&v);
        r.line = i + 1;
        out.push(r);
    }
    Ok(out)
}

fn run_of(v: &Value) -> Run {
    let key = s(v, "run_key");
    let mut parts = key.rsplitn(3, '|');
    let (_, key_level, key_file) = (parts.next(), parts.next(), parts.next());
    let cell = v.get("cell");
    let scenario_file = cell
        .map(|c| s(c, "scenario_file"))
        .filter(|x| !x.is_empty())
        .or_else(|| key_file.map(String::from))
        .unwrap_or_else(|| s(v, "scenario_file"));
    let (key_level, key_variant) = match key_level.map(|k| k.split_once(',')) {
        Some(Some((l, v))) => (Some(l), v.to_string()),
        _ => (key_level, String::new()),
    };
    let variant = cell
        .map(|c| s(c, "variant"))
        .filter(|x| !x.is_empty())
        .unwrap_or(key_variant);
    let enforcement = cell
        .map(|c| s(c, "enforcement"))
        .filter(|x| !x.is_empty())
        .or_else(|| key_level.map(String::from))
        .or_else(|| {
            v.get("variant")
                .map(|x| s(x, "enforcement"))
                .filter(|x| !x.is_empty())
        })
        .unwrap_or_else(|| "default".into());
    let seed = v.get("seed").and_then(Value::as_u64).unwrap_or(0);
    let violations = v
        .get("violations")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| {
                    let o = s(x, "oracle");
                    if o.is_empty() {
                        s(x, "id")
                    } else {
                        o
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Run {
        run_key: if key.is_empty() {
            format!("{scenario_file}|{enforcement}|{seed}")
        } else {
            key
        },
        scenario_file,
        scenario: s(v, "scenario"),
        enforcement,
        variant,
        seed,
        outcome: s(v, "outcome"),
        expected: s(v, "expected"),
        as_expected: v
            .get("as_expected")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        violations,
        liveness: v.get("liveness").and_then(Value::as_str).map(String::from),
        incomplete: {
            let notes: Vec<String> = v
                .get("steps_not_done")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|n| n.get("declared") != Some(&Value::Bool(true)))
                .map(|n| {
                    format!(
                        "script[{}] {} {}{}",
                        n.get("step").and_then(Value::as_u64).unwrap_or(0),
                        n.get("op").and_then(Value::as_str).unwrap_or("?"),
                        n.get("status").and_then(Value::as_str).unwrap_or("?"),
                        n.get("rule")
                            .and_then(Value::as_str)
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            (!notes.is_empty()).then(|| notes.join("; "))
        },
        trace_hash: s(v, "trace_hash"),
        sim_time_ms: v.get("sim_time_ms").and_then(Value::as_u64).unwrap_or(0),
        converged_at_ms: v.get("converged_at_ms").and_then(Value::as_u64),
        runs_file: String::new(),
        line: 0,
    }
}

impl Run {
    pub fn failing(&self) -> bool {
        self.outcome != "ok" || !self.as_expected
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
                violation: wilson(count(&|r| r.outcome == "violation"), n, Z95),
                liveness: wilson(count(&|r| r.outcome == "liveness"), n, Z95),
                timeouts: count(&|r| r.outcome == "timeout"),
                unexpected: count(&|r| !r.as_expected),
                convergence_ms: rs.iter().filter_map(|r| r.converged_at_ms).collect(),
                sim_ms: rs.iter().map(|r| r.sim_time_ms).collect(),
            }
        })
        .collect()
}
