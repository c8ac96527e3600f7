//! The records the reports read, as typed structs: what `mimi-sim` writes into a
//! campaign folder and a trace file, deserialized once and rendered from.
//!
//! * [`run`] — one line of runs.jsonl (`mimi-sim run --json`, `batch`, a campaign's
//!   stamped record, a testbed run).
//! * [`campaign`] — campaign.json, and the build identity every record carries; the
//!   simulator writes campaign.json from these same types.
//! * [`bench`] — bench.json (`mimi-sim bench --out`); the simulator builds and writes
//!   these same types.
//! * [`trace`] — the lines of a run's JSONL trace (one enum of event kinds with their
//!   fields), the trace hash and the format version; the simulator's recorder and the
//!   testbed write their lines from these same types.
//!
//! # Choices
//! * Fields the writer always writes are required: a record without one is malformed and
//!   the error names the file and the line. `Option` or `#[serde(default)]` marks a field
//!   the writer really leaves out (a bare `run --json` record has no `run_key`; a timed-out
//!   run has no trace hash; a testbed violation has no witness).
//! * Unknown fields are ignored: a record carries more than the pages show.

pub mod bench;
pub mod campaign;
pub mod run;
pub mod trace;

/// An `f64` the writer may have written as null (serde_json writes NaN and ±∞ so): NaN.
pub(crate) fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}
