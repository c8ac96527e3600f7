//! RP§8 role capabilities with their RP§10.2 code points.
//!
//! On the wire a capability is a `uint16 CapabilityType`. Roles keep the raw code
//! points, so unknown or private-use values (0xF000–0xFFFF) survive a round trip;
//! [`Capability`] names the registered ones. RP Appendix A also uses names without
//! code points in RP§10.2 (`canRevokeVoice`, `canGrantVoice`): they are ignored.

/// RP§3 `uint16 CapabilityType`.
pub type CapabilityType = u16;

macro_rules! capabilities {
    ($( $(#[$m:meta])* $name:ident = $code:literal, $text:literal; )*) => {
        /// A registered MIMI role capability (RP§10.2).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u16)]
        pub enum Capability {
            $( $(#[$m])* $name = $code, )*
        }

        impl Capability {
            /// Every registered capability, in code-point order.
            pub const ALL: &'static [Capability] = &[$(Capability::$name,)*];

            /// The capability with this code point, if registered.
            pub fn from_code(code: CapabilityType) -> Option<Capability> {
                match code {
                    $( $code => Some(Capability::$name), )*
                    _ => None,
                }
            }

            /// The RP§8 name, e.g. `canAddParticipant`.
            pub fn name(self) -> &'static str {
                match self {
                    $( Capability::$name => $text, )*
                }
            }
        }
    };
}

capabilities! {
    // RP§8.1 membership
    AddParticipant = 0x0000, "canAddParticipant";
    RemoveParticipant = 0x0001, "canRemoveParticipant";
    AddOwnClient = 0x0002, "canAddOwnClient";
    RemoveOwnClient = 0x0003, "canRemoveOwnClient";
    OpenJoin = 0x0004, "canOpenJoin";
    JoinIfPreauthorized = 0x0005, "canJoinIfPreauthorized";
    RemoveSelf = 0x0006, "canRemoveSelf";
    /// Reserved (RP§8.7).
    CreateJoinCode = 0x0007, "canCreateJoinCode";
    /// Reserved (RP§8.7).
    DeleteJoinCode = 0x0008, "canDeleteJoinCode";
    UseJoinCode = 0x0009, "canUseJoinCode";
    Ban = 0x000a, "canBan";
    UnBan = 0x000b, "canUnBan";
    Kick = 0x000c, "canKick";
    /// Reserved (RP§8.7).
    Knock = 0x000d, "canKnock";
    /// Reserved (RP§8.7).
    AcceptKnock = 0x000e, "canAcceptKnock";
    ChangeUserRole = 0x000f, "canChangeUserRole";
    ChangeOwnRole = 0x0010, "canChangeOwnRole";
    /// Reserved (RP§8.7).
    CreateSubgroup = 0x0011, "canCreateSubgroup";
    // RP§8.3 messages
    SendMessage = 0x0100, "canSendMessage";
    ReceiveMessage = 0x0101, "canReceiveMessage";
    CopyMessage = 0x0102, "canCopyMessage";
    ReportAbuse = 0x0103, "canReportAbuse";
    ReplyToMessage = 0x0104, "canReplyToMessage";
    ReactToMessage = 0x0105, "canReactToMessage";
    EditReaction = 0x0106, "canEditReaction";
    DeleteOwnReaction = 0x0107, "canDeleteOwnReaction";
    DeleteOtherReaction = 0x0108, "canDeleteOtherReaction";
    EditOwnMessage = 0x0109, "canEditOwnMessage";
    DeleteOwnMessage = 0x010a, "canDeleteOwnMessage";
    DeleteOtherMessage = 0x010b, "canDeleteOtherMessage";
    StartTopic = 0x010c, "canStartTopic";
    ReplyInTopic = 0x010d, "canReplyInTopic";
    EditOwnTopic = 0x010e, "canEditOwnTopic";
    EditOtherTopic = 0x010f, "canEditOtherTopic";
    /// Reserved (RP§8.7).
    SendDirectMessage = 0x0110, "canSendDirectMessage";
    /// Reserved (RP§8.7).
    TargetMessage = 0x0111, "canTargetMessage";
    // RP§8.4 assets and links
    UploadImage = 0x0200, "canUploadImage";
    UploadAudio = 0x0201, "canUploadAudio";
    UploadVideo = 0x0202, "canUploadVideo";
    UploadAttachment = 0x0203, "canUploadAttachment";
    DownloadImage = 0x0204, "canDownloadImage";
    DownloadAudio = 0x0205, "canDownloadAudio";
    DownloadVideo = 0x0206, "canDownloadVideo";
    DownloadAttachment = 0x0207, "canDownloadAttachment";
    SendLink = 0x0208, "canSendLink";
    SendLinkPreview = 0x0209, "canSendLinkPreview";
    FollowLink = 0x020a, "canFollowLink";
    CopyLink = 0x020b, "canCopyLink";
    // RP§8.2 metadata
    ChangeRoomName = 0x0300, "canChangeRoomName";
    ChangeRoomDescription = 0x0301, "canChangeRoomDescription";
    ChangeRoomAvatar = 0x0302, "canChangeRoomAvatar";
    ChangeRoomSubject = 0x0303, "canChangeRoomSubject";
    ChangeRoomMood = 0x0304, "canChangeRoomMood";
    /// Reserved (RP§8.7).
    ChangeOwnName = 0x0380, "canChangeOwnName";
    /// Reserved (RP§8.7).
    ChangeOwnPresence = 0x0381, "canChangeOwnPresence";
    /// Reserved (RP§8.7).
    ChangeOwnMood = 0x0382, "canChangeOwnMood";
    /// Reserved (RP§8.7).
    ChangeOwnAvatar = 0x0383, "canChangeOwnAvatar";
    // RP§8.5 real-time media
    StartCall = 0x0400, "canStartCall";
    JoinCall = 0x0401, "canJoinCall";
    SendAudio = 0x0402, "canSendAudio";
    ReceiveAudio = 0x0403, "canReceiveAudio";
    SendVideo = 0x0404, "canSendVideo";
    ReceiveVideo = 0x0405, "canReceiveVideo";
    ShareScreen = 0x0406, "canShareScreen";
    ViewSharedScreen = 0x0407, "canViewSharedScreen";
    // RP§8.6 disruptive
    /// Reserved (RP§8.7).
    CreateRoom = 0x0500, "canCreateRoom";
    DestroyRoom = 0x0501, "canDestroyRoom";
    ChangeRoomMembershipStyle = 0x0502, "canChangeRoomMembershipStyle";
    ChangeRoleDefinitions = 0x0503, "canChangeRoleDefinitions";
    ChangePreauthorizedUserList = 0x0504, "canChangePreauthorizedUserList";
    SendMlsReinitProposal = 0x0601, "canSendMLSReinitProposal";
}

impl Capability {
    /// The code point on the wire.
    pub fn code(self) -> CapabilityType {
        self as u16
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:04x})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points_match_the_registry() {
        // Spot checks against RP§10.2.
        assert_eq!(Capability::AddParticipant.code(), 0x0000);
        assert_eq!(Capability::UseJoinCode.code(), 0x0009);
        assert_eq!(Capability::UnBan.code(), 0x000b);
        assert_eq!(Capability::ChangeOwnRole.code(), 0x0010);
        assert_eq!(Capability::SendMessage.code(), 0x0100);
        assert_eq!(Capability::ChangeRoomMood.code(), 0x0304);
        assert_eq!(Capability::ChangeRoleDefinitions.code(), 0x0503);
        assert_eq!(Capability::SendMlsReinitProposal.code(), 0x0601);
        for c in Capability::ALL {
            assert_eq!(Capability::from_code(c.code()), Some(*c));
        }
        assert_eq!(Capability::from_code(0xF000), None);
        // strictly increasing, so no duplicate code points
        assert!(Capability::ALL
            .windows(2)
            .all(|w| w[0].code() < w[1].code()));
    }
}
