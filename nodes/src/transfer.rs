//! # x-hub-transfer — moving a room's hub (an extension to the drafts, not in them)
//!
//! MIMI fixes the hub of a room to the provider that created it (P§1, P§3.1: the hub
//! is the room URI's provider). When that provider's last user leaves, or the provider
//! is gone, the room has no sequencer. This module defines a labelled extension,
//! **x-hub-transfer**, that lets the room move its hub through committed room state.
//!
//! ## 1. Room state: the hub component
//!
//! A private-use room component [`HUB_COMPONENT`] (0xF0A0) in the `app_data_dictionary`
//! (X§4.6) names the current hub:
//!
//! ```text
//! struct {
//!     opaque hub<V>;        // the hub provider's domain, e.g. "b.example"
//!     uint64 generation;    // 0 for the creating provider, +1 per transfer
//! } HubRecord;
//! ```
//!
//! Absent ⇒ `{ hub = domain of the room URI, generation = 0 }`. It changes only by an
//! AppDataUpdate (X§4.7) carried by value in a commit: exactly one update per commit,
//! whose generation is the old generation + 1 ([`apply_hub_updates`]); it is never
//! removed. Followers and clients learn the hub from committed state ([`hub_record`]).
//!
//! ## 2. The transfer commit
//!
//! A *transfer commit* moves the hub from H (generation g) to H' (g+1). It carries, in
//! this order: a GroupContextExtensions proposal equal to the current extensions except
//! that H's entry in `external_senders` (credential `mimi://H`) is replaced by H''s
//! (P§7.4), and an AppDataUpdate of [`HUB_COMPONENT`] to `{H', g+1}` ([`transfer_plan`]).
//! A hub at full enforcement checks (rule `hub-transfer`):
//!
//! * T1 the committer is a member client of a listed participant (not an external
//!   sender, not an external joiner); a hub update in a proposal bundle is refused;
//! * T2 the new hub differs from the current one and has a listed participant with a
//!   member client after the commit;
//! * T3 **who may move the hub**: a participant on the *current hub's own provider*
//!   (it hands its own role away, e.g. Alice leaving while her server is the hub), or
//!   an "admin" (a role holding canChangeUserRole) who moves the hub to **its own**
//!   provider (the takeover case);
//! * T4 (rule `hub-external-sender`) `external_senders` names the new hub, and no
//!   longer the old one.
//!
//! ## 3. Mechanism A: cooperative handoff
//!
//! The old hub sequences the transfer commit like any commit and, at the moment it
//! accepts it, **stops sequencing** the room: `/update`, `/submitMessage` and
//! `/groupInfo` for the room are answered `421 Misdirected Request` with a [`HubMoved`]
//! body (a byte-identical retry of an accepted message still gets its original answer).
//! It keeps fanning out its log. Once every recipient acknowledged that log (so every
//! follower holds the transfer commit before anything the new hub sequences),
//! [`crate::hub::Hub::export_handoff`] yields a [`Handoff`] for `POST /handoff/{roomId}`
//! at the new hub, which [`crate::hub::Hub::import_handoff`] verifies and starts
//! sequencing from. The hub log's `seq` **continues**: the new hub's first entry has
//! `seq = next_seq` of the handoff, so (room, seq) names one accepted message across
//! hubs.
//!
//! ```text
//! struct { opaque digest[32]; uint64 accepted_timestamp; } AcceptedDigest;
//! struct {
//!     IdentifierUri room_id;
//!     opaque from_hub<V>;           // the old hub's domain
//!     HubRecord hub;                // the record of the new epoch (names the new hub)
//!     uint64 epoch;                 // the epoch of group_info
//!     opaque group_info<V>;         // GroupInfo (bare struct) of that epoch
//!     opaque ratchet_tree<V>;       // its ratchet tree
//!     uint64 next_seq;              // seq of the new hub's first log entry
//!     uint64 last_timestamp;        // accepted timestamps never go back
//!     AcceptedDigest accepted<V>;   // SHA-256 of recently accepted MLS messages
//!     opaque known_domains<V><V>;   // providers that took part
//!     opaque muted<V><V>;           // user URIs still muted (P§5.3)
//! } Handoff;
//! ```
//!
//! ## 4. Mechanism B: takeover
//!
//! The old hub is unreachable. A member allowed by T3 (e.g. the admin with the lowest
//! leaf on another provider) builds a transfer commit for the epoch it knows, naming its
//! own provider, and its provider's hub calls [`crate::hub::Hub::takeover`] with the
//! member's GroupInfo and tree of that epoch: the hub bootstraps its view from them,
//! sequences the commit (full checks, and it must move the hub to *this* hub), and fans
//! out. It then sends a [`Fence`] (`POST /fence/{roomId}`) to the old hub:
//!
//! ```text
//! struct {
//!     IdentifierUri room_id;
//!     HubRecord hub;                // the new record (higher generation)
//!     uint64 base_epoch;            // the epoch the takeover commit was built on
//!     opaque group_info<V>;         // GroupInfo of the epoch after the takeover commit
//!     opaque ratchet_tree<V>;
//! } Fence;
//! ```
//!
//! ## 5. Fencing, and what it cannot do
//!
//! * A hub that receives a verified [`Fence`] with a higher generation stops sequencing
//!   the room for good (421 from then on) and reports whether it had sequenced a commit
//!   for the same epoch as the takeover (a fork).
//! * Followers and clients accept fan-out for a room only from the hub their
//!   [`HubDirectory`] names, or from a predecessor that handed off cooperatively
//!   (it drains its log); fan-out from a fenced-off hub is refused.
//! * Fencing **prevents** the fork from growing: after the old hub learns the higher
//!   generation it accepts nothing more, and nobody follows it. It **cannot** undo a
//!   commit the old hub accepted before it learned: if the old hub sequenced X for epoch
//!   e while the new hub sequenced the takeover Y for e, both exist and members that
//!   merged X are on a dead branch (they must rejoin, e.g. by external commit at the new
//!   hub). Two sequencers for one epoch is exactly what a takeover risks.
//!
//! # Choices
//!
//! * The old hub stops sequencing when it *accepts* the transfer commit (not after its
//!   fan-out), so no message of the new epoch can be accepted by two hubs; the handoff
//!   waits for the fan-out instead. Trade-off: a follower that never acknowledges holds
//!   the room unavailable until a takeover.
//! * The hub log's seq continues across a handoff; after a takeover it continues from
//!   the new hub's own log for the room (0 if it never hosted it).
//! * Transfer needs a hub MLS view (enforcement `mls` or `full`): at `off` the hub
//!   cannot read committed state and never notices a transfer.
//! * The hub's preauthorisation (`policy_enforcer` claim for the creating hub) is not
//!   moved by the transfer commit; the new hub's own external proposals are out of scope.
//! * A handoff is authenticated by the MIMI connection (the `From` provider must be
//!   `from_hub`) and by the committer's signature on the GroupInfo; a fence by the
//!   GroupInfo signature and its dictionary.

