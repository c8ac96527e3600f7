//! A provider's server: its hub role (rooms it hosts) and its follower role (its users,
//! rooms hosted elsewhere) behind one MIMI endpoint, as a [`ServerCore`].
//!
//! The hub's fan-out to its own provider does not cross the network: it goes straight to
//! the follower role. A client's request for a room hosted here is handled locally;
//! otherwise it is relayed to the room's hub (the authority of the room URI).
//!
//! Each role is the node the setup made it ([`roles`]): the honest [`Hub`] and
//! [`Follower`] unless planted bugs ([`Server::with_bugs`]) or an adversary
//! ([`Server::with_adversary`]) wrap them; this file only drives the roles.

use std::collections::BTreeMap;

use crate::adversary::{Adversary, AdversaryAction};
use crate::endpoint::Endpoint;
use crate::follower::{Delivery, Follower, FollowerEvent, FollowerRole};
use crate::hub::{EnforcementConfig, Hub, HubEvent, ViewError};
use crate::ids::{ClientUri, Domain, RoomUri};
use crate::io::{
    status, ClientToProvider, Millis, ProviderToClient, Request, RequestId, Response, ServerCore,
    ServerOutput, Token, TransportError,
};
use crate::mls::SeededProvider;
use crate::planted::Bugs;
use crate::wire::{decode_exact, KeyMaterialRequest};

mod hub_transfer;
pub mod roles;
pub mod snapshot;
pub mod view;
pub use hub_transfer::{TransferMode, MAX_MOVED_HOPS};
pub use roles::{FollowerNode, HubNode};
pub use snapshot::{ServerSnapshot, SnapshotError};
pub use view::{HubGroupView, HubRoomView, LoggedFanout};

/// What an outgoing request was for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Pending {
    /// Hub fan-out.
    Notify { room: RoomUri, to: Domain },
    /// A client's request relayed to a remote hub (kept to follow a `421` to the
    /// room's new hub, x-hub-transfer).
    Relay {
        client: ClientUri,
        corr: u64,
        to: Domain,
        endpoint: Endpoint,
        body: Vec<u8>,
        hops: u8,
    },
    /// x-hub-transfer: a handoff sent to the room's new hub.
    Handoff { room: RoomUri },
    /// x-hub-transfer: a fence sent to `to`.
    Fence {
        room: RoomUri,
        generation: u64,
        to: Domain,
    },
    /// `/keyMaterial` forwarded by this hub for a follower's request.
    KeyForward { id: RequestId, target: Domain },
    /// A request of the follower role's own ([`crate::follower::BeforeRelay::to_hub`]).
    FollowerOwn { room: RoomUri },
    /// `/keyMaterial` forwarded by this hub for a local client's request.
    ClientKeyForward {
        client: ClientUri,
        corr: u64,
        target: Domain,
    },
}

/// Events of both roles, for the trace and the oracles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ServerEvent {
    Hub(HubEvent),
    Follower(FollowerEvent),
}

/// One provider's server.
pub struct Server {
    domain: Domain,
    /// The hub role: the honest [`Hub`], or a wrapper around it. Readers outside the
    /// core use [`Server::room_view`] and [`Server::hub_fanout_idle`].
    hub: HubNode,
    /// The follower role: the honest [`Follower`], or a wrapper around it.
    follower: FollowerNode,
    next_token: Token,
    pending: BTreeMap<Token, Pending>,
    /// x-hub-transfer: directory, handoff and fence timers.
    transfer: hub_transfer::TransferState,
    /// The time of the last flush (every input ends with one): timers due by then were
    /// served or wait on an input ([`ServerCore::poll_timeout`]).
    flushed_at: Millis,
}

