//! The client's conduct: the few points of the client core ([`super::core::Client`])
//! where a client that deviates from the protocol on purpose acts differently, as a
//! seam it replaces by wrapping the honest conduct.
//!
//! Three kinds implement it:
//! * [`Honest`]: the protocol, nothing else (the default);
//! * [`crate::planted::FaultyClient`]: the honest client with planted bugs;
//! * [`crate::adversary::MaliciousClient`]: a device of a malicious provider (a provider
//!   controls its users' devices, P§1.2), wrapping one of the two above.
//!
//! Each seam is named after the protocol step it decides; the honest answer is the
//! protocol's, and a wrapper changes what it means to change and hands the rest to the
//! conduct it wraps. The client core asks its conduct at these points and nowhere else,
//! so the honest client reads as the protocol.

use std::any::Any;
use std::collections::BTreeSet;

use openmls::prelude::LeafNodeIndex;

use super::member::CommitOutput;
use crate::ids::RoomUri;
use crate::ids::UserUri;
use crate::io::ClientToProvider;
use crate::mls::commit::CommitPlan;
use crate::room::components::ParticipantListUpdate;
use crate::room::RoomState;

/// Something a deviating client did on purpose, recorded as the client's
/// `AdversaryAction` event ([`super::core::ClientEvent`]) so tests and traces can show
/// that a behaviour really happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The behaviour's name in scenario files (e.g. "omit-list-update").
    pub behaviour: &'static str,
    /// What it did, for people.
    pub action: String,
}

/// The member's group while this client builds a commit: the operations a conduct may
/// use to build "the commit about to be sent" ([`Conduct::commit`]).
pub trait Committing {
    /// Proposals in the group's proposal store (accepted by the hub this epoch).
    fn pending_proposal_count(&self) -> usize;

    /// Forget the proposals in the group's proposal store.
    fn discard_pending_proposals(&mut self) -> Result<(), String>;

    /// This epoch's GroupInfo (signed, with the external-pub extension).
    fn group_info(&self) -> Result<Vec<u8>, String>;

    /// Build the commit of `plan` (it stays pending until merged or discarded).
    fn commit(&mut self, plan: &CommitPlan) -> Result<CommitOutput, String>;

    /// Forget the pending commit.
    fn discard_pending_commit(&mut self) -> Result<(), String>;

    /// The `/update` body of `commit` as this client sends it (P§5.3; under
    /// x-hub-only-room-state with the participant-list changes beside it).
    fn update_body(&self, commit: &CommitOutput) -> Result<Vec<u8>, String>;
}

/// How a client acts at the points where a deviating client differs from the protocol.
/// Every kind answers every seam: a wrapper hands what it does not change to the
/// conduct it wraps.
pub trait Conduct: Any + Send {
    /// The room state this client shows in its room view, from `state`, the copy it holds.
    /// Honest: that copy.
    fn room_view_state(&self, me: &UserUri, state: Option<RoomState>) -> Option<RoomState>;

    /// The leaves a commit that removes `user` from the room (remove, kick, ban;
    /// RP§8.1.2) removes. Honest: all of the user's clients, `leaves`.
    fn removed_clients(&self, user: &UserUri, leaves: Vec<LeafNodeIndex>) -> Vec<LeafNodeIndex>;

    /// The participant-list change of a `what` ("remove" or "ban") commit about `user`
    /// (RP§8.1.2). Honest: `update`. `None` leaves the list alone.
    fn departure_list_update(
        &mut self,
        what: &'static str,
        user: &UserUri,
        update: ParticipantListUpdate,
        did: &mut Vec<Deviation>,
    ) -> Option<ParticipantListUpdate>;

    /// Whether this client, having committed leavers' SelfRemoves under `clients-first`
    /// / `exiting`, then commits their unlisting (its duty, see [`super::leave`]).
    /// Honest: it does.
    fn unlists_leavers(&self) -> bool;

