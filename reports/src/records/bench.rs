//! bench.json: what `mimi-sim bench --out FILE` measured. The simulator builds these
//! types (`sim/src/bench.rs`) and serializes them; the campaign page reads them back.
//!
//! A time or ratio that was not finite (a division by a zero wall time) is written as
//! null by serde_json; it reads back as NaN and shows as "—".

use serde::{Deserialize, Serialize};

use super::nan_if_null;

/// Measured cost of a batch of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub scenario: String,
    pub clients: usize,
    pub seeds: u64,
    pub ok_runs: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_ms: f64,
    pub sim_ms: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub mls_ms: f64,
    pub mls_calls: u64,
    #[serde(deserialize_with = "nan_if_null")]
    pub seeds_per_sec_per_core: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub sim_speedup: f64,
    /// Share of wall time inside openmls (0..1).
    #[serde(deserialize_with = "nan_if_null")]
    pub mls_share: f64,
    /// (wall − mls) / mls.
    #[serde(deserialize_with = "nan_if_null")]
    pub overhead_over_mls: f64,
    /// The most expensive MLS operations: (name, calls, ms).
    pub top_mls_ops: Vec<(String, u64, f64)>,
}

/// The whole bench result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub standard: Measured,
    pub room_256: Option<Measured>,
    pub parallel: Option<Parallel>,
    pub fanout: Vec<Fanout>,
}

/// The same seeds in one worker process and in two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parallel {
    pub seeds: u64,
    /// Wall time with one worker process (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub t1_ms: f64,
    /// Wall time with two worker processes, half the seeds each (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub t2_ms: f64,
    /// t1 / (2 × t2).
    #[serde(deserialize_with = "nan_if_null")]
    pub efficiency: f64,
}

/// One commit's fan-out in a room of `clients` clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fanout {
    pub clients: usize,
    /// Wall time of the whole run that builds the room (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub setup_wall_ms: f64,
    /// Wall time from handing the self-update commit to its client until every client
    /// processed it (ms; measured inside the run).
    #[serde(deserialize_with = "nan_if_null")]
    pub commit_wall_ms: f64,
    /// Time inside openmls of the same (ms).
    #[serde(deserialize_with = "nan_if_null")]
    pub commit_mls_ms: f64,
    pub ok: bool,
}
