//! The client core (sans-IO): a user's device. It builds every MLS object (P§1.3), talks
//! only to its own provider, runs one operation per room at a time, retries after
//! `wrongEpoch` once it has caught up, and commits pending proposals when it is the
//! designated member (the lowest leaf not being removed by them).
//!
//! The work is split by what the client handles: `start` (an op's first request per
//! command), `answer` (the answers to its requests), `fanout` (the room's fan-out) and
//! `commit` (the commits it sends); this file keeps the ops' life cycle (queue,
//! attempts, timers, outcome). Where a client that deviates on purpose (planted bugs,
//! a malicious provider's device) acts differently, the core asks its conduct
//! ([`super::conduct`]) and nowhere else.
//!
//! # Robustness
//!
//! A relayed request whose reply does not come within [`RELAY_TIMEOUT`], or whose reply is
//! a provider-side transport failure (HTTP 5xx), has an *ambiguous* outcome: the hub may
//! or may not have accepted it. The client resends the byte-identical request (with a new
//! `corr`) after a backoff ([`RESEND_BACKOFF_BASE_MS`] doubling to
//! [`RESEND_BACKOFF_MAX_MS`]), at most [`MAX_ATTEMPTS`] sends in all
//! ([`Client::on_tick`] drives the timers from the `now` it is given;
//! [`ClientEvent::Resent`] counts the attempts). When the attempts are used up, an op
//! whose message may be in the room's log waits for evidence (below, at most
//! [`EVIDENCE_TIMEOUT`]); any other op fails at once. Either way the op ends with an
//! [`ClientEvent::OpFailed`] whose reason starts with "gave up after" and the room's
//! queue moves on.
//!
//! Every op that puts an MLS message in the room's log (commit, proposal bundle,
//! application message) remembers that message's bytes ("echo"). The fan-out settles the
//! op whatever the replies said: our own bytes in the fan-out mean it was accepted; a
//! commit of the op's epoch that is not ours means it never will be (the hub sequences
//! one commit per epoch and logs in order), so the op is retried at the new epoch.
//!
//! ## Evidence phase
//!
//! An op waits for the fan-out to settle it ("evidence") after a `wrongEpoch` /
//! `epochTooOld` naming a later epoch than its message's (the epoch's commit is in the
//! log, ours or not), after a success under x-hub-only-room-state (we merge at our echo),
//! and after its attempts are used up. The wait is bounded by [`EVIDENCE_TIMEOUT`]. When it
//! expires the client asks the hub once more with the byte-identical request (the hub
//! answers a resend of a message it accepted with the original success, see `hub::core`),
//! and that answer is taken as definitive: a success settles the op as accepted; a
//! `wrongEpoch` / `epochTooOld` again means the hub did not take it, and the op fails
//! ("no evidence ...", its pending commit discarded) instead of waiting for a fan-out
//! that is not coming (a follower that drops it, a provider cut off). With no attempt
//! left, the op fails at the deadline ("gave up after ...").
//!
//! ## Choices
//!
//! * Stale replies: the first *definitive* answer (anything but 5xx) to any attempt of the
//!   current op settles it; later answers, answers to attempts of earlier ops, and 5xx
//!   answers to superseded attempts are ignored.
//! * `wrongEpoch` / `epochTooOld` for an op with an echo is not taken as a rejection: the
//!   client keeps its pending commit and waits for the fan-out of that epoch's commit
//!   (ours → success, another's → discard, process it, retry). The hub's `currentEpoch`
//!   is kept as the epoch to wait for before the retry.
//! * External join: the joiner's provider subscribes it to the room when it relays the
//!   `/update`, so the joiner normally sees its own commit in the fan-out. A `wrongEpoch`
//!   to a join is taken as definitive (drop the joining member, fetch a new GroupInfo);
//!   this is sound because the hub answers a byte-identical retry of an accepted commit
//!   with its original success (see `hub::core`, "Choices").
//! * Receivers drop an application message whose ciphertext they already saw (a
//!   duplicate accepted twice by a hub) silently, remembering the last
//!   [`MAX_SEEN_MESSAGES`] hashes per room; messages of epochs before the client joined
//!   are ignored silently too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;

mod answer;
mod commit;
mod fanout;
mod start;

use super::conduct::{Conduct, Deviation, Honest};
use super::failure::{failure, Failure, FailureOrigin, LocalFailure};
use super::leave::{LeaveOrder, Step};
use super::member::Member;
use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{ClientOutput, ClientToProvider, Millis, ProviderToClient, Response};
use crate::mls::config::Identity;
use crate::mls::{derive_seed, MlsStorage, SeededProvider};
use crate::room::components::ParticipantListUpdate;
use crate::room::hub_only::RoomStateMode;
use crate::room::{RolePreset, RoomState, PARTICIPANT_LIST};
use crate::wire::*;
use openmls_memory_storage::MemoryStorage;