    /// The sendingUri of this client's application messages (P§5.4); `state` gives the
    /// room state, if the client has one. Honest: its own user, `me`.
    fn sending_user(&self, me: &UserUri, state: &dyn Fn() -> Option<RoomState>) -> UserUri;

    /// The participant-list change of a commit that adds `users` (with their roles) to
    /// the room (RP§8.1.2). Honest: `update`, which lists them. `None` commits the Adds
    /// alone.
    fn added_list_update(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        update: ParticipantListUpdate,
    ) -> Option<ParticipantListUpdate>;

    /// The clients (URI bytes) of a `/keyMaterial` answer (P§5.2) whose KeyPackages an
    /// add of `users` leaves out; `in_room` gives the clients already in the room.
    /// Honest: none.
    fn key_packages_left_out(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        in_room: &dyn Fn() -> BTreeSet<Vec<u8>>,
    ) -> BTreeSet<Vec<u8>>;

    /// The user this client adds once it has joined a room by Welcome. Honest: none (a
    /// user's devices join when someone with the right adds them, RP§8).
    fn adds_on_welcome(&mut self, me: &UserUri) -> Option<UserUri>;

    /// The commit about to be sent in `room`: built by `group` from `plan` (which
    /// commits the proposal store, P§3.5). Honest: exactly that commit.
    fn commit(
        &mut self,
        room: &RoomUri,
        plan: CommitPlan,
        group: &mut dyn Committing,
        did: &mut Vec<Deviation>,
    ) -> Result<CommitOutput, String>;

    /// Provider-internal messages to send to this client's provider just before its
    /// next request. Honest: none (only a malicious provider's device sends such
    /// messages).
    fn before_request(&mut self) -> Vec<ClientToProvider>;

    /// Whether this conduct holds nothing beyond its settings (no message waiting for
    /// [`Self::before_request`]): only then is a client's snapshot, which keeps the
    /// settings but not the conduct, the whole client (`super::snapshot`).
    fn at_rest(&self) -> bool;
}

/// The protocol, nothing else.
#[derive(Debug, Clone, Copy, Default)]
pub struct Honest;

impl Conduct for Honest {
    fn room_view_state(&self, _me: &UserUri, state: Option<RoomState>) -> Option<RoomState> {
        state
    }

    fn removed_clients(&self, _user: &UserUri, leaves: Vec<LeafNodeIndex>) -> Vec<LeafNodeIndex> {
        leaves
    }

    fn departure_list_update(
        &mut self,
        _what: &'static str,
        _user: &UserUri,
        update: ParticipantListUpdate,
        _did: &mut Vec<Deviation>,
    ) -> Option<ParticipantListUpdate> {
        Some(update)
    }

    fn unlists_leavers(&self) -> bool {
        true
    }

    fn sending_user(&self, me: &UserUri, _state: &dyn Fn() -> Option<RoomState>) -> UserUri {
        me.clone()
    }

    fn added_list_update(
        &self,
        _me: &UserUri,
        _users: &[(UserUri, Option<u32>)],
        update: ParticipantListUpdate,
    ) -> Option<ParticipantListUpdate> {
        Some(update)
    }

    fn key_packages_left_out(
        &self,
        _me: &UserUri,
        _users: &[(UserUri, Option<u32>)],
        _in_room: &dyn Fn() -> BTreeSet<Vec<u8>>,
    ) -> BTreeSet<Vec<u8>> {
        BTreeSet::new()
    }

    fn adds_on_welcome(&mut self, _me: &UserUri) -> Option<UserUri> {
        None
    }

    fn commit(
        &mut self,
        _room: &RoomUri,
        plan: CommitPlan,
        group: &mut dyn Committing,
        _did: &mut Vec<Deviation>,
    ) -> Result<CommitOutput, String> {
        group.commit(&plan)
    }

    fn before_request(&mut self) -> Vec<ClientToProvider> {
        Vec::new()
    }

    fn at_rest(&self) -> bool {
        true
    }
}
