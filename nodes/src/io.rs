//! The sans-IO interface of the cores: what goes in and what comes out.
//!
//! A core never touches a socket, a clock or the OS RNG. The driver (the in-memory test
//! world, or the simulator's HTTP adapter over turmoil) hands it inputs with the current
//! time and carries out its outputs. Server-to-server traffic is MIMI over HTTP
//! ([`Request`]/[`Response`]); client ↔ own provider traffic is provider-internal and not
//! specified by MIMI ([`ClientToProvider`]/[`ProviderToClient`]).

use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, Domain, RoomUri};

/// Milliseconds since the UNIX epoch, as the driver's clock says.
pub type Millis = u64;

/// HTTP status codes the cores use.
pub mod status {
    pub const OK: u16 = 200;
    /// `/notify` accepted (P§5.5).
    pub const CREATED: u16 = 201;
    pub const BAD_REQUEST: u16 = 400;
    pub const FORBIDDEN: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const CONFLICT: u16 = 409;
    pub const PAYLOAD_TOO_LARGE: u16 = 413;
    /// The hub no longer sequences the room (x-hub-transfer, `crate::transfer::HubMoved`).
    pub const MISDIRECTED: u16 = 421;
    pub const INTERNAL: u16 = 500;
    pub const UNAVAILABLE: u16 = 503;
}

/// A MIMI request from one provider to another (P§4.1): `Host` = `to`,
/// `From: mimi@<from>`, POST to the endpoint's path with a TLS-PL body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub from: Domain,
    pub to: Domain,
    pub endpoint: Endpoint,
    #[serde(with = "bytes")]
    pub body: Vec<u8>,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Response {
    pub status: u16,
    #[serde(with = "bytes")]
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Response { status, body }
    }
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            body: Vec::new(),
        }
    }
    /// A plain-text error body naming what was wrong.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Response {
            status,
            body: message.into().into_bytes(),
        }
    }
}

/// Identifies an incoming request until the core answers it.
pub type RequestId = u64;
/// Identifies an outgoing request until its response comes back.
pub type Token = u64;

/// A failure to get any response (timeout, connection refused, partition).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TransportError {
    #[error("request timed out")]
    Timeout,
    #[error("peer unreachable")]
    Unreachable,
}

/// Provider-internal request of a client to its own provider. The provider relays the
/// MIMI ones to the room's hub and answers with [`ProviderToClient::Reply`] (same `corr`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientToProvider {
    /// A MIMI request to relay; `body` is the endpoint's TLS-PL request body.
    Relay {
        corr: u64,
        endpoint: Endpoint,
        #[serde(with = "bytes")]
        body: Vec<u8>,
    },
    /// Publish KeyPackages (TLS bytes) for this client at its provider (P§5.2).
    PublishKeyPackages {
        #[serde(with = "bytes_list")]
        key_packages: Vec<Vec<u8>>,
    },
    /// The client is no longer in `room` (removed or left): stop delivering to it.
    LeaveRoom { room: RoomUri },
    /// Create a room hosted by this provider (P§3.1, provider-local): the creator's
    /// GroupInfo structure and ratchet tree.
    CreateRoom {
        corr: u64,
        room: RoomUri,
        #[serde(with = "bytes")]
        group_info: Vec<u8>,
        #[serde(with = "bytes")]
        ratchet_tree: Vec<u8>,
    },
    /// x-hub-transfer §4, takeover: this provider's hub should take `room` over with the
    /// member's GroupInfo and tree of the epoch it knows and its transfer commit `body`
    /// (an `UpdateRequest`).
    TakeOver {
        corr: u64,
        room: RoomUri,
        #[serde(with = "bytes")]
        group_info: Vec<u8>,
        #[serde(with = "bytes")]
        ratchet_tree: Vec<u8>,
        #[serde(with = "bytes")]
        body: Vec<u8>,
    },
    /// Not MIMI, and never sent by an honest client: a malicious provider's device hands
    /// its provider a second commit for `room` (an `UpdateRequest` body) to show the
    /// room's other local clients and never send to the hub — the adversary `equivocate`
    /// ([`crate::adversary`]). An honest provider drops it.
    ForkedCommit {
        room: RoomUri,
        #[serde(with = "bytes")]
        body: Vec<u8>,
    },
}

/// Provider-internal message from a provider to one of its clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProviderToClient {
    /// The answer to a [`ClientToProvider`] request with the same `corr`.
    Reply { corr: u64, response: Response },
    /// One FanoutMessage (TLS bytes) of a room, in hub order.
    Deliver {
        room: RoomUri,
        #[serde(with = "bytes")]
        fanout: Vec<u8>,
    },
}

/// What a server core wants done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ServerOutput {
    /// Answer incoming request `id`.
    Respond { id: RequestId, response: Response },
    /// Send a request to another provider; its outcome comes back with `token`.
    Send { token: Token, request: Request },
    /// Hand a message to a local client.
    ToClient {
        client: ClientUri,
        message: ProviderToClient,
    },
}

/// What a client core wants done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ClientOutput {
    ToProvider(ClientToProvider),
}

/// A provider's server core as a driver sees it (the in-memory test world and the
/// simulator's HTTP adapter both drive this). Every call returns the outputs to carry out.
pub trait ServerCore {
    /// The provider's domain.
    fn domain(&self) -> &Domain;
    /// An incoming MIMI request; answer later with [`ServerOutput::Respond`] for `id`.
    fn on_request(&mut self, now: Millis, id: RequestId, request: Request) -> Vec<ServerOutput>;
    /// The outcome of an outgoing request sent with `token`.
    fn on_response(
        &mut self,
        now: Millis,
        token: Token,
        result: Result<Response, TransportError>,
    ) -> Vec<ServerOutput>;
    /// A provider-internal message from one of this provider's clients.
    fn on_client(
        &mut self,
        now: Millis,
        client: &ClientUri,
        message: ClientToProvider,
    ) -> Vec<ServerOutput>;
    /// Time passed: retries and other timers.
    fn on_tick(&mut self, now: Millis) -> Vec<ServerOutput>;
    /// When this core next needs [`Self::on_tick`] if no input comes first (as
    /// quinn-proto's `poll_timeout`): `None` for never. A host calls `on_tick` at that
    /// time (or later), and asks again after every call into the core.
    fn poll_timeout(&self) -> Option<Millis>;
    /// The provider restarted after a crash with its durable state (everything the core
    /// did before the crash), but without its connections: incoming requests awaiting an
    /// answer, outgoing requests in flight and their tokens are gone. Forget them and
    /// resume (e.g. resend fan-out that was in flight). Also called at a first start.
    fn on_restart(&mut self, now: Millis) -> Vec<ServerOutput> {
        let _ = now;
        Vec::new()
    }
}

/// Byte strings as serde bytes (one CBOR byte string, not an array of numbers): the
/// testbed journals these messages (`mimi-sim node --state`).
mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Visitor)
    }

    pub(super) struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = a.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

/// A list of byte strings, each as serde bytes.
mod bytes_list {
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

    struct Item<'a>(&'a [u8]);

    impl serde::Serialize for Item<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    struct Owned(Vec<u8>);

    impl<'de> serde::Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(super::bytes::Visitor).map(Owned)
        }
    }

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(list.len()))?;
        for b in list {
            seq.serialize_element(&Item(b))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let items: Vec<Owned> = serde::Deserialize::deserialize(d)?;
        Ok(items.into_iter().map(|o| o.0).collect())
    }
}
