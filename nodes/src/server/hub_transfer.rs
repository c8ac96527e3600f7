//! x-hub-transfer in the server (see [`crate::transfer`] for the extension itself):
//! the `/handoff/{roomId}` and `/fence/{roomId}` endpoints, the timers that send them,
//! routing of a room's requests by the provider's [`HubDirectory`], and fencing of
//! `/notify` from a hub that is no longer the room's hub.
//!
//! * After this provider's hub accepted a transfer commit and its fan-out is idle
//!   ([`crate::hub::Hub::export_handoff`] yields), the [`Handoff`] is sent to the new
//!   hub, resent with backoff until it answers 200.
//! * A hub that imported a handoff or took a room over sends a [`Fence`] to every
//!   provider it knows in the room (and the room's creator), resent until 200. A
//!   follower verifies the fence's GroupInfo (signature, room, hub component) before it
//!   believes it; a hub that is fenced stops sequencing ([`crate::hub::Hub::fence`]).
//! * The directory also learns from this provider's own hub (committed state) and from
//!   `421` [`HubMoved`] answers, after which the relayed request is sent to the new hub.
//!
//! # Choices
//!
//! * Fences are sent after a cooperative handoff too (as an announcement: the old hub
//!   answers "already known", followers learn the new hub before its first `/notify`).
//! * A follower refuses a `/notify` from a hub that is not the room's hub in its
//!   directory with `421` and a [`HubMoved`] body; the sending hub keeps retrying, so a
//!   follower that learns late still gets the log.
//! * [`TransferMode::Unfenced`] (for the simulator's "takeover-unfenced" variant): no
//!   fences are sent and followers accept `/notify` from any hub.
//! * Retries: 100 ms × 2^attempt, at most 5 s, no jitter (deterministic).
//! * A relayed request follows at most [`MAX_MOVED_HOPS`] `421` answers.

use std::collections::BTreeMap;

use crate::endpoint::Endpoint;
use crate::hub::PublicView;
use crate::ids::{Domain, RoomUri};
use crate::io::{status, Millis, Response, ServerOutput};
use crate::mls::SeededProvider;
use crate::transfer::{self, Fence, Handoff, HubDirectory, HubMoved};
use openmls_traits::OpenMlsProvider as _;

use super::{Pending, Server};

/// Most `421` answers a relayed request follows to a new hub.
pub const MAX_MOVED_HOPS: u8 = 3;
/// First resend delay of a handoff or fence.
pub const RETRY_BASE_MS: Millis = 100;
/// Longest resend delay.
pub const RETRY_MAX_MS: Millis = 5_000;

/// Whether the new hub fences the old one (x-hub-transfer §5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransferMode {
    /// Fences are sent, and followers accept `/notify` only from the room's hub.
    #[default]
    Fenced,
    /// No fences; followers accept `/notify` from any hub (to show what breaks).
    Unfenced,
}

/// One message resent until it is answered 200.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Retry {
    attempt: u32,
    next_at: Millis,
    in_flight: bool,
    done: bool,
}

impl Retry {
    /// When this retry is next due, if that is after `after` (a due retry that did not
    /// go out waits on an input).
    fn due_after(&self, after: Millis) -> Option<Millis> {
        (!self.done && !self.in_flight && self.next_at > after).then_some(self.next_at)
    }

    fn due(&self, now: Millis) -> bool {
        !self.done && !self.in_flight && now >= self.next_at
    }
    fn failed(&mut self, now: Millis) {
        self.in_flight = false;
        let delay = RETRY_BASE_MS
            .saturating_mul(1u64 << self.attempt.min(16))
            .min(RETRY_MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        self.next_at = now.saturating_add(delay);
    }
}

/// [`TransferState`] as plain data (see [`super::snapshot`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct TransferSnapshot {
    directory: HubDirectory,
    handoffs: BTreeMap<RoomUri, Retry>,
    fences: BTreeMap<(RoomUri, u64, Domain), Retry>,
    verifier: crate::mls::StreamPosition,
}

/// The server's x-hub-transfer state.
pub(super) struct TransferState {
    pub(super) mode: TransferMode,
    pub(super) directory: HubDirectory,
    /// Handoffs to send, per room (to the room's new hub).
    handoffs: BTreeMap<RoomUri, Retry>,
    /// Fences to send, per (room, generation, provider).
    fences: BTreeMap<(RoomUri, u64, Domain), Retry>,
    /// Verifies fences' GroupInfo signatures (draws no randomness).
    verifier: SeededProvider,
}

impl TransferState {
    /// The earliest handoff or fence retry due after `after` (see [`Retry::due_after`]).
    pub(super) fn next_retry_after(&self, after: Millis) -> Option<Millis> {
        self.handoffs
            .values()
            .chain(self.fences.values())
            .filter_map(|r| r.due_after(after))
            .min()
    }

    /// An independent deep copy; see [`Server::checkpoint`].
    pub(super) fn checkpoint(&self) -> TransferState {
        TransferState {
            mode: self.mode,
            directory: self.directory.clone(),
            handoffs: self.handoffs.clone(),
            fences: self.fences.clone(),
            verifier: self.verifier.checkpoint(),
        }
    }

