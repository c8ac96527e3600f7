//! The follower core (sans-IO): a provider's side of rooms hosted elsewhere, and the
//! last-mile delivery point for its own clients (P§1.2, P§5.2, P§5.5).
//!
//! * Relays its clients' requests to the room's hub and routes the answers back.
//! * Receives `/notify`: answers 201, processes each distinct body once (byte-identical
//!   retries are acknowledged and dropped, P§5.5), and delivers every FanoutMessage to its
//!   subscribed clients in the order the hub sent them. A Welcome goes only to the client
//!   whose KeyPackageRef is in its `secrets`.
//! * x-hub-only-room-state ([`crate::room::hub_only`]): keeps each room's latest
//!   room-state signal and hands it to a client newly subscribed by a Welcome just
//!   before that Welcome, so a joiner learns the list of the epoch it joins at.
//! * Is the KeyPackage publication point of its users (P§5.2): hands out one KeyPackage
//!   per client per request, never the same one twice (reserved for the requester).
//!
//! Choice: consent (P§5.7) is granted to every requester unless a user is marked as
//! refusing ([`Follower::refuse_consent`]); consent exchange itself is not simulated.
//!
//! A provider's server drives its follower role through [`FollowerRole`]: this honest
//! [`Follower`], or a wrapper around it that deviates on purpose — planted bugs
//! (`nodes/src/planted/`) or a malicious provider (`nodes/src/adversary/`), chosen by
//! the server's setup (`nodes/src/server/roles.rs`). The wrappers compose the honest
//! steps below ([`Follower::read_notify`], [`Follower::deliver`], [`Follower::hand_out`],
//! …) differently; nothing in this module knows about them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sha2::{Digest, Sha256};

use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{status, ProviderToClient, Response};
use crate::mls::{SeededProvider, StreamPosition};
use crate::wire::{
    decode_exact, encode, ClientKeyMaterial, ClientMaterial, FanoutBody, FanoutMessage,
    IdentifierUri, KeyMaterialRequest, KeyMaterialResponse, KeyMaterialUserCode, KeyPackageBytes,
    NotifyBody, Protocol,
};

mod role;
pub use role::{BeforeRelay, FollowerRole};

/// How many recent `/notify` body hashes are remembered for dedup (P§5.5 NOTE: a rolling
/// list of hashes is enough).
pub const NOTIFY_DEDUP_WINDOW: usize = 4096;
/// At most this many published KeyPackages per client.
pub const MAX_KEY_PACKAGES_PER_CLIENT: usize = 64;

/// What a follower observed, for the trace and the oracles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum FollowerEvent {
    /// A `/notify` body was processed (first copy).
    NotifyProcessed {
        room: RoomUri,
        hash: String,
        messages: usize,
    },
    /// A byte-identical `/notify` retry was acknowledged and dropped.
    NotifyDuplicate { room: RoomUri, hash: String },
    /// A KeyPackage was handed out for `client` (its KeyPackageRef).
    KeyPackageHandedOut {
        client: ClientUri,
        key_package_ref: String,
    },
    /// A Welcome named a KeyPackageRef this follower never handed out.
    WelcomeUnroutable {
        room: RoomUri,
        key_package_ref: String,
    },
}

#[derive(Debug, Default, Clone)]
struct FollowerRoom {
    /// Local clients that receive this room's fan-out.
    subscribers: BTreeSet<ClientUri>,
    /// x-hub-only-room-state: the latest room-state signal (an encoded FanoutMessage).
    signal: Option<Vec<u8>>,
}

/// The follower role of one provider.
pub struct Follower {
    domain: Domain,
    /// Only for hashing KeyPackageRefs; never draws randomness here.
    provider: SeededProvider,
    key_packages: BTreeMap<ClientUri, VecDeque<KeyPackageBytes>>,
    handed_out: BTreeMap<Vec<u8>, ClientUri>,
    refusing: BTreeSet<UserUri>,
    rooms: BTreeMap<RoomUri, FollowerRoom>,
    recent: VecDeque<[u8; 32]>,
    recent_set: BTreeSet<[u8; 32]>,
    events: Vec<FollowerEvent>,
}