/// Retries of one operation after `wrongEpoch` / `epochTooOld`.
pub const MAX_RETRIES: u32 = 8;
/// Queued operations per room.
pub const MAX_QUEUED: usize = 256;
/// A relayed request without a reply after this long has an ambiguous outcome.
pub const RELAY_TIMEOUT: Millis = 5_000;
/// First resend delay after an ambiguous outcome; doubles per attempt.
pub const RESEND_BACKOFF_BASE_MS: Millis = 500;
/// Cap of the resend delay.
pub const RESEND_BACKOFF_MAX_MS: Millis = 8_000;
/// Sends of one request (the first and every resend after an ambiguous outcome or an
/// expired evidence phase) before the client stops sending it. With replies that are
/// all 5xx this spans about two minutes of backoff ([`resend_backoff`]); with no replies
/// at all [`RELAY_TIMEOUT`] more per attempt. Longer than the scenarios' outages of a
/// hub that comes back, short enough that an op against a hub that never answers
/// definitively ends within a run.
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest wait in the evidence phase (see the module doc) before the client asks the
/// hub once more or, with no attempt left, fails the op.
pub const EVIDENCE_TIMEOUT: Millis = 30_000;
/// Longest wait, after a lost epoch, to reach the epoch the retry must be built on
/// (the hub's `currentEpoch`); then the op fails ([`FailureOrigin::EpochOutOfReach`])
/// and the room's queue moves on. Longer than the scenarios' partitions of a member
/// that comes back; it ends the wait of a member that can never reach that epoch (e.g.
/// a provider corrupting the fan-out it needs).
pub const CATCH_UP_TIMEOUT: Millis = 60_000;
/// Correlation ids of one op's attempts that are still recognised (older ones are
/// ignored like any unknown `corr`).
pub const MAX_ATTEMPT_CORRS: usize = 32;
/// Hashes of received application-message ciphertexts remembered per room for dedup.
pub const MAX_SEEN_MESSAGES: usize = 4096;
/// Users in one [`Command::AddUsers`].
pub const MAX_BATCH_USERS: usize = 1024;
/// x-hub-only-room-state: signals of epochs not reached yet, kept per room.
pub const MAX_PENDING_SIGNALS: usize = 16;

/// What a user asks its client to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Command {
    CreateRoom {
        room: RoomUri,
        #[serde(with = "super::encoding::role_preset")]
        preset: RolePreset,
        hub_sender: ExternalSender,
    },
    AddUser {
        room: RoomUri,
        user: UserUri,
        role: Option<u32>,
    },
    /// Add several users in one commit: their KeyPackages are fetched one user after
    /// the other, then one commit carries every Add and one participant-list update.
    AddUsers {
        room: RoomUri,
        users: Vec<(UserUri, Option<u32>)>,
    },
    RemoveUser {
        room: RoomUri,
        user: UserUri,
    },
    Kick {
        room: RoomUri,
        user: UserUri,
    },
    Ban {
        room: RoomUri,
        user: UserUri,
    },
    ChangeRole {
        room: RoomUri,
        user: UserUri,
        role: u32,
    },
    Leave {
        room: RoomUri,
    },
    Send {
        room: RoomUri,
        text: String,
    },
    JoinExternal {
        room: RoomUri,
    },
    SelfUpdate {
        room: RoomUri,
    },
    /// Commit the pending proposals (commit duty).
    CommitPending {
        room: RoomUri,
    },
    /// x-hub-transfer §3, cooperative: commit a transfer of the room's hub to `to`
    /// (`hub_sender`: its external sender), sequenced by the current hub.
    MoveHub {
        room: RoomUri,
        to: Domain,
        hub_sender: ExternalSender,
    },
    /// x-hub-transfer §4, takeover: commit a transfer of the hub to this client's own
    /// provider (`hub_sender`) on the epoch this client knows, and ask that provider's
    /// hub to take the room over.
    TakeOver {
        room: RoomUri,
        hub_sender: ExternalSender,
    },
    /// One step of a non-atomic leave, Remove or Ban about `user` (see [`super::leave`]).
    LeaveStep {
        room: RoomUri,
        user: UserUri,
        steps: Vec<Step>,
    },
}

impl Command {
    pub fn room(&self) -> &RoomUri {
        match self {
            Command::CreateRoom { room, .. }
            | Command::AddUser { room, .. }
            | Command::AddUsers { room, .. }
            | Command::RemoveUser { room, .. }
            | Command::Kick { room, .. }
            | Command::Ban { room, .. }
            | Command::ChangeRole { room, .. }
            | Command::Leave { room }
            | Command::Send { room, .. }
            | Command::JoinExternal { room }
            | Command::SelfUpdate { room }
            | Command::CommitPending { room }
            | Command::MoveHub { room, .. }
            | Command::TakeOver { room, .. } => room,
            Command::LeaveStep { room, .. } => room,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateRoom { .. } => "create-room",
            Command::AddUser { .. } => "add-user",
            Command::AddUsers { .. } => "add-users",
            Command::RemoveUser { .. } => "remove-user",
            Command::Kick { .. } => "kick",
            Command::Ban { .. } => "ban",
            Command::ChangeRole { .. } => "change-role",
            Command::Leave { .. } => "leave",
            Command::Send { .. } => "send",
            Command::JoinExternal { .. } => "join-external",
            Command::SelfUpdate { .. } => "self-update",
            Command::CommitPending { .. } => "commit-pending",
            Command::MoveHub { .. } => "move-hub",
            Command::TakeOver { .. } => "take-over",
            Command::LeaveStep { .. } => "leave-step",
        }
    }
}

