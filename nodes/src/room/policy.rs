//! The authorisation engine: may `actor` make `change` to the room, given the hub
//! state (P§5.3, P§7.1, P§7.5, P§7.6, RP§3–5, RP§8)?
//!
//! [`authorize`] answers with the classified [`Action`]s and the resulting state, or
//! the [`PolicyViolation`] naming the rule that forbids the change. Checks run in
//! this order, and the first failure is returned:
//! 1. coherence of actor and change kind;
//! 2. composition (P§7.5, P§7.6, RP§3, RP§4) and fixed membership (RP§5);
//! 3. the list change against the state (listed / not listed, role 0, undefined roles);
//! 4. each participant-list item (role changes, removals, additions), then client
//!    adds, client removes, metadata, roles, preauth, base policy, ReInit — each
//!    classified and checked against the actor's capabilities and
//!    authorized_role_changes;
//! 5. the resulting state: role definitions (if changed), participant list ↔
//!    membership consistency, base-policy limits, role constraints.

use super::capability::Capability;
use super::change::{Actor, ChangeKind, ProposedChange};
use super::codec::{component_name, BASE_ROOM_POLICY, PREAUTH_LIST, ROLES_LIST};
use super::components::MetadataField;
use super::roles::{Role, BANNED_ROLE, EXITING_ROLE, NO_ROLE};
use super::state::RoomState;
use super::violation::PolicyViolation;
use crate::ids::UserUri;
use std::collections::{BTreeMap, BTreeSet};

/// MLS membership as the hub sees it before the change: clients per user, after
/// the hub-accepted pending proposals of the epoch (the "hub view", P§7.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Number of MLS members (leaves) per user; absent = 0.
    pub clients: BTreeMap<UserUri, u32>,
    /// Users added to the list by hub-accepted, not yet committed proposals of this
    /// epoch: their clients may still be added by an actor entitled to add them
    /// (P§5.3 "before or simultaneously", RP§8.1.1).
    pub pending_added: BTreeSet<UserUri>,
}

impl Membership {
    pub fn new(clients: BTreeMap<UserUri, u32>) -> Self {
        Membership {
            clients,
            pending_added: BTreeSet::new(),
        }
    }
    /// The number of clients of `user`.
    pub fn count(&self, user: &UserUri) -> u32 {
        self.clients.get(user).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.clients.values().map(|&n| u64::from(n)).sum()
    }
}

impl From<BTreeMap<UserUri, u32>> for Membership {
    fn from(clients: BTreeMap<UserUri, u32>) -> Self {
        Membership::new(clients)
    }
}

/// How a user not in the list was allowed to add itself (RP§8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JoinPath {
    /// canOpenJoin on role 0 with a (0 → role) entry.
    OpenJoin,
    /// canJoinIfPreauthorized on the first preauth-matched role.
    Preauthorized,
    /// canUseJoinCode on role 0 with a valid join code for the role.
    JoinCode,
}

