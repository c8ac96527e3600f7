//! A run's JSONL trace, line by line: line 1 is the [`Header`], every other line an
//! [`Event`] `{"t": ms, "node": ..., "kind": ..., ...}`. The simulator writes the lines
//! (`sim/src/observe/record.rs`, `Recorder`) and the testbed's nodes and runner write
//! theirs (`sim/src/testbed/`) from these same types, so a kind and its fields are
//! defined once, here; the trace hash rule ([`hash_lines`]) and the format version
//! ([`TRACE_FORMAT`]) too.
//!
//! A line is the JSON of an [`Event`] with its keys sorted ([`Event::line`]: it goes
//! through `serde_json::Value`, whose map is ordered), so a line is a function of the
//! event alone and the field order of these types does not matter.
//!
//! # Choices
//! * The node events (`hub`, `follower`, `client`) carry the protocol cores' own event
//!   enums as JSON (`event`); they stay `serde_json::Value` here, because the reports do
//!   not depend on the cores' crate. The same holds for a scripted step's arguments
//!   (`op`: the scenario's `Op`), the header's `variant` and the testbed's proxy counters.
//! * A field some writers leave out is an `Option` that is skipped when `None`; a field
//!   written as `null` is an `Option` that is not skipped. Fields added after the reports
//!   first read traces have `#[serde(default)]`, so older or hand-written lines still read.
//! * A kind this build does not know reads as [`What::Other`]; no writer writes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::run::RunOutcome;

/// Version of the trace format (the header's `format`).
pub const TRACE_FORMAT: u32 = 1;

/// Line 1 of a trace (`kind = "header"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub scenario: String,
    /// SHA-256 of the scenario file (hex).
    #[serde(default)]
    pub scenario_sha256: String,
    /// The whole scenario file.
    pub scenario_toml: String,
    pub seed: u64,
    /// The variant the run used (enforcement, disabled rules, overrides …).
    pub variant: Value,
    /// The writer's version (`CARGO_PKG_VERSION`).
    #[serde(default)]
    pub build: String,
    /// A testbed run's: its time scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub testbed: Option<TestbedHeader>,
}

/// The header's `testbed` part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestbedHeader {
    pub time_scale: f64,
}

/// A provider-to-provider request as sent or received (`send`, `request`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub from: String,
    pub to: String,
    pub endpoint: String,
    pub path: String,
    /// The body's length.
    #[serde(default)]
    pub bytes: u64,
    /// The decoded request body, one line.
    pub summary: String,
}

/// How an outgoing attempt ended (`outcome`): an answer, or a transport error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Attempt {
    Answered {
        /// Null when the sender no longer knew the request's endpoint.
        #[serde(default)]
        endpoint: Option<String>,
        status: u16,
        #[serde(default)]
        summary: String,
    },
    Failed {
        error: String,
    },
}

/// A fault window (`fault-start`, `fault-end`): the scenario's fault with its times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub kind: String,
    /// The nodes it names: a provider (crash), a client (offline), or a link's two ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// `loss`: drop rate per send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `latency`: the new latency range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Where the window came from (the schedule, a random draw …).
    pub origin: String,
}

impl Fault {
    /// The nodes the fault names, in field order (provider, client, a, b, from, to).
    pub fn nodes(&self) -> Vec<String> {
        [
            &self.provider,
            &self.client,
            &self.a,
            &self.b,
            &self.from,
            &self.to,
        ]
        .into_iter()
        .flatten()
        .filter(|x| !x.is_empty())
        .cloned()
        .collect()
    }

    /// The window's identity, to pair its end with its start.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a violation points at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub nodes: Vec<String>,
    pub epochs: Vec<u64>,
    /// 1-based line numbers in the trace.
    pub trace_lines: Vec<u64>,
    /// Simulated time (ms since start).
    pub at_ms: u64,
}

/// A run's phase (`phase`): chaos until `until_ms`, then healing with the liveness bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    Chaos { until_ms: u64 },
    Heal { bound_ms: u64 },
}

/// What a testbed node restored from its state at start (`node-started`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    pub server_inputs: u64,
    pub client_inputs: u64,
    pub to_clients: u64,
    pub from_clients: u64,
}

/// A client's view of a room after it joined or changed epoch (`client-view`), lossless
/// for the oracles: dictionaries map extension types to their encoding (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    pub room: String,
    pub epoch: u64,
    /// Hex.
    pub group_context: String,
    /// Hex.
    pub epoch_authenticator: String,
    pub dictionary: BTreeMap<String, String>,
    pub members: Vec<String>,
    /// The room state's `app_data_dictionary` encoding; null before the client has one.
    pub state: Option<BTreeMap<String, String>>,
}