/// A delivery the follower wants made to a local client.
pub type Delivery = (ClientUri, ProviderToClient);

impl Follower {
    pub fn new(domain: Domain, provider: SeededProvider) -> Self {
        Follower {
            domain,
            provider,
            key_packages: BTreeMap::new(),
            handed_out: BTreeMap::new(),
            refusing: BTreeSet::new(),
            rooms: BTreeMap::new(),
            recent: VecDeque::new(),
            recent_set: BTreeSet::new(),
            events: Vec::new(),
        }
    }

    /// An independent deep copy; see [`crate::server::Server::checkpoint`].
    pub fn checkpoint(&self) -> Follower {
        Follower {
            domain: self.domain.clone(),
            provider: self.provider.checkpoint(),
            key_packages: self.key_packages.clone(),
            handed_out: self.handed_out.clone(),
            refusing: self.refusing.clone(),
            rooms: self.rooms.clone(),
            recent: self.recent.clone(),
            recent_set: self.recent_set.clone(),
            events: self.events.clone(),
        }
    }

    /// This follower's state as plain data, for a durable snapshot
    /// ([`crate::server::snapshot`]); events not taken yet are not part of it.
    pub(crate) fn export_state(&self) -> FollowerState {
        FollowerState {
            stream: self.provider.seeded_crypto().stream_position(),
            key_packages: self
                .key_packages
                .iter()
                .map(|(c, q)| (c.clone(), q.iter().map(|k| k.as_bytes().to_vec()).collect()))
                .collect(),
            handed_out: self.handed_out.clone(),
            refusing: self.refusing.clone(),
            rooms: self
                .rooms
                .iter()
                .map(|(r, f)| (r.clone(), (f.subscribers.clone(), f.signal.clone())))
                .collect(),
            recent: self.recent.iter().copied().collect(),
        }
    }

    /// Puts back a state [`Follower::export_state`] gave, on a follower built for the
    /// same provider and seed.
    pub(crate) fn import_state(&mut self, s: FollowerState) -> Result<(), StateError> {
        if !self.provider.seeded_crypto().set_stream_position(&s.stream) {
            return Err(StateError::OtherStream);
        }
        let mut key_packages = BTreeMap::new();
        for (c, q) in s.key_packages {
            let q = q
                .iter()
                .map(|k| KeyPackageBytes::from_bytes(k))
                .collect::<Result<VecDeque<_>, _>>()
                .map_err(|e| StateError::Damaged(format!("KeyPackage of {c}: {e}")))?;
            key_packages.insert(c, q);
        }
        self.key_packages = key_packages;
        self.handed_out = s.handed_out;
        self.refusing = s.refusing;
        self.rooms = s
            .rooms
            .into_iter()
            .map(|(r, (subscribers, signal))| {
                (
                    r,
                    FollowerRoom {
                        subscribers,
                        signal,
                    },
                )
            })
            .collect();
        self.recent_set = s.recent.iter().copied().collect();
        self.recent = s.recent.into();
        self.events.clear();
        Ok(())
    }

