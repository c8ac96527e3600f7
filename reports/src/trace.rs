//! A run's JSONL trace (the lines of [`crate::records::trace`]) read back into what the
//! per-run page draws: lifelines, arrows, fault windows, client epochs and violations.
//!
//! # Choices
//! * Lifelines: every provider host that appears in the trace (its hub or follower role
//!   taken from the room's hub in the header's scenario, else from its `hub`/`follower`
//!   events), then every client, in order of first appearance.
//! * A provider-to-provider request is matched to its arrival by (sender, receiver,
//!   path) in send order; its response by the request id at the receiver and the token
//!   at the sender. A request that never arrived is drawn as a lost arrow.
//! * Client↔provider messages (`from-client`, `to-client`) are drawn at the time the
//!   provider saw them (the simulator hands them over in the same step).
//! * A line that is not a trace event of its kind (a missing field, a field of the wrong
//!   type) is an error naming the line; kinds the page does not draw are skipped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use crate::records::run::RunOutcome;
use crate::records::trace::{hash_lines, Event, Fault, Header, LineError, RequestLine, What};

/// Longest trace accepted (lines), so a hostile file cannot exhaust memory.
pub const MAX_TRACE_LINES: usize = 2_000_000;

/// One trace line: its number and text (the witness listing quotes it).
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based line number in the file.
    pub no: u64,
    pub text: String,
}

/// A lifeline's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Hub,
    Follower,
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Hub => "hub",
            Role::Follower => "follower",
            Role::Client => "client",
        }
    }
}

/// A lifeline: one host or one client.
#[derive(Debug, Clone)]
pub struct Lifeline {
    pub name: String,
    pub role: Role,
    /// For clients: the provider that serves them (from their messages), if seen.
    pub provider: Option<String>,
}

/// What an arrow carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    Request,
    Response,
    /// A request that never arrived.
    Lost,
    ClientToProvider,
    ProviderToClient,
}

/// A message drawn from one lifeline to another.
#[derive(Debug, Clone)]
pub struct Arrow {
    pub kind: ArrowKind,
    pub from: String,
    pub to: String,
    pub t_send: u64,
    pub t_recv: u64,
    pub label: String,
    /// Trace lines of the send and, if any, the receipt.
    pub lines: Vec<u64>,
}

/// A fault window as the trace recorded it.
#[derive(Debug, Clone)]
pub struct FaultWindow {
    pub kind: String,
    /// The lifelines it touches: one (crash, offline) or two (links).
    pub nodes: Vec<String>,
    pub start: u64,
    /// `None` if the trace ended before the window closed.
    pub end: Option<u64>,
    pub text: String,
    pub line: u64,
}

/// A point event on one lifeline (hub decisions, client room events, ops).
#[derive(Debug, Clone)]
pub struct Mark {
    pub node: String,
    pub t: u64,
    pub label: String,
    pub line: u64,
    /// A rejection, refusal or failure.
    pub bad: bool,
}

/// One violation with its witness.
#[derive(Debug, Clone)]
pub struct ViolationView {
    pub id: String,
    pub message: String,
    pub nodes: Vec<String>,
    pub epochs: Vec<u64>,
    pub lines: Vec<u64>,
    pub at_ms: u64,
}

/// Everything the per-run page needs.
#[derive(Debug, Clone, Default)]
pub struct RunModel {
    pub scenario: String,
    pub seed: Option<u64>,
    /// The header's variant, as recorded.
    pub variant: serde_json::Value,
    /// From the `end` line (`None` if the trace has none).
    pub outcome: Option<RunOutcome>,
    pub liveness: Option<String>,
    pub lifelines: Vec<Lifeline>,
    pub arrows: Vec<Arrow>,
    pub faults: Vec<FaultWindow>,
    pub marks: Vec<Mark>,
    /// Client → [(t, epoch or None when removed)].
    pub epochs: BTreeMap<String, Vec<(u64, Option<u64>)>>,
    pub violations: Vec<ViolationView>,
    pub end_ms: u64,
    pub lines: Vec<Line>,
    pub trace_hash: String,
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace line {line}: {source}")]
    Line { line: u64, source: LineError },
    #[error("trace line 1 is not a header (kind \"header\")")]
    NoHeader,
    #[error("trace has more than {MAX_TRACE_LINES} lines")]
    TooLong,
}

