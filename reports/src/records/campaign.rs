//! campaign.json: the campaign's plan, judgement and build, as `mimi-sim campaign` and
//! `campaign merge` write it (`sim/src/campaign/mod.rs`, `judge`); and the build
//! identity stamped on every campaign record, which the simulator builds from this type.
//!
//! The simulator writes campaign.json from [`CampaignRecord`] (through `serde_json::Value`,
//! so its keys are sorted). Fields the page does not read have `#[serde(default)]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::run::CellRef;

/// What built the binary that made a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub git_commit: String,
    pub git_dirty: bool,
    pub cargo_lock_sha256: String,
    pub rustc: String,
    pub features: Vec<String>,
    pub profile: String,
    pub mimi_sim_version: String,
}

/// What the campaign was asked to do (`plan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The scenario files.
    pub scenarios: Vec<String>,
    /// The cells (file × level × axes), each with its expectation.
    pub cells: Vec<PlanCell>,
    /// `"first..last"`.
    pub seeds: String,
    pub levels: Vec<String>,
    pub runs_planned: u64,
    /// `"i/n"` for a shard, null for a whole campaign.
    pub shard: Option<String>,
}

/// One cell of the plan: the cell and the expectation it is judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCell {
    #[serde(flatten)]
    pub cell: CellRef,
    /// The scenario's `[expect]` (the simulator's `Expectation`, which the reports do not
    /// depend on; the page does not show it).
    #[serde(default)]
    pub expect: Value,
}

/// How one cell's expectation was judged (`cell_verdicts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellVerdict {
    pub scenario_file: String,
    /// The cell label (level, then the other axes).
    pub cell: String,
    /// The expectation, in words.
    pub expected: String,
    /// Runs judged.
    pub runs: u64,
    /// met, not met, not judged.
    pub verdict: String,
    pub why: String,
}

/// The determinism check (`determinism`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeterminismRecord {
    /// Runs chosen for a re-run in another process.
    pub sampled: u64,
    /// Re-runs made.
    pub rerun: u64,
    /// The re-runs whose trace hash differed.
    pub mismatches: Vec<Mismatch>,
}

/// A run whose re-run in another process gave another trace hash (or none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub run_key: String,
    /// The run's trace hash.
    pub hash: Option<String>,
    /// The re-run's trace hash, or "timeout" / "crash".
    pub child_hash: Option<String>,
}

/// A scenario file whose enabled fault kinds never fired in any run.
/// Fields in this order: the page shows the entry as JSON text, keys sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeverFired {
    pub kinds: Vec<String>,
    pub scenario_file: String,
}

/// How a campaign ended (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignStatus {
    Passed,
    Failed,
    Incomplete,
}

impl CampaignStatus {
    pub fn name(self) -> &'static str {
        match self {
            CampaignStatus::Passed => "passed",
            CampaignStatus::Failed => "failed",
            CampaignStatus::Incomplete => "incomplete",
        }
    }
}

/// campaign.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// `mimi-sim-campaign/1`.
    #[serde(default)]
    pub format: String,
    pub status: CampaignStatus,
    /// What passed and why, one line each.
    pub verdict: Vec<String>,
    pub plan: PlanRecord,
    pub determinism: DeterminismRecord,
    pub build: Build,
    pub failures: Vec<String>,
    pub faults_never_fired: Vec<NeverFired>,
    /// Runs made.
    #[serde(default)]
    pub runs: u64,
    /// Runs per outcome (ok, violation, liveness, incomplete and timeout always listed).
    #[serde(default)]
    pub outcomes: BTreeMap<String, u64>,
    /// The run keys of the runs not as expected.
    #[serde(default)]
    pub unexpected: Vec<String>,
    #[serde(default)]
    pub budget_exhausted: bool,
    #[serde(default)]
    pub cell_verdicts: Vec<CellVerdict>,
    #[serde(default)]
    pub wall_ms: u64,
    /// Worker processes.
    #[serde(default)]
    pub jobs: u64,
}
