//! A small deterministic CBOR codec (RFC 8949 §3 and §4.2.1), sized for MIMI content (C§6).
//!
//! The encoder always writes the deterministic form: shortest heads, definite lengths, map
//! keys in bytewise lexicographic order of their encodings. The decoder accepts *only* that
//! form, so `encode(decode(b)?) == b` holds for every accepted input `b`. It rejects
//! non-shortest heads, indefinite lengths, unsorted or duplicate map keys, trailing bytes,
//! invalid UTF-8, and input beyond explicit [`Limits`], with a typed [`CborError`]; it never
//! panics.
//!
//! Data model: unsigned and negative integers, byte and text strings, arrays, maps, tags,
//! `false`, `true`, `null`. Floats and the other simple values are refused as
//! [`CborError::Unsupported`] (C§6 strongly discourages floats; no MIMI field uses them).
//! Bignums (tags 2 and 3) must be in preferred form: longer than 8 bytes, no leading zero
//! (RFC 8949 §3.4.3, §4.2.1 "bigints as regular integers when they fit").

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Largest input [`decode`] accepts, in bytes.
pub const MAX_ENCODED_LEN: usize = 1 << 20;
/// Deepest nesting of arrays, maps and tags [`decode`] accepts.
pub const MAX_DEPTH: usize = 16;
/// Most data items (counting every element, key and value) [`decode`] accepts.
pub const MAX_ITEMS: usize = 1 << 16;

/// Explicit decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input length in bytes.
    pub max_len: usize,
    /// Maximum nesting of containers (array, map, tag); the outermost container is level 1.
    pub max_depth: usize,
    /// Maximum number of data items in the input.
    pub max_items: usize,
}

impl Limits {
    /// [`MAX_ENCODED_LEN`], [`MAX_DEPTH`], [`MAX_ITEMS`].
    pub const DEFAULT: Limits = Limits {
        max_len: MAX_ENCODED_LEN,
        max_depth: MAX_DEPTH,
        max_items: MAX_ITEMS,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why an input is not accepted as deterministic CBOR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("CBOR input ends early (item at offset {offset} needs more bytes)")]
    Truncated { offset: usize },
    #[error("CBOR head at offset {offset} is not in its shortest form (RFC 8949 §4.2.1)")]
    NonShortestHead { offset: usize },
    #[error("indefinite-length item at offset {offset}; deterministic CBOR requires definite lengths (RFC 8949 §4.2.1)")]
    IndefiniteLength { offset: usize },
    #[error("break code outside an indefinite-length item at offset {offset}")]
    UnexpectedBreak { offset: usize },
    #[error("reserved additional information value {info} at offset {offset} (RFC 8949 §3)")]
    ReservedInfo { offset: usize, info: u8 },
    #[error("map key at offset {offset} sorts before the previous key; keys must be in bytewise lexicographic order of their encodings (RFC 8949 §4.2.1)")]
    UnsortedMapKeys { offset: usize },
    #[error("duplicate map key at offset {offset}")]
    DuplicateMapKey { offset: usize },
    #[error("{count} trailing byte(s) after the CBOR item, from offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
    #[error("CBOR nesting at offset {offset} is deeper than the limit of {limit}")]
    TooDeep { offset: usize, limit: usize },
    #[error("CBOR input of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("CBOR input has more than {limit} data items")]
    TooManyItems { limit: usize },
    #[error("text string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error("malformed CBOR at offset {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("unsupported CBOR item at offset {offset}: {what}")]
    Unsupported { offset: usize, what: &'static str },
    #[error("bignum at offset {offset} is not in preferred form (it fits in a plain integer or has a leading zero byte)")]
    NonPreferredBignum { offset: usize },
}

/// A CBOR data item.
///
/// `Ord` is the deterministic order of RFC 8949 §4.2.1: bytewise lexicographic order of the
/// encodings (computed without encoding). Every `Value` has exactly one encoding, so `Eq`
/// agrees with `Ord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Major type 0.
    Unsigned(u64),
    /// Major type 1: the integer `-1 - n` for the stored `n`.
    Negative(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Value>),
    /// Major type 5; the `BTreeMap` keeps keys sorted in deterministic order and unique.
    Map(BTreeMap<Value, Value>),
    /// Major type 6: tag number and content.
    Tag(u64, Box<Value>),
    /// Simple values 20 and 21.
    Bool(bool),
    /// Simple value 22.
    Null,
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

const SIMPLE_FALSE: u64 = 20;
const SIMPLE_TRUE: u64 = 21;
const SIMPLE_NULL: u64 = 22;

const TAG_POS_BIGNUM: u64 = 2;
const TAG_NEG_BIGNUM: u64 = 3;

impl Value {
    /// An integer as `Unsigned` or `Negative`.
    pub fn integer(i: i64) -> Value {
        if i >= 0 {
            Value::Unsigned(i.unsigned_abs())
        } else {
            // -1 - n = i  =>  n = -(i + 1) = |i| - 1, which cannot overflow.
            Value::Negative(i.unsigned_abs() - 1)
        }
    }

