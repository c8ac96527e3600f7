//! Room state and room policy as pure logic (no MLS in here).
//!
//! The room state lives in the MLS GroupContext extension `app_data_dictionary`
//! (X§4.6) as components (ids of P§10, RP§10.1): participant list 0x0022 (P§7.5), room
//! metadata 0x0023 (P§7.6), roles 0x0025 (RP§3), preauthorisation 0x0026 (RP§4),
//! base room policy 0x0027 (RP§5). It changes through AppDataUpdate proposals
//! (X§4.7), which the hub authorises against the *hub state* (P§7.1, RP§8).
//!
//! * [`codec`] — component ids, limits, `opaque<V>`/bool/UTF8String/Uri codecs, decode errors.
//! * [`capability`] — RP§8 capabilities and their RP§10.2 code points.
//! * [`components`] — participant list, metadata and base-policy wire structures.
//! * [`roles`] — roles and preauthorisation wire structures and lookups.
//! * [`participants`] — typed participant list and the update semantics.
//! * [`presets`] — ready-made role sets (RP Appendix A, plus a DM set).
//! * [`change`] — who acts and what it proposes: [`Actor`], [`ProposedChange`].
//! * [`violation`] — the rules a change can break: [`PolicyViolation`].
//! * [`state`] — [`RoomState`]: dictionary encoding, creation, queries, `apply`.
//! * [`policy`] — the authorisation engine: [`authorize`], [`Action`].
//! * [`exiting`] — the exiting-state rules (x-exiting-state).
//!
//! Imports go one way: `change` and `violation` depend on the wire modules only; `state`
//! on them; `exiting` on `state`; `policy` on all of these. Nothing imports `policy`.
//!
//! # Choices
//!
//! Where the drafts are silent or inconsistent:
//!
//! 1. **Participant-list update semantics** (P§7.5 leaves open whether indices count
//!    before or after the removals, and how several updates in one commit combine):
//!    every index refers to the list before the update; role changes, then all
//!    removals at once, then appends; duplicate indices, a user named twice, and
//!    role 0 are rejected. Several participant-list updates in one commit are allowed
//!    and applied one after the other (X§4.7 hands them to the component in order); no user may be
//!    touched twice across the whole commit (P§7.5).
//! 2. **Users are mimi user URIs**: a participant entry whose `user` is not a
//!    `mimi://<domain>/u/<name>` URI, or a user listed twice, makes the component
//!    undecodable.
//! 3. **Dictionary**: `from_dictionary` requires all five room components and ignores
//!    other components; an AppDataUpdate `remove` of a room component is rejected;
//!    an update of a component this module does not handle is `Unsupported`.
//! 4. **Preauth targets**: `PreAuthRoleEntry.target_role` embeds a whole Role (RP§4);
//!    its `role_index` selects the role in `roles_list`, which is authoritative for
//!    capabilities and constraints. An entry targeting an undefined role is invalid.
//! 5. **Claims** from a BasicCredential (RP§4 "TODO refactor Claims"): claim ids
//!    `user` (user URI) and `domain` for clients; `server` and `domain` for a
//!    server's external-sender credential (see [`roles::Claim`]).
//! 6. **Actor roles**: a member's role is its user's listed role; a member whose user
//!    is not listed holds no role and may only clean up (see 7). An external sender
//!    (hub or follower) takes the first preauth match, else role 0 (RP§4). An
//!    external joiner that is listed uses its role (preauth is not consulted, so a
//!    banned user cannot rejoin); one that is not listed may only join itself.
//! 7. **Cleanup**: removing clients of a user who is not listed, or whose role allows
//!    no clients (max active 0, e.g. banned), needs no capability: it restores
//!    "every member's user is a participant" (P§1) (lost clients, P§5.5; muted users'
//!    own Removes, P§5.3).
//! 8. **Gap in RP§8.1** (no capability covers clients of an already-listed user added
//!    by another user: canAddParticipant covers only a user being added, canUnban
//!    excludes client adds): forbidden — the user re-adds its own clients
//!    (canAddOwnClient, e.g. by external commit). Exception: a user whose list addition was accepted this
//!    epoch but not yet committed ([`Membership::pending_added`], P§5.3 "before or
//!    simultaneously"): its clients may be added by an actor holding
//!    canAddParticipant with (0 → its role).
//! 9. **Ban and unban**: a role change to role 1, when role 1 is the RP "banned" role,
//!    is a ban and needs canBan (canChangeUserRole is not enough); a role change
//!    from it is an unban and needs canUnBan. A role change to 0 is not a role
//!    change but a removal.
//! 10. **Joining** (RP§8.1.1) is tried as canOpenJoin, then preauth
//!     (canJoinIfPreauthorized on the matched role), then join code (canUseJoinCode on
//!     role 0; the hub validates the code and passes its target role). A successful
//!     join also authorises the joining client. An external joiner may only add
//!     itself and add or remove its own clients.
//! 11. **A bundle is one unit**: a proposal bundle (or a commit's by-value part) is
//!     checked with the list ↔ membership consistency of its own result, so a list
//!     removal or ban must carry the Removes of all the user's clients in the same
//!     bundle (the leave flow, P§3.5). The `Membership` passed in must be the hub
//!     view: committed members after the hub-accepted pending proposals.
//! 12. **Constraints are "no worse"**: a role's min/max (active) participants, and
//!     max_clients / max_users, are violated only when the change moves the count
//!     past the bound; after a roles (resp. base policy) update, the new bounds must
//!     hold outright. Consistency (unlisted/removed/banned users with clients,
//!     multi_device) is checked for the users the change touches, and for every user
//!     when a policy component changes.
//! 13. **Fixed membership** (RP§5): no participant is added or removed by anyone; role
//!     changes (including bans) and own-client changes stay possible.
//! 14. **Metadata**: `room_uri` cannot change (no capability covers it). At most one
//!     update per commit of metadata (P§7.6) and, by choice, of each policy component.
//! 15. **Presets**: `policy_enforcer` has minimum participants 0 (the hub is not
//!     listed; it takes the role by preauth) and also holds canKick (P§5.5 lost
//!     clients). See [`presets`] for the reading of Appendix A's typos.
//! 16. **parent_dependant** rooms are encoded but not enforced (needs the parent's
//!     state); `parent_room` is kept as the vector the draft writes.
//! 17. **Leave by commit**: a member that removes its own user from the list in a
//!     commit is rejected (`LeaverCannotCommit`); in a proposal bundle it is a leave.
//! 18. `can_send_message` checks the list and the capability only; activity (has a
//!     client) and muting are the hub's.
//! 19. **Exiting state** (x-exiting-state, an extension): the reserved role index
//!     [`roles::EXITING_ROLE`]; what the policy permits and the hub's `exiting-*`
//!     rules are in [`exiting`].

