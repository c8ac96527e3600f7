//! The records the simulator writes are the records the reports read: a run record
//! (`run --json`, runs.jsonl) and every line of its trace deserialize into
//! `mimi_reports::records` types, the trace hash the reports compute is the recorder's,
//! and a trace renders into a run model with the run's faults and outcome.

use std::path::PathBuf;

use mimi_reports::records::run::{RunOutcome, RunRecord};
use mimi_reports::records::trace::{hash_lines, Event, Header, What, TRACE_FORMAT};
use mimi_reports::trace::RunModel;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One run with faults (a crash and an offline window) and one with a violation.
const RUNS: [(&str, u64, Option<&str>); 2] = [
    ("scenarios/crash-and-offline.toml", 1, None),
    ("scenarios/drafts-flows.toml", 5, Some("off")),
];

#[test]
fn run_records_and_trace_lines_read_as_the_reports_records() {
    for (file, seed, level) in RUNS {
        let path = root().join(file);
        let mut r = mimi_sim::cli::load_and_run(&path, seed, true, level, &[]).unwrap();
        let lines = r.trace.take().expect("trace kept");
        let written: serde_json::Value =
            serde_json::from_str(&mimi_sim::cli::record(&r)).expect("a run record is JSON");
        let record: RunRecord = serde_json::from_value(written.clone())
            .unwrap_or_else(|e| panic!("{file}: the run record is not a RunRecord: {e}"));
        // Read and written again (as `campaign` does), the record keeps every field.
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            written,
            "{file}: the record round-trips"
        );
        assert_eq!(record.seed, seed);
        assert_eq!(record.outcome.name(), r.outcome.name());
        assert_eq!(record.trace_hash.as_deref(), Some(r.trace_hash.as_str()));
        assert_eq!(
            record.violations.len(),
            r.violations.len(),
            "{file}: every violation read"
        );

        assert_eq!(
            hash_lines(lines.iter().map(String::as_str)),
            r.trace_hash,
            "{file}: one hash rule for writer and reader"
        );
        let header = Header::parse(&lines[0]).unwrap();
        assert_eq!((header.format, header.seed), (TRACE_FORMAT, seed));
        let events: Vec<Event> = lines[1..]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Event::parse(l).unwrap_or_else(|e| panic!("{file}: trace line {}: {e}", i + 2))
            })
            .collect();
        let starts = events
            .iter()
            .filter(|e| matches!(e.what, What::FaultStart { .. }))
            .count() as u64;
        assert_eq!(
            starts,
            r.faults.values().sum::<u64>(),
            "{file}: fault windows"
        );
        assert!(
            starts > 0 || level.is_some(),
            "{file}: the faulty run has windows"
        );
        assert!(
            matches!(events.last().map(|e| &e.what), Some(What::End { outcome, .. }) if *outcome == record.outcome),
            "{file}: the last line is the end with the run's outcome"
        );

        let m = RunModel::parse(&(lines.join("\n") + "\n")).unwrap();
        assert_eq!(m.trace_hash, r.trace_hash);
        assert_eq!(m.outcome, Some(record.outcome));
        assert_eq!(m.faults.len() as u64, starts);
        assert!(
            m.faults.iter().all(|f| f.end.is_some()),
            "{file}: every window closed"
        );
        assert_eq!(m.violations.len(), r.violations.len());
        if level.is_some() {
            assert_eq!(
                record.outcome,
                RunOutcome::Violation,
                "{file}: the planted violation"
            );
            assert!(!m.witness_lines().is_empty(), "{file}: the witness lines");
        }
    }
}
