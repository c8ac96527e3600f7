//! The rules a room change can break ([`PolicyViolation`]), named by the authorisation
//! engine ([`super::policy`]) and by the state's own consistency checks
//! ([`super::state::RoomState::validate`]).

use super::capability::Capability;
use super::change::ActorId;
use super::participants::ListUpdateError;
use crate::ids::UserUri;

/// The rule a change breaks. Each message names the draft section it comes from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    // ---- actor and capabilities
    #[error("{actor} lacks {capability} needed to {action} (RP§8)")]
    MissingCapability {
        actor: ActorId,
        capability: Capability,
        action: &'static str,
    },
    #[error("{actor}'s role has no authorized_role_changes entry {from} -> {to} (RP§3, RP§8.1)")]
    RoleChangeNotAuthorized { actor: ActorId, from: u32, to: u32 },
    #[error("the member's user {user} is not in the participant list, so it holds no role (RP§8, P§7.5)")]
    ActorNotParticipant { user: UserUri },
    #[error("an external joiner may only add itself and add or remove its own clients (choice; RP§8.1.1)")]
    ExternalJoinerScope { user: UserUri },
    #[error("an external commit must come from an external joiner and vice versa (P§5.6)")]
    ExternalJoinMismatch,
    #[error("{user} may not join as role {role}: no canOpenJoin (0 -> {role}) on role 0, no preauth match with canJoinIfPreauthorized, no valid join code with canUseJoinCode (RP§8.1.1)")]
    JoinNotAuthorized { user: UserUri, role: u32 },
    #[error("{user} may change its own role only to its first non-zero preauth match ({preauthorized:?}), not {requested} (RP§8.1.3 canChangeOwnRole)")]
    OwnRoleNotPreauthorized {
        user: UserUri,
        requested: u32,
        preauthorized: Option<u32>,
    },
    #[error(
        "{user} cannot commit its own removal from the room; it must propose it (RP§8.1.2, P§3.5)"
    )]
    LeaverCannotCommit { user: UserUri },
    #[error("{actor} may not add clients of {user}, who is already listed: only the user itself may (canAddOwnClient) (choice for the gap in RP§8.1.1)")]
    AddClientsOfListedUser { actor: ActorId, user: UserUri },
    // ---- participant list
    #[error("{user} is already in the participant list (RP§8.1.1 canAddParticipant)")]
    AlreadyParticipant { user: UserUri },
    #[error("{user} is not in the participant list")]
    NotParticipant { user: UserUri },
    #[error("{user} would be listed with role 0, which means 'not in the list' (RP§3)")]
    RoleIndexZero { user: UserUri },
    #[error("role {role} is not defined in roles_list (RP§3)")]
    UndefinedRole { role: u32 },
    #[error("invalid participant-list update: {0}")]
    InvalidListUpdate(ListUpdateError),
    // ---- composition (P§7.5, P§7.6, RP§3, RP§4)
    #[error(
        "{user} is touched more than once by the participant-list changes of one commit (P§7.5)"
    )]
    UserTouchedTwice { user: UserUri },
    #[error("only a single room metadata update is valid per commit (P§7.6)")]
    MultipleMetadataUpdates,
    #[error("more than one update of {component} in one commit (choice)")]
    DuplicatePolicyUpdate { component: &'static str },
    #[error(
        "a roles_list update is not valid in the same commit as a participant-list change (RP§3)"
    )]
    RolesChangedWithParticipantList,
    #[error("a preauth_list update is valid with participant-list removals only (RP§4)")]
    PreauthChangedWithParticipantList,
    // ---- metadata
    #[error(
        "room_uri in the room metadata cannot change (choice: no capability covers it, RP§8.2)"
    )]
    RoomUriChanged,
    // ---- participant list <-> membership (P§1, P§5.3, RP§8.1)
    #[error("{user} would have clients in the MLS group but is not in the participant list (P§5.3, RP§8.1)")]
    ClientsOfUnlistedUser { user: UserUri },
    #[error("{user} is removed from the participant list but {remaining} of its clients stay in the group (RP§8.1.2, P§5.3)")]
    RemovedUserKeepsClients { user: UserUri, remaining: u32 },
    #[error("{user} is banned but would keep {clients} clients (RP§8.1.3 canBan)")]
    BannedUserHasClients { user: UserUri, clients: u32 },
    #[error("{removed} clients of {user} removed but only {present} are members")]
    ClientCountUnderflow {
        user: UserUri,
        removed: u32,
        present: u32,
    },
    // ---- base policy (RP§5)
    #[error("{user} would have {clients} clients but multi_device is false (RP§5)")]
    MultiDeviceForbidden { user: UserUri, clients: u32 },
    #[error("the group would have {clients} clients, over max_clients {max} (RP§5)")]
    MaxClients { max: u32, clients: u64 },
    #[error("the list would have {users} non-banned users, over max_users {max} (RP§5)")]
    MaxUsers { max: u32, users: usize },
    #[error("the room has fixed membership: {user} cannot be added or removed (RP§5)")]
    FixedMembership { user: UserUri },
    // ---- role constraints (RP§3, RP§8)
    #[error("role {role} would have {count} participants, under its minimum {min} (RP§3)")]
    MinParticipants { role: u32, min: u32, count: usize },
    #[error("role {role} would have {count} participants, over its maximum {max} (RP§3)")]
    MaxParticipants { role: u32, max: u32, count: usize },
    #[error("role {role} would have {count} active participants, under its minimum {min} (RP§3)")]
    MinActiveParticipants { role: u32, min: u32, count: usize },
    #[error("role {role} would have {count} active participants, over its maximum {max} (RP§3)")]
    MaxActiveParticipants { role: u32, max: u32, count: usize },
    // ---- role definitions and preauth validity
    #[error("role index {role} is defined twice (RP§3)")]
    DuplicateRoleIndex { role: u32 },
    #[error("role {role} has a maximum below its minimum (RP§3)")]
    InconsistentConstraints { role: u32 },
    #[error("canOpenJoin MUST NOT appear in non-zero role {role} (RP§8.1.1)")]
    OpenJoinOnNonZeroRole { role: u32 },
    #[error("fixed-membership room: role {role} must not hold canAddParticipant (RP§5)")]
    FixedMembershipAllowsAdd { role: u32 },
    #[error("a preauth entry targets undefined role {role} (RP§4)")]
    PreauthTargetUndefined { role: u32 },
}

impl PolicyViolation {
    pub(crate) fn from_list_error(e: ListUpdateError) -> PolicyViolation {
        match e {
            ListUpdateError::UserTouchedTwice { user } => {
                PolicyViolation::UserTouchedTwice { user }
            }
            ListUpdateError::AlreadyListed { user } => PolicyViolation::AlreadyParticipant { user },
            ListUpdateError::NotListed { user } => PolicyViolation::NotParticipant { user },
            ListUpdateError::RoleIndexZero { user } => PolicyViolation::RoleIndexZero { user },
            other => PolicyViolation::InvalidListUpdate(other),
        }
    }
}