/// One classified room-level action (the actions RP§8 gates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// canAddParticipant: another user added with `role`, with `clients` of its clients.
    AddParticipant {
        user: UserUri,
        role: u32,
        clients: u32,
    },
    /// The actor added itself externally (RP§8.1.1), with its joining client(s).
    JoinSelf {
        user: UserUri,
        role: u32,
        via: JoinPath,
        clients: u32,
    },
    /// canAddParticipant: clients of a user whose list addition is pending this epoch.
    AddClientsOfAddedUser { user: UserUri, count: u32 },
    /// canAddOwnClient.
    AddOwnClients { user: UserUri, count: u32 },
    /// canRemoveParticipant: another user removed with all its clients.
    RemoveParticipant {
        user: UserUri,
        from_role: u32,
        clients: u32,
    },
    /// canRemoveSelf: the actor's user leaves, with all its clients.
    Leave {
        user: UserUri,
        from_role: u32,
        clients: u32,
    },
    /// canRemoveOwnClient.
    RemoveOwnClients { user: UserUri, count: u32 },
    /// canKick: another participant's clients removed, list unchanged.
    Kick { user: UserUri, count: u32 },
    /// Removing clients of a user who is not listed or whose role allows no clients
    /// (cleanup; needs no capability, restores "every member's user is a participant", P§1).
    RemoveClientsOfNonParticipant { user: UserUri, count: u32 },
    /// canChangeUserRole.
    ChangeRole { user: UserUri, from: u32, to: u32 },
    /// canChangeOwnRole (to the first non-zero preauth match).
    ChangeOwnRole { user: UserUri, from: u32, to: u32 },
    /// canBan: role → 1 "banned", with all its clients removed.
    Ban {
        user: UserUri,
        from: u32,
        clients: u32,
    },
    /// canUnBan: role 1 → `to`.
    Unban { user: UserUri, to: u32 },
    /// x-exiting-state: the actor's user sets its own role to the exiting marker
    /// (no capability; [`super::exiting`]).
    EnterExiting { user: UserUri, from: u32 },
    /// x-exiting-state: the actor marks another participant exiting, the first step of
    /// removing it (canRemoveParticipant and the arc `from` → no role, as the removal
    /// needs; [`super::exiting`]).
    MarkExiting { user: UserUri, from: u32 },
    /// x-exiting-state: an exiting user unlisted, with `clients` of its clients removed
    /// in the same change (no capability; [`super::exiting`]).
    CompleteExit { user: UserUri, clients: u32 },
    /// canChangeRoom{Name,Description,Avatar,Subject,Mood}.
    ChangeMetadata { fields: Vec<MetadataField> },
    /// canChangeRoleDefinitions.
    ChangeRoles,
    /// canChangePreauthorizedUserList.
    ChangePreauth,
    /// canChangeRoomMembershipStyle.
    ChangeBasePolicy,
    /// canSendMLSReinitProposal.
    ReInit,
}

/// An authorised change: its actions and the resulting state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedChange {
    pub actions: Vec<Action>,
    /// The room state after the change (the new hub state).
    pub state: RoomState,
    /// Clients per user after the change (users with 0 are omitted).
    pub clients: BTreeMap<UserUri, u32>,
}

impl AuthorizedChange {
    /// Users removed from the list or banned by this change (the hub mutes their
    /// remaining clients until the commit, P§5.3).
    pub fn removed_or_banned_users(&self) -> Vec<UserUri> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::RemoveParticipant { user, .. }
                | Action::Leave { user, .. }
                | Action::CompleteExit { user, .. }
                | Action::Ban { user, .. } => Some(user.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Composition rules for one commit (P§7.5, P§7.6, RP§3, RP§4): pass every part of the
/// commit (the by-value part and each referenced proposal bundle).
pub fn check_commit_composition(parts: &[&ProposedChange]) -> Result<(), PolicyViolation> {
    let mut all = ProposedChange::default();
    for p in parts {
        all.merge(p);
    }
    check_composition(&all)
}

fn check_composition(c: &ProposedChange) -> Result<(), PolicyViolation> {
    if let Some(user) = c.list.user_touched_twice() {
        return Err(PolicyViolation::UserTouchedTwice { user: user.clone() });
    }
    if c.metadata.len() > 1 {
        return Err(PolicyViolation::MultipleMetadataUpdates);
    }
    for (n, id) in [
        (c.roles.len(), ROLES_LIST),
        (c.preauth.len(), PREAUTH_LIST),
        (c.base_policy.len(), BASE_ROOM_POLICY),
    ] {
        if n > 1 {
            return Err(PolicyViolation::DuplicatePolicyUpdate {
                component: component_name(id),
            });
        }
    }
    if !c.roles.is_empty() && !c.list.is_empty() {
        return Err(PolicyViolation::RolesChangedWithParticipantList);
    }
    if !c.preauth.is_empty() && !c.list.only_removals() {
        return Err(PolicyViolation::PreauthChangedWithParticipantList);
    }
    Ok(())
}

/// Decide whether `actor` may make `change`, against the hub `state` and the
/// `membership` before the change. See the module docs for the order of checks.
pub fn authorize(
    state: &RoomState,
    membership: &Membership,
    actor: &Actor,
    change: &ProposedChange,
) -> Result<AuthorizedChange, PolicyViolation> {
    Engine {
        state,
        membership,
        actor,
        change,
        actions: Vec::new(),
    }
    .run()
}

struct Engine<'a> {
    state: &'a RoomState,
    membership: &'a Membership,
    actor: &'a Actor,
    change: &'a ProposedChange,
    actions: Vec<Action>,
}

impl Engine<'_> {
    /// The actor's role index: listed role for users; first preauth match for
    /// external senders (RP§4); 0 otherwise. `None` for a member not listed.
    fn actor_role_index(&self) -> Option<u32> {
        match self.actor {
            Actor::Member { user, .. } => self.state.participant(user).map(|p| p.role),
            Actor::ExternalJoiner { user, .. } => Some(self.state.role_of(user)),
            Actor::ExternalSender { claims, .. } => Some(
                self.state
                    .preauth
                    .first_match(claims)
                    .filter(|r| self.state.roles.get(*r).is_some())
                    .unwrap_or(NO_ROLE),
            ),
        }
    }

