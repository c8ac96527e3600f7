//! The hub core (sans-IO): sequencer and enforcement point of the rooms it hosts
//! (P§1, P§5.3–5.6). Requests come in as bodies with the sending provider and the time;
//! answers go out as response bodies; accepted messages go into each room's log, from
//! which [`Hub::poll_notify`] produces `/notify` requests, one outstanding per provider
//! so that every follower receives the room in hub order.
//!
//! # Choices
//!
//! * Idempotent retries: a request whose MLS message (the commit, the first proposal of
//!   a bundle, the application message) is byte-identical to one accepted recently
//!   (the last [`super::room::MAX_REMEMBERED_ACCEPTED`] per room) is answered with the original
//!   success and its original timestamp, and nothing is logged again. A client that lost
//!   the answer (timeout, provider crash) resends the same bytes and learns the truth;
//!   the drafts say nothing about retries of `/update` and `/submitMessage`.
//! * A repeated room creation with the same GroupInfo and tree is answered OK.
//! * Crash and restart ([`Hub::forget_in_flight`]): the log and cursors are durable;
//!   every `/notify` in flight is sent again (byte-identical) at once.
//!
//! The hub takes the protocol's steps. A hub with planted bugs ([`crate::planted`]) is
//! a wrapper that drives this one through the `_with` entry points with steps of its
//! own (`HubSteps`, `core/steps.rs`): nothing here branches on a bug.

use std::collections::{BTreeMap, BTreeSet};

use openmls_traits::OpenMlsProvider;

use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{status, Millis, Response, Token};
use crate::mls::config::{self, Identity};
use crate::mls::SeededProvider;
use crate::room::exiting;
use crate::room::hub_only::{self, HubOnlyUpdate, RoomStateMode};
use crate::room::{
    authorize, check_commit_composition, Actor, Capability, ChangeKind, ComponentOp,
    ProposedChange, RoomState, PARTICIPANT_LIST,
};
use crate::wire::fanout::MAX_ROOM_STATE_BYTES;
use crate::wire::{
    decode_exact, encode, ExternalSenderBytes, FanoutBody, FanoutMessage, GroupInfoBytes,
    GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoResponse, GroupInfoStatus, HandshakeBody,
    IdentifierUri, KeyMaterialResponse, MlsMessageBytes, PendingProposal, ProposalRefBytes,
    Protocol, RatchetTreeBytes, RatchetTreeOption, SubmitMessageRequest, SubmitMessageResponse,
    SubmitOutcome, UpdateOutcome, UpdateRequest, UpdateRoomResponse, WireError, WireFormatKind,
    MAX_BODY_BYTES,
};

use super::enforcement::{EnforcementConfig, Rule};
use super::public_view::{CoveredProposal, HandshakeSender, PublicView, ViewError};
use super::room::{AcceptedProposal, HubRoom, InFlight, LogEntry, Sequencer};
use crate::transfer::{self, Fence, FenceOutcome, Handoff, HubMoved, HubRecord, TransferError};
use sha2::{Digest, Sha256};

mod commit;
mod steps;

pub(crate) use steps::{HubSteps, ProtocolSteps};

/// What the proposal rules decided: the hub state after the proposals with their change
/// (when the policy rules ran), and the users they remove or ban.
type ProposalsChecked = (Option<(RoomState, ProposedChange)>, Vec<UserUri>);

/// At most this many FanoutMessages in one `/notify` body.
pub const MAX_NOTIFY_BATCH: usize = 64;
/// First `/notify` retry delay; doubles per attempt up to [`NOTIFY_RETRY_MAX_MS`].
pub const NOTIFY_RETRY_BASE_MS: Millis = 200;
pub const NOTIFY_RETRY_MAX_MS: Millis = 5_000;

/// Why the hub refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    /// The rule that refused it (`None` for ordering and malformed input).
    pub rule: Option<Rule>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectCode {
    WrongEpoch(u64),
    NotAllowed,
    InvalidProposal(Vec<Vec<u8>>),
    /// The hub's own fault (e.g. a log entry it cannot encode): nothing was accepted,
    /// the answer is HTTP 500.
    Internal,
}

/// A refusal for the hub's own fault ([`RejectCode::Internal`]).
pub(crate) fn internal(reason: impl Into<String>) -> Rejection {
    Rejection {
        code: RejectCode::Internal,
        rule: None,
        reason: format!("internal error, nothing accepted: {}", reason.into()),
    }
}

/// A log entry, encoded before the hub changes any state for the acceptance that
/// produces it (so that an encoding failure refuses the request instead of leaving an
/// accepted message out of the log).
pub(crate) struct Entry {
    /// The encoded FanoutMessage.
    fanout: Vec<u8>,
    timestamp: Millis,
    kind: &'static str,
    epoch: u64,
}

fn reject(rule: Rule, reason: impl Into<String>) -> Rejection {
    Rejection {
        code: RejectCode::NotAllowed,
        rule: Some(rule),
        reason: format!("{} ({}): {}", rule.id(), rule.reference(), reason.into()),
    }
}

/// x-exiting-state ([`exiting`]): rules `exiting-role` and `exiting-add` on a change,
/// against the hub state before it; `joiner`: the client joining by external commit.
fn check_exiting(
    config: &EnforcementConfig,
    state: &RoomState,
    actor: &Actor,
    change: &ProposedChange,
    joiner: Option<&ClientUri>,
) -> Result<(), Rejection> {
    if config.on(Rule::ExitingRole) {
        exiting::check_roles(state, actor, change)
            .map_err(|e| reject(Rule::ExitingRole, e.to_string()))?;
    }
    if config.on(Rule::ExitingAdd) {
        let with_joiner;
        let adds = match joiner {
            Some(cl) => {
                with_joiner = change.clone().add_client(cl);
                &with_joiner
            }
            None => change,
        };
        exiting::check_adds(state, adds).map_err(|e| reject(Rule::ExitingAdd, e.to_string()))?;
    }
    Ok(())
}

/// What the hub observed, for the trace and the oracles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum HubEvent {
    RoomCreated {
        room: RoomUri,
        epoch: u64,
    },
    /// A message was accepted and put in the log at `seq`.
    Accepted {
        room: RoomUri,
        kind: &'static str,
        epoch: u64,
        seq: u64,
        timestamp: Millis,
        from: Domain,
    },
    /// A request was refused. `request_sha256` is the SHA-256 (hex) of the request body
    /// as the hub got it: the requesting client's `OpFailed` names the same digest, so a
    /// refusal is matched to the op it ended by bytes, never by its text.
    Rejected {
        room: RoomUri,
        endpoint: &'static str,
        code: String,
        rule: Option<&'static str>,
        reason: String,
        request_sha256: String,
    },
    /// A byte-identical retry of an accepted message got the original answer.
    RetryAnswered {
        room: RoomUri,
        endpoint: &'static str,
        timestamp: Millis,
        from: Domain,
    },
    /// What an accepted commit did (from the hub's public view), for the trace.
    CommitContents {
        room: RoomUri,
        epoch: u64,
        committer: String,
        proposals: Vec<String>,
    },
    /// The hub's MLS view could not follow a message it accepted (enforcement allowed it).
    ViewDiverged {
        room: RoomUri,
        epoch: u64,
        reason: String,
    },
    /// x-hub-transfer: this hub handed the room's state to the next hub.
    HandoffExported {
        room: RoomUri,
        to: Domain,
        generation: u64,
        epoch: u64,
        next_seq: u64,
    },
    /// x-hub-transfer: this hub took the room over from a handoff and now sequences it.
    HandoffImported {
        room: RoomUri,
        from: Domain,
        generation: u64,
        epoch: u64,
        next_seq: u64,
    },
    /// x-hub-transfer: this hub sequenced a takeover commit and now sequences the room.
    TookOver {
        room: RoomUri,
        previous_hub: Domain,
        generation: u64,
        /// The epoch the takeover commit was built on.
        base_epoch: u64,
    },
    /// x-hub-transfer: this hub no longer sequences the room (`reason`: "handed off" or
    /// "fenced"). `fork_epoch`: after a fence, the epoch for which this hub had
    /// sequenced a commit too (two sequencers for one epoch). `abandoned`: log entries
    /// of later epochs it will not deliver.
    StoppedSequencing {
        room: RoomUri,
        new_hub: Domain,
        generation: u64,
        reason: &'static str,
        fork_epoch: Option<u64>,
        abandoned: u64,
    },
    /// An application message was accepted (P§5.4) under the sendingUri its provider
    /// named; `mls_message_sha256` is the SHA-256 (hex) of its MLSMessage bytes, so the
    /// simulator can match it with the client that built it (oracle `sending-uri-is-sender`).
    SenderAccepted {
        room: RoomUri,
        epoch: u64,
        sending_uri: String,
        mls_message_sha256: String,
    },
}