/// A hub's view of a room it hosts (`hub-view`), journalled when it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubView {
    pub room: String,
    pub sequencing: bool,
    pub generation: Option<u64>,
    /// Null while the hub holds no MLS group of the room.
    pub epoch: Option<u64>,
    /// Hex.
    pub group_context: Option<String>,
    pub members: Option<Vec<String>>,
    /// The committed participant list: (user, role index).
    pub participants: Vec<(String, u32)>,
}

/// The kind of an event line and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
    // A provider host's events (the simulator's and a testbed node's host adapter).
    /// The host's software (re)started with a fresh core.
    HostStarted,
    /// A provider sent a request to another (`token` pairs it with its outcome).
    Send {
        #[serde(flatten)]
        request: RequestLine,
        token: u64,
    },
    /// A provider received a request (`id` pairs it with its response).
    Request {
        #[serde(flatten)]
        request: RequestLine,
        id: u64,
    },
    /// A provider answered request `id`.
    Respond {
        id: u64,
        /// Null when the host no longer knew the request's endpoint.
        #[serde(default)]
        endpoint: Option<String>,
        status: u16,
        summary: String,
    },
    /// The sender learnt how its request `token` ended.
    Outcome {
        token: u64,
        #[serde(flatten)]
        result: Attempt,
    },
    /// A client handed its provider a message; the fields its `message` has.
    FromClient {
        client: String,
        /// relay, publish-key-packages, leave-room, take-over, create-room, forked-commit.
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corr: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// For a relay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// The decoded body (relay, forked-commit).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
        /// publish-key-packages: how many.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    /// A provider handed a client a message; the fields its `message` has.
    ToClient {
        client: String,
        /// reply or deliver.
        message: String,
        /// For a reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corr: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// For a delivery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// A timer tick that produced outputs.
    Tick,
    /// The host refused an HTTP request before the core saw it.
    HttpRejected {
        status: u16,
        reason: String,
    },
    /// The transport refused a connection before any request (testbed: TLS).
    PeerRefused {
        reason: String,
    },
    // The protocol cores' events.
    /// A hub core's event.
    Hub {
        event: Value,
    },
    /// A follower core's event.
    Follower {
        event: Value,
    },
    /// A client core's event.
    Client {
        event: Value,
    },
    // The script and the run (the simulator's driver, the testbed's runner and nodes).
    /// A scripted step handed to its client: the scenario's op (`op` its name, `args`
    /// its other fields); `step` its index, in a testbed run.
    Op {
        op: String,
        #[serde(flatten)]
        args: BTreeMap<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
    },
    /// The client refused the step's command.
    OpRefused {
        reason: String,
    },
    /// The step's precondition never held (`client`: the testbed runner names it).
    OpAbandoned {
        op: String,
        #[serde(default)]
        step: u64,
        #[serde(default)]
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// The testbed runner could not hand step `step` to its node.
    OpFailed {
        step: u64,
        client: String,
        reason: String,
    },
    Phase {
        #[serde(flatten)]
        phase: Phase,
    },
    FaultStart {
        fault: Fault,
    },
    FaultEnd {
        fault: Fault,
    },
    /// An oracle's violation: the simulator writes its message and witness, the testbed
    /// runner the judge's whole violation as `detail`.
    Violation {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        witness: Option<Witness>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Box<ViolationDetail>>,
    },
    /// The last line: the outcome, why liveness failed, how often each fault kind fired.
    End {
        outcome: RunOutcome,
        liveness: Option<String>,
        #[serde(default)]
        faults: BTreeMap<String, u64>,
    },
    // The testbed's own lines.
    /// The testbed runner's summary: time scale, proxy counters per link, how each
    /// enabled fault kind is done.
    Testbed {
        time_scale: f64,
        /// Per link `a→b`: the proxy's counters (`sim/src/testbed/proxy.rs`).
        proxies: BTreeMap<String, Value>,
        fault_notes: BTreeMap<String, String>,
    },
    /// A node process started: its addresses, what it restored, how long that took.
    NodeStarted {
        mimi: String,
        control: String,
        restored: Restored,
        restore_ms: u64,
    },
    /// The runner killed a node (crash fault), or started it again.
    NodeKilled {
        provider: String,
    },
    NodeRestarted {
        provider: String,
    },
    /// A node's control API failed the runner (the node may be down).
    ControlError {
        reason: String,
    },
    /// A node created a client.
    ClientCreated {
        client: String,
    },
    /// A client went online or offline (control API `/online`).
    Online,
    Offline,
    ClientView(ClientView),
    HubView(HubView),
    /// A new entry of a room's hub log (the FanoutMessage, hex).
    HubLog {
        room: String,
        generation: u64,
        seq: u64,
        epoch: u64,
        fanout: String,
    },
    /// A FanoutMessage a provider handed to its client (hex).
    Deliver {
        client: String,
        room: String,
        fanout: String,
    },
    /// A kind this build does not know (never written).
    #[serde(other)]
    Other,
}

/// An oracle's violation, as the testbed runner writes it (`detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationDetail {
    pub id: String,
    pub message: String,
    pub witness: Witness,
}

/// Every line after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated ms since the start.
    pub t: u64,
    /// The provider host or client the event happened at ("sim" for the simulator's own).
    pub node: String,
    #[serde(flatten)]
    pub what: What,
}