use std::collections::{BTreeMap, BTreeSet};

use openmls::component::ComponentId;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use tls_codec::VLBytes;

use crate::ids::{Domain, RoomUri, UserUri};
use crate::io::{status, Response};
use crate::mls::commit::CommitPlan;
use crate::mls::config;
use crate::wire::{IdentifierUri, Place, Reader, WireError, MAX_BODY_BYTES, MAX_URI_BYTES};

/// The private-use room component naming the current hub (x-hub-transfer §1).
pub const HUB_COMPONENT: ComponentId = 0xF0A0;
/// Longest domain accepted in a [`HubRecord`].
pub const MAX_DOMAIN_BYTES: usize = 253;
/// Most accepted-message digests in one [`Handoff`]; a hub remembers no more than this
/// many per room, so that everything it remembers can be handed off.
pub const MAX_HANDOFF_ACCEPTED: usize = 1024;
/// Most domains / muted users in one [`Handoff`].
pub const MAX_HANDOFF_NAMES: usize = 4096;

/// Why a transfer structure or step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    #[error("hub component: {0}")]
    Component(String),
    #[error("the handoff/fence is for room {got}, not {expected}")]
    WrongRoom { expected: String, got: String },
    #[error("the record names hub {named}, not this hub {me}")]
    NotForThisHub { named: Domain, me: Domain },
    #[error("generation {got} is not newer than the known generation {have}")]
    StaleGeneration { have: u64, got: u64 },
    #[error("the handoff comes from {from}, but names {from_hub} as the old hub")]
    FromMismatch { from: Domain, from_hub: Domain },
    #[error("the GroupInfo and tree: {0}")]
    View(String),
    #[error("the GroupInfo's room state {0}")]
    StateMismatch(String),
    #[error("this hub is not sequencing room {0}")]
    NotSequencing(String),
    #[error("room {0} has no completed handoff yet (not moved, or fan-out pending)")]
    NotReady(String),
    #[error("transfer needs a hub MLS view (enforcement mls or full)")]
    NoView,
    #[error("this hub is already sequencing room {0}")]
    AlreadySequencing(String),
    #[error("extensions: {0}")]
    Extensions(String),
}

