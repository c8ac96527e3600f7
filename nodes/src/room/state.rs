//! [`RoomState`]: the typed room state held in `app_data_dictionary` (P§4.3.1, P§7,
//! RP§3–5), its dictionary encoding, room creation, queries, and unauthorised
//! application of a [`ProposedChange`].

use super::capability::Capability;
use super::change::ProposedChange;
use super::codec::{
    component_name, ComponentError, ComponentId, Uri, BASE_ROOM_POLICY, PARTICIPANT_LIST,
    PREAUTH_LIST, ROLES_LIST, ROOM_METADATA,
};
use super::components::{BaseRoomPolicy, ParticipantListData, RoomMetaData};
use super::participants::{participants_from_wire, participants_to_wire, Participant};
use super::presets::RolePreset;
use super::roles::{
    Claim, PreAuthData, PreAuthRoleEntry, Role, RoleData, BANNED_ROLE, CLAIM_SERVER, NO_ROLE,
};
use super::violation::PolicyViolation;
use crate::ids::{Domain, RoomUri, UserUri};
use std::collections::{BTreeMap, BTreeSet};

/// The room state: everything the hub keeps about a room besides MLS (P§4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// P§7.5, in list order (indices in updates refer to this order).
    pub participants: Vec<Participant>,
    /// P§7.6.
    pub metadata: RoomMetaData,
    /// RP§3.
    pub roles: RoleData,
    /// RP§4.
    pub preauth: PreAuthData,
    /// RP§5.
    pub base_policy: BaseRoomPolicy,
}

/// Options for [`RoomState::new_room`].
#[derive(Debug, Clone, Default)]
pub struct NewRoomOptions {
    /// Room name (P§7.6 room_name).
    pub name: String,
    /// Base policy; `None` = [`BaseRoomPolicy::default`], with `fixed_membership`
    /// set for fixed-membership presets.
    pub base_policy: Option<BaseRoomPolicy>,
    /// If set, the hub's external-sender claims (`Claim::for_server`) are
    /// preauthorised to the preset's `policy_enforcer` role (RP§4).
    pub hub: Option<Domain>,
    /// The creator's role; `None` = the preset's creator role.
    pub creator_role: Option<u32>,
    /// Other initial participants (needed for fixed-membership rooms, RP§5).
    pub others: Vec<(UserUri, u32)>,
    /// Further preauthorisation entries, after the hub's.
    pub extra_preauth: Vec<PreAuthRoleEntry>,
}

/// Invariant: our in-memory components are far below tls_codec's 2^62-byte vector
/// limit, so encoding them cannot fail (an assertion, not input handling).
fn encode_own(r: Result<Vec<u8>, tls_codec::Error>) -> Vec<u8> {
    r.expect("room component encodings are far below the 2^62-byte limit")
}

fn required(
    dict: &BTreeMap<ComponentId, Vec<u8>>,
    id: ComponentId,
) -> Result<&[u8], ComponentError> {
    dict.get(&id)
        .map(Vec::as_slice)
        .ok_or(ComponentError::Missing {
            component: component_name(id),
            id,
        })
}

impl RoomState {
    /// Create the state of a new room (P§3.1): `creator` is the only
    /// participant (plus `options.others`), with the preset's roles.
    pub fn new_room(
        room: &RoomUri,
        creator: &UserUri,
        preset: RolePreset,
        options: NewRoomOptions,
    ) -> Result<RoomState, PolicyViolation> {
        let roles = preset.roles();
        let mut preauth = PreAuthData::default();
        if let Some(hub) = &options.hub {
            let target = roles.get(preset.policy_enforcer_role()).cloned().ok_or(
                PolicyViolation::UndefinedRole {
                    role: preset.policy_enforcer_role(),
                },
            )?;
            preauth.preauthorized_entries.push(PreAuthRoleEntry {
                claimset: vec![Claim::basic(CLAIM_SERVER, hub.as_str().as_bytes())],
                target_role: target,
            });
        }
        preauth.preauthorized_entries.extend(options.extra_preauth);
        let base_policy = options.base_policy.unwrap_or_else(|| BaseRoomPolicy {
            fixed_membership: preset.fixed_membership(),
            ..BaseRoomPolicy::default()
        });
        let mut participants = vec![Participant {
            user: creator.clone(),
            role: options.creator_role.unwrap_or(preset.creator_role()),
        }];
        for (user, role) in options.others {
            if participants.iter().any(|p| p.user == user) {
                return Err(PolicyViolation::AlreadyParticipant { user });
            }
            participants.push(Participant { user, role });
        }
        let state = RoomState {
            participants,
            metadata: RoomMetaData {
                room_uri: Uri::from(room.as_str()),
                room_name: options.name.as_str().into(),
                ..RoomMetaData::default()
            },
            roles,
            preauth,
            base_policy,
        };
        state.validate()?;
        Ok(state)
    }

