//! Ready-made role sets from RP Appendix A, plus a fixed-membership direct-message set.
//!
//! Deviations from the Appendix (listed under "Choices" in the module docs):
//! * `policy_enforcer` has `minimum_participants_constraint = 0` (the Appendix says 1):
//!   the hub is not a participant; it takes this role through a preauth entry (RP§4),
//!   so no listed user can satisfy a minimum of 1.
//! * `policy_enforcer` also holds canKick, so the hub may remove lost clients (P§5.5).
//! * Names without a registered code point in RP§10.2 (canRevokeVoice, canGrantVoice;
//!   canChangeMlsOperationalPolicies, only reserved there) are left out.
//! * Moderated room (A.3): "speaker includes all of a speaker" and "moderator includes
//!   all of an ordinary_user" are read as the chain guest ⊂ attendee ⊂ speaker ⊂
//!   moderator ⊂ super_admin.

use super::capability::Capability::{self, *};
use super::codec::Opaque;
use super::roles::{Role, RoleData, SingleSourceRoleChangeTargets, BANNED_ROLE_NAME};

/// A ready-made role set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RolePreset {
    /// RP A.1: cooperatively administered (friends, family, small peer groups).
    /// Roles: 0 no_role, 1 banned, 2 ordinary_user, 3 group_admin, 4 super_admin,
    /// 5 policy_enforcer.
    Cooperative,
    /// RP A.2: strictly administered. Same indices as A.1; only admins add/remove.
    StrictlyAdministered,
    /// RP A.3: moderated. 0 no_role, 1 banned, 2 guest, 3 attendee, 4 speaker,
    /// 5 moderator, 6 super_admin, 7 policy_enforcer.
    Moderated,
    /// Project preset for fixed-membership rooms (RP§5 1:1 and group DMs):
    /// 0 no_role, 1 banned, 2 dm_participant (no canAddParticipant, no leave),
    /// 3 policy_enforcer.
    DirectMessage,
}

type Arcs<'a> = &'a [(u32, &'a [u32])];

#[allow(clippy::too_many_arguments)]
fn role(
    index: u32,
    name: &str,
    caps: &[Capability],
    min: u32,
    max: Option<u32>,
    min_active: u32,
    max_active: Option<u32>,
    arcs: Arcs<'_>,
) -> Role {
    Role {
        role_index: index,
        role_name: name.into(),
        role_description: Opaque::default(),
        role_capabilities: caps.iter().map(|c| c.code()).collect(),
        minimum_participants_constraint: min,
        maximum_participants_constraint: max,
        minimum_active_participants_constraint: min_active,
        maximum_active_participants_constraint: max_active,
        authorized_role_changes: arcs
            .iter()
            .map(|(from, to)| SingleSourceRoleChangeTargets {
                from_role_index: *from,
                target_role_indexes: to.to_vec(),
            })
            .collect(),
    }
}

fn cat(parts: &[&[Capability]]) -> Vec<Capability> {
    let mut v: Vec<Capability> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    v.sort();
    v.dedup();
    v
}

fn banned() -> Role {
    role(1, BANNED_ROLE_NAME, &[], 0, None, 0, Some(0), &[])
}

const ENFORCER_CAPS: &[Capability] = &[
    RemoveParticipant,
    Kick,
    ChangeUserRole,
    Ban,
    UnBan,
    ChangeRoleDefinitions,
    ChangePreauthorizedUserList,
    DestroyRoom,
    SendMlsReinitProposal,
];

fn enforcer(index: u32, arcs: Arcs<'_>) -> Role {
    role(
        index,
        "policy_enforcer",
        ENFORCER_CAPS,
        0,
        Some(2),
        0,
        Some(0),
        arcs,
    )
}

const OWN_PROFILE: &[Capability] = &[
    ChangeOwnName,
    ChangeOwnPresence,
    ChangeOwnMood,
    ChangeOwnAvatar,
];
const ASSETS: &[Capability] = &[
    UploadImage,
    UploadVideo,
    UploadAudio,
    UploadAttachment,
    DownloadImage,
    DownloadVideo,
    DownloadAudio,
    DownloadAttachment,
    SendLink,
    SendLinkPreview,
    FollowLink,
    CopyLink,
];

fn cooperative() -> RoleData {
    let ordinary = cat(&[
        &[
            AddParticipant,
            RemoveParticipant,
            AddOwnClient,
            RemoveOwnClient,
            RemoveSelf,
            SendMessage,
            ReceiveMessage,
            CopyMessage,
            ReportAbuse,
            ReplyToMessage,
            ReactToMessage,
            DeleteOwnReaction,
            EditOwnMessage,
            DeleteOwnMessage,
            StartTopic,
            ReplyInTopic,
            EditOwnTopic,
            ChangeRoomName,
            ChangeRoomAvatar,
            ChangeRoomSubject,
            ChangeRoomMood,
        ],
        ASSETS,
        OWN_PROFILE,
    ]);
    let admin = cat(&[
        &ordinary,
        &[
            Ban,
            UnBan,
            Kick,
            ChangeUserRole,
            DeleteOtherMessage,
            EditOtherTopic,
            ChangeRoomDescription,
        ],
    ]);
    let super_admin = cat(&[
        &admin,
        &[
            ChangeRoomMembershipStyle,
            ChangePreauthorizedUserList,
            DestroyRoom,
        ],
    ]);
    RoleData {
        roles: vec![
            role(0, "no_role", &[], 0, None, 0, Some(0), &[]),
            banned(),
            role(
                2,
                "ordinary_user",
                &ordinary,
                0,
                None,
                0,
                None,
                &[(0, &[2]), (2, &[0])],
            ),
            role(
                3,
                "group_admin",
                &admin,
                1,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3]),
                    (1, &[0, 2, 3]),
                    (2, &[0, 1, 3]),
                    (3, &[0, 1, 2]),
                ],
            ),
            role(
                4,
                "super_admin",
                &super_admin,
                0,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3, 4]),
                    (1, &[0, 2, 3, 4]),
                    (2, &[0, 1, 3, 4]),
                    (3, &[0, 1, 2, 4]),
                    (4, &[0, 1, 2, 3]),
                ],
            ),
            enforcer(
                5,
                &[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                ],
            ),
        ],
    }
}

