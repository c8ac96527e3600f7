//! One run record: a line of runs.jsonl. `mimi-sim run --json` and `batch` print it
//! (`RunReport` serialized); a campaign adds `run_key`, `cell`, `build` and `timed_out`;
//! a run that timed out or crashed in its worker gets a stand-in record with the same
//! fields and no trace hash.
//!
//! Only the fields the reports read are here; the record has more (`state_table`, `ops`,
//! fault counts …).

use serde::{Deserialize, Serialize};

/// How a run ended: the simulator's outcome, or what the campaign's worker pool saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    Ok,
    Violation,
    Liveness,
    Incomplete,
    /// The worker did not finish the run within the campaign's per-run timeout.
    Timeout,
    /// The worker process died.
    Crash,
}

impl RunOutcome {
    /// As written in records.
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Violation => "violation",
            RunOutcome::Liveness => "liveness",
            RunOutcome::Incomplete => "incomplete",
            RunOutcome::Timeout => "timeout",
            RunOutcome::Crash => "crash",
        }
    }
}

/// The outcome a scenario's `[expect]` allows (the scenario files and the run records
/// share this one definition; `ok` when a file names none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpectedOutcome {
    #[default]
    Ok,
    Violation,
    Liveness,
}

impl ExpectedOutcome {
    /// As written in files and records (the name of the matching [`RunOutcome`]).
    pub fn name(self) -> &'static str {
        match self {
            ExpectedOutcome::Ok => "ok",
            ExpectedOutcome::Violation => "violation",
            ExpectedOutcome::Liveness => "liveness",
        }
    }
}

/// The campaign cell a record belongs to (`cell`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRef {
    pub scenario_file: String,
    /// The level's name, or "default".
    pub enforcement: String,
    /// The file's other matrix axes, `key=value,...`; absent (or "") without axes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// The part of the run's variant the reports read (the rest is the scenario's business).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRef {
    pub enforcement: String,
}

/// One violation of the run: its oracle id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRef {
    /// The oracle's id (`oracle` in older records).
    #[serde(alias = "oracle")]
    pub id: String,
}

/// A scripted step that did not simply happen (`steps_not_done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepNote {
    /// Index in the file's `[[script]]`, from 0.
    pub step: u64,
    pub op: String,
    /// How it ended: abandoned, refused, failed, unfinished, overtaken.
    pub status: String,
    /// The hub's rule, for a refused step.
    #[serde(default)]
    pub rule: Option<String>,
    /// The step's declaration allows this end.
    pub declared: bool,
}

/// A run record as the reports read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `"<scenario_file>|<cell label>|<seed>"`: set by campaigns and the testbed.
    #[serde(default)]
    pub run_key: Option<String>,
    /// Set by campaigns and the testbed.
    #[serde(default)]
    pub cell: Option<CellRef>,
    /// The file the scenario was loaded from (null for a built-in scenario).
    pub scenario_file: Option<String>,
    pub scenario: String,
    pub variant: VariantRef,
    pub seed: u64,
    pub outcome: RunOutcome,
    pub expected: ExpectedOutcome,
    pub as_expected: bool,
    pub violations: Vec<ViolationRef>,
    pub liveness: Option<String>,
    /// Absent in the stand-in record of a run that timed out or crashed.
    #[serde(default)]
    pub steps_not_done: Vec<StepNote>,
    /// Null for a run that timed out or crashed (no trace).
    pub trace_hash: Option<String>,
    pub sim_time_ms: u64,
    pub converged_at_ms: Option<u64>,
}
