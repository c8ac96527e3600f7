//! How a client's state outside MLS is written in its snapshot (`super::snapshot`): the
//! serde forms of the fields that are not plain data (`with = "..."` on the client's own
//! types, so that the types and their forms do not depend on the snapshot).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::room::{RolePreset, RoomState};

/// The seen-ciphertext window of `ClientRoom` in a snapshot: the hashes one after the
/// other in one byte string (a CBOR byte string; a JSON array of numbers).
pub(crate) mod hashes {
    use super::*;
    use std::collections::VecDeque;

    pub fn serialize<S: Serializer>(v: &VecDeque<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flatten().copied().collect();
        s.serialize_bytes(&bytes)
    }

    struct Bytes;

    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("SHA-256 hashes one after the other")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<[u8; 32]>, D::Error> {
        // `byte_buf`, not `bytes`: a deserializer may borrow or buffer only short byte
        // strings for `bytes` (ciborium refuses those longer than its 4 KiB scratch).
        let bytes = d.deserialize_byte_buf(Bytes)?;
        if bytes.len() % 32 != 0 {
            return Err(serde::de::Error::custom(format!(
                "{} bytes of seen hashes is not a multiple of 32",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect())
    }
}

/// The room-state preset of `Command::CreateRoom` in a snapshot, by name.
pub(crate) mod role_preset {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    enum Preset {
        Cooperative,
        StrictlyAdministered,
        Moderated,
        DirectMessage,
    }

    pub fn serialize<S: Serializer>(p: &RolePreset, s: S) -> Result<S::Ok, S::Error> {
        match p {
            RolePreset::Cooperative => Preset::Cooperative,
            RolePreset::StrictlyAdministered => Preset::StrictlyAdministered,
            RolePreset::Moderated => Preset::Moderated,
            RolePreset::DirectMessage => Preset::DirectMessage,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RolePreset, D::Error> {
        Ok(match Preset::deserialize(d)? {
            Preset::Cooperative => RolePreset::Cooperative,
            Preset::StrictlyAdministered => RolePreset::StrictlyAdministered,
            Preset::Moderated => RolePreset::Moderated,
            Preset::DirectMessage => RolePreset::DirectMessage,
        })
    }
}

/// A room state in a snapshot: its room-state dictionary (P§7, RP§3–5 components, as
/// `RoomState::to_dictionary` encodes them).
type Dictionary = BTreeMap<u16, Vec<u8>>;

fn to_dictionary(st: &RoomState) -> Dictionary {
    st.to_dictionary()
}

fn from_dictionary<E: serde::de::Error>(d: Dictionary) -> Result<RoomState, E> {
    RoomState::from_dictionary(&d).map_err(|e| E::custom(format!("room state: {e}")))
}

/// `ClientRoom`'s signalled room state (x-hub-only-room-state) in a snapshot.
pub(crate) mod signalled {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<(u64, RoomState)>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|(e, st)| (*e, to_dictionary(st)))
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(u64, RoomState)>, D::Error> {
        Option::<(u64, Dictionary)>::deserialize(d)?
            .map(|(e, dict)| Ok((e, from_dictionary(dict)?)))
            .transpose()
    }
}

/// `ClientRoom`'s held signals (x-hub-only-room-state) in a snapshot.
pub(crate) mod pending_signals {
    use super::*;

    pub fn serialize<S: Serializer>(v: &BTreeMap<u64, RoomState>, s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|(e, st)| (*e, to_dictionary(st)))
            .collect::<BTreeMap<u64, Dictionary>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u64, RoomState>, D::Error> {
        BTreeMap::<u64, Dictionary>::deserialize(d)?
            .into_iter()
            .map(|(e, dict)| Ok((e, from_dictionary(dict)?)))
            .collect()
    }
}

/// Every name a `ClientEvent` carries as `&'static str`: the ops
/// (`Command::name`), how a client joined, and the adversary behaviours a
/// client reports.
const KNOWN_NAMES: &[&str] = &[
    "create-room",
    "add-user",
    "add-users",
    "remove-user",
    "kick",
    "ban",
    "change-role",
    "leave",
    "send",
    "join-external",
    "self-update",
    "commit-pending",
    "move-hub",
    "take-over",
    "leave-step",
    "welcome",
    "external commit",
    "omit-cached-proposals",
    "omit-list-update",
];

/// A name of a pending event read back from a snapshot: one of [`KNOWN_NAMES`].
pub(crate) fn known_name<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let name = String::deserialize(d)?;
    KNOWN_NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .ok_or_else(|| {
            serde::de::Error::custom(format!("{name:?} is not a name a client event carries"))
        })
}