/// A command the client cannot even queue.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("room {0}: too many queued operations (limit {MAX_QUEUED})")]
    QueueFull(RoomUri),
    #[error("{0}")]
    Other(String),
}

/// What a client observed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientEvent {
    Created {
        room: RoomUri,
    },
    Joined {
        room: RoomUri,
        epoch: u64,
        #[serde(deserialize_with = "super::encoding::known_name")]
        how: &'static str,
    },
    Epoch {
        room: RoomUri,
        epoch: u64,
    },
    MessageSent {
        room: RoomUri,
        message_id: String,
        timestamp: Millis,
    },
    MessageReceived {
        room: RoomUri,
        sender: Option<ClientUri>,
        message_id: String,
        timestamp: Millis,
        text: String,
    },
    Removed {
        room: RoomUri,
    },
    OpSucceeded {
        room: RoomUri,
        #[serde(deserialize_with = "super::encoding::known_name")]
        op: &'static str,
    },
    /// The op failed: `origin` says where (typed, set where the failure is produced),
    /// `reason` says what happened, for people.
    /// `request_sha256`: for a failure the answer to a request decided (a hub refusal, an
    /// HTTP error), the SHA-256 (hex) of that request's body, the digest the hub's
    /// `Rejected` event names.
    OpFailed {
        room: RoomUri,
        #[serde(deserialize_with = "super::encoding::known_name")]
        op: &'static str,
        origin: FailureOrigin,
        reason: String,
        request_sha256: Option<String>,
    },
    /// A request with an ambiguous outcome was sent again (`attempt` counts from 2).
    Resent {
        room: RoomUri,
        #[serde(deserialize_with = "super::encoding::known_name")]
        op: &'static str,
        attempt: u32,
    },
    /// A delivered message this client could not process.
    DeliveryError {
        room: RoomUri,
        reason: String,
    },
    /// This (malicious) client's adversary behaviour acted (see [`crate::adversary`]):
    /// `action` names what it did, e.g. "omitted 2 cached proposals".
    AdversaryAction {
        room: RoomUri,
        #[serde(deserialize_with = "super::encoding::known_name")]
        behaviour: &'static str,
        action: String,
    },
    /// This client built an application message for `/submitMessage` (P§5.4):
    /// `mls_message_sha256` is the SHA-256 (hex) of its MLSMessage bytes, so the
    /// simulator knows who really built a message the hub accepts under some sendingUri
    /// (oracle `sending-uri-is-sender`).
    MessageBuilt {
        room: RoomUri,
        mls_message_sha256: String,
    },
}

/// A read-only view of the client's state in one room.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub epoch: u64,
    pub group_context: Vec<u8>,
    pub epoch_authenticator: Vec<u8>,
    pub dictionary: BTreeMap<u16, Vec<u8>>,
    pub members: Vec<ClientUri>,
    pub state: Option<RoomState>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
enum Stage {
    Create,
    /// Fetching KeyPackages of the op's `index`-th user; `got` holds the earlier ones'.
    KeyMaterial {
        index: usize,
        got: Vec<KeyPackage>,
    },
    Update {
        commit: bool,
        join: bool,
    },
    Submit {
        message_id: String,
    },
    GroupInfo {
        private_key: Vec<u8>,
    },
}

/// The MLS message an op put in the room's log, as it will come back in the fan-out.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Echo {
    bytes: Vec<u8>,
    epoch: u64,
}

impl Echo {
    fn of(bytes: &[u8]) -> Option<Echo> {
        let m = MlsMessageBytes::from_bytes(bytes).ok()?;
        Some(Echo {
            bytes: bytes.to_vec(),
            epoch: m.info().epoch?,
        })
    }
}

/// Where an op's request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// The current attempt is outstanding; ambiguous after `deadline`.
    Waiting { deadline: Millis },
    /// The outcome was ambiguous: resend at `resend_at`.
    Backoff { resend_at: Millis },
    /// The fan-out should settle the op (see the module doc); until `deadline`.
    Evidence { deadline: Millis },
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct InFlight {
    /// The current attempt's correlation id.
    corr: u64,
    /// Correlation ids of every recent attempt (replies to any of them are accepted).
    corrs: VecDeque<u64>,
    cmd: Command,
    stage: Stage,
    /// The request as sent (resent byte-identical, with a new `corr`).
    request: ClientToProvider,
    attempt: u32,
    phase: Phase,
    echo: Option<Echo>,
    /// The hub's `currentEpoch` from a `wrongEpoch`/`epochTooOld` answer.
    hub_epoch: Option<u64>,
    /// The evidence phase expired and the request was sent again: its answer is
    /// definitive (see the module doc).
    rechecked: bool,
    /// Why the last attempt's outcome was ambiguous (for the failure reason).
    last_ambiguity: String,
}