/// The hub role of one provider.
pub struct Hub {
    domain: Domain,
    provider: SeededProvider,
    identity: Identity,
    config: EnforcementConfig,
    rooms: BTreeMap<RoomUri, HubRoom>,
    /// KeyPackageRef → provider that handed it out (P§5.2), for Welcome routing.
    key_package_routes: BTreeMap<Vec<u8>, Domain>,
    last_timestamp: Millis,
    events: Vec<HubEvent>,
    /// Where the participant list lives (issue 4; [`crate::room::hub_only`]).
    room_state: RoomStateMode,
}

impl Hub {
    pub fn new(domain: Domain, run_seed: u64, config: EnforcementConfig) -> Self {
        let provider = SeededProvider::for_node(run_seed, &format!("hub:{domain}"));
        let identity =
            Identity::for_server(&provider, &domain).expect("seeded Ed25519 key generation");
        Hub {
            domain,
            provider,
            identity,
            config,
            rooms: BTreeMap::new(),
            key_package_routes: BTreeMap::new(),
            last_timestamp: 0,
            events: Vec::new(),
            room_state: RoomStateMode::Bound,
        }
    }

    /// An independent deep copy of this hub (every room, the stream position of its
    /// provider, its events); see [`crate::server::Server::checkpoint`].
    pub fn checkpoint(&self) -> Result<Hub, ViewError> {
        let mut rooms = BTreeMap::new();
        for (uri, room) in &self.rooms {
            rooms.insert(uri.clone(), room.checkpoint()?);
        }
        Ok(Hub {
            domain: self.domain.clone(),
            provider: self.provider.checkpoint(),
            identity: self.identity.clone(),
            config: self.config.clone(),
            rooms,
            key_package_routes: self.key_package_routes.clone(),
            last_timestamp: self.last_timestamp,
            events: self.events.clone(),
            room_state: self.room_state,
        })
    }

    /// The hub's state besides its rooms and its configuration, for a durable snapshot
    /// ([`crate::server::snapshot`]): its provider (stream position), the Welcome routes
    /// (KeyPackageRef → provider), the last timestamp, whether events wait to be taken.
    pub(crate) fn durable_parts(
        &self,
    ) -> (&SeededProvider, &BTreeMap<Vec<u8>, Domain>, Millis, bool) {
        (
            &self.provider,
            &self.key_package_routes,
            self.last_timestamp,
            !self.events.is_empty(),
        )
    }

    /// Puts back what [`Hub::durable_parts`] and [`Hub::rooms`] gave (the provider's
    /// stream is moved by the caller).
    pub(crate) fn restore_durable(
        &mut self,
        rooms: BTreeMap<RoomUri, HubRoom>,
        key_package_routes: BTreeMap<Vec<u8>, Domain>,
        last_timestamp: Millis,
    ) {
        self.rooms = rooms;
        self.key_package_routes = key_package_routes;
        self.last_timestamp = last_timestamp;
        self.events.clear();
    }

    /// Follow the room-state variant `mode` (x-hub-only-room-state under
    /// [`RoomStateMode::HubOnly`], see [`crate::room::hub_only`]).
    pub fn set_room_state_mode(&mut self, mode: RoomStateMode) {
        self.room_state = mode;
    }

    /// The room-state variant this hub follows.
    pub fn room_state_mode(&self) -> RoomStateMode {
        self.room_state
    }

    /// x-hub-only-room-state: the covered proposals of a handshake plus its out-of-band
    /// list updates as AppDataUpdates, so that the policy checks judge them exactly as
    /// bound AppDataUpdates. At `full`, a `participant_list` AppDataUpdate in MLS is
    /// refused (the list is not in the GroupContext). Under bound: `covered` unchanged.
    fn with_list_updates(
        &self,
        mut covered: Vec<CoveredProposal>,
        list: &[(u16, Vec<u8>)],
    ) -> Result<Vec<CoveredProposal>, Rejection> {
        if !self.room_state.is_hub_only() {
            return Ok(covered);
        }
        let in_mls = covered.iter().any(|p| {
            matches!(p, CoveredProposal::AppDataUpdate { component, .. } if *component == PARTICIPANT_LIST)
        });
        if in_mls && self.config.on(Rule::ListMembership) {
            return Err(reject(
                Rule::ListMembership,
                "x-hub-only-room-state: the participant list changes beside the handshake, not by an AppDataUpdate in MLS",
            ));
        }
        covered.extend(
            list.iter()
                .map(|(component, update)| CoveredProposal::AppDataUpdate {
                    component: *component,
                    update: Some(update.clone()),
                }),
        );
        Ok(covered)
    }

    /// x-hub-only-room-state below the policy checks: `state` with the out-of-band list
    /// updates applied unchecked; a change that does not apply is no change (Choices).
    fn apply_unchecked(state: &RoomState, kind: ChangeKind, list: &[(u16, Vec<u8>)]) -> RoomState {
        let updates: Vec<(u16, ComponentOp)> = list
            .iter()
            .map(|(c, u)| (*c, ComponentOp::Update(u.clone())))
            .collect();
        let base = match kind {
            ChangeKind::Proposals => ProposedChange::proposals(),
            ChangeKind::Commit => ProposedChange::commit(),
            ChangeKind::ExternalCommit => ProposedChange::external_commit(),
        };
        base.with_app_data_updates(&state.participants, &updates)
            .ok()
            .and_then(|c| state.apply(&c).ok())
            .unwrap_or_else(|| state.clone())
    }

    /// The process restarted (its state is durable, its connections are not): every
    /// `/notify` in flight is no longer outstanding and goes out again at `now`.
    pub fn forget_in_flight(&mut self, now: Millis) {
        for r in self.rooms.values_mut() {
            for ob in r.outbound.values_mut() {
                if let Some(f) = ob.in_flight.as_mut() {
                    f.token = None;
                    f.send_at = Some(now);
                }
            }
        }
    }

    /// The original timestamp if `message` was accepted recently in `room`.
    fn already_accepted(
        &mut self,
        room: &RoomUri,
        endpoint: &'static str,
        from: &Domain,
        message: &[u8],
    ) -> Option<Millis> {
        let h: [u8; 32] = Sha256::digest(message).into();
        let ts = *self.rooms.get(room)?.accepted.get(&h)?;
        self.events.push(HubEvent::RetryAnswered {
            room: room.clone(),
            endpoint,
            timestamp: ts,
            from: from.clone(),
        });
        Some(ts)
    }