    fn actor_role(&self) -> Result<Option<&Role>, PolicyViolation> {
        match (self.actor, self.actor_role_index()) {
            (Actor::Member { user, .. }, None) => {
                Err(PolicyViolation::ActorNotParticipant { user: user.clone() })
            }
            (_, Some(i)) => Ok(self.state.roles.get(i)),
            (_, None) => Ok(None),
        }
    }

    fn require(&self, capability: Capability, action: &'static str) -> Result<(), PolicyViolation> {
        if self.actor_role()?.is_some_and(|r| r.has(capability)) {
            Ok(())
        } else {
            Err(PolicyViolation::MissingCapability {
                actor: self.actor.id(),
                capability,
                action,
            })
        }
    }

    fn require_arc(&self, from: u32, to: u32) -> Result<(), PolicyViolation> {
        if self
            .actor_role()?
            .is_some_and(|r| r.allows_change(from, to))
        {
            Ok(())
        } else {
            Err(PolicyViolation::RoleChangeNotAuthorized {
                actor: self.actor.id(),
                from,
                to,
            })
        }
    }

    fn is_actor(&self, user: &UserUri) -> bool {
        self.actor.user() == Some(user)
    }

    fn joiner_scope(&self) -> Result<(), PolicyViolation> {
        match self.actor {
            Actor::ExternalJoiner { user, .. } => {
                Err(PolicyViolation::ExternalJoinerScope { user: user.clone() })
            }
            _ => Ok(()),
        }
    }

    fn banned_target(&self, role: u32) -> bool {
        role == BANNED_ROLE && self.state.roles.has_banned_role()
    }