    /// The state as plain data (the mode is configuration, not state), for a durable
    /// snapshot ([`super::snapshot`]).
    pub(super) fn export(&self) -> TransferSnapshot {
        TransferSnapshot {
            directory: self.directory.clone(),
            handoffs: self.handoffs.clone(),
            fences: self.fences.clone(),
            verifier: self.verifier.seeded_crypto().stream_position(),
        }
    }

    /// Puts back what [`TransferState::export`] gave, on a state built for the same
    /// provider and seed; `false` (nothing changed) if the verifier's stream differs.
    pub(super) fn import(&mut self, s: TransferSnapshot) -> bool {
        if !self
            .verifier
            .seeded_crypto()
            .set_stream_position(&s.verifier)
        {
            return false;
        }
        self.directory = s.directory;
        self.handoffs = s.handoffs;
        self.fences = s.fences;
        true
    }

    pub(super) fn new(run_seed: u64, domain: &Domain) -> Self {
        TransferState {
            mode: TransferMode::default(),
            directory: HubDirectory::new(),
            handoffs: BTreeMap::new(),
            fences: BTreeMap::new(),
            verifier: SeededProvider::for_node(run_seed, &format!("fence-verifier:{domain}")),
        }
    }
}

impl Server {
    /// Run hub transfer without fencing ([`TransferMode::Unfenced`]) or with it.
    pub fn with_transfer_mode(mut self, mode: TransferMode) -> Self {
        self.transfer.mode = mode;
        self
    }

    /// This provider's hub directory (where it routes each room's requests).
    pub fn hub_directory(&self) -> &HubDirectory {
        &self.transfer.directory
    }

    /// Whether a `/notify` for `room` from `from` is taken (x-hub-transfer §5).
    pub(super) fn accepts_notify(&self, room: &RoomUri, from: &Domain) -> bool {
        self.transfer.mode == TransferMode::Unfenced
            || self.transfer.directory.accepts_notify(room, from)
    }

    /// The 421 a follower answers to a `/notify` from a hub it does not follow.
    pub(super) fn notify_refused(&self, room: &RoomUri) -> Response {
        HubMoved {
            room: room.clone(),
            hub: self.transfer.directory.record(room),
        }
        .response()
    }

    /// Learn from a `421` answer (sent by `from`); returns the new hub if it moved.
    pub(super) fn learn_moved(&mut self, from: &Domain, response: &Response) -> Option<Domain> {
        let moved = HubMoved::of_response(response)?;
        // The answering hub handed off or was fenced; either way it stops delivering
        // after the move itself, so it may drain what it has.
        self.transfer
            .directory
            .observe(&moved.room, &moved.hub, Some(from));
        let to = self.transfer.directory.hub_of(&moved.room);
        (to != *from).then_some(to)
    }

    /// `POST /handoff/{roomId}` from `from`.
    pub(super) fn on_handoff(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        body: &[u8],
    ) -> Response {
        let h = match Handoff::decode(body) {
            Ok(h) => h,
            Err(e) => return Response::error(status::BAD_REQUEST, format!("Handoff: {e}")),
        };
        if h.room != *room {
            return Response::error(status::BAD_REQUEST, "the Handoff is for another room");
        }
        match self.hub.import_handoff(now, from, &h) {
            Ok(()) => {
                self.transfer
                    .directory
                    .observe(room, &h.hub, Some(&h.from_hub));
                Response::empty(status::OK)
            }
            Err(e) => Response::error(status::CONFLICT, e.to_string()),
        }
    }

    /// `POST /fence/{roomId}` from `from`.
    pub(super) fn on_fence(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        body: &[u8],
    ) -> Response {
        let f = match Fence::decode(body) {
            Ok(f) => f,
            Err(e) => return Response::error(status::BAD_REQUEST, format!("Fence: {e}")),
        };
        if f.room != *room {
            return Response::error(status::BAD_REQUEST, "the Fence is for another room");
        }
        if *from != f.hub.hub {
            return Response::error(
                status::FORBIDDEN,
                format!("a fence naming {} sent by {from}", f.hub.hub),
            );
        }
        if self.transfer.directory.record(room).generation >= f.hub.generation
            && !self.hub.hosts(room)
        {
            return Response::empty(status::OK);
        }
        if let Err(reason) = self.verify_fence(&f) {
            return Response::error(status::BAD_REQUEST, format!("Fence: {reason}"));
        }
        if self.hub.hosts(room) {
            if let Err(e) = self.hub.fence(now, from, &f) {
                return Response::error(status::CONFLICT, e.to_string());
            }
        }
        self.transfer.directory.observe(room, &f.hub, None);
        Response::empty(status::OK)
    }