    /// The integer value, if this is an integer.
    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Value::Unsigned(n) => Some(i128::from(*n)),
            Value::Negative(n) => Some(-1 - i128::from(*n)),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Unsigned(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<Value, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Nesting depth in containers: 0 for a scalar, 1 + the deepest child for an array, map
    /// (keys and values) or tag.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(a) => 1 + a.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(m) => {
                1 + m
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            Value::Tag(_, c) => 1 + c.depth(),
            _ => 0,
        }
    }

    /// The deterministic encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Append the deterministic encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        write_head(out, self.major(), self.argument());
        match self {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::Text(t) => out.extend_from_slice(t.as_bytes()),
            Value::Array(a) => a.iter().for_each(|v| v.encode_into(out)),
            Value::Map(m) => m.iter().for_each(|(k, v)| {
                k.encode_into(out);
                v.encode_into(out);
            }),
            Value::Tag(_, c) => c.encode_into(out),
            Value::Unsigned(_) | Value::Negative(_) | Value::Bool(_) | Value::Null => {}
        }
    }

    fn major(&self) -> u8 {
        match self {
            Value::Unsigned(_) => MAJOR_UNSIGNED,
            Value::Negative(_) => MAJOR_NEGATIVE,
            Value::Bytes(_) => MAJOR_BYTES,
            Value::Text(_) => MAJOR_TEXT,
            Value::Array(_) => MAJOR_ARRAY,
            Value::Map(_) => MAJOR_MAP,
            Value::Tag(..) => MAJOR_TAG,
            Value::Bool(_) | Value::Null => MAJOR_SIMPLE,
        }
    }

    /// The head's argument: value, length, tag number or simple value.
    fn argument(&self) -> u64 {
        fn len(n: usize) -> u64 {
            // usize is at most 64 bits on every supported target.
            u64::try_from(n).unwrap_or(u64::MAX)
        }
        match self {
            Value::Unsigned(n) | Value::Negative(n) => *n,
            Value::Bytes(b) => len(b.len()),
            Value::Text(t) => len(t.len()),
            Value::Array(a) => len(a.len()),
            Value::Map(m) => len(m.len()),
            Value::Tag(t, _) => *t,
            Value::Bool(false) => SIMPLE_FALSE,
            Value::Bool(true) => SIMPLE_TRUE,
            Value::Null => SIMPLE_NULL,
        }
    }
}

