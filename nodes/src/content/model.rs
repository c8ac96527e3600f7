//! The content model of C§4 (CDDL in C Appendix A) and its mapping to CBOR values.

use std::collections::BTreeMap;
use std::fmt;

use super::cbor::{self, Value};
use super::message_id::{compute_message_id, HASH_ALG_SHA256};
use super::ContentError;
use crate::ids::{RoomUri, UserUri};

/// NestedParts may be nested at most this many levels; the top-level body is level 1
/// (C§6 "Depth restrictions", C§9.1).
pub const MAX_NESTING_DEPTH: usize = 4;
/// A body may hold at most this many NestedParts, containers included (C§9.1).
pub const MAX_PARTS: usize = 1024;
/// Longest accepted topicId in bytes (C§9.1).
pub const MAX_TOPIC_ID_LEN: usize = 4096;
/// Deepest nesting of maps, arrays and tags in the extensions map, which is level 1 (C§6).
pub const MAX_EXTENSION_DEPTH: usize = 4;
/// Longest text extension key in bytes (C§4 "Extension Fields").
pub const MAX_EXTENSION_KEY_TEXT_LEN: usize = 255;
/// Integer map keys inside extensions must be within ±(2^53 − 1) (C§6 "Data model").
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Largest encoded content message accepted ("too large according to local policy", C§9.1).
pub const MAX_CONTENT_LEN: usize = cbor::MAX_ENCODED_LEN;
/// Extension key of the sender URI (C§8.2.1 registry).
pub const EXTENSION_SENDER_URI: i64 = 1;
/// Extension key of the room URI (C§8.2.1 registry).
pub const EXTENSION_ROOM_URI: i64 = 2;
/// The plain-text media type every MIMI client must receive (C§7.1).
pub const TEXT_PLAIN_UTF8: &str = "text/plain;charset=utf-8";

const SALT_LEN: usize = 16;
const MESSAGE_ID_LEN: usize = 32;
const CARD_NULL: u64 = 0;
const CARD_SINGLE: u64 = 1;
const CARD_EXTERNAL: u64 = 2;
const CARD_MULTI: u64 = 3;

/// A 32-byte MIMI message ID: hash algorithm byte, then 31 bytes of hash (C§3.3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first byte: the IANA named-information hash algorithm (0x01 = SHA-256).
    pub fn hash_alg(&self) -> u8 {
        self.0[0]
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// `Expiration = [relative: bool, time: uint .size 4]` (C§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiration {
    /// `true`: `time` seconds after the receiver reads it; `false`: `time` is UNIX seconds.
    pub relative: bool,
    pub time: u32,
}

/// "More than a year" of C§9.1, as 366 days (see Choices).
const YEAR_SECS: u64 = 366 * 24 * 60 * 60;

impl Expiration {
    /// C§9.1: refuse an expiry more than a year in the future (relative or absolute) or, for
    /// an absolute one, more than a year in the past. `now_secs` is the caller's clock.
    pub fn check(&self, now_secs: u64) -> Result<(), ContentError> {
        let time = u64::from(self.time);
        let too_far = if self.relative {
            time > YEAR_SECS
        } else {
            time.abs_diff(now_secs) > YEAR_SECS
        };
        if too_far {
            Err(ContentError::ImplausibleExpiry {
                time,
                now: now_secs,
            })
        } else {
            Ok(())
        }
    }
}

/// A part's disposition (C§4.4, registry C§8.2.2). Values 9..255 are unknown and are
/// treated as render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Disposition(pub u8);

impl Disposition {
    pub const UNSPECIFIED: Disposition = Disposition(0);
    pub const RENDER: Disposition = Disposition(1);
    pub const REACTION: Disposition = Disposition(2);
    pub const PROFILE: Disposition = Disposition(3);
    pub const INLINE: Disposition = Disposition(4);
    pub const ICON: Disposition = Disposition(5);
    pub const ATTACHMENT: Disposition = Disposition(6);
    pub const SESSION: Disposition = Disposition(7);
    pub const PREVIEW: Disposition = Disposition(8);

    /// One of the base dispositions 0..8.
    pub fn is_known(self) -> bool {
        self.0 <= Self::PREVIEW.0
    }
    /// The disposition to act on: unknown values count as render (C§9.1).
    pub fn effective(self) -> Disposition {
        if self.is_known() {
            self
        } else {
            Self::RENDER
        }
    }
}

