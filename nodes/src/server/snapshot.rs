//! A provider's server core as plain data ([`ServerSnapshot`]), for a host that keeps it
//! durable (the testbed's `state.db`, `sim/src/testbed/store.rs`) and builds the core
//! again from it after a crash.
//!
//! [`Server::snapshot_state`] takes the state; [`Server::restore`] puts it back into a
//! server built as the original was built (same provider, seed and configuration:
//! enforcement, planted bugs, room-state variant, transfer mode are configuration, not
//! state, and a snapshot does not carry them). The restored server and the original
//! produce the same outputs for the same next inputs.
//!
//! What it holds, per room the hub hosts ([`RoomSnapshot`]):
//! * the room log: the accepted messages in hub order, each the encoded FanoutMessage
//!   the hub fans out (P§5.5), with its seq, epoch and recipients;
//! * the public group: the openmls storage entries of the hub's `PublicGroup` (RFC 9420
//!   §12.4.3.1: the hub follows the group as a non-member), loaded back with
//!   `PublicGroup::load`;
//! * the fan-out queue: per follower provider, the first log entry not acknowledged and
//!   the `/notify` in flight with its retry state;
//! * the GroupInfo and tree for joiners (P§5.6);
//! * the rest of the room ([`RoomCore`]): epoch, the room state of the epoch and the
//!   hub's state with accepted proposals (P§7.1) as `app_data_dictionary` entries,
//!   muted users, authorised joiners, the hub record and sequencer state
//!   (x-hub-transfer), the answers remembered for retries.
//!
//! and for the server: the follower's KeyPackages, subscriptions and `/notify` dedup
//! window (P§5.5) ([`FollowerState`]), and the rest ([`CoreState`]): the seeded streams'
//! positions (hub, fence verifier), the Welcome routes (P§5.2), open requests, the next
//! token, the x-hub-transfer directory and retries.
//!
//! Not in it: events the core queued and nobody took yet (the host takes them after every
//! input; a snapshot with events waiting is refused), and the state of a malicious
//! provider's follower role ([`crate::adversary::MaliciousFollower`]: held and replayed
//! deliveries, its actions), which a snapshot refuses with [`SnapshotError::Adversary`].
//! A planted-bug follower ([`crate::planted::FaultyFollower`]) keeps no state of its own
//! besides its bugs (configuration), so its honest follower's state is all there is.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::adversary::Adversary;
pub use crate::follower::FollowerState;
use crate::follower::{FollowerRole, StateError};
use crate::hub::room::{AcceptedProposal, HubRoom, LogEntry, Outbound, Sequencer};
use crate::hub::{PublicView, ViewError};
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{Millis, Token};
use crate::mls::StreamPosition;
use crate::room::RoomState;
use crate::transfer::HubRecord;

use super::hub_transfer::TransferSnapshot;
use super::{Pending, Server};

/// The kinds of hub log entries (what the hub's log records for traces); a log entry of
/// another kind cannot be snapshotted (the list must grow with the hub).
pub const LOG_KINDS: [&str; 5] = [
    "proposals",
    "room-state",
    "welcome",
    "application",
    "commit",
];

/// Why a server core could not be snapshotted or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "{domain} is a malicious provider ({adversary:?}): its follower role's own state \
         (held and replayed deliveries, its actions) is not part of a server snapshot"
    )]
    Adversary {
        domain: Domain,
        adversary: Adversary,
    },
    #[error("the server core has events nobody took yet; take them before a snapshot")]
    EventsWaiting,
    #[error("the snapshot is of {found}, this server is {expected}")]
    OtherProvider { found: Domain, expected: Domain },
    #[error(
        "the {what} stream of the snapshot is of another seed: restore it into a server \
         built with the seed it was taken with"
    )]
    OtherStream { what: &'static str },
    #[error("room {room}: public group: {source}")]
    PublicGroup { room: RoomUri, source: ViewError },
    #[error("room {room}: the {which} room state does not read back from its components")]
    RoomState { room: RoomUri, which: &'static str },
    #[error("room {room}: log entry {seq} has a kind unknown to snapshots ({kind:?})")]
    LogKind {
        room: RoomUri,
        seq: u64,
        kind: String,
    },
    #[error("the snapshot is damaged: {0}")]
    Damaged(String),
}

impl From<StateError> for SnapshotError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::OtherStream => SnapshotError::OtherStream { what: "follower" },
            StateError::Damaged(what) => SnapshotError::Damaged(what),
        }
    }
}

