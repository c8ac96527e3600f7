//! A run's JSONL trace (see [`crate::observe::record`]) read back into what the per-run page
//! draws: lifelines, arrows, fault windows, client epochs and violations.
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

/// Longest trace accepted (lines), so a hostile file cannot exhaust memory.
pub const MAX_TRACE_LINES: usize = 2_000_000;

/// One trace line.
#[derive(Debug, Clone)]
pub struct Line {
    /// 1-based line number in the file.
    pub no: u64,
    pub t: u64,
    pub node: String,
    pub kind: String,
    pub value: Value,
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
    pub variant: Value,
    pub outcome: String,
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
    #[error("trace line {line} is not JSON: {source}")]
    NotJson {
        line: u64,
        source: serde_json::Error,
    },
    #[error("trace line 1 is not a header (kind \"header\")")]
    NoHeader,
    #[error("trace has more than {MAX_TRACE_LINES} lines")]
    TooLong,
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

impl RunModel {
    /// Reads a whole trace file's text.
    pub fn parse(text: &str) -> Result<RunModel, TraceError> {
        let mut lines = Vec::new();
        for (i, l) in text.lines().enumerate() {
            if i >= MAX_TRACE_LINES {
                return Err(TraceError::TooLong);
            }
            let no = i as u64 + 1;
            let value: Value = serde_json::from_str(l)
                .map_err(|source| TraceError::NotJson { line: no, source })?;
            lines.push(Line {
                no,
                t: u(&value, "t").unwrap_or(0),
                node: s(&value, "node"),
                kind: s(&value, "kind"),
                value,
                text: l.to_string(),
            });
        }
        let header = lines.first().ok_or(TraceError::NoHeader)?;
        if header.kind != "header" {
            return Err(TraceError::NoHeader);
        }
        let mut m = RunModel {
            scenario: s(&header.value, "scenario"),
            seed: u(&header.value, "seed"),
            variant: header.value.get("variant").cloned().unwrap_or(Value::Null),
            trace_hash: crate::observe::record::hash_lines(text.lines()),
            ..RunModel::default()
        };
        let hub = hub_of(header.value.get("scenario_toml").and_then(Value::as_str));
        m.build(&lines, hub.as_deref());
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

    fn build(&mut self, lines: &[Line], hub: Option<&str>) {
        // Arrival queues and pairing maps for provider-to-provider requests.
        let mut in_flight: BTreeMap<(String, String, String), VecDeque<usize>> = BTreeMap::new();
        let mut by_token: BTreeMap<(String, u64), usize> = BTreeMap::new();
        let mut by_id: BTreeMap<(String, u64), usize> = BTreeMap::new();
        let mut open_faults: BTreeMap<String, usize> = BTreeMap::new();
        let mut clients: BTreeSet<String> = BTreeSet::new();
        for l in lines.iter().skip(1) {
            self.end_ms = self.end_ms.max(l.t);
            let v = &l.value;
            let host_role = if Some(l.node.as_str()) == hub {
                Role::Hub
            } else {
                Role::Follower
            };
            match l.kind.as_str() {
                "send" => {
                    self.lane(&l.node, host_role);
                    let to = s(v, "to");
                    let path = s(v, "path");
                    let i = self.arrows.len();
                    self.arrows.push(Arrow {
                        kind: ArrowKind::Lost,
                        from: l.node.clone(),
                        to: to.clone(),
                        t_send: l.t,
                        t_recv: l.t,
                        label: label(&s(v, "endpoint"), &s(v, "summary")),
                        lines: vec![l.no],
                    });
                    in_flight
                        .entry((l.node.clone(), to, path))
                        .or_default()
                        .push_back(i);
                    if let Some(tok) = u(v, "token") {
                        by_token.insert((l.node.clone(), tok), i);
                    }
                }
                "request" => {
                    self.lane(&l.node, host_role);
                    let key = (s(v, "from"), l.node.clone(), s(v, "path"));
                    if let Some(i) = in_flight.get_mut(&key).and_then(VecDeque::pop_front) {
                        if let Some(a) = self.arrows.get_mut(i) {
                            a.kind = ArrowKind::Request;
                            a.t_recv = l.t;
                            a.lines.push(l.no);
                        }
                        if let Some(id) = u(v, "id") {
                            by_id.insert((l.node.clone(), id), i);
                        }
                    }
                }
                "respond" => {
                    self.lane(&l.node, host_role);
                    let req = u(v, "id").and_then(|id| by_id.remove(&(l.node.clone(), id)));
                    if let Some(from_req) = req.and_then(|i| self.arrows.get(i)).cloned() {
                        let status = u(v, "status").unwrap_or(0);
                        self.arrows.push(Arrow {
                            kind: ArrowKind::Response,
                            from: l.node.clone(),
                            to: from_req.from.clone(),
                            t_send: l.t,
                            t_recv: l.t,
                            label: format!("{status} {}", short(&s(v, "summary"), 40)),
                            lines: vec![l.no],
                        });
                        // The sender's outcome closes it (matched by token below).
                        let j = self.arrows.len() - 1;
                        let key = by_token
                            .iter()
                            .find(|(_, &ai)| Some(ai) == req)
                            .map(|(k, _)| k.clone());
                        if let Some(k) = key {
                            by_token.insert(k, j);
                        }
                    }
                }
                "outcome" => {
                    self.lane(&l.node, host_role);
                    let tok = u(v, "token");
                    if let Some(j) = tok.and_then(|t| by_token.remove(&(l.node.clone(), t))) {
                        if let Some(a) = self.arrows.get_mut(j) {
                            if a.kind == ArrowKind::Response {
                                a.t_recv = l.t;
                                a.lines.push(l.no);
                            }
                        }
                    }
                }
                "from-client" | "to-client" => {
                    self.lane(&l.node, host_role);
                    let c = s(v, "client");
                    clients.insert(c.clone());
                    self.lane(&c, Role::Client);
                    if let Some(lf) = self.lifelines.iter_mut().find(|x| x.name == c) {
                        lf.provider.get_or_insert_with(|| l.node.clone());
                    }
                    let what = s(v, "message");
                    let detail = match (what.as_str(), v.get("endpoint")) {
                        ("relay", _) => label(&s(v, "endpoint"), &s(v, "summary")),
                        ("reply", _) => format!("reply {}", u(v, "status").unwrap_or(0)),
                        ("deliver", _) => format!("deliver {}", short(&s(v, "summary"), 40)),
                        _ => what.clone(),
                    };
                    let (from, to, kind) = if l.kind == "from-client" {
                        (c, l.node.clone(), ArrowKind::ClientToProvider)
                    } else {
                        (l.node.clone(), c, ArrowKind::ProviderToClient)
                    };
                    self.arrows.push(Arrow {
                        kind,
                        from,
                        to,
                        t_send: l.t,
                        t_recv: l.t,
                        label: detail,
                        lines: vec![l.no],
                    });
                }
                "hub" | "follower" => {
                    let role = if l.kind == "hub" {
                        Role::Hub
                    } else {
                        host_role
                    };
                    self.lane(&l.node, role);
                    let e = v.get("event").cloned().unwrap_or(Value::Null);
                    let (name, bad) = event_name(&e);
                    self.marks.push(Mark {
                        node: l.node.clone(),
                        t: l.t,
                        label: format!("{}: {name}", l.kind),
                        line: l.no,
                        bad,
                    });
                }
                "http-rejected" => {
                    self.lane(&l.node, host_role);
                    self.marks.push(Mark {
                        node: l.node.clone(),
                        t: l.t,
                        label: format!("http {} {}", u(v, "status").unwrap_or(0), s(v, "reason")),
                        line: l.no,
                        bad: true,
                    });
                }
                "client" => {
                    clients.insert(l.node.clone());
                    self.lane(&l.node, Role::Client);
                    let e = v.get("event").cloned().unwrap_or(Value::Null);
                    let (name, bad) = event_name(&e);
                    let epoch = e
                        .as_object()
                        .and_then(|o| o.values().next())
                        .and_then(|x| x.get("epoch"))
                        .and_then(Value::as_u64);
                    match name.as_str() {
                        "joined" | "epoch" | "Joined" | "Epoch" => {
                            if let Some(ep) = epoch.or_else(|| u(&e, "epoch")) {
                                self.epochs
                                    .entry(l.node.clone())
                                    .or_default()
                                    .push((l.t, Some(ep)));
                            }
                        }
                        "removed" | "Removed" => {
                            self.epochs
                                .entry(l.node.clone())
                                .or_default()
                                .push((l.t, None));
                        }
                        _ => {}
                    }
                    self.marks.push(Mark {
                        node: l.node.clone(),
                        t: l.t,
                        label: match epoch.or_else(|| u(&e, "epoch")) {
                            Some(ep) => format!("{name} e{ep}"),
                            None => name,
                        },
                        line: l.no,
                        bad,
                    });
                }
                "op" | "op-refused" | "op-abandoned" => {
                    clients.insert(l.node.clone());
                    self.lane(&l.node, Role::Client);
                    let what = if l.kind == "op" {
                        format!("op {}", s(v, "op"))
                    } else {
                        format!("{} {}", l.kind, s(v, "op"))
                    };
                    self.marks.push(Mark {
                        node: l.node.clone(),
                        t: l.t,
                        label: what,
                        line: l.no,
                        bad: l.kind != "op",
                    });
                }
                "fault-start" => {
                    let f = v.get("fault").cloned().unwrap_or(Value::Null);
                    let kind = s(&f, "kind");
                    let nodes: Vec<String> = ["provider", "client", "a", "b", "from", "to"]
                        .iter()
                        .map(|k| s(&f, k))
                        .filter(|x| !x.is_empty())
                        .collect();
                    let key = f.to_string();
                    open_faults.insert(key, self.faults.len());
                    self.faults.push(FaultWindow {
                        kind,
                        nodes,
                        start: l.t,
                        end: None,
                        text: fault_text(&f),
                        line: l.no,
                    });
                }
                "fault-end" => {
                    let f = v.get("fault").cloned().unwrap_or(Value::Null);
                    if let Some(i) = open_faults.remove(&f.to_string()) {
                        if let Some(w) = self.faults.get_mut(i) {
                            w.end = Some(l.t);
                        }
                    }
                }
                "violation" => {
                    let w = v.get("witness").cloned().unwrap_or(Value::Null);
                    let list = |k: &str| -> Vec<Value> {
                        w.get(k)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    };
                    self.violations.push(ViolationView {
                        id: s(v, "id"),
                        message: s(v, "message"),
                        nodes: list("nodes")
                            .iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect(),
                        epochs: list("epochs").iter().filter_map(Value::as_u64).collect(),
                        lines: list("trace_lines")
                            .iter()
                            .filter_map(Value::as_u64)
                            .collect(),
                        at_ms: u(&w, "at_ms").unwrap_or(l.t),
                    });
                }
                "end" => {
                    self.outcome = s(v, "outcome");
                    self.liveness = v.get("liveness").and_then(Value::as_str).map(String::from);
                }
                _ => {}
            }
        }
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

    /// Every trace line a violation names as its witness.
    pub fn witness_lines(&self) -> BTreeSet<u64> {
        self.violations
            .iter()
            .flat_map(|v| v.lines.iter().copied())
            .collect()
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
fn hub_of(toml_text: Option<&str>) -> Option<String> {
    let v: toml::Value = toml::from_str(toml_text?).ok()?;
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

fn fault_text(f: &Value) -> String {
    let kind = s(f, "kind");
    let who: Vec<String> = ["provider", "client", "a", "b", "from", "to"]
        .iter()
        .map(|k| s(f, k))
        .filter(|x| !x.is_empty())
        .collect();
    format!(
        "{kind} {} ({}–{} ms)",
        who.join(if kind == "partition-oneway" {
            " → "
        } else {
            " ↔ "
        }),
        u(f, "start_ms").unwrap_or(0),
        u(f, "end_ms").unwrap_or(0)
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
    const TRACE: &str = r#"{"kind":"header","scenario":"t","seed":3,"scenario_toml":"[world]\nroom = { name = \"r\", hub = \"a.example\" }\n"}
{"t":1,"node":"b.example","kind":"send","from":"b.example","to":"a.example","endpoint":"update","path":"/u","token":7,"summary":"x"}
{"t":1,"node":"b.example","kind":"send","from":"b.example","to":"a.example","endpoint":"notify","path":"/n","token":8,"summary":"y"}
{"t":3,"node":"a.example","kind":"request","from":"b.example","to":"a.example","endpoint":"update","path":"/u","id":1}
{"t":4,"node":"a.example","kind":"respond","id":1,"status":200,"summary":"ok"}
{"t":6,"node":"b.example","kind":"outcome","token":7,"status":200}
{"t":6,"node":"b.example","kind":"from-client","client":"mimi://b.example/d/bob/1","message":"relay","endpoint":"update","summary":"z"}
{"t":7,"node":"sim","kind":"fault-start","fault":{"kind":"crash","provider":"a.example","start_ms":7,"end_ms":9}}
{"t":8,"node":"mimi://b.example/d/bob/1","kind":"client","event":{"Epoch":{"room":"r","epoch":2}}}
{"t":9,"node":"sim","kind":"fault-end","fault":{"kind":"crash","provider":"a.example","start_ms":7,"end_ms":9}}
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
        assert_eq!(m.outcome, "violation");
    }

    #[test]
    fn malformed_traces_are_errors_not_panics() {
        assert!(matches!(RunModel::parse(""), Err(TraceError::NoHeader)));
        assert!(matches!(
            RunModel::parse("{\"kind\":\"x\"}"),
            Err(TraceError::NoHeader)
        ));
        assert!(matches!(
            RunModel::parse("{\"kind\":\"header\"}\nnot json"),
            Err(TraceError::NotJson { line: 2, .. })
        ));
        // Fields of the wrong type are read as absent.
        let m =
            RunModel::parse("{\"kind\":\"header\"}\n{\"t\":\"x\",\"kind\":\"respond\",\"id\":[]}")
                .unwrap();
        assert!(m.arrows.is_empty());
    }
}
