//! The run trace: JSONL, one event per line, and a SHA-256 hash over every line.
//!
//! Line 1 is the header (format version, scenario name, the whole scenario text, seed,
//! build); then one line per event in the order the simulation produced them:
//! `{"t": <ms since start>, "node": <provider or client>, "kind": ..., ...}` with a
//! decoded summary of each protocol message (endpoint, room, epoch, sender, contents,
//! response code). The last line is `kind = "end"` with the outcome. Keys are sorted
//! (serde_json's map is ordered), so a line is a function of the event alone.
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
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::host_events::{self, What};

use mimi_reports::records::trace::hash_line;
/// The trace format version and hash rule, shared with the reports that read traces.
pub use mimi_reports::records::trace::{hash_lines, TRACE_FORMAT};
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

    /// Appends one event.
    pub fn push(&mut self, value: Value) {
        let line = value.to_string();
        hash_line(&mut self.hasher, &line);
        self.count += 1;
        if let Some(l) = self.lines.as_mut() {
            l.push(line);
        }
    }

    /// A simulation event: `t` ms since start, `node`, `kind` and fields.
    pub fn event(&mut self, t: u64, node: &str, kind: &str, fields: Value) {
        crate::observe::log::set_sim_time(t);
        tracing::debug!(target: crate::observe::log::TRACE_TARGET, node, kind, "{fields}");
        let mut m = Map::new();
        m.insert("t".into(), json!(t));
        m.insert("node".into(), json!(node));
        m.insert("kind".into(), json!(kind));
        if let Value::Object(f) = fields {
            for (k, v) in f {
                m.insert(k, v);
            }
        }
        self.push(Value::Object(m));
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
        let t = e.at.saturating_sub(start_ms);
        let node = e.host.as_str().to_string();
        match &e.what {
            What::Started => self.event(t, &node, "host-started", json!({})),
            What::Request { id, request } => {
                self.endpoints
                    .insert((node.clone(), true, *id), request.endpoint.clone());
                let v = request_fields(request);
                let mut v = v;
                v["id"] = json!(id);
                self.event(t, &node, "request", v);
            }
            What::Rejected { status, reason } => self.event(
                t,
                &node,
                "http-rejected",
                json!({"status": status, "reason": reason}),
            ),
            What::PeerRefused { reason } => {
                self.event(t, &node, "peer-refused", json!({ "reason": reason }))
            }
            What::Outcome { token, result } => {
                let ep = self.endpoints.remove(&(node.clone(), false, *token));
                let v = match result {
                    Ok(r) => {
                        let mut v = response_fields(ep.as_ref(), r);
                        v["token"] = json!(token);
                        v
                    }
                    Err(err) => json!({"token": token, "error": err.to_string()}),
                };
                self.event(t, &node, "outcome", v);
            }
            What::FromClient { client, message } => self.event(
                t,
                &node,
                "from-client",
                from_client(client.as_str(), message),
            ),
            What::Tick => self.event(t, &node, "tick", json!({})),
            What::Output(ServerOutput::Respond { id, response }) => {
                let ep = self.endpoints.remove(&(node.clone(), true, *id));
                let mut v = response_fields(ep.as_ref(), response);
                v["id"] = json!(id);
                self.event(t, &node, "respond", v);
            }
            What::Output(ServerOutput::Send { token, request }) => {
                self.endpoints
                    .insert((node.clone(), false, *token), request.endpoint.clone());
                let mut v = request_fields(request);
                v["token"] = json!(token);
                self.event(t, &node, "send", v);
            }
            What::Output(ServerOutput::ToClient { client, message }) => {
                let mut v = to_client(message);
                v["client"] = json!(client.as_str());
                self.event(t, &node, "to-client", v);
            }
        }
    }
}

fn request_fields(r: &Request) -> Value {
    json!({
        "from": r.from.as_str(),
        "to": r.to.as_str(),
        "endpoint": r.endpoint.name(),
        "path": r.endpoint.path(),
        "bytes": r.body.len(),
        "summary": request_summary(&r.endpoint, &r.body),
    })
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

fn response_fields(endpoint: Option<&Endpoint>, r: &Response) -> Value {
    let summary = match (endpoint, r.status) {
        (_, s) if !(200..300).contains(&s) => quote(&r.body),
        (Some(Endpoint::KeyMaterial(_)), _) => sum::<KeyMaterialResponse>(&r.body),
        (Some(Endpoint::Update(_)), _) => sum::<UpdateRoomResponse>(&r.body),
        (Some(Endpoint::SubmitMessage(_)), _) => sum::<SubmitMessageResponse>(&r.body),
        (Some(Endpoint::GroupInfo(_)), _) => sum::<GroupInfoResponse>(&r.body),
        (Some(Endpoint::Notify(_) | Endpoint::Handoff(_) | Endpoint::Fence(_)), _) => String::new(),
        (None, _) => format!("{} bytes", r.body.len()),
    };
    json!({
        "endpoint": endpoint.map(Endpoint::name),
        "status": r.status,
        "summary": summary,
    })
}

fn from_client(client: &str, m: &ClientToProvider) -> Value {
    match m {
        ClientToProvider::Relay {
            corr,
            endpoint,
            body,
        } => json!({
            "client": client, "message": "relay", "corr": corr,
            "endpoint": endpoint.name(), "path": endpoint.path(),
            "summary": request_summary(endpoint, body),
        }),
        ClientToProvider::PublishKeyPackages { key_packages } => json!({
            "client": client, "message": "publish-key-packages", "count": key_packages.len(),
        }),
        ClientToProvider::LeaveRoom { room } => json!({
            "client": client, "message": "leave-room", "room": room.as_str(),
        }),
        ClientToProvider::TakeOver { corr, room, .. } => json!({
            "client": client, "message": "take-over", "corr": corr, "room": room.as_str(),
        }),
        ClientToProvider::CreateRoom { corr, room, .. } => json!({
            "client": client, "message": "create-room", "corr": corr, "room": room.as_str(),
        }),
        ClientToProvider::ForkedCommit { room, body } => json!({
            "client": client, "message": "forked-commit", "room": room.as_str(),
            "summary": request_summary(&Endpoint::Update(room.clone()), body),
        }),
    }
}

fn to_client(m: &ProviderToClient) -> Value {
    match m {
        ProviderToClient::Reply { corr, response } => json!({
            "message": "reply", "corr": corr, "status": response.status,
            "bytes": response.body.len(),
        }),
        ProviderToClient::Deliver { room, fanout } => json!({
            "message": "deliver", "room": room.as_str(),
            "summary": match decode_exact::<FanoutMessage>(fanout) {
                Ok(f) => f.summary(),
                Err(e) => format!("undecodable: {e}"),
            },
        }),
    }
}
