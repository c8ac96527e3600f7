//! One run record: a line of runs.jsonl. `mimi-sim run --json` and `batch` print it
//! (`RunReport` serialized); a campaign adds `run_key`, `cell`, `build` and `timed_out`;
//! a run that timed out or crashed in its worker gets a stand-in record with the same
//! fields and no trace hash.
//!
//! The fields the reports and the campaign read are typed here; the record has more
//! (`state_table`, `ops`, fault counts …), kept in `rest` (`#[serde(flatten)]`) so that a
//! record read and written again keeps every field: the campaign reads its workers'
//! records as [`RunRecord`]s, stamps them and writes them to runs.jsonl. Written through
//! `serde_json::Value` (`serde_json::to_value`, then `to_string`), a record's keys are
//! sorted, as the writers' are, so a record round-trips byte for byte; an `Option` field
//! the writer leaves out is left out again (`skip_serializing_if`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::campaign::Build;

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
    /// The variant's other fields (adversaries, bugs, disabled rules …), kept as written.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One violation of the run: its oracle id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRef {
    /// The oracle's id (`oracle` in older records; written back as `id`).
    #[serde(alias = "oracle")]
    pub id: String,
    /// The violation's other fields (message, witness …), kept as written.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The step's declaration allows this end.
    pub declared: bool,
    /// The note's other fields (at_ms, client, reason, adversary …), kept as written.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A run record as the reports and the campaign read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `"<scenario_file>|<cell label>|<seed>"`: set by campaigns and the testbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// Set by campaigns and the testbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellRef>,
    /// What built the binary that made the run: set by campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The campaign's worker was killed at the per-run timeout: set by campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
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
    /// Absent (`None`) in the stand-in record of a run that timed out or crashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_not_done: Option<Vec<StepNote>>,
    /// Null for a run that timed out or crashed (no trace).
    pub trace_hash: Option<String>,
    pub sim_time_ms: u64,
    pub converged_at_ms: Option<u64>,
    /// Fault kinds the scenario enables that fired in no window of the run (empty in
    /// records older than the field).
    #[serde(default)]
    pub faults_never_fired: Vec<String>,
    /// Requests the hub refused, by enforcement rule id (or answer code): how many
    /// (empty in records older than the field).
    #[serde(default)]
    pub hub_rejections: BTreeMap<String, u64>,
    /// Every other field of the record (`state_table`, `ops`, `faults`, `wall_ms` …),
    /// kept as written so that the record round-trips.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl RunRecord {
    /// The scripted steps that did not simply happen (none in a stand-in record).
    pub fn step_notes(&self) -> &[StepNote] {
        self.steps_not_done.as_deref().unwrap_or_default()
    }
}