impl RunModel {
    /// Reads a whole trace file's text.
    pub fn parse(text: &str) -> Result<RunModel, TraceError> {
        let mut lines = Vec::new();
        let mut events = Vec::new();
        let mut header = None;
        for (i, l) in text.lines().enumerate() {
            if i >= MAX_TRACE_LINES {
                return Err(TraceError::TooLong);
            }
            let no = i as u64 + 1;
            let at = |source| TraceError::Line { line: no, source };
            if i == 0 {
                header = Some(Header::parse(l).map_err(|e| match e {
                    LineError::NotAHeader => TraceError::NoHeader,
                    e => at(e),
                })?);
            } else {
                events.push((no, Event::parse(l).map_err(at)?));
            }
            lines.push(Line {
                no,
                text: l.to_string(),
            });
        }
        let header = header.ok_or(TraceError::NoHeader)?;
        let mut m = RunModel {
            scenario: header.scenario,
            seed: Some(header.seed),
            variant: header.variant,
            trace_hash: hash_lines(text.lines()),
            ..RunModel::default()
        };
        let hub = hub_of(&header.scenario_toml);
        m.build(&events, hub.as_deref());
        m.lines = lines;
        Ok(m)
    }

    fn lane(&mut self, name: &str, role: Role) {
        if name.is_empty() || name == "sim" {
            return;
        }
        if let Some(l) = self.lifelines.iter_mut().find(|l| l.name == name) {
            if l.role == Role::Follower && role == Role::Hub {
                l.role = Role::Hub;
            }
            return;
        }
        self.lifelines.push(Lifeline {
            name: name.to_string(),
            role,
            provider: None,
        });
    }

    fn build(&mut self, events: &[(u64, Event)], hub: Option<&str>) {
        let mut b = Builder {
            m: self,
            hub,
            pairs: Pairing::default(),
        };
        for (no, e) in events {
            b.event(*no, e);
        }
        self.order_lanes();
    }

    /// Hosts before clients; fault windows named by lifeline.
    fn order_lanes(&mut self) {
        // Clients whose provider is a lifeline sort after the hosts.
        self.lifelines.sort_by_key(|l| match l.role {
            Role::Hub => 0,
            Role::Follower => 1,
            Role::Client => 2,
        });
        // Fault names may be short ("alice" for a client, "bob/2"): map them to lifelines.
        let names: Vec<String> = self.lifelines.iter().map(|l| l.name.clone()).collect();
        for f in &mut self.faults {
            f.nodes = f
                .nodes
                .iter()
                .map(|n| resolve(&names, n).unwrap_or_else(|| n.clone()))
                .collect();
        }
    }

    /// A message between `provider` and `client` (`from_client`: the client sent it).
    #[allow(clippy::too_many_arguments)]
    fn client_arrow(
        &mut self,
        provider: &str,
        provider_role: Role,
        client: &str,
        no: u64,
        t: u64,
        label: String,
        from_client: bool,
    ) {
        self.lane(provider, provider_role);
        self.lane(client, Role::Client);
        if let Some(lf) = self.lifelines.iter_mut().find(|x| x.name == client) {
            lf.provider.get_or_insert_with(|| provider.to_string());
        }
        let (from, to, kind) = if from_client {
            (client, provider, ArrowKind::ClientToProvider)
        } else {
            (provider, client, ArrowKind::ProviderToClient)
        };
        self.arrows.push(Arrow {
            kind,
            from: from.to_string(),
            to: to.to_string(),
            t_send: t,
            t_recv: t,
            label,
            lines: vec![no],
        });
    }

