//! Wire structures of the participant list (P§7.5), room metadata (P§7.6) and base
//! room policy (RP§5), as carried in `app_data_dictionary` entries and AppDataUpdate
//! payloads (X§4.6–4.7).

use super::codec::{
    check_count, decode_exact, encode, ComponentError, ComponentId, Opaque, TlsBool, Uri,
    Utf8String, MAX_DESCRIPTIONS, MAX_PARTICIPANTS,
};
use tls_codec::{TlsDeserializeBytes, TlsSerialize, TlsSize};

/// P§7.5 `UserRolePair { opaque user<V>; uint32 role_index; }`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct UserRolePair {
    pub user: Opaque,
    pub role_index: u32,
}

/// P§7.5 `ParticipantListData { UserRolePair participants<V>; }` — the data of
/// component 0x0022.
#[derive(Debug, Clone, Default, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct ParticipantListData {
    pub participants: Vec<UserRolePair>,
}

/// P§7.5 `UserindexRolePair { uint32 user_index; uint32 role_index; }`.
#[derive(Debug, Clone, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct UserindexRolePair {
    pub user_index: u32,
    pub role_index: u32,
}

/// P§7.5 `ParticipantListUpdate` — the `update` of an AppDataUpdate for 0x0022.
/// Semantics: see [`super::participants`].
#[derive(Debug, Clone, Default, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct ParticipantListUpdate {
    pub changed_role_participants: Vec<UserindexRolePair>,
    pub removed_indices: Vec<u32>,
    pub added_participants: Vec<UserRolePair>,
}

/// P§7.6 `RichDescription`. An empty `media_type` means `text/plain;charset=utf-8`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes,
)]
pub struct RichDescription {
    pub media_type: Opaque,
    pub language_tag: Opaque,
    pub description_content: Opaque,
}

/// P§7.6 `RoomMetaData` — the data of component 0x0023 and (as `RoomMetaUpdate`)
/// the update, which replaces the data completely.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes,
)]
pub struct RoomMetaData {
    pub room_uri: Uri,
    pub room_name: Utf8String,
    pub room_descriptions: Vec<RichDescription>,
    pub room_avatar: Uri,
    pub room_subject: Utf8String,
    pub room_mood: Utf8String,
}

/// A metadata field whose change needs its own capability (RP§8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetadataField {
    RoomUri,
    Name,
    Descriptions,
    Avatar,
    Subject,
    Mood,
}

impl RoomMetaData {
    /// The fields that differ between `self` (old) and `new` (P§7.6: an update
    /// replaces the whole value, so the hub diffs to find the capabilities needed).
    pub fn changed_fields(&self, new: &RoomMetaData) -> Vec<MetadataField> {
        let mut out = Vec::new();
        if self.room_uri != new.room_uri {
            out.push(MetadataField::RoomUri);
        }
        if self.room_name != new.room_name {
            out.push(MetadataField::Name);
        }
        if self.room_descriptions != new.room_descriptions {
            out.push(MetadataField::Descriptions);
        }
        if self.room_avatar != new.room_avatar {
            out.push(MetadataField::Avatar);
        }
        if self.room_subject != new.room_subject {
            out.push(MetadataField::Subject);
        }
        if self.room_mood != new.room_mood {
            out.push(MetadataField::Mood);
        }
        out
    }

    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let m: RoomMetaData = decode_exact("room_metadata", bytes)?;
        check_count(
            "room_metadata",
            "room descriptions",
            m.room_descriptions.len(),
            MAX_DESCRIPTIONS,
        )?;
        Ok(m)
    }
}

impl ParticipantListData {
    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let d: ParticipantListData = decode_exact("participant_list", bytes)?;
        check_count(
            "participant_list",
            "participants",
            d.participants.len(),
            MAX_PARTICIPANTS,
        )?;
        Ok(d)
    }
}

impl ParticipantListUpdate {
    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(self)
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let u: ParticipantListUpdate = decode_exact("participant_list update", bytes)?;
        let n = u.changed_role_participants.len() + u.removed_indices.len();
        check_count("participant_list update", "indices", n, MAX_PARTICIPANTS)?;
        check_count(
            "participant_list update",
            "added participants",
            u.added_participants.len(),
            MAX_PARTICIPANTS,
        )?;
        Ok(u)
    }
}

/// RP§5 `BaseRoomPolicy` — the data (and replacing update) of component 0x0027.
///
/// `parent_room` is `Uri parent_room<V>` in the draft: a vector, empty unless
/// `parent_dependant` (choice: kept as a vector, as written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseRoomPolicy {
    pub fixed_membership: bool,
    pub parent_dependant: bool,
    pub parent_room: Vec<Uri>,
    pub multi_device: bool,
    pub max_clients: Option<u32>,
    pub max_users: Option<u32>,
    pub pseudonyms_allowed: bool,
    pub persistent_room: bool,
    pub discoverable: bool,
    pub policy_component_ids: Vec<ComponentId>,
}

