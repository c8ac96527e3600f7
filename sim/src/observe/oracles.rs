//! The oracles: invariants checked after every simulation step and at the end of a run
//! (README, "The simulator").
//!
//! Each oracle has an id, the draft section it comes from and a check fed by what the
//! driver observes: hub events, client events and views, and every message a provider
//! hands to a client. A violation carries a witness: the nodes, the epochs and the trace
//! lines (1-based line numbers in the JSONL trace) involved.
//!
//! `sim/tests/oracles.rs` plants, for every oracle, the fault it exists to catch and shows
//! that it fires (and that the same scenario without the plant holds).

use std::collections::{BTreeMap, BTreeSet};

use mimi_reports::records::trace::{ViolationDetail, What};
use nodes::client::core::RoomView;
use nodes::client::failure::FailureOrigin;
use nodes::client::leave::EXITING_ROLE;
use nodes::ids::{ClientUri, RoomUri, UserUri};
use nodes::room::roles::BANNED_ROLE;
use nodes::wire::{decode_exact, FanoutBody, FanoutMessage};
use serde::Serialize;

mod handoff;

pub use handoff::HubMove;

/// One oracle: its id (used in scenario files and reports), where the invariant comes
/// from, and what it checks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Oracle {
    pub id: &'static str,
    pub reference: &'static str,
    pub checks: &'static str,
}

pub const ONE_COMMIT_PER_EPOCH: &str = "one-commit-per-epoch";
pub const NO_SPLIT: &str = "no-split";
pub const HUB_VIEW_MATCHES: &str = "hub-view-matches";
pub const MEMBER_IS_PARTICIPANT: &str = "member-is-participant";
pub const REMOVED_HAS_NO_CLIENTS: &str = "removed-has-no-clients";
pub const ACCEPTED_DELIVERED: &str = "accepted-delivered";
pub const HUB_ORDER: &str = "hub-order";
pub const NOTIFY_ONCE: &str = "notify-once";
pub const ONLY_ACCEPTED_DELIVERED: &str = "only-accepted-delivered";
pub const ONE_SEQUENCER_PER_EPOCH: &str = "one-sequencer-per-epoch";
pub const HANDOFF_KEEPS_ACCEPTED: &str = "handoff-keeps-accepted";
pub const ROOM_STATE_AGREES: &str = "room-state-agrees";
pub const SENDING_URI_IS_SENDER: &str = "sending-uri-is-sender";
pub const NO_GHOST_DEVICE: &str = "no-ghost-device";
pub const DEPARTURE_COMPLETES: &str = "departure-completes";
pub const ARRIVAL_COMPLETES: &str = "arrival-completes";

/// Every oracle, in the order they are reported.
pub const ORACLES: [Oracle; 16] = [
    Oracle {
        id: ONE_COMMIT_PER_EPOCH,
        reference: "P§4.2 (the hub accepts the first valid commit per epoch)",
        checks: "honest clients receive at most one commit per room and epoch (judged on the fan-out their providers hand them, not on the hub's report)",
    },
    Oracle {
        id: NO_SPLIT,
        reference: "RFC 9420 §8 (epoch authenticator)",
        checks: "honest clients at the same epoch have the same GroupContext and epoch authenticator",
    },
    Oracle {
        id: HUB_VIEW_MATCHES,
        reference: "P§4.2 (the hub tracks the group's public state)",
        checks: "the hub's public view has the members' GroupContext at its epoch and is never behind an honest member",
    },
    Oracle {
        id: MEMBER_IS_PARTICIPANT,
        reference: "P§7.5 (participant list), P§4.3.2",
        checks: "in every honest client's view, every client in the group belongs to a user in the participant list (and not banned)",
    },
    Oracle {
        id: REMOVED_HAS_NO_CLIENTS,
        reference: "P§7.5, RP§8.1.2 (ban/kick remove every client)",
        checks: "in every honest client's view, a user who left the participant list, or is banned, has no clients in the group",
    },
    Oracle {
        id: ACCEPTED_DELIVERED,
        reference: "P§5.4/§5.5 (the hub fans out every accepted message)",
        checks: "every application message the hub accepted reaches every honest client that was a member at its epoch",
    },
    Oracle {
        id: HUB_ORDER,
        reference: "P§5.5 (fan-out in hub order)",
        checks: "each client receives a room's messages in the hub's log order",
    },
    Oracle {
        id: NOTIFY_ONCE,
        reference: "P§5.5 (a retried /notify is not processed twice)",
        checks: "no client receives the same hub log entry twice",
    },
    Oracle {
        id: ONLY_ACCEPTED_DELIVERED,
        reference: "P§5.5 (followers deliver what the hub sequenced)",
        checks: "every message a client receives is in the hub's log",
    },
    Oracle {
        id: ONE_SEQUENCER_PER_EPOCH,
        reference: "x-hub-transfer §5 (nodes/src/transfer.rs: fencing)",
        checks: "no room epoch has commits accepted by two different hubs",
    },
    Oracle {
        id: HANDOFF_KEEPS_ACCEPTED,
        reference: "x-hub-transfer §3 (the handoff carries the log position; seq continues), §5 (what a takeover cannot keep)",
        checks: "in a room whose log spans hubs, every log entry of the old or the new hub (but an old hub's from the epoch a takeover was built on) reaches every honest member of its epoch exactly once, each client's entries come in (generation, seq) order, and a handoff's seq continues the old hub's",
    },
    Oracle {
        id: ROOM_STATE_AGREES,
        reference: "P§7.5 (the participant list is room state every member holds); issue: room state bound into the GroupContext or kept at the hub",
        checks: "honest clients at the same epoch hold the same participant list (users and roles)",
    },
    Oracle {
        id: SENDING_URI_IS_SENDER,
        reference: "P§5.4 (sendingUri: the sender's user; franking, P§5.4.1, would let receivers check it); issue 4: metadata lies",
        checks: "every application message the hub accepted names as sendingUri the user whose client built it",
    },
    Oracle {
        id: NO_GHOST_DEVICE,
        reference: "P§3.6 and RP§8 (a user adds their own device: canAddOwnClient); P§1.2 (a provider controls its users' devices); issue 4",
        checks: "no honest client's group (every honest client's view) holds a device its user never enrolled (a provider-held ghost, nodes::adversary::ghost_devices)",
    },
    Oracle {
        id: DEPARTURE_COMPLETES,
        reference: "P§5.3, RP§8.1.2 (a departure removes the user from the list and all its clients from the group); issue 4: order of operations for leaves",
        checks: "at the end of a converged run, every departure the script had an honest client start (leave, remove, ban) has completed: the user is unlisted or banned and none of its clients is a member; one whose step declares `may_refuse` may also have had no effect at all",
    },
    Oracle {
        id: ARRIVAL_COMPLETES,
        reference: "P§3.2/§3.5 (an add lists the user and adds its clients; a new device joins by external commit); P§4.3.2 (joins: user listed, then its clients); issue 4: order of operations for joins",
        checks: "at the end of a converged run, every arrival an honest client started has completed: a user its add listed has a client in the group at the epoch that lists it, and a device that asked to join by external commit became a member (unless the hub refused the join: an OpFailed whose typed origin is a hub refusal, an HTTP error or retries exhausted)",
    },
];