impl Ord for Value {
    /// Bytewise lexicographic order of the deterministic encodings. The head (major type,
    /// then argument: shortest heads make numeric order equal byte order) decides first;
    /// with equal heads the contents decide, item by item, which is exact because
    /// deterministic encodings are prefix-free.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major(), self.argument())
            .cmp(&(other.major(), other.argument()))
            .then_with(|| match (self, other) {
                (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
                (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Value::Array(a), Value::Array(b)) => a.iter().cmp(b.iter()),
                (Value::Map(a), Value::Map(b)) => a.iter().cmp(b.iter()),
                (Value::Tag(_, a), Value::Tag(_, b)) => a.cmp(b),
                _ => Ordering::Equal,
            })
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Write a head in its shortest form (RFC 8949 §4.2.1).
fn write_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u64::from(u8::MAX) {
        out.push(m | 24);
        out.push(arg as u8);
    } else if arg <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Decode one deterministic CBOR item that spans all of `bytes`, with [`Limits::DEFAULT`].
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    decode_with_limits(bytes, &Limits::DEFAULT)
}

/// Decode one deterministic CBOR item that spans all of `bytes`.
pub fn decode_with_limits(bytes: &[u8], limits: &Limits) -> Result<Value, CborError> {
    if bytes.len() > limits.max_len {
        return Err(CborError::TooLarge {
            len: bytes.len(),
            limit: limits.max_len,
        });
    }
    let mut d = Decoder {
        input: bytes,
        pos: 0,
        items: 0,
        limits,
    };
    d.count_items(1)?;
    let value = d.item(0)?;
    if d.pos != bytes.len() {
        return Err(CborError::TrailingBytes {
            offset: d.pos,
            count: bytes.len() - d.pos,
        });
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: &'a Limits,
}

/// A decoded head: major type, additional information, argument.
struct Head {
    major: u8,
    arg: u64,
}

impl Decoder<'_> {
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, offset: usize) -> Result<&[u8], CborError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CborError::Truncated { offset })?;
        let s = self
            .input
            .get(self.pos..end)
            .ok_or(CborError::Truncated { offset })?;
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize, offset: usize) -> Result<u64, CborError> {
        Ok(self
            .take(n, offset)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Read a head; reject non-shortest arguments, reserved values and indefinite lengths.
    fn head(&mut self) -> Result<Head, CborError> {
        let offset = self.pos;
        let ib = self.be(1, offset)? as u8;
        let (major, info) = (ib >> 5, ib & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                if major == MAJOR_SIMPLE && info > 24 {
                    return Err(CborError::Unsupported {
                        offset,
                        what: "floating-point number",
                    });
                }
                let width = 1usize << (info - 24);
                let arg = self.be(width, offset)?;
                // Simple values 24..31 have no two-byte form (RFC 8949 §3.3).
                let shortest_min = match info {
                    24 if major == MAJOR_SIMPLE => 32,
                    24 => 24,
                    25 => 0x100,
                    26 => 0x1_0000,
                    _ => 0x1_0000_0000,
                };
                if arg < shortest_min {
                    if major == MAJOR_SIMPLE {
                        return Err(CborError::Malformed {
                            offset,
                            what: "simple value below 32 in two-byte form",
                        });
                    }
                    return Err(CborError::NonShortestHead { offset });
                }
                arg
            }
            28..=30 => return Err(CborError::ReservedInfo { offset, info }),
            _ => {
                return Err(match major {
                    MAJOR_BYTES | MAJOR_TEXT | MAJOR_ARRAY | MAJOR_MAP => {
                        CborError::IndefiniteLength { offset }
                    }
                    MAJOR_SIMPLE => CborError::UnexpectedBreak { offset },
                    _ => CborError::Malformed {
                        offset,
                        what: "additional information 31 on an integer or tag",
                    },
                })
            }
        };
        Ok(Head { major, arg })
    }

    fn count_items(&mut self, n: u64) -> Result<(), CborError> {
        let limit = self.limits.max_items;
        let n = usize::try_from(n).map_err(|_| CborError::TooManyItems { limit })?;
        self.items = self
            .items
            .checked_add(n)
            .filter(|t| *t <= limit)
            .ok_or(CborError::TooManyItems { limit })?;
        Ok(())
    }

    /// A length that must fit in the rest of the input (`unit` bytes per element at least).
    fn length(&self, arg: u64, unit: usize, offset: usize) -> Result<usize, CborError> {
        usize::try_from(arg)
            .ok()
            .filter(|n| n.checked_mul(unit).is_some_and(|b| b <= self.remaining()))
            .ok_or(CborError::Truncated { offset })
    }

    /// Decode one item; `depth` is the number of enclosing containers. The item was
    /// already counted: by the caller for the top level, by its container otherwise
    /// (a container counts its elements when it reads its head, before it allocates, so
    /// nested containers can never reserve more than [`Limits::max_items`] slots in all).
    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let offset = self.pos;
        let head = self.head()?;
        let container = matches!(head.major, MAJOR_ARRAY | MAJOR_MAP | MAJOR_TAG);
        if container && depth >= self.limits.max_depth {
            return Err(CborError::TooDeep {
                offset,
                limit: self.limits.max_depth,
            });
        }
        match head.major {
            MAJOR_UNSIGNED => Ok(Value::Unsigned(head.arg)),
            MAJOR_NEGATIVE => Ok(Value::Negative(head.arg)),
            MAJOR_BYTES => {
                let n = self.length(head.arg, 1, offset)?;
                Ok(Value::Bytes(self.take(n, offset)?.to_vec()))
            }
            MAJOR_TEXT => {
                let n = self.length(head.arg, 1, offset)?;
                let s = self.take(n, offset)?;
                let t = std::str::from_utf8(s).map_err(|_| CborError::InvalidUtf8 { offset })?;
                Ok(Value::Text(t.to_string()))
            }
            MAJOR_ARRAY => {
                let n = self.length(head.arg, 1, offset)?;
                self.count_items(head.arg)?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(a))
            }
            MAJOR_MAP => self.map(head.arg, depth, offset),
            MAJOR_TAG => {
                self.count_items(1)?;
                let content = self.item(depth + 1)?;
                if head.arg == TAG_POS_BIGNUM || head.arg == TAG_NEG_BIGNUM {
                    let preferred = content
                        .as_bytes()
                        .is_some_and(|b| b.len() > 8 && b.first() != Some(&0));
                    if !preferred {
                        return Err(CborError::NonPreferredBignum { offset });
                    }
                }
                Ok(Value::Tag(head.arg, Box::new(content)))
            }
            _ => match head.arg {
                SIMPLE_FALSE => Ok(Value::Bool(false)),
                SIMPLE_TRUE => Ok(Value::Bool(true)),
                SIMPLE_NULL => Ok(Value::Null),
                _ => Err(CborError::Unsupported {
                    offset,
                    what: "simple value other than false/true/null",
                }),
            },
        }
    }

    fn map(&mut self, arg: u64, depth: usize, offset: usize) -> Result<Value, CborError> {
        let n = self.length(arg, 2, offset)?;
        self.count_items(arg.saturating_mul(2))?;
        let mut m = BTreeMap::new();
        let mut prev: Option<(usize, usize)> = None;
        for _ in 0..n {
            let key_start = self.pos;
            let key = self.item(depth + 1)?;
            let key_end = self.pos;
            if let Some((ps, pe)) = prev {
                let prev_key = self.input.get(ps..pe);
                let this_key = self.input.get(key_start..key_end);
                match this_key.cmp(&prev_key) {
                    Ordering::Greater => {}
                    Ordering::Equal => {
                        return Err(CborError::DuplicateMapKey { offset: key_start })
                    }
                    Ordering::Less => return Err(CborError::UnsortedMapKeys { offset: key_start }),
                }
            }
            prev = Some((key_start, key_end));
            let value = self.item(depth + 1)?;
            if m.insert(key, value).is_some() {
                return Err(CborError::DuplicateMapKey { offset: key_start });
            }
        }
        Ok(Value::Map(m))
    }
}

#[cfg(test)]
mod tests;