fn at(structure: &'static str, field: &'static str) -> Place {
    Place::new(structure, field)
}

fn put_vl(out: &mut Vec<u8>, bytes: &[u8]) {
    // Serialising a VLBytes into a Vec cannot fail below 2^30 bytes; larger inputs were
    // refused when they came in (MAX_BODY_BYTES).
    let _ = VLBytes::new(bytes.to_vec()).tls_serialize(out);
}

fn put_vl_list<'a>(out: &mut Vec<u8>, items: impl Iterator<Item = &'a [u8]>) {
    let mut inner = Vec::new();
    for i in items {
        put_vl(&mut inner, i);
    }
    put_vl(out, &inner);
}

fn read_domain(r: &mut Reader<'_>, place: Place) -> Result<Domain, WireError> {
    let s = r.text(place, MAX_DOMAIN_BYTES)?;
    Domain::new(&s).map_err(|e| WireError::Invalid {
        at: place,
        reason: e.to_string(),
    })
}

fn read_room(r: &mut Reader<'_>, place: Place) -> Result<RoomUri, WireError> {
    let b = r.opaque(place, MAX_URI_BYTES)?;
    RoomUri::from_bytes(b).map_err(|e| WireError::Invalid {
        at: place,
        reason: e.to_string(),
    })
}

fn exact<T>(
    bytes: &[u8],
    name: &'static str,
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, WireError>,
) -> Result<T, TransferError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(WireError::BodyTooLarge {
            structure: name,
            len: bytes.len(),
            max: MAX_BODY_BYTES,
        }
        .into());
    }
    let mut r = Reader::new(bytes);
    let v = f(&mut r)?;
    if !r.is_empty() {
        return Err(WireError::TrailingBytes {
            structure: name,
            count: r.remaining(),
        }
        .into());
    }
    Ok(v)
}

/// `HubRecord` (x-hub-transfer §1): the room's current hub and its generation.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct HubRecord {
    pub hub: Domain,
    pub generation: u64,
}

impl HubRecord {
    /// The record of a room whose state has no hub component: its creator, generation 0.
    pub fn initial(room: &RoomUri) -> Self {
        HubRecord {
            hub: room.domain(),
            generation: 0,
        }
    }

    /// The record after moving to `hub`.
    pub fn next(&self, hub: &Domain) -> Self {
        HubRecord {
            hub: hub.clone(),
            generation: self.generation.saturating_add(1),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_vl(out, self.hub.as_str().as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(HubRecord {
            hub: read_domain(r, at("HubRecord", "hub"))?,
            generation: r.u64(at("HubRecord", "generation"))?,
        })
    }

    /// TLS encoding (the component's data).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TransferError> {
        exact(bytes, "HubRecord", HubRecord::read)
    }
}

/// The hub record in a room-state dictionary (absent ⇒ [`HubRecord::initial`]).
pub fn hub_record(
    room: &RoomUri,
    dictionary: &BTreeMap<ComponentId, Vec<u8>>,
) -> Result<HubRecord, TransferError> {
    match dictionary.get(&HUB_COMPONENT) {
        None => Ok(HubRecord::initial(room)),
        Some(b) => HubRecord::decode(b),
    }
}

/// The component logic of [`HUB_COMPONENT`] (X§4.7): exactly one update per commit, to
/// the next generation.
pub fn apply_hub_updates(old: Option<&[u8]>, updates: &[&[u8]]) -> Result<Vec<u8>, String> {
    let [update] = updates else {
        return Err(format!(
            "{} hub updates in one commit (exactly one allowed)",
            updates.len()
        ));
    };
    let new = HubRecord::decode(update).map_err(|e| e.to_string())?;
    let old_generation = match old {
        Some(b) => HubRecord::decode(b).map_err(|e| e.to_string())?.generation,
        None => 0,
    };
    if new.generation != old_generation.saturating_add(1) {
        return Err(format!(
            "hub generation {} after {old_generation} (must be {})",
            new.generation,
            old_generation.saturating_add(1)
        ));
    }
    Ok(new.encode())
}

/// The answer of a hub that no longer sequences a room (x-hub-transfer §3), body of a
/// `421 Misdirected Request`: `struct { IdentifierUri room_id; HubRecord hub; } HubMoved;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubMoved {
    pub room: RoomUri,
    pub hub: HubRecord,
}

