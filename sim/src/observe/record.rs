//! The run trace: JSONL, one event per line, and a SHA-256 hash over every line.
//!
//! Line 1 is the header (format version, scenario name, the whole scenario text, seed,
//! build); then one line per event in the order the simulation produced them:
//! `{"t": <ms since start>, "node": <provider or client>, "kind": ..., ...}` with a
//! decoded summary of each protocol message (endpoint, room, epoch, sender, contents,
//! response code). The last line is `kind = "end"` with the outcome. Every line is a
//! typed [`Event`] (its kind one variant of [`What`], defined once in
//! `reports/src/records/trace.rs` for the writers and the readers), written with its keys
//! sorted ([`Event::line`]), so a line is a function of the event alone.
//!
//! The trace hash covers every line including the header, so it pins the scenario, the
//! seed and everything that happened; it never includes wall-clock time.

use std::collections::BTreeMap;

use nodes::endpoint::Endpoint;
use nodes::io::{ClientToProvider, ProviderToClient, Request, Response, ServerOutput};
use nodes::wire::{
    decode_exact, FanoutMessage, GroupInfoRequest, GroupInfoResponse, KeyMaterialRequest,
    KeyMaterialResponse, NotifyBody, SubmitMessageRequest, SubmitMessageResponse, Summary,
    UpdateRequest, UpdateRoomResponse,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::host_events;

use mimi_reports::records::trace::hash_line;
/// The trace's line types (one definition for the writers here and the reports that read
/// traces), the format version and the hash rule.
pub use mimi_reports::records::trace::{
    hash_lines, Attempt, Event, Header, Phase, RequestLine, What, TRACE_FORMAT,
};
/// Longest error body quoted in a trace line.
const MAX_QUOTED: usize = 200;

/// Collects trace lines and hashes them as they come.
pub struct Recorder {
    hasher: Sha256,
    lines: Option<Vec<String>>,
    count: u64,
    /// The endpoint of each incoming request and outgoing attempt, per provider, so a
    /// response can be decoded.
    endpoints: BTreeMap<(String, bool, u64), Endpoint>,
}

impl Recorder {
    /// `keep`: keep the lines (for `--trace`); otherwise only the hash is kept.
    pub fn new(keep: bool) -> Self {
        Recorder {
            hasher: Sha256::new(),
            lines: keep.then(Vec::new),
            count: 0,
            endpoints: BTreeMap::new(),
        }
    }

    /// A recorder whose first line is `header`.
    pub fn with_header(header: &Header, keep: bool) -> Self {
        let mut rec = Recorder::new(keep);
        rec.push(header.line());
        rec
    }

    /// Appends one line.
    fn push(&mut self, line: String) {
        hash_line(&mut self.hasher, &line);
        self.count += 1;
        if let Some(l) = self.lines.as_mut() {
            l.push(line);
        }
    }

    /// A simulation event: `t` ms since start, at `node`.
    pub fn event(&mut self, t: u64, node: &str, what: What) {
        crate::observe::log::set_sim_time(t);
        let kind = what.kind();
        tracing::debug!(target: crate::observe::log::TRACE_TARGET, node, kind, "{}", what.fields());
        let event = Event {
            t,
            node: node.to_string(),
            what,
        };
        self.push(event.line());
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of every line so far (hex SHA-256).
    pub fn hash(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// The lines kept, if any.
    pub fn take_lines(&mut self) -> Option<Vec<String>> {
        self.lines.take()
    }

    /// Removes and returns the lines kept so far; later lines are kept again (they all
    /// stay counted and hashed). Empty when lines are not kept.
    pub fn drain_lines(&mut self) -> Vec<String> {
        self.lines.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Records one event of a provider host (see [`host_events::What`]).
    pub fn net_event(&mut self, start_ms: u64, e: &host_events::Event) {
        use host_events::What as Host;
        let t = e.at.saturating_sub(start_ms);
        let node = e.host.as_str().to_string();
        let what = match &e.what {
            Host::Started => What::HostStarted,
            Host::Request { id, request } => {
                self.endpoints
                    .insert((node.clone(), true, *id), request.endpoint.clone());
                What::Request {
                    request: request_line(request),
                    id: *id,
                }
            }
            Host::Rejected { status, reason } => What::HttpRejected {
                status: *status,
                reason: reason.clone(),
            },
            Host::PeerRefused { reason } => What::PeerRefused {
                reason: reason.clone(),
            },
            Host::Outcome { token, result } => {
                let ep = self.endpoints.remove(&(node.clone(), false, *token));
                let result = match result {
                    Ok(r) => {
                        let (endpoint, status, summary) = response_fields(ep.as_ref(), r);
                        Attempt::Answered {
                            endpoint,
                            status,
                            summary,
                        }
                    }
                    Err(err) => Attempt::Failed {
                        error: err.to_string(),
                    },
                };
                What::Outcome {
                    token: *token,
                    result,
                }
            }
            Host::FromClient { client, message } => from_client(client.as_str(), message),
            Host::Tick => What::Tick,
            Host::Output(ServerOutput::Respond { id, response }) => {
                let ep = self.endpoints.remove(&(node.clone(), true, *id));
                let (endpoint, status, summary) = response_fields(ep.as_ref(), response);
                What::Respond {
                    id: *id,
                    endpoint,
                    status,
                    summary,
                }
            }
            Host::Output(ServerOutput::Send { token, request }) => {
                self.endpoints
                    .insert((node.clone(), false, *token), request.endpoint.clone());
                What::Send {
                    request: request_line(request),
                    token: *token,
                }
            }
            Host::Output(ServerOutput::ToClient { client, message }) => {
                to_client(client.as_str(), message)
            }
        };
        self.event(t, &node, what);
    }
}

/// An `op` line: a scripted step's op (the scenario's `Op`, tagged by its name in `op`)
/// and, in a testbed run, the step's index.
pub fn op_line(op: &impl serde::Serialize, step: Option<u64>) -> What {
    let mut args: BTreeMap<String, Value> = match serde_json::to_value(op) {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let op = match args.remove("op") {
        Some(Value::String(name)) => name,
        _ => panic!("a scripted op serializes as an object tagged with its name in `op`"),
    };
    What::Op { op, args, step }
}

fn request_line(r: &Request) -> RequestLine {
    RequestLine {
        from: r.from.as_str().to_string(),
        to: r.to.as_str().to_string(),
        endpoint: r.endpoint.name().to_string(),
        path: r.endpoint.path(),
        bytes: r.body.len() as u64,
        summary: request_summary(&r.endpoint, &r.body),
    }
}

fn sum<T: nodes::wire::Decode + Summary>(body: &[u8]) -> String {
    match decode_exact::<T>(body) {
        Ok(m) => m.summary(),
        Err(e) => format!("undecodable: {e}"),
    }
}

/// A decoded one-line summary of a request body.
pub fn request_summary(endpoint: &Endpoint, body: &[u8]) -> String {
    match endpoint {
        Endpoint::KeyMaterial(_) => sum::<KeyMaterialRequest>(body),
        Endpoint::Update(_) => sum::<UpdateRequest>(body),
        Endpoint::SubmitMessage(_) => sum::<SubmitMessageRequest>(body),
        Endpoint::Notify(_) => sum::<NotifyBody>(body),
        Endpoint::GroupInfo(_) => sum::<GroupInfoRequest>(body),
        Endpoint::Handoff(_) | Endpoint::Fence(_) => format!("{} bytes", body.len()),
    }
}

fn quote(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(MAX_QUOTED).collect()
}

/// A response's endpoint (`None`: no longer known), status and decoded summary (an
/// error body quoted).
fn response_fields(endpoint: Option<&Endpoint>, r: &Response) -> (Option<String>, u16, String) {
    let summary = match (endpoint, r.status) {
        (_, s) if !(200..300).contains(&s) => quote(&r.body),
        (Some(Endpoint::KeyMaterial(_)), _) => sum::<KeyMaterialResponse>(&r.body),
        (Some(Endpoint::Update(_)), _) => sum::<UpdateRoomResponse>(&r.body),
        (Some(Endpoint::SubmitMessage(_)), _) => sum::<SubmitMessageResponse>(&r.body),
        (Some(Endpoint::GroupInfo(_)), _) => sum::<GroupInfoResponse>(&r.body),
        (Some(Endpoint::Notify(_) | Endpoint::Handoff(_) | Endpoint::Fence(_)), _) => String::new(),
        (None, _) => format!("{} bytes", r.body.len()),
    };
    (endpoint.map(|e| e.name().to_string()), r.status, summary)
}

/// A `from-client` line: the message's kind and the fields it has.
fn from_client(client: &str, m: &ClientToProvider) -> What {
    let room_of = |r: &nodes::ids::RoomUri| Some(r.as_str().to_string());
    let (message, corr, room, relay, summary, count) = match m {
        ClientToProvider::Relay {
            corr,
            endpoint,
            body,
        } => (
            "relay",
            Some(*corr),
            None,
            Some(endpoint),
            Some(request_summary(endpoint, body)),
            None,
        ),
        ClientToProvider::PublishKeyPackages { key_packages } => (
            "publish-key-packages",
            None,
            None,
            None,
            None,
            Some(key_packages.len() as u64),
        ),
        ClientToProvider::LeaveRoom { room } => {
            ("leave-room", None, room_of(room), None, None, None)
        }
        ClientToProvider::TakeOver { corr, room, .. } => {
            ("take-over", Some(*corr), room_of(room), None, None, None)
        }
        ClientToProvider::CreateRoom { corr, room, .. } => {
            ("create-room", Some(*corr), room_of(room), None, None, None)
        }
        ClientToProvider::ForkedCommit { room, body } => (
            "forked-commit",
            None,
            room_of(room),
            None,
            Some(request_summary(&Endpoint::Update(room.clone()), body)),
            None,
        ),
    };
    What::FromClient {
        client: client.to_string(),
        message: message.to_string(),
        corr,
        room,
        endpoint: relay.map(|e| e.name().to_string()),
        path: relay.map(Endpoint::path),
        summary,
        count,
    }
}

/// A `to-client` line: a reply (corr, status, body length) or a delivery (room, summary).
fn to_client(client: &str, m: &ProviderToClient) -> What {
    let (message, corr, status, bytes, room, summary) = match m {
        ProviderToClient::Reply { corr, response } => (
            "reply",
            Some(*corr),
            Some(response.status),
            Some(response.body.len() as u64),
            None,
            None,
        ),
        ProviderToClient::Deliver { room, fanout } => (
            "deliver",
            None,
            None,
            None,
            Some(room.as_str().to_string()),
            Some(match decode_exact::<FanoutMessage>(fanout) {
                Ok(f) => f.summary(),
                Err(e) => format!("undecodable: {e}"),
            }),
        ),
    };
    What::ToClient {
        client: client.to_string(),
        message: message.to_string(),
        corr,
        status,
        bytes,
        room,
        summary,
    }
}