    /// A scripted step's line on its client's lifeline (`bad`: refused or abandoned).
    fn op_mark(&mut self, node: &str, t: u64, no: u64, label: String, bad: bool) {
        self.lane(node, Role::Client);
        self.marks.push(Mark {
            node: node.to_string(),
            t,
            label,
            line: no,
            bad,
        });
    }

    /// Every trace line a violation names as its witness.
    pub fn witness_lines(&self) -> BTreeSet<u64> {
        self.violations
            .iter()
            .flat_map(|v| v.lines.iter().copied())
            .collect()
    }
}

/// Which arrow or window a later line closes, while the trace is read in order.
#[derive(Default)]
struct Pairing {
    /// Sent provider-to-provider requests not yet seen arriving, per (sender, receiver,
    /// path), in send order.
    in_flight: BTreeMap<(String, String, String), VecDeque<usize>>,
    /// By (sender, token): the arrow the sender's outcome closes (the request's, then
    /// its response's once there is one).
    by_token: BTreeMap<(String, u64), usize>,
    /// By (receiver, request id): an arrived request not yet answered.
    by_id: BTreeMap<(String, u64), usize>,
    /// By fault key: a fault window not yet closed.
    open_faults: BTreeMap<String, usize>,
}

/// Where a line happened.
#[derive(Clone, Copy)]
struct At<'e> {
    no: u64,
    t: u64,
    node: &'e str,
    /// The node's role if it is a provider host: hub if it is the scenario's hub.
    host: Role,
}

/// Reads the events into a [`RunModel`], one method per family of event kinds.
struct Builder<'a> {
    m: &'a mut RunModel,
    hub: Option<&'a str>,
    pairs: Pairing,
}

