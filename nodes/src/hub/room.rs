//! One room as its hub keeps it: the public view, the committed state and the hub state,
//! the proposals accepted in this epoch, muted users, the GroupInfo for joiners, and the
//! ordered log of accepted messages with a delivery cursor per follower.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{Millis, Token};
use crate::room::{Membership, RoomState};

use super::public_view::{PublicView, ViewError};
use crate::transfer::HubRecord;

/// Whether this hub sequences the room (x-hub-transfer, [`crate::transfer`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sequencer {
    /// This hub is the room's sequencer.
    Active,
    /// Bootstrapped for a takeover: only a commit moving the hub here is accepted.
    TakeoverPending,
    /// This hub accepted a commit moving the hub away (cooperative handoff); it only
    /// drains its log and exports the handoff.
    HandedOff(HubRecord),
    /// A newer hub took the room over; `base_epoch` is the epoch its takeover commit
    /// was built on (log entries of later epochs are not delivered).
    Fenced { record: HubRecord, base_epoch: u64 },
}

/// A proposal the hub accepted in the current epoch (P§7.1).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AcceptedProposal {
    /// The MLSMessage bytes.
    pub message: Vec<u8>,
    /// Its ProposalRef.
    pub reference: Vec<u8>,
    pub accepted_at: Millis,
}

/// One accepted message in hub order.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub timestamp: Millis,
    /// The encoded FanoutMessage.
    pub fanout: Vec<u8>,
    /// The providers it goes to.
    pub recipients: BTreeSet<Domain>,
    /// A short description for traces.
    pub kind: &'static str,
    pub epoch: u64,
}

/// A `/notify` in flight to one provider. Retries resend exactly `body` (P§5.5 dedup).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InFlight {
    pub token: Option<Token>,
    /// Log index after the last message in `body`.
    pub upto: usize,
    pub body: Vec<u8>,
    pub attempts: u32,
    /// When to (re)send; `None` while a request is outstanding.
    pub send_at: Option<Millis>,
}

/// Delivery state towards one provider.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Outbound {
    /// Log index of the first message not yet acknowledged.
    pub next: usize,
    pub in_flight: Option<InFlight>,
}

/// A room hosted by this hub.
pub struct HubRoom {
    pub(crate) room: RoomUri,
    pub(crate) group_id: Vec<u8>,
    /// `None` under enforcement `off`, or once the view diverged from what was accepted.
    pub(crate) view: Option<PublicView>,
    pub(crate) epoch: u64,
    /// The room state of the current epoch (from the GroupContext).
    pub(crate) committed: RoomState,
    /// Committed state plus the accepted pending proposals (P§7.1).
    pub(crate) hub_state: RoomState,
    pub(crate) pending: Vec<AcceptedProposal>,
    /// Users whose removal or ban was accepted and whose clients are still members.
    pub(crate) muted: BTreeSet<UserUri>,
    /// The latest committer's GroupInfo (bare struct) and the tree, for `/groupInfo`.
    pub(crate) group_info: Vec<u8>,
    pub(crate) ratchet_tree: Vec<u8>,
    /// Clients with an authorised `/groupInfo` request (P§5.6).
    pub(crate) authorized_joiners: BTreeSet<ClientUri>,
    /// Every provider that took part (recipients when the hub has no MLS view).
    pub(crate) known_domains: BTreeSet<Domain>,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) outbound: BTreeMap<Domain, Outbound>,
    /// Pending adds/removes of clients per user from accepted proposals.
    pub(crate) pending_client_delta: BTreeMap<UserUri, i64>,
    /// Users added to the list by accepted, uncommitted proposals.
    pub(crate) pending_added: BTreeSet<UserUri>,
    /// SHA-256 of the creator's GroupInfo and tree (a repeated creation is answered OK).
    pub(crate) created_from: [u8; 32],
    /// Recently accepted messages (SHA-256 of the MLS message) → accepted timestamp, so
    /// that a byte-identical retry gets the original answer (bounded by
    /// [`MAX_REMEMBERED_ACCEPTED`]).
    pub(crate) accepted: BTreeMap<[u8; 32], Millis>,
    pub(crate) accepted_order: VecDeque<[u8; 32]>,
    /// The committed hub record of the current epoch (x-hub-transfer §1).
    pub(crate) record: HubRecord,
    /// Whether this hub sequences the room.
    pub(crate) sequencer: Sequencer,
    /// The seq of `log[0]` (the hub log continues across a handoff).
    pub(crate) seq_base: u64,
    /// The epoch a takeover by this hub was built on (for the [`crate::transfer::Fence`]).
    pub(crate) took_over_at: Option<u64>,
}

/// Accepted messages per room remembered for answering byte-identical retries: as many as
/// one [`crate::transfer::Handoff`] carries, so a new hub answers the same retries.
pub const MAX_REMEMBERED_ACCEPTED: usize = crate::transfer::MAX_HANDOFF_ACCEPTED;