/// How the parts of a multipart relate (C§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartSemantics {
    /// 0: the receiver picks exactly one part.
    ChooseOne,
    /// 1: all parts form one unit.
    SingleUnit,
    /// 2: each part is processed on its own.
    ProcessAll,
}

impl PartSemantics {
    fn code(self) -> u64 {
        match self {
            PartSemantics::ChooseOne => 0,
            PartSemantics::SingleUnit => 1,
            PartSemantics::ProcessAll => 2,
        }
    }
    fn from_code(c: u64) -> Result<Self, ContentError> {
        match c {
            0 => Ok(PartSemantics::ChooseOne),
            1 => Ok(PartSemantics::SingleUnit),
            2 => Ok(PartSemantics::ProcessAll),
            _ => Err(ContentError::UnknownPartSemantics(c)),
        }
    }
}

/// `ExternalPart` (C§4.5): content referenced by URL, usually AEAD-encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPart {
    pub content_type: String,
    pub url: String,
    /// UNIX seconds after which the content is invalid; 0 = never.
    pub expires: u32,
    /// Size in bytes; 0 = not given.
    pub size: u64,
    /// IANA AEAD algorithm; 0 = not encrypted.
    pub enc_alg: u16,
    pub key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub aad: Vec<u8>,
    /// IANA named-information hash algorithm of `content_hash`.
    pub hash_alg: u8,
    pub content_hash: Vec<u8>,
    pub description: String,
    pub filename: String,
}

/// The cardinality-dependent rest of a NestedPart (C§4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartContent {
    /// Cardinality 0: no content (delete, unlike).
    Null,
    /// Cardinality 1: inline content.
    Single {
        content_type: String,
        content: Vec<u8>,
    },
    /// Cardinality 2: external content.
    External(ExternalPart),
    /// Cardinality 3: at least two nested parts.
    Multi {
        semantics: PartSemantics,
        parts: Vec<NestedPart>,
    },
}

/// `NestedPart = [disposition, language, cardinality-dependent fields]` (C§4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedPart {
    pub disposition: Disposition,
    /// Empty, or a comma-separated list of RFC 5646 language tags.
    pub language: String,
    pub content: PartContent,
}

/// An extension map key: an integer or a text string of 1..255 bytes (C§4.3).
///
/// `Ord` is the deterministic CBOR order of the encoded keys, so iteration follows the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionKey {
    Int(i64),
    Text(String),
}

impl ExtensionKey {
    fn to_value(&self) -> Value {
        match self {
            ExtensionKey::Int(i) => Value::integer(*i),
            ExtensionKey::Text(t) => Value::Text(t.clone()),
        }
    }

    fn check(&self) -> Result<(), ContentError> {
        let ok = match self {
            ExtensionKey::Int(i) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
            ExtensionKey::Text(t) => (1..=MAX_EXTENSION_KEY_TEXT_LEN).contains(&t.len()),
        };
        if ok {
            Ok(())
        } else {
            Err(ContentError::InvalidExtensionKey(self.to_string()))
        }
    }

    fn from_value(v: &Value) -> Result<Self, ContentError> {
        let key = match v {
            Value::Text(t) => ExtensionKey::Text(t.clone()),
            _ => match v.as_i128().and_then(|i| i64::try_from(i).ok()) {
                Some(i) => ExtensionKey::Int(i),
                None => return Err(ContentError::InvalidExtensionKey(format!("{v:?}"))),
            },
        };
        key.check()?;
        Ok(key)
    }
}

impl fmt::Display for ExtensionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionKey::Int(i) => write!(f, "{i}"),
            ExtensionKey::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl Ord for ExtensionKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_value().cmp(&other.to_value())
    }
}

impl PartialOrd for ExtensionKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The `mimiExtensions` map (C§4.3): sender URI (key 1) and room URI (key 2) typed, every
/// other extension kept as a CBOR value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// Key 1, `senderUri`.
    pub sender_uri: Option<String>,
    /// Key 2, `roomUri`.
    pub room_uri: Option<String>,
    other: BTreeMap<ExtensionKey, Value>,
}