impl What {
    /// The line's `kind`.
    pub fn kind(&self) -> &'static str {
        // The tag serde writes: the variant's name in kebab-case.
        match self {
            What::HostStarted => "host-started",
            What::Send { .. } => "send",
            What::Request { .. } => "request",
            What::Respond { .. } => "respond",
            What::Outcome { .. } => "outcome",
            What::FromClient { .. } => "from-client",
            What::ToClient { .. } => "to-client",
            What::Tick => "tick",
            What::HttpRejected { .. } => "http-rejected",
            What::PeerRefused { .. } => "peer-refused",
            What::Hub { .. } => "hub",
            What::Follower { .. } => "follower",
            What::Client { .. } => "client",
            What::Op { .. } => "op",
            What::OpRefused { .. } => "op-refused",
            What::OpAbandoned { .. } => "op-abandoned",
            What::OpFailed { .. } => "op-failed",
            What::Phase { .. } => "phase",
            What::FaultStart { .. } => "fault-start",
            What::FaultEnd { .. } => "fault-end",
            What::Violation { .. } => "violation",
            What::End { .. } => "end",
            What::Testbed { .. } => "testbed",
            What::NodeStarted { .. } => "node-started",
            What::NodeKilled { .. } => "node-killed",
            What::NodeRestarted { .. } => "node-restarted",
            What::ControlError { .. } => "control-error",
            What::ClientCreated { .. } => "client-created",
            What::Online => "online",
            What::Offline => "offline",
            What::ClientView(_) => "client-view",
            What::HubView(_) => "hub-view",
            What::HubLog { .. } => "hub-log",
            What::Deliver { .. } => "deliver",
            What::Other => "other",
        }
    }

    /// The line's fields but `t`, `node` and `kind`, as a JSON object (keys sorted).
    pub fn fields(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("kind");
        }
        v
    }
}

impl Event {
    /// The line as written: the event's JSON with sorted keys.
    ///
    /// # Panics
    /// On [`What::Other`], which stands for a kind this build cannot write.
    pub fn line(&self) -> String {
        assert!(
            self.what != What::Other,
            "a trace line of an unknown kind cannot be written"
        );
        // Through `Value`: its map sorts the keys (see the module docs).
        serde_json::to_value(self)
            .expect("a trace event is JSON (string keys, no failing serializer)")
            .to_string()
    }
}

impl Header {
    /// Line 1 as written: the header's JSON with `kind = "header"`, keys sorted.
    pub fn line(&self) -> String {
        #[derive(Serialize)]
        struct Tagged<'a> {
            kind: &'static str,
            #[serde(flatten)]
            header: &'a Header,
        }
        serde_json::to_value(Tagged {
            kind: "header",
            header: self,
        })
        .expect("a trace header is JSON")
        .to_string()
    }
}

/// The header's `kind`, checked before the header is read.
#[derive(Deserialize)]
struct KindOnly {
    kind: String,
}

/// Why a trace line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("not a header (kind \"header\")")]
    NotAHeader,
    #[error("trace format {0}; this build reads format {TRACE_FORMAT}")]
    Format(u32),
    #[error("not a trace event: {0}")]
    Malformed(serde_json::Error),
}

impl Header {
    /// Reads line 1.
    pub fn parse(line: &str) -> Result<Header, LineError> {
        let k: KindOnly = serde_json::from_str(line).map_err(|e| {
            if e.is_data() {
                LineError::NotAHeader
            } else {
                LineError::NotJson(e)
            }
        })?;
        if k.kind != "header" {
            return Err(LineError::NotAHeader);
        }
        let h: Header = serde_json::from_str(line).map_err(LineError::Malformed)?;
        if h.format != TRACE_FORMAT {
            return Err(LineError::Format(h.format));
        }
        Ok(h)
    }
}

impl Event {
    /// Reads a line after the header.
    pub fn parse(line: &str) -> Result<Event, LineError> {
        serde_json::from_str(line).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                LineError::NotJson(e)
            } else {
                LineError::Malformed(e)
            }
        })
    }
}

/// The trace hash's rule for one line: the line's bytes, then a newline.
pub fn hash_line(h: &mut Sha256, line: &str) {
    h.update(line.as_bytes());
    h.update(b"\n");
}

/// The trace hash (hex SHA-256) of lines already written, by the rule of [`hash_line`].
pub fn hash_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for l in lines {
        hash_line(&mut h, l);
    }
    hex::encode(h.finalize())
}