impl Server {
    pub fn new(domain: Domain, run_seed: u64, enforcement: EnforcementConfig) -> Self {
        let hub = Hub::new(domain.clone(), run_seed, enforcement);
        let domain_for_transfer = domain.clone();
        let follower = Follower::new(
            domain.clone(),
            SeededProvider::for_node(run_seed, &format!("follower:{domain}")),
        );
        Server {
            domain,
            hub: HubNode::Honest(hub),
            follower: FollowerNode::Honest(follower),
            next_token: 1,
            pending: BTreeMap::new(),
            transfer: hub_transfer::TransferState::new(run_seed, &domain_for_transfer),
            flushed_at: 0,
        }
    }

    /// An independent deep copy of this server: both roles, every room (the hub's public
    /// views through [`crate::hub::public_view::PublicView::snapshot`]), the seeded
    /// streams at their current positions, open requests and queued events. The copy
    /// and the original go on identically given the same inputs. Used to restart from a
    /// built state many times (the hub fuzz target) without rebuilding it.
    pub fn checkpoint(&self) -> Result<Server, ViewError> {
        Ok(Server {
            domain: self.domain.clone(),
            hub: self.hub.checkpoint()?,
            follower: self.follower.checkpoint_role(),
            next_token: self.next_token,
            pending: self.pending.clone(),
            transfer: self.transfer.checkpoint(),
            flushed_at: self.flushed_at,
        })
    }

    /// Make this provider malicious in its follower role (see [`crate::adversary`]):
    /// its follower becomes a [`crate::adversary::MaliciousFollower`] wrapping the one it
    /// was; `None` keeps it. Set once. Its clients get the same with
    /// [`crate::client::core::Client::set_adversary`].
    pub fn with_adversary(mut self, adversary: Option<Adversary>) -> Self {
        self.follower = self.follower.turn(adversary);
        self
    }

    /// The adversary this provider follows.
    pub fn adversary(&self) -> Option<Adversary> {
        self.follower.adversary()
    }

    /// What this provider did as an adversary, in order.
    pub fn adversary_actions(&self) -> &[AdversaryAction] {
        self.follower.adversary_actions()
    }

