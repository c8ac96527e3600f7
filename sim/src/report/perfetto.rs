//! Chrome/Perfetto trace-event JSON for a run (open in ui.perfetto.dev or
//! chrome://tracing): `{"traceEvents": [...]}`.
//!
//! # Choices
//! * One pid per provider group: the provider's host and the clients it serves (pid 1..
//!   in lifeline order); a last pid "faults" holds fault windows. One tid per node.
//! * "X" (complete) events: a provider-to-provider request from send to receipt on the
//!   sender's thread, its response from respond to outcome on the responder's; fault
//!   windows on the faults pid. "i" (instant) events: client and hub events, ops,
//!   violations. Timestamps are µs of simulated time (trace ms × 1000).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::trace::{ArrowKind, Role, RunModel};

/// The trace-event document of a run.
pub fn trace_events(m: &RunModel) -> Value {
    let mut pid_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut tid_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut ev = Vec::new();
    let mut next_pid = 1;
    for l in m.lifelines.iter().filter(|l| l.role != Role::Client) {
        pid_of.insert(l.name.clone(), next_pid);
        ev.push(
            json!({"ph": "M", "name": "process_name", "pid": next_pid, "tid": 0,
            "args": {"name": format!("{} ({})", l.name, l.role.name())}}),
        );
        next_pid += 1;
    }
    let clients_pid = next_pid;
    let faults_pid = next_pid + 1;
    ev.push(
        json!({"ph": "M", "name": "process_name", "pid": clients_pid, "tid": 0,
        "args": {"name": "clients without a provider in the trace"}}),
    );
    ev.push(
        json!({"ph": "M", "name": "process_name", "pid": faults_pid, "tid": 0,
        "args": {"name": "faults and violations"}}),
    );
    for (i, l) in m.lifelines.iter().enumerate() {
        let pid = match l.role {
            Role::Client => l
                .provider
                .as_ref()
                .and_then(|p| pid_of.get(p).copied())
                .unwrap_or(clients_pid),
            _ => pid_of.get(&l.name).copied().unwrap_or(clients_pid),
        };
        let tid = i as u64 + 1;
        pid_of.insert(l.name.clone(), pid);
        tid_of.insert(l.name.clone(), tid);
        ev.push(
            json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
            "args": {"name": format!("{} {}", l.role.name(), l.name)}}),
        );
    }
    let place = |n: &str| -> (u64, u64) {
        (
            pid_of.get(n).copied().unwrap_or(clients_pid),
            tid_of.get(n).copied().unwrap_or(0),
        )
    };
    for a in &m.arrows {
        let (pid, tid) = place(&a.from);
        let ts = a.t_send * 1000;
        match a.kind {
            ArrowKind::Request | ArrowKind::Response => ev.push(json!({
                "ph": "X", "name": a.label, "cat": if a.kind == ArrowKind::Request {"request"} else {"response"},
                "pid": pid, "tid": tid, "ts": ts,
                "dur": (a.t_recv.saturating_sub(a.t_send) * 1000).max(1),
                "args": {"to": a.to, "lines": a.lines},
            })),
            _ => ev.push(json!({
                "ph": "i", "s": "t", "name": a.label,
                "cat": match a.kind { ArrowKind::Lost => "lost", ArrowKind::ClientToProvider => "client-to-provider", _ => "provider-to-client" },
                "pid": pid, "tid": tid, "ts": ts, "args": {"to": a.to, "lines": a.lines},
            })),
        }
    }
    for k in &m.marks {
        let (pid, tid) = place(&k.node);
        ev.push(
            json!({"ph": "i", "s": "t", "name": k.label, "cat": if k.bad {"failure"} else {"event"},
            "pid": pid, "tid": tid, "ts": k.t * 1000, "args": {"line": k.line}}),
        );
    }
    for (i, f) in m.faults.iter().enumerate() {
        let end = f.end.unwrap_or(m.end_ms);
        ev.push(json!({"ph": "X", "name": f.text, "cat": "fault", "pid": faults_pid, "tid": i as u64 + 1,
            "ts": f.start * 1000, "dur": (end.saturating_sub(f.start) * 1000).max(1),
            "args": {"nodes": f.nodes, "line": f.line}}));
    }
    for v in &m.violations {
        ev.push(json!({"ph": "i", "s": "g", "name": format!("violation {}", v.id), "cat": "violation",
            "pid": faults_pid, "tid": 0, "ts": v.at_ms * 1000,
            "args": {"message": v.message, "nodes": v.nodes, "epochs": v.epochs, "witness_lines": v.lines}}));
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ms",
        "otherData": {"scenario": m.scenario, "seed": m.seed, "trace_hash": m.trace_hash}})
}