pub mod app_data;
pub mod capability;
pub mod change;
pub mod codec;
pub mod components;
pub mod exiting;
pub mod hub_only;
pub mod participants;
pub mod policy;
pub mod presets;
pub mod roles;
pub mod state;
pub mod violation;

#[cfg(test)]
mod tests;

pub use app_data::RoomComponents;
pub use capability::Capability;
pub use change::{Actor, ActorId, ChangeError, ChangeKind, ComponentOp, ProposedChange};
pub use codec::{
    ComponentError, ComponentId, BASE_ROOM_POLICY, PARTICIPANT_LIST, PREAUTH_LIST, ROLES_LIST,
    ROOM_METADATA,
};
pub use components::{
    BaseRoomPolicy, MetadataField, ParticipantListData, ParticipantListUpdate, RichDescription,
    RoomMetaData, UserRolePair, UserindexRolePair,
};
pub use hub_only::RoomStateMode;
pub use participants::{apply_update, ListChange, ListUpdateError, Participant};
pub use policy::{
    authorize, check_commit_composition, Action, AuthorizedChange, JoinPath, Membership,
};
pub use presets::RolePreset;
pub use roles::{
    Claim, ClaimId, PreAuthData, PreAuthRoleEntry, Role, RoleData, SingleSourceRoleChangeTargets,
};
pub use state::{NewRoomOptions, RoomState};
pub use violation::PolicyViolation;