    /// What this provider's hub publishes about `room`; `None` if its hub does not
    /// host the room.
    pub fn room_view(&self, room: &RoomUri) -> Option<HubRoomView<'_>> {
        let r = self.hub.room(room)?;
        Some(HubRoomView::of(&self.hub, &self.domain, r))
    }

    /// What this provider's hub publishes about each room it hosts, in room order.
    pub fn room_views(&self) -> impl Iterator<Item = HubRoomView<'_>> {
        self.hub
            .rooms()
            .map(|r| HubRoomView::of(&self.hub, &self.domain, r))
    }

    /// Whether this provider's hub has delivered its whole log of every room it hosts:
    /// no `/notify` in flight, none left to send (P§5.5).
    pub fn hub_fanout_idle(&self) -> bool {
        self.hub.fanout_idle()
    }

    /// The hub's `external_senders` entry, for a room created with this provider as its
    /// hub (RFC 9420 §12.1.8.1; P§4.1: the hub may propose as an external sender).
    pub fn hub_external_sender(&self) -> openmls::prelude::ExternalSender {
        self.hub.external_sender()
    }

    /// The honest hub beneath the hub role, for the nodes crate's tests and fuzz target,
    /// which check the hub's own state; the simulator reads [`Server::room_view`].
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The honest hub beneath the hub role, to drive it directly in the nodes crate's
    /// tests.
    pub fn hub_mut(&mut self) -> &mut Hub {
        &mut self.hub
    }

    /// The honest follower of the follower role (subscriptions, KeyPackages).
    pub fn follower(&self) -> &Follower {
        self.follower.follower()
    }

    /// The honest follower of the follower role, to change its state.
    pub fn follower_mut(&mut self) -> &mut Follower {
        self.follower.follower_mut()
    }

    /// Follow the room-state variant `mode` in the hub role (see
    /// [`crate::room::hub_only`]; followers need no setting).
    pub fn with_room_state(mut self, mode: crate::room::RoomStateMode) -> Self {
        self.hub.set_room_state_mode(mode);
        self
    }

    /// Plant deliberate bugs (see [`crate::planted`]) in the hub and follower roles: a
    /// [`crate::planted::FaultyHub`] and a [`crate::planted::FaultyFollower`] wrapping
    /// the honest ones, where `bugs` has bugs of that role.
    pub fn with_bugs(mut self, bugs: &Bugs) -> Self {
        self.hub = self.hub.plant(bugs);
        self.follower = self.follower.plant(bugs);
        self
    }

    /// Events of both roles since the last call (hub first).
    pub fn take_events(&mut self) -> Vec<ServerEvent> {
        let mut v: Vec<ServerEvent> = self
            .hub
            .take_events()
            .into_iter()
            .map(ServerEvent::Hub)
            .collect();
        v.extend(
            self.follower_mut()
                .take_events()
                .into_iter()
                .map(ServerEvent::Follower),
        );
        v
    }

    fn send(
        &mut self,
        out: &mut Vec<ServerOutput>,
        to: Domain,
        endpoint: Endpoint,
        body: Vec<u8>,
        p: Pending,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.pending.insert(token, p);
        out.push(ServerOutput::Send {
            token,
            request: Request {
                from: self.domain.clone(),
                to,
                endpoint,
                body,
            },
        });
    }

    fn reply(out: &mut Vec<ServerOutput>, client: ClientUri, corr: u64, response: Response) {
        out.push(ServerOutput::ToClient {
            client,
            message: ProviderToClient::Reply { corr, response },
        });
    }

    fn deliver(out: &mut Vec<ServerOutput>, deliveries: Vec<Delivery>) {
        for (client, message) in deliveries {
            out.push(ServerOutput::ToClient { client, message });
        }
    }

    /// A request of the follower role's own for `room`'s hub (the authority its URI
    /// names): answered locally if that is this provider, else sent; either way the
    /// answer goes back to the role.
    fn follower_request(
        &mut self,
        now: Millis,
        room: &RoomUri,
        endpoint: Endpoint,
        body: Vec<u8>,
        out: &mut Vec<ServerOutput>,
    ) {
        let hub = room.domain();
        if hub == self.domain {
            let own = self.domain.clone();
            if let Some(r) = self.local(now, &own, &endpoint, &body) {
                self.follower.hub_answered(room.clone(), r.status, r.body);
            }
        } else {
            self.send(
                out,
                hub,
                endpoint,
                body,
                Pending::FollowerOwn { room: room.clone() },
            );
        }
    }

    /// Hand accepted messages to the network (or, for our own provider, to the follower).
    fn flush(&mut self, now: Millis, out: &mut Vec<ServerOutput>) {
        self.flushed_at = self.flushed_at.max(now);
        self.drive_transfer(now, out);
        // Local deliveries can produce no further hub work, but loop defensively.
        for _ in 0..4 {
            let batch = self.hub.poll_notify(now);
            if batch.is_empty() {
                return;
            }
            for (room, to, body) in batch {
                if to == self.domain {
                    let (resp, deliveries) = self.follower.notify(&room, &body);
                    for (client, message) in deliveries {
                        out.push(ServerOutput::ToClient { client, message });
                    }
                    self.hub.notify_sent(&room, &to, 0);
                    self.hub
                        .notify_result(now, &room, &to, resp.status == status::CREATED);
                } else {
                    let token = self.next_token;
                    self.hub.notify_sent(&room, &to, token);
                    self.send(
                        out,
                        to.clone(),
                        Endpoint::Notify(room.clone()),
                        body,
                        Pending::Notify { room, to },
                    );
                }
            }
        }
    }

    /// KeyPackages of this provider's own users handed out for a room hosted here: the
    /// hub must know them like forwarded ones, or it refuses their Welcome
    /// (welcome-routing, P§5.2).
    fn record_local_key_material(&mut self, body: &[u8], response: &Response) {
        let hosted = Self::key_material_room(body).is_some_and(|r| self.hub.hosts(&r));
        if hosted && response.status == status::OK {
            let own = self.domain.clone();
            self.hub.record_key_material(&own, &response.body);
        }
    }
    /// A client's commit that takes the room's hub role over (x-hub-transfer §4).
    fn client_takeover(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
        body: &[u8],
    ) -> Response {
        self.follower_mut().subscribe(room, client);
        let own = self.domain.clone();
        if self.hub.sequencing(room) {
            // A resend after the takeover succeeded: the byte-identical commit
            // gets its original answer.
            self.hub.update(now, &own, room, body)
        } else {
            match self
                .hub
                .takeover(now, &own, room, group_info, ratchet_tree, body)
            {
                Ok(r) => r,
                Err(e) => Response::error(status::CONFLICT, e.to_string()),
            }
        }
    }

    /// A client creates a room of this provider, which hosts it.
    fn client_create_room(
        &mut self,
        client: &ClientUri,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Response {
        if room.domain() != self.domain {
            Response::error(
                status::BAD_REQUEST,
                format!("room {room} is not a room of {}", self.domain),
            )
        } else {
            match self.hub.create_room(room, client, group_info, ratchet_tree) {
                Ok(()) => {
                    self.follower_mut().subscribe(room, client);
                    Response::empty(status::OK)
                }
                Err(e) => Response::error(status::BAD_REQUEST, e),
            }
        }
    }

    /// A client's request for a MIMI endpoint, sent on to the room's hub (or answered
    /// here: key material of this provider's users when it is the hub).
    fn client_relay(
        &mut self,
        now: Millis,
        client: &ClientUri,
        corr: u64,
        endpoint: Endpoint,
        body: Vec<u8>,
        out: &mut Vec<ServerOutput>,
    ) {
        let room = match &endpoint {
            Endpoint::KeyMaterial(_) => Self::key_material_room(&body),
            e => e.room().cloned(),
        };
        let Some(room) = room else {
            Self::reply(
                out,
                client.clone(),
                corr,
                Response::error(status::BAD_REQUEST, "request names no room"),
            );
            return;
        };
        if !matches!(endpoint, Endpoint::KeyMaterial(_)) {
            self.follower_mut().subscribe(&room, client);
        }
        let before = self
            .follower
            .before_relay(now, client, &room, &endpoint, &body);
        for (to_hub, own_body) in before.to_hub {
            self.follower_request(now, &room, to_hub, own_body, out);
        }
        Self::deliver(out, before.deliveries);
        let hub = self.transfer.directory.hub_of(&room);
        let own = self.domain.clone();
        match &endpoint {
            Endpoint::KeyMaterial(user) if hub == own => {
                if user.domain() == own {
                    let r = self.follower.key_material(user, &body);
                    self.record_local_key_material(&body, &r);
                    Self::reply(out, client.clone(), corr, r);
                } else {
                    let target = user.domain();
                    self.send(
                        out,
                        target.clone(),
                        endpoint.clone(),
                        body,
                        Pending::ClientKeyForward {
                            client: client.clone(),
                            corr,
                            target,
                        },
                    );
                }
            }
            _ => self.route(now, out, client.clone(), corr, endpoint, body, 0),
        }
    }

    fn key_material_room(body: &[u8]) -> Option<RoomUri> {
        let req: KeyMaterialRequest = decode_exact(body).ok()?;
        RoomUri::from_bytes(req.tbs.room_id.as_bytes()).ok()
    }

    /// Send a client's request for a room to the room's hub as this provider's
    /// directory names it (x-hub-transfer), locally if that is this provider; a local
    /// `421` is followed like a remote one.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        now: Millis,
        out: &mut Vec<ServerOutput>,
        client: ClientUri,
        corr: u64,
        endpoint: Endpoint,
        body: Vec<u8>,
        hops: u8,
    ) {
        let room = match &endpoint {
            Endpoint::KeyMaterial(_) => Self::key_material_room(&body),
            e => e.room().cloned(),
        };
        let Some(room) = room else {
            Self::reply(
                out,
                client,
                corr,
                Response::error(status::BAD_REQUEST, "request names no room"),
            );
            return;
        };
        let hub = self.transfer.directory.hub_of(&room);
        let own = self.domain.clone();
        if hub != own {
            self.send(
                out,
                hub.clone(),
                endpoint.clone(),
                body.clone(),
                Pending::Relay {
                    client,
                    corr,
                    to: hub.clone(),
                    endpoint,
                    body,
                    hops,
                },
            );
            return;
        }
        let r = self
            .local(now, &own, &endpoint, &body)
            .unwrap_or_else(|| Response::error(status::NOT_FOUND, "unknown endpoint"));
        if hops < MAX_MOVED_HOPS && self.learn_moved(&own, &r).is_some() {
            self.route(now, out, client, corr, endpoint, body, hops + 1);
        } else {
            Self::reply(out, client, corr, r);
        }
    }

    fn local(
        &mut self,
        now: Millis,
        from: &Domain,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> Option<Response> {
        match endpoint {
            Endpoint::Update(room) if self.hub.hosts(room) => {
                Some(self.hub.update(now, from, room, body))
            }
            Endpoint::SubmitMessage(room) if self.hub.hosts(room) => {
                Some(self.hub.submit(now, from, room, body))
            }
            Endpoint::GroupInfo(room) if self.hub.hosts(room) => {
                Some(self.hub.group_info(from, room, body))
            }
            Endpoint::Update(r) | Endpoint::SubmitMessage(r) | Endpoint::GroupInfo(r)
                if self.transfer.directory.record(r).generation > 0 =>
            {
                // x-hub-transfer: the room moved here, the handoff has not arrived yet.
                Some(Response::error(
                    status::UNAVAILABLE,
                    format!("{} awaits the handoff of {r}", self.domain),
                ))
            }
            Endpoint::Update(r) | Endpoint::SubmitMessage(r) | Endpoint::GroupInfo(r) => {
                Some(Response::error(
                    status::NOT_FOUND,
                    format!("{} is not the hub of {r}", self.domain),
                ))
            }
            _ => None,
        }
    }
}