fn strictly_administered() -> RoleData {
    let ordinary = cat(&[
        &[
            AddOwnClient,
            JoinIfPreauthorized,
            RemoveOwnClient,
            RemoveSelf,
            ChangeOwnRole,
            SendMessage,
            ReceiveMessage,
            CopyMessage,
            ReportAbuse,
            ReactToMessage,
            DeleteOwnReaction,
            EditOwnMessage,
            DeleteOwnMessage,
            StartTopic,
            ReplyInTopic,
        ],
        ASSETS,
        OWN_PROFILE,
    ]);
    let admin = cat(&[
        &ordinary,
        &[
            AddParticipant,
            RemoveParticipant,
            Ban,
            UnBan,
            Kick,
            ChangeUserRole,
            CreateJoinCode,
            DeleteJoinCode,
            DeleteOtherReaction,
            DeleteOtherMessage,
            EditOwnTopic,
            EditOtherTopic,
            ChangeRoomDescription,
            ChangeRoomName,
            ChangeRoomAvatar,
            ChangeRoomSubject,
            ChangeRoomMood,
        ],
    ]);
    let super_admin = cat(&[
        &admin,
        &[
            ChangeRoomMembershipStyle,
            ChangeRoleDefinitions,
            ChangePreauthorizedUserList,
            DestroyRoom,
            SendMlsReinitProposal,
        ],
    ]);
    RoleData {
        roles: vec![
            role(
                0,
                "no_role",
                &[UseJoinCode],
                0,
                None,
                0,
                Some(0),
                &[(0, &[2])],
            ),
            banned(),
            role(
                2,
                "ordinary_user",
                &ordinary,
                0,
                None,
                0,
                None,
                &[(0, &[2]), (2, &[0])],
            ),
            role(
                3,
                "group_admin",
                &admin,
                1,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3]),
                    (1, &[0, 2, 3]),
                    (2, &[0, 1, 3]),
                    (3, &[0, 1, 2]),
                ],
            ),
            role(
                4,
                "super_admin",
                &super_admin,
                0,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3, 4]),
                    (1, &[0, 2, 3, 4]),
                    (2, &[0, 1, 3, 4]),
                    (3, &[0, 1, 2, 4]),
                    (4, &[0, 1, 2, 3]),
                ],
            ),
            enforcer(
                5,
                &[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                ],
            ),
        ],
    }
}