/// What a violation points at (nodes, epochs, trace lines, time): the trace's type.
pub use mimi_reports::records::trace::Witness;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub id: &'static str,
    pub message: String,
    pub witness: Witness,
}

impl Violation {
    /// The violation as a trace line (`violation`).
    pub fn line(&self) -> What {
        What::Violation {
            id: self.id.to_string(),
            message: Some(self.message.clone()),
            witness: Some(self.witness.clone()),
            detail: None,
        }
    }

    /// The violation as the testbed runner writes it (`violation` with `detail`).
    pub fn detail(&self) -> ViolationDetail {
        ViolationDetail {
            id: self.id.to_string(),
            message: self.message.clone(),
            witness: self.witness.clone(),
        }
    }
}

/// A GroupContext and epoch authenticator seen at one epoch, and by whom.
#[derive(Debug, Clone)]
struct Seen {
    group_context: Vec<u8>,
    authenticator: Vec<u8>,
    /// The participant list the client holds (user, role), in list order.
    participants: Option<Vec<(UserUri, u32)>>,
    by: String,
    line: u64,
}

/// The hub's log position of a fan-out message.
#[derive(Debug, Clone)]
struct Logged {
    /// The hub that logged it.
    hub: String,
    /// The hub generation (x-hub-transfer) of the hub that logged it: after a takeover
    /// the new hub's seq starts afresh, so hub order is (generation, seq).
    generation: u64,
    seq: u64,
    /// The epoch the hub logged it under (a commit's: the epoch it starts).
    epoch: u64,
    /// What the FanoutMessage carries and the MLS epoch of its message (none for a
    /// Welcome), read from the fan-out bytes themselves.
    carries: Carried,
    line: u64,
}

/// What a FanoutMessage carries, decoded from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    /// A commit of MLS epoch `epoch`, its MLSMessage hashing to `sha`.
    Commit { epoch: u64, sha: [u8; 32] },
    /// The x-hub-only-room-state signal before the commit of `epoch`.
    RoomState { epoch: u64 },
    /// An application message or proposal of MLS epoch `epoch`.
    Message { epoch: u64 },
    /// A Welcome (no epoch of a group the recipients are in).
    Welcome,
    /// Bytes that do not decode as a FanoutMessage with an epoch.
    Unreadable,
}

impl Carried {
    fn of(fanout: &[u8]) -> Carried {
        let Ok(fm) = decode_exact::<FanoutMessage>(fanout) else {
            return Carried::Unreadable;
        };
        let epoch = fm.message.info().epoch;
        match (&fm.body, epoch) {
            (FanoutBody::Welcome { .. }, _) => Carried::Welcome,
            (_, None) => Carried::Unreadable,
            (FanoutBody::Commit { .. }, Some(epoch)) => Carried::Commit {
                epoch,
                sha: sha(fm.message.as_bytes()),
            },
            (FanoutBody::RoomState { .. }, Some(epoch)) => Carried::RoomState { epoch },
            (FanoutBody::Application { .. } | FanoutBody::Proposal { .. }, Some(epoch)) => {
                Carried::Message { epoch }
            }
        }
    }

    /// The MLS epoch whose members the entry is for (none for a Welcome).
    fn epoch(self) -> Option<u64> {
        match self {
            Carried::Commit { epoch, .. }
            | Carried::RoomState { epoch }
            | Carried::Message { epoch } => Some(epoch),
            Carried::Welcome | Carried::Unreadable => None,
        }
    }
}

/// A fan-out message handed to a client: (SHA-256 of the FanoutMessage, trace line).
type Receipt = ([u8; 32], u64);

/// A commit the hub accepted: (hub, log seq, trace line).
type AcceptedCommit = (String, u64, u64);

/// The first honest client handed one commit of an epoch, and where.
#[derive(Debug, Clone)]
struct CommitReceipt {
    client: ClientUri,
    provider: String,
    /// SHA-256 of the FanoutMessage it came in (to find it in a hub's log).
    fanout: [u8; 32],
    line: u64,
}

/// An accepted application message as its sender saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub room: RoomUri,
    pub message_id: String,
    pub sender: ClientUri,
    pub epoch: u64,
    pub line: u64,
}

