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
/// Milliseconds as Perfetto's microseconds; a trace file's times are untrusted input, so
/// an absurd one saturates instead of overflowing (found by the `trace` fuzz target).
fn us(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}

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
        let ts = us(a.t_send);
        match a.kind {
            ArrowKind::Request | ArrowKind::Response => ev.push(json!({
                "ph": "X", "name": a.label, "cat": if a.kind == ArrowKind::Request {"request"} else {"response"},
                "pid": pid, "tid": tid, "ts": ts,
                "dur": us(a.t_recv.saturating_sub(a.t_send)).max(1),
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
            "pid": pid, "tid": tid, "ts": us(k.t), "args": {"line": k.line}}),
        );
    }
    for (i, f) in m.faults.iter().enumerate() {
        let end = f.end.unwrap_or(m.end_ms);
        ev.push(json!({"ph": "X", "name": f.text, "cat": "fault", "pid": faults_pid, "tid": i as u64 + 1,
            "ts": us(f.start), "dur": us(end.saturating_sub(f.start)).max(1),
            "args": {"nodes": f.nodes, "line": f.line}}));
    }
    for v in &m.violations {
        ev.push(json!({"ph": "i", "s": "g", "name": format!("violation {}", v.id), "cat": "violation",
            "pid": faults_pid, "tid": 0, "ts": us(v.at_ms),
            "args": {"message": v.message, "nodes": v.nodes, "epochs": v.epochs, "witness_lines": v.lines}}));
    }
    json!({"traceEvents": ev, "displayTimeUnit": "ms",
        "otherData": {"scenario": m.scenario, "seed": m.seed, "trace_hash": m.trace_hash}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `trace` fuzz target: a trace whose times are near `u64::MAX` ms
    /// overflowed the conversion to µs (a panic with overflow checks, a wrapped
    /// timestamp without). Now every time saturates.
    #[test]
    fn absurd_times_saturate_instead_of_overflowing() {
        let max = u64::MAX;
        let text = format!(
            "{{\"kind\":\"header\",\"format\":1,\"scenario\":\"s\",\"scenario_toml\":\"\",\"seed\":1,\"variant\":{{}}}}\n\
             {{\"t\":{max},\"node\":\"a.example\",\"kind\":\"request-sent\",\"endpoint\":\"update\",\"to\":\"b.example\",\"id\":1}}\n\
             {{\"t\":{max},\"node\":\"b.example\",\"kind\":\"request-received\",\"endpoint\":\"update\",\"from\":\"a.example\",\"id\":1}}\n\
             {{\"t\":{max},\"node\":\"a.example\",\"kind\":\"fault\",\"fault\":\"partition\",\"nodes\":[\"a.example\"]}}\n\
             {{\"t\":{max},\"node\":\"a.example\",\"kind\":\"violation\",\"id\":\"no-split\",\"message\":\"m\"}}\n"
        );
        let m = RunModel::parse(&text).expect("a trace the reader takes");
        let v = trace_events(&m);
        let events = v["traceEvents"].as_array().expect("events");
        assert!(!events.is_empty());
        for e in events {
            if let Some(ts) = e.get("ts").and_then(Value::as_u64) {
                assert!(ts == u64::MAX || ts % 1000 == 0, "{e}");
            }
        }
    }
}