impl ServerCore for Server {
    fn domain(&self) -> &Domain {
        &self.domain
    }

    fn on_request(&mut self, now: Millis, id: RequestId, request: Request) -> Vec<ServerOutput> {
        let mut out = Vec::new();
        let from = request.from.clone();
        match &request.endpoint {
            Endpoint::Notify(room) if !self.accepts_notify(room, &from) => {
                let response = self.notify_refused(room);
                out.push(ServerOutput::Respond { id, response });
            }
            Endpoint::Handoff(room) => {
                let response = self.on_handoff(now, &from, room, &request.body);
                out.push(ServerOutput::Respond { id, response });
            }
            Endpoint::Fence(room) => {
                let response = self.on_fence(now, &from, room, &request.body);
                out.push(ServerOutput::Respond { id, response });
            }
            Endpoint::Notify(room) => {
                let (response, deliveries) = self.follower.notify(room, &request.body);
                out.push(ServerOutput::Respond { id, response });
                for (client, message) in deliveries {
                    out.push(ServerOutput::ToClient { client, message });
                }
            }
            Endpoint::KeyMaterial(user) if user.domain() == self.domain => {
                let response = self.follower.key_material(user, &request.body);
                self.record_local_key_material(&request.body, &response);
                out.push(ServerOutput::Respond { id, response });
            }
            Endpoint::KeyMaterial(user) => match Self::key_material_room(&request.body) {
                Some(room) if self.hub.hosts(&room) => {
                    let target = user.domain();
                    self.send(
                        &mut out,
                        target.clone(),
                        request.endpoint.clone(),
                        request.body.clone(),
                        Pending::KeyForward { id, target },
                    );
                }
                _ => out.push(ServerOutput::Respond {
                    id,
                    response: Response::error(
                        status::NOT_FOUND,
                        "keyMaterial for a user elsewhere must name a room hosted here (P§5.2)",
                    ),
                }),
            },
            e => {
                let response = self
                    .local(now, &from, e, &request.body)
                    .unwrap_or_else(|| Response::error(status::NOT_FOUND, "unknown endpoint"));
                out.push(ServerOutput::Respond { id, response });
            }
        }
        self.flush(now, &mut out);
        out
    }

