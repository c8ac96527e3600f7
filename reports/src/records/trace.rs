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
    /// Whether the server core was restored from its SQLite tables (else from its journal).
    #[serde(default)]
    pub server_tables: bool,
    /// Rows in `hub_rooms` and `room_log` at start.
    #[serde(default)]
    pub hub_rooms: u64,
    #[serde(default)]
    pub room_log: u64,
    /// Server journal inputs replayed after the tables.
    #[serde(default)]
    pub server_replayed: u64,
    pub server_inputs: u64,
    pub client_inputs: u64,
    /// Clients restored from their files, and journal rows replayed into them.
    #[serde(default)]
    pub clients_from_files: u64,
    #[serde(default)]
    pub client_inputs_replayed: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One line of every kind the writers write (from simulator and testbed traces, long
    /// values cut), each exactly as written: keys sorted, compact.
    const LINES: &[&str] = &[
        r#"{"kind":"phase","node":"sim","phase":"chaos","t":0,"until_ms":14000}"#,
        r#"{"kind":"op","node":"mimi://a.exa","op":"create","t":0}"#,
        r#"{"kind":"host-started","node":"a.example","t":0}"#,
        r#"{"client":"mimi://b.example/d/bob/1","count":8,"kind":"from-client","message":"publish-key-packages","node":"b.example","t":0}"#,
        r#"{"client":"mimi://a.exa","corr":2,"kind":"from-client","message":"create-room","node":"a.example","room":"mimi://a.exa","t":0}"#,
        r#"{"bytes":0,"client":"mimi://a.exa","corr":2,"kind":"to-client","message":"reply","node":"a.example","status":200,"t":0}"#,
        r#"{"event":{"Epoch":{"epoch":2,"room":"r"}},"kind":"hub","node":"a.example","t":1}"#,
        r#"{"event":{"Epoch":{"epoch":2,"room":"r"}},"kind":"client","node":"mimi://a.exa","t":1}"#,
        r#"{"client":"mimi://a.exa","corr":8,"endpoint":"update","kind":"from-client","message":"relay","node":"a.example","path":"/update/mimi","summary":"/update Upda","t":21000}"#,
        r#"{"bytes":2120,"endpoint":"fence","from":"b.example","kind":"send","node":"b.example","path":"/fence/mimi%","summary":"2120 bytes","t":4000,"to":"a.example","token":2}"#,
        r#"{"bytes":2120,"endpoint":"fence","from":"b.example","id":4,"kind":"request","node":"c.example","path":"/fence/mimi%","summary":"2120 bytes","t":4009,"to":"c.example"}"#,
        r#"{"endpoint":"notify","id":1,"kind":"respond","node":"b.example","status":201,"summary":"","t":517}"#,
        r#"{"event":{"Epoch":{"epoch":2,"room":"r"}},"kind":"follower","node":"a.example","t":509}"#,
        r#"{"endpoint":"notify","kind":"outcome","node":"a.example","status":201,"summary":"","t":519,"token":2}"#,
        r#"{"client":"mimi://b.example/d/bob/1","kind":"to-client","message":"deliver","node":"b.example","room":"mimi://a.exa","summary":"/notify Fano","t":517}"#,
        r#"{"client":"mimi://b.exa","kind":"from-client","message":"leave-room","node":"b.example","room":"mimi://a.exa","t":7031}"#,
        r#"{"bound_ms":44000,"kind":"phase","node":"sim","phase":"heal","t":14000}"#,
        r#"{"id":"sending-uri-is-sender","kind":"violation","message":"a.example ac","node":"sim","t":14001,"witness":{"at_ms":9007,"epochs":[8],"nodes":["mimi://c.exa","a.example"],"trace_lines":[378,386]}}"#,
        r#"{"faults":{},"kind":"end","liveness":null,"node":"sim","outcome":"violation","t":14001}"#,
        r#"{"fault":{"client":"bob/1","end_ms":4523,"kind":"offline","origin":"swarm","start_ms":3672},"kind":"fault-start","node":"sim","t":3672}"#,
        r#"{"fault":{"client":"bob/1","end_ms":4523,"kind":"offline","origin":"swarm","start_ms":3672},"kind":"fault-end","node":"sim","t":4523}"#,
        r#"{"error":"peer unreachable","kind":"outcome","node":"c.example","t":5505,"token":1}"#,
        r#"{"client":"mimi://b.example/d/bob/1","corr":3,"kind":"from-client","message":"take-over","node":"b.example","room":"mimi://a.exa","t":4000}"#,
        r#"{"kind":"tick","node":"b.example","t":4500}"#,
        r#"{"control":"127.0.0.1:40997","kind":"node-started","mimi":"127.0.0.1:46237","node":"a.example","restore_ms":97,"restored":{"client_inputs":2,"client_inputs_replayed":1,"clients_from_files":4,"from_clients":0,"hub_rooms":1,"room_log":17,"server_inputs":0,"server_replayed":0,"server_tables":true,"to_clients":0},"t":0}"#,
        r#"{"client":"mimi://b.example/d/bob/1","kind":"client-created","node":"b.example","t":0}"#,
        r#"{"kind":"op","node":"mimi://a.exa","op":"create","step":0,"t":2}"#,
        r#"{"epoch":0,"generation":0,"group_context":"000100011a6d","kind":"hub-view","members":["mimi://a.exa"],"node":"a.example","participants":[["mimi://a.example/u/alice",4]],"room":"mimi://a.exa","sequencing":true,"t":4}"#,
        r#"{"epoch":3,"fanout":"000001a2400c","generation":0,"kind":"hub-log","node":"a.example","room":"mimi://a.exa","seq":6,"t":3537}"#,
        r#"{"dictionary":{"34":"38186d696d69"},"epoch":1,"epoch_authenticator":"221ef64046c8","group_context":"000100011a6d","kind":"client-view","members":["mimi://a.exa","mimi://b.example/d/bob/1"],"node":"mimi://b.example/d/bob/1","room":"mimi://a.exa","state":{"34":"38186d696d69"},"t":338}"#,
        r#"{"client":"mimi://b.example/d/bob/1","fanout":"000001a2400c","kind":"deliver","node":"b.example","room":"mimi://a.exa","t":3556}"#,
        r#"{"kind":"offline","node":"mimi://b.example/d/bob/1","t":1506}"#,
        r#"{"kind":"node-killed","node":"sim","provider":"a.example","t":2009}"#,
        r#"{"kind":"node-restarted","node":"sim","provider":"a.example","t":2864}"#,
        r#"{"kind":"online","node":"mimi://b.example/d/bob/1","t":6522}"#,
        r#"{"fault_notes":{},"kind":"testbed","node":"sim","proxies":{"a.example→b.example":{"bytes_back":7426,"bytes_forward":21767,"connections":12,"delayed_chunks":0,"held_chunks":0,"refused":0,"resets":0}},"t":7030,"time_scale":0.5}"#,
        r#"{"detail":{"id":"sending-uri-is-sender","message":"a.example ac","witness":{"at_ms":4545,"epochs":[8],"nodes":["mimi://c.exa","a.example"],"trace_lines":[504,509]}},"id":"sending-uri-is-sender","kind":"violation","node":"sim","t":7030}"#,
        r#"{"kind":"op-refused","node":"mimi://a.example/u/alice/1","reason":"no","t":9}"#,
        r#"{"kind":"op-abandoned","node":"mimi://a.example/u/alice/1","op":"leave","reason":"its precondition never held","step":3,"t":9}"#,
        r#"{"client":"mimi://a.example/u/alice/1","kind":"op-abandoned","node":"sim","op":"leave","reason":"its precondition never held","step":3,"t":9}"#,
        r#"{"client":"mimi://a.example/u/alice/1","kind":"op-failed","node":"sim","reason":"leave: timed out","step":3,"t":9}"#,
        r#"{"kind":"control-error","node":"sim","reason":"refused","t":9}"#,
        r#"{"kind":"http-rejected","node":"a.example","reason":"bad","status":400,"t":9}"#,
        r#"{"kind":"peer-refused","node":"a.example","reason":"no certificate","t":9}"#,
        r#"{"endpoint":null,"id":4,"kind":"respond","node":"a.example","status":200,"summary":"3 bytes","t":9}"#,
        r#"{"endpoint":null,"kind":"outcome","node":"a.example","status":500,"summary":"x","t":9,"token":4}"#,
        r#"{"client":"mimi://a.example/u/alice/1","kind":"from-client","message":"forked-commit","node":"a.example","room":"r","summary":"s","t":9}"#,
        r#"{"fault":{"a":"a.example","b":"b.example","end_ms":5,"kind":"loss","origin":"swarm","rate":0.25,"start_ms":1},"kind":"fault-start","node":"sim","t":9}"#,
        r#"{"fault":{"a":"a.example","b":"b.example","end_ms":5,"kind":"latency","max_ms":50,"min_ms":1,"origin":"swarm","start_ms":1},"kind":"fault-start","node":"sim","t":9}"#,
        r#"{"fault":{"end_ms":5,"from":"a.example","kind":"partition-oneway","origin":"schedule","start_ms":1,"to":"b.example"},"kind":"fault-end","node":"sim","t":9}"#,
        r#"{"kind":"op","node":"mimi://a.example/u/alice/1","op":"send","t":3,"text":"hi","to":["bob"]}"#,
    ];

    #[test]
    fn every_kind_reads_and_writes_back_to_the_same_bytes() {
        let mut kinds = std::collections::BTreeSet::new();
        for l in LINES {
            let e = Event::parse(l).unwrap_or_else(|err| panic!("{l}: {err}"));
            assert_ne!(e.what, What::Other, "{l}");
            assert_eq!(e.line(), *l);
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["kind"], e.what.kind(), "{l}");
            kinds.insert(e.what.kind());
        }
        // Every kind a writer writes is among them.
        assert_eq!(kinds.len(), 34, "{kinds:?}");
    }

    #[test]
    fn a_header_writes_back_to_the_same_bytes_and_an_unknown_kind_reads_as_other() {
        let l = r#"{"build":"0.1.0","format":1,"kind":"header","scenario":"s","scenario_sha256":"ab","scenario_toml":"x","seed":3,"testbed":{"time_scale":0.5},"variant":{"enforcement":"full"}}"#;
        let h = Header::parse(l).unwrap();
        assert_eq!(h.testbed, Some(TestbedHeader { time_scale: 0.5 }));
        assert_eq!(h.line(), l);
        let e = Event::parse(r#"{"kind":"no-such-kind","node":"a","t":1,"x":2}"#).unwrap();
        assert_eq!(e.what, What::Other);
        // A line of the right kind with a field missing is malformed, not "other".
        assert!(matches!(
            Event::parse(r#"{"kind":"hub-log","node":"a","t":1}"#),
            Err(LineError::Malformed(_))
        ));
    }

    #[test]
    #[should_panic(expected = "unknown kind")]
    fn an_unknown_kind_is_never_written() {
        let e = Event {
            t: 1,
            node: "a".into(),
            what: What::Other,
        };
        let _ = e.line();
    }
}
