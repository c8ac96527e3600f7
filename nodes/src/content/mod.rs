//! MIMI content messages (draft-ietf-mimi-content-08, "C"): the CBOR container that MLS
//! application messages carry, and its message ID.
//!
//! * [`cbor`] — our own deterministic CBOR codec (C§6 "CBOR Data Model and Encoding
//!   Restrictions", RFC 8949 §4.2.1).
//! * [`MimiContent`] and its parts — the content model of C§4 and C Appendix A, decoded from and
//!   encoded to CBOR byte for byte, with the receiver limits of C§9.1.
//! * [`message_id`] — the -08 message ID of C§3.3.
//!
//! # Choices
//!
//! * **Floats and other simple values** (C§6 allows floats but "strongly discourages"
//!   them): the codec refuses floats and every simple value except `false`, `true`, `null`.
//!   A message carrying a float in an extension is therefore rejected.
//! * **Nesting depth** (C§6 "NestedParts MUST NOT be nested more than 4-levels deep", C§9.1):
//!   the top-level body is level 1, so at most 4 NestedPart arrays lie on any path. The
//!   draft's own nesting example (C Appendix B.3, parts 0 → 1 → 2 → 3) uses exactly 4 levels.
//! * **Part count** (C§9.1 "more than 1024"): every NestedPart counts, multipart containers
//!   included, because every NestedPart has a partIndex (C§4 "Message Bodies").
//! * **Checks at decode**: [`MimiContent::decode`] applies the CDDL structure, the C§6 data
//!   model and depth restrictions and the C§9.1 limits ([`MimiContent::validate`]); the
//!   verdict for all of them is "discard", so one error path serves. A `replaces` or
//!   `inReplyTo` ID whose first byte is not SHA-256 (0x01) is rejected (C§9.1 "unknown hash
//!   algorithm").
//! * **Unknown partSemantics** is an error (C§9.1 lists it as malicious); an unknown
//!   disposition (9..255) is kept as is and [`Disposition::effective`] treats it as render.
//! * **Extension values**: no size limit per value (the inline CDDL's `.size (0..4095)` was
//!   removed in -08; the complete CDDL has none); the whole message is bounded by
//!   [`MAX_CONTENT_LEN`]. Extension key 0 ("reserved") is kept like any unknown key.
//! * **Expiry plausibility** (C§9.1 "more than a year"): a year is 366 days, so that a
//!   calendar year ahead is never refused; it needs the caller's clock
//!   ([`Expiration::check`]) and is not part of `decode`.
//! * **Message ID without sender or room URI**: an error; the -08 formula needs both.
//! * **Test vectors**: `implied-original.cbor` in the upstream examples still carries the
//!   -07 ID of the original message (no length prefixes) while its `.edn` shows the -08 ID;
//!   we follow -08 (see the tests).

pub mod cbor;
mod message_id;
mod model;

#[cfg(test)]
mod tests;

pub use message_id::HASH_ALG_SHA256;

pub use model::{
    Disposition, Expiration, ExtensionKey, Extensions, ExternalPart, MessageId, MimiContent,
    NestedPart, PartContent, PartSemantics, EXTENSION_ROOM_URI, EXTENSION_SENDER_URI,
    MAX_CONTENT_LEN, MAX_EXTENSION_DEPTH, MAX_EXTENSION_KEY_TEXT_LEN, MAX_NESTING_DEPTH, MAX_PARTS,
    MAX_SAFE_INTEGER, MAX_TOPIC_ID_LEN, TEXT_PLAIN_UTF8,
};

use cbor::CborError;

/// The message ID of an encoded content message. The bytes must be a valid message in
/// deterministic CBOR ([`MimiContent::decode`]) with sender and room URIs (extensions 1, 2).
pub fn message_id(cbor: &[u8]) -> Result<[u8; 32], ContentError> {
    MimiContent::decode(cbor)?.message_id_of_encoding(cbor)
}

/// Why a MIMI content message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("content is not deterministic CBOR: {0}")]
    Cbor(#[from] CborError),
    #[error("{field}: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("{what} has {got} elements, expected {expected}")]
    WrongLength {
        what: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("salt is {0} bytes, C§4 requires 16")]
    SaltLength(usize),
    #[error("{field} is {got} bytes, a MessageId is 32 (C§4)")]
    MessageIdLength { field: &'static str, got: usize },
    #[error("{field} value {value} does not fit in {bits} bits (C§4)")]
    OutOfRange {
        field: &'static str,
        value: u64,
        bits: u32,
    },
    #[error("unknown cardinality {0} (C§4: 0 nullpart, 1 single, 2 external, 3 multi)")]
    UnknownCardinality(u64),
    #[error("unknown partSemantics {0} (C§9.1: discard)")]
    UnknownPartSemantics(u64),
    #[error("multipart body has {0} parts; C§4 requires at least 2")]
    TooFewParts(usize),
    #[error("body is nested {depth} levels deep; the limit is {limit} (C§6, C§9.1)")]
    NestingTooDeep { depth: usize, limit: usize },
    #[error("body has more than {limit} parts (C§9.1)")]
    TooManyParts { limit: usize },
    #[error("topicId is {len} bytes; the limit is {limit} (C§9.1)")]
    TopicIdTooLong { len: usize, limit: usize },
    #[error("extension key {0} is not an integer within ±(2^53−1) or a text string of 1..255 bytes (C§4, C§6)")]
    InvalidExtensionKey(String),
    #[error("extension key {0} belongs to a typed field; set it there")]
    ReservedExtensionKey(i64),
    #[error("extension {key}: {problem}")]
    InvalidExtension { key: String, problem: String },
    #[error(
        "{field} names hash algorithm {alg:#04x}; only SHA-256 (0x01) is known (C§3.3, C§9.1)"
    )]
    UnknownHashAlgorithm { field: &'static str, alg: u8 },
    #[error("the message ID needs the {0} extension (C§3.3)")]
    MissingUri(&'static str),
    #[error("{which} URI is {len} bytes, longer than a u16 length prefix allows (C§3.3)")]
    UriTooLong { which: &'static str, len: usize },
    #[error("expiry time {time} is more than a year from now ({now}) (C§9.1)")]
    ImplausibleExpiry { time: u64, now: u64 },
}