impl Extensions {
    /// Add or replace an extension other than keys 1 and 2, after checking the key and the
    /// C§6 data model (depth ≤ 4 with the map as level 1; nested map keys integer, text or
    /// bytes; integer keys within ±(2^53 − 1)). Returns the previous value.
    pub fn insert(
        &mut self,
        key: ExtensionKey,
        value: Value,
    ) -> Result<Option<Value>, ContentError> {
        key.check()?;
        if let ExtensionKey::Int(i @ (EXTENSION_SENDER_URI | EXTENSION_ROOM_URI)) = key {
            return Err(ContentError::ReservedExtensionKey(i));
        }
        check_extension_value(&key, &value)?;
        Ok(self.other.insert(key, value))
    }

    /// An extension other than keys 1 and 2.
    pub fn get(&self, key: &ExtensionKey) -> Option<&Value> {
        self.other.get(key)
    }

    /// Extensions other than keys 1 and 2, in wire order.
    pub fn others(&self) -> impl Iterator<Item = (&ExtensionKey, &Value)> {
        self.other.iter()
    }

    fn to_value(&self) -> Value {
        let mut m = BTreeMap::new();
        if let Some(s) = &self.sender_uri {
            m.insert(Value::integer(EXTENSION_SENDER_URI), Value::Text(s.clone()));
        }
        if let Some(r) = &self.room_uri {
            m.insert(Value::integer(EXTENSION_ROOM_URI), Value::Text(r.clone()));
        }
        for (k, v) in &self.other {
            m.insert(k.to_value(), v.clone());
        }
        Value::Map(m)
    }

    fn from_value(v: &Value) -> Result<Self, ContentError> {
        let m = v.as_map().ok_or(ContentError::WrongType {
            field: "mimiExtensions",
            expected: "map",
        })?;
        let mut ext = Extensions::default();
        for (k, v) in m {
            match ExtensionKey::from_value(k)? {
                ExtensionKey::Int(EXTENSION_SENDER_URI) => {
                    ext.sender_uri = Some(text(v, "senderUri (extension 1)")?.to_string());
                }
                ExtensionKey::Int(EXTENSION_ROOM_URI) => {
                    ext.room_uri = Some(text(v, "roomUri (extension 2)")?.to_string());
                }
                key => {
                    ext.insert(key, v.clone())?;
                }
            }
        }
        Ok(ext)
    }
}

fn check_extension_value(key: &ExtensionKey, value: &Value) -> Result<(), ContentError> {
    let invalid = |problem: String| ContentError::InvalidExtension {
        key: key.to_string(),
        problem,
    };
    let depth = 1 + value.depth();
    if depth > MAX_EXTENSION_DEPTH {
        return Err(invalid(format!(
            "nested {depth} levels deep with the map as level 1; the limit is {MAX_EXTENSION_DEPTH} (C§6)"
        )));
    }
    check_nested_map_keys(value).map_err(invalid)
}

/// C§6: map keys inside extensions are integers (within ±(2^53 − 1)), text or bytes.
fn check_nested_map_keys(value: &Value) -> Result<(), String> {
    match value {
        Value::Array(a) => a.iter().try_for_each(check_nested_map_keys),
        Value::Tag(_, c) => check_nested_map_keys(c),
        Value::Map(m) => m.iter().try_for_each(|(k, v)| {
            let ok = match k {
                Value::Unsigned(n) => *n <= MAX_SAFE_INTEGER,
                Value::Negative(n) => *n < MAX_SAFE_INTEGER,
                Value::Text(_) | Value::Bytes(_) => true,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "nested map key {k:?} is not an integer within ±(2^53−1), text or bytes (C§6)"
                ));
            }
            check_nested_map_keys(v)
        }),
        _ => Ok(()),
    }
}

/// `mimiContent` (C§4): one MIMI content message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimiContent {
    /// Per-message random salt (C§4.1, C§9.2).
    pub salt: [u8; 16],
    /// The message this one edits, deletes or replaces.
    pub replaces: Option<MessageId>,
    /// Empty = no topic.
    pub topic_id: Vec<u8>,
    pub expires: Option<Expiration>,
    pub in_reply_to: Option<MessageId>,
    pub extensions: Extensions,
    pub nested_part: NestedPart,
}

