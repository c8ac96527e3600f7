//! campaign.json: the campaign's plan, judgement and build, as `mimi-sim campaign` and
//! `campaign merge` write it (`sim/src/campaign/mod.rs`, `judge`); and the build
//! identity stamped on every campaign record, which the simulator builds from this type.
//!
//! Only the fields the campaign page reads are here; the file has more (`outcomes`,
//! `cell_verdicts`, `wall_ms` …).

use serde::{Deserialize, Serialize};

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
    /// The cells (file × level × axes); each also carries its expectation, which the
    /// page does not show.
    pub cells: Vec<CellRef>,
    /// `"first..last"`.
    pub seeds: String,
    pub levels: Vec<String>,
    pub runs_planned: u64,
    /// `"i/n"` for a shard, null for a whole campaign.
    pub shard: Option<String>,
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

/// campaign.json as the campaign page reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub status: CampaignStatus,
    /// What passed and why, one line each.
    pub verdict: Vec<String>,
    pub plan: PlanRecord,
    pub determinism: DeterminismRecord,
    pub build: Build,
    pub failures: Vec<String>,
    pub faults_never_fired: Vec<NeverFired>,
}
