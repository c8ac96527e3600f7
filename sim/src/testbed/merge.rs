//! Merging the nodes' journals (`<state>/events.jsonl`) and the runner's own lines into one
//! trace in the simulator's format, ordered by wall time.
//!
//! # Choices
//! * `t` becomes ms since the run started (the simulator's traces count from 0).
//! * Lines of one millisecond are ordered server side first (hub views, log entries, hub
//!   and follower events), then the host's network events, then deliveries to clients,
//!   then client and control lines; within that, by journal and by position in it. A
//!   node journals what its core did before what it hands to its clients, so this keeps
//!   cause before effect at the trace's millisecond resolution.
//! * A journal line that is not a trace event (JSON of a kind this build writes) is
//!   skipped and counted ([`Merged::skipped`]), never a panic: a killed process can leave
//!   half a line.

use std::path::{Path, PathBuf};

use mimi_reports::records::trace::{Event, What};

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read the journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line on its way into the merged trace.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Wall clock, ms since the UNIX epoch.
    pub t: u64,
    pub event: Event,
    source: usize,
    index: usize,
}

impl Raw {
    /// A line the runner writes itself (node "sim"): `t` is wall-clock ms.
    pub fn new(t: u64, event: Event) -> Raw {
        Raw {
            t,
            event,
            source: 0,
            index: 0,
        }
    }
}

/// Reads one journal (source number `source`, from 1; 0 is the runner's own lines).
/// Returns its lines and how many were skipped as unreadable.
pub fn read_journal(path: &Path, source: usize) -> Result<(Vec<Raw>, u64), MergeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(source) => {
            return Err(MergeError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (index, l) in text.lines().enumerate() {
        match Event::parse(l) {
            Ok(event) if event.what != What::Other => out.push(Raw {
                t: event.t,
                event,
                source,
                index,
            }),
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// The order rank of a line's kind within one millisecond.
fn rank(what: &What) -> u8 {
    match what {
        What::FaultStart { .. } | What::FaultEnd { .. } | What::Phase { .. } => 0,
        What::HubView(_) | What::HubLog { .. } | What::Hub { .. } | What::Follower { .. } => 1,
        What::Request { .. }
        | What::Respond { .. }
        | What::Send { .. }
        | What::Outcome { .. }
        | What::FromClient { .. }
        | What::ToClient { .. }
        | What::Tick
        | What::HostStarted
        | What::HttpRejected { .. }
        | What::PeerRefused { .. } => 2,
        What::Deliver { .. } => 3,
        _ => 4,
    }
}

/// The merged trace (without its header).
#[derive(Debug, Default)]
pub struct Merged {
    pub lines: Vec<Event>,
    pub skipped: u64,
}

/// Merges the runner's lines and the journals; `start_ms` is the run's wall-clock start.
pub fn merge(runner: Vec<Raw>, journals: Vec<(Vec<Raw>, u64)>, start_ms: u64) -> Merged {
    let mut all: Vec<Raw> = runner
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.source = 0;
            r.index = i;
            r
        })
        .collect();
    let mut skipped = 0;
    for (lines, s) in journals {
        all.extend(lines);
        skipped += s;
    }
    all.sort_by_key(|r| (r.t, rank(&r.event.what), r.source, r.index));
    let lines = all
        .into_iter()
        .map(|mut r| {
            r.event.t = r.t.saturating_sub(start_ms);
            r.event
        })
        .collect();
    Merged { lines, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimi_reports::records::trace::Phase;
    use serde_json::Value;

    #[test]
    fn lines_of_one_millisecond_go_server_side_first_and_broken_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("merge-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl");
        std::fs::write(
            &a,
            "{\"t\":1005,\"node\":\"mimi://a.example/d/alice/1\",\"kind\":\"client\",\"event\":\"X\"}\n\
             {\"t\":1005,\"node\":\"a.example\",\"kind\":\"hub\",\"event\":\"Y\"}\n\
             {\"t\":1005,\"node\":\"a.example\",\"kind\":\"no-such-kind\"}\n{\"t\":10",
        )
        .unwrap();
        std::fs::write(
            &b,
            "{\"t\":1004,\"node\":\"b.example\",\"kind\":\"deliver\",\"client\":\"c\",\"room\":\"r\",\"fanout\":\"\"}\n\
             {\"t\":1005,\"node\":\"b.example\",\"kind\":\"deliver\",\"client\":\"c\",\"room\":\"r\",\"fanout\":\"\"}\n",
        )
        .unwrap();
        let ja = read_journal(&a, 1).unwrap();
        assert_eq!(
            ja.1, 2,
            "the half-written last line and the unknown kind are skipped"
        );
        let jb = read_journal(&b, 2).unwrap();
        let runner = vec![Raw::new(
            1005,
            Event {
                t: 1005,
                node: "sim".into(),
                what: What::Phase {
                    phase: Phase::Heal { bound_ms: 9 },
                },
            },
        )];
        let m = merge(runner, vec![ja, jb], 1000);
        let order: Vec<(u64, &str)> = m.lines.iter().map(|l| (l.t, l.what.kind())).collect();
        assert_eq!(
            order,
            [
                (4, "deliver"),
                (5, "phase"),
                (5, "hub"),
                (5, "deliver"),
                (5, "client")
            ]
        );
        assert_eq!(m.skipped, 2);
        // A line goes out as it came in, but for its time.
        assert_eq!(
            m.lines[2].line(),
            r#"{"event":"Y","kind":"hub","node":"a.example","t":5}"#
        );
        let _: Value = serde_json::from_str(&m.lines[4].line()).unwrap();
        assert!(read_journal(&dir.join("missing.jsonl"), 3)
            .unwrap()
            .0
            .is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
