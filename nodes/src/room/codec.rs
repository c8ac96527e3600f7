//! TLS presentation-language building blocks for the room components, the component
//! ids (P§10.3–10.4, RP§10.1), explicit size limits, and the typed decode error.
//!
//! `opaque x<V>` fields use [`Opaque`], not `tls_codec::VLBytes`: in tls_codec 0.5.0
//! `VLBytes` decoding hits a `debug_assert_eq!` (a panic in debug builds) when the
//! declared length runs past the end of the input. [`Opaque`] returns an error instead.

use tls_codec::{DeserializeBytes, Serialize, Size, TlsVarInt, VLByteSlice};

/// X§4.6 `ComponentID`.
pub type ComponentId = u16;

/// P§10: franking agent / `franking_signature_key` (GroupContext). Not handled here.
pub const FRANKING_SIGNATURE_KEY: ComponentId = 0x0021;
/// P§7.5 / P§10: the participant list.
pub const PARTICIPANT_LIST: ComponentId = 0x0022;
/// P§7.6 / P§10: room metadata.
pub const ROOM_METADATA: ComponentId = 0x0023;
/// RP§7 / RP§10 (suggested): MLS operational policy. Not handled here.
pub const MLS_OPERATIONAL_POLICY: ComponentId = 0x0024;
/// RP§3 / RP§10 (suggested): role definitions.
pub const ROLES_LIST: ComponentId = 0x0025;
/// RP§4 / RP§10 (suggested): preauthorised users.
pub const PREAUTH_LIST: ComponentId = 0x0026;
/// RP§5 / RP§10 (suggested): base room policy.
pub const BASE_ROOM_POLICY: ComponentId = 0x0027;

/// The components this module reads and writes, in dictionary (sorted) order.
pub const ROOM_COMPONENTS: [ComponentId; 5] = [
    PARTICIPANT_LIST,
    ROOM_METADATA,
    ROLES_LIST,
    PREAUTH_LIST,
    BASE_ROOM_POLICY,
];

/// Largest encoded component (data or update) accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 1 << 20;
/// Largest participant list (entries) accepted.
pub const MAX_PARTICIPANTS: usize = 10_000;
/// Largest number of roles in a `RoleData`.
pub const MAX_ROLES: usize = 256;
/// Largest number of preauthorisation entries.
pub const MAX_PREAUTH_ENTRIES: usize = 256;
/// Largest number of room descriptions in the metadata.
pub const MAX_DESCRIPTIONS: usize = 64;

/// A short human name for a component id (for error messages).
pub fn component_name(id: ComponentId) -> &'static str {
    match id {
        FRANKING_SIGNATURE_KEY => "franking_signature_key",
        PARTICIPANT_LIST => "participant_list",
        ROOM_METADATA => "room_metadata",
        MLS_OPERATIONAL_POLICY => "mls_operational_policy",
        ROLES_LIST => "roles_list",
        PREAUTH_LIST => "preauth_list",
        BASE_ROOM_POLICY => "base_room_policy",
        _ => "unknown component",
    }
}