/// Read-only access to a hosted room's state, for tests and the fuzz targets (the
/// simulator and the testbed read the published [`crate::server::HubRoomView`]); the
/// hub's rules alone change it.
impl HubRoom {
    pub fn room(&self) -> &RoomUri {
        &self.room
    }
    pub fn group_id(&self) -> &[u8] {
        &self.group_id
    }
    /// The hub's MLS view; `None` under enforcement `off`, or once it diverged.
    pub fn view(&self) -> Option<&PublicView> {
        self.view.as_ref()
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The room state of the current epoch.
    pub fn committed(&self) -> &RoomState {
        &self.committed
    }
    /// The committed state plus the accepted pending proposals.
    pub fn hub_state(&self) -> &RoomState {
        &self.hub_state
    }
    pub fn pending(&self) -> &[AcceptedProposal] {
        &self.pending
    }
    pub fn muted(&self) -> &BTreeSet<UserUri> {
        &self.muted
    }
    /// The latest committer's GroupInfo, as served by `/groupInfo`.
    pub fn group_info(&self) -> &[u8] {
        &self.group_info
    }
    pub fn ratchet_tree(&self) -> &[u8] {
        &self.ratchet_tree
    }
    pub fn authorized_joiners(&self) -> &BTreeSet<ClientUri> {
        &self.authorized_joiners
    }
    /// The hub log of this room, from seq [`HubRoom::seq_base`] on.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }
    pub fn seq_base(&self) -> u64 {
        self.seq_base
    }
    pub fn outbound(&self) -> &BTreeMap<Domain, Outbound> {
        &self.outbound
    }
    pub fn sequencer(&self) -> &Sequencer {
        &self.sequencer
    }
}

impl HubRoom {
    /// An independent deep copy (the public view through [`PublicView::snapshot`]); see
    /// [`crate::server::Server::checkpoint`].
    pub fn checkpoint(&self) -> Result<HubRoom, ViewError> {
        let view = match &self.view {
            Some(v) => Some(v.snapshot()?),
            None => None,
        };
        Ok(HubRoom {
            room: self.room.clone(),
            group_id: self.group_id.clone(),
            view,
            epoch: self.epoch,
            committed: self.committed.clone(),
            hub_state: self.hub_state.clone(),
            pending: self.pending.clone(),
            muted: self.muted.clone(),
            group_info: self.group_info.clone(),
            ratchet_tree: self.ratchet_tree.clone(),
            authorized_joiners: self.authorized_joiners.clone(),
            known_domains: self.known_domains.clone(),
            log: self.log.clone(),
            outbound: self.outbound.clone(),
            pending_client_delta: self.pending_client_delta.clone(),
            pending_added: self.pending_added.clone(),
            created_from: self.created_from,
            accepted: self.accepted.clone(),
            accepted_order: self.accepted_order.clone(),
            record: self.record.clone(),
            sequencer: self.sequencer.clone(),
            seq_base: self.seq_base,
            took_over_at: self.took_over_at,
        })
    }

    /// Remember that the message with hash `h` was accepted at `ts`.
    pub fn remember_accepted(&mut self, h: [u8; 32], ts: Millis) {
        if self.accepted.insert(h, ts).is_none() {
            self.accepted_order.push_back(h);
        }
        while self.accepted_order.len() > MAX_REMEMBERED_ACCEPTED {
            if let Some(old) = self.accepted_order.pop_front() {
                self.accepted.remove(&old);
            }
        }
    }

    /// Members per user as the hub sees them now (view members plus accepted,
    /// uncommitted client changes): the `Membership` the policy engine needs.
    pub fn membership(&self) -> Membership {
        let mut clients: BTreeMap<UserUri, u32> = BTreeMap::new();
        if let Some(v) = &self.view {
            for (_, c) in v.members() {
                if let Some(c) = c {
                    *clients.entry(c.user()).or_default() += 1;
                }
            }
        }
        for (u, d) in &self.pending_client_delta {
            let e = clients.entry(u.clone()).or_default();
            *e = (i64::from(*e) + d).max(0) as u32;
        }
        clients.retain(|_, n| *n > 0);
        let mut m = Membership::new(clients);
        m.pending_added = self.pending_added.clone();
        m
    }

    /// Providers with member clients now.
    pub fn member_domains(&self) -> BTreeSet<Domain> {
        match &self.view {
            Some(v) => v
                .members()
                .into_iter()
                .filter_map(|(_, c)| c.map(|c| c.domain()))
                .collect(),
            None => self.known_domains.clone(),
        }
    }

    /// The seq the next log entry gets.
    pub fn next_seq(&self) -> u64 {
        self.seq_base + self.log.len() as u64
    }

    /// Whether every log entry has been acknowledged by all its recipients.
    pub fn fanout_idle(&self) -> bool {
        self.outbound.iter().all(|(d, o)| {
            o.in_flight.is_none()
                && self
                    .log
                    .iter()
                    .skip(o.next)
                    .all(|e| !e.recipients.contains(d))
        })
    }

    /// Whether `user` has member clients.
    pub fn has_clients(&self, user: &UserUri) -> bool {
        self.membership().count(user) > 0
    }
}
