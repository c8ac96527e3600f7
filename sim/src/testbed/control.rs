//! The node's control API: JSON over plain HTTP/1.1 on a loopback port, through which a
//! testbed (or a person with curl) creates clients, issues scenario steps to them and
//! reads the node's events.
//!
//! | request | body | answer |
//! | --- | --- | --- |
//! | `GET /status` | | `{"provider", "clients": [uri...]}` |
//! | `POST /clients` | `{"user": "alice", "device": "1", "key_packages": 8}` | `{"client": uri}` |
//! | `POST /step` | `{"client": "alice" or "alice/2", "room": uri, "hub": domain, "users": {"bob": user uri}, "preset": "cooperative", "op": {"op": "send", "text": "hi"}}` | `{"ok": true}` |
//! | `GET /events?since=N` | | `{"events": [line...], "next": M}` |
//! | `GET /view?client=alice&room=URI` | | `{"epoch", "members": [uri...]}` or `null` |
//! | `POST /online` | `{"client": "alice/1", "online": false}` | `{"ok": true}`: an offline client neither sends nor receives; its provider keeps its mail |
//! | `GET /converge?room=URI` | | the node's state for a convergence check: `{"provider", "waiting", "fanout_idle", "hub", "clients": [...]}` |
//!
//! A step may carry `"step": N` (its index in the scenario's script); it is written into
//! the journal's `op` line so that a merged trace can settle steps.
//!
//! `op` is a step of a scenario script (`crate::scenario::Op`), turned into the client's
//! command by the same function the simulator uses ([`crate::world::run::op_command`]). Errors
//! are `4xx` with `{"error": "..."}` naming what was wrong.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use mimi_reports::records::trace::HubView;
use nodes::ids::{ClientUri, Domain, RoomUri, UserUri};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::node::Node;
use super::store::{ClientInput, StepInput};
use crate::observe::record::{op_line, What};
use crate::scenario::{Op, Preset};
use crate::world::run::KEY_PACKAGES_PER_CLIENT;

/// Largest control request body.
const MAX_CONTROL_BODY: usize = 1 << 20;
/// Longest a control connection is kept.
const CONTROL_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Most KeyPackages a client may be told to publish.
const MAX_KEY_PACKAGES: usize = 64;

type Answer = (StatusCode, Value);

fn bad(status: StatusCode, msg: impl Into<String>) -> Answer {
    (status, json!({ "error": msg.into() }))
}

/// Serves the control API until the process ends.
pub async fn serve(listener: std::net::TcpListener, node: Rc<RefCell<Node>>) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control API could not start: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("control API accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(handle(req, &node).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONTROL_CONNECTION_TIMEOUT, conn).await;
        });
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    node: &RefCell<Node>,
) -> hyper::Response<Full<Bytes>> {
    let (status, body) = answer(req, node).await;
    let mut out = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *out.status_mut() = status;
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    out
}