    /// Whether events wait to be taken.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<FollowerEvent> {
        std::mem::take(&mut self.events)
    }

    /// Mark a user as refusing consent to every requester.
    pub fn refuse_consent(&mut self, user: UserUri) {
        self.refusing.insert(user);
    }

    /// Subscribe a local client to a room's fan-out (creator, external joiner).
    pub fn subscribe(&mut self, room: &RoomUri, client: &ClientUri) {
        self.rooms
            .entry(room.clone())
            .or_default()
            .subscribers
            .insert(client.clone());
    }

    /// A client left or was removed: stop delivering to it.
    pub fn unsubscribe(&mut self, room: &RoomUri, client: &ClientUri) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.subscribers.remove(client);
        }
    }

    /// Local clients subscribed to `room`.
    pub fn subscribers(&self, room: &RoomUri) -> Vec<ClientUri> {
        self.rooms
            .get(room)
            .map(|r| r.subscribers.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A client publishes KeyPackages (TLS bytes). Malformed ones are dropped; the
    /// count stored is returned.
    pub fn publish_key_packages(&mut self, client: &ClientUri, key_packages: &[Vec<u8>]) -> usize {
        let q = self.key_packages.entry(client.clone()).or_default();
        let mut n = 0;
        for kp in key_packages {
            if q.len() >= MAX_KEY_PACKAGES_PER_CLIENT {
                break;
            }
            if let Ok(kp) = KeyPackageBytes::from_bytes(kp) {
                q.push_back(kp);
                n += 1;
            }
        }
        n
    }

    /// How many unused KeyPackages `client` has left.
    pub fn key_packages_left(&self, client: &ClientUri) -> usize {
        self.key_packages.get(client).map_or(0, VecDeque::len)
    }

    /// Every client that ever published KeyPackages here, in URI order, with how many it
    /// has left.
    pub fn published(&self) -> impl Iterator<Item = (&ClientUri, usize)> {
        self.key_packages.iter().map(|(c, q)| (c, q.len()))
    }

    /// Answer `/keyMaterial/{user}` for one of our users (P§5.2): one KeyPackage for
    /// each of the user's clients, never the same one twice.
    pub fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        if let Err(refused) = self.read_key_material_request(target, body) {
            return refused;
        }
        let clients = self.clients_of(target).map(|mine| {
            mine.into_iter()
                .map(|c| {
                    let material = self.hand_out(&c);
                    ClientKeyMaterial {
                        client_uri: IdentifierUri::from_bytes(c.as_bytes()),
                        material,
                    }
                })
                .collect()
        });
        Self::key_material_response(target, clients)
    }

    /// A `/keyMaterial/{target}` request body, decoded and verified: its signature and
    /// its targetUser against the path (P§5.2). `Err` is the 400 to answer.
    pub fn read_key_material_request(
        &self,
        target: &UserUri,
        body: &[u8],
    ) -> Result<KeyMaterialRequest, Response> {
        let req: KeyMaterialRequest = decode_exact(body).map_err(|e| {
            Response::error(status::BAD_REQUEST, format!("KeyMaterialRequest: {e}"))
        })?;
        if req.verify(self.provider.seeded_crypto()).is_err() {
            return Err(Response::error(
                status::BAD_REQUEST,
                "KeyMaterialRequest signature does not verify",
            ));
        }
        if req.tbs.target_user.as_bytes() != target.as_bytes() {
            return Err(Response::error(
                status::BAD_REQUEST,
                "KeyMaterialRequest.targetUser differs from the path",
            ));
        }
        Ok(req)
    }

    /// The clients of `target` that published KeyPackages here (URI order), or the user
    /// status that answers without any: `userUnknown` for a user of another provider,
    /// `noConsent` for one refusing (P§5.7).
    pub fn clients_of(&self, target: &UserUri) -> Result<Vec<ClientUri>, KeyMaterialUserCode> {
        if target.domain() != self.domain {
            Err(KeyMaterialUserCode::UserUnknown)
        } else if self.refusing.contains(target) {
            Err(KeyMaterialUserCode::NoConsent)
        } else {
            Ok(self
                .key_packages
                .keys()
                .filter(|c| &c.user() == target)
                .cloned()
                .collect())
        }
    }

    /// Hand out the next KeyPackage of `client` (reserved: never handed out again), and
    /// remember its KeyPackageRef to route the Welcome that names it.
    pub fn hand_out(&mut self, client: &ClientUri) -> ClientMaterial {
        let Some(kp) = self
            .key_packages
            .get_mut(client)
            .and_then(VecDeque::pop_front)
        else {
            return ClientMaterial::KeyMaterialExhausted;
        };
        if let Ok(r) = kp.key_package_ref(self.provider.seeded_crypto()) {
            self.events.push(FollowerEvent::KeyPackageHandedOut {
                client: client.clone(),
                key_package_ref: hex::encode(&r),
            });
            self.handed_out.insert(r, client.clone());
        }
        ClientMaterial::Success(kp)
    }

    /// The `/keyMaterial` answer (P§5.2) for `target`: its clients' material, or the user
    /// status that answers without any. A user without a client is `userUnknown`; the
    /// status of the others says how many clients got a KeyPackage.
    pub fn key_material_response(
        target: &UserUri,
        clients: Result<Vec<ClientKeyMaterial>, KeyMaterialUserCode>,
    ) -> Response {
        let (user_status, clients) = match clients {
            Err(code) => (code, Vec::new()),
            Ok(clients) if clients.is_empty() => (KeyMaterialUserCode::UserUnknown, clients),
            Ok(clients) => {
                let got = clients
                    .iter()
                    .filter(|c| matches!(c.material, ClientMaterial::Success(_)))
                    .count();
                let code = if got == clients.len() {
                    KeyMaterialUserCode::Success
                } else if got > 0 {
                    KeyMaterialUserCode::PartialSuccess
                } else {
                    KeyMaterialUserCode::NoCompatibleMaterial
                };
                (code, clients)
            }
        };
        let resp = KeyMaterialResponse {
            protocol: Protocol::Mls10,
            user_status,
            user_uri: IdentifierUri::from_bytes(target.as_bytes()),
            clients,
        };
        match encode(&resp) {
            Ok(b) => Response::new(status::OK, b),
            Err(e) => Response::error(
                status::INTERNAL,
                format!("encoding KeyMaterialResponse: {e}"),
            ),
        }
    }

    /// Handle `/notify/{room}` from `hub`: 201 and the deliveries to make. A
    /// byte-identical retry is acknowledged and dropped (P§5.5).
    pub fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        let (notify, hash) = match Self::read_notify(body) {
            Ok(n) => n,
            Err(refused) => return (refused, Vec::new()),
        };
        if !self.first_copy(hash) {
            self.note_duplicate(room, &hash);
            return (Response::empty(status::CREATED), Vec::new());
        }
        let deliveries = self.deliver(room, &hash, notify.messages);
        (Response::empty(status::CREATED), deliveries)
    }

    /// A `/notify` body, decoded, with its SHA-256 (what dedup remembers). `Err` is the
    /// 400 to answer.
    pub fn read_notify(body: &[u8]) -> Result<(NotifyBody, [u8; 32]), Response> {
        let notify: NotifyBody = decode_exact(body)
            .map_err(|e| Response::error(status::BAD_REQUEST, format!("NotifyBody: {e}")))?;
        Ok((notify, Sha256::digest(body).into()))
    }

    /// Remember a `/notify` body's hash; false if it is among the last
    /// [`NOTIFY_DEDUP_WINDOW`] remembered (a retry, P§5.5 NOTE).
    pub fn first_copy(&mut self, hash: [u8; 32]) -> bool {
        if self.recent_set.contains(&hash) {
            return false;
        }
        self.recent.push_back(hash);
        self.recent_set.insert(hash);
        while self.recent.len() > NOTIFY_DEDUP_WINDOW {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
        true
    }

    /// Note a `/notify` retry that was acknowledged and dropped.
    pub fn note_duplicate(&mut self, room: &RoomUri, hash: &[u8; 32]) {
        self.events.push(FollowerEvent::NotifyDuplicate {
            room: room.clone(),
            hash: hex::encode(&hash[..8]),
        });
    }

    /// Process the FanoutMessages of one `/notify` body (hash `hash`) in the order given:
    /// the deliveries to local clients. A Welcome goes to the clients whose KeyPackages
    /// it names and subscribes them; everything else to the room's subscribers.
    pub fn deliver(
        &mut self,
        room: &RoomUri,
        hash: &[u8; 32],
        messages: Vec<FanoutMessage>,
    ) -> Vec<Delivery> {
        self.events.push(FollowerEvent::NotifyProcessed {
            room: room.clone(),
            hash: hex::encode(&hash[..8]),
            messages: messages.len(),
        });
        let mut out = Vec::new();
        for m in messages {
            let bytes = match encode(&m) {
                Ok(b) => b,
                Err(_) => continue,
            };
            // x-hub-only-room-state: clients a Welcome subscribes now get the room's
            // latest signal first.
            let mut joiners: Vec<ClientUri> = Vec::new();
            if let FanoutBody::RoomState { .. } = &m.body {
                self.rooms.entry(room.clone()).or_default().signal = Some(bytes.clone());
            }
            let targets: Vec<ClientUri> = match &m.body {
                FanoutBody::Welcome { .. } => {
                    let refs = m
                        .message
                        .to_welcome()
                        .ok()
                        .flatten()
                        .and_then(|w| w.new_member_refs().ok())
                        .unwrap_or_default();
                    let mut ts = Vec::new();
                    for r in refs {
                        match self.handed_out.get(&r) {
                            Some(c) => ts.push(c.clone()),
                            None => {
                                // Not ours (Welcomes may be broadcast): only note it if
                                // no target at all was ours.
                            }
                        }
                    }
                    if ts.is_empty() {
                        self.events.push(FollowerEvent::WelcomeUnroutable {
                            room: room.clone(),
                            key_package_ref: String::new(),
                        });
                    }
                    for c in &ts {
                        if !self.subscribers(room).contains(c) {
                            joiners.push(c.clone());
                        }
                        self.subscribe(room, c);
                    }
                    ts
                }
                _ => self.subscribers(room),
            };
            let signal = self.rooms.get(room).and_then(|r| r.signal.clone());
            if let Some(signal) = signal {
                for c in joiners {
                    out.push((
                        c,
                        ProviderToClient::Deliver {
                            room: room.clone(),
                            fanout: signal.clone(),
                        },
                    ));
                }
            }
            for c in targets {
                out.push((
                    c,
                    ProviderToClient::Deliver {
                        room: room.clone(),
                        fanout: bytes.clone(),
                    },
                ));
            }
        }
        out
    }

    /// The endpoint is one a follower answers (only `/notify` and `/keyMaterial` for our
    /// own users).
    pub fn answers(&self, endpoint: &Endpoint) -> bool {
        match endpoint {
            Endpoint::Notify(_) => true,
            Endpoint::KeyMaterial(u) => u.domain() == self.domain,
            _ => false,
        }
    }
}

