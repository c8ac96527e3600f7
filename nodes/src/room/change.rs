//! The vocabulary of a room change: who acts ([`Actor`]) and what it proposes
//! ([`ProposedChange`]) — the input of the authorisation engine ([`super::policy`]), of
//! the state transition ([`super::state::RoomState::apply`]) and of the exiting rules
//! ([`super::exiting`]). It depends on none of them.

use super::codec::{
    component_name, ComponentError, ComponentId, BASE_ROOM_POLICY, PARTICIPANT_LIST, PREAUTH_LIST,
    ROLES_LIST, ROOM_METADATA,
};
use super::components::{BaseRoomPolicy, ParticipantListUpdate, RoomMetaData};
use super::participants::{ListChange, ListUpdateError, Participant};
use super::roles::{Claim, PreAuthData, RoleData};
use crate::ids::{ClientUri, Domain, UserUri};
use std::collections::BTreeMap;
use std::fmt;

/// Who is acting, as the hub identifies it (P§5.3, RP§8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A member client of `user` (the proposal sender or the committer). `claims`
    /// are its credential claims (used only for canChangeOwnRole, RP§8.1.3).
    Member { user: UserUri, claims: Vec<Claim> },
    /// An MLS external sender (P§7.4): the hub or a follower. Its role comes from
    /// the first preauth match of `claims` (RP§4), else role 0.
    ExternalSender { domain: Domain, claims: Vec<Claim> },
    /// A client of `user` joining by external commit (P§5.6, RP§8.1.1).
    /// `join_code_role` is the target role of a join code the hub has validated.
    ExternalJoiner {
        user: UserUri,
        claims: Vec<Claim>,
        join_code_role: Option<u32>,
    },
}

impl Actor {
    /// A member client of `user`, with the claims of `Claim::for_user`.
    pub fn member(user: &UserUri) -> Actor {
        Actor::Member {
            user: user.clone(),
            claims: Claim::for_user(user),
        }
    }
    /// A server acting as external sender, with the claims of `Claim::for_server`.
    pub fn server(domain: &Domain) -> Actor {
        Actor::ExternalSender {
            domain: domain.clone(),
            claims: Claim::for_server(domain),
        }
    }
    /// A client of `user` joining externally, without a join code.
    pub fn joiner(user: &UserUri) -> Actor {
        Actor::ExternalJoiner {
            user: user.clone(),
            claims: Claim::for_user(user),
            join_code_role: None,
        }
    }
    /// The user acting, if the actor is a user's client.
    pub fn user(&self) -> Option<&UserUri> {
        match self {
            Actor::Member { user, .. } | Actor::ExternalJoiner { user, .. } => Some(user),
            Actor::ExternalSender { .. } => None,
        }
    }
    pub fn claims(&self) -> &[Claim] {
        match self {
            Actor::Member { claims, .. }
            | Actor::ExternalSender { claims, .. }
            | Actor::ExternalJoiner { claims, .. } => claims,
        }
    }
    /// The actor's identity for error messages.
    pub fn id(&self) -> ActorId {
        match self {
            Actor::Member { user, .. } | Actor::ExternalJoiner { user, .. } => {
                ActorId::User(user.clone())
            }
            Actor::ExternalSender { domain, .. } => ActorId::Server(domain.clone()),
        }
    }
}

/// The identity of an actor: a user or a server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActorId {
    User(UserUri),
    Server(Domain),
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorId::User(u) => write!(f, "user {u}"),
            ActorId::Server(d) => write!(f, "server {d}"),
        }
    }
}

/// How the change reaches the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// A proposal bundle (`proposalOrCommit` + `moreProposals`, P§5.3), accepted or
    /// rejected as one unit.
    #[default]
    Proposals,
    /// The by-value part of a member's commit.
    Commit,
    /// An external commit (P§5.6): the actor must be an [`Actor::ExternalJoiner`].
    ExternalCommit,
}

/// Everything one proposal bundle or commit does at room level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposedChange {
    pub kind: ChangeKind,
    /// Participant-list changes (P§7.5), index-free.
    pub list: ListChange,
    /// MLS Adds (or the external join) per user.
    pub client_adds: BTreeMap<UserUri, u32>,
    /// MLS Removes / SelfRemoves per user.
    pub client_removes: BTreeMap<UserUri, u32>,
    /// Room metadata updates (P§7.6: at most one per commit).
    pub metadata: Vec<RoomMetaData>,
    /// roles_list updates (RP§3).
    pub roles: Vec<RoleData>,
    /// preauth_list updates (RP§4).
    pub preauth: Vec<PreAuthData>,
    /// base_room_policy updates (RP§5).
    pub base_policy: Vec<BaseRoomPolicy>,
    /// An MLS ReInit proposal (RP§8.6).
    pub reinit: bool,
}

/// An AppDataUpdate operation (X§4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentOp {
    Update(Vec<u8>),
    Remove,
}

/// Why AppDataUpdate payloads could not be turned into a [`ProposedChange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("participant_list update: {0}")]
    List(#[from] ListUpdateError),
}

