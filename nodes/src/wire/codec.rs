//! The decoding cursor, the [`Decode`] trait, limits, and the small shared types of
//! P§5: [`Protocol`], [`IdentifierUri`], [`CipherSuite`].
//!
//! Encoding uses `tls_codec::Serialize` (derived where the layout allows). Decoding is
//! hand-written on [`Reader`] so that every error names the structure and the field,
//! every length is checked against the input and a limit before anything is copied,
//! and only canonical encodings are accepted (minimal `<V>` headers, known codes,
//! presence bytes 0/1). Hence `encode(decode(b)) == b` for every accepted `b`.

use super::error::{Place, WireError};
use crate::ids::{ClientUri, RoomUri, UserUri};
use tls_codec::{TlsSerialize, TlsSize, VLBytes};

/// Largest HTTP body accepted for any MIMI endpoint (checked before decoding).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most items accepted in any `<V>` vector of MIMI structures (and most
/// FanoutMessages in one `/notify` body).
pub const MAX_VECTOR_ITEMS: usize = 4096;
/// Longest `IdentifierUri.uri` (and `ratchet_tree_url`) accepted.
pub const MAX_URI_BYTES: usize = 2048;
/// Longest signature accepted (ML-DSA-87 signatures are 4627 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 8192;
/// Longest free text (`errorDescription`) accepted.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest `joiningCode` accepted.
pub const MAX_JOINING_CODE_BYTES: usize = 1024;