    fn remember_accepted(&mut self, room: &RoomUri, message: &[u8], ts: Millis) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.remember_accepted(Sha256::digest(message).into(), ts);
        }
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    pub fn config(&self) -> &EnforcementConfig {
        &self.config
    }
    /// The hub's `external_senders` entry (P§7.4).
    pub fn external_sender(&self) -> openmls::prelude::ExternalSender {
        self.identity.external_sender()
    }
    pub fn hosts(&self, room: &RoomUri) -> bool {
        self.rooms.contains_key(room)
    }
    pub fn room(&self, room: &RoomUri) -> Option<&HubRoom> {
        self.rooms.get(room)
    }
    pub fn rooms(&self) -> impl Iterator<Item = &HubRoom> {
        self.rooms.values()
    }
    pub fn take_events(&mut self) -> Vec<HubEvent> {
        std::mem::take(&mut self.events)
    }

    /// The timestamp of a message accepted at `now`, which the hub then keeps as its last.
    pub(crate) fn timestamp(&mut self, now: Millis) -> Millis {
        self.last_timestamp = self.next_timestamp(now);
        self.last_timestamp
    }

    /// The timestamp a message accepted at `now` will get, without accepting it.
    pub(crate) fn next_timestamp(&self, now: Millis) -> Millis {
        // Accepted timestamps never decrease in hub order: clients order messages by
        // them (C§3.4, C§4.2), so they must agree with the hub's order.
        self.last_timestamp.max(now)
    }

    /// Create a room hosted here from its creator's GroupInfo and tree (P§3.1; local).
    pub fn create_room(
        &mut self,
        room: &RoomUri,
        creator: &ClientUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<(), String> {
        let mut hasher = Sha256::new();
        hasher.update(group_info);
        hasher.update(ratchet_tree);
        let created_from: [u8; 32] = hasher.finalize().into();
        if let Some(r) = self.rooms.get(room) {
            if r.created_from == created_from {
                return Ok(());
            }
            return Err(format!("room {room} exists"));
        }
        let view = PublicView::from_group_info(self.provider.crypto(), group_info, ratchet_tree)
            .map_err(|e| format!("creator's GroupInfo: {e}"))?;
        if view.group_id() != room.as_bytes() {
            return Err("the group id must be the room URI".into());
        }
        let state = RoomState::from_dictionary(&view.dictionary())
            .map_err(|e| format!("room state in the GroupContext: {e}"))?;
        let epoch = view.epoch();
        let record = transfer::hub_record(room, &view.dictionary())
            .map_err(|e| format!("hub record in the GroupContext: {e}"))?;
        if record.hub != self.domain {
            return Err(format!("the room state names {} as hub", record.hub));
        }
        let mut known = BTreeSet::new();
        known.insert(creator.domain());
        let mut r = Self::new_room(
            room,
            view,
            state,
            group_info,
            ratchet_tree,
            created_from,
            record,
        );
        r.known_domains = known;
        self.rooms.insert(room.clone(), r);
        if !self.config.tracks_mls() {
            if let Some(r) = self.rooms.get_mut(room) {
                r.view = None;
            }
        }
        self.events.push(HubEvent::RoomCreated {
            room: room.clone(),
            epoch,
        });
        Ok(())
    }

    /// A freshly hosted room (sequencing, empty log) from a view of its current epoch.
    fn new_room(
        room: &RoomUri,
        view: PublicView,
        state: RoomState,
        group_info: &[u8],
        ratchet_tree: &[u8],
        created_from: [u8; 32],
        record: HubRecord,
    ) -> HubRoom {
        HubRoom {
            room: room.clone(),
            group_id: room.as_bytes().to_vec(),
            epoch: view.epoch(),
            view: Some(view),
            committed: state.clone(),
            hub_state: state,
            pending: Vec::new(),
            muted: BTreeSet::new(),
            group_info: group_info.to_vec(),
            ratchet_tree: ratchet_tree.to_vec(),
            authorized_joiners: BTreeSet::new(),
            known_domains: BTreeSet::new(),
            log: Vec::new(),
            outbound: BTreeMap::new(),
            pending_client_delta: BTreeMap::new(),
            pending_added: BTreeSet::new(),
            created_from,
            accepted: BTreeMap::new(),
            accepted_order: Default::default(),
            record,
            sequencer: Sequencer::Active,
            seq_base: 0,
            took_over_at: None,
        }
    }

    /// Remember which provider handed out the KeyPackages in a KeyMaterialResponse
    /// that passed through this hub (P§5.2).
    pub fn record_key_material(&mut self, provider: &Domain, response: &[u8]) {
        if let Ok(resp) = decode_exact::<KeyMaterialResponse>(response) {
            for c in resp.clients {
                if let crate::wire::ClientMaterial::Success(kp) = c.material {
                    if let Ok(r) = kp.key_package_ref(self.provider.crypto()) {
                        self.key_package_routes.insert(r, provider.clone());
                    }
                }
            }
        }
    }

    fn rejected(&mut self, room: &RoomUri, endpoint: &'static str, body: &[u8], r: &Rejection) {
        self.events.push(HubEvent::Rejected {
            room: room.clone(),
            endpoint,
            code: match &r.code {
                RejectCode::WrongEpoch(_) => "wrongEpoch".into(),
                RejectCode::NotAllowed => "notAllowed".into(),
                RejectCode::InvalidProposal(_) => "invalidProposal".into(),
                RejectCode::Internal => "internal".into(),
            },
            rule: r.rule.map(Rule::id),
            reason: r.reason.clone(),
            request_sha256: hex::encode(Sha256::digest(body)),
        });
    }

    /// `POST /update/{room}` (P§5.3).
    pub fn update(&mut self, now: Millis, from: &Domain, room: &RoomUri, body: &[u8]) -> Response {
        self.update_with(&ProtocolSteps, now, from, room, body)
    }

    /// [`Hub::update`] taking `steps` where sequencing can deviate ([`HubSteps`]).
    pub(crate) fn update_with(
        &mut self,
        steps: &dyn HubSteps,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        body: &[u8],
    ) -> Response {
        let (req, list): (UpdateRequest, Vec<(u16, Vec<u8>)>) = match self.room_state {
            RoomStateMode::Bound => match decode_exact(body) {
                Ok(r) => (r, Vec::new()),
                Err(e) => {
                    return Response::error(status::BAD_REQUEST, format!("UpdateRequest: {e}"))
                }
            },
            RoomStateMode::HubOnly => match HubOnlyUpdate::decode(body) {
                Ok(u) => {
                    let list = u.as_app_data_updates();
                    (u.request, list)
                }
                Err(e) => return Response::error(status::BAD_REQUEST, e.to_string()),
            },
        };
        if !self.rooms.contains_key(room) {
            return Response::error(status::NOT_FOUND, format!("no room {room} at this hub"));
        }
        let first = req.bundle.proposal_or_commit.as_bytes().to_vec();
        let retry = self.already_accepted(room, "update", from, &first);
        if retry.is_none() {
            if let Some(moved) = self.moved(room, "update", body) {
                return moved;
            }
        }
        let result = match retry {
            Some(ts) => Ok(ts),
            None => self.accept_update(steps, now, from, room, &req, &list),
        };
        if let Ok(ts) = result {
            self.remember_accepted(room, &first, ts);
        }
        let outcome = match result {
            Ok(ts) => UpdateRoomResponse {
                error_description: String::new(),
                outcome: UpdateOutcome::Success {
                    accepted_timestamp: ts,
                },
            },
            Err(r) if r.code == RejectCode::Internal => {
                self.rejected(room, "update", body, &r);
                return Response::error(status::INTERNAL, r.reason);
            }
            Err(r) => {
                self.rejected(room, "update", body, &r);
                UpdateRoomResponse {
                    error_description: r.reason.clone(),
                    outcome: match r.code {
                        RejectCode::WrongEpoch(e) => UpdateOutcome::WrongEpoch { current_epoch: e },
                        RejectCode::NotAllowed | RejectCode::Internal => UpdateOutcome::NotAllowed,
                        RejectCode::InvalidProposal(refs) => UpdateOutcome::InvalidProposal {
                            invalid_proposals: refs
                                .iter()
                                .filter_map(|r| {
                                    ProposalRefBytes::from_openmls(&tls_codec::VLBytes::new(
                                        r.clone(),
                                    ))
                                    .ok()
                                })
                                .collect(),
                        },
                    },
                }
            }
        };
        match encode(&outcome) {
            Ok(b) => Response::new(status::OK, b),
            Err(e) => Response::error(status::INTERNAL, format!("UpdateRoomResponse: {e}")),
        }
    }

    fn accept_update(
        &mut self,
        steps: &dyn HubSteps,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        req: &UpdateRequest,
        list: &[(u16, Vec<u8>)],
    ) -> Result<Millis, Rejection> {
        if let Some(bundle) = commit::CommitBundle::of(req) {
            return self.accept_commit(steps, now, from, room, &bundle, list);
        }
        match &req.bundle.body {
            HandshakeBody::Commit { .. } => unreachable!("a commit bundle is handled above"),
            HandshakeBody::Proposal { more_proposals } => {
                let mut all = vec![req.bundle.proposal_or_commit.clone()];
                all.extend(more_proposals.iter().cloned());
                self.accept_proposals(now, from, room, &req.bundle.proposal_or_commit, &all, list)
            }
        }
    }

    fn check_epoch(r: &HubRoom, m: &MlsMessageBytes) -> Result<(), Rejection> {
        let info = m.info();
        if info.group_id.as_deref() != Some(r.group_id.as_slice()) {
            return Err(Rejection {
                code: RejectCode::NotAllowed,
                rule: None,
                reason: "message for another group".into(),
            });
        }
        match info.epoch {
            Some(e) if e == r.epoch => Ok(()),
            _ => Err(Rejection {
                code: RejectCode::WrongEpoch(r.epoch),
                rule: None,
                reason: format!(
                    "message for epoch {:?}, the room is at epoch {}",
                    info.epoch, r.epoch
                ),
            }),
        }
    }

    fn mls_rejection(e: ViewError, r: &HubRoom) -> Rejection {
        match e {
            ViewError::WrongEpoch { current, .. } => Rejection {
                code: RejectCode::WrongEpoch(current),
                rule: None,
                reason: e.to_string(),
            },
            other => {
                let _ = r;
                reject(Rule::MlsValid, other.to_string())
            }
        }
    }

    fn actor_of(&self, sender: &HandshakeSender, from: &Domain) -> Result<Actor, Rejection> {
        let check_provider = |d: Domain| {
            if self.config.on(Rule::SenderProvider) && &d != from {
                Err(reject(
                    Rule::SenderProvider,
                    format!("sender belongs to {d} but the request came from {from}"),
                ))
            } else {
                Ok(())
            }
        };
        match sender {
            HandshakeSender::Member {
                client: Some(c), ..
            } => {
                check_provider(c.domain())?;
                Ok(Actor::member(&c.user()))
            }
            HandshakeSender::NewMember { client: Some(c) } => {
                check_provider(c.domain())?;
                Ok(Actor::joiner(&c.user()))
            }
            HandshakeSender::External { identity, .. } => {
                let id = String::from_utf8_lossy(identity);
                let d = id
                    .strip_prefix("mimi://")
                    .and_then(|d| Domain::new(d).ok())
                    .ok_or_else(|| {
                        reject(Rule::Policy, "external sender without a server identity")
                    })?;
                check_provider(d.clone())?;
                Ok(Actor::server(&d))
            }
            _ => Err(reject(
                Rule::Policy,
                "sender's credential does not name a MIMI client",
            )),
        }
    }

    /// The room-level effect of proposals, in MIMI terms.
    fn change_of(
        state: &RoomState,
        kind: ChangeKind,
        proposals: &[CoveredProposal],
    ) -> Result<ProposedChange, Rejection> {
        let mut change = match kind {
            ChangeKind::Proposals => ProposedChange::proposals(),
            ChangeKind::Commit => ProposedChange::commit(),
            ChangeKind::ExternalCommit => ProposedChange::external_commit(),
        };
        let mut updates = Vec::new();
        for p in proposals {
            match p {
                CoveredProposal::Add {
                    client: Some(c), ..
                } => change = change.add_client(c),
                CoveredProposal::Remove {
                    client: Some(c), ..
                }
                | CoveredProposal::SelfRemove {
                    client: Some(c), ..
                } => change = change.remove_client(c),
                // x-hub-transfer: the hub component is checked by `check_transfer`.
                CoveredProposal::AppDataUpdate { component, .. }
                    if *component == transfer::HUB_COMPONENT => {}
                CoveredProposal::AppDataUpdate { component, update } => updates.push((
                    *component,
                    match update {
                        Some(b) => ComponentOp::Update(b.clone()),
                        None => ComponentOp::Remove,
                    },
                )),
                CoveredProposal::Add { client: None, .. } => {
                    return Err(reject(
                        Rule::ListMembership,
                        "an Add whose credential names no MIMI client",
                    ))
                }
                _ => {}
            }
        }
        change
            .with_app_data_updates(&state.participants, &updates)
            .map_err(|e| reject(Rule::Policy, e.to_string()))
    }

    fn accept_proposals(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        first: &MlsMessageBytes,
        all: &[MlsMessageBytes],
        list: &[(u16, Vec<u8>)],
    ) -> Result<Millis, Rejection> {
        let config = self.config.clone();
        let r = self.rooms.get(room).expect("checked by caller");
        for m in all {
            Self::check_epoch(r, m)?;
        }
        let mut checked = Vec::new();
        if let Some(view) = &r.view {
            for m in all {
                match view.check_proposal(self.provider.crypto(), m.as_bytes()) {
                    Ok(c) => checked.push(c),
                    Err(e) if config.on(Rule::MlsValid) => return Err(Self::mls_rejection(e, r)),
                    Err(_) => {}
                }
            }
        }
        let (new_state, muted) = if config.level >= super::Enforcement::Full
            && checked.len() == all.len()
            && !all.is_empty()
        {
            self.check_proposal_rules(from, r, &checked, list)?
        } else {
            (None, Vec::new())
        };
        // Encode the log entry before changing anything.
        let entry = Self::encode_entry(
            &FanoutMessage {
                timestamp: self.last_timestamp.max(now),
                message: first.clone(),
                body: FanoutBody::Proposal {
                    more_proposals: all[1..].to_vec(),
                },
            },
            "proposals",
            self.rooms.get(room).expect("checked by caller").epoch,
        )
        .map_err(|e| internal(format!("proposal fan-out: {e}")))?;
        // Accept.
        let ts = self.timestamp(now);
        let r = self.rooms.get_mut(room).expect("checked by caller");
        let references: Vec<Vec<u8>> = checked.iter().map(|c| c.reference.clone()).collect();
        if let Some(view) = r.view.as_mut() {
            for c in checked {
                let _ = view.store_proposal(c);
            }
        }
        let applied = new_state.is_some();
        if let Some((state, change)) = new_state {
            r.hub_state = state;
            for (u, n) in &change.client_adds {
                *r.pending_client_delta.entry(u.clone()).or_default() += i64::from(*n);
            }
            for (u, n) in &change.client_removes {
                *r.pending_client_delta.entry(u.clone()).or_default() -= i64::from(*n);
            }
            for u in change.list.mentions() {
                if r.hub_state.is_participant(u) && !r.committed.is_participant(u) {
                    r.pending_added.insert(u.clone());
                }
            }
        }
        if self.room_state.is_hub_only() && !list.is_empty() && !applied {
            r.hub_state = Self::apply_unchecked(&r.hub_state, ChangeKind::Proposals, list);
        }
        r.muted.extend(muted);
        for (i, m) in all.iter().enumerate() {
            r.pending.push(AcceptedProposal {
                message: m.as_bytes().to_vec(),
                // Known only when the hub validated it (enforcement `mls` and above).
                reference: references.get(i).cloned().unwrap_or_default(),
                accepted_at: ts,
            });
        }
        r.known_domains.insert(from.clone());
        let recipients = r.member_domains();
        self.append(room, entry, recipients, from);
        Ok(ts)
    }

    /// The hub rules of `full` on a bundle of proposals the view validated (P§5.3.1), in
    /// the order the first failure is reported: one sender, `mute` (a muted user may only
    /// propose removals), `hub-transfer` (the hub moves only by commit), the exiting
    /// rules, `composition`, then `policy`. Returns the hub state after the proposals
    /// with the change, and the users they remove or ban (no longer muted), when the
    /// policy rules ran.
    fn check_proposal_rules(
        &self,
        from: &Domain,
        r: &HubRoom,
        checked: &[super::public_view::CheckedProposal],
        list: &[(u16, Vec<u8>)],
    ) -> Result<ProposalsChecked, Rejection> {
        let config = &self.config;
        let actor = self.actor_of(&checked[0].sender, from)?;
        if checked.iter().any(|c| c.sender != checked[0].sender) {
            return Err(reject(
                Rule::Policy,
                "a bundle's proposals come from one sender",
            ));
        }
        if config.on(Rule::Mute) {
            if let Some(u) = actor.user() {
                let only_removals = checked.iter().all(|c| {
                    matches!(
                        c.covered,
                        CoveredProposal::Remove { .. } | CoveredProposal::SelfRemove { .. }
                    )
                });
                if r.muted.contains(u) && !only_removals {
                    return Err(reject(Rule::Mute, format!("{u} is muted")));
                }
            }
        }
        let covered: Vec<CoveredProposal> = checked.iter().map(|c| c.covered.clone()).collect();
        let covered = self.with_list_updates(covered, list)?;
        if config.on(Rule::HubTransfer) && covered.iter().any(is_hub_update) {
            return Err(reject(
                Rule::HubTransfer,
                "the hub moves only by a commit carrying the hub update by value",
            ));
        }
        let change = Self::change_of(&r.hub_state, ChangeKind::Proposals, &covered)?;
        check_exiting(config, &r.hub_state, &actor, &change, None)?;
        if config.on(Rule::Composition) {
            check_commit_composition(&[&change])
                .map_err(|e| reject(Rule::Composition, e.to_string()))?;
        }
        if !(config.on(Rule::Policy) || config.on(Rule::ListMembership)) {
            return Ok((None, Vec::new()));
        }
        let ok = authorize(&r.hub_state, &r.membership(), &actor, &change)
            .map_err(|e| reject(Rule::Policy, e.to_string()))?;
        let muted = ok.removed_or_banned_users();
        Ok((Some((ok.state, change)), muted))
    }

    /// A log entry's fan-out, encoded and checked against what a follower decodes: a
    /// `/notify` body holding it alone must not exceed [`MAX_BODY_BYTES`].
    pub(crate) fn encode_entry(
        fanout: &FanoutMessage,
        kind: &'static str,
        epoch: u64,
    ) -> Result<Entry, WireError> {
        let bytes = encode(fanout)?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(WireError::BodyTooLarge {
                structure: "FanoutMessage",
                len: bytes.len(),
                max: MAX_BODY_BYTES,
            });
        }
        Ok(Entry {
            fanout: bytes,
            timestamp: fanout.timestamp,
            kind,
            epoch,
        })
    }

    /// x-hub-only-room-state §4: the signal of `state` for `epoch`, carrying `commit`.
    fn encode_room_state_entry(
        ts: Millis,
        commit: &MlsMessageBytes,
        epoch: u64,
        state: &RoomState,
    ) -> Result<Entry, WireError> {
        let room_state = hub_only::encode_room_state(state);
        if room_state.len() > MAX_ROOM_STATE_BYTES {
            return Err(WireError::TooLong {
                at: crate::wire::Place::new("FanoutMessage", "roomState"),
                len: room_state.len(),
                max: MAX_ROOM_STATE_BYTES,
            });
        }
        Self::encode_entry(
            &FanoutMessage {
                timestamp: ts,
                message: commit.clone(),
                body: FanoutBody::RoomState { epoch, room_state },
            },
            "room-state",
            epoch,
        )
    }

    /// The fan-out of a commit's Welcome with the tree of the new epoch.
    fn encode_welcome_entry(
        ts: Millis,
        w: &crate::wire::WelcomeBytes,
        tree: &[u8],
        epoch: u64,
    ) -> Result<Entry, WireError> {
        Self::encode_entry(
            &FanoutMessage {
                timestamp: ts,
                message: w.to_mls_message()?,
                body: FanoutBody::Welcome {
                    ratchet_tree_option: RatchetTreeOption::Full(RatchetTreeBytes::from_bytes(
                        tree,
                    )?),
                },
            },
            "welcome",
            epoch,
        )
    }

    /// The providers a commit's Welcome goes to: those that handed out its
    /// KeyPackages (P§5.2), or every known provider if one is unknown.
    fn welcome_targets(&self, room: &RoomUri, w: &crate::wire::WelcomeBytes) -> BTreeSet<Domain> {
        let refs = w.new_member_refs().unwrap_or_default();
        let mut to: BTreeSet<Domain> = refs
            .iter()
            .filter_map(|k| self.key_package_routes.get(k).cloned())
            .collect();
        if to.len() < refs.len() || to.is_empty() {
            // Unknown KeyPackageRefs (only possible when WelcomeRouting is off):
            // broadcast; followers deliver only Welcomes for KeyPackages they own.
            if let Some(r) = self.rooms.get(room) {
                to.extend(r.known_domains.iter().cloned());
            }
            to.insert(self.domain.clone());
        }
        to
    }

    /// Put an encoded entry in `room`'s log for `recipients` (cannot fail: the entry
    /// was encoded before the acceptance changed any state).
    pub(crate) fn append(
        &mut self,
        room: &RoomUri,
        entry: Entry,
        recipients: BTreeSet<Domain>,
        from: &Domain,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let seq = r.next_seq();
        for d in &recipients {
            r.outbound.entry(d.clone()).or_default();
        }
        r.log.push(LogEntry {
            seq,
            timestamp: entry.timestamp,
            fanout: entry.fanout,
            recipients,
            kind: entry.kind,
            epoch: entry.epoch,
        });
        self.events.push(HubEvent::Accepted {
            room: room.clone(),
            kind: entry.kind,
            epoch: entry.epoch,
            seq,
            timestamp: entry.timestamp,
            from: from.clone(),
        });
    }

    /// `POST /submitMessage/{room}` (P§5.4).
    pub fn submit(&mut self, now: Millis, from: &Domain, room: &RoomUri, body: &[u8]) -> Response {
        let req: SubmitMessageRequest = match decode_exact(body) {
            Ok(r) => r,
            Err(e) => {
                return Response::error(status::BAD_REQUEST, format!("SubmitMessageRequest: {e}"))
            }
        };
        if let Some(ts) =
            self.already_accepted(room, "submitMessage", from, req.app_message.as_bytes())
        {
            return Self::submit_answer(SubmitOutcome::Accepted {
                accepted_timestamp: ts,
                frank: None,
            });
        }
        if let Some(moved) = self.moved(room, "submitMessage", body) {
            return moved;
        }
        let Some(r) = self.rooms.get(room) else {
            return Response::error(status::NOT_FOUND, format!("no room {room} at this hub"));
        };
        let outcome = match submit_allowed(&self.config, r, from, &req) {
            Ok(()) => match self.accept_submitted(now, from, room, &req, body) {
                Ok(o) => o,
                Err(internal) => return internal,
            },
            Err((o, rule)) => {
                let rej = Rejection {
                    code: RejectCode::NotAllowed,
                    rule,
                    reason: format!("{o:?} for sendingUri {}", req.sending_uri.display()),
                };
                self.rejected(room, "submitMessage", body, &rej);
                o
            }
        };
        Self::submit_answer(outcome)
    }

    /// Logs an allowed application message for fan-out and remembers it for retries;
    /// `Err` is the answer when its log entry cannot be encoded.
    fn accept_submitted(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        req: &SubmitMessageRequest,
        body: &[u8],
    ) -> Result<SubmitOutcome, Response> {
        let Some(r) = self.rooms.get(room) else {
            return Err(Response::error(
                status::NOT_FOUND,
                format!("no room {room} at this hub"),
            ));
        };
        // Encode the log entry before changing anything.
        let entry = match Self::encode_entry(
            &FanoutMessage {
                timestamp: self.last_timestamp.max(now),
                message: req.app_message.clone(),
                body: FanoutBody::Application { frank: None },
            },
            "application",
            r.epoch,
        ) {
            Ok(e) => e,
            Err(e) => {
                let rej = internal(format!("application fan-out: {e}"));
                self.rejected(room, "submitMessage", body, &rej);
                return Err(Response::error(status::INTERNAL, rej.reason));
            }
        };
        let ts = self.timestamp(now);
        let r = self.rooms.get_mut(room).expect("looked up above");
        r.known_domains.insert(from.clone());
        let recipients = r.member_domains();
        let epoch = r.epoch;
        self.append(room, entry, recipients, from);
        self.events.push(HubEvent::SenderAccepted {
            room: room.clone(),
            epoch,
            sending_uri: req.sending_uri.display(),
            mls_message_sha256: hex::encode(Sha256::digest(req.app_message.as_bytes())),
        });
        self.remember_accepted(room, req.app_message.as_bytes(), ts);
        Ok(SubmitOutcome::Accepted {
            accepted_timestamp: ts,
            frank: None,
        })
    }

    fn submit_answer(outcome: SubmitOutcome) -> Response {
        let resp = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            outcome,
        };
        match encode(&resp) {
            Ok(b) => Response::new(status::OK, b),
            Err(e) => Response::error(status::INTERNAL, format!("SubmitMessageResponse: {e}")),
        }
    }

    /// Rule `group-info-auth` (P§5.6, RP§8.1.1): the requester's client is at the
    /// requesting provider, and its user may add its own client (a participant, not
    /// muted) or anyone may join (canOpenJoin on role 0).
    fn may_request_group_info(r: &HubRoom, from: &Domain, client: Option<&ClientUri>) -> bool {
        let Some(c) = client.filter(|c| c.domain() == *from) else {
            return false;
        };
        let u = c.user();
        if r.hub_state.is_participant(&u) {
            r.hub_state.has_capability(&u, Capability::AddOwnClient) && !r.muted.contains(&u)
        } else {
            r.hub_state
                .role(crate::room::roles::NO_ROLE)
                .map(|role| role.has(Capability::OpenJoin))
                .unwrap_or(false)
        }
    }

    /// What a `/groupInfo` answer encrypts to the requester (P§5.6): the GroupInfo, the
    /// full tree and the proposals the hub accepted this epoch.
    fn group_info_tbe(r: &HubRoom) -> Result<GroupInfoRatchetTreeTbe, WireError> {
        Ok(GroupInfoRatchetTreeTbe {
            group_info: GroupInfoBytes::from_bytes(&r.group_info)?,
            ratchet_tree_option: RatchetTreeOption::Full(RatchetTreeBytes::from_bytes(
                &r.ratchet_tree,
            )?),
            pending_proposals: r
                .pending
                .iter()
                .filter_map(|p| {
                    Some(PendingProposal {
                        proposal: MlsMessageBytes::from_bytes(&p.message).ok()?,
                        hub_accepted_time: p.accepted_at,
                    })
                })
                .collect(),
        })
    }

    /// `POST /groupInfo/{room}` (P§5.6).
    pub fn group_info(&mut self, from: &Domain, room: &RoomUri, body: &[u8]) -> Response {
        let req: GroupInfoRequest = match decode_exact(body) {
            Ok(r) => r,
            Err(e) => {
                return Response::error(status::BAD_REQUEST, format!("GroupInfoRequest: {e}"))
            }
        };
        // The requester's own faults are 4xx, before anything else is judged.
        if let Err(reason) = Self::check_group_info_request(&req) {
            return Response::error(status::BAD_REQUEST, format!("GroupInfoRequest: {reason}"));
        }
        let room_id = IdentifierUri::from(room);
        let answer = |status_: GroupInfoStatus| {
            let resp = GroupInfoResponse {
                protocol: Protocol::Mls10,
                room_id: room_id.clone(),
                status: status_,
            };
            match encode(&resp) {
                Ok(b) => Response::new(status::OK, b),
                Err(e) => Response::error(status::INTERNAL, format!("GroupInfoResponse: {e}")),
            }
        };
        if req.verify(self.provider.crypto()).is_err() {
            return answer(GroupInfoStatus::NotAuthorized);
        }
        if let Some(moved) = self.moved(room, "groupInfo", body) {
            return moved;
        }
        let Some(r) = self.rooms.get(room) else {
            return answer(GroupInfoStatus::NoSuchRoom);
        };
        let client = req
            .tbs
            .requesting_credential
            .parse()
            .ok()
            .and_then(|c| config::client_of_credential(&c));
        if self.config.on(Rule::GroupInfoAuth)
            && !Self::may_request_group_info(r, from, client.as_ref())
        {
            let rej = reject(Rule::GroupInfoAuth, "requester may not join this room");
            self.rejected(room, "groupInfo", body, &rej);
            return answer(GroupInfoStatus::NotAuthorized);
        }
        let tbe = match Self::group_info_tbe(r) {
            Ok(t) => t,
            Err(e) => {
                return Response::error(status::INTERNAL, format!("GroupInfo for {room}: {e}"))
            }
        };
        // The TBE is ours: an encoding failure is the hub's fault (500). Encrypting it
        // can then fail only on the requester's key (the suite was checked): 400.
        if let Err(e) = encode(&tbe) {
            return Response::error(status::INTERNAL, format!("GroupInfo for {room}: {e}"));
        }
        let suite = req.tbs.cipher_suite;
        let ct = match tbe.seal(
            self.provider.crypto(),
            suite,
            &req.tbs.group_info_public_key,
            &room_id,
        ) {
            Ok(ct) => ct,
            Err(e @ WireError::Encode { .. }) => {
                return Response::error(status::INTERNAL, format!("GroupInfo for {room}: {e}"))
            }
            Err(e) => {
                return Response::error(
                    status::BAD_REQUEST,
                    format!(
                        "GroupInfoRequest: groupInfoPublicKey is not a usable HPKE public key \
                         for cipher suite 0x{:04x}: {e}",
                        suite.0
                    ),
                )
            }
        };
        let response = (|| {
            GroupInfoResponse::sign_success(
                room_id.clone(),
                suite,
                ExternalSenderBytes::from_openmls(&self.identity.external_sender())?,
                ct,
                &self.identity.signer,
            )
        })();
        match response {
            Ok(resp) => {
                if let (Some(c), Some(r)) = (client, self.rooms.get_mut(room)) {
                    r.authorized_joiners.insert(c);
                    r.known_domains.insert(from.clone());
                }
                match encode(&resp) {
                    Ok(b) => Response::new(status::OK, b),
                    Err(e) => Response::error(status::INTERNAL, format!("GroupInfoResponse: {e}")),
                }
            }
            Err(e) => Response::error(status::INTERNAL, format!("GroupInfo for {room}: {e}")),
        }
    }

    /// The requester's part of a `/groupInfo` request that it alone can get wrong: the
    /// cipher suite must be one this hub serves (the suite of its rooms and its signing
    /// key, [`config::CIPHERSUITE`]) and `groupInfoPublicKey` a key of that suite's HPKE
    /// KEM (its length; a key of the right length that does not work is found when the
    /// response is encrypted to it).
    fn check_group_info_request(req: &GroupInfoRequest) -> Result<(), String> {
        let suite = req.tbs.cipher_suite;
        let ours = config::CIPHERSUITE;
        if suite != crate::wire::CipherSuite::from(ours) {
            return Err(format!(
                "cipher suite 0x{:04x} is not supported by this hub (it serves 0x{:04x} only)",
                suite.0, ours as u16
            ));
        }
        let key = req
            .tbs
            .group_info_public_key
            .key()
            .map_err(|e| format!("groupInfoPublicKey: {e}"))?;
        if let Some(want) = hpke_public_key_len(ours.hpke_kem_algorithm()) {
            if key.len() != want {
                return Err(format!(
                    "groupInfoPublicKey has {} bytes; a {:?} public key has {want}",
                    key.len(),
                    ours.hpke_kem_algorithm()
                ));
            }
        }
        Ok(())
    }

    /// The `/notify` bodies to send now: at most one outstanding per provider and room.
    /// Returns (room, destination, body); the caller assigns a token with
    /// [`Hub::notify_sent`].
    pub fn poll_notify(&mut self, now: Millis) -> Vec<(RoomUri, Domain, Vec<u8>)> {
        self.poll_notify_with(&ProtocolSteps, now)
    }

    /// [`Hub::poll_notify`] taking `steps` where sequencing can deviate ([`HubSteps`]).
    pub(crate) fn poll_notify_with(
        &mut self,
        steps: &dyn HubSteps,
        now: Millis,
    ) -> Vec<(RoomUri, Domain, Vec<u8>)> {
        let mut out = Vec::new();
        let own = self.domain.clone();
        for r in self.rooms.values_mut() {
            let log_len = r.log.len();
            // A fenced hub does not deliver what it accepted after the takeover's epoch.
            let epoch_limit = match &r.sequencer {
                Sequencer::Fenced { base_epoch, .. } => *base_epoch,
                _ => u64::MAX,
            };
            for (d, ob) in r.outbound.iter_mut() {
                if let Some(f) = &ob.in_flight {
                    if f.send_at.is_some_and(|t| t <= now) {
                        out.push((r.room.clone(), d.clone(), f.body.clone()));
                    }
                    continue;
                }
                // Next batch of messages for `d`.
                let mut msgs = Vec::new();
                let mut upto = ob.next;
                for (i, e) in r.log.iter().enumerate().skip(ob.next.min(log_len)) {
                    upto = i + 1;
                    let carried = e.epoch <= epoch_limit && steps.carries(&own, d, e);
                    if e.recipients.contains(d) && carried {
                        msgs.push(e.fanout.clone());
                        if msgs.len() >= MAX_NOTIFY_BATCH {
                            break;
                        }
                    }
                }
                if msgs.is_empty() {
                    ob.next = upto.max(ob.next);
                    continue;
                }
                let body: Vec<u8> = msgs.concat();
                ob.in_flight = Some(InFlight {
                    token: None,
                    upto,
                    body: body.clone(),
                    attempts: 0,
                    send_at: Some(now),
                });
                out.push((r.room.clone(), d.clone(), body));
            }
        }
        out
    }

    /// When [`Hub::poll_notify`] next has a body to send without a new input: the
    /// earliest `/notify` retry, or `0` (at once) if a batch was left unsent (a flush
    /// polls a bounded number of times). `None`: every body is sent or answered.
    pub fn next_notify_at(&self) -> Option<Millis> {
        self.rooms
            .values()
            .flat_map(|r| {
                r.outbound.values().filter_map(|ob| match &ob.in_flight {
                    // Sent and not yet answered (`send_at` None): its answer is an input.
                    Some(f) => f.send_at,
                    None => (ob.next < r.log.len()).then_some(0),
                })
            })
            .min()
    }

    /// The body returned by [`Hub::poll_notify`] for (`room`, `to`) went out with `token`.
    pub fn notify_sent(&mut self, room: &RoomUri, to: &Domain, token: Token) {
        if let Some(f) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.outbound.get_mut(to))
            .and_then(|o| o.in_flight.as_mut())
        {
            f.token = Some(token);
            f.attempts += 1;
            f.send_at = None;
        }
    }

    /// The outcome of a `/notify`: 201 advances the cursor; anything else schedules a
    /// retry of the byte-identical body (P§5.5).
    pub fn notify_result(&mut self, now: Millis, room: &RoomUri, to: &Domain, ok: bool) {
        let Some(ob) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.outbound.get_mut(to))
        else {
            return;
        };
        let Some(f) = ob.in_flight.as_mut() else {
            return;
        };
        if ok {
            ob.next = f.upto;
            ob.in_flight = None;
        } else {
            let shift = f.attempts.min(10);
            let delay = (NOTIFY_RETRY_BASE_MS << shift).min(NOTIFY_RETRY_MAX_MS);
            f.send_at = Some(now + delay);
            f.token = None;
        }
    }

    /// x-hub-transfer §2 T1 and T3 (before the merge; T2 and T4 are checked after it).
    fn check_transfer(
        r: &HubRoom,
        s: &super::public_view::CommitSummary,
        after: &HubRecord,
    ) -> Result<(), Rejection> {
        let HandshakeSender::Member {
            client: Some(c), ..
        } = &s.committer
        else {
            return Err(reject(
                Rule::HubTransfer,
                "only a member client may move the hub",
            ));
        };
        if !s.inline.iter().any(is_hub_update) {
            return Err(reject(
                Rule::HubTransfer,
                "the hub update must be carried by value in the commit",
            ));
        }
        let user = c.user();
        if !r.hub_state.is_participant(&user) {
            return Err(reject(
                Rule::HubTransfer,
                format!("{user} is not a participant"),
            ));
        }
        if after.hub == r.record.hub {
            return Err(reject(
                Rule::HubTransfer,
                format!("the hub is already {}", after.hub),
            ));
        }
        let own_hub = c.domain() == r.record.hub;
        let admin_to_own = r
            .hub_state
            .has_capability(&user, Capability::ChangeUserRole)
            && after.hub == c.domain();
        if !(own_hub || admin_to_own) {
            return Err(reject(
                Rule::HubTransfer,
                format!(
                    "{user} may not move the hub to {} (only a participant of the current hub's provider, or an admin to its own provider)",
                    after.hub
                ),
            ));
        }
        Ok(())
    }

    /// The 421 answer (x-hub-transfer §3) if this hub no longer sequences `room`.
    fn moved(&mut self, room: &RoomUri, endpoint: &'static str, body: &[u8]) -> Option<Response> {
        let r = self.rooms.get(room)?;
        let record = match &r.sequencer {
            Sequencer::HandedOff(rec) | Sequencer::Fenced { record: rec, .. } => rec.clone(),
            Sequencer::Active | Sequencer::TakeoverPending => return None,
        };
        self.events.push(HubEvent::Rejected {
            room: room.clone(),
            endpoint,
            code: "moved".into(),
            rule: None,
            reason: format!(
                "room moved to {} (generation {})",
                record.hub, record.generation
            ),
            request_sha256: hex::encode(Sha256::digest(body)),
        });
        Some(
            HubMoved {
                room: room.clone(),
                hub: record,
            }
            .response(),
        )
    }

    /// x-hub-transfer: whether this hub currently sequences `room`.
    pub fn sequencing(&self, room: &RoomUri) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.sequencer == Sequencer::Active)
    }

    /// x-hub-transfer: the newest hub generation this hub knows for `room`.
    pub fn generation(&self, room: &RoomUri) -> Option<u64> {
        self.hub_record(room).map(|r| r.generation)
    }

    /// x-hub-transfer: the newest hub record this hub knows for `room` (committed state,
    /// or the fence that stopped it).
    pub fn hub_record(&self, room: &RoomUri) -> Option<HubRecord> {
        let r = self.rooms.get(room)?;
        Some(match &r.sequencer {
            Sequencer::Fenced { record, .. } if record.generation > r.record.generation => {
                record.clone()
            }
            _ => r.record.clone(),
        })
    }

    /// x-hub-transfer §3: the handoff of a room this hub handed off, once its log is
    /// delivered to every recipient (`None` before, or if the room did not move away
    /// cooperatively). Send it with `POST /handoff/{roomId}` to the new hub until it
    /// answers 2xx; calling again yields the same handoff.
    pub fn export_handoff(&mut self, room: &RoomUri) -> Option<Handoff> {
        let r = self.rooms.get(room)?;
        let Sequencer::HandedOff(record) = &r.sequencer else {
            return None;
        };
        if !r.fanout_idle() {
            return None;
        }
        let h = Handoff {
            room: room.clone(),
            from_hub: self.domain.clone(),
            hub: record.clone(),
            epoch: r.epoch,
            group_info: r.group_info.clone(),
            ratchet_tree: r.ratchet_tree.clone(),
            next_seq: r.next_seq(),
            last_timestamp: self.last_timestamp,
            accepted: r
                .accepted_order
                .iter()
                .filter_map(|h| r.accepted.get(h).map(|ts| (*h, *ts)))
                .collect(),
            known_domains: r.known_domains.clone(),
            muted: r.muted.clone(),
        };
        self.events.push(HubEvent::HandoffExported {
            room: room.clone(),
            to: record.hub.clone(),
            generation: record.generation,
            epoch: h.epoch,
            next_seq: h.next_seq,
        });
        Some(h)
    }

    /// Verify a GroupInfo and tree of `room` and read its room state and hub record.
    fn view_of(
        &self,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<(PublicView, RoomState, HubRecord), TransferError> {
        let view = PublicView::from_group_info(self.provider.crypto(), group_info, ratchet_tree)
            .map_err(|e| TransferError::View(e.to_string()))?;
        if view.group_id() != room.as_bytes() {
            return Err(TransferError::WrongRoom {
                expected: room.to_string(),
                got: String::from_utf8_lossy(view.group_id()).into_owned(),
            });
        }
        let dict = view.dictionary();
        let state = RoomState::from_dictionary(&dict)
            .map_err(|e| TransferError::StateMismatch(e.to_string()))?;
        let record = transfer::hub_record(room, &dict)?;
        Ok((view, state, record))
    }

    /// `POST /handoff/{roomId}` from `from` (x-hub-transfer §3): start sequencing the
    /// room at the handoff's epoch. A repeated handoff is answered `Ok`.
    pub fn import_handoff(
        &mut self,
        now: Millis,
        from: &Domain,
        h: &Handoff,
    ) -> Result<(), TransferError> {
        let _ = now;
        if *from != h.from_hub {
            return Err(TransferError::FromMismatch {
                from: from.clone(),
                from_hub: h.from_hub.clone(),
            });
        }
        if h.hub.hub != self.domain {
            return Err(TransferError::NotForThisHub {
                named: h.hub.hub.clone(),
                me: self.domain.clone(),
            });
        }
        if !self.config.tracks_mls() {
            return Err(TransferError::NoView);
        }
        if let Some(known) = self.hub_record(&h.room) {
            if known.generation >= h.hub.generation {
                if known == h.hub && self.sequencing(&h.room) {
                    return Ok(());
                }
                return Err(TransferError::StaleGeneration {
                    have: known.generation,
                    got: h.hub.generation,
                });
            }
        }
        let (view, state, record) = self.view_of(&h.room, &h.group_info, &h.ratchet_tree)?;
        if record != h.hub {
            return Err(TransferError::StateMismatch(format!(
                "names hub {} generation {}, the handoff {} generation {}",
                record.hub, record.generation, h.hub.hub, h.hub.generation
            )));
        }
        if view.epoch() != h.epoch {
            return Err(TransferError::StateMismatch(format!(
                "is at epoch {}, the handoff says {}",
                view.epoch(),
                h.epoch
            )));
        }
        let me = config::server_credential_identity(&self.domain).into_bytes();
        if !view.external_sender_identities().contains(&me) {
            return Err(TransferError::StateMismatch(
                "does not name this hub in external_senders".into(),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(&h.group_info);
        hasher.update(&h.ratchet_tree);
        let mut r = Self::new_room(
            &h.room,
            view,
            state,
            &h.group_info,
            &h.ratchet_tree,
            hasher.finalize().into(),
            record,
        );
        r.seq_base = h.next_seq;
        r.known_domains = h.known_domains.clone();
        r.known_domains.insert(from.clone());
        r.muted = h.muted.clone();
        for (digest, ts) in &h.accepted {
            r.remember_accepted(*digest, *ts);
        }
        if let Some(old) = self.rooms.remove(&h.room) {
            // This hub hosted the room before (A → B → A): keep draining its old log.
            r.log = old.log;
            r.outbound = old.outbound;
            r.seq_base = old.seq_base;
            let carried = r.next_seq();
            if carried < h.next_seq {
                r.log.clear();
                r.outbound.clear();
                r.seq_base = h.next_seq;
            }
        }
        self.last_timestamp = self.last_timestamp.max(h.last_timestamp);
        self.events.push(HubEvent::HandoffImported {
            room: h.room.clone(),
            from: from.clone(),
            generation: h.hub.generation,
            epoch: h.epoch,
            next_seq: r.next_seq(),
        });
        self.rooms.insert(h.room.clone(), r);
        Ok(())
    }

    /// x-hub-transfer §4, takeover: the old hub is unreachable. `from` relays a member's
    /// transfer commit (`body`, an `UpdateRequest`) that moves the hub here, built on the
    /// epoch of `group_info` / `ratchet_tree` (the member's view of the room). The hub
    /// bootstraps its view from them and sequences the commit with the usual checks.
    /// Returns the `/update` answer; on anything but success the room is left as before.
    pub fn takeover(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
        body: &[u8],
    ) -> Result<Response, TransferError> {
        self.takeover_with(
            &ProtocolSteps,
            now,
            from,
            room,
            group_info,
            ratchet_tree,
            body,
        )
    }

    /// [`Hub::takeover`] taking `steps` where sequencing can deviate ([`HubSteps`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn takeover_with(
        &mut self,
        steps: &dyn HubSteps,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
        body: &[u8],
    ) -> Result<Response, TransferError> {
        if !self.config.tracks_mls() {
            return Err(TransferError::NoView);
        }
        if self.sequencing(room) {
            return Err(TransferError::AlreadySequencing(room.to_string()));
        }
        let (view, state, record) = self.view_of(room, group_info, ratchet_tree)?;
        if let Some(known) = self.hub_record(room) {
            if known.generation > record.generation {
                return Err(TransferError::StaleGeneration {
                    have: known.generation,
                    got: record.generation,
                });
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(group_info);
        hasher.update(ratchet_tree);
        let mut r = Self::new_room(
            room,
            view,
            state,
            group_info,
            ratchet_tree,
            hasher.finalize().into(),
            record,
        );
        r.sequencer = Sequencer::TakeoverPending;
        r.known_domains.insert(from.clone());
        let previous = self.rooms.remove(room);
        if let Some(old) = &previous {
            r.log = old.log.clone();
            r.outbound = old.outbound.clone();
            r.seq_base = old.seq_base;
        }
        self.rooms.insert(room.clone(), r);
        let response = self.update_with(steps, now, from, room, body);
        if !self.sequencing(room) {
            match previous {
                Some(old) => {
                    self.rooms.insert(room.clone(), old);
                }
                None => {
                    self.rooms.remove(room);
                }
            }
        }
        Ok(response)
    }

    /// x-hub-transfer §4: the fence for the hub this hub took `room` over from (`None` if
    /// it did not take it over or no longer sequences it). Send with `POST /fence/{roomId}`.
    pub fn export_fence(&self, room: &RoomUri) -> Option<Fence> {
        let r = self.rooms.get(room)?;
        let base_epoch = r.took_over_at?;
        (r.sequencer == Sequencer::Active).then(|| Fence {
            room: room.clone(),
            hub: r.record.clone(),
            base_epoch,
            group_info: r.group_info.clone(),
            ratchet_tree: r.ratchet_tree.clone(),
        })
    }

    /// `POST /fence/{roomId}` from `from` (x-hub-transfer §5): a newer hub took the room
    /// over. Verified against its GroupInfo; this hub stops sequencing for good and stops
    /// delivering log entries of epochs after the takeover's base epoch.
    pub fn fence(
        &mut self,
        now: Millis,
        from: &Domain,
        f: &Fence,
    ) -> Result<FenceOutcome, TransferError> {
        let _ = now;
        if *from != f.hub.hub {
            return Err(TransferError::FromMismatch {
                from: from.clone(),
                from_hub: f.hub.hub.clone(),
            });
        }
        let Some(known) = self.hub_record(&f.room) else {
            return Ok(FenceOutcome::AlreadyKnown);
        };
        if known.generation >= f.hub.generation {
            return Ok(FenceOutcome::AlreadyKnown);
        }
        let (view, _, record) = self.view_of(&f.room, &f.group_info, &f.ratchet_tree)?;
        if record != f.hub {
            return Err(TransferError::StateMismatch(format!(
                "names hub {} generation {}, the fence {} generation {}",
                record.hub, record.generation, f.hub.hub, f.hub.generation
            )));
        }
        if view.epoch() <= f.base_epoch {
            return Err(TransferError::StateMismatch(format!(
                "is at epoch {}, not after the takeover's base epoch {}",
                view.epoch(),
                f.base_epoch
            )));
        }
        let Some(r) = self.rooms.get_mut(&f.room) else {
            return Ok(FenceOutcome::AlreadyKnown);
        };
        // This hub sequenced a commit for the base epoch itself: two sequencers.
        let fork_epoch = (r.epoch > f.base_epoch).then_some(f.base_epoch);
        let undelivered_after = r
            .log
            .iter()
            .filter(|e| e.epoch > f.base_epoch)
            .filter(|e| {
                let i = (e.seq - r.seq_base) as usize;
                e.recipients
                    .iter()
                    .any(|d| r.outbound.get(d).is_none_or(|o| o.next <= i))
            })
            .count() as u64;
        r.sequencer = Sequencer::Fenced {
            record: f.hub.clone(),
            base_epoch: f.base_epoch,
        };
        self.events.push(HubEvent::StoppedSequencing {
            room: f.room.clone(),
            new_hub: f.hub.hub.clone(),
            generation: f.hub.generation,
            reason: "fenced",
            fork_epoch,
            abandoned: undelivered_after,
        });
        Ok(FenceOutcome::Stopped { fork_epoch })
    }

    /// Whether every accepted message has been acknowledged by every recipient.
    pub fn fanout_idle(&self) -> bool {
        self.rooms.values().all(|r| {
            r.outbound
                .values()
                .all(|o| o.in_flight.is_none() && r.log[o.next.min(r.log.len())..].is_empty())
        })
    }
}

/// Whether a covered proposal updates the x-hub-transfer hub component.
/// The length of an encoded HPKE public key of `kem` (RFC 9180 §7.1 `Npk`), if known.
fn hpke_public_key_len(kem: openmls_traits::types::HpkeKemType) -> Option<usize> {
    use openmls_traits::types::HpkeKemType;
    // Post-quantum KEMs exist only with an openmls feature.
    #[allow(unreachable_patterns)]
    match kem {
        HpkeKemType::DhKemP256 => Some(65),
        HpkeKemType::DhKemP384 => Some(97),
        HpkeKemType::DhKemP521 => Some(133),
        HpkeKemType::DhKem25519 => Some(32),
        HpkeKemType::DhKem448 => Some(56),
        _ => None,
    }
}

fn is_hub_update(p: &CoveredProposal) -> bool {
    matches!(p, CoveredProposal::AppDataUpdate { component, .. } if *component == transfer::HUB_COMPONENT)
}

fn client_name(c: &Option<ClientUri>) -> String {
    c.as_ref().map_or("?".into(), |c| c.as_str().to_string())
}

/// One line per committer, for traces.
fn describe_sender(s: &super::public_view::HandshakeSender) -> String {
    use super::public_view::HandshakeSender as H;
    match s {
        H::Member { leaf, client } => format!("member {leaf} {}", client_name(client)),
        H::External { index, .. } => format!("external sender {index}"),
        H::NewMember { client } => format!("new member {}", client_name(client)),
    }
}

/// One line per covered proposal, for traces.
fn describe_proposal(p: &super::public_view::CoveredProposal) -> String {
    use super::public_view::CoveredProposal as P;
    match p {
        P::Add { client, .. } => format!("add {}", client_name(client)),
        P::Remove { leaf, client } => format!("remove {leaf} {}", client_name(client)),
        P::SelfRemove { leaf, client } => format!("self-remove {leaf} {}", client_name(client)),
        P::Update { leaf } => format!("update {leaf}"),
        P::AppDataUpdate { component, update } => format!(
            "app-data-update component {component} ({})",
            update
                .as_ref()
                .map_or("remove".into(), |u| format!("{} bytes", u.len()))
        ),
        P::GroupContextExtensions => "group-context-extensions".into(),
        P::ExternalInit => "external-init".into(),
        P::Other(o) => o.clone(),
    }
}

/// Whether the hub may accept `req` from `from` into room `r` (P§5.4): the message is of
/// the room's group and current epoch (a private message when the hub tracks MLS), and
/// its sender is not muted, not exiting, and a participant of `from` who may send. The
/// refusal and the rule that made it.
fn submit_allowed(
    config: &EnforcementConfig,
    r: &HubRoom,
    from: &Domain,
    req: &SubmitMessageRequest,
) -> Result<(), (SubmitOutcome, Option<Rule>)> {
    let info = req.app_message.info();
    if info.group_id.as_deref() != Some(r.group_id.as_slice()) {
        return Err((SubmitOutcome::NotAllowed, None));
    }
    if config.tracks_mls() && info.wire_format != WireFormatKind::PrivateMessage {
        return Err((SubmitOutcome::NotAllowed, Some(Rule::MlsValid)));
    }
    match info.epoch {
        Some(e) if e < r.epoch => {
            return Err((
                SubmitOutcome::EpochTooOld {
                    current_epoch: r.epoch,
                },
                None,
            ))
        }
        Some(e) if e > r.epoch => return Err((SubmitOutcome::NotAllowed, None)),
        None => return Err((SubmitOutcome::NotAllowed, None)),
        _ => {}
    }
    if config.on(Rule::Mute) {
        if let Ok(user) = UserUri::from_bytes(req.sending_uri.as_bytes()) {
            if r.muted.contains(&user) {
                return Err((SubmitOutcome::NotAllowed, Some(Rule::Mute)));
            }
        }
    }
    if config.on(Rule::ExitingSend) {
        if let Ok(user) = UserUri::from_bytes(req.sending_uri.as_bytes()) {
            if exiting::check_sender(&r.hub_state, &user).is_err() {
                return Err((SubmitOutcome::NotAllowed, Some(Rule::ExitingSend)));
            }
        }
    }
    if config.on(Rule::SubmitSender) {
        let user = UserUri::from_bytes(req.sending_uri.as_bytes())
            .map_err(|_| (SubmitOutcome::NotAllowed, Some(Rule::SubmitSender)))?;
        let ok = user.domain() == *from
            && r.hub_state.is_participant(&user)
            && r.has_clients(&user)
            && r.hub_state.can_send_message(&user);
        if !ok {
            return Err((SubmitOutcome::NotAllowed, Some(Rule::SubmitSender)));
        }
    }
    Ok(())
}