    fn run(mut self) -> Result<AuthorizedChange, PolicyViolation> {
        let (state, change) = (self.state, self.change);
        // 1. coherence
        if change.is_external_join() != matches!(self.actor, Actor::ExternalJoiner { .. }) {
            return Err(PolicyViolation::ExternalJoinMismatch);
        }
        // 2. composition and fixed membership
        check_composition(change)?;
        let fixed = state.base_policy.fixed_membership
            || change
                .base_policy
                .last()
                .is_some_and(|b| b.fixed_membership);
        if fixed {
            if let Some(user) = change
                .list
                .removed
                .iter()
                .chain(change.list.added.iter().map(|(u, _)| u))
                .next()
            {
                return Err(PolicyViolation::FixedMembership { user: user.clone() });
            }
        }
        // 3. the list change against the state
        change
            .list
            .check_against(&state.participants)
            .map_err(PolicyViolation::from_list_error)?;
        for (user, role) in change
            .list
            .role_changes
            .iter()
            .chain(change.list.added.iter())
        {
            // x-exiting-state: the marker is no defined role, but a role change to it
            // is judged in list_actions (super::exiting).
            let marker =
                *role == EXITING_ROLE && change.list.role_changes.iter().any(|(u, _)| u == user);
            if state.roles.get(*role).is_none() && !marker {
                return Err(PolicyViolation::UndefinedRole { role: *role });
            }
        }
        for (user, &n) in &change.client_removes {
            let present = self.membership.count(user);
            if n > present {
                return Err(PolicyViolation::ClientCountUnderflow {
                    user: user.clone(),
                    removed: n,
                    present,
                });
            }
        }
        // 4. classify and authorise
        self.list_actions()?;
        self.client_actions()?;
        self.component_actions()?;
        // 5. the resulting state
        let next = state.apply(change)?;
        if change.policy_changed() {
            next.validate()?;
        }
        let clients = self.clients_after();
        self.check_consistency(&next, &clients)?;
        self.check_limits(&next, &clients)?;
        self.check_role_constraints(&next, &clients)?;
        Ok(AuthorizedChange {
            actions: self.actions,
            state: next,
            clients: clients.into_iter().filter(|(_, n)| *n > 0).collect(),
        })
    }

    fn list_actions(&mut self) -> Result<(), PolicyViolation> {
        let (state, change) = (self.state, self.change);
        for (user, to) in &change.list.role_changes {
            let (user, to) = (user.clone(), *to);
            let from = state.role_of(&user);
            self.joiner_scope()?;
            if self.is_actor(&user) && to == EXITING_ROLE {
                // x-exiting-state: from any role, no capability (super::exiting).
                self.actions.push(Action::EnterExiting { user, from });
            } else if self.is_actor(&user) {
                self.require(Capability::ChangeOwnRole, "change its own role")?;
                let preauthorized = state.preauth.first_nonzero_match(self.actor.claims());
                if preauthorized != Some(to) {
                    return Err(PolicyViolation::OwnRoleNotPreauthorized {
                        user,
                        requested: to,
                        preauthorized,
                    });
                }
                self.actions.push(Action::ChangeOwnRole { user, from, to });
            } else if to == EXITING_ROLE {
                // x-exiting-state: marking someone else starts removing it, so it needs
                // what the removal needs (super::exiting).
                self.require(
                    Capability::RemoveParticipant,
                    "mark another participant exiting",
                )?;
                self.require_arc(from, NO_ROLE)?;
                self.actions.push(Action::MarkExiting { user, from });
            } else if self.banned_target(to) {
                self.require(Capability::Ban, "ban a participant")?;
                // x-exiting-state: a ban may complete an exit; the marker has no arcs.
                if from != EXITING_ROLE {
                    self.require_arc(from, to)?;
                }
                let clients = change.removes(&user);
                self.actions.push(Action::Ban {
                    user,
                    from,
                    clients,
                });
            } else if self.banned_target(from) {
                self.require(Capability::UnBan, "unban a participant")?;
                self.require_arc(from, to)?;
                self.actions.push(Action::Unban { user, to });
            } else {
                self.require(
                    Capability::ChangeUserRole,
                    "change another participant's role",
                )?;
                self.require_arc(from, to)?;
                self.actions.push(Action::ChangeRole { user, from, to });
            }
        }
        for user in &change.list.removed {
            let user = user.clone();
            let from_role = state.role_of(&user);
            let clients = change.removes(&user);
            self.joiner_scope()?;
            if from_role == EXITING_ROLE {
                // x-exiting-state: completing an exit needs no capability (super::exiting).
                if self.is_actor(&user) && change.kind == ChangeKind::Commit {
                    return Err(PolicyViolation::LeaverCannotCommit { user });
                }
                self.actions.push(Action::CompleteExit { user, clients });
            } else if self.is_actor(&user) {
                self.require(Capability::RemoveSelf, "leave the room")?;
                self.require_arc(from_role, NO_ROLE)?;
                if change.kind == ChangeKind::Commit {
                    return Err(PolicyViolation::LeaverCannotCommit { user });
                }
                self.actions.push(Action::Leave {
                    user,
                    from_role,
                    clients,
                });
            } else {
                self.require(Capability::RemoveParticipant, "remove another participant")?;
                self.require_arc(from_role, NO_ROLE)?;
                self.actions.push(Action::RemoveParticipant {
                    user,
                    from_role,
                    clients,
                });
            }
        }
        for (user, role) in &change.list.added {
            let (user, role) = (user.clone(), *role);
            let clients = change.adds(&user);
            if self.is_actor(&user) {
                let via = self.join_path(&user, role)?;
                self.actions.push(Action::JoinSelf {
                    user,
                    role,
                    via,
                    clients,
                });
            } else {
                self.joiner_scope()?;
                self.require(Capability::AddParticipant, "add another user")?;
                self.require_arc(NO_ROLE, role)?;
                self.actions.push(Action::AddParticipant {
                    user,
                    role,
                    clients,
                });
            }
        }
        Ok(())
    }