/// A server core as plain data (see the module documentation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSnapshot {
    pub domain: Domain,
    /// Everything besides the hosted rooms and the follower.
    pub core: CoreState,
    /// The honest follower's state besides its dedup window (changes with KeyPackages
    /// and subscriptions).
    pub follower: FollowerState,
    /// SHA-256 of the recent `/notify` bodies, oldest first (P§5.5 dedup): a window
    /// that moves by one with each new body.
    pub notify_dedup: Vec<[u8; 32]>,
    /// The rooms the hub hosts.
    pub rooms: BTreeMap<RoomUri, RoomSnapshot>,
}

/// The server's state besides its hosted rooms (one opaque value for a host).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreState {
    hub_stream: StreamPosition,
    key_package_routes: BTreeMap<Vec<u8>, Domain>,
    last_timestamp: Millis,
    next_token: Token,
    pending: BTreeMap<Token, Pending>,
    transfer: TransferSnapshot,
}

/// One hosted room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The seq of `log[0]` (the log continues across a hub transfer).
    pub seq_base: u64,
    /// The room log, in hub order.
    pub log: Vec<LogRecord>,
    /// The hub's public group, when it follows one (not under enforcement `off`, nor
    /// after its view diverged).
    pub public_group: Option<PublicGroupEntries>,
    /// Per follower provider: the first entry not acknowledged, the `/notify` in flight.
    pub fanout_queue: BTreeMap<Domain, Outbound>,
    /// Remembered accepted messages (SHA-256, accepted at), oldest first: a window that
    /// moves with each accepted message (retries get the original answer).
    pub accepted: Vec<([u8; 32], Millis)>,
    /// The latest committer's GroupInfo and the ratchet tree, for joiners (P§5.6;
    /// they change once an epoch).
    pub group_info: Vec<u8>,
    pub ratchet_tree: Vec<u8>,
    /// Everything else (one opaque value for a host).
    pub core: RoomCore,
}

/// One accepted message of a room log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub seq: u64,
    pub timestamp: Millis,
    pub epoch: u64,
    /// One of [`LOG_KINDS`].
    pub kind: String,
    /// The providers it goes to.
    pub recipients: BTreeSet<Domain>,
    /// The encoded FanoutMessage (P§5.5), as fanned out.
    pub message: Vec<u8>,
}

/// A public group as openmls stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicGroupEntries {
    pub group_id: Vec<u8>,
    /// openmls storage key → value.
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A room's state besides its log, public group and fan-out queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomCore {
    group_id: Vec<u8>,
    epoch: u64,
    /// The room state of the epoch (P§4.3.1), as `app_data_dictionary` entries.
    committed: BTreeMap<u16, Vec<u8>>,
    /// Committed state plus accepted proposals (P§7.1), likewise.
    hub_state: BTreeMap<u16, Vec<u8>>,
    pending: Vec<AcceptedProposal>,
    muted: BTreeSet<UserUri>,
    authorized_joiners: BTreeSet<ClientUri>,
    known_domains: BTreeSet<Domain>,
    pending_client_delta: BTreeMap<UserUri, i64>,
    pending_added: BTreeSet<UserUri>,
    created_from: [u8; 32],
    record: HubRecord,
    sequencer: Sequencer,
    took_over_at: Option<u64>,
}