impl ProposedChange {
    /// An empty proposal bundle.
    pub fn proposals() -> Self {
        ProposedChange::default()
    }
    /// An empty member commit.
    pub fn commit() -> Self {
        ProposedChange {
            kind: ChangeKind::Commit,
            ..Default::default()
        }
    }
    /// An empty external commit.
    pub fn external_commit() -> Self {
        ProposedChange {
            kind: ChangeKind::ExternalCommit,
            ..Default::default()
        }
    }
    /// Whether this is an external join (external commit).
    pub fn is_external_join(&self) -> bool {
        self.kind == ChangeKind::ExternalCommit
    }
    pub fn add_user(mut self, user: &UserUri, role: u32) -> Self {
        self.list.added.push((user.clone(), role));
        self
    }
    pub fn remove_user(mut self, user: &UserUri) -> Self {
        self.list.removed.push(user.clone());
        self
    }
    pub fn set_role(mut self, user: &UserUri, role: u32) -> Self {
        self.list.role_changes.push((user.clone(), role));
        self
    }
    pub fn add_clients(mut self, user: &UserUri, n: u32) -> Self {
        *self.client_adds.entry(user.clone()).or_default() += n;
        self
    }
    pub fn remove_clients(mut self, user: &UserUri, n: u32) -> Self {
        *self.client_removes.entry(user.clone()).or_default() += n;
        self
    }
    pub fn add_client(self, client: &ClientUri) -> Self {
        self.add_clients(&client.user(), 1)
    }
    pub fn remove_client(self, client: &ClientUri) -> Self {
        self.remove_clients(&client.user(), 1)
    }
    pub fn with_metadata(mut self, m: RoomMetaData) -> Self {
        self.metadata.push(m);
        self
    }
    pub fn with_roles(mut self, r: RoleData) -> Self {
        self.roles.push(r);
        self
    }
    pub fn with_preauth(mut self, p: PreAuthData) -> Self {
        self.preauth.push(p);
        self
    }
    pub fn with_base_policy(mut self, b: BaseRoomPolicy) -> Self {
        self.base_policy.push(b);
        self
    }
    pub fn with_reinit(mut self) -> Self {
        self.reinit = true;
        self
    }

    /// Add the room-level effect of AppDataUpdate proposals, in commit order
    /// (X§4.7). Participant-list updates are resolved one after another, each
    /// against the list left by the previous one. Removing a room component, or
    /// updating a component this module does not handle, is an error. `participants`: the
    /// room's participant list before the commit ([`super::RoomState::participants`]).
    pub fn with_app_data_updates(
        mut self,
        participants: &[Participant],
        updates: &[(ComponentId, ComponentOp)],
    ) -> Result<Self, ChangeError> {
        let mut list = participants.to_vec();
        for (id, op) in updates {
            let bytes = match op {
                ComponentOp::Remove => {
                    return Err(match *id {
                        PARTICIPANT_LIST | ROOM_METADATA | ROLES_LIST | PREAUTH_LIST
                        | BASE_ROOM_POLICY => ComponentError::RemoveNotAllowed {
                            component: component_name(*id),
                        },
                        other => ComponentError::Unsupported(other),
                    }
                    .into())
                }
                ComponentOp::Update(b) => b.as_slice(),
            };
            match *id {
                PARTICIPANT_LIST => {
                    let u = ParticipantListUpdate::decode(bytes)?;
                    let c = ListChange::resolve(&list, &u)?;
                    list = c.apply(&list)?;
                    self.list.extend(c);
                }
                ROOM_METADATA => self.metadata.push(RoomMetaData::decode(bytes)?),
                ROLES_LIST => self.roles.push(RoleData::decode(bytes)?),
                PREAUTH_LIST => self.preauth.push(PreAuthData::decode(bytes)?),
                BASE_ROOM_POLICY => self.base_policy.push(BaseRoomPolicy::decode(bytes)?),
                other => return Err(ComponentError::Unsupported(other).into()),
            }
        }
        Ok(self)
    }

    /// Append another part of the same commit (e.g. a referenced proposal bundle).
    pub fn merge(&mut self, other: &ProposedChange) {
        self.list.extend(other.list.clone());
        for (u, n) in &other.client_adds {
            *self.client_adds.entry(u.clone()).or_default() += n;
        }
        for (u, n) in &other.client_removes {
            *self.client_removes.entry(u.clone()).or_default() += n;
        }
        self.metadata.extend(other.metadata.iter().cloned());
        self.roles.extend(other.roles.iter().cloned());
        self.preauth.extend(other.preauth.iter().cloned());
        self.base_policy.extend(other.base_policy.iter().cloned());
        self.reinit |= other.reinit;
    }

    pub(super) fn adds(&self, u: &UserUri) -> u32 {
        self.client_adds.get(u).copied().unwrap_or(0)
    }
    pub(super) fn removes(&self, u: &UserUri) -> u32 {
        self.client_removes.get(u).copied().unwrap_or(0)
    }
    pub(super) fn policy_changed(&self) -> bool {
        !self.roles.is_empty() || !self.base_policy.is_empty() || !self.preauth.is_empty()
    }
}