    /// A fence is believed if its GroupInfo verifies against its tree, is the room's,
    /// and its room state names the fence's hub record.
    fn verify_fence(&self, f: &Fence) -> Result<(), String> {
        let view = PublicView::from_group_info(
            self.transfer.verifier.crypto(),
            &f.group_info,
            &f.ratchet_tree,
        )
        .map_err(|e| e.to_string())?;
        if view.group_id() != f.room.as_bytes() {
            return Err("the GroupInfo is of another group".into());
        }
        let record =
            transfer::hub_record(&f.room, &view.dictionary()).map_err(|e| e.to_string())?;
        if record != f.hub {
            return Err(format!(
                "the GroupInfo names hub {} generation {}, the fence {} generation {}",
                record.hub, record.generation, f.hub.hub, f.hub.generation
            ));
        }
        Ok(())
    }

    /// The fence this hub sends for `room` after a handoff or takeover, if it sequences
    /// a room it did not create or that moved back to it.
    fn fence_of(&self, room: &RoomUri) -> Option<Fence> {
        if let Some(f) = self.hub.export_fence(room) {
            return Some(f);
        }
        let r = self.hub.room(room)?;
        (self.hub.sequencing(room) && r.record.generation > 0 && r.record.hub == self.domain).then(
            || Fence {
                room: room.clone(),
                hub: r.record.clone(),
                base_epoch: r.epoch.saturating_sub(1),
                group_info: r.group_info.clone(),
                ratchet_tree: r.ratchet_tree.clone(),
            },
        )
    }

    /// Sync the directory with this provider's own hub and send the handoffs and fences
    /// that are due. Called from every handler.
    pub(super) fn drive_transfer(&mut self, now: Millis, out: &mut Vec<ServerOutput>) {
        let rooms: Vec<(RoomUri, transfer::HubRecord, bool, Vec<Domain>)> = self
            .hub
            .rooms()
            .filter_map(|r| {
                let rec = self.hub.hub_record(&r.room)?;
                // Fence targets: every provider the hub knows in the room, and every
                // member client's provider (a takeover starts from a GroupInfo only).
                let mut known: Vec<Domain> = r.known_domains.iter().cloned().collect();
                if let Some(v) = &r.view {
                    known.extend(
                        v.members()
                            .into_iter()
                            .filter_map(|(_, c)| c.map(|c| c.domain())),
                    );
                }
                Some((r.room.clone(), rec, self.hub.sequencing(&r.room), known))
            })
            .collect();
        for (room, record, sequencing, known) in rooms {
            let own = self.domain.clone();
            let previous = self.transfer.directory.hub_of(&room);
            if record.hub != own {
                // Handed off (or fenced): the old hub may drain its own log.
                self.transfer
                    .directory
                    .observe(&room, &record, Some(&previous));
                if !sequencing {
                    let retry = self.transfer.handoffs.entry(room.clone()).or_default();
                    if retry.due(now) {
                        if let Some(h) = self.hub.export_handoff(&room) {
                            if let Some(r) = self.transfer.handoffs.get_mut(&room) {
                                r.in_flight = true;
                            }
                            self.send(
                                out,
                                record.hub.clone(),
                                Endpoint::Handoff(room.clone()),
                                h.encode(),
                                Pending::Handoff { room: room.clone() },
                            );
                        }
                    }
                }
                continue;
            }
            if !sequencing {
                continue;
            }
            self.transfer.directory.observe(&room, &record, None);
            if self.transfer.mode == TransferMode::Unfenced || record.generation == 0 {
                continue;
            }
            let mut targets: Vec<Domain> = known;
            targets.push(room.domain());
            targets.sort();
            targets.dedup();
            for to in targets.into_iter().filter(|d| *d != own) {
                let key = (room.clone(), record.generation, to.clone());
                let retry = self.transfer.fences.entry(key.clone()).or_default();
                if !retry.due(now) {
                    continue;
                }
                let Some(f) = self.fence_of(&room) else {
                    break;
                };
                if let Some(r) = self.transfer.fences.get_mut(&key) {
                    r.in_flight = true;
                }
                self.send(
                    out,
                    to.clone(),
                    Endpoint::Fence(room.clone()),
                    f.encode(),
                    Pending::Fence {
                        room: room.clone(),
                        generation: record.generation,
                        to,
                    },
                );
            }
        }
    }

    /// The answer to a handoff or fence this server sent.
    pub(super) fn transfer_answered(&mut self, now: Millis, pending: &Pending, ok: bool) {
        let retry = match pending {
            Pending::Handoff { room } => self.transfer.handoffs.get_mut(room),
            Pending::Fence {
                room,
                generation,
                to,
            } => self
                .transfer
                .fences
                .get_mut(&(room.clone(), *generation, to.clone())),
            _ => None,
        };
        if let Some(r) = retry {
            if ok {
                r.in_flight = false;
                r.done = true;
            } else {
                r.failed(now);
            }
        }
    }

    /// After a restart nothing is in flight any more.
    pub(super) fn transfer_restarted(&mut self) {
        for r in self.transfer.handoffs.values_mut() {
            r.in_flight = false;
        }
        for r in self.transfer.fences.values_mut() {
            r.in_flight = false;
        }
    }
}
