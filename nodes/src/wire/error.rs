//! [`WireError`]: every way a MIMI body can fail to decode (or encode, sign, verify,
//! encrypt, decrypt), naming the structure and the field where it happened.

use crate::ids::IdError;
use std::fmt;

/// Where in a MIMI structure something went wrong: the draft's structure name and
/// field name (e.g. `HandshakeBundle.proposalOrCommit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The structure's name as written in the draft (e.g. `KeyMaterialRequest`).
    pub structure: &'static str,
    /// The field's name as written in the draft (e.g. `requestingUser`).
    pub field: &'static str,
}

impl Place {
    /// A place in a structure.
    pub const fn new(structure: &'static str, field: &'static str) -> Self {
        Place { structure, field }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.structure, self.field)
    }
}

/// A failure to decode, encode or protect a MIMI wire structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ended before the field was complete.
    #[error("{at}: truncated: {needed} bytes needed, {available} left")]
    Truncated {
        at: Place,
        needed: usize,
        available: usize,
    },
    /// A variable-length (`<V>`) header is not one of the forms RFC 9420 §2.1.2 allows.
    #[error("{at}: invalid variable-length header: {reason}")]
    BadLength { at: Place, reason: &'static str },
    /// A field is longer than the limit this implementation accepts.
    #[error("{at}: length {len} exceeds the limit {max}")]
    TooLong { at: Place, len: usize, max: usize },
    /// A vector holds more items than this implementation accepts.
    #[error("{at}: more than {max} items")]
    TooManyItems { at: Place, max: usize },
    /// An enumerated value that the draft does not define (or marks reserved).
    #[error("{at}: unknown or reserved value {value}")]
    UnknownCode { at: Place, value: u64 },
    /// The presence byte of an `optional<T>` is neither 0 nor 1.
    #[error("{at}: optional presence byte {value} is neither 0 nor 1")]
    BadOptional { at: Place, value: u8 },
    /// An embedded MLS object that openmls refuses to parse.
    #[error("{at}: not a valid MLS {object}: {reason}")]
    Mls {
        at: Place,
        object: &'static str,
        reason: String,
    },
    /// A field that parses but violates a rule of the structure's definition.
    #[error("{at}: {reason}")]
    Invalid { at: Place, reason: String },
    /// A text field that is not UTF-8.
    #[error("{at}: not UTF-8")]
    NotUtf8 { at: Place },
    /// An identifier that is not a well-formed MIMI URI of the expected kind.
    #[error("{at}: invalid identifier: {source}")]
    Identifier { at: Place, source: IdError },
    /// Bytes left over after a complete structure.
    #[error("{structure}: {count} trailing bytes after the end of the structure")]
    TrailingBytes {
        structure: &'static str,
        count: usize,
    },
    /// A body larger than [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
    #[error("{structure}: body of {len} bytes exceeds the limit {max}")]
    BodyTooLarge {
        structure: &'static str,
        len: usize,
        max: usize,
    },
    /// A body that must hold at least one structure is empty.
    #[error("{structure}: empty body")]
    Empty { structure: &'static str },
    /// Serialisation failed (e.g. a vector longer than 2^30 bytes, or a select that
    /// does not match the embedded message).
    #[error("encoding {structure}: {reason}")]
    Encode {
        structure: &'static str,
        reason: String,
    },
    /// A SignWithLabel signature does not verify.
    #[error("{structure}: signature does not verify (label {label:?})")]
    BadSignature {
        structure: &'static str,
        label: &'static str,
    },
    /// A cryptographic operation failed (unsupported suite, wrong key, bad ciphertext).
    #[error("{structure}: {operation} failed: {reason}")]
    Crypto {
        structure: &'static str,
        operation: &'static str,
        reason: String,
    },
}