fn moderated() -> RoleData {
    let guest: Vec<Capability> = cat(&[&[
        RemoveSelf,
        ReceiveMessage,
        CopyMessage,
        ReactToMessage,
        DeleteOwnReaction,
        FollowLink,
        CopyLink,
        DownloadImage,
        DownloadVideo,
        DownloadAudio,
    ]]);
    let attendee = cat(&[
        &guest,
        &[
            AddOwnClient,
            JoinIfPreauthorized,
            RemoveOwnClient,
            ChangeOwnRole,
            ReportAbuse,
            ReplyInTopic,
            DownloadAttachment,
            ChangeOwnName,
            ChangeOwnPresence,
            ChangeOwnAvatar,
        ],
    ]);
    let speaker = cat(&[
        &attendee,
        &[
            SendMessage,
            EditOwnMessage,
            DeleteOwnMessage,
            StartTopic,
            UploadImage,
            UploadVideo,
            UploadAudio,
            UploadAttachment,
            SendLink,
            SendLinkPreview,
        ],
    ]);
    let moderator = cat(&[
        &speaker,
        &[
            AddParticipant,
            RemoveParticipant,
            Ban,
            UnBan,
            Kick,
            ChangeUserRole,
            CreateJoinCode,
            DeleteJoinCode,
            DeleteOtherReaction,
            DeleteOtherMessage,
            EditOwnTopic,
            EditOtherTopic,
            ChangeRoomName,
            ChangeRoomAvatar,
            ChangeRoomSubject,
            ChangeRoomMood,
        ],
    ]);
    let super_admin = cat(&[
        &moderator,
        &[
            ChangeRoomDescription,
            ChangeRoomMembershipStyle,
            ChangeRoleDefinitions,
            ChangePreauthorizedUserList,
            DestroyRoom,
            SendMlsReinitProposal,
        ],
    ]);
    RoleData {
        roles: vec![
            role(
                0,
                "no_role",
                &[UseJoinCode],
                0,
                None,
                0,
                None,
                &[(0, &[2, 3])],
            ),
            banned(),
            role(
                2,
                "guest",
                &guest,
                0,
                None,
                0,
                None,
                &[(0, &[2]), (2, &[0])],
            ),
            role(
                3,
                "attendee",
                &attendee,
                0,
                None,
                0,
                None,
                &[(0, &[3]), (3, &[0])],
            ),
            role(
                4,
                "speaker",
                &speaker,
                0,
                None,
                0,
                None,
                &[(0, &[4]), (4, &[0])],
            ),
            role(
                5,
                "moderator",
                &moderator,
                1,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3, 4, 5]),
                    (1, &[0, 2, 3, 4, 5]),
                    (2, &[0, 1, 3, 4, 5]),
                    (3, &[0, 1, 2, 4, 5]),
                    (4, &[0, 1, 2, 3, 5]),
                    (5, &[0, 1, 2, 3, 4]),
                ],
            ),
            role(
                6,
                "super_admin",
                &super_admin,
                0,
                None,
                0,
                None,
                &[
                    (0, &[1, 2, 3, 4, 5, 6]),
                    (1, &[0, 2, 3, 4, 5, 6]),
                    (2, &[0, 1, 3, 4, 5, 6]),
                    (3, &[0, 1, 2, 4, 5, 6]),
                    (4, &[0, 1, 2, 3, 5, 6]),
                    (5, &[0, 1, 2, 3, 4, 6]),
                    (6, &[0, 1, 2, 3, 4, 5]),
                ],
            ),
            enforcer(
                7,
                &[
                    (0, &[1]),
                    (1, &[0]),
                    (2, &[0, 1]),
                    (3, &[0, 1]),
                    (4, &[0, 1]),
                    (5, &[0, 1]),
                    (6, &[0, 1]),
                ],
            ),
        ],
    }
}

fn direct_message() -> RoleData {
    let member = cat(&[
        &[
            AddOwnClient,
            RemoveOwnClient,
            SendMessage,
            ReceiveMessage,
            CopyMessage,
            ReportAbuse,
            ReplyToMessage,
            ReactToMessage,
            DeleteOwnReaction,
            EditOwnMessage,
            DeleteOwnMessage,
            ChangeRoomName,
            ChangeRoomAvatar,
            ChangeRoomSubject,
            ChangeRoomMood,
        ],
        ASSETS,
    ]);
    RoleData {
        roles: vec![
            role(0, "no_role", &[], 0, None, 0, Some(0), &[]),
            banned(),
            role(2, "dm_participant", &member, 0, None, 0, None, &[]),
            enforcer(3, &[(2, &[1]), (1, &[2])]),
        ],
    }
}

impl RolePreset {
    /// All presets.
    pub const ALL: [RolePreset; 4] = [
        RolePreset::Cooperative,
        RolePreset::StrictlyAdministered,
        RolePreset::Moderated,
        RolePreset::DirectMessage,
    ];

    /// The role definitions (component 0x0025).
    pub fn roles(self) -> RoleData {
        match self {
            RolePreset::Cooperative => cooperative(),
            RolePreset::StrictlyAdministered => strictly_administered(),
            RolePreset::Moderated => moderated(),
            RolePreset::DirectMessage => direct_message(),
        }
    }