impl HubMoved {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_vl(&mut out, self.room.as_bytes());
        self.hub.write(&mut out);
        out
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, TransferError> {
        exact(bytes, "HubMoved", |r| {
            Ok(HubMoved {
                room: read_room(r, at("HubMoved", "room_id"))?,
                hub: HubRecord::read(r)?,
            })
        })
    }
    /// The 421 response.
    pub fn response(&self) -> Response {
        Response::new(status::MISDIRECTED, self.encode())
    }
    /// The moved answer in `response`, if it is one.
    pub fn of_response(response: &Response) -> Option<HubMoved> {
        (response.status == status::MISDIRECTED)
            .then(|| HubMoved::decode(&response.body).ok())
            .flatten()
    }
}

/// The state a hub hands to its successor (x-hub-transfer §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub room: RoomUri,
    pub from_hub: Domain,
    pub hub: HubRecord,
    pub epoch: u64,
    pub group_info: Vec<u8>,
    pub ratchet_tree: Vec<u8>,
    pub next_seq: u64,
    pub last_timestamp: u64,
    /// SHA-256 of recently accepted MLS messages → accepted timestamp, oldest first.
    pub accepted: Vec<([u8; 32], u64)>,
    pub known_domains: BTreeSet<Domain>,
    pub muted: BTreeSet<UserUri>,
}

impl Handoff {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_vl(&mut out, IdentifierUri::from(&self.room).as_bytes());
        put_vl(&mut out, self.from_hub.as_str().as_bytes());
        self.hub.write(&mut out);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        put_vl(&mut out, &self.group_info);
        put_vl(&mut out, &self.ratchet_tree);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.extend_from_slice(&self.last_timestamp.to_be_bytes());
        let mut acc = Vec::new();
        for (h, ts) in &self.accepted {
            acc.extend_from_slice(h);
            acc.extend_from_slice(&ts.to_be_bytes());
        }
        put_vl(&mut out, &acc);
        put_vl_list(
            &mut out,
            self.known_domains.iter().map(|d| d.as_str().as_bytes()),
        );
        put_vl_list(&mut out, self.muted.iter().map(|u| u.as_bytes()));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TransferError> {
        const N: &str = "Handoff";
        exact(bytes, N, |r| {
            let room = read_room(r, at(N, "room_id"))?;
            let from_hub = read_domain(r, at(N, "from_hub"))?;
            let hub = HubRecord::read(r)?;
            let epoch = r.u64(at(N, "epoch"))?;
            let group_info = r.opaque(at(N, "group_info"), MAX_BODY_BYTES)?.to_vec();
            let ratchet_tree = r.opaque(at(N, "ratchet_tree"), MAX_BODY_BYTES)?.to_vec();
            let next_seq = r.u64(at(N, "next_seq"))?;
            let last_timestamp = r.u64(at(N, "last_timestamp"))?;
            let place = at(N, "accepted");
            let accepted = r.vector(place, |r| Ok((r.fixed::<32>(place)?, r.u64(place)?)))?;
            if accepted.len() > MAX_HANDOFF_ACCEPTED {
                return Err(WireError::TooManyItems {
                    at: place,
                    max: MAX_HANDOFF_ACCEPTED,
                });
            }
            let place = at(N, "known_domains");
            let known_domains = r
                .vector(place, |r| read_domain(r, place))?
                .into_iter()
                .collect::<BTreeSet<_>>();
            let place = at(N, "muted");
            let muted = r
                .vector(place, |r| {
                    let b = r.opaque(place, MAX_URI_BYTES)?;
                    UserUri::from_bytes(b).map_err(|e| WireError::Invalid {
                        at: place,
                        reason: e.to_string(),
                    })
                })?
                .into_iter()
                .collect::<BTreeSet<_>>();
            if known_domains.len() > MAX_HANDOFF_NAMES || muted.len() > MAX_HANDOFF_NAMES {
                return Err(WireError::TooManyItems {
                    at: place,
                    max: MAX_HANDOFF_NAMES,
                });
            }
            Ok(Handoff {
                room,
                from_hub,
                hub,
                epoch,
                group_info,
                ratchet_tree,
                next_seq,
                last_timestamp,
                accepted,
                known_domains,
                muted,
            })
        })
    }
}