/// `state` as dictionary entries, checked to read back as `state`.
fn dictionary(
    room: &RoomUri,
    which: &'static str,
    state: &RoomState,
) -> Result<BTreeMap<u16, Vec<u8>>, SnapshotError> {
    let d = state.to_dictionary();
    match RoomState::from_dictionary(&d) {
        Ok(back) if &back == state => Ok(d),
        _ => Err(SnapshotError::RoomState {
            room: room.clone(),
            which,
        }),
    }
}

fn room_state(
    room: &RoomUri,
    which: &'static str,
    d: &BTreeMap<u16, Vec<u8>>,
) -> Result<RoomState, SnapshotError> {
    RoomState::from_dictionary(d).map_err(|_| SnapshotError::RoomState {
        room: room.clone(),
        which,
    })
}

impl RoomSnapshot {
    fn of(r: &HubRoom) -> Result<RoomSnapshot, SnapshotError> {
        let room = &r.room;
        let public_group = match &r.view {
            Some(v) => Some(PublicGroupEntries {
                group_id: v.group_id().to_vec(),
                entries: v
                    .storage_entries()
                    .map_err(|source| SnapshotError::PublicGroup {
                        room: room.clone(),
                        source,
                    })?,
            }),
            None => None,
        };
        let log = r
            .log
            .iter()
            .map(|e| LogRecord {
                seq: e.seq,
                timestamp: e.timestamp,
                epoch: e.epoch,
                kind: e.kind.to_string(),
                recipients: e.recipients.clone(),
                message: e.fanout.clone(),
            })
            .collect();
        let accepted: Vec<([u8; 32], Millis)> = r
            .accepted_order
            .iter()
            .filter_map(|h| r.accepted.get(h).map(|ts| (*h, *ts)))
            .collect();
        if accepted.len() != r.accepted.len() {
            return Err(SnapshotError::Damaged(format!(
                "room {room}: the remembered answers and their order differ"
            )));
        }
        Ok(RoomSnapshot {
            seq_base: r.seq_base,
            log,
            public_group,
            fanout_queue: r.outbound.clone(),
            accepted,
            group_info: r.group_info.clone(),
            ratchet_tree: r.ratchet_tree.clone(),
            core: RoomCore {
                group_id: r.group_id.clone(),
                epoch: r.epoch,
                committed: dictionary(room, "committed", &r.committed)?,
                hub_state: dictionary(room, "hub", &r.hub_state)?,
                pending: r.pending.clone(),
                muted: r.muted.clone(),
                authorized_joiners: r.authorized_joiners.clone(),
                known_domains: r.known_domains.clone(),
                pending_client_delta: r.pending_client_delta.clone(),
                pending_added: r.pending_added.clone(),
                created_from: r.created_from,
                record: r.record.clone(),
                sequencer: r.sequencer.clone(),
                took_over_at: r.took_over_at,
            },
        })
    }