impl Default for BaseRoomPolicy {
    /// An open, persistent, multi-device room with no limits (RP§5: multi_device
    /// "true (the default)"), naming the roles and preauth components.
    fn default() -> Self {
        BaseRoomPolicy {
            fixed_membership: false,
            parent_dependant: false,
            parent_room: Vec::new(),
            multi_device: true,
            max_clients: None,
            max_users: None,
            pseudonyms_allowed: false,
            persistent_room: true,
            discoverable: false,
            policy_component_ids: vec![super::codec::ROLES_LIST, super::codec::PREAUTH_LIST],
        }
    }
}

/// The exact wire shape of [`BaseRoomPolicy`], with validated booleans.
#[derive(Debug, Clone, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
struct BaseRoomPolicyWire {
    fixed_membership: TlsBool,
    parent_dependant: TlsBool,
    parent_room: Vec<Uri>,
    multi_device: TlsBool,
    max_clients: Option<u32>,
    max_users: Option<u32>,
    pseudonyms_allowed: TlsBool,
    persistent_room: TlsBool,
    discoverable: TlsBool,
    policy_component_ids: Vec<u16>,
}

impl BaseRoomPolicy {
    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(&BaseRoomPolicyWire {
            fixed_membership: TlsBool(self.fixed_membership),
            parent_dependant: TlsBool(self.parent_dependant),
            parent_room: self.parent_room.clone(),
            multi_device: TlsBool(self.multi_device),
            max_clients: self.max_clients,
            max_users: self.max_users,
            pseudonyms_allowed: TlsBool(self.pseudonyms_allowed),
            persistent_room: TlsBool(self.persistent_room),
            discoverable: TlsBool(self.discoverable),
            policy_component_ids: self.policy_component_ids.clone(),
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let w: BaseRoomPolicyWire = decode_exact("base_room_policy", bytes)?;
        Ok(BaseRoomPolicy {
            fixed_membership: w.fixed_membership.0,
            parent_dependant: w.parent_dependant.0,
            parent_room: w.parent_room,
            multi_device: w.multi_device.0,
            max_clients: w.max_clients,
            max_users: w.max_users,
            pseudonyms_allowed: w.pseudonyms_allowed.0,
            persistent_room: w.persistent_room.0,
            discoverable: w.discoverable.0,
            policy_component_ids: w.policy_component_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_list_bytes_are_as_specified() {
        let d = ParticipantListData {
            participants: vec![UserRolePair {
                user: "ab".into(),
                role_index: 2,
            }],
        };
        // participants<V>: total 1+2+4 = 7 bytes -> varint 0x07;
        // user<V>: 0x02 'a' 'b'; role_index u32 big-endian.
        assert_eq!(
            d.encode().unwrap(),
            vec![0x07, 0x02, b'a', b'b', 0, 0, 0, 2]
        );
        assert_eq!(
            ParticipantListData::decode(&d.encode().unwrap()).unwrap(),
            d
        );
    }

    #[test]
    fn update_bytes_are_as_specified() {
        let u = ParticipantListUpdate {
            changed_role_participants: vec![UserindexRolePair {
                user_index: 1,
                role_index: 3,
            }],
            removed_indices: vec![0],
            added_participants: vec![],
        };
        assert_eq!(
            u.encode().unwrap(),
            vec![0x08, 0, 0, 0, 1, 0, 0, 0, 3, 0x04, 0, 0, 0, 0, 0x00]
        );
        assert_eq!(
            ParticipantListUpdate::decode(&u.encode().unwrap()).unwrap(),
            u
        );
    }

    #[test]
    fn base_policy_round_trip_and_bad_bool() {
        let p = BaseRoomPolicy {
            fixed_membership: true,
            parent_room: vec![Uri::from("mimi://a.example/r/parent")],
            parent_dependant: true,
            multi_device: false,
            max_clients: Some(10),
            max_users: None,
            ..BaseRoomPolicy::default()
        };
        let bytes = p.encode().unwrap();
        assert_eq!(BaseRoomPolicy::decode(&bytes).unwrap(), p);
        let mut bad = bytes.clone();
        bad[0] = 2; // fixed_membership must be 0 or 1
        assert!(BaseRoomPolicy::decode(&bad).is_err());
    }

    #[test]
    fn metadata_round_trip_and_diff() {
        let a = RoomMetaData {
            room_uri: Uri::from("mimi://a.example/r/clubhouse"),
            room_name: "Clubhouse".into(),
            room_descriptions: vec![RichDescription {
                media_type: Opaque::default(),
                language_tag: "en".into(),
                description_content: "A room".into(),
            }],
            room_avatar: Uri::from("https://a.example/avatar.png"),
            room_subject: "subject".into(),
            room_mood: "".into(),
        };
        let bytes = a.encode().unwrap();
        assert_eq!(RoomMetaData::decode(&bytes).unwrap(), a);
        let mut b = a.clone();
        b.room_name = "New".into();
        b.room_mood = "happy".into();
        assert_eq!(
            a.changed_fields(&b),
            vec![MetadataField::Name, MetadataField::Mood]
        );
        assert!(a.changed_fields(&a).is_empty());
    }
}