/// A new hub's notice to an old one after a takeover (x-hub-transfer §4–5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub room: RoomUri,
    pub hub: HubRecord,
    pub base_epoch: u64,
    pub group_info: Vec<u8>,
    pub ratchet_tree: Vec<u8>,
}

impl Fence {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_vl(&mut out, self.room.as_bytes());
        self.hub.write(&mut out);
        out.extend_from_slice(&self.base_epoch.to_be_bytes());
        put_vl(&mut out, &self.group_info);
        put_vl(&mut out, &self.ratchet_tree);
        out
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, TransferError> {
        const N: &str = "Fence";
        exact(bytes, N, |r| {
            Ok(Fence {
                room: read_room(r, at(N, "room_id"))?,
                hub: HubRecord::read(r)?,
                base_epoch: r.u64(at(N, "base_epoch"))?,
                group_info: r.opaque(at(N, "group_info"), MAX_BODY_BYTES)?.to_vec(),
                ratchet_tree: r.opaque(at(N, "ratchet_tree"), MAX_BODY_BYTES)?.to_vec(),
            })
        })
    }
}

/// What a hub did with a [`Fence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceOutcome {
    /// The hub stopped sequencing the room. `fork_epoch`: the hub had itself sequenced
    /// a commit for the epoch the takeover commit was built on (two sequencers).
    Stopped { fork_epoch: Option<u64> },
    /// The hub already knew this generation or a newer one.
    AlreadyKnown,
}

/// The credential identity of an `external_senders` entry (its accessor is
/// crate-private in openmls 0.9.2: `ExternalSender { SignaturePublicKey; Credential; }`).
pub fn external_sender_identity(sender: &ExternalSender) -> Vec<u8> {
    let bytes = sender.tls_serialize_detached().unwrap_or_default();
    let mut rest = bytes.as_slice();
    VLBytes::tls_deserialize(&mut rest)
        .ok()
        .and_then(|_| Credential::tls_deserialize(&mut rest).ok())
        .and_then(|c| BasicCredential::try_from(c).ok())
        .map(|b| b.identity().to_vec())
        .unwrap_or_default()
}

/// The commit plan of a transfer commit (x-hub-transfer §2), for a member whose group
/// has the GroupContext extensions `current`: swap `old_hub`'s external sender for
/// `new_hub_sender`, and update the hub component to `next`.
pub fn transfer_plan(
    current: &Extensions<GroupContext>,
    old_hub: &Domain,
    new_hub_sender: ExternalSender,
    next: &HubRecord,
) -> Result<CommitPlan, TransferError> {
    let old_id = config::server_credential_identity(old_hub).into_bytes();
    let new_id = external_sender_identity(&new_hub_sender);
    let mut senders: Vec<ExternalSender> = current
        .external_senders()
        .map(|s| s.to_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            let id = external_sender_identity(s);
            id != old_id && id != new_id
        })
        .collect();
    senders.push(new_hub_sender);
    let mut exts: Vec<Extension> = current
        .iter()
        .filter(|e| !matches!(e, Extension::ExternalSenders(_)))
        .cloned()
        .collect();
    exts.push(Extension::ExternalSenders(senders));
    let exts = Extensions::from_vec(exts).map_err(|e| TransferError::Extensions(e.to_string()))?;
    Ok(CommitPlan {
        group_context_extensions: Some(exts),
        proposals: vec![Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(HUB_COMPONENT, next.encode()),
        ))],
        ..Default::default()
    })
}