/// A cursor over untrusted bytes. Never reads past its slice, never panics.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Take exactly `n` bytes.
    pub fn take(&mut self, n: usize, at: Place) -> Result<&'a [u8], WireError> {
        let available = self.remaining();
        if n > available {
            return Err(WireError::Truncated {
                at,
                needed: n,
                available,
            });
        }
        let end = self.pos + n;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Truncated {
            at,
            needed: n,
            available,
        })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, at: Place) -> Result<[u8; N], WireError> {
        let s = self.take(N, at)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// A `uint8`.
    pub fn u8(&mut self, at: Place) -> Result<u8, WireError> {
        Ok(self.array::<1>(at)?[0])
    }

    /// A `uint16` (network byte order).
    pub fn u16(&mut self, at: Place) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(at)?))
    }

    /// A `uint64` (network byte order).
    pub fn u64(&mut self, at: Place) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(at)?))
    }

    /// A fixed-size array such as `uint8 server_frank[32]`.
    pub fn fixed<const N: usize>(&mut self, at: Place) -> Result<[u8; N], WireError> {
        self.array(at)
    }

    /// The header of a `<V>` vector (RFC 9420 §2.1.2): 1, 2 or 4 bytes, minimal,
    /// and no longer than the bytes that follow.
    pub fn vl_len(&mut self, at: Place) -> Result<usize, WireError> {
        let first = self.u8(at)?;
        let (len, size) = match first >> 6 {
            0 => (u64::from(first & 0x3f), 1),
            1 => {
                let b = self.u8(at)?;
                (u64::from(first & 0x3f) << 8 | u64::from(b), 2)
            }
            2 => {
                let b = self.array::<3>(at)?;
                let v = u64::from(first & 0x3f) << 24
                    | u64::from(b[0]) << 16
                    | u64::from(b[1]) << 8
                    | u64::from(b[2]);
                (v, 4)
            }
            _ => {
                return Err(WireError::BadLength {
                    at,
                    reason: "8-byte length prefix (0b11) is not allowed",
                })
            }
        };
        let minimal = if len <= 0x3f {
            1
        } else if len <= 0x3fff {
            2
        } else {
            4
        };
        if size != minimal {
            return Err(WireError::BadLength {
                at,
                reason: "length not encoded in the minimum number of bytes",
            });
        }
        let len = usize::try_from(len).map_err(|_| WireError::BadLength {
            at,
            reason: "length does not fit in memory",
        })?;
        let available = self.remaining();
        if len > available {
            return Err(WireError::Truncated {
                at,
                needed: len,
                available,
            });
        }
        Ok(len)
    }

    /// An `opaque x<V>` of at most `max` bytes, borrowed.
    pub fn opaque(&mut self, at: Place, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.vl_len(at)?;
        if len > max {
            return Err(WireError::TooLong { at, len, max });
        }
        self.take(len, at)
    }

    /// An `opaque x<V>` of at most `max` bytes, copied.
    pub fn vl_bytes(&mut self, at: Place, max: usize) -> Result<VLBytes, WireError> {
        Ok(VLBytes::new(self.opaque(at, max)?.to_vec()))
    }

    /// An `opaque x<V>` holding UTF-8 text of at most `max` bytes.
    pub fn text(&mut self, at: Place, max: usize) -> Result<String, WireError> {
        let b = self.opaque(at, max)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| WireError::NotUtf8 { at })
    }

    /// A `T x<V>` vector of at most [`MAX_VECTOR_ITEMS`] items, each read by `item`
    /// from a reader bounded to the vector's bytes.
    pub fn vector<T>(
        &mut self,
        at: Place,
        mut item: impl FnMut(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let len = self.vl_len(at)?;
        let mut sub = Reader::new(self.take(len, at)?);
        let mut out = Vec::new();
        while !sub.is_empty() {
            if out.len() >= MAX_VECTOR_ITEMS {
                return Err(WireError::TooManyItems {
                    at,
                    max: MAX_VECTOR_ITEMS,
                });
            }
            let before = sub.remaining();
            out.push(item(&mut sub)?);
            if sub.remaining() == before {
                return Err(WireError::Invalid {
                    at,
                    reason: "vector item of zero length".into(),
                });
            }
        }
        Ok(out)
    }

    /// An `optional<T>`: presence byte 0 or 1, then `T` if 1.
    pub fn optional<T>(
        &mut self,
        at: Place,
        item: impl FnOnce(&mut Reader<'a>) -> Result<T, WireError>,
    ) -> Result<Option<T>, WireError> {
        match self.u8(at)? {
            0 => Ok(None),
            1 => item(self).map(Some),
            value => Err(WireError::BadOptional { at, value }),
        }
    }

    /// One embedded MLS object, parsed by openmls' own `tls_codec` deserializer to find
    /// its extent. Returns the parsed value and exactly the bytes it consumed.
    pub fn mls<T: tls_codec::Deserialize>(
        &mut self,
        at: Place,
        object: &'static str,
    ) -> Result<(T, &'a [u8]), WireError> {
        let start = self.rest();
        let mut cursor = start;
        let value = T::tls_deserialize(&mut cursor).map_err(|e| WireError::Mls {
            at,
            object,
            reason: e.to_string(),
        })?;
        let consumed = start.len().saturating_sub(cursor.len());
        if consumed == 0 {
            return Err(WireError::Mls {
                at,
                object,
                reason: "empty encoding".into(),
            });
        }
        let raw = self.take(consumed, at)?;
        Ok((value, raw))
    }
}

/// A MIMI wire structure that can be decoded from untrusted bytes.
pub trait Decode: Sized {
    /// The structure's name in the draft.
    const NAME: &'static str;
    /// Read one structure from `r`, leaving any following bytes unread.
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError>;
}

/// Decode exactly one `T` from `bytes`: the body must not exceed [`MAX_BODY_BYTES`]
/// and no bytes may follow the structure.
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(WireError::BodyTooLarge {
            structure: T::NAME,
            len: bytes.len(),
            max: MAX_BODY_BYTES,
        });
    }
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r)?;
    if !r.is_empty() {
        return Err(WireError::TrailingBytes {
            structure: T::NAME,
            count: r.remaining(),
        });
    }
    Ok(v)
}

/// Encode a structure to its TLS presentation-language bytes.
pub fn encode<T: Decode + tls_codec::Serialize>(v: &T) -> Result<Vec<u8>, WireError> {
    v.tls_serialize_detached().map_err(|e| WireError::Encode {
        structure: T::NAME,
        reason: e.to_string(),
    })
}

/// `enum { reserved(0), mls10(1), (255) } Protocol;` (P§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
#[repr(u8)]
pub enum Protocol {
    /// MLS 1.0 (RFC 9420).
    Mls10 = 1,
}

impl Protocol {
    /// Read a `Protocol`; `reserved(0)` and unknown values are errors.
    pub fn read(r: &mut Reader<'_>, at: Place) -> Result<Self, WireError> {
        match r.u8(at)? {
            1 => Ok(Protocol::Mls10),
            v => Err(WireError::UnknownCode {
                at,
                value: u64::from(v),
            }),
        }
    }
}

/// `struct { opaque uri<V>; } IdentifierUri;` (P§5.2): a user, client or room URI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
pub struct IdentifierUri {
    /// The URI bytes (UTF-8 for the URIs this project makes).
    pub uri: VLBytes,
}

impl IdentifierUri {
    /// An identifier from raw URI bytes.
    pub fn from_bytes(uri: &[u8]) -> Self {
        IdentifierUri {
            uri: VLBytes::new(uri.to_vec()),
        }
    }