    /// RP§8.1.1: how an unlisted user may add itself with `role`.
    fn join_path(&self, user: &UserUri, role: u32) -> Result<JoinPath, PolicyViolation> {
        let Actor::ExternalJoiner {
            claims,
            join_code_role,
            ..
        } = self.actor
        else {
            // A member whose user is not listed has no role (its user is this one).
            return Err(PolicyViolation::ActorNotParticipant { user: user.clone() });
        };
        let roles = &self.state.roles;
        let role0 = roles.get(NO_ROLE);
        if role0.is_some_and(|r| r.has(Capability::OpenJoin) && r.allows_change(NO_ROLE, role)) {
            return Ok(JoinPath::OpenJoin);
        }
        if self.state.preauth.first_match(claims) == Some(role)
            && roles
                .get(role)
                .is_some_and(|r| r.has(Capability::JoinIfPreauthorized))
        {
            return Ok(JoinPath::Preauthorized);
        }
        if *join_code_role == Some(role) && role0.is_some_and(|r| r.has(Capability::UseJoinCode)) {
            return Ok(JoinPath::JoinCode);
        }
        Err(PolicyViolation::JoinNotAuthorized {
            user: user.clone(),
            role,
        })
    }

    fn client_actions(&mut self) -> Result<(), PolicyViolation> {
        let (state, change) = (self.state, self.change);
        let added_now: BTreeSet<&UserUri> = change.list.added.iter().map(|(u, _)| u).collect();
        for (user, &count) in &change.client_adds {
            if count == 0 || added_now.contains(user) {
                continue; // covered by AddParticipant / JoinSelf
            }
            let user = user.clone();
            if !state.is_participant(&user) {
                return Err(PolicyViolation::ClientsOfUnlistedUser { user });
            }
            if self.is_actor(&user) {
                self.require(Capability::AddOwnClient, "add its own client")?;
                self.actions.push(Action::AddOwnClients { user, count });
            } else if self.membership.pending_added.contains(&user) {
                self.joiner_scope()?;
                self.require(
                    Capability::AddParticipant,
                    "add clients of a user being added",
                )?;
                self.require_arc(NO_ROLE, state.role_of(&user))?;
                self.actions
                    .push(Action::AddClientsOfAddedUser { user, count });
            } else {
                return Err(PolicyViolation::AddClientsOfListedUser {
                    actor: self.actor.id(),
                    user,
                });
            }
        }
        let removed_now: BTreeSet<&UserUri> = change.list.removed.iter().collect();
        let banned_now: BTreeSet<&UserUri> = change
            .list
            .role_changes
            .iter()
            .filter(|(_, to)| self.banned_target(*to))
            .map(|(u, _)| u)
            .collect();
        for (user, &count) in &change.client_removes {
            if count == 0 {
                continue;
            }
            let role = state.role_of(user);
            let forbids = state.roles.get(role).is_none_or(Role::forbids_clients);
            if role == NO_ROLE || forbids {
                self.actions.push(Action::RemoveClientsOfNonParticipant {
                    user: user.clone(),
                    count,
                });
            } else if removed_now.contains(user) || banned_now.contains(user) {
                // part of RemoveParticipant / Leave / Ban
            } else if self.is_actor(user) {
                self.require(Capability::RemoveOwnClient, "remove its own client")?;
                self.actions.push(Action::RemoveOwnClients {
                    user: user.clone(),
                    count,
                });
            } else {
                self.joiner_scope()?;
                self.require(
                    Capability::Kick,
                    "remove another participant's clients (kick)",
                )?;
                self.actions.push(Action::Kick {
                    user: user.clone(),
                    count,
                });
            }
        }
        Ok(())
    }