    fn on_response(
        &mut self,
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    ) -> Vec<ServerOutput> {
        let mut out = Vec::new();
        match self.pending.remove(&token) {
            Some(Pending::Notify { room, to }) => {
                // x-hub-transfer: a follower that follows a newer hub refuses with 421;
                // this hub stops delivering to it (it no longer takes our log). One that
                // has not learned about this hub yet gets the /notify again later.
                let mine = self.hub.generation(&room).unwrap_or(0);
                let ok = matches!(&result, Ok(r) if r.status == status::CREATED
                    || crate::transfer::HubMoved::of_response(r)
                        .is_some_and(|m| m.hub.generation > mine));
                self.hub.notify_result(now, &room, &to, ok);
            }
            Some(Pending::Relay {
                client,
                corr,
                to,
                endpoint,
                body,
                hops,
            }) => {
                let response =
                    result.unwrap_or_else(|e| Response::error(status::UNAVAILABLE, e.to_string()));
                match self.learn_moved(&to, &response) {
                    Some(_) if hops < MAX_MOVED_HOPS => {
                        self.route(now, &mut out, client, corr, endpoint, body, hops + 1);
                    }
                    _ => Self::reply(&mut out, client, corr, response),
                }
            }
            Some(p @ (Pending::Handoff { .. } | Pending::Fence { .. })) => {
                let ok = matches!(&result, Ok(r) if r.status == status::OK);
                self.transfer_answered(now, &p, ok);
            }
            Some(Pending::FollowerOwn { room }) => {
                let (status, body) = match result {
                    Ok(r) => (r.status, r.body),
                    Err(e) => (status::UNAVAILABLE, e.to_string().into_bytes()),
                };
                self.follower.hub_answered(room, status, body);
            }
            Some(Pending::KeyForward { id, target }) => {
                let response =
                    result.unwrap_or_else(|e| Response::error(status::UNAVAILABLE, e.to_string()));
                if response.status == status::OK {
                    self.hub.record_key_material(&target, &response.body);
                }
                out.push(ServerOutput::Respond { id, response });
            }
            Some(Pending::ClientKeyForward {
                client,
                corr,
                target,
            }) => {
                let response =
                    result.unwrap_or_else(|e| Response::error(status::UNAVAILABLE, e.to_string()));
                if response.status == status::OK {
                    self.hub.record_key_material(&target, &response.body);
                }
                Self::reply(&mut out, client, corr, response);
            }
            None => {}
        }
        self.flush(now, &mut out);
        out
    }