    /// The role a room creator gets (the highest administrative role).
    pub fn creator_role(self) -> u32 {
        match self {
            RolePreset::Cooperative | RolePreset::StrictlyAdministered => 4,
            RolePreset::Moderated => 6,
            RolePreset::DirectMessage => 2,
        }
    }

    /// The role of an ordinary participant who can send messages.
    pub fn member_role(self) -> u32 {
        match self {
            RolePreset::Cooperative
            | RolePreset::StrictlyAdministered
            | RolePreset::DirectMessage => 2,
            RolePreset::Moderated => 4,
        }
    }

    /// A moderating role below the creator (group_admin / moderator); none for DMs.
    pub fn admin_role(self) -> Option<u32> {
        match self {
            RolePreset::Cooperative | RolePreset::StrictlyAdministered => Some(3),
            RolePreset::Moderated => Some(5),
            RolePreset::DirectMessage => None,
        }
    }

    /// The `policy_enforcer` role, granted to the hub through preauthorisation.
    pub fn policy_enforcer_role(self) -> u32 {
        match self {
            RolePreset::Cooperative | RolePreset::StrictlyAdministered => 5,
            RolePreset::Moderated => 7,
            RolePreset::DirectMessage => 3,
        }
    }

    /// Whether the preset is meant for a fixed-membership room (RP§5).
    pub fn fixed_membership(self) -> bool {
        self == RolePreset::DirectMessage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::roles::{BANNED_ROLE, NO_ROLE};

    #[test]
    fn every_preset_has_the_rp_banned_role_and_needed_arcs() {
        for p in RolePreset::ALL {
            let r = p.roles();
            let banned = r.get(BANNED_ROLE).unwrap();
            assert!(banned.is_banned_role(), "{p:?}");
            assert!(banned.role_capabilities.is_empty(), "{p:?}");
            assert_eq!(
                banned.maximum_active_participants_constraint,
                Some(0),
                "{p:?}"
            );
            assert!(r.get(NO_ROLE).is_some(), "{p:?}");
            // the creator can leave unless the room is fixed
            let creator = r.get(p.creator_role()).unwrap();
            assert_eq!(!p.fixed_membership(), creator.has(RemoveSelf), "{p:?}");
            // the member role can be left (or, in a DM, cannot)
            let member = r.get(p.member_role()).unwrap();
            assert!(member.has(SendMessage) && member.has(AddOwnClient), "{p:?}");
            if let Some(a) = p.admin_role() {
                let admin = r.get(a).unwrap();
                let m = p.member_role();
                assert!(admin.has(AddParticipant) && admin.allows_change(0, m));
                assert!(admin.has(RemoveParticipant) && admin.allows_change(m, 0));
                assert!(admin.has(Kick));
                assert!(admin.has(Ban) && admin.allows_change(m, 1));
                assert!(admin.has(UnBan) && admin.allows_change(1, m));
                assert!(admin.has(RemoveSelf) && admin.allows_change(a, 0));
            }
            let enf = r.get(p.policy_enforcer_role()).unwrap();
            assert_eq!(enf.maximum_active_participants_constraint, Some(0));
            assert!(enf.has(Ban) && enf.has(Kick));
            // unique indices
            let mut idx: Vec<u32> = r.roles.iter().map(|r| r.role_index).collect();
            idx.dedup();
            assert_eq!(idx.len(), r.roles.len());
        }
    }

    #[test]
    fn appendix_specifics() {
        let coop = RolePreset::Cooperative.roles();
        // A.1: ordinary users add and remove ordinary users only
        let ord = coop.get(2).unwrap();
        assert!(ord.has(AddParticipant) && ord.allows_change(0, 2) && !ord.allows_change(0, 3));
        assert!(!ord.has(Kick) && !ord.has(Ban));
        // A.1: super_admin lacks canChangeRoleDefinitions (as written)
        assert!(!coop.get(4).unwrap().has(ChangeRoleDefinitions));
        let strict = RolePreset::StrictlyAdministered.roles();
        assert!(strict.get(0).unwrap().has(UseJoinCode));
        assert!(!strict.get(2).unwrap().has(AddParticipant));
        assert!(strict.get(4).unwrap().has(ChangeRoleDefinitions));
        let modr = RolePreset::Moderated.roles();
        assert!(
            !modr.get(2).unwrap().has(SendMessage),
            "guests cannot speak"
        );
        assert!(modr.get(4).unwrap().has(SendMessage));
        assert!(
            modr.get(5).unwrap().has(SendMessage),
            "moderator includes speaker"
        );
        let dm = RolePreset::DirectMessage.roles();
        assert!(!dm.get(2).unwrap().has(AddParticipant) && !dm.get(2).unwrap().has(RemoveSelf));
    }
}