impl Builder<'_> {
    fn event(&mut self, no: u64, e: &Event) {
        let node = e.node.as_str();
        self.m.end_ms = self.m.end_ms.max(e.t);
        let host = if Some(node) == self.hub {
            Role::Hub
        } else {
            Role::Follower
        };
        let at = At {
            no,
            t: e.t,
            node,
            host,
        };
        match &e.what {
            What::Send { request, token } => self.send(at, request, *token),
            What::Request { request, id } => self.request(at, request, *id),
            What::Respond {
                id,
                status,
                summary,
                ..
            } => self.respond(at, *id, *status, summary),
            What::Outcome { token, .. } => self.outcome(at, *token),
            What::FromClient { .. } | What::ToClient { .. } => self.client_message(at, &e.what),
            What::Hub { .. } | What::Follower { .. } | What::HttpRejected { .. } => {
                self.node_event(at, &e.what)
            }
            What::Client { event } => self.client_event(at, event),
            What::Op { .. } | What::OpAbandoned { .. } | What::OpRefused { .. } => {
                self.op(at, &e.what)
            }
            What::FaultStart { fault } => self.fault_start(at, fault),
            What::FaultEnd { fault } => self.fault_end(at, fault),
            What::Violation { .. } | What::End { .. } => self.verdict(at, &e.what),
            // Kinds the page does not draw.
            _ => {}
        }
    }

    // Provider-to-provider requests and responses.

    /// Drawn as lost until its arrival is seen.
    fn send(&mut self, at: At, request: &RequestLine, token: u64) {
        self.m.lane(at.node, at.host);
        let i = self.m.arrows.len();
        self.m.arrows.push(Arrow {
            kind: ArrowKind::Lost,
            from: at.node.to_string(),
            to: request.to.clone(),
            t_send: at.t,
            t_recv: at.t,
            label: label(&request.endpoint, &request.summary),
            lines: vec![at.no],
        });
        self.pairs
            .in_flight
            .entry((
                at.node.to_string(),
                request.to.clone(),
                request.path.clone(),
            ))
            .or_default()
            .push_back(i);
        self.pairs.by_token.insert((at.node.to_string(), token), i);
    }

    fn request(&mut self, at: At, request: &RequestLine, id: u64) {
        self.m.lane(at.node, at.host);
        let key = (
            request.from.clone(),
            at.node.to_string(),
            request.path.clone(),
        );
        let Some(i) = self
            .pairs
            .in_flight
            .get_mut(&key)
            .and_then(VecDeque::pop_front)
        else {
            return;
        };
        if let Some(a) = self.m.arrows.get_mut(i) {
            a.kind = ArrowKind::Request;
            a.t_recv = at.t;
            a.lines.push(at.no);
        }
        self.pairs.by_id.insert((at.node.to_string(), id), i);
    }

    fn respond(&mut self, at: At, id: u64, status: u16, summary: &str) {
        self.m.lane(at.node, at.host);
        let req = self.pairs.by_id.remove(&(at.node.to_string(), id));
        let Some(from_req) = req.and_then(|i| self.m.arrows.get(i)).cloned() else {
            return;
        };
        self.m.arrows.push(Arrow {
            kind: ArrowKind::Response,
            from: at.node.to_string(),
            to: from_req.from.clone(),
            t_send: at.t,
            t_recv: at.t,
            label: format!("{status} {}", short(summary, 40)),
            lines: vec![at.no],
        });
        // The sender's outcome closes it (matched by token in `outcome`).
        let j = self.m.arrows.len() - 1;
        let key = self
            .pairs
            .by_token
            .iter()
            .find(|(_, &ai)| Some(ai) == req)
            .map(|(k, _)| k.clone());
        if let Some(k) = key {
            self.pairs.by_token.insert(k, j);
        }
    }

    fn outcome(&mut self, at: At, token: u64) {
        self.m.lane(at.node, at.host);
        let Some(j) = self.pairs.by_token.remove(&(at.node.to_string(), token)) else {
            return;
        };
        if let Some(a) = self.m.arrows.get_mut(j) {
            if a.kind == ArrowKind::Response {
                a.t_recv = at.t;
                a.lines.push(at.no);
            }
        }
    }

    // What hosts, clients and the script did.

    /// `from-client` and `to-client`.
    fn client_message(&mut self, at: At, what: &What) {
        let (client, detail, from_client) = match what {
            What::FromClient {
                client,
                message,
                endpoint,
                summary,
                ..
            } => {
                let detail = match message.as_str() {
                    "relay" => label(
                        endpoint.as_deref().unwrap_or(""),
                        summary.as_deref().unwrap_or(""),
                    ),
                    _ => message.clone(),
                };
                (client, detail, true)
            }
            What::ToClient {
                client,
                message,
                status,
                summary,
                ..
            } => {
                let detail = match message.as_str() {
                    "reply" => format!("reply {}", status.unwrap_or(0)),
                    "deliver" => {
                        format!("deliver {}", short(summary.as_deref().unwrap_or(""), 40))
                    }
                    _ => message.clone(),
                };
                (client, detail, false)
            }
            _ => return,
        };
        self.m
            .client_arrow(at.node, at.host, client, at.no, at.t, detail, from_client);
    }

    /// A hub's or follower's decision, or an HTTP request the host refused.
    fn node_event(&mut self, at: At, what: &What) {
        let (role, label, bad) = match what {
            What::Hub { event } => {
                let (name, bad) = event_name(event);
                (Role::Hub, format!("hub: {name}"), bad)
            }
            What::Follower { event } => {
                let (name, bad) = event_name(event);
                (at.host, format!("follower: {name}"), bad)
            }
            What::HttpRejected { status, reason } => {
                (at.host, format!("http {status} {reason}"), true)
            }
            _ => return,
        };
        self.m.lane(at.node, role);
        self.m.marks.push(Mark {
            node: at.node.to_string(),
            t: at.t,
            label,
            line: at.no,
            bad,
        });
    }

    /// A client core's event; joins, epoch changes and removals also go on its timeline.
    fn client_event(&mut self, at: At, event: &Value) {
        self.m.lane(at.node, Role::Client);
        let (name, bad) = event_name(event);
        let epoch = event
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.get("epoch"))
            .and_then(Value::as_u64)
            .or_else(|| event.get("epoch").and_then(Value::as_u64));
        let step = match name.as_str() {
            "joined" | "epoch" | "Joined" | "Epoch" => epoch.map(Some),
            "removed" | "Removed" => Some(None),
            _ => None,
        };
        if let Some(step) = step {
            self.m
                .epochs
                .entry(at.node.to_string())
                .or_default()
                .push((at.t, step));
        }
        self.m.marks.push(Mark {
            node: at.node.to_string(),
            t: at.t,
            label: match epoch {
                Some(ep) => format!("{name} e{ep}"),
                None => name,
            },
            line: at.no,
            bad,
        });
    }

    /// A scripted step, or its refusal or abandonment.
    fn op(&mut self, at: At, what: &What) {
        let (label, bad) = match what {
            What::Op { op, .. } => (format!("op {op}"), false),
            What::OpAbandoned { op, .. } => (format!("op-abandoned {op}"), true),
            // The line names no op (the step's op is on the `op` line before it).
            What::OpRefused { .. } => ("op-refused ".to_string(), true),
            _ => return,
        };
        self.m.op_mark(at.node, at.t, at.no, label, bad);
    }

    // Faults and the run's verdict.

    fn fault_start(&mut self, at: At, fault: &Fault) {
        self.pairs
            .open_faults
            .insert(fault.key(), self.m.faults.len());
        self.m.faults.push(FaultWindow {
            kind: fault.kind.clone(),
            nodes: fault.nodes(),
            start: at.t,
            end: None,
            text: fault_text(fault),
            line: at.no,
        });
    }

    fn fault_end(&mut self, at: At, fault: &Fault) {
        if let Some(i) = self.pairs.open_faults.remove(&fault.key()) {
            if let Some(w) = self.m.faults.get_mut(i) {
                w.end = Some(at.t);
            }
        }
    }

    /// A violation with its witness, or the `end` line's outcome.
    fn verdict(&mut self, at: At, what: &What) {
        match what {
            What::Violation {
                id,
                message,
                witness,
                ..
            } => {
                let w = witness.clone().unwrap_or_default();
                self.m.violations.push(ViolationView {
                    id: id.clone(),
                    message: message.clone().unwrap_or_default(),
                    nodes: w.nodes,
                    epochs: w.epochs,
                    lines: w.trace_lines,
                    at_ms: witness.as_ref().map_or(at.t, |w| w.at_ms),
                });
            }
            What::End {
                outcome, liveness, ..
            } => {
                self.m.outcome = Some(*outcome);
                self.m.liveness = liveness.clone();
            }
            _ => {}
        }
    }
}