/// A room as the client keeps it; its MLS group is in the storage, not in a snapshot
/// ([`super::snapshot`]).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ClientRoom {
    #[serde(skip)]
    pub(super) member: Option<Member>,
    pub(super) queue: VecDeque<(Command, u32)>,
    pub(super) in_flight: Option<(InFlight, u32)>,
    /// Do not start the next operation before reaching this epoch (a retry after a
    /// lost epoch), waiting until the deadline at most ([`CATCH_UP_TIMEOUT`]).
    pub(super) wait_epoch: Option<(u64, Millis)>,
    /// Do not start the next operation before this time (a retry after `invalidProposal`
    /// waits for the missing proposals to arrive through the fan-out).
    pub(super) not_before: Option<Millis>,
    /// The epoch this client joined at (messages of earlier epochs are not for it).
    pub(super) joined_epoch: Option<u64>,
    /// Hashes of application-message ciphertexts already seen (bounded).
    #[serde(with = "super::encoding::hashes")]
    pub(super) seen: VecDeque<[u8; 32]>,
    /// The same hashes as `seen`, for lookup (a snapshot holds `seen` only).
    #[serde(skip)]
    pub(super) seen_set: BTreeSet<[u8; 32]>,
    /// The next steps of a non-atomic leave (see [`super::leave`]): queued when the op
    /// in flight succeeds, dropped when it fails.
    pub(super) after_success: Vec<Command>,
    /// x-hub-only-room-state: the signalled room state this client holds, with its epoch.
    #[serde(with = "super::encoding::signalled")]
    pub(super) signalled: Option<(u64, RoomState)>,
    /// x-hub-only-room-state: signals of epochs this client has not reached yet.
    #[serde(with = "super::encoding::pending_signals")]
    pub(super) pending_signals: BTreeMap<u64, RoomState>,
}

impl ClientRoom {
    /// Remember a ciphertext hash; false if it was seen before.
    fn first_sight(&mut self, h: [u8; 32]) -> bool {
        if !self.seen_set.insert(h) {
            return false;
        }
        self.seen.push_back(h);
        while self.seen.len() > MAX_SEEN_MESSAGES {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
        true
    }
}

fn set_corr(m: &mut ClientToProvider, c: u64) {
    match m {
        ClientToProvider::Relay { corr, .. }
        | ClientToProvider::CreateRoom { corr, .. }
        | ClientToProvider::TakeOver { corr, .. } => *corr = c,
        ClientToProvider::PublishKeyPackages { .. }
        | ClientToProvider::LeaveRoom { .. }
        | ClientToProvider::ForkedCommit { .. } => {}
    }
}

/// A reply that does not say what the hub did: the provider could not reach it.
fn ambiguous(r: &Response) -> bool {
    r.status >= 500
}

/// The resend delay before attempt `attempt + 1`.
pub fn resend_backoff(attempt: u32) -> Millis {
    let shift = attempt.saturating_sub(1).min(10);
    (RESEND_BACKOFF_BASE_MS << shift).min(RESEND_BACKOFF_MAX_MS)
}

/// A client (device) of a user. Its MLS state is kept in `S` (in memory unless the node
/// built it with [`Client::with_storage`]).
pub struct Client<S: MlsStorage = MemoryStorage> {
    pub(super) uri: ClientUri,
    pub(super) provider: SeededProvider<S>,
    pub(super) identity: Identity,
    pub(super) rooms: BTreeMap<RoomUri, ClientRoom>,
    pub(super) next_corr: u64,
    pub(super) events: Vec<ClientEvent>,
    /// How it acts where a deviating client differs ([`super::conduct`]): honest unless
    /// bugs are planted ([`crate::planted`]) or it is a malicious provider's device
    /// ([`crate::adversary`]).
    pub(super) conduct: Box<dyn Conduct>,
    /// The leave-ordering variant (see [`super::leave`]).
    pub(super) leave_order: LeaveOrder,
    /// The room-state variant (see [`crate::room::hub_only`]).
    pub(super) room_state: RoomStateMode,
    /// While an answer is handled: the SHA-256 (hex) of the request it answers.
    pub(super) answering: Option<String>,
}

/// How a fan-out message settled the op in flight.
enum Settle {
    Succeeded(&'static str),
    /// Retry (command, retries so far, hub epoch hint).
    Lost(Command, u32, u64),
}

/// What starting an op produces: the request (its `corr` is set at sending), the stage
/// and the echo.
type Started = (ClientToProvider, Stage, Option<Echo>);

fn fail(reason: impl std::fmt::Display) -> String {
    reason.to_string()
}

impl Client {
    pub fn new(run_seed: u64, uri: ClientUri) -> Self {
        Self::with_storage(run_seed, uri, MemoryStorage::default())
    }