    /// The URI bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.uri.as_slice()
    }

    /// The URI as text, lossily (for traces and summaries).
    pub fn display(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// Read an `IdentifierUri` of at most [`MAX_URI_BYTES`] bytes.
    pub fn read(r: &mut Reader<'_>, at: Place) -> Result<Self, WireError> {
        Ok(IdentifierUri {
            uri: r.vl_bytes(at, MAX_URI_BYTES)?,
        })
    }

    /// The identifier as a user URI (`mimi://<domain>/u/<name>`).
    pub fn user(&self, at: Place) -> Result<UserUri, WireError> {
        UserUri::from_bytes(self.as_bytes()).map_err(|source| WireError::Identifier { at, source })
    }

    /// The identifier as a room URI (`mimi://<domain>/r/<name>`).
    pub fn room(&self, at: Place) -> Result<RoomUri, WireError> {
        RoomUri::from_bytes(self.as_bytes()).map_err(|source| WireError::Identifier { at, source })
    }

    /// The identifier as a client URI (`mimi://<domain>/d/<name>/<device>`).
    pub fn client(&self, at: Place) -> Result<ClientUri, WireError> {
        ClientUri::from_bytes(self.as_bytes())
            .map_err(|source| WireError::Identifier { at, source })
    }
}

impl Decode for IdentifierUri {
    const NAME: &'static str = "IdentifierUri";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Self::read(r, Place::new(Self::NAME, "uri"))
    }
}

macro_rules! identifier_conversions {
    ($t:ty, $method:ident) => {
        impl From<&$t> for IdentifierUri {
            fn from(v: &$t) -> Self {
                IdentifierUri::from_bytes(v.as_bytes())
            }
        }
        impl From<$t> for IdentifierUri {
            fn from(v: $t) -> Self {
                IdentifierUri::from_bytes(v.as_bytes())
            }
        }
        impl TryFrom<&IdentifierUri> for $t {
            type Error = WireError;
            fn try_from(v: &IdentifierUri) -> Result<Self, WireError> {
                v.$method(Place::new("IdentifierUri", "uri"))
            }
        }
    };
}
identifier_conversions!(UserUri, user);
identifier_conversions!(RoomUri, room);
identifier_conversions!(ClientUri, client);

/// An MLS `CipherSuite` code point (`uint16`, RFC 9420 §17.1), kept as a number so
/// that suites openmls does not know can still be carried (e.g. in
/// `acceptableCiphersuites`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// Read a `CipherSuite`.
    pub fn read(r: &mut Reader<'_>, at: Place) -> Result<Self, WireError> {
        r.u16(at).map(CipherSuite)
    }

    /// The openmls ciphersuite, if openmls implements this code point.
    pub fn openmls(&self, at: Place) -> Result<openmls::prelude::Ciphersuite, WireError> {
        openmls::prelude::Ciphersuite::try_from(self.0).map_err(|_| WireError::UnknownCode {
            at,
            value: u64::from(self.0),
        })
    }
}

impl From<openmls::prelude::Ciphersuite> for CipherSuite {
    fn from(c: openmls::prelude::Ciphersuite) -> Self {
        CipherSuite(c as u16)
    }
}

/// Read a C-like `uint8` enum through `from`, which returns `None` for values the
/// draft does not define.
pub fn read_code<T>(
    r: &mut Reader<'_>,
    at: Place,
    from: impl FnOnce(u8) -> Option<T>,
) -> Result<T, WireError> {
    let v = r.u8(at)?;
    from(v).ok_or(WireError::UnknownCode {
        at,
        value: u64::from(v),
    })
}

/// Write raw bytes (for `Serialize` impls of embedded objects).
pub(crate) fn write_raw<W: std::io::Write>(w: &mut W, b: &[u8]) -> Result<usize, tls_codec::Error> {
    w.write_all(b)
        .map_err(|e| tls_codec::Error::EncodingError(e.to_string()))?;
    Ok(b.len())
}

/// Short hex for summaries: the first 8 bytes.
pub(crate) fn short_hex(b: &[u8]) -> String {
    let head = b.get(..8).unwrap_or(b);
    if b.len() > 8 {
        format!("{}…", hex::encode(head))
    } else {
        hex::encode(head)
    }
}

/// A group id or URI for summaries: printable ASCII as text, anything else as hex.
pub(crate) fn printable(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| (0x21..0x7f).contains(c)) {
        String::from_utf8_lossy(b).into_owned()
    } else {
        format!("0x{}", short_hex(b))
    }
}