/// A fault's node name as in the scenario ("a.example", "bob", "bob/2") to a lifeline name.
fn resolve(names: &[String], n: &str) -> Option<String> {
    if names.iter().any(|x| x == n) {
        return Some(n.to_string());
    }
    let (user, dev) = n.split_once('/').map_or((n, "1"), |(a, b)| (a, b));
    names
        .iter()
        .find(|x| {
            let parts: Vec<&str> = x.split(['/', '@', ':']).filter(|p| !p.is_empty()).collect();
            parts.contains(&user) && parts.last().is_some_and(|l| *l == dev || parts.len() < 3)
        })
        .cloned()
        .or_else(|| names.iter().find(|x| x.contains(user)).cloned())
}

/// The room's hub from the scenario text (`room = { ..., hub = "x" }`).
fn hub_of(toml_text: &str) -> Option<String> {
    let v: toml::Value = toml::from_str(toml_text).ok()?;
    v.get("world")?
        .get("room")?
        .get("hub")?
        .as_str()
        .map(String::from)
}

/// The name of an externally tagged enum value and whether it reports a failure.
fn event_name(e: &Value) -> (String, bool) {
    let name = match e {
        Value::String(x) => x.clone(),
        Value::Object(o) => match o
            .get("type")
            .or_else(|| o.get("kind"))
            .and_then(Value::as_str)
        {
            Some(t) => t.to_string(),
            None => o.keys().next().cloned().unwrap_or_default(),
        },
        _ => String::new(),
    };
    let lower = name.to_ascii_lowercase();
    let bad = ["reject", "fail", "refus", "error"]
        .iter()
        .any(|b| lower.contains(b));
    (name, bad)
}

