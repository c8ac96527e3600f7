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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sha2::{Digest, Sha256};

use crate::adversary::Adversary;
use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{status, ProviderToClient, Response};
use crate::mls::SeededProvider;
use crate::planted::{Bug, Bugs};
use crate::wire::{
    decode_exact, encode, ClientKeyMaterial, ClientMaterial, FanoutBody, IdentifierUri,
    KeyMaterialRequest, KeyMaterialResponse, KeyMaterialUserCode, KeyPackageBytes, NotifyBody,
    Protocol,
};

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
    bugs: Bugs,
    adversary: Option<Adversary>,
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
            bugs: Bugs::new(),
            adversary: None,
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
            bugs: self.bugs.clone(),
            adversary: self.adversary,
        }
    }

    /// Plant deliberate bugs (see [`crate::planted`]); only follower bugs matter here.
    pub fn set_bugs(&mut self, bugs: &Bugs) {
        self.bugs = bugs.clone();
    }

    /// Make this follower malicious (see [`crate::adversary`]); only
    /// [`Adversary::ForeignKeyPackage`] acts here, the fan-out behaviours live in
    /// [`crate::server::Server`].
    pub fn set_adversary(&mut self, adversary: Option<Adversary>) {
        self.adversary = adversary;
    }

    /// For [`Adversary::ForeignKeyPackage`]: the first client (URI order) of a user other
    /// than `target` that still has a KeyPackage.
    fn foreign_source(&self, target: &UserUri) -> Option<ClientUri> {
        self.key_packages
            .iter()
            .find(|(c, q)| &c.user() != target && !q.is_empty())
            .map(|(c, _)| c.clone())
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

    /// Whether a planted bug is set.
    pub fn has_bug(&self, bug: crate::planted::Bug) -> bool {
        self.bugs.contains(&bug)
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

    /// Answer `/keyMaterial/{user}` for one of our users (P§5.2).
    pub fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        let req: KeyMaterialRequest = match decode_exact(body) {
            Ok(r) => r,
            Err(e) => {
                return Response::error(status::BAD_REQUEST, format!("KeyMaterialRequest: {e}"))
            }
        };
        if req.verify(self.provider.seeded_crypto()).is_err() {
            return Response::error(
                status::BAD_REQUEST,
                "KeyMaterialRequest signature does not verify",
            );
        }
        let requested = req.tbs.target_user.as_bytes();
        if requested != target.as_bytes() {
            return Response::error(
                status::BAD_REQUEST,
                "KeyMaterialRequest.targetUser differs from the path",
            );
        }
        let user_uri = IdentifierUri::from_bytes(target.as_bytes());
        let (user_status, clients) = if target.domain() != self.domain {
            (KeyMaterialUserCode::UserUnknown, Vec::new())
        } else if self.refusing.contains(target) {
            (KeyMaterialUserCode::NoConsent, Vec::new())
        } else {
            let mut mine: Vec<ClientUri> = self
                .key_packages
                .keys()
                .filter(|c| &c.user() == target)
                .cloned()
                .collect();
            // Adversary ghost-device: the provider's ghosts (one rule,
            // `adversary::ghost_devices`) are shown only to the user's own devices.
            if self.adversary == Some(Adversary::GhostDevice)
                && req.tbs.requesting_user.as_bytes() != target.as_bytes()
            {
                let ghosts = crate::adversary::ghost_devices(&mine);
                mine.retain(|c| !ghosts.contains(c));
            }
            if mine.is_empty() {
                (KeyMaterialUserCode::UserUnknown, Vec::new())
            } else {
                let mut clients = Vec::new();
                let mut got = 0;
                for c in mine {
                    // Adversary foreign-key-package: another user's KeyPackage under
                    // the target client's URI; its Welcome goes to that other client.
                    let source = match self.adversary {
                        Some(Adversary::ForeignKeyPackage) => {
                            self.foreign_source(target).unwrap_or_else(|| c.clone())
                        }
                        _ => c.clone(),
                    };
                    let kp = self
                        .key_packages
                        .get_mut(&source)
                        .and_then(VecDeque::pop_front);
                    let material = match kp {
                        Some(kp) => {
                            if let Ok(r) = kp.key_package_ref(self.provider.seeded_crypto()) {
                                self.events.push(FollowerEvent::KeyPackageHandedOut {
                                    client: source.clone(),
                                    key_package_ref: hex::encode(&r),
                                });
                                self.handed_out.insert(r, source.clone());
                            }
                            got += 1;
                            ClientMaterial::Success(kp)
                        }
                        None => ClientMaterial::KeyMaterialExhausted,
                    };
                    clients.push(ClientKeyMaterial {
                        client_uri: IdentifierUri::from_bytes(c.as_bytes()),
                        material,
                    });
                }
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
            user_uri,
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

    fn remember(&mut self, hash: [u8; 32]) -> bool {
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

    /// Handle `/notify/{room}` from `hub`: 201 and the deliveries to make.
    pub fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        let notify: NotifyBody = match decode_exact(body) {
            Ok(n) => n,
            Err(e) => {
                return (
                    Response::error(status::BAD_REQUEST, format!("NotifyBody: {e}")),
                    Vec::new(),
                )
            }
        };
        let hash: [u8; 32] = Sha256::digest(body).into();
        // Planted bug: no dedup of retransmissions.
        let skip_dedup = self.bugs.contains(&Bug::FollowerSkipsDedup);
        if !self.remember(hash) && !skip_dedup {
            self.events.push(FollowerEvent::NotifyDuplicate {
                room: room.clone(),
                hash: hex::encode(&hash[..8]),
            });
            return (Response::empty(status::CREATED), Vec::new());
        }
        self.events.push(FollowerEvent::NotifyProcessed {
            room: room.clone(),
            hash: hex::encode(&hash[..8]),
            messages: notify.messages.len(),
        });
        let mut out = Vec::new();
        let mut messages = notify.messages;
        if self.bugs.contains(&Bug::FollowerReversesBatches) {
            // Planted bug: the batch goes to the clients in reverse order.
            messages.reverse();
        }
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
        (Response::empty(status::CREATED), out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mls::config::Identity;
    use crate::wire::{FanoutMessage, MlsMessageBytes};
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

    /// Two distinct FanoutMessages of one room, encoded, for the planted-bug tests.
    fn two_messages(room: &RoomUri) -> (Vec<u8>, Vec<u8>) {
        let p = SeededProvider::for_node(4, "a");
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
        let mut one = |ts| {
            let msg = m.propose_self_remove(&p, &id).unwrap();
            encode(&FanoutMessage {
                timestamp: ts,
                message: MlsMessageBytes::from_bytes(&msg).unwrap(),
                body: FanoutBody::Proposal {
                    more_proposals: vec![],
                },
            })
            .unwrap()
        };
        (one(1), one(2))
    }

    fn delivered(d: &[Delivery]) -> Vec<Vec<u8>> {
        d.iter()
            .filter_map(|(_, m)| match m {
                ProviderToClient::Deliver { fanout, .. } => Some(fanout.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn planted_bug_follower_reverses_batches() {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let (m1, m2) = two_messages(&room);
        let body = [m1.clone(), m2.clone()].concat();
        for (bug, want) in [(false, vec![m1.clone(), m2.clone()]), (true, vec![m2, m1])] {
            let (mut f, bob) = follower();
            if bug {
                f.set_bugs(&[Bug::FollowerReversesBatches].into_iter().collect());
            }
            f.subscribe(&room, &bob);
            let (_, d) = f.notify(&room, &body);
            assert_eq!(delivered(&d), want, "bug planted: {bug}");
        }
    }

    #[test]
    fn planted_bug_follower_skips_dedup() {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let (m1, _) = two_messages(&room);
        for (bug, copies) in [(false, 1), (true, 2)] {
            let (mut f, bob) = follower();
            if bug {
                f.set_bugs(&[Bug::FollowerSkipsDedup].into_iter().collect());
            }
            f.subscribe(&room, &bob);
            let (_, d1) = f.notify(&room, &m1);
            let (_, d2) = f.notify(&room, &m1);
            assert_eq!(d1.len() + d2.len(), copies, "bug planted: {bug}");
        }
    }
}