fn query(req: &hyper::Request<hyper::body::Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

/// Decodes `%XX` escapes (URIs in query strings: `mimi%3A%2F%2F...`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(req: hyper::Request<hyper::body::Incoming>, node: &RefCell<Node>) -> Answer {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let q = query(&req);
    let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("could not read body: {e}")),
    };
    let mut node = node.borrow_mut();
    match (method, path.as_str()) {
        (Method::GET, "/status") => (
            StatusCode::OK,
            json!({
                "provider": node.domain.as_str(),
                "clients": node.clients.keys().map(ClientUri::as_str).collect::<Vec<_>>(),
            }),
        ),
        (Method::GET, "/events") => {
            let since = match q.get("since").map(|s| s.parse::<u64>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return bad(StatusCode::BAD_REQUEST, "since must be a number"),
            };
            match node.events_since(since) {
                Some((lines, next)) => {
                    let events: Vec<Value> = lines
                        .iter()
                        .filter_map(|l| serde_json::from_str(l).ok())
                        .collect();
                    (StatusCode::OK, json!({ "events": events, "next": next }))
                }
                None => bad(
                    StatusCode::GONE,
                    format!("events before {since} are only in events.jsonl now"),
                ),
            }
        }
        (Method::GET, "/view") => view(&node, &q),
        (Method::POST, "/clients") => create_client(&mut node, &body),
        (Method::POST, "/step") => step(&mut node, &body),
        (Method::POST, "/online") => online(&mut node, &body),
        (Method::GET, "/converge") => converge(&node, &q),
        (m, p) => bad(
            StatusCode::NOT_FOUND,
            format!("no control endpoint {m} {p} (see GET /status, /events, /view, /converge; POST /clients, /step, /online)"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    user: String,
    #[serde(default = "first_device")]
    device: String,
    #[serde(default = "key_packages")]
    key_packages: usize,
}
fn first_device() -> String {
    "1".into()
}
fn key_packages() -> usize {
    KEY_PACKAGES_PER_CLIENT
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Answer> {
    serde_json::from_slice(body)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

fn create_client(node: &mut Node, body: &[u8]) -> Answer {
    let req: NewClient = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if req.key_packages > MAX_KEY_PACKAGES {
        return bad(
            StatusCode::BAD_REQUEST,
            format!("key_packages at most {MAX_KEY_PACKAGES}"),
        );
    }
    let uri = match UserUri::new(&node.domain, &req.user).and_then(|u| u.client(&req.device)) {
        Ok(u) => u,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad user or device: {e}")),
    };
    if node.clients.contains_key(&uri) {
        return bad(StatusCode::CONFLICT, format!("client {uri} exists already"));
    }
    // A scenario's client is configured and publishes as in the simulator (the same on
    // replay: `create_client` reads the node's `--scenario`).
    let out = node.create_client(&uri, req.key_packages);
    let input = ClientInput::Create {
        client: uri.clone(),
        key_packages: req.key_packages,
    };
    let sent = [(uri.clone(), out)];
    node.commit(Some(input), None, &sent, Vec::new());
    let [(_, out)] = sent;
    let domain = node.domain.clone();
    node.event(
        domain.as_str(),
        What::ClientCreated {
            client: uri.as_str().to_string(),
        },
    );
    node.send(&uri, out);
    (StatusCode::OK, json!({ "client": uri.as_str() }))
}

/// "alice" → this provider's `alice/1`; "alice/2" → device 2; a full client URI as is.
fn client_uri(node: &Node, name: &str) -> Result<ClientUri, String> {
    if name.starts_with("mimi://") {
        return name.parse().map_err(|e| format!("bad client {name}: {e}"));
    }
    let (user, device) = name.split_once('/').unwrap_or((name, "1"));
    UserUri::new(&node.domain, user)
        .and_then(|u| u.client(device))
        .map_err(|e| format!("bad client {name}: {e}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepRequest {
    client: String,
    room: String,
    hub: String,
    #[serde(default)]
    users: BTreeMap<String, String>,
    #[serde(default)]
    preset: Preset,
    op: Op,
    /// The step's index in the scenario's script (journalled with the op).
    #[serde(default)]
    step: Option<usize>,
}

fn step(node: &mut Node, body: &[u8]) -> Answer {
    let req: StepRequest = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let c = match client_uri(node, &req.client) {
        Ok(c) => c,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    if !node.clients.contains_key(&c) {
        return bad(
            StatusCode::NOT_FOUND,
            format!("{c} is not a client of this node (POST /clients first)"),
        );
    }
    let room: RoomUri = match req.room.parse() {
        Ok(r) => r,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("bad room {}: {e}", req.room),
            )
        }
    };
    let hub = match Domain::new(&req.hub) {
        Ok(d) => d,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad hub {}: {e}", req.hub)),
    };
    let mut users = BTreeMap::new();
    for (name, uri) in &req.users {
        match uri.parse::<UserUri>() {
            Ok(u) => users.insert(name.clone(), u),
            Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad user {uri}: {e}")),
        };
    }
    // The external senders of every provider the step may name: the hub, the peers, us.
    let mut senders = vec![hub.clone(), node.domain.clone()];
    if let Ok(peers) = super::peers::PeersFile::load(&node.peers_path) {
        senders.extend(peers.providers.keys().filter_map(|d| Domain::new(d).ok()));
    }
    senders.sort();
    senders.dedup();
    node.event(c.as_str(), op_line(&req.op, req.step.map(|i| i as u64)));
    let op = serde_json::to_value(&req.op).unwrap_or(Value::Null);
    let step = StepInput {
        client: c.clone(),
        room,
        hub,
        users,
        senders,
        preset: req.preset,
        op: op.to_string(),
    };
    let Some(cmd) = node.step_command(&step) else {
        let reason = "the step names a user not in `users` or an unknown provider";
        node.event(
            c.as_str(),
            What::OpRefused {
                reason: reason.to_string(),
            },
        );
        return bad(StatusCode::BAD_REQUEST, reason);
    };
    let Some(client) = node.clients.get_mut(&c) else {
        return bad(StatusCode::NOT_FOUND, format!("{c} is gone"));
    };
    let now = node.clock.now();
    let result = client.command(now, cmd);
    // Journalled also when refused: replaying it leaves the client as it is now.
    let out = result.as_ref().map(Vec::clone).unwrap_or_default();
    let sent = [(c.clone(), out)];
    let events = vec![(c.clone(), node.take_events(&c))];
    node.commit(Some(ClientInput::Step { now, step }), None, &sent, events);
    let [(_, out)] = sent;
    match result {
        Ok(_) => {
            node.send(&c, out);
            (StatusCode::OK, json!({ "ok": true }))
        }
        Err(e) => {
            let reason = e.to_string();
            node.event(
                c.as_str(),
                What::OpRefused {
                    reason: reason.clone(),
                },
            );
            bad(
                StatusCode::CONFLICT,
                format!("{c} refused the step: {reason}"),
            )
        }
    }
}

fn view(node: &Node, q: &BTreeMap<String, String>) -> Answer {
    let (Some(client), Some(room)) = (q.get("client"), q.get("room")) else {
        return bad(StatusCode::BAD_REQUEST, "view needs ?client=...&room=...");
    };
    let c = match client_uri(node, client) {
        Ok(c) => c,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let room: RoomUri = match room.parse() {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad room {room}: {e}")),
    };
    let Some(core) = node.clients.get(&c) else {
        return bad(
            StatusCode::NOT_FOUND,
            format!("{c} is not a client of this node"),
        );
    };
    let v = core.room_view(&room).map(|v| {
        json!({
            "epoch": v.epoch,
            "members": v.members.iter().map(ClientUri::as_str).collect::<Vec<_>>(),
        })
    });
    (StatusCode::OK, v.unwrap_or(Value::Null))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnlineRequest {
    client: String,
    online: bool,
}

fn online(node: &mut Node, body: &[u8]) -> Answer {
    let req: OnlineRequest = match parse(body) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let c = match client_uri(node, &req.client) {
        Ok(c) => c,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    if !node.clients.contains_key(&c) {
        return bad(
            StatusCode::NOT_FOUND,
            format!("{c} is not a client of this node"),
        );
    }
    node.event(
        c.as_str(),
        if req.online {
            What::Online
        } else {
            What::Offline
        },
    );
    node.set_online(&c, req.online);
    (StatusCode::OK, json!({ "ok": true }))
}

/// `GET /converge?room=...`: what a convergence check needs of this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvergeAnswer {
    pub provider: String,
    /// Client messages the server core has not taken yet.
    pub waiting: u64,
    /// Whether the hub's fan-out is delivered.
    pub fanout_idle: bool,
    /// The room as this node's server core published it (none if it never saw it).
    pub hub: Option<HubView>,
    pub clients: Vec<ClientConverge>,
}

/// One client of the node, for `/converge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConverge {
    pub client: String,
    pub online: bool,
    /// Messages waiting while it is offline, both ways.
    pub mail: u64,
    /// No operation of it in flight in the room.
    pub idle: bool,
    /// Its view of the room, if it is in it.
    pub view: Option<ConvergeView>,
}

/// A client's view of the room, for `/converge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvergeView {
    pub epoch: u64,
    /// Hex.
    pub group_context: String,
    pub members: Vec<String>,
    /// The participants it sees, banned users left out.
    pub participants: Vec<String>,
}

/// What a convergence check needs of this node: client messages the core has not taken
/// yet, whether the hub's fan-out is delivered, the hub's view of the room, and per
/// client whether it is online with no mail, idle, and its view.
fn converge(node: &Node, q: &BTreeMap<String, String>) -> Answer {
    let Some(room) = q.get("room") else {
        return bad(StatusCode::BAD_REQUEST, "converge needs ?room=...");
    };
    let room: RoomUri = match room.parse() {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad room {room}: {e}")),
    };
    let clients = node
        .clients
        .iter()
        .map(|(c, core)| ClientConverge {
            client: c.as_str().to_string(),
            online: !node.offline.contains_key(c),
            mail: node
                .offline
                .get(c)
                .map_or(0, |(o, m)| (o.len() + m.len()) as u64),
            idle: core.is_idle(&room),
            view: core.room_view(&room).map(|v| ConvergeView {
                epoch: v.epoch,
                group_context: hex::encode(&v.group_context),
                members: v.members.iter().map(|c| c.as_str().to_string()).collect(),
                participants: v
                    .state
                    .as_ref()
                    .map(|st| {
                        st.participants
                            .iter()
                            .filter(|p| !st.is_banned(&p.user))
                            .map(|p| p.user.as_str().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        })
        .collect();
    let answer = ConvergeAnswer {
        provider: node.domain.as_str().to_string(),
        waiting: node.handle.waiting_from_clients() as u64,
        fanout_idle: node.sink.fanout_idle(),
        hub: node.sink.views().get(&room).cloned(),
        clients,
    };
    (
        StatusCode::OK,
        serde_json::to_value(answer).unwrap_or(Value::Null),
    )
}
