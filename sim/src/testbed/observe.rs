//! What a node journals besides its host's and clients' events, so that the testbed
//! runner can feed the simulator's oracles from the merged trace ([`super::merge`]): the
//! same information the simulator's driver reads from the cores between steps.
//!
//! * `hub` / `follower` lines: the server core's events, as in a simulator trace.
//! * `hub-view` lines: after a core call that changed it, the hub's view of a room it
//!   hosts (sequencing, generation, epoch, GroupContext, members, committed participant
//!   list).
//! * `hub-log` lines: every new entry of a room's hub log (the FanoutMessage, hex).
//! * `client-view` lines: a client's view of a room after it joined or changed epoch.
//! * `deliver` lines: a FanoutMessage a provider hands to its client (hex).
//!
//! [`Observed`] wraps the server core; the host adapter calls it, it records into a
//! [`Sink`] that the node flushes into its journal.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use mimi_reports::records::trace::{ClientView, HubView, What};
use nodes::client::core::{ClientEvent, RoomView};
use nodes::ids::{ClientUri, Domain, RoomUri};
use nodes::io::{
    ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response, ServerCore,
    ServerOutput, Token, TransportError,
};
use nodes::server::{Server, ServerEvent};
use serde_json::Value;

use super::tls::wall_ms;

/// What the core did that the node has not journalled yet, and its latest hub state.
#[derive(Default)]
pub struct SinkState {
    /// (t, event), in the order they happened.
    pub lines: Vec<(u64, What)>,
    /// Per room: hub log entries already journalled.
    logged: BTreeMap<RoomUri, usize>,
    /// Per room: the last `hub-view` journalled.
    views: BTreeMap<RoomUri, HubView>,
    /// Whether every fan-out of the hub is delivered (for the runner's convergence check).
    pub fanout_idle: bool,
}

/// Shared between the wrapped core (in the host task) and the node (one thread).
#[derive(Clone, Default)]
pub struct Sink(pub Rc<RefCell<SinkState>>);

impl Sink {
    /// The lines recorded since the last call.
    pub fn take(&self) -> Vec<(u64, What)> {
        std::mem::take(&mut self.0.borrow_mut().lines)
    }
    /// The latest `hub-view` per room.
    pub fn views(&self) -> BTreeMap<RoomUri, HubView> {
        self.0.borrow().views.clone()
    }
    pub fn fanout_idle(&self) -> bool {
        self.0.borrow().fanout_idle
    }
}

/// The server core, observed after every input.
pub struct Observed {
    core: Server,
    sink: Sink,
}

impl Observed {
    pub fn new(core: Server, sink: Sink) -> Self {
        let o = Observed { core, sink };
        o.sink.0.borrow_mut().fanout_idle = true;
        o
    }

    /// The wrapped core.
    pub fn core(&self) -> &Server {
        &self.core
    }

    /// Wraps a core rebuilt from the journal: the rooms, log entries and views it has
    /// were journalled before the restart and are not recorded again.
    pub fn resumed(core: Server, sink: Sink) -> Self {
        let mut o = Observed::new(core, sink);
        o.observe(Vec::new());
        o.sink.take();
        o
    }