    fn into_room(self, room: RoomUri) -> Result<HubRoom, SnapshotError> {
        let view = match self.public_group {
            Some(g) => Some(
                PublicView::from_storage_entries(&g.group_id, g.entries).map_err(|source| {
                    SnapshotError::PublicGroup {
                        room: room.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let mut log = Vec::with_capacity(self.log.len());
        for (i, e) in self.log.into_iter().enumerate() {
            let Some(kind) = LOG_KINDS.iter().find(|k| **k == e.kind) else {
                return Err(SnapshotError::LogKind {
                    room,
                    seq: e.seq,
                    kind: e.kind,
                });
            };
            if e.seq != self.seq_base + i as u64 {
                return Err(SnapshotError::Damaged(format!(
                    "room {room}: log entry {i} has seq {}, not {}",
                    e.seq,
                    self.seq_base + i as u64
                )));
            }
            log.push(LogEntry {
                seq: e.seq,
                timestamp: e.timestamp,
                fanout: e.message,
                recipients: e.recipients,
                kind,
                epoch: e.epoch,
            });
        }
        let c = self.core;
        Ok(HubRoom {
            committed: room_state(&room, "committed", &c.committed)?,
            hub_state: room_state(&room, "hub", &c.hub_state)?,
            room,
            group_id: c.group_id,
            view,
            epoch: c.epoch,
            pending: c.pending,
            muted: c.muted,
            group_info: self.group_info,
            ratchet_tree: self.ratchet_tree,
            authorized_joiners: c.authorized_joiners,
            known_domains: c.known_domains,
            log,
            outbound: self.fanout_queue,
            pending_client_delta: c.pending_client_delta,
            pending_added: c.pending_added,
            created_from: c.created_from,
            accepted: self.accepted.iter().copied().collect(),
            accepted_order: self.accepted.iter().map(|(h, _)| *h).collect(),
            record: c.record,
            sequencer: c.sequencer,
            seq_base: self.seq_base,
            took_over_at: c.took_over_at,
        })
    }
}

impl Server {
    /// This server's state as plain data (see the module documentation). Refused for a
    /// malicious provider and while events wait to be taken.
    pub fn snapshot_state(&self) -> Result<ServerSnapshot, SnapshotError> {
        if let Some(adversary) = self.follower.adversary() {
            return Err(SnapshotError::Adversary {
                domain: self.domain.clone(),
                adversary,
            });
        }
        let (hub_provider, routes, last_timestamp, hub_events) = self.hub.durable_parts();
        if hub_events || self.follower.follower().has_events() {
            return Err(SnapshotError::EventsWaiting);
        }
        let mut rooms = BTreeMap::new();
        for r in self.hub.rooms() {
            rooms.insert(r.room.clone(), RoomSnapshot::of(r)?);
        }
        let mut follower = self.follower.follower().export_state();
        Ok(ServerSnapshot {
            domain: self.domain.clone(),
            core: CoreState {
                hub_stream: hub_provider.seeded_crypto().stream_position(),
                key_package_routes: routes.clone(),
                last_timestamp,
                next_token: self.next_token,
                pending: self.pending.clone(),
                transfer: self.transfer.export(),
            },
            notify_dedup: std::mem::take(&mut follower.recent),
            follower,
            rooms,
        })
    }

    /// Puts `snapshot` back into this server, which must be built as the snapshotted
    /// one was (same provider and seed; the configuration is this server's). On an
    /// error this server is unusable (partly restored) and must be dropped.
    pub fn restore(&mut self, snapshot: ServerSnapshot) -> Result<(), SnapshotError> {
        if snapshot.domain != self.domain {
            return Err(SnapshotError::OtherProvider {
                found: snapshot.domain,
                expected: self.domain.clone(),
            });
        }
        if let Some(adversary) = self.follower.adversary() {
            return Err(SnapshotError::Adversary {
                domain: self.domain.clone(),
                adversary,
            });
        }
        let mut rooms = BTreeMap::new();
        for (uri, r) in snapshot.rooms {
            let room = r.into_room(uri.clone())?;
            rooms.insert(uri, room);
        }
        let c = snapshot.core;
        let (hub_provider, ..) = self.hub.durable_parts();
        if !hub_provider
            .seeded_crypto()
            .set_stream_position(&c.hub_stream)
        {
            return Err(SnapshotError::OtherStream { what: "hub" });
        }
        if !self.transfer.import(c.transfer) {
            return Err(SnapshotError::OtherStream {
                what: "fence verifier",
            });
        }
        self.hub
            .restore_durable(rooms, c.key_package_routes, c.last_timestamp);
        let mut follower = snapshot.follower;
        follower.recent = snapshot.notify_dedup;
        self.follower_mut().import_state(follower)?;
        self.next_token = c.next_token;
        self.pending = c.pending;
        Ok(())
    }
}