    /// This client, configured as it is, with its MLS state in `storage` from now on.
    /// Only a client that has not yet stored anything (no KeyPackage, no room) may move.
    pub fn into_storage<S: MlsStorage>(self, storage: S) -> Client<S> {
        assert!(
            self.rooms.is_empty(),
            "a client in rooms cannot move to another storage"
        );
        Client {
            uri: self.uri,
            provider: self.provider.into_storage(storage),
            identity: self.identity,
            rooms: self.rooms,
            next_corr: self.next_corr,
            events: self.events,
            conduct: self.conduct,
            leave_order: self.leave_order,
            room_state: self.room_state,
            answering: self.answering,
        }
    }
}

impl<S: MlsStorage> Client<S> {
    /// A client whose MLS state lives in `storage`; its random stream is the same as
    /// [`Client::new`]'s, so the same inputs give the same bytes whatever keeps the state.
    pub fn with_storage(run_seed: u64, uri: ClientUri, storage: S) -> Self {
        let provider = SeededProvider::with_storage(derive_seed(run_seed, uri.as_str()), storage);
        let identity = Identity::for_client(&provider, &uri).expect("seeded Ed25519 key");
        Client {
            uri,
            provider,
            identity,
            rooms: BTreeMap::new(),
            next_corr: 1,
            events: Vec::new(),
            conduct: Box::new(Honest),
            leave_order: LeaveOrder::Atomic,
            room_state: RoomStateMode::Bound,
            answering: None,
        }
    }

    pub fn uri(&self) -> &ClientUri {
        &self.uri
    }

    /// `n` fresh KeyPackages to publish at the provider.
    pub fn publish_key_packages(&mut self, n: usize) -> ClientOutput {
        let key_packages = (0..n)
            .filter_map(|_| self.identity.key_package(&self.provider).ok())
            .filter_map(|b| b.key_package().tls_serialize_detached().ok())
            .collect();
        ClientOutput::ToProvider(ClientToProvider::PublishKeyPackages { key_packages })
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn room_view(&self, room: &RoomUri) -> Option<RoomView> {
        let m = self.rooms.get(room)?.member.as_ref()?;
        if !m.is_active() {
            return None;
        }
        let dictionary = m.dictionary();
        let state = if self.room_state.is_hub_only() {
            // x-hub-only-room-state: the signalled copy, not the (frozen) GroupContext.
            self.rooms
                .get(room)
                .and_then(|r| r.signalled.as_ref())
                .map(|(_, s)| s.clone())
        } else {
            RoomState::from_dictionary(&dictionary).ok()
        };
        let state = self.conduct.room_view_state(&self.uri.user(), state);
        Some(RoomView {
            epoch: m.epoch(),
            group_context: m.group_context_bytes(),
            epoch_authenticator: m.epoch_authenticator(),
            state,
            dictionary,
            members: m.members().into_iter().filter_map(|(_, c)| c).collect(),
        })
    }

    /// No operation in flight or queued for `room`.
    pub fn is_idle(&self, room: &RoomUri) -> bool {
        self.rooms
            .get(room)
            .is_none_or(|r| r.in_flight.is_none() && r.queue.is_empty())
    }

    pub fn command(&mut self, now: Millis, cmd: Command) -> Result<Vec<ClientOutput>, ClientError> {
        let room = cmd.room().clone();
        let r = self.rooms.entry(room.clone()).or_default();
        if r.queue.len() >= MAX_QUEUED {
            return Err(ClientError::QueueFull(room));
        }
        r.queue.push_back((cmd, 0));
        let mut out = Vec::new();
        self.pump(now, &room, &mut out);
        Ok(out)
    }

    fn corr(&mut self) -> u64 {
        self.next_corr += 1;
        self.next_corr
    }

    fn relay(endpoint: Endpoint, body: Vec<u8>) -> ClientToProvider {
        ClientToProvider::Relay {
            corr: 0,
            endpoint,
            body,
        }
    }

    /// How this client acts where a deviating client differs ([`super::conduct`]).
    pub fn conduct(&self) -> &dyn Conduct {
        &*self.conduct
    }

    /// Replace this client's conduct by `change` applied to it: how bugs are planted
    /// (`set_bugs`, [`crate::planted`]) and a malicious provider's behaviour is given to
    /// its devices (`set_adversary`, [`crate::adversary`]).
    pub fn change_conduct(&mut self, change: impl FnOnce(Box<dyn Conduct>) -> Box<dyn Conduct>) {
        let conduct = std::mem::replace(&mut self.conduct, Box::new(Honest));
        self.conduct = change(conduct);
    }

    /// Follow the leave-ordering variant `order` (see [`super::leave`]).
    pub fn set_leave_order(&mut self, order: LeaveOrder) {
        self.leave_order = order;
    }

    /// Follow the room-state variant `mode` (see [`crate::room::hub_only`]).
    pub fn set_room_state_mode(&mut self, mode: RoomStateMode) {
        self.room_state = mode;
    }

    /// x-hub-only-room-state: a signal of `room`'s state at `epoch` arrived. Kept as the
    /// client's copy if it has reached `epoch` (and the copy is not newer), else held
    /// until it does.
    fn on_signal(&mut self, room: &RoomUri, epoch: u64, state: RoomState) {
        let r = self.rooms.entry(room.clone()).or_default();
        r.pending_signals.insert(epoch, state);
        while r.pending_signals.len() > MAX_PENDING_SIGNALS {
            r.pending_signals.pop_first();
        }
        self.settle_signals(room);
    }

    /// x-hub-only-room-state: adopt the newest held signal of an epoch this client has
    /// reached; drop held signals older than its copy.
    fn settle_signals(&mut self, room: &RoomUri) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(epoch) = r
            .member
            .as_ref()
            .filter(|m| m.is_active())
            .map(Member::epoch)
        else {
            return;
        };
        let later = r.pending_signals.split_off(&(epoch + 1));
        let reached = std::mem::replace(&mut r.pending_signals, later);
        if let Some((e, st)) = reached.into_iter().next_back() {
            if r.signalled.as_ref().is_none_or(|(have, _)| e >= *have) {
                r.signalled = Some((e, st));
            }
        }
    }