    /// The room components as `app_data_dictionary` entries (component id → data).
    pub fn to_dictionary(&self) -> BTreeMap<ComponentId, Vec<u8>> {
        let mut d = BTreeMap::new();
        d.insert(
            PARTICIPANT_LIST,
            encode_own(participants_to_wire(&self.participants).encode()),
        );
        d.insert(ROOM_METADATA, encode_own(self.metadata.encode()));
        d.insert(ROLES_LIST, encode_own(self.roles.encode()));
        d.insert(PREAUTH_LIST, encode_own(self.preauth.encode()));
        d.insert(BASE_ROOM_POLICY, encode_own(self.base_policy.encode()));
        d
    }

    /// Read the room components from `app_data_dictionary` entries. All five room
    /// components must be present (choice); other components are ignored.
    pub fn from_dictionary(
        dict: &BTreeMap<ComponentId, Vec<u8>>,
    ) -> Result<RoomState, ComponentError> {
        let list = ParticipantListData::decode(required(dict, PARTICIPANT_LIST)?)?;
        Ok(RoomState {
            participants: participants_from_wire(&list)?,
            metadata: RoomMetaData::decode(required(dict, ROOM_METADATA)?)?,
            roles: RoleData::decode(required(dict, ROLES_LIST)?)?,
            preauth: PreAuthData::decode(required(dict, PREAUTH_LIST)?)?,
            base_policy: BaseRoomPolicy::decode(required(dict, BASE_ROOM_POLICY)?)?,
        })
    }