    fn on_client(
        &mut self,
        now: Millis,
        client: &ClientUri,
        message: ClientToProvider,
    ) -> Vec<ServerOutput> {
        let mut out = Vec::new();
        if client.domain() != self.domain {
            return out;
        }
        match message {
            ClientToProvider::PublishKeyPackages { key_packages } => {
                self.follower_mut()
                    .publish_key_packages(client, &key_packages);
            }
            ClientToProvider::LeaveRoom { room } => self.follower_mut().unsubscribe(&room, client),
            ClientToProvider::TakeOver {
                corr,
                room,
                group_info,
                ratchet_tree,
                body,
            } => {
                let response =
                    self.client_takeover(now, client, &room, &group_info, &ratchet_tree, &body);
                Self::reply(&mut out, client.clone(), corr, response);
            }
            ClientToProvider::CreateRoom {
                corr,
                room,
                group_info,
                ratchet_tree,
            } => {
                let response = self.client_create_room(client, &room, &group_info, &ratchet_tree);
                Self::reply(&mut out, client.clone(), corr, response);
            }
            ClientToProvider::Relay {
                corr,
                endpoint,
                body,
            } => self.client_relay(now, client, corr, endpoint, body, &mut out),
            ClientToProvider::ForkedCommit { room, body } => {
                let deliveries = self.follower.forked_commit(now, client, &room, &body);
                Self::deliver(&mut out, deliveries);
            }
        }
        self.flush(now, &mut out);
        out
    }

