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
//! * A journal line that is not a JSON object is skipped and counted
//!   ([`Merged::skipped`]), never a panic: a killed process can leave half a line.

use std::path::{Path, PathBuf};

use serde_json::Value;

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
    pub value: Value,
    source: usize,
    index: usize,
}

impl Raw {
    /// A line the runner writes itself (node "sim"): `t` is wall-clock ms.
    pub fn new(t: u64, value: Value) -> Raw {
        Raw {
            t,
            value,
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
        match serde_json::from_str::<Value>(l) {
            Ok(value) if value.is_object() => out.push(Raw {
                t: value.get("t").and_then(Value::as_u64).unwrap_or(0),
                value,
                source,
                index,
            }),
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// The order rank of a line kind within one millisecond.
fn rank(kind: &str) -> u8 {
    match kind {
        "fault-start" | "fault-end" | "phase" => 0,
        "hub-view" | "hub-log" | "hub" | "follower" => 1,
        "request" | "respond" | "send" | "outcome" | "from-client" | "to-client" | "tick"
        | "host-started" | "http-rejected" | "peer-refused" => 2,
        "deliver" => 3,
        _ => 4,
    }
}

/// The merged trace (without its header).
#[derive(Debug, Default)]
pub struct Merged {
    pub lines: Vec<Value>,
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
    all.sort_by_key(|r| {
        let kind = r.value.get("kind").and_then(Value::as_str).unwrap_or("");
        (r.t, rank(kind), r.source, r.index)
    });
    let lines = all
        .into_iter()
        .map(|mut r| {
            let t = r.t.saturating_sub(start_ms);
            if let Some(o) = r.value.as_object_mut() {
                o.insert("t".into(), Value::from(t));
            }
            r.value
        })
        .collect();
    Merged { lines, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_of_one_millisecond_go_server_side_first_and_broken_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("merge-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.jsonl");
        let b = dir.join("b.jsonl");
        std::fs::write(
            &a,
            "{\"t\":1005,\"node\":\"mimi://a.example/d/alice/1\",\"kind\":\"client\"}\n\
             {\"t\":1005,\"node\":\"a.example\",\"kind\":\"hub\"}\n{\"t\":10",
        )
        .unwrap();
        std::fs::write(
            &b,
            "{\"t\":1004,\"node\":\"b.example\",\"kind\":\"deliver\"}\n\
             {\"t\":1005,\"node\":\"b.example\",\"kind\":\"deliver\"}\n",
        )
        .unwrap();
        let ja = read_journal(&a, 1).unwrap();
        assert_eq!(ja.1, 1, "the half-written last line is skipped");
        let jb = read_journal(&b, 2).unwrap();
        let runner = vec![Raw::new(
            1005,
            json!({"t": 1005, "node": "sim", "kind": "fault-start"}),
        )];
        let m = merge(runner, vec![ja, jb], 1000);
        let order: Vec<(u64, &str)> = m
            .lines
            .iter()
            .map(|l| (l["t"].as_u64().unwrap(), l["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            order,
            [
                (4, "deliver"),
                (5, "fault-start"),
                (5, "hub"),
                (5, "deliver"),
                (5, "client")
            ]
        );
        assert_eq!(m.skipped, 1);
        assert!(read_journal(&dir.join("missing.jsonl"), 3)
            .unwrap()
            .0
            .is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
