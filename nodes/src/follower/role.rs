//! The follower role as a provider's server drives it ([`crate::server::Server`]): the
//! seam where a node that deviates from the protocol on purpose replaces the honest
//! [`Follower`] by wrapping it. [`Follower`] implements it as the protocol (P§5.2,
//! P§5.5), nothing else; the wrappers (planted bugs, a malicious provider) live with
//! their kind, outside this module, and the server's setup chooses among them
//! (`nodes/src/server/roles.rs`): this seam knows none of them.
//!
//! The server calls the role at the points where a follower acts: a `/notify` from a
//! hub, a `/keyMaterial` for one of its users, a local client's request before it is
//! relayed, and the provider-internal forked commit (which only a malicious provider's
//! clients send). The honest answers are those of [`Follower`]; a wrapper changes what it
//! means to change and hands the rest to the follower it wraps.

use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, RoomUri, UserUri};
use crate::io::{Millis, Response};

use super::{Delivery, Follower};

/// What the follower role adds before its provider relays a local client's request.
#[derive(Debug, Default)]
pub struct BeforeRelay {
    /// Requests of the role's own (endpoint, body) for the room's hub, sent before the
    /// client's; each answer comes back through [`FollowerRole::hub_answered`].
    pub to_hub: Vec<(Endpoint, Vec<u8>)>,
    /// Deliveries to local clients, made before the client's request is relayed.
    pub deliveries: Vec<Delivery>,
}

/// A provider's follower role: the honest [`Follower`] or a wrapper around it.
pub trait FollowerRole {
    /// The honest follower (itself, or the one a wrapper wraps): subscriptions and
    /// published KeyPackages.
    fn follower(&self) -> &Follower;

    /// The honest follower, to change its state (subscribe, publish KeyPackages).
    fn follower_mut(&mut self) -> &mut Follower;

    /// `/notify/{room}` from a hub: the answer and the deliveries to local clients.
    fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>);

    /// `/keyMaterial/{target}` for one of this provider's users (P§5.2).
    fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response;

    /// A local client's request in `room` (`endpoint`, `body`), just before its provider
    /// relays it to the room's hub. An honest follower adds nothing: the hub sequences,
    /// the follower only delivers what it fans out (P§5.5).
    fn before_relay(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> BeforeRelay;

    /// A local client's forked commit ([`crate::io::ClientToProvider::ForkedCommit`]):
    /// the deliveries to local clients. An honest follower delivers none (it delivers
    /// only what the hub fanned out, P§5.5).
    fn forked_commit(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        body: &[u8],
    ) -> Vec<Delivery>;

    /// The room's hub answered one of [`BeforeRelay::to_hub`]'s requests (HTTP status
    /// and body; a transport failure as 503 and its text).
    fn hub_answered(&mut self, room: RoomUri, status: u16, body: Vec<u8>);

    /// An independent deep copy (see [`crate::server::Server::checkpoint`]).
    fn checkpoint_role(&self) -> Self
    where
        Self: Sized;
}

impl FollowerRole for Follower {
    fn follower(&self) -> &Follower {
        self
    }

    fn follower_mut(&mut self) -> &mut Follower {
        self
    }

    fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        Follower::notify(self, room, body)
    }

    fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        Follower::key_material(self, target, body)
    }

    fn before_relay(
        &mut self,
        _now: Millis,
        _client: &ClientUri,
        _room: &RoomUri,
        _endpoint: &Endpoint,
        _body: &[u8],
    ) -> BeforeRelay {
        BeforeRelay::default()
    }

    fn forked_commit(
        &mut self,
        _now: Millis,
        _client: &ClientUri,
        _room: &RoomUri,
        _body: &[u8],
    ) -> Vec<Delivery> {
        Vec::new()
    }

    fn hub_answered(&mut self, _room: RoomUri, _status: u16, _body: Vec<u8>) {}

    fn checkpoint_role(&self) -> Self {
        self.checkpoint()
    }
}