/// Why component bytes could not be turned into room state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComponentError {
    #[error("{component}: encoding is {len} bytes, over the limit of {max}")]
    TooLong {
        component: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{component}: malformed TLS encoding: {detail}")]
    Malformed {
        component: &'static str,
        detail: String,
    },
    #[error("{component}: {count} {what}, over the limit of {max}")]
    TooMany {
        component: &'static str,
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{component}: field {field} is not UTF-8 without NUL (P§7.6 UTF8String)")]
    BadUtf8 {
        component: &'static str,
        field: &'static str,
    },
    #[error("{component}: participant {user:?} is not a mimi user URI (mimi://<domain>/u/<name>)")]
    BadUser {
        component: &'static str,
        user: String,
    },
    #[error("{component}: user {user} is listed twice (P§7.5: each user has exactly one role)")]
    DuplicateParticipant {
        component: &'static str,
        user: String,
    },
    #[error("app_data_dictionary lacks the {component} component (0x{id:04x})")]
    Missing {
        component: &'static str,
        id: ComponentId,
    },
    #[error("component 0x{0:04x} is not a room component handled by the room logic")]
    Unsupported(ComponentId),
    #[error("{component}: an AppDataUpdate 'remove' of a room component is not allowed (choice: room components are never removed)")]
    RemoveNotAllowed { component: &'static str },
}

/// Decode exactly one `T` from `bytes` (no trailing bytes), with a size limit.
pub(crate) fn decode_exact<T: DeserializeBytes>(
    component: &'static str,
    bytes: &[u8],
) -> Result<T, ComponentError> {
    if bytes.len() > MAX_COMPONENT_LEN {
        return Err(ComponentError::TooLong {
            component,
            len: bytes.len(),
            max: MAX_COMPONENT_LEN,
        });
    }
    T::tls_deserialize_exact_bytes(bytes).map_err(|e| ComponentError::Malformed {
        component,
        detail: e.to_string(),
    })
}

/// Encode a value. Fails only for vectors longer than 2^62 bytes (tls_codec's limit).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, tls_codec::Error> {
    value.tls_serialize_detached()
}

pub(crate) fn check_count(
    component: &'static str,
    what: &'static str,
    count: usize,
    max: usize,
) -> Result<(), ComponentError> {
    if count > max {
        Err(ComponentError::TooMany {
            component,
            what,
            count,
            max,
        })
    } else {
        Ok(())
    }
}

/// `opaque data<V>`: bytes with a QUIC-style variable-length prefix (RFC 9420 §2.1.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Opaque(pub Vec<u8>);

impl Opaque {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    /// The bytes as text, if they are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Opaque {
    fn from(s: &str) -> Self {
        Opaque(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Opaque {
    fn from(s: &[u8]) -> Self {
        Opaque(s.to_vec())
    }
}

impl From<Vec<u8>> for Opaque {
    fn from(v: Vec<u8>) -> Self {
        Opaque(v)
    }
}

impl Size for Opaque {
    fn tls_serialized_len(&self) -> usize {
        VLByteSlice(&self.0).tls_serialized_len()
    }
}

impl Serialize for Opaque {
    fn tls_serialize<W: std::io::Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        VLByteSlice(&self.0).tls_serialize(writer)
    }
}

impl DeserializeBytes for Opaque {
    fn tls_deserialize_bytes(bytes: &[u8]) -> Result<(Self, &[u8]), tls_codec::Error> {
        let (len, rest) = TlsVarInt::tls_deserialize_bytes(bytes)?;
        let len = usize::try_from(len.value())
            .map_err(|_| tls_codec::Error::DecodingError("length does not fit usize".into()))?;
        if len > MAX_COMPONENT_LEN {
            return Err(tls_codec::Error::DecodingError(format!(
                "opaque field of {len} bytes is over the limit of {MAX_COMPONENT_LEN}"
            )));
        }
        match (rest.get(..len), rest.get(len..)) {
            (Some(data), Some(tail)) => Ok((Opaque(data.to_vec()), tail)),
            _ => Err(tls_codec::Error::DecodingError(format!(
                "opaque field declares {len} bytes but only {} remain",
                rest.len()
            ))),
        }
    }
}

/// RP§5 / RP Appendix B `enum { false(0), true(1) } bool;` — any other byte is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TlsBool(pub bool);

impl Size for TlsBool {
    fn tls_serialized_len(&self) -> usize {
        1
    }
}

impl Serialize for TlsBool {
    fn tls_serialize<W: std::io::Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        u8::from(self.0).tls_serialize(writer)
    }
}

impl DeserializeBytes for TlsBool {
    fn tls_deserialize_bytes(bytes: &[u8]) -> Result<(Self, &[u8]), tls_codec::Error> {
        let (b, rest) = u8::tls_deserialize_bytes(bytes)?;
        match b {
            0 => Ok((TlsBool(false), rest)),
            1 => Ok((TlsBool(true), rest)),
            other => Err(tls_codec::Error::DecodingError(format!(
                "bool must be 0 or 1, got {other}"
            ))),
        }
    }
}

/// P§7.6 `UTF8String { opaque string<V>; }` — "a sequence of valid UTF8 without nulls".
/// Decoding rejects bytes that are not UTF-8 or contain NUL.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8String(pub String);

impl From<&str> for Utf8String {
    fn from(s: &str) -> Self {
        Utf8String(s.to_string())
    }
}

impl Size for Utf8String {
    fn tls_serialized_len(&self) -> usize {
        VLByteSlice(self.0.as_bytes()).tls_serialized_len()
    }
}

impl Serialize for Utf8String {
    fn tls_serialize<W: std::io::Write>(&self, writer: &mut W) -> Result<usize, tls_codec::Error> {
        VLByteSlice(self.0.as_bytes()).tls_serialize(writer)
    }
}

impl DeserializeBytes for Utf8String {
    fn tls_deserialize_bytes(bytes: &[u8]) -> Result<(Self, &[u8]), tls_codec::Error> {
        let (o, rest) = Opaque::tls_deserialize_bytes(bytes)?;
        let s = String::from_utf8(o.0)
            .map_err(|_| tls_codec::Error::DecodingError("UTF8String is not UTF-8".into()))?;
        if s.contains('\0') {
            return Err(tls_codec::Error::DecodingError(
                "UTF8String contains NUL".into(),
            ));
        }
        Ok((Utf8String(s), rest))
    }
}

/// P§7.6 / RP Appendix B `Uri { opaque uri<V>; }`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    tls_codec::TlsSize,
    tls_codec::TlsSerialize,
    tls_codec::TlsDeserializeBytes,
)]
pub struct Uri {
    pub uri: Opaque,
}

impl From<&str> for Uri {
    fn from(s: &str) -> Self {
        Uri { uri: s.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_round_trip_and_truncation_is_an_error() {
        let o = Opaque(vec![7u8; 100]);
        let bytes = encode(&o).unwrap();
        assert_eq!(bytes.len(), 102, "100 bytes need a 2-byte varint prefix");
        assert_eq!(decode_exact::<Opaque>("t", &bytes).unwrap(), o);
        for cut in 0..bytes.len() {
            assert!(decode_exact::<Opaque>("t", &bytes[..cut]).is_err());
        }
        // trailing data
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_exact::<Opaque>("t", &longer).is_err());
    }

    #[test]
    fn bool_accepts_only_zero_and_one() {
        assert_eq!(decode_exact::<TlsBool>("t", &[1]).unwrap(), TlsBool(true));
        assert_eq!(decode_exact::<TlsBool>("t", &[0]).unwrap(), TlsBool(false));
        assert!(decode_exact::<TlsBool>("t", &[2]).is_err());
    }

    #[test]
    fn utf8string_rejects_bad_utf8_and_nul() {
        let good = encode(&Utf8String::from("héllo")).unwrap();
        assert_eq!(
            decode_exact::<Utf8String>("t", &good).unwrap().0,
            "héllo".to_string()
        );
        assert!(decode_exact::<Utf8String>("t", &[2, 0xff, 0xfe]).is_err());
        assert!(decode_exact::<Utf8String>("t", &[2, b'a', 0]).is_err());
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let big = vec![0u8; MAX_COMPONENT_LEN + 1];
        assert!(matches!(
            decode_exact::<Opaque>("t", &big),
            Err(ComponentError::TooLong { .. })
        ));
    }
}