/// The oracles' memory of the run.
#[derive(Default)]
pub struct Oracles {
    disabled: BTreeSet<String>,
    violations: Vec<Violation>,
    /// Reported (id, nodes) pairs, so one fault is reported once.
    reported: BTreeSet<(String, Vec<String>, Vec<u64>)>,
    /// Commits the hubs reported accepted, per (room, epoch): one-sequencer-per-epoch.
    commits: BTreeMap<(RoomUri, u64), Vec<AcceptedCommit>>,
    /// The distinct commits honest clients were handed, per (room, MLS epoch of the
    /// commit), by SHA-256 of the commit's MLSMessage: one-commit-per-epoch.
    commits_received: BTreeMap<(RoomUri, u64), BTreeMap<[u8; 32], CommitReceipt>>,
    /// First honest client seen at each (room, epoch).
    clients_seen: BTreeMap<(RoomUri, u64), Seen>,
    /// Membership violations already reported: (oracle, room, member, epoch).
    membership_reported: BTreeSet<(&'static str, RoomUri, ClientUri, u64)>,
    /// The hub's view at each (room, epoch).
    hub_seen: BTreeMap<(RoomUri, u64), Seen>,
    /// Users who were ever participants.
    ever_participants: BTreeMap<RoomUri, BTreeSet<UserUri>>,
    /// SHA-256 of every logged fan-out message.
    log_index: BTreeMap<(RoomUri, [u8; 32]), Logged>,
    /// Last log seq handed to each client per room.
    last_delivered: BTreeMap<(ClientUri, RoomUri), ((u64, u64), u64)>,
    /// Every fan-out message handed to each honest client, in order: (SHA-256 of the
    /// FanoutMessage, trace line).
    receipts: BTreeMap<(ClientUri, RoomUri), Vec<Receipt>>,
    /// Hub moves the script had honest clients start (x-hub-transfer), per room.
    hub_moves: BTreeMap<RoomUri, Vec<HubMove>>,
    /// Epochs each client was at, per room.
    epochs: BTreeMap<(ClientUri, RoomUri), BTreeSet<u64>>,
    sent: Vec<Sent>,
    received: BTreeMap<(ClientUri, RoomUri), BTreeSet<String>>,
    /// Who built each application message: (room, SHA-256 hex of the MLSMessage) →
    /// (client, trace line).
    built: BTreeMap<(RoomUri, String), (ClientUri, u64)>,
    /// Devices no user enrolled: the ghosts malicious providers hold.
    ghosts: BTreeSet<ClientUri>,
    /// Ghosts already reported as members, per room (one report per ghost).
    ghosts_reported: BTreeSet<(RoomUri, ClientUri)>,
    /// Departures honest clients started, and the committed room states they are judged on.
    departures: Departures,
    /// Arrivals honest clients started (arrival-completes).
    arrivals: Vec<Arrival>,
}

fn short(b: &[u8]) -> String {
    hex::encode(b.get(..6).unwrap_or(b))
}

impl Oracles {
    pub fn new(disabled: impl IntoIterator<Item = String>) -> Self {
        Oracles {
            disabled: disabled.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Violations found since index `from`.
    pub fn since(&self, from: usize) -> &[Violation] {
        self.violations.get(from..).unwrap_or(&[])
    }

    /// x-hub-transfer: the script had an honest client start a move of `room`'s hub
    /// (`move-hub`: a cooperative handoff; `take-over`).
    pub fn hub_move_started(&mut self, room: &RoomUri, how: HubMove) {
        self.hub_moves.entry(room.clone()).or_default().push(how);
    }

    fn fire(&mut self, id: &'static str, message: String, witness: Witness) {
        if self.disabled.contains(id) {
            return;
        }
        let key = (
            id.to_string(),
            witness.nodes.clone(),
            witness.epochs.clone(),
        );
        if !self.reported.insert(key) {
            return;
        }
        self.violations.push(Violation {
            id,
            message,
            witness,
        });
    }

    /// `hub` reported accepting a commit (`epoch` as the hub reports it) at log `seq`:
    /// [`ONE_SEQUENCER_PER_EPOCH`]; for one-commit-per-epoch it is only witness text.
    pub fn commit_accepted(
        &mut self,
        t: u64,
        hub: &str,
        room: &RoomUri,
        epoch: u64,
        seq: u64,
        line: u64,
    ) {
        let v = self.commits.entry((room.clone(), epoch)).or_default();
        v.push((hub.to_string(), seq, line));
        let v = v.clone();
        let hubs: BTreeSet<String> = v.iter().map(|x| x.0.clone()).collect();
        if hubs.len() > 1 {
            self.fire(
                ONE_SEQUENCER_PER_EPOCH,
                format!(
                    "{} hubs ({}) accepted commits for {room} epoch {epoch}",
                    hubs.len(),
                    hubs.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                Witness {
                    nodes: hubs.iter().cloned().collect(),
                    epochs: vec![epoch],
                    trace_lines: v.iter().map(|x| x.2).collect(),
                    at_ms: t,
                },
            );
        }
    }

    /// A new log entry of `hub`.
    /// `generation`: the logging hub's x-hub-transfer generation (0 without transfer).
    #[allow(clippy::too_many_arguments)]
    pub fn logged(
        &mut self,
        hub: &str,
        room: &RoomUri,
        fanout: &[u8],
        generation: u64,
        seq: u64,
        epoch: u64,
        line: u64,
    ) {
        self.log_index.insert(
            (room.clone(), sha(fanout)),
            Logged {
                hub: hub.to_string(),
                generation,
                seq,
                epoch,
                carries: Carried::of(fanout),
                line,
            },
        );
    }

    /// An honest client reached a new epoch; `view` is its view now, `hub_epoch` the hub's.
    #[allow(clippy::too_many_arguments)]
    pub fn client_epoch(
        &mut self,
        t: u64,
        client: &ClientUri,
        room: &RoomUri,
        view: &RoomView,
        hub: Option<(&str, u64)>,
        line: u64,
    ) {
        let e = view.epoch;
        self.epochs
            .entry((client.clone(), room.clone()))
            .or_default()
            .insert(e);
        let me = Seen {
            group_context: view.group_context.clone(),
            authenticator: view.epoch_authenticator.clone(),
            participants: view.state.as_ref().map(|st| {
                st.participants
                    .iter()
                    .map(|p| (p.user.clone(), p.role))
                    .collect()
            }),
            by: client.as_str().to_string(),
            line,
        };
        if let Some((hub, hub_epoch)) = hub {
            if e > hub_epoch {
                self.fire(
                    HUB_VIEW_MATCHES,
                    format!("{client} is at epoch {e} of {room} but the hub {hub}'s view is at {hub_epoch}"),
                    Witness {
                        nodes: vec![client.as_str().into(), hub.into()],
                        epochs: vec![hub_epoch, e],
                        trace_lines: vec![line],
                        at_ms: t,
                    },
                );
            }
        }
        let key = (room.clone(), e);
        match self.clients_seen.get(&key).cloned() {
            Some(first) => {
                if first.participants != me.participants {
                    let show = |p: &Option<Vec<(UserUri, u32)>>| match p {
                        None => "no room state".to_string(),
                        Some(v) => format!(
                            "[{}]",
                            v.iter()
                                .map(|(u, r)| format!("{u}:{r}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.fire(
                        ROOM_STATE_AGREES,
                        format!(
                            "at epoch {e} of {room} {} holds the participant list {}, {client} holds {}",
                            first.by,
                            show(&first.participants),
                            show(&me.participants)
                        ),
                        Witness {
                            nodes: vec![first.by.clone(), client.as_str().into()],
                            epochs: vec![e],
                            trace_lines: vec![first.line, line],
                            at_ms: t,
                        },
                    );
                }
                if first.group_context != me.group_context
                    || first.authenticator != me.authenticator
                {
                    self.fire(
                        NO_SPLIT,
                        format!(
                            "split at epoch {e} of {room}: {} has GroupContext {}… authenticator {}…, {client} has {}… {}…",
                            first.by,
                            short(&first.group_context),
                            short(&first.authenticator),
                            short(&me.group_context),
                            short(&me.authenticator)
                        ),
                        Witness {
                            nodes: vec![first.by.clone(), client.as_str().into()],
                            epochs: vec![e],
                            trace_lines: vec![first.line, line],
                            at_ms: t,
                        },
                    );
                }
            }
            None => {
                self.departures.saw_epoch(room, view, line);
                self.compare_hub(t, room, e, &me, None);
                self.clients_seen.insert(key, me);
            }
        }
        // Every honest client's own view, not only the first one's at this epoch.
        self.check_membership(t, client, room, view, line);
        self.check_ghosts(t, client, room, view, line);
    }

    /// The hub's view reached a new epoch.
    pub fn hub_epoch(
        &mut self,
        t: u64,
        hub: &str,
        room: &RoomUri,
        epoch: u64,
        group_context: Vec<u8>,
        line: u64,
    ) {
        let me = Seen {
            group_context,
            authenticator: Vec::new(),
            participants: None,
            by: hub.to_string(),
            line,
        };
        self.compare_hub(t, room, epoch, &me, Some(()));
        self.hub_seen.entry((room.clone(), epoch)).or_insert(me);
    }

    fn compare_hub(&mut self, t: u64, room: &RoomUri, e: u64, new: &Seen, is_hub: Option<()>) {
        let key = (room.clone(), e);
        let other = if is_hub.is_some() {
            self.clients_seen.get(&key)
        } else {
            self.hub_seen.get(&key)
        };
        let Some(other) = other.cloned() else { return };
        if other.group_context != new.group_context {
            self.fire(
                HUB_VIEW_MATCHES,
                format!(
                    "at epoch {e} of {room} the hub's GroupContext differs from the members': {} has {}…, {} has {}…",
                    other.by,
                    short(&other.group_context),
                    new.by,
                    short(&new.group_context)
                ),
                Witness {
                    nodes: vec![other.by.clone(), new.by.clone()],
                    epochs: vec![e],
                    trace_lines: vec![other.line, new.line],
                    at_ms: t,
                },
            );
        }
    }

    fn check_membership(
        &mut self,
        t: u64,
        client: &ClientUri,
        room: &RoomUri,
        view: &RoomView,
        line: u64,
    ) {
        let Some(state) = &view.state else { return };
        let participants = roles_of(state);
        let ever = self.ever_participants.entry(room.clone()).or_default();
        for (u, r) in &participants {
            if *r != BANNED_ROLE {
                ever.insert(u.clone());
            }
        }
        let ever = ever.clone();
        for m in &view.members {
            let user = m.user();
            let role = participants.get(&user).copied();
            let bad = match role {
                Some(r) if r != BANNED_ROLE => continue,
                Some(_) => (REMOVED_HAS_NO_CLIENTS, "is banned"),
                None if ever.contains(&user) => (
                    REMOVED_HAS_NO_CLIENTS,
                    "was removed from the participant list",
                ),
                None => (MEMBER_IS_PARTICIPANT, "is not in the participant list"),
            };
            // One report per member and epoch, naming the first honest client whose
            // view holds it.
            if !self
                .membership_reported
                .insert((bad.0, room.clone(), m.clone(), view.epoch))
            {
                continue;
            }
            self.fire(
                bad.0,
                format!(
                    "at epoch {} of {room} client {m} is a member but its user {user} {}",
                    view.epoch, bad.1
                ),
                Witness {
                    nodes: if m == client {
                        vec![m.as_str().into()]
                    } else {
                        vec![m.as_str().into(), client.as_str().into()]
                    },
                    epochs: vec![view.epoch],
                    trace_lines: vec![line],
                    at_ms: t,
                },
            );
        }
    }

    /// The devices malicious providers hold as ghosts (no user enrolled them); see
    /// `nodes::adversary::ghost_devices`.
    pub fn add_ghosts(&mut self, ghosts: impl IntoIterator<Item = ClientUri>) {
        self.ghosts.extend(ghosts);
    }

    /// [`NO_GHOST_DEVICE`]: `client`'s group at `view.epoch` holds a ghost device.
    fn check_ghosts(
        &mut self,
        t: u64,
        client: &ClientUri,
        room: &RoomUri,
        view: &RoomView,
        line: u64,
    ) {
        let found: Vec<ClientUri> = view
            .members
            .iter()
            .filter(|m| self.ghosts.contains(*m))
            .cloned()
            .collect();
        for g in found {
            if !self.ghosts_reported.insert((room.clone(), g.clone())) {
                continue;
            }
            self.fire(
                NO_GHOST_DEVICE,
                format!(
                    "at epoch {} of {room} {client}'s group holds {g}, a device {} never enrolled (a ghost of its provider {})",
                    view.epoch,
                    g.user(),
                    g.domain()
                ),
                Witness {
                    nodes: vec![
                        g.as_str().into(),
                        client.as_str().into(),
                        g.domain().as_str().into(),
                    ],
                    epochs: vec![view.epoch],
                    trace_lines: vec![line],
                    at_ms: t,
                },
            );
        }
    }

    /// `client` built an application message of `room` whose MLSMessage hashes to
    /// `mls_sha256` (hex) and handed it to its provider.
    pub fn message_built(
        &mut self,
        client: &ClientUri,
        room: &RoomUri,
        mls_sha256: &str,
        line: u64,
    ) {
        self.built
            .entry((room.clone(), mls_sha256.to_string()))
            .or_insert_with(|| (client.clone(), line));
    }

    /// [`SENDING_URI_IS_SENDER`]: `hub` accepted the application message hashing to
    /// `mls_sha256` under `sending_uri`. A message no simulated client built is not
    /// judged here (members cannot decrypt it; other oracles see it).
    #[allow(clippy::too_many_arguments)]
    pub fn sender_accepted(
        &mut self,
        t: u64,
        hub: &str,
        room: &RoomUri,
        epoch: u64,
        sending_uri: &str,
        mls_sha256: &str,
        line: u64,
    ) {
        let Some((builder, built_line)) = self
            .built
            .get(&(room.clone(), mls_sha256.to_string()))
            .cloned()
        else {
            return;
        };
        let user = builder.user();
        if user.as_str() == sending_uri {
            return;
        }
        self.fire(
            SENDING_URI_IS_SENDER,
            format!(
                "{hub} accepted a message of {room} at epoch {epoch} as sent by {sending_uri}, but {builder} (of {user}) built it",
            ),
            Witness {
                nodes: vec![builder.as_str().into(), hub.into()],
                epochs: vec![epoch],
                trace_lines: vec![built_line, line],
                at_ms: t,
            },
        );
    }

    /// An honest provider handed `fanout` (one FanoutMessage) of `room` to its (honest)
    /// `client`.
    pub fn delivered(
        &mut self,
        t: u64,
        provider: &str,
        client: &ClientUri,
        room: &RoomUri,
        fanout: &[u8],
        line: u64,
    ) {
        let fanout_sha = sha(fanout);
        self.receipts
            .entry((client.clone(), room.clone()))
            .or_default()
            .push((fanout_sha, line));
        if let Carried::Commit { epoch, sha } = Carried::of(fanout) {
            let receipt = CommitReceipt {
                client: client.clone(),
                provider: provider.to_string(),
                fanout: fanout_sha,
                line,
            };
            self.commit_received(t, room, epoch, sha, receipt);
        }
        let Some(l) = self.log_index.get(&(room.clone(), fanout_sha)).cloned() else {
            self.fire(
                ONLY_ACCEPTED_DELIVERED,
                format!(
                    "{provider} handed {client} a message of {room} that is not in the hub's log"
                ),
                Witness {
                    nodes: vec![provider.into(), client.as_str().into()],
                    epochs: vec![],
                    trace_lines: vec![line],
                    at_ms: t,
                },
            );
            return;
        };
        let key = (client.clone(), room.clone());
        if let Some(&(last, last_line)) = self.last_delivered.get(&key) {
            if (l.generation, l.seq) == last {
                self.fire(
                    NOTIFY_ONCE,
                    format!(
                        "{provider} handed {client} hub log entry {} of {room} twice",
                        l.seq
                    ),
                    Witness {
                        nodes: vec![provider.into(), client.as_str().into()],
                        epochs: vec![l.epoch],
                        trace_lines: vec![l.line, last_line, line],
                        at_ms: t,
                    },
                );
                return;
            }
            if (l.generation, l.seq) < last {
                self.fire(
                    HUB_ORDER,
                    format!(
                        "{provider} handed {client} hub log entry {} of {room} after entry {}",
                        l.seq, last.1
                    ),
                    Witness {
                        nodes: vec![provider.into(), client.as_str().into()],
                        epochs: vec![l.epoch],
                        trace_lines: vec![last_line, line],
                        at_ms: t,
                    },
                );
                return;
            }
        }
        self.last_delivered
            .insert(key, ((l.generation, l.seq), line));
    }

    /// [`ONE_COMMIT_PER_EPOCH`]: an honest client was handed the commit `commit` (SHA-256
    /// of its MLSMessage) of MLS epoch `epoch`; a second, different commit of the same
    /// epoch handed to any honest client is a violation. The hubs' logs and reports are
    /// only witness text.
    fn commit_received(
        &mut self,
        t: u64,
        room: &RoomUri,
        epoch: u64,
        commit: [u8; 32],
        receipt: CommitReceipt,
    ) {
        let seen = self
            .commits_received
            .entry((room.clone(), epoch))
            .or_default();
        if seen.contains_key(&commit) {
            return;
        }
        seen.insert(commit, receipt);
        if seen.len() < 2 {
            return;
        }
        let seen: Vec<([u8; 32], CommitReceipt)> =
            seen.iter().map(|(k, v)| (*k, v.clone())).collect();
        let described: Vec<String> = seen
            .iter()
            .map(|(c, r)| {
                let logged = match self.log_index.get(&(room.clone(), r.fanout)) {
                    Some(l) => format!(
                        "in {}'s log (generation {}) at seq {}",
                        l.hub, l.generation, l.seq
                    ),
                    None => "in no hub's log".to_string(),
                };
                format!(
                    "commit {}… first handed to {} by {} ({logged})",
                    short(c),
                    r.client,
                    r.provider
                )
            })
            .collect();
        let reported = self
            .commits
            .get(&(room.clone(), epoch + 1))
            .map_or(0, Vec::len);
        let mut nodes: Vec<String> = Vec::new();
        for (_, r) in &seen {
            for n in [r.client.as_str().to_string(), r.provider.clone()] {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        self.fire(
            ONE_COMMIT_PER_EPOCH,
            format!(
                "honest clients were handed {} different commits for epoch {epoch} of {room}: {}; the hubs reported {reported} accepted commit(s) starting epoch {}",
                seen.len(),
                described.join("; "),
                epoch + 1
            ),
            Witness {
                nodes,
                epochs: vec![epoch],
                trace_lines: seen.iter().map(|(_, r)| r.line).collect(),
                at_ms: t,
            },
        );
    }

    pub fn message_sent(&mut self, s: Sent) {
        self.sent.push(s);
    }

    pub fn message_received(&mut self, client: &ClientUri, room: &RoomUri, message_id: &str) {
        self.received
            .entry((client.clone(), room.clone()))
            .or_default()
            .insert(message_id.to_string());
    }

    /// At the end of a converged run: every accepted application message reached every
    /// honest client that was at its epoch.
    pub fn check_delivery(&mut self, t: u64, honest: &BTreeSet<ClientUri>) {
        let mut missing: BTreeMap<String, (Sent, Vec<String>)> = BTreeMap::new();
        for s in &self.sent {
            for ((c, r), epochs) in &self.epochs {
                if r != &s.room
                    || c == &s.sender
                    || !honest.contains(c)
                    || !epochs.contains(&s.epoch)
                {
                    continue;
                }
                let got = self
                    .received
                    .get(&(c.clone(), r.clone()))
                    .is_some_and(|m| m.contains(&s.message_id));
                if !got {
                    missing
                        .entry(s.message_id.clone())
                        .or_insert_with(|| (s.clone(), Vec::new()))
                        .1
                        .push(c.as_str().to_string());
                }
            }
        }
        for (id, (s, who)) in missing {
            let mut nodes = vec![s.sender.as_str().to_string()];
            nodes.extend(who.iter().cloned());
            self.fire(
                ACCEPTED_DELIVERED,
                format!(
                    "message {}… sent by {} at epoch {} of {} was accepted but never reached {}",
                    id.get(..12).unwrap_or(&id),
                    s.sender,
                    s.epoch,
                    s.room,
                    who.join(", ")
                ),
                Witness {
                    nodes,
                    epochs: vec![s.epoch],
                    trace_lines: vec![s.line],
                    at_ms: t,
                },
            );
        }
    }

    /// Accepted application messages and deliveries, for the summary.
    pub fn message_counts(&self) -> (usize, usize) {
        (
            self.sent.len(),
            self.received.values().map(BTreeSet::len).sum(),
        )
    }
}

fn sha(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}

// ---- departure-completes ---------------------------------------------------------------

/// The scripted op that started a departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DepartureKind {
    /// The user's own device leaves (the user and all its clients go).
    Leave,
    /// An admin removes the user (RP§8.1.2 canRemoveParticipant).
    Remove,
    /// An admin bans the user (RP§8.1.3 canBan).
    Ban,
}

impl DepartureKind {
    fn name(self) -> &'static str {
        match self {
            DepartureKind::Leave => "leave",
            DepartureKind::Remove => "remove",
            DepartureKind::Ban => "ban",
        }
    }
}

/// A room's committed state at the end of the run, as the current hub holds it.
#[derive(Debug, Clone)]
pub struct CommittedState {
    pub room: RoomUri,
    pub epoch: u64,
    /// (user, role) in list order.
    pub participants: Vec<(UserUri, u32)>,
    /// The group's member clients.
    pub members: Vec<ClientUri>,
}

/// One user's entry in a committed room state: its role (`None`: not listed) and how
/// many of its clients are members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    role: Option<u32>,
    clients: usize,
}

impl Entry {
    fn of(
        participants: &BTreeMap<UserUri, u32>,
        clients: &BTreeMap<UserUri, usize>,
        user: &UserUri,
    ) -> Entry {
        Entry {
            role: participants.get(user).copied(),
            clients: clients.get(user).copied().unwrap_or(0),
        }
    }

    /// The departure is complete: unlisted or banned, no client left.
    fn completed(self) -> bool {
        matches!(self.role, None | Some(BANNED_ROLE)) && self.clients == 0
    }

    /// `self` is a step of a departure from `before`: marked exiting, banned,
    /// unlisted, or fewer clients.
    fn departs_from(self, before: Entry) -> bool {
        (self.role != before.role
            && matches!(self.role, None | Some(BANNED_ROLE) | Some(EXITING_ROLE)))
            || self.clients < before.clients
    }

    fn describe(self) -> String {
        let role = match self.role {
            None => "unlisted".to_string(),
            Some(BANNED_ROLE) => "banned".to_string(),
            Some(EXITING_ROLE) => "exiting (x-exiting-state)".to_string(),
            Some(r) => format!("listed as role {r}"),
        };
        format!("{role}, {} client(s) in the group", self.clients)
    }
}

/// The committed room state of one epoch as the first honest member decoded it.
#[derive(Debug, Clone)]
struct EpochState {
    participants: BTreeMap<UserUri, u32>,
    clients: BTreeMap<UserUri, usize>,
    line: u64,
}

/// An arrival an honest client started (arrival-completes).
#[derive(Debug, Clone)]
pub enum Arrival {
    /// `by` asked to add `user` at its epoch `epoch` (trace line `line`).
    Add {
        by: ClientUri,
        room: RoomUri,
        user: UserUri,
        epoch: u64,
        line: u64,
    },
    /// `client` asked to join `room` by external commit (trace line `line`); `failure`:
    /// its failure, if it failed (a refusal by the hub means the join never started).
    Join {
        client: ClientUri,
        room: RoomUri,
        line: u64,
        failure: Option<JoinFailure>,
        /// The client reported `Joined` after the op (it became a member; it may have
        /// left since, which is a departure, not a failed arrival).
        joined: bool,
    },
}

/// How an external join failed: the client's `OpFailed`.
#[derive(Debug, Clone)]
pub struct JoinFailure {
    pub origin: FailureOrigin,
    pub reason: String,
    /// The trace line of the `OpFailed`.
    pub line: u64,
}

/// A departure an honest client started.
#[derive(Debug, Clone)]
struct Started {
    kind: DepartureKind,
    by: ClientUri,
    room: RoomUri,
    user: UserUri,
    /// The starting client's epoch.
    epoch: u64,
    before: Entry,
    /// The scenario declares that this departure may be refused.
    may_be_refused: bool,
    line: u64,
}

/// A departure the script asks of an honest client: the scenario's intent, which
/// [`DEPARTURE_COMPLETES`] judges the run by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartureIntent {
    pub kind: DepartureKind,
    /// The user who is to leave, be removed or banned.
    pub user: UserUri,
    /// The scenario declares (a non-empty `may_refuse` on the step) that the room's
    /// policy or the hub may refuse it.
    pub may_be_refused: bool,
}

/// [`DEPARTURE_COMPLETES`]'s memory: the departures started and the committed state of
/// every epoch.
#[derive(Debug, Default)]
struct Departures {
    started: Vec<Started>,
    epochs: BTreeMap<(RoomUri, u64), EpochState>,
}

impl Departures {
    fn saw_epoch(&mut self, room: &RoomUri, view: &RoomView, line: u64) {
        let Some(state) = &view.state else { return };
        self.epochs
            .entry((room.clone(), view.epoch))
            .or_insert_with(|| EpochState {
                participants: roles_of(state),
                clients: clients_per_user(&view.members),
                line,
            });
    }
}

/// user → role, from a room state's participant list.
fn roles_of(state: &nodes::room::RoomState) -> BTreeMap<UserUri, u32> {
    state
        .participants
        .iter()
        .map(|p| (p.user.clone(), p.role))
        .collect()
}

/// How many of `members` each user has.
fn clients_per_user<'a>(
    members: impl IntoIterator<Item = &'a ClientUri>,
) -> BTreeMap<UserUri, usize> {
    let mut clients: BTreeMap<UserUri, usize> = BTreeMap::new();
    for m in members {
        *clients.entry(m.user()).or_default() += 1;
    }
    clients
}

impl Oracles {
    /// An honest client `by` started the departure `intent` asked of it by the script
    /// (its leave, remove or ban was handed over and queued); `view` is its view of
    /// `room` at that moment, `line` the trace line of the op. Whether the departure may
    /// be refused is the scenario's word ([`DepartureIntent::may_be_refused`]), not the
    /// room's policy as the code under test reads it.
    pub fn departure_started(
        &mut self,
        intent: &DepartureIntent,
        by: &ClientUri,
        room: &RoomUri,
        view: &RoomView,
        line: u64,
    ) {
        let Some(state) = &view.state else { return };
        let participants = roles_of(state);
        let clients = clients_per_user(&view.members);
        self.departures.started.push(Started {
            kind: intent.kind,
            by: by.clone(),
            room: room.clone(),
            user: intent.user.clone(),
            epoch: view.epoch,
            before: Entry::of(&participants, &clients, &intent.user),
            may_be_refused: intent.may_be_refused,
            line,
        });
    }

    /// At the end of a converged run: every departure an honest client started has
    /// completed ([`DEPARTURE_COMPLETES`]). `hub_final`: the current hub's committed
    /// state, where the hub keeps one (an MLS view); the honest members' epochs are
    /// used besides it.
    ///
    /// Which departures count: every one the script asked for, unless the scenario
    /// lists `may_refuse` on its step and no step of it took effect (the user marked
    /// exiting, banned, unlisted, or one of its clients removed after the start): a
    /// refusal the scenario allows; a departure that went part of the way is stuck all
    /// the same. Complete: at some epoch from the start on (or in `hub_final`) the user
    /// is unlisted or banned and has no client in the group.
    pub fn check_departures(&mut self, t: u64, hub_final: Option<&CommittedState>) {
        let started = self.departures.started.clone();
        for d in started {
            let mut prev = d.before;
            let mut steps: Vec<(u64, Entry, u64)> = Vec::new();
            let mut done = d.before.completed();
            for ((_, e), st) in self
                .departures
                .epochs
                .range((d.room.clone(), d.epoch + 1)..)
                .take_while(|((r, _), _)| r == &d.room)
            {
                let cur = Entry::of(&st.participants, &st.clients, &d.user);
                if cur != prev && cur.departs_from(d.before) {
                    steps.push((*e, cur, st.line));
                }
                prev = cur;
                if cur.completed() {
                    done = true;
                    break;
                }
            }
            if let Some(f) = hub_final.filter(|f| f.room == d.room && f.epoch >= d.epoch) {
                let participants: BTreeMap<UserUri, u32> = f.participants.iter().cloned().collect();
                let clients = clients_per_user(&f.members);
                done |= Entry::of(&participants, &clients, &d.user).completed();
            }
            let counted = !d.may_be_refused || !steps.is_empty();
            if done || !counted {
                continue;
            }
            let taken = if steps.is_empty() {
                "none".to_string()
            } else {
                steps
                    .iter()
                    .map(|(e, en, _)| format!("epoch {e}: {}", en.describe()))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let mut trace_lines = vec![d.line];
            trace_lines.extend(steps.iter().map(|s| s.2));
            self.fire(
                DEPARTURE_COMPLETES,
                format!(
                    "the {} of {} that {} started at epoch {} of {} ({}) never completed; steps that took effect: {taken}; at the end: {}",
                    d.kind.name(),
                    d.user,
                    d.by,
                    d.epoch,
                    d.room,
                    d.before.describe(),
                    prev.describe()
                ),
                Witness {
                    nodes: vec![d.by.as_str().to_string(), d.user.as_str().to_string()],
                    epochs: std::iter::once(d.epoch)
                        .chain(steps.iter().map(|s| s.0))
                        .collect(),
                    trace_lines,
                    at_ms: t,
                },
            );
        }
    }
}

/// Whether a failed external join was refused before it could start, judged by the
/// failure's typed origin (never its text): the hub answered with a refusal code, the
/// request got an HTTP error instead of an answer (no hub for the room there, the hub
/// moved), or every attempt lost its epoch and the client gave up. A join that failed
/// on what it was served (an answer that does not decode or verify, a GroupInfo MLS
/// rejects) or in the client itself did start, and did not land.
fn refused_by_hub(origin: &FailureOrigin) -> bool {
    match origin {
        FailureOrigin::HubRefused { .. }
        | FailureOrigin::HttpError { .. }
        | FailureOrigin::RetriesExhausted { .. } => true,
        // No answer at all, or a retry that never got the epoch it needed, is no
        // decision of the hub's: the join did not land.
        FailureOrigin::EpochOutOfReach { .. }
        | FailureOrigin::BadAnswer
        | FailureOrigin::NoKeyMaterial
        | FailureOrigin::Local(_)
        | FailureOrigin::Unanswered { .. } => false,
    }
}

impl Oracles {
    /// An honest client started an arrival (its add or join op was handed over).
    pub fn arrival_started(&mut self, a: Arrival) {
        self.arrivals.push(a);
    }

    /// An honest client reported `Joined` for `room`.
    pub fn arrival_joined(&mut self, client: &ClientUri, room: &RoomUri) {
        for a in self.arrivals.iter_mut() {
            if let Arrival::Join {
                client: c,
                room: r,
                joined,
                ..
            } = a
            {
                if c == client && r == room {
                    *joined = true;
                }
            }
        }
    }

    /// An honest client's external join failed (`origin`, `reason`; trace line `line`).
    pub fn join_failed(
        &mut self,
        client: &ClientUri,
        origin: FailureOrigin,
        reason: &str,
        line: u64,
    ) {
        for a in self.arrivals.iter_mut().rev() {
            if let Arrival::Join {
                client: c, failure, ..
            } = a
            {
                if c == client && failure.is_none() {
                    *failure = Some(JoinFailure {
                        origin,
                        reason: reason.to_string(),
                        line,
                    });
                    return;
                }
            }
        }
    }

    /// arrival-completes, judged once at the end of a converged run; `hub_final` is the
    /// current hub's committed state.
    pub fn check_arrivals(&mut self, t: u64, hub_final: Option<&CommittedState>) {
        let arrivals = self.arrivals.clone();
        for a in arrivals {
            match a {
                Arrival::Add {
                    by,
                    room,
                    user,
                    epoch,
                    line,
                } => {
                    // The first epoch after the op whose list holds the user (and did
                    // not before): the add's commit. Its clients must be there too.
                    let listed = |st: &EpochState| {
                        st.participants
                            .get(&user)
                            .is_some_and(|r| *r != BANNED_ROLE)
                    };
                    let was = self
                        .departures
                        .epochs
                        .get(&(room.clone(), epoch))
                        .is_some_and(listed);
                    if was {
                        continue;
                    }
                    let first = self
                        .departures
                        .epochs
                        .range((room.clone(), epoch + 1)..)
                        .take_while(|((r, _), _)| r == &room)
                        .find(|(_, st)| listed(st));
                    let Some(((_, e), st)) = first else { continue };
                    if st.clients.get(&user).copied().unwrap_or(0) > 0 {
                        continue;
                    }
                    self.fire(
                        ARRIVAL_COMPLETES,
                        format!(
                            "{by} added {user} to {room}: epoch {e} lists {user} but holds none of its clients (the clients that joined are another user's, or none)"
                        ),
                        Witness {
                            nodes: vec![by.as_str().to_string(), user.as_str().to_string()],
                            epochs: vec![epoch, *e],
                            trace_lines: vec![line, st.line],
                            at_ms: t,
                        },
                    );
                }
                Arrival::Join {
                    client,
                    room,
                    line,
                    failure,
                    joined,
                } => {
                    if joined || failure.as_ref().is_some_and(|f| refused_by_hub(&f.origin)) {
                        continue;
                    }
                    let member = hub_final
                        .filter(|f| f.room == room)
                        .is_some_and(|f| f.members.contains(&client));
                    if member {
                        continue;
                    }
                    let why = failure.as_ref().map_or("no answer".to_string(), |f| {
                        format!("{} (origin {:?})", f.reason, f.origin)
                    });
                    let mut trace_lines = vec![line];
                    trace_lines.extend(failure.as_ref().map(|f| f.line));
                    self.fire(
                        ARRIVAL_COMPLETES,
                        format!(
                            "{client} asked to join {room} by external commit and is no member at the end: {why}"
                        ),
                        Witness {
                            nodes: vec![client.as_str().to_string()],
                            epochs: Vec::new(),
                            trace_lines,
                            at_ms: t,
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod departure_tests {
    //! Which departures [`DEPARTURE_COMPLETES`] counts, on hand-made committed states.
    use super::*;
    use nodes::ids::Domain;
    use nodes::room::{NewRoomOptions, ProposedChange, RolePreset, RoomState};

    fn dom(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }
    fn user(name: &str) -> UserUri {
        UserUri::new(&dom("b.example"), name).unwrap()
    }
    fn room() -> RoomUri {
        RoomUri::new(&dom("a.example"), "r").unwrap()
    }

    /// alice (creator) and bob (ordinary_user, role 2), one client each.
    fn start() -> RoomState {
        RoomState::new_room(
            &room(),
            &user("alice"),
            RolePreset::Cooperative,
            NewRoomOptions {
                others: vec![(user("bob"), 2)],
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn view(epoch: u64, state: &RoomState, members: &[&str]) -> RoomView {
        RoomView {
            epoch,
            group_context: vec![epoch as u8],
            epoch_authenticator: vec![epoch as u8],
            dictionary: BTreeMap::new(),
            members: members
                .iter()
                .map(|m| user(m).client("1").unwrap())
                .collect(),
            state: Some(state.clone()),
        }
    }

    /// Bob's departure (`kind`, started by `by` at epoch 1 on `st`; `may_be_refused` as
    /// the scenario declares), then the epochs `later` (state, members); the ids that
    /// fired.
    fn judge(
        kind: DepartureKind,
        by: &str,
        may_be_refused: bool,
        st: &RoomState,
        later: &[(RoomState, &[&str])],
    ) -> Vec<&'static str> {
        let mut o = Oracles::default();
        let starter = user(by).client("1").unwrap();
        let v1 = view(1, st, &["alice", "bob"]);
        o.client_epoch(0, &starter, &room(), &v1, None, 1);
        let intent = DepartureIntent {
            kind,
            user: user("bob"),
            may_be_refused,
        };
        o.departure_started(&intent, &starter, &room(), &v1, 2);
        for (i, (s, m)) in later.iter().enumerate() {
            let e = 2 + i as u64;
            let alice = user("alice").client("1").unwrap();
            o.client_epoch(0, &alice, &room(), &view(e, s, m), None, 10 + e);
        }
        o.check_departures(100, None);
        o.violations()
            .iter()
            .map(|v| v.id)
            .filter(|id| *id == DEPARTURE_COMPLETES)
            .collect()
    }

    #[test]
    fn a_departure_that_never_takes_effect_is_stuck_unless_the_scenario_allows_a_refusal() {
        let st = start();
        for kind in [
            DepartureKind::Leave,
            DepartureKind::Remove,
            DepartureKind::Ban,
        ] {
            let by = if kind == DepartureKind::Leave {
                "bob"
            } else {
                "alice"
            };
            assert_eq!(
                judge(kind, by, false, &st, &[]),
                vec![DEPARTURE_COMPLETES],
                "{kind:?}"
            );
            assert!(judge(kind, by, true, &st, &[]).is_empty(), "{kind:?}");
            // Epochs went by, none of them a step of it: refused, allowed.
            assert!(
                judge(kind, by, true, &st, &[(st.clone(), &["alice", "bob"])]).is_empty(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_departure_that_went_part_of_the_way_is_stuck_even_if_refusal_is_allowed() {
        let st = start();
        for may_be_refused in [false, true] {
            // clients removed, user still listed: stuck
            let fired = judge(
                DepartureKind::Remove,
                "alice",
                may_be_refused,
                &st,
                &[(st.clone(), &["alice"])],
            );
            assert_eq!(fired, vec![DEPARTURE_COMPLETES]);
            // marked exiting, nothing else: stuck
            let exiting = st
                .apply(&ProposedChange::commit().set_role(&user("bob"), EXITING_ROLE))
                .unwrap();
            let fired = judge(
                DepartureKind::Remove,
                "alice",
                may_be_refused,
                &st,
                &[(exiting.clone(), &["alice", "bob"])],
            );
            assert_eq!(fired, vec![DEPARTURE_COMPLETES]);
            // ... then unlisted with no client: complete
            let gone = exiting
                .apply(&ProposedChange::commit().remove_user(&user("bob")))
                .unwrap();
            assert!(judge(
                DepartureKind::Remove,
                "alice",
                may_be_refused,
                &st,
                &[(exiting, &["alice", "bob"]), (gone.clone(), &["alice"])]
            )
            .is_empty());
            // a leave completed in one epoch; banned with no client is complete too
            assert!(judge(
                DepartureKind::Leave,
                "bob",
                may_be_refused,
                &st,
                &[(gone, &["alice"])]
            )
            .is_empty());
            let banned = st
                .apply(&ProposedChange::commit().set_role(&user("bob"), BANNED_ROLE))
                .unwrap();
            assert!(judge(
                DepartureKind::Ban,
                "alice",
                may_be_refused,
                &st,
                &[(banned.clone(), &["alice"])]
            )
            .is_empty());
            // banned but a client left: not complete
            assert_eq!(
                judge(
                    DepartureKind::Ban,
                    "alice",
                    may_be_refused,
                    &st,
                    &[(banned, &["alice", "bob"])]
                ),
                vec![DEPARTURE_COMPLETES]
            );
        }
    }
}