/// Where a provider (server and follower) routes a room's requests and whose fan-out it
/// accepts (x-hub-transfer §5). Rooms not in it are at [`HubRecord::initial`].
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HubDirectory {
    rooms: BTreeMap<RoomUri, DirectoryEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct DirectoryEntry {
    record: HubRecord,
    /// Predecessors that handed off cooperatively and may still drain their log.
    draining: BTreeSet<Domain>,
}

impl HubDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The room's current hub record as far as this provider knows.
    pub fn record(&self, room: &RoomUri) -> HubRecord {
        self.rooms
            .get(room)
            .map(|e| e.record.clone())
            .unwrap_or_else(|| HubRecord::initial(room))
    }

    /// The hub to send `room`'s requests to.
    pub fn hub_of(&self, room: &RoomUri) -> Domain {
        self.record(room).hub
    }

    /// Learn `record` (from committed state, a 421 [`HubMoved`], a handoff or a fence).
    /// `cooperative_from`: the previous hub, if it handed off cooperatively (it may keep
    /// delivering its log). Returns whether the record advanced.
    pub fn observe(
        &mut self,
        room: &RoomUri,
        record: &HubRecord,
        cooperative_from: Option<&Domain>,
    ) -> bool {
        let current = self.record(room);
        if record.generation <= current.generation {
            return false;
        }
        let e = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| DirectoryEntry {
                record: current.clone(),
                draining: BTreeSet::new(),
            });
        match cooperative_from {
            Some(d) if *d == current.hub => {
                e.draining.insert(d.clone());
            }
            _ => e.draining.clear(),
        }
        e.record = record.clone();
        true
    }

    /// Fencing for followers: accept a `/notify` for `room` from `from` only if it is the
    /// current hub or a cooperative predecessor draining its log.
    pub fn accepts_notify(&self, room: &RoomUri, from: &Domain) -> bool {
        match self.rooms.get(room) {
            None => *from == room.domain(),
            Some(e) => e.record.hub == *from || e.draining.contains(from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }

    #[test]
    fn records_round_trip_and_bad_input_is_refused() {
        let r = HubRecord {
            hub: d("b.example"),
            generation: 7,
        };
        assert_eq!(HubRecord::decode(&r.encode()).unwrap(), r);
        let mut long = r.encode();
        long.push(0);
        assert!(HubRecord::decode(&long).is_err());
        assert!(HubRecord::decode(&r.encode()[..3]).is_err());
        let room = RoomUri::new(&d("a.example"), "r").unwrap();
        let m = HubMoved {
            room: room.clone(),
            hub: r.clone(),
        };
        assert_eq!(HubMoved::of_response(&m.response()), Some(m));
        let h = Handoff {
            room: room.clone(),
            from_hub: d("a.example"),
            hub: r.clone(),
            epoch: 3,
            group_info: vec![1, 2, 3],
            ratchet_tree: vec![4; 100],
            next_seq: 12,
            last_timestamp: 99,
            accepted: vec![([9; 32], 5), ([8; 32], 6)],
            known_domains: [d("a.example"), d("b.example")].into(),
            muted: ["mimi://b.example/u/eve".parse().unwrap()].into(),
        };
        let bytes = h.encode();
        assert_eq!(Handoff::decode(&bytes).unwrap(), h);
        for n in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Handoff::decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let f = Fence {
            room,
            hub: r,
            base_epoch: 4,
            group_info: vec![1],
            ratchet_tree: vec![2],
        };
        assert_eq!(Fence::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn hub_updates_advance_the_generation_by_one() {
        let g1 = HubRecord {
            hub: d("b.example"),
            generation: 1,
        }
        .encode();
        assert!(apply_hub_updates(None, &[&g1]).is_ok());
        assert!(apply_hub_updates(Some(&g1), &[&g1]).is_err());
        let g2 = HubRecord {
            hub: d("c.example"),
            generation: 2,
        }
        .encode();
        assert_eq!(apply_hub_updates(Some(&g1), &[&g2]).unwrap(), g2);
        assert!(apply_hub_updates(None, &[&g1, &g1]).is_err());
        assert!(apply_hub_updates(None, &[b"junk"]).is_err());
    }

    #[test]
    fn directory_fences_notify_after_a_takeover_but_not_a_handoff() {
        let room = RoomUri::new(&d("a.example"), "r").unwrap();
        let mut dir = HubDirectory::new();
        assert!(dir.accepts_notify(&room, &d("a.example")));
        assert!(!dir.accepts_notify(&room, &d("b.example")));
        let b1 = HubRecord::initial(&room).next(&d("b.example"));
        assert!(dir.observe(&room, &b1, Some(&d("a.example"))));
        assert!(!dir.observe(&room, &b1, None), "not newer");
        assert!(dir.accepts_notify(&room, &d("a.example")), "draining");
        assert!(dir.accepts_notify(&room, &d("b.example")));
        assert_eq!(dir.hub_of(&room), d("b.example"));
        // A takeover by c: a and b are fenced off.
        let c2 = b1.next(&d("c.example"));
        assert!(dir.observe(&room, &c2, None));
        assert!(!dir.accepts_notify(&room, &d("a.example")));
        assert!(!dir.accepts_notify(&room, &d("b.example")));
        assert!(dir.accepts_notify(&room, &d("c.example")));
    }
}
