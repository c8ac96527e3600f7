//! x-exiting-state at the hub (a labelled extension, not in any draft; Richard's
//! "exiting state", MIMI interim minutes of 28 Sep 2023): a user on its way out of the
//! room marks itself with the reserved role index [`EXITING_ROLE`] in the participant
//! list (P§7.5), its clients are then removed from the MLS group, and last it is
//! unlisted (see [`crate::client::leave`], order `exiting`). This module holds the rules
//! a hub at `full` enforces about that state; the policy engine ([`super::policy`])
//! holds what the state permits.
//!
//! # Rules (hub rule ids, each switchable in `disabled_rules`)
//!
//! * `exiting-role` ([`check_roles`]): a user becomes exiting only by a role change
//!   of a listed user (never listed as exiting, nor by an actor that is no member);
//!   nobody — the exiting user included — may give an exiting user another role than
//!   `banned` (a ban completes an exit as unlisting does).
//! * `exiting-add` ([`check_adds`]): no MLS Add (or external join) of a client of an
//!   exiting user.
//! * `exiting-send` ([`check_sender`]): the hub refuses `/submitMessage` whose sender
//!   (sendingUri, P§5.4) is exiting.
//!
//! What the policy engine permits (always, under the `policy` rule):
//! * a member may set its own role to [`EXITING_ROLE`] from any role, without
//!   canChangeOwnRole and without an authorized_role_changes arc ([`super::Action::EnterExiting`]);
//! * a member may mark another participant exiting — the first step of removing it —
//!   when it could remove it: canRemoveParticipant and the arc from its role to no role
//!   ([`super::Action::MarkExiting`]);
//! * a member with canBan may ban an exiting user (no arc from the marker is needed);
//! * the clients of an exiting user may be removed by anyone (its role is not defined, so
//!   it "allows no clients": the cleanup rule of RP§8.1, as for a user not listed);
//! * an exiting user may be unlisted by any participant — proposed by itself, or
//!   committed by anyone — without canRemoveParticipant or an arc
//!   ([`super::Action::CompleteExit`]); the list ↔ membership rule still requires its
//!   clients to be gone by then.
//!
//! # Choices
//!
//! * The exiting state is a reserved role index, not a role defined in `roles_list`
//!   (RP§3): no room has to change its role definitions to allow it, and no preset's
//!   role constraints count it (an exiting user no longer counts in the role it left —
//!   so leaving the last seat of a role with a minimum is refused, as a leave is).
//! * The exiting state is for "participants during removal" (the same minutes), not only for
//!   a leave: an admin's Remove or Ban under the `exiting` order marks the target first.
//!   Marking needs exactly what the removal would (canRemoveParticipant and the arc to
//!   no role), so the marker gives an admin no power it did not have; a Ban needs
//!   canBan at its last step as well.
//! * The exiting state is one-way: the exit completes by unlisting, or by the banned
//!   role for a Ban (the ban's list change is its last step). Any other role change of
//!   an exiting user is refused.
//! * An exiting user's own proposals and commits other than its departure are not
//!   refused by a rule of their own: its role has no capability, so the policy engine
//!   refuses everything that needs one; only removals of its own clients and its own
//!   unlisting remain possible.
//! * Disabling `exiting-role` or `exiting-send` does not make the hub permissive: what
//!   it refuses is still refused by the generic rule (`policy`: undefined role, missing
//!   capability or arc; `submit-sender`: the exiting role holds no canSendMessage), under
//!   that rule's id. The same holds for `exiting-add` on member commits and proposals
//!   (`policy`: no canAddOwnClient), but not for an external join: the hub counts the
//!   external joiner as an Add for `exiting-add` only (its policy check sees the
//!   commit's inline proposals), so with `exiting-add` and `group-info-auth` off a new
//!   device of an exiting user joins (`nodes/tests/leave_order.rs`). The dedicated
//!   rules name the reason and come first.

use super::change::{Actor, ProposedChange};
use super::roles::BANNED_ROLE;
use super::state::RoomState;
use crate::ids::UserUri;

pub use super::roles::EXITING_ROLE;

/// What an `exiting-*` rule refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExitingViolation {
    #[error("only a member may set {user}'s role to exiting ({EXITING_ROLE:#x}), not {actor} (x-exiting-state)")]
    MarkerByNonMember { actor: String, user: UserUri },
    #[error("{user} may only be listed as exiting ({EXITING_ROLE:#x}) by changing its own role (x-exiting-state)")]
    ListedAsExiting { user: UserUri },
    #[error("{user} is exiting: its role cannot change to {to}; its exit completes by unlisting or a ban (x-exiting-state)")]
    ExitingRoleChange { user: UserUri, to: u32 },
    #[error("{user} is exiting: {count} client(s) of it cannot be added (x-exiting-state)")]
    AddClientsOfExiting { user: UserUri, count: u32 },
    #[error("{user} is exiting: the hub accepts no application message from it (x-exiting-state)")]
    SenderExiting { user: UserUri },
}

/// Whether `user` is listed as exiting in `state`.
pub fn is_exiting(state: &RoomState, user: &UserUri) -> bool {
    state
        .participant(user)
        .is_some_and(|p| p.role == EXITING_ROLE)
}

/// Rule `exiting-role`: who may set the exiting marker, and that an exiting user's role
/// does not change. `state` is the hub state before the change.
pub fn check_roles(
    state: &RoomState,
    actor: &Actor,
    change: &ProposedChange,
) -> Result<(), ExitingViolation> {
    for (user, to) in &change.list.role_changes {
        if is_exiting(state, user) && *to != EXITING_ROLE && *to != BANNED_ROLE {
            return Err(ExitingViolation::ExitingRoleChange {
                user: user.clone(),
                to: *to,
            });
        }
        if *to == EXITING_ROLE && !matches!(actor, Actor::Member { .. }) {
            return Err(ExitingViolation::MarkerByNonMember {
                actor: actor.id().to_string(),
                user: user.clone(),
            });
        }
    }
    if let Some((user, _)) = change.list.added.iter().find(|(_, r)| *r == EXITING_ROLE) {
        return Err(ExitingViolation::ListedAsExiting { user: user.clone() });
    }
    Ok(())
}

/// Rule `exiting-add`: no client of an exiting user is added.
pub fn check_adds(state: &RoomState, change: &ProposedChange) -> Result<(), ExitingViolation> {
    match change
        .client_adds
        .iter()
        .find(|(u, n)| **n > 0 && is_exiting(state, u))
    {
        Some((user, count)) => Err(ExitingViolation::AddClientsOfExiting {
            user: user.clone(),
            count: *count,
        }),
        None => Ok(()),
    }
}

/// Rule `exiting-send`: an exiting user sends no application message.
pub fn check_sender(state: &RoomState, sender: &UserUri) -> Result<(), ExitingViolation> {
    if is_exiting(state, sender) {
        Err(ExitingViolation::SenderExiting {
            user: sender.clone(),
        })
    } else {
        Ok(())
    }
}