    fn on_tick(&mut self, now: Millis) -> Vec<ServerOutput> {
        let mut out = Vec::new();
        self.flush(now, &mut out);
        out
    }

    /// The earliest of: a `/notify` retry (P§5.5: the byte-identical body again), a
    /// fan-out batch left for the next flush, an x-hub-transfer handoff or fence retry.
    /// Timers due by the last flush that did not fire wait on an input (their condition,
    /// e.g. a handoff to export, does not hold), and every input flushes.
    fn poll_timeout(&self) -> Option<Millis> {
        let after = self.flushed_at;
        let notify = self.hub.next_notify_at().map(|t| t.max(after + 1));
        let transfer = self.transfer.next_retry_after(after);
        notify.into_iter().chain(transfer).min()
    }

    /// The core state survived (durable before every reply); connections did not: relayed
    /// client requests and key-material forwards in flight are forgotten (clients resend
    /// on their timeout; a remote requester retries), and every `/notify` in flight is
    /// sent again with its byte-identical body (the follower dedups). Tokens of forgotten
    /// requests that still come back are ignored.
    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        self.pending.clear();
        self.transfer_restarted();
        self.hub.forget_in_flight(now);
        let mut out = Vec::new();
        self.flush(now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Enforcement;

    /// An honest provider shows its clients only what a hub fanned out (P§5.5): a forked
    /// commit, which only an equivocating provider's device sends, is dropped — neither
    /// delivered nor relayed. An equivocating provider shows it to its other local
    /// clients in the room.
    #[test]
    fn only_an_equivocating_provider_shows_a_forked_commit() {
        let c = Domain::new("c.example").unwrap();
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let carol: ClientUri = "mimi://c.example/d/carol/1".parse().unwrap();
        let carol2: ClientUri = "mimi://c.example/d/carol/2".parse().unwrap();
        for adversary in [
            None,
            Some(Adversary::DropFanout),
            Some(Adversary::Equivocate),
        ] {
            let mut s = Server::new(c.clone(), 1, EnforcementConfig::new(Enforcement::Full))
                .with_adversary(adversary);
            s.follower_mut().subscribe(&room, &carol);
            s.follower_mut().subscribe(&room, &carol2);
            let out = s.on_client(
                0,
                &carol,
                ClientToProvider::ForkedCommit {
                    room: room.clone(),
                    body: b"not even a commit".to_vec(),
                },
            );
            assert!(out.is_empty(), "{adversary:?}: {out:?}");
            let shown = match adversary {
                Some(Adversary::Equivocate) => vec![AdversaryAction::ForkedCommitShown {
                    room: room.clone(),
                    to: vec![carol2.clone()],
                }],
                _ => Vec::new(),
            };
            assert_eq!(s.adversary_actions(), shown.as_slice(), "{adversary:?}");
        }
    }

    #[test]
    #[should_panic(expected = "one adversary")]
    fn a_provider_follows_one_adversary() {
        let c = Domain::new("c.example").unwrap();
        let _ = Server::new(c, 1, EnforcementConfig::new(Enforcement::Off))
            .with_adversary(Some(Adversary::DropFanout))
            .with_adversary(Some(Adversary::ReplayNotify));
    }
}