    /// Record what this client's conduct did on purpose in `room` (a malicious device's
    /// behaviour, see [`crate::adversary`]).
    fn deviated(&mut self, room: &RoomUri, did: Vec<Deviation>) {
        for d in did {
            self.events.push(ClientEvent::AdversaryAction {
                room: room.clone(),
                behaviour: d.behaviour,
                action: d.action,
            });
        }
    }

    /// Send `request` as the first attempt of `cmd` and make it the room's op in flight.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &mut self,
        now: Millis,
        room: &RoomUri,
        cmd: Command,
        retries: u32,
        mut request: ClientToProvider,
        stage: Stage,
        echo: Option<Echo>,
        out: &mut Vec<ClientOutput>,
    ) {
        for m in self.conduct.before_request() {
            out.push(ClientOutput::ToProvider(m));
        }
        let corr = self.corr();
        set_corr(&mut request, corr);
        out.push(ClientOutput::ToProvider(request.clone()));
        if let Some(r) = self.rooms.get_mut(room) {
            r.in_flight = Some((
                InFlight {
                    corr,
                    corrs: VecDeque::from([corr]),
                    cmd,
                    stage,
                    request,
                    attempt: 1,
                    phase: Phase::Waiting {
                        deadline: now + RELAY_TIMEOUT,
                    },
                    echo,
                    hub_epoch: None,
                    rechecked: false,
                    last_ambiguity: String::new(),
                },
                retries,
            ));
        }
    }

    /// The earliest time [`Client::on_tick`] has something to do (a reply deadline, a
    /// resend, the end of an evidence phase, or the end of an idle room's wait), if any.
    pub fn next_wakeup(&self) -> Option<Millis> {
        self.rooms
            .values()
            .filter_map(|r| match r.in_flight.as_ref() {
                Some((f, _)) => Some(match f.phase {
                    Phase::Waiting { deadline } => deadline,
                    Phase::Backoff { resend_at } => resend_at,
                    Phase::Evidence { deadline } => deadline,
                }),
                None => {
                    let waits = [r.not_before, r.wait_epoch.map(|(_, deadline)| deadline)];
                    waits.into_iter().flatten().min()
                }
            })
            .min()
    }

    /// Stop working on the op in flight in `room`: no more sends. Its pending commit is
    /// discarded (as after any definitive failure) and it fails with `reason`.
    fn give_up(&mut self, room: &RoomUri, reason: String) {
        let Some((f, _)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
            return;
        };
        if let Stage::Update { commit: true, join } = f.stage {
            self.discard_update(room, true, join);
        }
        let origin = FailureOrigin::Unanswered {
            attempts: MAX_ATTEMPTS,
        };
        self.finish(room, f.cmd.name(), Err((origin, reason)));
    }

    /// Why the op in flight is given up after its last attempt.
    fn gave_up_reason(f: &InFlight) -> String {
        format!(
            "gave up after {MAX_ATTEMPTS} attempts without a definitive answer (last: {})",
            f.last_ambiguity
        )
    }