/// The honest follower's state ([`crate::follower::Follower`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FollowerState {
    pub(crate) stream: StreamPosition,
    /// Published KeyPackages per client, oldest first.
    pub(crate) key_packages: BTreeMap<ClientUri, Vec<Vec<u8>>>,
    /// KeyPackageRef handed out → the client it belongs to.
    pub(crate) handed_out: BTreeMap<Vec<u8>, ClientUri>,
    pub(crate) refusing: BTreeSet<UserUri>,
    /// Per room: subscribed local clients and the latest room-state signal.
    pub(crate) rooms: BTreeMap<RoomUri, (BTreeSet<ClientUri>, Option<Vec<u8>>)>,
    /// The `/notify` dedup window (P§5.5); a server snapshot keeps it in a table of its
    /// own and leaves this empty.
    pub(crate) recent: Vec<[u8; 32]>,
}

/// Why a [`FollowerState`] could not be put back.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the follower's random stream is of another seed")]
    OtherStream,
    #[error("{0}")]
    Damaged(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mls::config::Identity;
    use crate::wire::MlsMessageBytes;
    use openmls::prelude::tls_codec::Serialize as _;

    fn follower() -> (Follower, ClientUri) {
        let d = Domain::new("b.example").unwrap();
        let f = Follower::new(d.clone(), SeededProvider::for_node(1, "follower:b"));
        (f, UserUri::new(&d, "bob").unwrap().client("1").unwrap())
    }

    fn key_material_request(target: &UserUri, room: &RoomUri) -> Vec<u8> {
        let p = SeededProvider::for_node(1, "requester");
        let c: ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let id = Identity::for_client(&p, &c).unwrap();
        let rc = match crate::mls::config::required_capabilities() {
            openmls::prelude::Extension::RequiredCapabilities(r) => r,
            _ => unreachable!(),
        };
        let tbs = crate::wire::KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&c.user()),
            target_user: IdentifierUri::from(target),
            room_id: IdentifierUri::from(room),
            acceptable_ciphersuites: vec![crate::mls::CIPHERSUITE.into()],
            required_capabilities: crate::wire::RequiredCapabilitiesBytes::from_openmls(&rc)
                .unwrap(),
            requester_signature_key: crate::wire::SignaturePublicKeyBytes::from_openmls(
                &id.credential_with_key.signature_key,
            )
            .unwrap(),
            requester_credential: crate::wire::CredentialBytes::from_openmls(
                &id.credential_with_key.credential,
            )
            .unwrap(),
        };
        encode(&KeyMaterialRequest::sign(tbs, &id.signer).unwrap()).unwrap()
    }

    #[test]
    fn key_packages_are_handed_out_once_each() {
        let (mut f, bob) = follower();
        let p = SeededProvider::for_node(1, bob.as_str());
        let id = Identity::for_client(&p, &bob).unwrap();
        let kps: Vec<Vec<u8>> = (0..2)
            .map(|_| {
                id.key_package(&p)
                    .unwrap()
                    .key_package()
                    .tls_serialize_detached()
                    .unwrap()
            })
            .collect();
        assert_eq!(f.publish_key_packages(&bob, &kps), 2);
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let body = key_material_request(&bob.user(), &room);
        let mut seen = Vec::new();
        for want in [
            KeyMaterialUserCode::Success,
            KeyMaterialUserCode::Success,
            KeyMaterialUserCode::NoCompatibleMaterial,
        ] {
            let r = f.key_material(&bob.user(), &body);
            let resp: KeyMaterialResponse = decode_exact(&r.body).unwrap();
            assert_eq!(resp.user_status, want);
            resp.check_rules().unwrap();
            for c in resp.clients {
                if let ClientMaterial::Success(kp) = c.material {
                    assert!(
                        !seen.contains(&kp.as_bytes().to_vec()),
                        "a KeyPackage handed out twice"
                    );
                    seen.push(kp.as_bytes().to_vec());
                }
            }
        }
        assert_eq!(seen.len(), 2);
        // A tampered request does not verify.
        let mut bad = body.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        assert_eq!(
            f.key_material(&bob.user(), &bad).status,
            status::BAD_REQUEST
        );
        // Unknown user, malformed body.
        let eve = UserUri::new(f.domain(), "eve").unwrap();
        let r: KeyMaterialResponse = decode_exact(
            &f.key_material(&eve, &key_material_request(&eve, &room))
                .body,
        )
        .unwrap();
        assert_eq!(r.user_status, KeyMaterialUserCode::UserUnknown);
        assert_eq!(
            f.key_material(&eve, b"\x00\x01").status,
            status::BAD_REQUEST
        );
    }

    #[test]
    fn byte_identical_notify_is_processed_once() {
        let (mut f, bob) = follower();
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        f.subscribe(&room, &bob);
        // Any real MLS message will do; a KeyPackage-less PublicMessage proposal is simplest
        // to get from the wire tests' helpers, so use a SelfRemove from a tiny group.
        let p = SeededProvider::for_node(3, "a");
        let c: ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let id = Identity::for_client(&p, &c).unwrap();
        let hub = Identity::for_server(&p, &Domain::new("a.example").unwrap()).unwrap();
        let mut m = crate::client::Member::create(
            &p,
            &id,
            room.as_bytes(),
            Default::default(),
            hub.external_sender(),
        )
        .unwrap();
        let msg = m.propose_self_remove(&p, &id).unwrap();
        let fm = FanoutMessage {
            timestamp: 5,
            message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            body: FanoutBody::Proposal {
                more_proposals: vec![],
            },
        };
        let body = encode(&fm).unwrap();
        let (r1, d1) = f.notify(&room, &body);
        let (r2, d2) = f.notify(&room, &body);
        assert_eq!((r1.status, r2.status), (status::CREATED, status::CREATED));
        assert_eq!(d1.len(), 1);
        assert!(d2.is_empty(), "a retry must not be delivered again");
        assert!(matches!(
            f.take_events().last(),
            Some(FollowerEvent::NotifyDuplicate { .. })
        ));
        assert_eq!(f.notify(&room, b"garbage").0.status, status::BAD_REQUEST);
    }
}