    /// The participant entry of `user`, if listed.
    pub fn participant(&self, user: &UserUri) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.user == user)
    }

    /// The list index of `user` (P§7.5 user_index), if listed.
    pub fn index_of(&self, user: &UserUri) -> Option<u32> {
        self.participants
            .iter()
            .position(|p| &p.user == user)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// RP§3: the role index of `user`; 0 when not in the participant list.
    pub fn role_of(&self, user: &UserUri) -> u32 {
        self.participant(user).map_or(NO_ROLE, |p| p.role)
    }

    /// The definition of role `index`, if defined.
    pub fn role(&self, index: u32) -> Option<&Role> {
        self.roles.get(index)
    }

    /// Whether `user` is in the participant list (any role, including banned).
    pub fn is_participant(&self, user: &UserUri) -> bool {
        self.participant(user).is_some()
    }

    /// Whether `user` is listed with the RP§8.1.3 banned role.
    pub fn is_banned(&self, user: &UserUri) -> bool {
        self.role_of(user) == BANNED_ROLE && self.roles.has_banned_role()
    }

    /// RP§8: the capabilities of `user`'s role (role 0's for non-participants).
    pub fn capabilities_of(&self, user: &UserUri) -> Vec<Capability> {
        self.role(self.role_of(user))
            .map(Role::capabilities)
            .unwrap_or_default()
    }

    /// Whether `user`'s role holds `cap` (role 0's capabilities for non-participants).
    pub fn has_capability(&self, user: &UserUri, cap: Capability) -> bool {
        self.role(self.role_of(user)).is_some_and(|r| r.has(cap))
    }

    /// RP§8.3 / P§5.4: `user` is listed and its role holds canSendMessage. (The hub
    /// also checks that the user is active — has a client — and is not muted.)
    pub fn can_send_message(&self, user: &UserUri) -> bool {
        self.is_participant(user) && self.has_capability(user, Capability::SendMessage)
    }

    /// RP§8.3: `user` is listed and its role holds canReceiveMessage (the hub may
    /// withhold fan-out otherwise).
    pub fn can_receive_message(&self, user: &UserUri) -> bool {
        self.is_participant(user) && self.has_capability(user, Capability::ReceiveMessage)
    }

    /// The number of non-banned participant entries (RP§5 max_users counts these).
    pub fn non_banned_count(&self) -> usize {
        let banned = self.roles.has_banned_role();
        self.participants
            .iter()
            .filter(|p| !(banned && p.role == BANNED_ROLE))
            .count()
    }

    /// The provider domains of non-banned participants (P§7.4: a follower stays an
    /// external sender while it has a participant).
    pub fn participant_domains(&self) -> BTreeSet<Domain> {
        let banned = self.roles.has_banned_role();
        self.participants
            .iter()
            .filter(|p| !(banned && p.role == BANNED_ROLE))
            .map(|p| p.user.domain())
            .collect()
    }

    /// Apply the room-level parts of `change` (participant list, metadata, roles,
    /// preauth, base policy) **without** authorisation. Clients use this for changes
    /// the hub accepted; it still rejects changes that cannot be applied.
    pub fn apply(&self, change: &ProposedChange) -> Result<RoomState, PolicyViolation> {
        let participants = change
            .list
            .apply(&self.participants)
            .map_err(PolicyViolation::from_list_error)?;
        Ok(RoomState {
            participants,
            metadata: change
                .metadata
                .last()
                .cloned()
                .unwrap_or_else(|| self.metadata.clone()),
            roles: change
                .roles
                .last()
                .cloned()
                .unwrap_or_else(|| self.roles.clone()),
            preauth: change
                .preauth
                .last()
                .cloned()
                .unwrap_or_else(|| self.preauth.clone()),
            base_policy: change
                .base_policy
                .last()
                .cloned()
                .unwrap_or_else(|| self.base_policy.clone()),
        })
    }

    /// Check the state's own consistency: role definitions (RP§3, §8.1.1, §5),
    /// participants' roles (P§7.5: each user listed once, with exactly one role; RP§3: a
    /// defined role, not 0) and preauth targets (RP§4).
    pub fn validate(&self) -> Result<(), PolicyViolation> {
        let mut seen = BTreeSet::new();
        for r in &self.roles.roles {
            if !seen.insert(r.role_index) {
                return Err(PolicyViolation::DuplicateRoleIndex { role: r.role_index });
            }
            let max_below_min = r
                .maximum_participants_constraint
                .is_some_and(|m| m < r.minimum_participants_constraint);
            let max_active_below_min = r
                .maximum_active_participants_constraint
                .is_some_and(|m| m < r.minimum_active_participants_constraint);
            if max_below_min || max_active_below_min {
                return Err(PolicyViolation::InconsistentConstraints { role: r.role_index });
            }
            if r.role_index != NO_ROLE && r.has(Capability::OpenJoin) {
                return Err(PolicyViolation::OpenJoinOnNonZeroRole { role: r.role_index });
            }
            if self.base_policy.fixed_membership
                && r.role_index != NO_ROLE
                && !r.is_banned_role()
                && r.has(Capability::AddParticipant)
            {
                return Err(PolicyViolation::FixedMembershipAllowsAdd { role: r.role_index });
            }
        }
        let mut users = BTreeSet::new();
        for p in &self.participants {
            if !users.insert(&p.user) {
                return Err(PolicyViolation::UserTouchedTwice {
                    user: p.user.clone(),
                });
            }
            if p.role == NO_ROLE {
                return Err(PolicyViolation::RoleIndexZero {
                    user: p.user.clone(),
                });
            }
            if self.roles.get(p.role).is_none() {
                return Err(PolicyViolation::UndefinedRole { role: p.role });
            }
        }
        for e in &self.preauth.preauthorized_entries {
            let t = e.target_role.role_index;
            if t != NO_ROLE && self.roles.get(t).is_none() {
                return Err(PolicyViolation::PreauthTargetUndefined { role: t });
            }
        }
        Ok(())
    }
}