    fn component_actions(&mut self) -> Result<(), PolicyViolation> {
        let change = self.change;
        if let Some(m) = change.metadata.first() {
            let fields = self.state.metadata.changed_fields(m);
            if !fields.is_empty() {
                self.joiner_scope()?;
            }
            for f in &fields {
                let cap = match f {
                    MetadataField::RoomUri => return Err(PolicyViolation::RoomUriChanged),
                    MetadataField::Name => Capability::ChangeRoomName,
                    MetadataField::Descriptions => Capability::ChangeRoomDescription,
                    MetadataField::Avatar => Capability::ChangeRoomAvatar,
                    MetadataField::Subject => Capability::ChangeRoomSubject,
                    MetadataField::Mood => Capability::ChangeRoomMood,
                };
                self.require(cap, "change the room metadata")?;
            }
            if !fields.is_empty() {
                self.actions.push(Action::ChangeMetadata { fields });
            }
        }
        let parts: [(bool, Capability, &'static str, Action); 4] = [
            (
                !change.roles.is_empty(),
                Capability::ChangeRoleDefinitions,
                "change the role definitions",
                Action::ChangeRoles,
            ),
            (
                !change.preauth.is_empty(),
                Capability::ChangePreauthorizedUserList,
                "change the preauthorized user list",
                Action::ChangePreauth,
            ),
            (
                !change.base_policy.is_empty(),
                Capability::ChangeRoomMembershipStyle,
                "change the base room policy",
                Action::ChangeBasePolicy,
            ),
            (
                change.reinit,
                Capability::SendMlsReinitProposal,
                "send an MLS ReInit proposal",
                Action::ReInit,
            ),
        ];
        for (present, cap, what, action) in parts {
            if present {
                self.joiner_scope()?;
                self.require(cap, what)?;
                self.actions.push(action);
            }
        }
        Ok(())
    }

    fn clients_after(&self) -> BTreeMap<UserUri, u32> {
        let mut out = self.membership.clients.clone();
        for (u, n) in &self.change.client_adds {
            let e = out.entry(u.clone()).or_default();
            *e = e.saturating_add(*n);
        }
        for (u, n) in &self.change.client_removes {
            let e = out.entry(u.clone()).or_default();
            *e = e.saturating_sub(*n);
        }
        out
    }

    /// Users whose consistency is checked: those the change touches, or everyone
    /// when a policy component changes (choice, see module docs).
    fn checked_users(
        &self,
        next: &RoomState,
        clients: &BTreeMap<UserUri, u32>,
    ) -> BTreeSet<UserUri> {
        let c = self.change;
        if c.policy_changed() {
            return clients
                .keys()
                .cloned()
                .chain(next.participants.iter().map(|p| p.user.clone()))
                .collect();
        }
        c.list
            .mentions()
            .cloned()
            .chain(c.client_adds.keys().cloned())
            .chain(c.client_removes.keys().cloned())
            .collect()
    }

    /// Participant list ↔ membership (P§1, P§5.3, RP§8.1); RP§5 multi_device.
    fn check_consistency(
        &self,
        next: &RoomState,
        clients: &BTreeMap<UserUri, u32>,
    ) -> Result<(), PolicyViolation> {
        let removed: BTreeSet<&UserUri> = self.change.list.removed.iter().collect();
        for user in self.checked_users(next, clients) {
            let n = clients.get(&user).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            if removed.contains(&user) {
                return Err(PolicyViolation::RemovedUserKeepsClients { user, remaining: n });
            }
            if !next.is_participant(&user) {
                return Err(PolicyViolation::ClientsOfUnlistedUser { user });
            }
            if next.is_banned(&user) {
                return Err(PolicyViolation::BannedUserHasClients { user, clients: n });
            }
            if !next.base_policy.multi_device && n > 1 {
                return Err(PolicyViolation::MultiDeviceForbidden { user, clients: n });
            }
        }
        Ok(())
    }

    /// RP§5 max_clients and max_users: violated only if the change makes the count
    /// grow past the limit, or changes the base policy.
    fn check_limits(
        &self,
        next: &RoomState,
        clients: &BTreeMap<UserUri, u32>,
    ) -> Result<(), PolicyViolation> {
        let strict = !self.change.base_policy.is_empty();
        let before = self.membership.total();
        let after: u64 = clients.values().map(|&n| u64::from(n)).sum();
        if let Some(max) = next.base_policy.max_clients {
            if after > u64::from(max) && (strict || after > before) {
                return Err(PolicyViolation::MaxClients {
                    max,
                    clients: after,
                });
            }
        }
        if let Some(max) = next.base_policy.max_users {
            let (b, a) = (self.state.non_banned_count(), next.non_banned_count());
            if a > max as usize && (strict || a > b) {
                return Err(PolicyViolation::MaxUsers { max, users: a });
            }
        }
        Ok(())
    }

    /// RP§3 role constraints: a bound is violated if the change moves the count
    /// past it (or, when the roles change, if the new state does not meet it).
    fn check_role_constraints(
        &self,
        next: &RoomState,
        clients: &BTreeMap<UserUri, u32>,
    ) -> Result<(), PolicyViolation> {
        let strict = !self.change.roles.is_empty();
        let count = |s: &RoomState, cl: &dyn Fn(&UserUri) -> u32, role: u32| -> (usize, usize) {
            let members = s.participants.iter().filter(|p| p.role == role);
            let total = members.clone().count();
            let active = members.filter(|p| cl(&p.user) > 0).count();
            (total, active)
        };
        let before_clients = |u: &UserUri| self.membership.count(u);
        let after_clients = |u: &UserUri| clients.get(u).copied().unwrap_or(0);
        for role in &next.roles.roles {
            let i = role.role_index;
            let (nb, ab) = count(self.state, &before_clients, i);
            let (na, aa) = count(next, &after_clients, i);
            let min = role.minimum_participants_constraint;
            if na < min as usize && (strict || na < nb) {
                return Err(PolicyViolation::MinParticipants {
                    role: i,
                    min,
                    count: na,
                });
            }
            if let Some(max) = role.maximum_participants_constraint {
                if na > max as usize && (strict || na > nb) {
                    return Err(PolicyViolation::MaxParticipants {
                        role: i,
                        max,
                        count: na,
                    });
                }
            }
            let min = role.minimum_active_participants_constraint;
            if aa < min as usize && (strict || aa < ab) {
                return Err(PolicyViolation::MinActiveParticipants {
                    role: i,
                    min,
                    count: aa,
                });
            }
            if let Some(max) = role.maximum_active_participants_constraint {
                if aa > max as usize && (strict || aa > ab) {
                    return Err(PolicyViolation::MaxActiveParticipants {
                        role: i,
                        max,
                        count: aa,
                    });
                }
            }
        }
        Ok(())
    }
}