impl MimiContent {
    /// The simulator's minimal text message: `[salt, null, h'', null, null, {1: sender,
    /// 2: room}, [1 (render), "", 1 (single), "text/plain;charset=utf-8", body]]`. Render and
    /// an empty language follow the upstream `original.cbor`.
    pub fn text(salt: [u8; 16], sender: &UserUri, room: &RoomUri, body: &str) -> MimiContent {
        MimiContent {
            salt,
            replaces: None,
            topic_id: Vec::new(),
            expires: None,
            in_reply_to: None,
            extensions: Extensions {
                sender_uri: Some(sender.as_str().to_string()),
                room_uri: Some(room.as_str().to_string()),
                other: BTreeMap::new(),
            },
            nested_part: NestedPart {
                disposition: Disposition::RENDER,
                language: String::new(),
                content: PartContent::Single {
                    content_type: TEXT_PLAIN_UTF8.to_string(),
                    content: body.as_bytes().to_vec(),
                },
            },
        }
    }

    /// The body text, if the body is a single inline `text/*` part in UTF-8.
    pub fn text_body(&self) -> Option<&str> {
        match &self.nested_part.content {
            PartContent::Single {
                content_type,
                content,
            } if content_type.starts_with("text/") => std::str::from_utf8(content).ok(),
            _ => None,
        }
    }

    /// Decode a content message: deterministic CBOR only, the C§4 structure, then
    /// [`Self::validate`].
    pub fn decode(bytes: &[u8]) -> Result<MimiContent, ContentError> {
        let limits = cbor::Limits {
            max_len: MAX_CONTENT_LEN,
            ..cbor::Limits::DEFAULT
        };
        let value = cbor::decode_with_limits(bytes, &limits)?;
        let content = MimiContent::from_value(&value)?;
        content.validate()?;
        Ok(content)
    }

    /// The deterministic CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.to_value().encode()
    }

    /// The -08 message ID of this message (C§3.3).
    pub fn message_id(&self) -> Result<MessageId, ContentError> {
        self.message_id_of_encoding(&self.encode()).map(MessageId)
    }

    /// The C§3.3 hash over `cbor`, which must be this message's encoding (as received: the
    /// ID covers the bytes, so a receiver hashes what it got, not a re-encoding).
    pub(super) fn message_id_of_encoding(&self, cbor: &[u8]) -> Result<[u8; 32], ContentError> {
        let ext = &self.extensions;
        compute_message_id(
            ext.sender_uri.as_deref(),
            ext.room_uri.as_deref(),
            cbor,
            &self.salt,
        )
    }

    /// The receiver checks of C§9.1 that need no outside state: topicId length, nesting
    /// depth, part count, at least two parts per multipart, known hash algorithm of
    /// `replaces` and `inReplyTo`.
    pub fn validate(&self) -> Result<(), ContentError> {
        if self.topic_id.len() > MAX_TOPIC_ID_LEN {
            return Err(ContentError::TopicIdTooLong {
                len: self.topic_id.len(),
                limit: MAX_TOPIC_ID_LEN,
            });
        }
        for (field, id) in [
            ("replaces", &self.replaces),
            ("inReplyTo", &self.in_reply_to),
        ] {
            if let Some(id) = id {
                if id.hash_alg() != HASH_ALG_SHA256 {
                    return Err(ContentError::UnknownHashAlgorithm {
                        field,
                        alg: id.hash_alg(),
                    });
                }
            }
        }
        let mut count = 0;
        check_part(&self.nested_part, 1, &mut count)
    }

    /// The CBOR value of this message.
    pub fn to_value(&self) -> Value {
        let id = |m: &Option<MessageId>| match m {
            Some(id) => Value::Bytes(id.0.to_vec()),
            None => Value::Null,
        };
        Value::Array(vec![
            Value::Bytes(self.salt.to_vec()),
            id(&self.replaces),
            Value::Bytes(self.topic_id.clone()),
            match &self.expires {
                Some(e) => Value::Array(vec![
                    Value::Bool(e.relative),
                    Value::Unsigned(u64::from(e.time)),
                ]),
                None => Value::Null,
            },
            id(&self.in_reply_to),
            self.extensions.to_value(),
            self.nested_part.to_value(),
        ])
    }

    /// Interpret a CBOR value as a content message (structure only; see [`Self::validate`]).
    pub fn from_value(v: &Value) -> Result<MimiContent, ContentError> {
        let a = array(v, "mimiContent")?;
        let [salt, replaces, topic_id, expires, in_reply_to, extensions, body] = a else {
            return Err(ContentError::WrongLength {
                what: "mimiContent",
                got: a.len(),
                expected: 7,
            });
        };
        let salt = bytes(salt, "salt")?;
        let salt: [u8; SALT_LEN] = salt
            .try_into()
            .map_err(|_| ContentError::SaltLength(salt.len()))?;
        Ok(MimiContent {
            salt,
            replaces: optional_id(replaces, "replaces")?,
            topic_id: bytes(topic_id, "topicId")?.to_vec(),
            expires: if expires.is_null() {
                None
            } else {
                Some(expiration(expires)?)
            },
            in_reply_to: optional_id(in_reply_to, "inReplyTo")?,
            extensions: Extensions::from_value(extensions)?,
            nested_part: NestedPart::from_value(body, 1, &mut 0)?,
        })
    }
}