fn fault_text(f: &Fault) -> String {
    format!(
        "{} {} ({}–{} ms)",
        f.kind,
        f.nodes().join(if f.kind == "partition-oneway" {
            " → "
        } else {
            " ↔ "
        }),
        f.start_ms,
        f.end_ms
    )
}

fn label(endpoint: &str, summary: &str) -> String {
    if summary.is_empty() {
        endpoint.to_string()
    } else {
        format!("{endpoint}: {}", short(summary, 40))
    }
}

/// At most `n` characters, with an ellipsis when cut.
pub fn short(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(n.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// At most `n` characters, cut in the middle (the start and the end of a label tell
/// cells apart: `file.toml (…=takeover-unfenced) [full]`).
pub fn short_middle(text: &str, n: usize) -> String {
    let len = text.chars().count();
    if len <= n || n < 3 {
        return short(text, n);
    }
    let head = (n - 1) / 2;
    let tail = n - 1 - head;
    let mut s: String = text.chars().take(head).collect();
    s.push('…');
    s.extend(text.chars().skip(len - tail));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_middle_keeps_both_ends() {
        assert_eq!(short_middle("abcdefghij", 5), "ab…ij");
        assert_eq!(short_middle("abc", 5), "abc");
        assert_eq!(short_middle("abcdefghij", 5).chars().count(), 5);
    }

    /// A hand-written trace: a request that arrives and is answered, one that is lost,
    /// a client relay, a crash window and a violation naming two lines.
    const TRACE: &str = r#"{"kind":"header","format":1,"scenario":"t","seed":3,"variant":{"enforcement":"off"},"scenario_toml":"[world]\nroom = { name = \"r\", hub = \"a.example\" }\n"}
{"t":1,"node":"b.example","kind":"send","from":"b.example","to":"a.example","endpoint":"update","path":"/u","token":7,"summary":"x"}
{"t":1,"node":"b.example","kind":"send","from":"b.example","to":"a.example","endpoint":"notify","path":"/n","token":8,"summary":"y"}
{"t":3,"node":"a.example","kind":"request","from":"b.example","to":"a.example","endpoint":"update","path":"/u","summary":"x","id":1}
{"t":4,"node":"a.example","kind":"respond","id":1,"status":200,"summary":"ok"}
{"t":6,"node":"b.example","kind":"outcome","token":7,"status":200}
{"t":6,"node":"b.example","kind":"from-client","client":"mimi://b.example/d/bob/1","message":"relay","endpoint":"update","summary":"z"}
{"t":7,"node":"sim","kind":"fault-start","fault":{"kind":"crash","provider":"a.example","start_ms":7,"end_ms":9,"origin":"schedule"}}
{"t":8,"node":"mimi://b.example/d/bob/1","kind":"client","event":{"Epoch":{"room":"r","epoch":2}}}
{"t":9,"node":"sim","kind":"fault-end","fault":{"kind":"crash","provider":"a.example","start_ms":7,"end_ms":9,"origin":"schedule"}}
{"t":9,"node":"sim","kind":"violation","id":"no-split","message":"m","witness":{"nodes":["a.example"],"epochs":[2],"trace_lines":[4,9],"at_ms":9}}
{"t":9,"node":"sim","kind":"end","outcome":"violation","liveness":null}"#;

    #[test]
    fn pairs_requests_responses_and_reads_faults_epochs_and_witnesses() {
        let m = RunModel::parse(TRACE).unwrap();
        assert_eq!(m.seed, Some(3));
        let roles: Vec<(&str, Role)> = m
            .lifelines
            .iter()
            .map(|l| (l.name.as_str(), l.role))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("a.example", Role::Hub),
                ("b.example", Role::Follower),
                ("mimi://b.example/d/bob/1", Role::Client)
            ]
        );
        let kinds: Vec<ArrowKind> = m.arrows.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ArrowKind::Request,
                ArrowKind::Lost,
                ArrowKind::Response,
                ArrowKind::ClientToProvider
            ]
        );
        assert_eq!(
            (
                m.arrows[0].t_send,
                m.arrows[0].t_recv,
                m.arrows[0].lines.clone()
            ),
            (1, 3, vec![2, 4])
        );
        assert_eq!(
            (m.arrows[2].from.as_str(), m.arrows[2].to.as_str()),
            ("a.example", "b.example")
        );
        assert_eq!((m.arrows[2].t_send, m.arrows[2].t_recv), (4, 6));
        assert_eq!(m.faults.len(), 1);
        assert_eq!((m.faults[0].start, m.faults[0].end), (7, Some(9)));
        assert_eq!(m.faults[0].nodes, vec!["a.example".to_string()]);
        assert_eq!(m.epochs["mimi://b.example/d/bob/1"], vec![(8, Some(2))]);
        assert_eq!(
            m.witness_lines().into_iter().collect::<Vec<_>>(),
            vec![4, 9]
        );
        assert_eq!(m.outcome, Some(RunOutcome::Violation));
    }

    #[test]
    fn malformed_traces_are_errors_naming_the_line_not_panics() {
        const HEADER: &str = r#"{"kind":"header","format":1,"scenario":"s","scenario_toml":"","seed":1,"variant":{}}"#;
        assert!(matches!(RunModel::parse(""), Err(TraceError::NoHeader)));
        assert!(matches!(
            RunModel::parse("{\"kind\":\"x\"}"),
            Err(TraceError::NoHeader)
        ));
        // A header without its fields, or of another format.
        let e = RunModel::parse("{\"kind\":\"header\"}").unwrap_err();
        assert!(
            e.to_string().starts_with("trace line 1: not a trace event"),
            "{e}"
        );
        let e = RunModel::parse(&HEADER.replace("\"format\":1", "\"format\":2")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "trace line 1: trace format 2; this build reads format 1"
        );
        assert!(matches!(
            RunModel::parse(&format!("{HEADER}\nnot json")),
            Err(TraceError::Line {
                line: 2,
                source: LineError::NotJson(_)
            })
        ));
        // A known kind with a field of the wrong type is refused, naming the line and field.
        let e = RunModel::parse(&format!(
            "{HEADER}\n{{\"t\":1,\"node\":\"a\",\"kind\":\"respond\",\"id\":[],\"status\":200,\"summary\":\"\"}}"
        ))
        .unwrap_err();
        assert!(
            matches!(
                e,
                TraceError::Line {
                    line: 2,
                    source: LineError::Malformed(_)
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("trace line 2: not a trace event"),
            "{e}"
        );
        // A line without its time is refused too; a kind the page does not draw is not.
        assert!(
            RunModel::parse(&format!("{HEADER}\n{{\"node\":\"a\",\"kind\":\"tick\"}}")).is_err()
        );
        let m = RunModel::parse(&format!(
            "{HEADER}\n{{\"t\":4,\"node\":\"a\",\"kind\":\"tick\",\"extra\":[1]}}"
        ))
        .unwrap();
        assert!(m.arrows.is_empty() && m.marks.is_empty());
        assert_eq!(m.end_ms, 4);
    }
}
