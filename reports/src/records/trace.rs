//! A run's JSONL trace, line by line: line 1 is the [`Header`], every other line an
//! [`Event`] `{"t": ms, "node": ..., "kind": ..., ...}`. The simulator writes the lines
//! (`sim/src/observe/record.rs`, `Recorder`); the trace hash rule ([`hash_lines`]) and the
//! format version ([`TRACE_FORMAT`]) are defined here, for the writer and the reader.
//!
//! Only the kinds and fields the run page draws are typed; every other kind (ticks,
//! phases, host starts, the testbed's own lines …) reads as [`What::Other`].
//!
//! # Choices
//! * The node events (`hub`, `follower`, `client`) carry the protocol cores' own event
//!   enums as JSON (`event`); they stay `serde_json::Value` here, because the page only
//!   takes the variant's name and an epoch from them and the reports do not depend on
//!   the cores' crate.
//! * The header's `variant` stays JSON: the page prints it as it is.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::run::RunOutcome;

/// Version of the trace format (the header's `format`).
pub const TRACE_FORMAT: u32 = 1;

/// Line 1 of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub scenario: String,
    /// The whole scenario file.
    pub scenario_toml: String,
    pub seed: u64,
    /// The variant the run used (enforcement, disabled rules, overrides …).
    pub variant: serde_json::Value,
}

/// A provider-to-provider request as sent or received (`send`, `request`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    pub from: String,
    pub to: String,
    pub endpoint: String,
    pub path: String,
    /// The decoded request body, one line.
    pub summary: String,
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

/// The kind of an event line and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum What {
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
        status: u16,
        summary: String,
    },
    /// The sender learnt how its request `token` ended.
    Outcome {
        token: u64,
    },
    /// A client handed its provider a message.
    FromClient {
        client: String,
        /// relay, publish-key-packages, leave-room, take-over, create-room.
        message: String,
        /// For a relay.
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default)]
        summary: Option<String>,
    },
    /// A provider handed a client a message.
    ToClient {
        client: String,
        /// reply or deliver.
        message: String,
        /// For a reply.
        #[serde(default)]
        status: Option<u16>,
        /// For a delivery.
        #[serde(default)]
        summary: Option<String>,
    },
    /// A hub core's event.
    Hub {
        event: serde_json::Value,
    },
    /// A follower core's event.
    Follower {
        event: serde_json::Value,
    },
    /// A client core's event.
    Client {
        event: serde_json::Value,
    },
    /// The host refused an HTTP request before the core saw it.
    HttpRejected {
        status: u16,
        reason: String,
    },
    /// A scripted step handed to its client (the scenario's op, `op` its name).
    Op {
        op: String,
    },
    /// The client refused the step's command.
    OpRefused {
        reason: String,
    },
    /// The step's precondition never held.
    OpAbandoned {
        op: String,
    },
    FaultStart {
        fault: Fault,
    },
    FaultEnd {
        fault: Fault,
    },
    /// An oracle's violation; the testbed's judge gives no message or witness.
    Violation {
        id: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        witness: Option<Witness>,
    },
    /// The last line.
    End {
        outcome: RunOutcome,
        liveness: Option<String>,
    },
    /// A kind the pages do not draw.
    #[serde(other)]
    Other,
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