/// Depth and part-count walk shared by decoding and [`MimiContent::validate`].
fn enter_part(level: usize, count: &mut usize) -> Result<(), ContentError> {
    if level > MAX_NESTING_DEPTH {
        return Err(ContentError::NestingTooDeep {
            depth: level,
            limit: MAX_NESTING_DEPTH,
        });
    }
    *count += 1;
    if *count > MAX_PARTS {
        return Err(ContentError::TooManyParts { limit: MAX_PARTS });
    }
    Ok(())
}

fn check_part(part: &NestedPart, level: usize, count: &mut usize) -> Result<(), ContentError> {
    enter_part(level, count)?;
    if let PartContent::Multi { parts, .. } = &part.content {
        if parts.len() < 2 {
            return Err(ContentError::TooFewParts(parts.len()));
        }
        for p in parts {
            check_part(p, level + 1, count)?;
        }
    }
    Ok(())
}

impl NestedPart {
    /// The CBOR value of this part.
    pub fn to_value(&self) -> Value {
        let mut a = vec![
            Value::Unsigned(u64::from(self.disposition.0)),
            Value::Text(self.language.clone()),
        ];
        match &self.content {
            PartContent::Null => a.push(Value::Unsigned(CARD_NULL)),
            PartContent::Single {
                content_type,
                content,
            } => a.extend([
                Value::Unsigned(CARD_SINGLE),
                Value::Text(content_type.clone()),
                Value::Bytes(content.clone()),
            ]),
            PartContent::External(e) => a.extend([
                Value::Unsigned(CARD_EXTERNAL),
                Value::Text(e.content_type.clone()),
                Value::Text(e.url.clone()),
                Value::Unsigned(u64::from(e.expires)),
                Value::Unsigned(e.size),
                Value::Unsigned(u64::from(e.enc_alg)),
                Value::Bytes(e.key.clone()),
                Value::Bytes(e.nonce.clone()),
                Value::Bytes(e.aad.clone()),
                Value::Unsigned(u64::from(e.hash_alg)),
                Value::Bytes(e.content_hash.clone()),
                Value::Text(e.description.clone()),
                Value::Text(e.filename.clone()),
            ]),
            PartContent::Multi { semantics, parts } => a.extend([
                Value::Unsigned(CARD_MULTI),
                Value::Unsigned(semantics.code()),
                Value::Array(parts.iter().map(NestedPart::to_value).collect()),
            ]),
        }
        Value::Array(a)
    }