    fn observe(&mut self, out: Vec<ServerOutput>) -> Vec<ServerOutput> {
        let t = wall_ms();
        let mut st = self.sink.0.borrow_mut();
        // The hub's view first: an `Accepted` commit is judged against the view after it.
        for r in self.core.room_views() {
            let room = r.room;
            let from = st.logged.get(room).copied().unwrap_or(0).min(r.log_len);
            for e in r.log_from(from) {
                st.lines.push((
                    t,
                    What::HubLog {
                        room: room.as_str().to_string(),
                        generation: r.log_generation,
                        seq: e.seq,
                        epoch: e.epoch,
                        fanout: hex::encode(e.fanout),
                    },
                ));
            }
            st.logged.insert(room.clone(), r.log_len);
            let group = r.group();
            let view = HubView {
                room: room.as_str().to_string(),
                sequencing: r.sequencing,
                generation: Some(r.generation),
                epoch: group.as_ref().map(|g| g.epoch),
                group_context: group.as_ref().map(|g| hex::encode(&g.group_context)),
                members: group.map(|g| {
                    g.members
                        .into_iter()
                        .map(|c| c.as_str().to_string())
                        .collect()
                }),
                participants: r
                    .committed
                    .participants
                    .iter()
                    .map(|p| (p.user.as_str().to_string(), p.role))
                    .collect(),
            };
            if st.views.get(room) != Some(&view) {
                st.lines.push((t, What::HubView(view.clone())));
                st.views.insert(room.clone(), view);
            }
        }
        for e in self.core.take_events() {
            let what = match &e {
                ServerEvent::Hub(h) => What::Hub {
                    event: serde_json::to_value(h).unwrap_or(Value::Null),
                },
                ServerEvent::Follower(f) => What::Follower {
                    event: serde_json::to_value(f).unwrap_or(Value::Null),
                },
            };
            st.lines.push((t, what));
        }
        st.fanout_idle = self.core.hub_fanout_idle();
        out
    }
}

impl ServerCore for Observed {
    fn domain(&self) -> &Domain {
        self.core.domain()
    }
    fn on_request(&mut self, now: Millis, id: RequestId, request: Request) -> Vec<ServerOutput> {
        let out = self.core.on_request(now, id, request);
        self.observe(out)
    }
    fn on_response(
        &mut self,
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    ) -> Vec<ServerOutput> {
        let out = self.core.on_response(now, token, result);
        self.observe(out)
    }
    fn on_client(
        &mut self,
        now: Millis,
        client: &ClientUri,
        message: ClientToProvider,
    ) -> Vec<ServerOutput> {
        let out = self.core.on_client(now, client, message);
        self.observe(out)
    }
    fn poll_timeout(&self) -> Option<Millis> {
        self.core.poll_timeout()
    }
    fn on_tick(&mut self, now: Millis) -> Vec<ServerOutput> {
        let out = self.core.on_tick(now);
        self.observe(out)
    }
    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        let out = self.core.on_restart(now);
        self.observe(out)
    }
}

/// A client's view of a room as a `client-view` line's fields (lossless for the oracles:
/// the room state travels as its `app_data_dictionary` encoding).
pub fn view_fields(room: &RoomUri, v: &RoomView) -> ClientView {
    let dict = |d: &BTreeMap<u16, Vec<u8>>| -> BTreeMap<String, String> {
        d.iter()
            .map(|(k, v)| (k.to_string(), hex::encode(v)))
            .collect()
    };
    ClientView {
        room: room.as_str().to_string(),
        epoch: v.epoch,
        group_context: hex::encode(&v.group_context),
        epoch_authenticator: hex::encode(&v.epoch_authenticator),
        dictionary: dict(&v.dictionary),
        members: v.members.iter().map(|c| c.as_str().to_string()).collect(),
        state: v.state.as_ref().map(|s| dict(&s.to_dictionary())),
    }
}

/// The room a client event changes the view of (joined or a new epoch).
pub fn view_changed(e: &ClientEvent) -> Option<&RoomUri> {
    match e {
        ClientEvent::Joined { room, .. } | ClientEvent::Epoch { room, .. } => Some(room),
        _ => None,
    }
}

/// A `deliver` line for a provider→client message (`None` for replies).
pub fn deliver_fields(c: &ClientUri, m: &ProviderToClient) -> Option<What> {
    match m {
        ProviderToClient::Deliver { room, fanout } => Some(What::Deliver {
            client: c.as_str().to_string(),
            room: room.as_str().to_string(),
            fanout: hex::encode(fanout),
        }),
        ProviderToClient::Reply { .. } => None,
    }
}