    /// Time passed: requests without a reply become ambiguous; ambiguous ones are resent
    /// byte-identical (new `corr`) once their backoff is over, up to [`MAX_ATTEMPTS`]
    /// sends; an expired evidence phase asks the hub once more or gives the op up.
    pub fn on_tick(&mut self, now: Millis) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        let rooms: Vec<RoomUri> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let corr = self.next_corr + 1;
            let Some(r) = self.rooms.get_mut(&room) else {
                continue;
            };
            let wait_over = r.not_before.is_some_and(|t| t <= now)
                || r.wait_epoch.is_some_and(|(_, deadline)| deadline <= now);
            if r.in_flight.is_none() && wait_over {
                self.pump(now, &room, &mut out);
                continue;
            }
            let Some((f, _)) = r.in_flight.as_mut() else {
                continue;
            };
            let mut give_up = None;
            match f.phase {
                Phase::Waiting { deadline } if deadline <= now => {
                    f.last_ambiguity = format!("no reply within {RELAY_TIMEOUT} ms");
                    f.phase = Phase::Backoff {
                        resend_at: now + resend_backoff(f.attempt),
                    };
                }
                Phase::Evidence { deadline } if deadline <= now => {
                    if f.attempt >= MAX_ATTEMPTS {
                        give_up = Some(format!(
                            "{}; no fan-out settled it within {EVIDENCE_TIMEOUT} ms",
                            Self::gave_up_reason(f)
                        ));
                    } else {
                        // Ask the hub once more; its answer is definitive.
                        f.rechecked = true;
                        f.phase = Phase::Backoff { resend_at: now };
                    }
                }
                _ => {}
            }
            if give_up.is_none() {
                let Phase::Backoff { resend_at } = f.phase else {
                    continue;
                };
                if resend_at > now {
                    continue;
                }
                if f.attempt >= MAX_ATTEMPTS {
                    if f.echo.is_some() {
                        // The message may be in the room's log: the fan-out may still
                        // settle the op, for at most EVIDENCE_TIMEOUT.
                        f.phase = Phase::Evidence {
                            deadline: now + EVIDENCE_TIMEOUT,
                        };
                        continue;
                    }
                    give_up = Some(Self::gave_up_reason(f));
                }
            }
            if let Some(reason) = give_up {
                self.give_up(&room, reason);
                self.pump(now, &room, &mut out);
                continue;
            }
            f.attempt += 1;
            f.corr = corr;
            f.corrs.push_back(corr);
            while f.corrs.len() > MAX_ATTEMPT_CORRS {
                f.corrs.pop_front();
            }
            set_corr(&mut f.request, corr);
            f.phase = Phase::Waiting {
                deadline: now + RELAY_TIMEOUT,
            };
            out.push(ClientOutput::ToProvider(f.request.clone()));
            let (op, attempt) = (f.cmd.name(), f.attempt);
            self.next_corr = corr;
            self.events.push(ClientEvent::Resent { room, op, attempt });
        }
        out
    }

    /// Start queued operations while the room is idle.
    fn pump(&mut self, now: Millis, room: &RoomUri, out: &mut Vec<ClientOutput>) {
        for _ in 0..MAX_QUEUED {
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            if r.in_flight.is_some() {
                return;
            }
            if let (Some((w, deadline)), Some(m)) = (r.wait_epoch, r.member.as_ref()) {
                if m.epoch() < w {
                    if now < deadline {
                        return;
                    }
                    // The epoch is out of reach: the retry waiting for it fails.
                    let reached = m.epoch();
                    r.wait_epoch = None;
                    if let Some((cmd, _)) = r.queue.pop_front() {
                        self.finish(
                            room,
                            cmd.name(),
                            Err(failure(
                                FailureOrigin::EpochOutOfReach { epoch: w, reached },
                                format!(
                                    "gave up the retry: epoch {w} not reached within \
                                     {CATCH_UP_TIMEOUT} ms (still at epoch {reached})"
                                ),
                            )),
                        );
                    }
                    continue;
                }
            }
            if r.not_before.is_some_and(|t| now < t) {
                return;
            }
            r.wait_epoch = None;
            r.not_before = None;
            let Some((cmd, retries)) = r.queue.pop_front() else {
                return;
            };
            let name = cmd.name();
            match self.start(now, cmd.clone()) {
                Ok(Some((request, stage, echo))) => {
                    self.launch(now, room, cmd, retries, request, stage, echo, out)
                }
                Ok(None) => {}
                Err(reason) => self.events.push(ClientEvent::OpFailed {
                    room: room.clone(),
                    op: name,
                    origin: FailureOrigin::Local(LocalFailure::Build),
                    reason,
                    request_sha256: None,
                }),
            }
        }
    }

    fn member(&mut self, room: &RoomUri) -> Result<&mut Member, String> {
        self.rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .filter(|m| m.is_active())
            .ok_or_else(|| format!("not a member of {room}"))
    }

    /// This client's member of `room`, if it is an active one (read only).
    fn active_member(&self, room: &RoomUri) -> Result<&Member, String> {
        self.rooms
            .get(room)
            .and_then(|r| r.member.as_ref())
            .filter(|m| m.is_active())
            .ok_or_else(|| format!("not a member of {room}"))
    }

    /// The room state this client holds: the GroupContext's, or under
    /// x-hub-only-room-state the signalled copy.
    fn state(&self, room: &RoomUri) -> Result<RoomState, String> {
        if self.room_state.is_hub_only() {
            self.active_member(room)?;
            return self
                .rooms
                .get(room)
                .and_then(|r| r.signalled.as_ref())
                .map(|(_, s)| s.clone())
                .ok_or_else(|| format!("no signalled room state of {room} yet"));
        }
        let d = self.active_member(room)?.dictionary();
        RoomState::from_dictionary(&d).map_err(fail)
    }

    fn leaves_of(&mut self, room: &RoomUri, user: &UserUri) -> Result<Vec<LeafNodeIndex>, String> {
        Ok(self
            .member(room)?
            .members()
            .into_iter()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| &c.user() == user))
            .map(|(l, _)| LeafNodeIndex::new(l))
            .collect())
    }

    fn list_update(u: ParticipantListUpdate) -> Result<Proposal, String> {
        Ok(Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(PARTICIPANT_LIST, u.encode().map_err(fail)?),
        )))
    }

    fn index(&mut self, room: &RoomUri, user: &UserUri) -> Result<u32, String> {
        self.state(room)?
            .index_of(user)
            .ok_or_else(|| format!("{user} is not a participant"))
    }

    pub fn on_message(&mut self, now: Millis, message: ProviderToClient) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        match message {
            ProviderToClient::Reply { corr, response } => {
                let room = self
                    .rooms
                    .iter()
                    .find(|(_, r)| {
                        r.in_flight
                            .as_ref()
                            .is_some_and(|(f, _)| f.corrs.contains(&corr))
                    })
                    .map(|(k, _)| k.clone());
                if let Some(room) = room {
                    self.on_reply(now, &room, corr, response, &mut out);
                    self.settle_signals(&room);
                    self.pump(now, &room, &mut out);
                }
            }
            ProviderToClient::Deliver { room, fanout } => {
                if let Err(reason) = self.on_deliver(now, &room, &fanout, &mut out) {
                    self.events.push(ClientEvent::DeliveryError {
                        room: room.clone(),
                        reason,
                    });
                }
                self.settle_signals(&room);
                self.pump(now, &room, &mut out);
            }
        }
        out
    }

    fn finish(&mut self, room: &RoomUri, op: &'static str, result: Result<(), Failure>) {
        if let Some(r) = self.rooms.get_mut(room) {
            let next = std::mem::take(&mut r.after_success);
            if result.is_ok() {
                for cmd in next.into_iter().rev() {
                    r.queue.push_front((cmd, 0));
                }
            }
        }
        self.events.push(match result {
            Ok(()) => ClientEvent::OpSucceeded {
                room: room.clone(),
                op,
            },
            Err((origin, reason)) => ClientEvent::OpFailed {
                room: room.clone(),
                op,
                origin,
                reason,
                request_sha256: match origin {
                    FailureOrigin::HubRefused { .. } | FailureOrigin::HttpError { .. } => {
                        self.answering.clone()
                    }
                    _ => None,
                },
            },
        });
    }

    fn retry(&mut self, now: Millis, room: &RoomUri, cmd: Command, retries: u32, epoch: u64) {
        if retries + 1 > MAX_RETRIES {
            self.finish(
                room,
                cmd.name(),
                Err(failure(
                    FailureOrigin::RetriesExhausted {
                        retries: MAX_RETRIES,
                    },
                    format!("gave up after {MAX_RETRIES} retries"),
                )),
            );
            return;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.queue.push_front((cmd, retries + 1));
            r.wait_epoch = Some((epoch, now + CATCH_UP_TIMEOUT));
        }
    }

    /// Put an op back in flight, waiting (until [`EVIDENCE_TIMEOUT`] from `now`) for the
    /// fan-out to settle it.
    fn await_evidence(
        &mut self,
        now: Millis,
        room: &RoomUri,
        mut f: InFlight,
        retries: u32,
        hub_epoch: u64,
    ) {
        f.phase = Phase::Evidence {
            deadline: now + EVIDENCE_TIMEOUT,
        };
        f.hub_epoch = Some(hub_epoch);
        if let Some(r) = self.rooms.get_mut(room) {
            r.in_flight = Some((f, retries));
        }
    }

    /// Our commit (or external join) was accepted: merge and report.
    fn update_succeeded(&mut self, room: &RoomUri, op: &'static str, commit: bool, join: bool) {
        let provider = &self.provider;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if commit && !join {
            if let Some(m) = r.member.as_mut() {
                if m.has_pending_commit() {
                    let _ = m.merge_pending_commit(provider);
                }
            }
        }
        if let Some(e) = r.member.as_ref().map(Member::epoch) {
            if join {
                r.joined_epoch = Some(e);
            }
            if commit {
                let ev = if join {
                    ClientEvent::Joined {
                        room: room.clone(),
                        epoch: e,
                        how: "external commit",
                    }
                } else {
                    ClientEvent::Epoch {
                        room: room.clone(),
                        epoch: e,
                    }
                };
                self.events.push(ev);
            }
        }
        self.finish(room, op, Ok(()));
    }

    /// The hub did not take our commit / proposals: forget them.
    fn discard_update(&mut self, room: &RoomUri, commit: bool, join: bool) {
        let provider = &self.provider;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        if join {
            r.member = None;
        } else if let Some(m) = r.member.as_mut() {
            if commit {
                let _ = m.discard_pending_commit(provider);
            } else {
                let _ = m.discard_pending_proposals(provider);
            }
        }
    }
}