    /// Decode a part at nesting `level` (top-level body = 1), counting parts in `count`;
    /// depth and count are checked before descending, so the work is bounded.
    fn from_value(v: &Value, level: usize, count: &mut usize) -> Result<NestedPart, ContentError> {
        enter_part(level, count)?;
        let a = array(v, "NestedPart")?;
        let [disposition, language, cardinality, rest @ ..] = a else {
            return Err(ContentError::WrongLength {
                what: "NestedPart",
                got: a.len(),
                expected: 3,
            });
        };
        let disposition = Disposition(uint_bits(disposition, "disposition", 8)? as u8);
        let language = text(language, "language")?.to_string();
        let card = uint(cardinality, "cardinality")?;
        let content = match (card, rest) {
            (CARD_NULL, []) => PartContent::Null,
            (CARD_SINGLE, [content_type, content]) => PartContent::Single {
                content_type: text(content_type, "contentType")?.to_string(),
                content: bytes(content, "content")?.to_vec(),
            },
            (
                CARD_EXTERNAL,
                [content_type, url, expires, size, enc_alg, key, nonce, aad, hash_alg, content_hash, description, filename],
            ) => PartContent::External(ExternalPart {
                content_type: text(content_type, "contentType")?.to_string(),
                url: text(url, "url")?.to_string(),
                expires: uint_bits(expires, "expires", 32)? as u32,
                size: uint(size, "size")?,
                enc_alg: uint_bits(enc_alg, "encAlg", 16)? as u16,
                key: bytes(key, "key")?.to_vec(),
                nonce: bytes(nonce, "nonce")?.to_vec(),
                aad: bytes(aad, "aad")?.to_vec(),
                hash_alg: uint_bits(hash_alg, "hashAlg", 8)? as u8,
                content_hash: bytes(content_hash, "contentHash")?.to_vec(),
                description: text(description, "description")?.to_string(),
                filename: text(filename, "filename")?.to_string(),
            }),
            (CARD_MULTI, [semantics, parts]) => {
                let semantics = PartSemantics::from_code(uint(semantics, "partSemantics")?)?;
                let items = array(parts, "parts")?;
                if items.len() < 2 {
                    return Err(ContentError::TooFewParts(items.len()));
                }
                let parts = items
                    .iter()
                    .map(|p| NestedPart::from_value(p, level + 1, count))
                    .collect::<Result<Vec<_>, _>>()?;
                PartContent::Multi { semantics, parts }
            }
            (CARD_NULL..=CARD_MULTI, _) => {
                let expected = match card {
                    CARD_NULL => 3,
                    CARD_EXTERNAL => 15,
                    _ => 5,
                };
                return Err(ContentError::WrongLength {
                    what: "NestedPart",
                    got: a.len(),
                    expected,
                });
            }
            (other, _) => return Err(ContentError::UnknownCardinality(other)),
        };
        Ok(NestedPart {
            disposition,
            language,
            content,
        })
    }
}

fn array<'a>(v: &'a Value, field: &'static str) -> Result<&'a [Value], ContentError> {
    v.as_array().ok_or(ContentError::WrongType {
        field,
        expected: "array",
    })
}

fn bytes<'a>(v: &'a Value, field: &'static str) -> Result<&'a [u8], ContentError> {
    v.as_bytes().ok_or(ContentError::WrongType {
        field,
        expected: "byte string",
    })
}

fn text<'a>(v: &'a Value, field: &'static str) -> Result<&'a str, ContentError> {
    v.as_text().ok_or(ContentError::WrongType {
        field,
        expected: "text string",
    })
}

fn uint(v: &Value, field: &'static str) -> Result<u64, ContentError> {
    v.as_u64().ok_or(ContentError::WrongType {
        field,
        expected: "unsigned integer",
    })
}

/// An unsigned integer of at most `bits` bits (CDDL `uint .size n`, n = bits / 8).
fn uint_bits(v: &Value, field: &'static str, bits: u32) -> Result<u64, ContentError> {
    let value = uint(v, field)?;
    if bits < 64 && value >> bits != 0 {
        return Err(ContentError::OutOfRange { field, value, bits });
    }
    Ok(value)
}

fn optional_id(v: &Value, field: &'static str) -> Result<Option<MessageId>, ContentError> {
    if v.is_null() {
        return Ok(None);
    }
    let b = v.as_bytes().ok_or(ContentError::WrongType {
        field,
        expected: "null or 32-byte MessageId",
    })?;
    let id: [u8; MESSAGE_ID_LEN] = b.try_into().map_err(|_| ContentError::MessageIdLength {
        field,
        got: b.len(),
    })?;
    Ok(Some(MessageId(id)))
}

fn expiration(v: &Value) -> Result<Expiration, ContentError> {
    let a = array(v, "expires")?;
    let [relative, time] = a else {
        return Err(ContentError::WrongLength {
            what: "expires",
            got: a.len(),
            expected: 2,
        });
    };
    let relative = match relative {
        Value::Bool(b) => *b,
        _ => {
            return Err(ContentError::WrongType {
                field: "expires.relative",
                expected: "bool",
            })
        }
    };
    Ok(Expiration {
        relative,
        time: uint_bits(time, "expires.time", 32)? as u32,
    })
}
