//! The client core (sans-IO): a user's device. It builds every MLS object (P§1.3), talks
//! only to its own provider, runs one operation per room at a time, retries after
//! `wrongEpoch` once it has caught up, and commits pending proposals when it is the
//! designated member (the lowest leaf not being removed by them).
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

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;
use sha2::{Digest, Sha256};

use super::failure::{
    bad_answer, build_failure, failure, Failure, FailureOrigin, LocalFailure, RefusalCode,
};
use super::leave::{admin_commits, own_leave_ops, Departure, LeaveOrder, Step};
use super::member::{CommitOutput, Member, Processed};
use crate::adversary::Adversary;
use crate::content::{message_id, MimiContent};
use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{status, ClientOutput, ClientToProvider, Millis, ProviderToClient, Response};
use crate::mls::commit::CommitPlan;
use crate::mls::config::{self, Identity, CIPHERSUITE};
use crate::mls::{derive_seed, MlsStorage, SeededProvider};
use crate::planted::{Bug, Bugs};
use crate::room::codec::Opaque;
use crate::room::components::{ParticipantListUpdate, UserRolePair, UserindexRolePair};
use crate::room::hub_only::{self, HubOnlyUpdate, RoomStateMode};
use crate::room::roles::BANNED_ROLE;
use crate::room::RoomComponents;
use crate::room::{NewRoomOptions, RolePreset, RoomState, PARTICIPANT_LIST};
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
        #[serde(with = "super::snapshot::role_preset")]
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
        #[serde(deserialize_with = "super::snapshot::known_name")]
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
        #[serde(deserialize_with = "super::snapshot::known_name")]
        op: &'static str,
    },
    /// The op failed: `origin` says where (typed, set where the failure is produced),
    /// `reason` says what happened, for people.
    /// `request_sha256`: for a failure the answer to a request decided (a hub refusal, an
    /// HTTP error), the SHA-256 (hex) of that request's body, the digest the hub's
    /// `Rejected` event names.
    OpFailed {
        room: RoomUri,
        #[serde(deserialize_with = "super::snapshot::known_name")]
        op: &'static str,
        origin: FailureOrigin,
        reason: String,
        request_sha256: Option<String>,
    },
    /// A request with an ambiguous outcome was sent again (`attempt` counts from 2).
    Resent {
        room: RoomUri,
        #[serde(deserialize_with = "super::snapshot::known_name")]
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
        #[serde(deserialize_with = "super::snapshot::known_name")]
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
    #[serde(with = "super::snapshot::hashes")]
    pub(super) seen: VecDeque<[u8; 32]>,
    /// The same hashes as `seen`, for lookup (a snapshot holds `seen` only).
    #[serde(skip)]
    pub(super) seen_set: BTreeSet<[u8; 32]>,
    /// The next steps of a non-atomic leave (see [`super::leave`]): queued when the op
    /// in flight succeeds, dropped when it fails.
    pub(super) after_success: Vec<Command>,
    /// x-hub-only-room-state: the signalled room state this client holds, with its epoch.
    #[serde(with = "super::snapshot::signalled")]
    pub(super) signalled: Option<(u64, RoomState)>,
    /// x-hub-only-room-state: signals of epochs this client has not reached yet.
    #[serde(with = "super::snapshot::pending_signals")]
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
    pub(super) bugs: Bugs,
    pub(super) adversary: Option<Adversary>,
    /// Provider-internal messages of a malicious device sent before the next request
    /// (the forked commit of [`Adversary::Equivocate`]).
    pub(super) side: Vec<ClientToProvider>,
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
            bugs: self.bugs,
            adversary: self.adversary,
            side: self.side,
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
            bugs: Bugs::new(),
            adversary: None,
            side: Vec::new(),
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
        let mut state = if self.room_state.is_hub_only() {
            // x-hub-only-room-state: the signalled copy, not the (frozen) GroupContext.
            self.rooms
                .get(room)
                .and_then(|r| r.signalled.as_ref())
                .map(|(_, s)| s.clone())
        } else {
            RoomState::from_dictionary(&dictionary).ok()
        };
        if self.bugs.contains(&Bug::ClientMisreadsParticipantList) {
            if let Some(st) = state.as_mut() {
                let me = self.uri.user();
                if st.participants.first().is_some_and(|p| p.user != me) {
                    st.participants.pop();
                }
            }
        }
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

    /// Plant deliberate bugs (see [`crate::planted`]); only client bugs matter here.
    pub fn set_bugs(&mut self, bugs: &Bugs) {
        self.bugs = bugs.clone();
    }

    /// Make this client one of a malicious provider's devices (see [`crate::adversary`]);
    /// `None` makes it honest. Only the client-side behaviours matter here.
    pub fn set_adversary(&mut self, adversary: Option<Adversary>) {
        self.adversary = adversary;
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

    /// x-hub-only-room-state: take the participant-list AppDataUpdates out of `plan`
    /// (they go beside the commit, not in it).
    fn take_list_updates(plan: &mut CommitPlan) -> Result<Vec<ParticipantListUpdate>, String> {
        let mut list = Vec::new();
        let mut rest = Vec::new();
        for p in std::mem::take(&mut plan.proposals) {
            match &p {
                Proposal::AppDataUpdate(u) if u.component_id() == PARTICIPANT_LIST => {
                    match u.operation() {
                        AppDataUpdateOperation::Update(b) => {
                            list.push(ParticipantListUpdate::decode(b.as_slice()).map_err(fail)?)
                        }
                        AppDataUpdateOperation::Remove => {
                            return Err("the participant list cannot be removed".into())
                        }
                    }
                }
                _ => rest.push(p),
            }
        }
        plan.proposals = rest;
        Ok(list)
    }

    /// x-hub-only-room-state: an `/update` body with `list` beside the handshake.
    fn hub_only_body(body: Vec<u8>, list: &[ParticipantListUpdate]) -> Result<Vec<u8>, String> {
        HubOnlyUpdate {
            request: decode_exact(&body).map_err(fail)?,
            list_updates: list.to_vec(),
        }
        .encode()
        .map_err(fail)
    }

    fn is(&self, a: Adversary) -> bool {
        self.adversary == Some(a)
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
        for m in self.side.drain(..) {
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

    fn state(&mut self, room: &RoomUri) -> Result<RoomState, String> {
        if self.room_state.is_hub_only() {
            self.member(room)?;
            return self
                .rooms
                .get(room)
                .and_then(|r| r.signalled.as_ref())
                .map(|(_, s)| s.clone())
                .ok_or_else(|| format!("no signalled room state of {room} yet"));
        }
        let d = self.member(room)?.dictionary();
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

    fn commit_request(&mut self, room: &RoomUri, mut plan: CommitPlan) -> Result<Started, String> {
        let adversary = self.adversary;
        let hub_only = self.room_state.is_hub_only();
        let list = if hub_only {
            Self::take_list_updates(&mut plan)?
        } else {
            Vec::new()
        };
        // Adversary omit-cached-proposals: commit only what the plan names inline.
        plan.consume_proposal_store = adversary != Some(Adversary::OmitCachedProposals);
        let provider = &self.provider;
        let identity = &self.identity;
        let m = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .ok_or_else(|| format!("not a member of {room}"))?;
        let mut omitted = 0;
        if adversary == Some(Adversary::OmitCachedProposals) {
            // openmls resolves AppDataUpdates of the whole store even when the store is
            // not consumed; forgetting the received proposals leaves them out cleanly.
            omitted = m.pending_proposal_count();
            m.discard_pending_proposals(provider).map_err(fail)?;
        }
        // Adversary bad-group-info: keep this epoch's GroupInfo for the next epoch.
        let stale_group_info = match adversary {
            Some(Adversary::BadGroupInfo) => Some(m.group_info(provider, identity).map_err(fail)?),
            _ => None,
        };
        // Adversary equivocate: another commit for the same epoch (re-drawn with a fresh
        // path), built and discarded before the real one.
        let forked = match adversary {
            Some(Adversary::Equivocate) => {
                let alt = CommitPlan {
                    force_self_update: true,
                    ..plan.clone()
                };
                let co = m
                    .commit(provider, identity, &alt, &RoomComponents)
                    .map_err(fail)?;
                m.discard_pending_commit(provider).map_err(fail)?;
                let body = update_body(&co)?;
                Some(if hub_only {
                    Self::hub_only_body(body, &list)?
                } else {
                    body
                })
            }
            _ => None,
        };
        let mut co = m
            .commit(provider, identity, &plan, &RoomComponents)
            .map_err(fail)?;
        if let Some(gi) = stale_group_info {
            co.group_info = gi;
        }
        if adversary == Some(Adversary::BadConfirmationTag) {
            co.commit =
                crate::adversary::flip_confirmation_tag(&co.commit, CIPHERSUITE.hash_length())
                    .ok_or("bad-confirmation-tag: the commit is not a member PublicMessage")?;
        }
        if let Some(body) = forked {
            self.side.push(ClientToProvider::ForkedCommit {
                room: room.clone(),
                body,
            });
        }
        let mut body = update_body(&co)?;
        if hub_only {
            body = Self::hub_only_body(body, &list)?;
        }
        if omitted > 0 {
            self.events.push(ClientEvent::AdversaryAction {
                room: room.clone(),
                behaviour: "omit-cached-proposals",
                action: format!("commit leaves out {omitted} cached proposal(s)"),
            });
        }
        Ok((
            Self::relay(Endpoint::Update(room.clone()), body),
            Stage::Update {
                commit: true,
                join: false,
            },
            Echo::of(&co.commit),
        ))
    }

    /// A transfer commit of `room`'s hub to `to` (x-hub-transfer §2); for a takeover the
    /// request asks this client's provider to take the room over with the GroupInfo and
    /// tree of the epoch the commit is built on.
    fn transfer_commit(
        &mut self,
        room: &RoomUri,
        to: &Domain,
        hub_sender: &ExternalSender,
        takeover: bool,
    ) -> Result<Started, String> {
        let (provider, identity) = (&self.provider, &self.identity);
        let m = self
            .rooms
            .get(room)
            .and_then(|r| r.member.as_ref())
            .ok_or_else(|| format!("not a member of {room}"))?;
        let current = crate::transfer::hub_record(room, &m.dictionary()).map_err(fail)?;
        let plan = crate::transfer::transfer_plan(
            m.group().extensions(),
            &current.hub,
            hub_sender.clone(),
            &current.next(to),
        )
        .map_err(fail)?;
        let base = if takeover {
            Some((
                m.group_info(provider, identity).map_err(fail)?,
                m.ratchet_tree(),
            ))
        } else {
            None
        };
        let (request, stage, echo) = self.commit_request(room, plan)?;
        let request = match (base, request) {
            (Some((group_info, ratchet_tree)), ClientToProvider::Relay { body, .. }) => {
                ClientToProvider::TakeOver {
                    corr: 0,
                    room: room.clone(),
                    group_info,
                    ratchet_tree,
                    body,
                }
            }
            (_, r) => r,
        };
        Ok((request, stage, echo))
    }

    /// Record that [`Adversary::OmitListUpdate`] left `user` listed in a `what` commit.
    fn omit_list_update_event(&mut self, room: &RoomUri, what: &str, user: &UserUri) {
        self.events.push(ClientEvent::AdversaryAction {
            room: room.clone(),
            behaviour: "omit-list-update",
            action: format!("{what} of {user} removes the clients but keeps the user listed"),
        });
    }

    /// The sendingUri of this client's messages (P§5.4): its own user, or for
    /// [`Adversary::ForgeSendingUri`] another participant — one hosted by the same
    /// provider if there is one, else the first other one in list order.
    fn sending_user(&mut self, room: &RoomUri) -> UserUri {
        let me = self.uri.user();
        if !self.is(Adversary::ForgeSendingUri) {
            return me;
        }
        let Ok(state) = self.state(room) else {
            return me;
        };
        let others: Vec<UserUri> = state
            .participants
            .iter()
            .map(|p| p.user.clone())
            .filter(|u| u != &me)
            .collect();
        others
            .iter()
            .find(|u| u.domain() == me.domain())
            .or(others.first())
            .cloned()
            .unwrap_or(me)
    }

    /// The users an add op adds, with their roles.
    fn users_of(cmd: &Command) -> Vec<(UserUri, Option<u32>)> {
        match cmd {
            Command::AddUser { user, role, .. } => vec![(user.clone(), *role)],
            Command::AddUsers { users, .. } => users.clone(),
            _ => Vec::new(),
        }
    }

    /// A signed `/keyMaterial/{user}` request for adding `user` to `room` (P§5.2).
    fn key_material_request(
        &self,
        room: &RoomUri,
        user: &UserUri,
    ) -> Result<ClientToProvider, String> {
        let tbs = KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&self.uri.user()),
            target_user: IdentifierUri::from(user),
            room_id: IdentifierUri::from(room),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: RequiredCapabilitiesBytes::from_openmls(
                &match config::required_capabilities() {
                    Extension::RequiredCapabilities(r) => r,
                    _ => unreachable!("required_capabilities() builds that extension"),
                },
            )
            .map_err(fail)?,
            requester_signature_key: SignaturePublicKeyBytes::from_openmls(
                &self.identity.credential_with_key.signature_key,
            )
            .map_err(fail)?,
            requester_credential: CredentialBytes::from_openmls(
                &self.identity.credential_with_key.credential,
            )
            .map_err(fail)?,
        };
        let req = KeyMaterialRequest::sign(tbs, &self.identity.signer).map_err(fail)?;
        Ok(Self::relay(
            Endpoint::KeyMaterial(user.clone()),
            encode(&req).map_err(fail)?,
        ))
    }

    /// Begin `cmd`: the request to send, its stage and echo, if a request goes out.
    fn start(&mut self, _now: Millis, cmd: Command) -> Result<Option<Started>, String> {
        let room = cmd.room().clone();
        let mut plan = CommitPlan::default();
        let order = self.leave_order;
        let mut follow: Vec<Command> = Vec::new();
        if order != LeaveOrder::Atomic {
            let user = match &cmd {
                Command::RemoveUser { user, .. } | Command::Ban { user, .. } => Some(user.clone()),
                Command::Leave { .. } => Some(self.uri.user()),
                _ => None,
            };
            let ops = match &cmd {
                Command::RemoveUser { .. } => Some(admin_commits(order, Departure::Remove)),
                Command::Ban { .. } => Some(admin_commits(order, Departure::Ban(BANNED_ROLE))),
                Command::Leave { .. } => own_leave_ops(order),
                _ => None,
            };
            if let (Some(user), Some(mut ops)) = (user, ops) {
                if ops.is_empty() {
                    return Ok(None);
                }
                let first = ops.remove(0);
                let rest = ops
                    .into_iter()
                    .map(|steps| Command::LeaveStep {
                        room: room.clone(),
                        user: user.clone(),
                        steps,
                    })
                    .collect();
                let step = Command::LeaveStep {
                    room: room.clone(),
                    user,
                    steps: first,
                };
                let started = self.start(_now, step)?;
                if let Some(r) = self.rooms.get_mut(&room) {
                    let mut next: Vec<Command> = rest;
                    next.append(&mut r.after_success);
                    r.after_success = next;
                }
                return Ok(started);
            }
        }
        match &cmd {
            Command::LeaveStep { user, steps, .. } => {
                if steps.contains(&Step::ProposeLeave) {
                    return self.leave_bundle(&room, false).map(Some);
                }
                if !self.step_plan(&room, user, steps, &mut plan)? {
                    return Ok(None);
                }
            }
            Command::CreateRoom {
                preset, hub_sender, ..
            } => {
                let hub = room.domain();
                let state = RoomState::new_room(
                    &room,
                    &self.uri.user(),
                    *preset,
                    NewRoomOptions {
                        hub: Some(hub),
                        ..Default::default()
                    },
                )
                .map_err(fail)?;
                let m = Member::create(
                    &self.provider,
                    &self.identity,
                    room.as_bytes(),
                    state.to_dictionary(),
                    hub_sender.clone(),
                )
                .map_err(fail)?;
                let group_info = m.group_info(&self.provider, &self.identity).map_err(fail)?;
                let ratchet_tree = m.ratchet_tree();
                let r = self.rooms.entry(room.clone()).or_default();
                r.joined_epoch = Some(m.epoch());
                if self.room_state.is_hub_only() {
                    // x-hub-only-room-state: the creator's copy is the creation state.
                    r.signalled = Some((m.epoch(), state.clone()));
                }
                r.member = Some(m);
                let msg = ClientToProvider::CreateRoom {
                    corr: 0,
                    room,
                    group_info,
                    ratchet_tree,
                };
                return Ok(Some((msg, Stage::Create, None)));
            }
            Command::AddUser { .. } | Command::AddUsers { .. } => {
                self.member(&room)?;
                let users = Self::users_of(&cmd);
                if users.len() > MAX_BATCH_USERS {
                    return Err(format!(
                        "{} users in one batch (limit {MAX_BATCH_USERS})",
                        users.len()
                    ));
                }
                let Some((first, _)) = users.first() else {
                    return Err("no users to add".into());
                };
                let msg = self.key_material_request(&room, first)?;
                return Ok(Some((
                    msg,
                    Stage::KeyMaterial {
                        index: 0,
                        got: Vec::new(),
                    },
                    None,
                )));
            }
            Command::RemoveUser { user, .. } => {
                let idx = self.index(&room, user)?;
                if !self.bugs.contains(&Bug::ClientRemovesUserButNotClients) {
                    plan.removes = self.leaves_of(&room, user)?;
                }
                // Adversary omit-list-update: the user stays listed.
                if self.is(Adversary::OmitListUpdate) {
                    self.omit_list_update_event(&room, "remove", user);
                } else {
                    plan.proposals
                        .push(Self::list_update(ParticipantListUpdate {
                            removed_indices: vec![idx],
                            ..Default::default()
                        })?);
                }
            }
            Command::Kick { user, .. } => {
                if !self.bugs.contains(&Bug::ClientRemovesUserButNotClients) {
                    plan.removes = self.leaves_of(&room, user)?;
                }
            }
            Command::Ban { user, .. } | Command::ChangeRole { user, .. } => {
                let idx = self.index(&room, user)?;
                let role = match &cmd {
                    Command::ChangeRole { role, .. } => *role,
                    _ => {
                        if !self.bugs.contains(&Bug::ClientRemovesUserButNotClients) {
                            plan.removes = self.leaves_of(&room, user)?;
                        }
                        BANNED_ROLE
                    }
                };
                // Adversary omit-list-update: a Ban removes the clients only.
                let omit = self.is(Adversary::OmitListUpdate) && matches!(cmd, Command::Ban { .. });
                if omit {
                    self.omit_list_update_event(&room, "ban", user);
                } else {
                    plan.proposals
                        .push(Self::list_update(ParticipantListUpdate {
                            changed_role_participants: vec![UserindexRolePair {
                                user_index: idx,
                                role_index: role,
                            }],
                            ..Default::default()
                        })?);
                }
            }
            Command::SelfUpdate { .. } => plan.force_self_update = true,
            Command::CommitPending { .. } => {
                if self.member(&room)?.pending_proposal_count() == 0 {
                    return Ok(None);
                }
            }
            Command::Leave { .. } => return self.leave_bundle(&room, true).map(Some),
            Command::MoveHub { to, hub_sender, .. } => {
                return self.transfer_commit(&room, to, hub_sender, false).map(Some);
            }
            Command::TakeOver { hub_sender, .. } => {
                let own = self.uri.domain();
                return self
                    .transfer_commit(&room, &own, hub_sender, true)
                    .map(Some);
            }
            Command::Send { text, .. } => {
                let sending_user = self.sending_user(&room);
                let salt: [u8; 16] = self.provider.rand().random_array().map_err(fail)?;
                let content = MimiContent::text(salt, &self.uri.user(), &room, text);
                let cbor = content.encode();
                let id = hex::encode(message_id(&cbor).map_err(fail)?);
                let (provider, identity) = (&self.provider, &self.identity);
                let m = self
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.member.as_mut())
                    .ok_or("not a member")?;
                let ct = m.encrypt(provider, identity, &cbor).map_err(fail)?;
                let req = SubmitMessageRequest {
                    protocol: Protocol::Mls10,
                    app_message: MlsMessageBytes::from_bytes(&ct).map_err(fail)?,
                    sending_uri: IdentifierUri::from(&sending_user),
                };
                let msg = Self::relay(
                    Endpoint::SubmitMessage(room.clone()),
                    encode(&req).map_err(fail)?,
                );
                self.events.push(ClientEvent::MessageBuilt {
                    room: room.clone(),
                    mls_message_sha256: hex::encode(Sha256::digest(req.app_message.as_bytes())),
                });
                return Ok(Some((msg, Stage::Submit { message_id: id }, Echo::of(&ct))));
            }
            Command::JoinExternal { .. } => {
                let ikm = self.provider.rand().random_vec(32).map_err(fail)?;
                let keys = self
                    .provider
                    .crypto()
                    .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
                    .map_err(fail)?;
                let tbs = GroupInfoRequestTbs {
                    protocol: Protocol::Mls10,
                    cipher_suite: CIPHERSUITE.into(),
                    requesting_signature_key: SignaturePublicKeyBytes::from_openmls(
                        &self.identity.credential_with_key.signature_key,
                    )
                    .map_err(fail)?,
                    requesting_credential: CredentialBytes::from_openmls(
                        &self.identity.credential_with_key.credential,
                    )
                    .map_err(fail)?,
                    group_info_public_key: HpkePublicKeyBytes::from_key(&keys.public)
                        .map_err(fail)?,
                    joining_code: None,
                };
                let req = GroupInfoRequest::sign(tbs, &self.identity.signer).map_err(fail)?;
                let msg = Self::relay(
                    Endpoint::GroupInfo(room.clone()),
                    encode(&req).map_err(fail)?,
                );
                return Ok(Some((
                    msg,
                    Stage::GroupInfo {
                        private_key: keys.private.to_vec(),
                    },
                    None,
                )));
            }
        }
        if order.committer_unlists() && !self.is(Adversary::OmitCachedProposals) {
            follow = self.unlistings_due(&room);
        }
        let started = self.commit_request(&room, plan)?;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.after_success = follow;
        }
        Ok(Some(started))
    }

    /// The leave's proposal bundle (P§3.5 step 1, RP§8.1.2 canRemoveSelf): SelfRemove,
    /// Removes of this user's other clients and, with `list_update`, the removal from the
    /// participant list.
    fn leave_bundle(&mut self, room: &RoomUri, list_update: bool) -> Result<Started, String> {
        let me = self.uri.user();
        let hub_only = self.room_state.is_hub_only();
        let update = if list_update {
            let idx = self.index(room, &me)?;
            Some(
                ParticipantListUpdate {
                    removed_indices: vec![idx],
                    ..Default::default()
                }
                .encode()
                .map_err(fail)?,
            )
        } else {
            None
        };
        let own = self.member(room)?.own_leaf();
        let others: Vec<u32> = self
            .leaves_of(room, &me)?
            .into_iter()
            .map(|l| l.u32())
            .filter(|l| *l != own)
            .collect();
        let (provider, identity) = (&self.provider, &self.identity);
        let m = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .ok_or("not a member")?;
        let mut msgs = vec![m.propose_self_remove(provider, identity).map_err(fail)?];
        for l in others {
            msgs.push(m.propose_remove(provider, identity, l).map_err(fail)?);
        }
        let mut beside = Vec::new();
        match update {
            Some(update) if hub_only => {
                beside.push(ParticipantListUpdate::decode(&update).map_err(fail)?)
            }
            Some(update) => msgs.push(
                m.propose_app_data_update(provider, identity, PARTICIPANT_LIST, update)
                    .map_err(fail)?,
            ),
            None => {}
        }
        let bundle = HandshakeBundle {
            proposal_or_commit: MlsMessageBytes::from_bytes(&msgs[0]).map_err(fail)?,
            body: HandshakeBody::Proposal {
                more_proposals: msgs[1..]
                    .iter()
                    .map(|b| MlsMessageBytes::from_bytes(b))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?,
            },
        };
        let mut body = encode(&UpdateRequest { bundle }).map_err(fail)?;
        if hub_only {
            body = Self::hub_only_body(body, &beside)?;
        }
        let msg = Self::relay(Endpoint::Update(room.clone()), body);
        Ok((
            msg,
            Stage::Update {
                commit: false,
                join: false,
            },
            Echo::of(&msgs[0]),
        ))
    }

    /// Fill `plan` with the leave `steps` about `user`; false if they change nothing
    /// (no clients left to remove, the user no longer listed).
    fn step_plan(
        &mut self,
        room: &RoomUri,
        user: &UserUri,
        steps: &[Step],
        plan: &mut CommitPlan,
    ) -> Result<bool, String> {
        let idx = self.state(room)?.index_of(user);
        let mut any = false;
        for step in steps {
            match (step, idx) {
                (Step::RemoveClients, _) => {
                    plan.removes = self.leaves_of(room, user)?;
                    any |= !plan.removes.is_empty();
                }
                (Step::Unlist, Some(i)) => {
                    plan.proposals
                        .push(Self::list_update(ParticipantListUpdate {
                            removed_indices: vec![i],
                            ..Default::default()
                        })?);
                    any = true;
                }
                (Step::SetRole(role), Some(i)) => {
                    plan.proposals
                        .push(Self::list_update(ParticipantListUpdate {
                            changed_role_participants: vec![UserindexRolePair {
                                user_index: i,
                                role_index: *role,
                            }],
                            ..Default::default()
                        })?);
                    any = true;
                }
                (Step::Unlist | Step::SetRole(_), None) | (Step::ProposeLeave, _) => {}
            }
        }
        Ok(any)
    }

    /// Under `clients-first` / `exiting`: the users whose SelfRemove this client's next
    /// commit carries (from the proposal store) and who are still listed — this client
    /// must unlist them after its commit is accepted (see [`super::leave`]).
    fn unlistings_due(&mut self, room: &RoomUri) -> Vec<Command> {
        if self.bugs.contains(&Bug::ClientSkipsUnlisting) {
            return Vec::new();
        }
        let Ok(state) = self.state(room) else {
            return Vec::new();
        };
        let Ok(m) = self.member(room) else {
            return Vec::new();
        };
        let members: BTreeMap<u32, Option<ClientUri>> = m.members().into_iter().collect();
        let leavers: BTreeSet<UserUri> = m
            .group()
            .pending_proposals()
            .filter_map(|qp| match (qp.proposal(), qp.sender()) {
                (Proposal::SelfRemove, Sender::Member(l)) => {
                    members.get(&l.u32()).cloned().flatten().map(|c| c.user())
                }
                _ => None,
            })
            .filter(|u| state.index_of(u).is_some())
            .collect();
        leavers
            .into_iter()
            .map(|user| Command::LeaveStep {
                room: room.clone(),
                user,
                steps: vec![Step::Unlist],
            })
            .collect()
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

    /// An answer to the op in flight in `room`, handled with `answering` set to the
    /// digest of the request it answers.
    fn on_reply(
        &mut self,
        now: Millis,
        room: &RoomUri,
        corr: u64,
        response: Response,
        out: &mut Vec<ClientOutput>,
    ) {
        self.answering = self
            .rooms
            .get(room)
            .and_then(|r| r.in_flight.as_ref())
            .and_then(|(f, _)| match &f.request {
                ClientToProvider::Relay { body, .. } => Some(hex::encode(Sha256::digest(body))),
                _ => None,
            });
        self.answer(now, room, corr, response, out);
        self.answering = None;
    }

    fn answer(
        &mut self,
        now: Millis,
        room: &RoomUri,
        corr: u64,
        response: Response,
        out: &mut Vec<ClientOutput>,
    ) {
        if ambiguous(&response) {
            if let Some((f, _)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.as_mut()) {
                if f.corr == corr && matches!(f.phase, Phase::Waiting { .. }) {
                    f.last_ambiguity = format!(
                        "provider answered {}: {}",
                        response.status,
                        String::from_utf8_lossy(&response.body)
                    );
                    f.phase = Phase::Backoff {
                        resend_at: now + resend_backoff(f.attempt),
                    };
                }
            }
            return;
        }
        let Some((f, retries)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
            return;
        };
        let op = f.cmd.name();
        if response.status != status::OK {
            let reason = format!(
                "provider answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
            if let Stage::Update { commit, join } = f.stage {
                if commit {
                    self.discard_update(room, commit, join);
                }
            }
            let origin = FailureOrigin::HttpError {
                status: response.status,
            };
            self.finish(room, op, Err((origin, reason)));
            return;
        }
        let echo_epoch = f.echo.as_ref().map(|e| e.epoch);
        match f.stage {
            Stage::Create => {
                self.events
                    .push(ClientEvent::Created { room: room.clone() });
                self.finish(room, op, Ok(()));
            }
            Stage::KeyMaterial { index, mut got } => {
                let users = Self::users_of(&f.cmd);
                let me = self.uri.user();
                // Adversary ghost-device: adding the own user's devices that are not in
                // the room yet, with no participant-list change.
                let ghost = self.is(Adversary::GhostDevice) && users.iter().all(|(u, _)| *u == me);
                let present: BTreeSet<Vec<u8>> = if ghost {
                    self.member(room)
                        .map(|m| m.members())
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(_, c)| c.map(|c| c.as_bytes().to_vec()))
                        .collect()
                } else {
                    BTreeSet::new()
                };
                let omit_list = ghost
                    || self.is(Adversary::AddNonParticipant)
                    || self.bugs.contains(&Bug::ClientAddsWithoutListUpdate);
                let r = (|| {
                    let resp: KeyMaterialResponse =
                        decode_exact(&response.body).map_err(bad_answer)?;
                    let before = got.len();
                    for c in resp.clients {
                        if present.contains(c.client_uri.as_bytes()) {
                            continue;
                        }
                        if let ClientMaterial::Success(kp) = c.material {
                            let kp = KeyPackageIn::tls_deserialize_exact(kp.as_bytes())
                                .map_err(bad_answer)?
                                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                                .map_err(bad_answer)?;
                            got.push(kp);
                        }
                    }
                    if got.len() == before {
                        let who = users.get(index).map(|(u, _)| u.to_string());
                        return Err(failure(
                            FailureOrigin::NoKeyMaterial,
                            format!(
                                "no KeyPackages for {} ({:?})",
                                who.unwrap_or_default(),
                                resp.user_status
                            ),
                        ));
                    }
                    if let Some((next, _)) = users.get(index + 1) {
                        let msg = self
                            .key_material_request(room, next)
                            .map_err(build_failure)?;
                        return Ok((
                            msg,
                            Stage::KeyMaterial {
                                index: index + 1,
                                got,
                            },
                            None,
                        ));
                    }
                    let mut proposals = Vec::new();
                    if !omit_list {
                        proposals.push(
                            Self::list_update(ParticipantListUpdate {
                                added_participants: users
                                    .iter()
                                    .map(|(user, role)| UserRolePair {
                                        user: Opaque(user.as_bytes().to_vec()),
                                        role_index: role.unwrap_or(2),
                                    })
                                    .collect(),
                                ..Default::default()
                            })
                            .map_err(build_failure)?,
                        );
                    }
                    let plan = CommitPlan {
                        adds: got,
                        proposals,
                        ..Default::default()
                    };
                    self.commit_request(room, plan).map_err(build_failure)
                })();
                match r {
                    Ok((msg, stage, echo)) => {
                        self.launch(now, room, f.cmd, retries, msg, stage, echo, out)
                    }
                    Err(e) => self.finish(room, op, Err(e)),
                }
            }
            Stage::Update { commit, join } => {
                let resp = match decode_exact::<UpdateRoomResponse>(&response.body) {
                    Ok(r) => r,
                    Err(e) => {
                        if commit {
                            self.discard_update(room, commit, join);
                        }
                        return self.finish(room, op, Err(bad_answer(e)));
                    }
                };
                match resp.outcome {
                    // x-hub-only-room-state: the hub signals the new list just before
                    // our commit in the fan-out; merge at our commit's echo there, so
                    // that we reach the epoch holding its list.
                    UpdateOutcome::Success { .. }
                        if commit && !join && self.room_state.is_hub_only() && !f.rechecked =>
                    {
                        let next = echo_epoch.map_or(0, |e| e + 1);
                        self.await_evidence(now, room, f, retries, next)
                    }
                    UpdateOutcome::Success { .. } => self.update_succeeded(room, op, commit, join),
                    UpdateOutcome::WrongEpoch { current_epoch }
                        if !join
                            && f.rechecked
                            && echo_epoch.is_some_and(|e| current_epoch > e) =>
                    {
                        self.discard_update(room, true, join);
                        if !commit {
                            self.discard_update(room, false, join);
                        }
                        let reason = Self::no_evidence(echo_epoch, "wrongEpoch", current_epoch);
                        let origin = FailureOrigin::HubRefused {
                            code: RefusalCode::WrongEpoch,
                        };
                        self.finish(room, op, Err((origin, reason)));
                    }
                    UpdateOutcome::WrongEpoch { current_epoch }
                        if !join && echo_epoch.is_some_and(|e| current_epoch > e) =>
                    {
                        self.await_evidence(now, room, f, retries, current_epoch)
                    }
                    UpdateOutcome::WrongEpoch { current_epoch } => {
                        self.discard_update(room, true, join);
                        if !commit {
                            self.discard_update(room, false, join);
                        }
                        let wait = if join { 0 } else { current_epoch };
                        self.retry(now, room, f.cmd, retries, wait);
                    }
                    UpdateOutcome::InvalidProposal { .. } if commit && !join => {
                        // The hub accepted proposals this member has not received yet
                        // (P§3.5: a commit must cover them): wait for the fan-out, retry.
                        self.discard_update(room, commit, join);
                        let wait = self
                            .rooms
                            .get(room)
                            .and_then(|r| r.member.as_ref())
                            .map_or(0, Member::epoch);
                        self.retry(now, room, f.cmd, retries, wait);
                        if let Some(r) = self.rooms.get_mut(room) {
                            r.not_before = Some(now + resend_backoff(retries + 1));
                        }
                    }
                    other => {
                        if commit {
                            self.discard_update(room, commit, join);
                        }
                        let code = match other {
                            UpdateOutcome::WrongEpoch { .. } => RefusalCode::WrongEpoch,
                            UpdateOutcome::InvalidProposal { .. } => RefusalCode::InvalidProposal,
                            _ => RefusalCode::NotAllowed,
                        };
                        self.finish(
                            room,
                            op,
                            Err(failure(
                                FailureOrigin::HubRefused { code },
                                format!("{other:?}: {}", resp.error_description),
                            )),
                        );
                    }
                }
            }
            Stage::Submit { ref message_id } => {
                match decode_exact::<SubmitMessageResponse>(&response.body) {
                    Ok(SubmitMessageResponse {
                        outcome:
                            SubmitOutcome::Accepted {
                                accepted_timestamp, ..
                            },
                        ..
                    }) => {
                        self.events.push(ClientEvent::MessageSent {
                            room: room.clone(),
                            message_id: message_id.clone(),
                            timestamp: accepted_timestamp,
                        });
                        self.finish(room, op, Ok(()));
                    }
                    Ok(SubmitMessageResponse {
                        outcome: SubmitOutcome::EpochTooOld { current_epoch },
                        ..
                    }) => {
                        if f.rechecked && echo_epoch.is_some_and(|e| current_epoch > e) {
                            let reason =
                                Self::no_evidence(echo_epoch, "epochTooOld", current_epoch);
                            let origin = FailureOrigin::HubRefused {
                                code: RefusalCode::EpochTooOld,
                            };
                            self.finish(room, op, Err((origin, reason)));
                        } else if echo_epoch.is_some_and(|e| current_epoch > e) {
                            self.await_evidence(now, room, f, retries, current_epoch)
                        } else {
                            self.retry(now, room, f.cmd, retries, current_epoch)
                        }
                    }
                    Ok(other) => {
                        let code = match other.outcome {
                            SubmitOutcome::EpochTooOld { .. } => RefusalCode::EpochTooOld,
                            _ => RefusalCode::NotAllowed,
                        };
                        let refused = failure(
                            FailureOrigin::HubRefused { code },
                            format!("{:?}", other.outcome),
                        );
                        self.finish(room, op, Err(refused))
                    }
                    Err(e) => self.finish(room, op, Err(bad_answer(e))),
                }
            }
            Stage::GroupInfo { private_key } => {
                let r = (|| {
                    let resp: GroupInfoResponse =
                        decode_exact(&response.body).map_err(bad_answer)?;
                    // Only a success is signed (P§5.6): a refusal is read as one, never
                    // as an answer that failed to verify.
                    let s = match &resp.status {
                        GroupInfoStatus::Success(s) => s,
                        refused => {
                            let code = match refused {
                                GroupInfoStatus::NoSuchRoom => RefusalCode::NoSuchRoom,
                                _ => RefusalCode::NotAuthorized,
                            };
                            return Err(failure(
                                FailureOrigin::HubRefused { code },
                                format!("groupInfo refused: {:?}", refused.code()),
                            ));
                        }
                    };
                    resp.verify(self.provider.crypto()).map_err(bad_answer)?;
                    let tbe = GroupInfoRatchetTreeTbe::open(
                        self.provider.crypto(),
                        s.cipher_suite,
                        &private_key,
                        &resp.room_id,
                        &s.encrypted_groupinfo_and_tree,
                    )
                    .map_err(bad_answer)?;
                    let RatchetTreeOption::Full(tree) = &tbe.ratchet_tree_option else {
                        return Err(bad_answer("the hub sent no full ratchet tree"));
                    };
                    let pending: Vec<Vec<u8>> = tbe
                        .pending_proposals
                        .iter()
                        .map(|p| p.proposal.as_bytes().to_vec())
                        .collect();
                    let (m, co) = Member::join_by_external_commit(
                        &self.provider,
                        &self.identity,
                        tbe.group_info.as_bytes(),
                        tree.as_bytes(),
                        &pending,
                        vec![],
                        &RoomComponents,
                    )
                    .map_err(|e| match e {
                        super::MemberError::Malformed(_) => bad_answer(e),
                        e => failure(FailureOrigin::Local(LocalFailure::Mls), e),
                    })?;
                    let body = update_body(&co).map_err(build_failure)?;
                    Ok((m, body, Echo::of(&co.commit)))
                })();
                match r {
                    Ok((m, body, echo)) => {
                        self.rooms.entry(room.clone()).or_default().member = Some(m);
                        let msg = Self::relay(Endpoint::Update(room.clone()), body);
                        let stage = Stage::Update {
                            commit: true,
                            join: true,
                        };
                        self.launch(now, room, f.cmd, retries, msg, stage, echo, out);
                    }
                    Err(e) => self.finish(room, op, Err(e)),
                }
            }
        }
    }

    /// The failure reason of an op whose evidence phase expired and whose resend was
    /// answered `code` (the hub did not take its message).
    fn no_evidence(echo_epoch: Option<u64>, code: &str, current_epoch: u64) -> String {
        format!(
            "no evidence: no fan-out of epoch {} settled the op within {EVIDENCE_TIMEOUT} ms, \
             and the hub answered a resend with {code} (current epoch {current_epoch}): \
             it did not take the message",
            echo_epoch.map_or_else(|| "?".into(), |e| e.to_string())
        )
    }

    /// Whether a fan-out message settles the op in flight: `Some(true)` it is the op's own
    /// message (accepted), `Some(false)` it is another commit of the op's epoch (the op's
    /// message will never be accepted).
    fn verdict(&self, room: &RoomUri, fm: &FanoutMessage) -> Option<bool> {
        let (f, _) = self.rooms.get(room)?.in_flight.as_ref()?;
        let echo = f.echo.as_ref()?;
        if fm.message.as_bytes() == echo.bytes.as_slice() {
            return Some(true);
        }
        if matches!(fm.body, FanoutBody::Commit { .. })
            && fm.message.info().epoch == Some(echo.epoch)
        {
            return Some(false);
        }
        None
    }

    fn on_deliver(
        &mut self,
        now: Millis,
        room: &RoomUri,
        fanout: &[u8],
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        let fm: FanoutMessage = decode_exact(fanout).map_err(fail)?;
        if let FanoutBody::RoomState { epoch, room_state } = &fm.body {
            // x-hub-only-room-state: not an MLS message; it settles no op.
            if fm.message.info().epoch.map(|e| e + 1) != Some(*epoch) {
                return Err(format!(
                    "room-state signal for epoch {epoch} carries a commit of epoch {:?}",
                    fm.message.info().epoch
                ));
            }
            let state = hub_only::decode_room_state(room_state).map_err(fail)?;
            self.on_signal(room, *epoch, state);
            return Ok(());
        }
        // After the message is processed: settle the op in flight.
        let mut settle = None;
        match self.verdict(room, &fm) {
            Some(true) => {
                let Some((f, _)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
                    return Ok(());
                };
                let op = f.cmd.name();
                match f.stage {
                    Stage::Update { join: true, .. } => {
                        // The joiner merged its external commit when it made it.
                        self.update_succeeded(room, op, true, true);
                        return Ok(());
                    }
                    Stage::Submit { message_id } => {
                        if let Some(r) = self.rooms.get_mut(room) {
                            r.first_sight(Sha256::digest(fm.message.as_bytes()).into());
                        }
                        self.events.push(ClientEvent::MessageSent {
                            room: room.clone(),
                            message_id,
                            timestamp: fm.timestamp,
                        });
                        self.finish(room, op, Ok(()));
                        return Ok(());
                    }
                    // Our commit (merged as OwnPendingCommit below) or our proposals.
                    _ => settle = Some(Settle::Succeeded(op)),
                }
            }
            Some(false) => {
                if let Some((f, retries)) =
                    self.rooms.get_mut(room).and_then(|r| r.in_flight.take())
                {
                    if let Stage::Update { commit: true, join } = f.stage {
                        self.discard_update(room, true, join);
                    }
                    settle = Some(Settle::Lost(f.cmd, retries, f.hub_epoch.unwrap_or(0)));
                }
            }
            None => {}
        }
        let result = self.process_fanout(room, &fm, out);
        match settle {
            Some(Settle::Succeeded(op)) => self.finish(room, op, Ok(())),
            Some(Settle::Lost(cmd, retries, hub_epoch)) => {
                let have = self
                    .rooms
                    .get(room)
                    .and_then(|r| r.member.as_ref())
                    .map_or(0, Member::epoch);
                self.retry(now, room, cmd, retries, hub_epoch.max(have));
            }
            None => {}
        }
        result
    }

    fn process_fanout(
        &mut self,
        room: &RoomUri,
        fm: &FanoutMessage,
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        let ghost = self.is(Adversary::GhostDevice);
        let own_user = self.uri.user();
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
        match &fm.body {
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => {
                if r.member.as_ref().is_some_and(Member::is_active) {
                    return Ok(());
                }
                let RatchetTreeOption::Full(tree) = ratchet_tree_option else {
                    return Err("Welcome without a full ratchet tree".into());
                };
                let welcome = fm
                    .message
                    .to_welcome()
                    .map_err(fail)?
                    .ok_or("not a Welcome")?;
                let m = Member::join_by_welcome(provider, welcome.as_bytes(), tree.as_bytes())
                    .map_err(fail)?;
                let epoch = m.epoch();
                r.member = Some(m);
                r.joined_epoch = Some(epoch);
                if ghost {
                    // Adversary ghost-device: add the user's other devices, unasked.
                    r.queue.push_back((
                        Command::AddUser {
                            room: room.clone(),
                            user: own_user,
                            role: None,
                        },
                        0,
                    ));
                }
                self.events.push(ClientEvent::Joined {
                    room: room.clone(),
                    epoch,
                    how: "welcome",
                });
            }
            FanoutBody::Commit { .. } => {
                let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
                    return Ok(());
                };
                match m.process_handshake(provider, fm.message.as_bytes(), &RoomComponents) {
                    Ok(Processed::Commit {
                        epoch,
                        removed_self,
                    }) => {
                        self.events.push(ClientEvent::Epoch {
                            room: room.clone(),
                            epoch,
                        });
                        if removed_self {
                            self.events
                                .push(ClientEvent::Removed { room: room.clone() });
                            out.push(ClientOutput::ToProvider(ClientToProvider::LeaveRoom {
                                room: room.clone(),
                            }));
                        }
                    }
                    Ok(Processed::OwnCommit { epoch }) => self.events.push(ClientEvent::Epoch {
                        room: room.clone(),
                        epoch,
                    }),
                    Ok(Processed::Proposal { .. }) => {}
                    Err(super::MemberError::WrongEpoch { got, have }) if got < have => {}
                    Err(e) => return Err(fail(e)),
                }
            }
            FanoutBody::Proposal { more_proposals } => {
                let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
                    return Ok(());
                };
                let mut all = vec![fm.message.clone()];
                all.extend(more_proposals.iter().cloned());
                for p in &all {
                    match m.process_handshake(provider, p.as_bytes(), &RoomComponents) {
                        Ok(_) => {}
                        // Our own proposals come back: they are already in our store.
                        Err(super::MemberError::Rejected(e))
                            if e.contains("OwnProposal") || e.contains("Duplicate") => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                if self.has_commit_duty(room) {
                    let r = self.rooms.entry(room.clone()).or_default();
                    r.queue
                        .push_front((Command::CommitPending { room: room.clone() }, 0));
                }
            }
            // Handled in `on_deliver`.
            FanoutBody::RoomState { .. } => {}
            FanoutBody::Application { .. } => {
                if r.member.as_ref().is_none_or(|m| !m.is_active()) {
                    return Ok(());
                }
                // Not for us: sent before we joined.
                if let (Some(e), Some(j)) = (fm.message.info().epoch, r.joined_epoch) {
                    if e < j {
                        return Ok(());
                    }
                }
                // A duplicate (accepted twice by the hub): drop silently.
                if !r.first_sight(Sha256::digest(fm.message.as_bytes()).into()) {
                    return Ok(());
                }
                let Some(m) = r.member.as_mut() else {
                    return Ok(());
                };
                let got = match m.decrypt(provider, fm.message.as_bytes()) {
                    Ok(g) => g,
                    Err(super::MemberError::Rejected(e))
                        if e.contains("own application message") =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(fail(e)),
                };
                if got.sender.as_ref() == Some(&self.uri) {
                    return Ok(());
                }
                let content = MimiContent::decode(&got.plaintext).map_err(fail)?;
                let id = message_id(&got.plaintext).map_err(fail)?;
                self.events.push(ClientEvent::MessageReceived {
                    room: room.clone(),
                    sender: got.sender,
                    message_id: hex::encode(id),
                    timestamp: fm.timestamp,
                    text: content.text_body().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether this client should commit the pending proposals: it is the lowest leaf
    /// among the members those proposals do not remove.
    fn has_commit_duty(&self, room: &RoomUri) -> bool {
        let Some(m) = self.rooms.get(room).and_then(|r| r.member.as_ref()) else {
            return false;
        };
        let g = m.group();
        if g.pending_proposals().count() == 0 {
            return false;
        }
        let removed: BTreeSet<u32> = g
            .pending_proposals()
            .filter_map(|qp| match (qp.proposal(), qp.sender()) {
                (Proposal::Remove(r), _) => Some(r.removed().u32()),
                (Proposal::SelfRemove, Sender::Member(l)) => Some(l.u32()),
                _ => None,
            })
            .collect();
        let lowest = m
            .members()
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| !removed.contains(l))
            .min();
        lowest == Some(m.own_leaf())
    }
}

/// The `/update` body for a commit (P§5.3): commit, Welcome, full GroupInfo and tree.
fn update_body(co: &CommitOutput) -> Result<Vec<u8>, String> {
    let bundle = HandshakeBundle {
        proposal_or_commit: MlsMessageBytes::from_bytes(&co.commit).map_err(fail)?,
        body: HandshakeBody::Commit {
            welcome: co
                .welcome
                .as_ref()
                .map(|w| WelcomeBytes::from_bytes(w))
                .transpose()
                .map_err(fail)?,
            group_info_option: GroupInfoOption::Full(
                GroupInfoBytes::from_bytes(&co.group_info).map_err(fail)?,
            ),
            ratchet_tree_option: RatchetTreeOption::Full(
                RatchetTreeBytes::from_bytes(&co.ratchet_tree).map_err(fail)?,
            ),
        },
    };
    encode(&UpdateRequest { bundle }).map_err(fail)
}
