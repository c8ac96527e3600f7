//! Content tests against the upstream examples (draft-ietf-mimi-content `examples/`), planted
//! faults, the C§9.1 limits, and robustness on truncated and mutated input.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::cbor::{self, CborError, Value};
use super::*;
use crate::ids::{RoomUri, UserUri};

/// The vendored upstream examples (`testdata/README.md` gives their source and licence).
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/mimi-content");

struct Example {
    name: String,
    cbor: Vec<u8>,
    edn: String,
}

/// Every `*.cbor` in the upstream examples directory, sorted, with its `.edn`.
fn examples() -> Vec<Example> {
    let mut paths: Vec<_> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("reading {DIR}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .cbor examples found in {DIR}");
    paths
        .into_iter()
        .map(|p| Example {
            name: p.file_stem().expect("stem").to_string_lossy().into_owned(),
            cbor: std::fs::read(&p).expect("read .cbor"),
            edn: std::fs::read_to_string(p.with_extension("edn"))
                .unwrap_or_else(|e| panic!("{}: missing .edn: {e}", p.display())),
        })
        .collect()
}

fn example(name: &str) -> Example {
    examples()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("example {name} not found"))
}

/// The bytes of the first `h'...'` literal after `marker` (EDN hex literals may span lines,
/// with `#` comment markers between them).
fn edn_hex_after(edn: &str, marker: &str) -> Option<Vec<u8>> {
    let start = edn.find(marker)? + marker.len();
    let rest = edn.get(start..)?;
    let rest = rest.get(rest.find("h'")? + 2..)?;
    let body = rest.get(..rest.find('\'')?)?;
    let digits: String = body
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '#')
        .collect();
    assert!(
        digits.chars().all(|c| c.is_ascii_hexdigit()),
        "unexpected characters in EDN hex literal {body:?}"
    );
    Some(hex::decode(digits).expect("EDN hex"))
}

/// The expected ID from an example's header comment `# message ID = h'…'`.
fn edn_message_id(edn: &str) -> Option<[u8; 32]> {
    let id = edn_hex_after(edn, "# message ID =")?;
    Some(
        id.try_into()
            .expect("a message ID in an .edn header is 32 bytes"),
    )
}

/// For every upstream example: generic decode/encode is byte-identical; content messages
/// (those whose .edn names a message ID) decode as `MimiContent`, re-encode byte for byte,
/// and have the message ID written in the .edn.
#[test]
fn upstream_examples_round_trip_with_their_message_ids() {
    let mut checked = Vec::new();
    let mut cardinalities = std::collections::BTreeSet::new();
    let (mut with_expiry, mut with_replaces) = (false, false);
    for ex in examples() {
        let value = cbor::decode(&ex.cbor).unwrap_or_else(|e| panic!("{}: {e}", ex.name));
        assert_eq!(value.encode(), ex.cbor, "{}: generic re-encoding", ex.name);

        let Some(want_id) = edn_message_id(&ex.edn) else {
            // Not a content message (implied-original holds MessageDerivedValues).
            assert!(
                MimiContent::decode(&ex.cbor).is_err(),
                "{}: has no message ID header but decodes as content",
                ex.name
            );
            continue;
        };
        let content = MimiContent::decode(&ex.cbor).unwrap_or_else(|e| panic!("{}: {e}", ex.name));
        assert_eq!(
            content.encode(),
            ex.cbor,
            "{}: content re-encoding",
            ex.name
        );
        assert_eq!(content.to_value(), value, "{}", ex.name);
        assert_eq!(
            message_id(&ex.cbor),
            Ok(want_id),
            "{}: message_id()",
            ex.name
        );
        assert_eq!(content.message_id(), Ok(MessageId(want_id)), "{}", ex.name);
        cardinalities.insert(match content.nested_part.content {
            PartContent::Null => 0,
            PartContent::Single { .. } => 1,
            PartContent::External(_) => 2,
            PartContent::Multi { .. } => 3,
        });
        with_expiry |= content.expires.is_some();
        with_replaces |= content.replaces.is_some();
        checked.push(ex.name);
    }
    assert!(!checked.is_empty(), "no content example with a message ID");
    // The vectors exercise every cardinality and the optional fields.
    assert_eq!(
        cardinalities.len(),
        4,
        "cardinalities seen: {cardinalities:?}"
    );
    assert!(with_expiry && with_replaces);
}

/// `implied-original.cbor` still holds the -07 ID of the original message (no length
/// prefixes), while its .edn shows the -08 ID, which our formula reproduces.
#[test]
fn implied_original_holds_the_draft07_id() {
    let original = example("original");
    let implied = example("implied-original");
    let content = MimiContent::decode(&original.cbor).expect("original decodes");
    let sender = content.extensions.sender_uri.as_deref().expect("sender");
    let room = content.extensions.room_uri.as_deref().expect("room");
    let mut h = Sha256::new();
    h.update(sender);
    h.update(room);
    h.update(&original.cbor);
    h.update(content.salt);
    let mut draft07 = vec![HASH_ALG_SHA256];
    draft07.extend_from_slice(&h.finalize()[..31]);

    let derived = cbor::decode(&implied.cbor).expect("implied-original decodes");
    let first = derived
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_bytes);
    assert_eq!(first, Some(draft07.as_slice()));

    let edn_id = edn_hex_after(&implied.edn, "messageId").expect("messageId in .edn");
    assert_eq!(
        Ok(edn_id.as_slice()),
        message_id(&original.cbor).as_ref().map(|a| &a[..])
    );
    assert_ne!(edn_id, draft07);
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern present")
}

/// Planted non-deterministic encodings of `original.cbor` are refused with the right error.
#[test]
fn planted_non_canonical_encodings_are_refused() {
    let orig = example("original").cbor;
    // The same CBOR error from decode and from message_id.
    let cbor_err = |b: &[u8]| match (MimiContent::decode(b), message_id(b)) {
        (Err(ContentError::Cbor(e)), Err(ContentError::Cbor(f))) if e == f => e,
        other => panic!("expected the same CBOR error twice, got {other:?}"),
    };

    // 1. Non-shortest integer head: the body's disposition 1 written as 0x18 0x01.
    let body = find(&orig, &[0x85, 0x01, 0x60, 0x01]);
    let mut b = orig.clone();
    b.splice(body + 1..body + 2, [0x18, 0x01]);
    assert_eq!(
        cbor_err(&b),
        CborError::NonShortestHead { offset: body + 1 }
    );

    // 2. Indefinite-length top-level array.
    let mut b = orig.clone();
    b[0] = 0x9f;
    b.push(0xff);
    assert_eq!(cbor_err(&b), CborError::IndefiniteLength { offset: 0 });

    // 3. Unsorted map keys: the extensions map with key 2 before key 1.
    let map = find(&orig, &[0xa2, 0x01, 0x78]);
    let second = find(&orig, &[0x02, 0x78, 0x25]);
    let (e1, e2) = (&orig[map + 1..second], &orig[second..body]);
    let mut b = orig[..=map].to_vec();
    b.extend_from_slice(e2);
    b.extend_from_slice(e1);
    b.extend_from_slice(&orig[body..]);
    assert_eq!(
        cbor_err(&b),
        CborError::UnsortedMapKeys {
            offset: map + 1 + e2.len()
        }
    );

    // 4. Duplicate key: key 2 rewritten as 1.
    let mut b = orig.clone();
    b[second] = 0x01;
    assert_eq!(cbor_err(&b), CborError::DuplicateMapKey { offset: second });

    // 5. Non-shortest length of the salt byte string.
    let mut b = orig.clone();
    b.splice(1..2, [0x58, 0x10]);
    assert_eq!(cbor_err(&b), CborError::NonShortestHead { offset: 1 });

    // 6. Trailing byte.
    let mut b = orig.clone();
    b.push(0x00);
    assert_eq!(
        cbor_err(&b),
        CborError::TrailingBytes {
            offset: orig.len(),
            count: 1
        }
    );
}

/// Decode `original.cbor`, let `f` change the value, and decode the re-encoding as content.
fn decode_modified(f: impl FnOnce(&mut Vec<Value>)) -> Result<MimiContent, ContentError> {
    let Value::Array(mut a) = cbor::decode(&example("original").cbor).expect("decodes") else {
        panic!("original is an array");
    };
    f(&mut a);
    MimiContent::decode(&Value::Array(a).encode())
}

fn body_mut(a: &mut [Value]) -> &mut Vec<Value> {
    match &mut a[6] {
        Value::Array(b) => b,
        _ => panic!("body is an array"),
    }
}

fn ext_mut(a: &mut [Value]) -> &mut BTreeMap<Value, Value> {
    match &mut a[5] {
        Value::Map(m) => m,
        _ => panic!("extensions is a map"),
    }
}

#[test]
fn structural_faults_give_typed_errors() {
    use ContentError::*;
    type Modify = Box<dyn FnOnce(&mut Vec<Value>)>;
    let cases: Vec<(&str, Modify, ContentError)> = vec![
        (
            "short salt",
            Box::new(|a| a[0] = Value::Bytes(vec![0; 15])),
            SaltLength(15),
        ),
        (
            "not an array",
            Box::new(|a| a.truncate(6)),
            WrongLength {
                what: "mimiContent",
                got: 6,
                expected: 7,
            },
        ),
        (
            "short replaces",
            Box::new(|a| a[1] = Value::Bytes(vec![1; 31])),
            MessageIdLength {
                field: "replaces",
                got: 31,
            },
        ),
        (
            "unknown hash algorithm",
            Box::new(|a| a[4] = Value::Bytes(vec![2; 32])),
            UnknownHashAlgorithm {
                field: "inReplyTo",
                alg: 2,
            },
        ),
        (
            "topicId text",
            Box::new(|a| a[2] = Value::Text(String::new())),
            WrongType {
                field: "topicId",
                expected: "byte string",
            },
        ),
        (
            "expiry time over 32 bits",
            Box::new(|a| a[3] = Value::Array(vec![Value::Bool(true), Value::Unsigned(1 << 32)])),
            OutOfRange {
                field: "expires.time",
                value: 1 << 32,
                bits: 32,
            },
        ),
        (
            "disposition over 8 bits",
            Box::new(|a| body_mut(a)[0] = Value::Unsigned(256)),
            OutOfRange {
                field: "disposition",
                value: 256,
                bits: 8,
            },
        ),
        (
            "unknown cardinality",
            Box::new(|a| body_mut(a)[2] = Value::Unsigned(4)),
            UnknownCardinality(4),
        ),
        (
            "single part with extra field",
            Box::new(|a| body_mut(a).push(Value::Null)),
            WrongLength {
                what: "NestedPart",
                got: 6,
                expected: 5,
            },
        ),
        (
            "unknown partSemantics",
            Box::new(|a| {
                let leaf = a[6].clone();
                *body_mut(a) = vec![
                    Value::Unsigned(1),
                    Value::Text(String::new()),
                    Value::Unsigned(3),
                    Value::Unsigned(3),
                    Value::Array(vec![leaf.clone(), leaf]),
                ];
            }),
            UnknownPartSemantics(3),
        ),
        (
            "multipart with one part",
            Box::new(|a| {
                let leaf = a[6].clone();
                *body_mut(a) = vec![
                    Value::Unsigned(1),
                    Value::Text(String::new()),
                    Value::Unsigned(3),
                    Value::Unsigned(0),
                    Value::Array(vec![leaf]),
                ];
            }),
            TooFewParts(1),
        ),
        (
            "sender URI not text",
            Box::new(|a| {
                ext_mut(a).insert(Value::Unsigned(1), Value::Bytes(vec![]));
            }),
            WrongType {
                field: "senderUri (extension 1)",
                expected: "text string",
            },
        ),
        (
            "extension key too long",
            Box::new(|a| {
                ext_mut(a).insert(Value::Text("k".repeat(256)), Value::Null);
            }),
            InvalidExtensionKey(format!("{:?}", "k".repeat(256))),
        ),
        (
            "extension key beyond 2^53",
            Box::new(|a| {
                ext_mut(a).insert(Value::Unsigned(1 << 53), Value::Null);
            }),
            InvalidExtensionKey((1u64 << 53).to_string()),
        ),
        (
            "extension key bytes",
            Box::new(|a| {
                ext_mut(a).insert(Value::Bytes(vec![1]), Value::Null);
            }),
            InvalidExtensionKey("Bytes([1])".into()),
        ),
    ];
    for (what, f, want) in cases {
        assert_eq!(decode_modified(f), Err(want), "{what}");
    }

    // C§6 depth: the extensions map is level 1; the draft's 4-level example passes, one more
    // level fails.
    let four = Value::Array(vec![Value::Array(vec![Value::Tag(
        32,
        Box::new(Value::Text("http://example.com".into())),
    )])]);
    let five = Value::Array(vec![four.clone()]);
    let ok = decode_modified(|a| {
        ext_mut(a).insert(Value::Unsigned(256), four.clone());
    })
    .expect("4 levels are allowed");
    assert_eq!(ok.extensions.get(&ExtensionKey::Int(256)), Some(&four));
    assert!(matches!(
        decode_modified(|a| {
            ext_mut(a).insert(Value::Unsigned(256), five);
        }),
        Err(InvalidExtension { .. })
    ));
    // C§6: nested map keys are integers, text or bytes.
    let bad_key = Value::Map(BTreeMap::from([(Value::Bool(true), Value::Null)]));
    assert!(matches!(
        decode_modified(|a| {
            ext_mut(a).insert(Value::integer(-7), bad_key);
        }),
        Err(InvalidExtension { .. })
    ));

    // An unknown disposition is kept and treated as render (C§9.1).
    let c = decode_modified(|a| body_mut(a)[0] = Value::Unsigned(200)).expect("accepted");
    assert_eq!(c.nested_part.disposition, Disposition(200));
    assert_eq!(c.nested_part.disposition.effective(), Disposition::RENDER);
}

fn leaf(i: usize) -> NestedPart {
    NestedPart {
        disposition: Disposition::RENDER,
        language: String::new(),
        content: PartContent::Single {
            content_type: TEXT_PLAIN_UTF8.into(),
            content: i.to_string().into_bytes(),
        },
    }
}

fn multi(parts: Vec<NestedPart>) -> NestedPart {
    NestedPart {
        disposition: Disposition::RENDER,
        language: String::new(),
        content: PartContent::Multi {
            semantics: PartSemantics::ProcessAll,
            parts,
        },
    }
}

/// A body `levels` NestedParts deep (top-level = 1).
fn nested(levels: usize) -> NestedPart {
    let mut p = leaf(0);
    for _ in 1..levels {
        p = multi(vec![p, leaf(1)]);
    }
    p
}

fn sample() -> MimiContent {
    let alice = UserUri::new(&crate::ids::Domain::new("a.example").unwrap(), "alice").unwrap();
    let room: RoomUri = "mimi://hub.example/r/clubhouse".parse().unwrap();
    MimiContent::text([7; 16], &alice, &room, "hello")
}

/// Both `validate` (on a built message) and `decode` (on its encoding) apply a limit.
fn check_limit(c: &MimiContent) -> Result<(), ContentError> {
    let by_validate = c.validate();
    let by_decode = MimiContent::decode(&c.encode()).map(|d| assert_eq!(&d, c));
    assert_eq!(by_validate, by_decode);
    by_validate
}

#[test]
fn receiver_limits() {
    let mut c = sample();
    // Nesting depth (C§6): 4 levels pass, 5 fail.
    c.nested_part = nested(MAX_NESTING_DEPTH);
    assert_eq!(check_limit(&c), Ok(()));
    c.nested_part = nested(MAX_NESTING_DEPTH + 1);
    assert_eq!(
        check_limit(&c),
        Err(ContentError::NestingTooDeep { depth: 5, limit: 4 })
    );

    // Part count (C§9.1): the root plus 1023 parts pass, one more fails.
    c.nested_part = multi((0..MAX_PARTS - 1).map(leaf).collect());
    assert_eq!(check_limit(&c), Ok(()));
    c.nested_part = multi((0..MAX_PARTS).map(leaf).collect());
    assert_eq!(
        check_limit(&c),
        Err(ContentError::TooManyParts { limit: 1024 })
    );
    // Containers count too: a root with n children of 3 parts each has 1 + 3n parts.
    let containers = |n: usize| multi((0..n).map(|i| multi(vec![leaf(i), leaf(i)])).collect());
    c.nested_part = containers(341);
    assert_eq!(check_limit(&c), Ok(()));
    c.nested_part = containers(342);
    assert_eq!(
        check_limit(&c),
        Err(ContentError::TooManyParts { limit: 1024 })
    );

    // topicId length (C§9.1).
    let mut c = sample();
    c.topic_id = vec![0xaa; MAX_TOPIC_ID_LEN];
    assert_eq!(check_limit(&c), Ok(()));
    c.topic_id.push(0xaa);
    assert_eq!(
        check_limit(&c),
        Err(ContentError::TopicIdTooLong {
            len: 4097,
            limit: 4096
        })
    );

    // A multipart built with one part is refused by validate as well.
    let mut c = sample();
    c.nested_part = multi(vec![leaf(0)]);
    assert_eq!(c.validate(), Err(ContentError::TooFewParts(1)));

    // Oversized input is refused before parsing.
    let big = vec![0u8; MAX_CONTENT_LEN + 1];
    assert_eq!(
        MimiContent::decode(&big),
        Err(ContentError::Cbor(CborError::TooLarge {
            len: MAX_CONTENT_LEN + 1,
            limit: MAX_CONTENT_LEN
        }))
    );
}

#[test]
fn expiry_plausibility() {
    const YEAR: u64 = 366 * 24 * 3600;
    let now: u64 = 1_644_389_403; // the expiring example's send time, in seconds
    let abs = |t: u64| Expiration {
        relative: false,
        time: t as u32,
    };
    let rel = |t: u64| Expiration {
        relative: true,
        time: t as u32,
    };
    // The upstream expiring example: absolute, 10 minutes after sending.
    let ex = MimiContent::decode(&example("expiring").cbor).expect("decodes");
    assert_eq!(ex.expires, Some(abs(1_644_390_004)));
    assert_eq!(ex.expires.map(|e| e.check(now)), Some(Ok(())));
    assert_eq!(abs(now + YEAR).check(now), Ok(()));
    assert_eq!(abs(now - YEAR).check(now), Ok(()));
    assert_eq!(
        abs(now + YEAR + 1).check(now),
        Err(ContentError::ImplausibleExpiry {
            time: now + YEAR + 1,
            now
        })
    );
    assert!(abs(now - YEAR - 1).check(now).is_err());
    assert_eq!(rel(YEAR).check(now), Ok(()));
    assert!(rel(YEAR + 1).check(now).is_err());
}

/// Every proper prefix of every example is refused, without panicking.
#[test]
fn truncations_are_refused() {
    for ex in examples() {
        for n in 0..ex.cbor.len() {
            let b = &ex.cbor[..n];
            assert!(cbor::decode(b).is_err(), "{} prefix {n}", ex.name);
            assert!(MimiContent::decode(b).is_err(), "{} prefix {n}", ex.name);
            assert!(message_id(b).is_err(), "{} prefix {n}", ex.name);
        }
    }
}

/// splitmix64, for deterministic mutations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const MUTATIONS_PER_EXAMPLE: usize = 500;

/// Pseudo-random mutations of every example never panic, and whatever is accepted is
/// deterministic: it re-encodes to exactly the mutated bytes.
#[test]
fn mutations_never_panic_and_accepted_input_is_canonical() {
    // Bytes that make interesting heads: 1/2/4/8-byte arguments, indefinite, break, floats,
    // huge lengths.
    const HEADS: [u8; 12] = [
        0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x5b, 0x7f, 0x9b, 0x9f, 0xbf, 0xf9, 0xff,
    ];
    let mut r = Rng(0x004d_494d_492d_3038);
    let (mut accepted, mut refused) = (0usize, 0usize);
    for ex in examples() {
        for _ in 0..MUTATIONS_PER_EXAMPLE {
            let mut b = ex.cbor.clone();
            for _ in 0..1 + r.below(3) {
                if b.is_empty() {
                    b.push(0);
                }
                let i = r.below(b.len());
                match r.below(5) {
                    0 => b[i] ^= 1 << r.below(8),
                    1 => b[i] = r.below(256) as u8,
                    2 => b.insert(i, r.below(256) as u8),
                    3 => {
                        b.remove(i);
                    }
                    _ => b[i] = HEADS[r.below(HEADS.len())],
                }
            }
            if let Ok(v) = cbor::decode(&b) {
                assert_eq!(
                    v.encode(),
                    b,
                    "{}: accepted non-canonical {}",
                    ex.name,
                    hex::encode(&b)
                );
            }
            match MimiContent::decode(&b) {
                Ok(c) => {
                    accepted += 1;
                    assert_eq!(c.encode(), b, "{}: {}", ex.name, hex::encode(&b));
                    assert_eq!(message_id(&b).map(MessageId), c.message_id());
                }
                Err(_) => {
                    refused += 1;
                    assert!(message_id(&b).is_err());
                }
            }
        }
    }
    eprintln!("mutations: {accepted} accepted, {refused} refused");
    // Both outcomes occur, so the properties above were exercised.
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}

/// The simulator's text message has the documented shape, round-trips, and matches the
/// upstream original message when given its salt, URIs, media type and body.
#[test]
fn text_constructor() {
    let c = sample();
    let bytes = c.encode();
    assert_eq!(MimiContent::decode(&bytes), Ok(c.clone()));
    assert_eq!(c.text_body(), Some("hello"));
    let expected = Value::Array(vec![
        Value::Bytes(vec![7; 16]),
        Value::Null,
        Value::Bytes(vec![]),
        Value::Null,
        Value::Null,
        Value::Map(BTreeMap::from([
            (
                Value::Unsigned(1),
                Value::Text("mimi://a.example/u/alice".into()),
            ),
            (
                Value::Unsigned(2),
                Value::Text("mimi://hub.example/r/clubhouse".into()),
            ),
        ])),
        Value::Array(vec![
            Value::Unsigned(1),
            Value::Text(String::new()),
            Value::Unsigned(1),
            Value::Text("text/plain;charset=utf-8".into()),
            Value::Bytes(b"hello".to_vec()),
        ]),
    ]);
    assert_eq!(cbor::decode(&bytes), Ok(expected));
    let id = c.message_id().expect("id");
    assert_eq!(id.hash_alg(), HASH_ALG_SHA256);
    assert_eq!(message_id(&bytes), Ok(id.0));
    // A different salt gives a different ID for the same text.
    let mut other = c.clone();
    other.salt[0] ^= 1;
    assert_ne!(other.message_id(), Ok(id));

    // Rebuild the upstream original message through the constructor.
    let original = example("original");
    let alice: UserUri = "mimi://example.com/u/alice-smith".parse().unwrap();
    let room: RoomUri = "mimi://example.com/r/engineering_team".parse().unwrap();
    let salt: [u8; 16] = hex::decode("5eed9406c2545547ab6f09f20a18b003")
        .unwrap()
        .try_into()
        .unwrap();
    let mut m = MimiContent::text(
        salt,
        &alice,
        &room,
        "Hi everyone, we just shipped release 2.0. __Good  work__!",
    );
    if let PartContent::Single { content_type, .. } = &mut m.nested_part.content {
        *content_type = "text/markdown;variant=GFM-MIMI".into();
    }
    assert_eq!(m.encode(), original.cbor);
    assert_eq!(
        m.message_id().map(|i| i.0),
        Ok(edn_message_id(&original.edn).unwrap())
    );
}

/// Extensions other than 1 and 2 are kept in deterministic key order and round-trip;
/// keys 1 and 2 are only set through the typed fields.
#[test]
fn extensions() {
    let mut c = sample();
    let e = &mut c.extensions;
    e.insert(ExtensionKey::Text("x".into()), Value::Bool(true))
        .unwrap();
    e.insert(ExtensionKey::Int(-1), Value::Null).unwrap();
    e.insert(ExtensionKey::Int(100), Value::Unsigned(5))
        .unwrap();
    assert_eq!(
        e.insert(ExtensionKey::Int(1), Value::Null),
        Err(ContentError::ReservedExtensionKey(1))
    );
    assert!(matches!(
        e.insert(ExtensionKey::Text(String::new()), Value::Null),
        Err(ContentError::InvalidExtensionKey(_))
    ));
    // Wire order (RFC 8949 §4.2.1): 100 (0x18 0x64) before -1 (0x20) before "x" (0x61 0x78).
    let keys: Vec<_> = e.others().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![
            ExtensionKey::Int(100),
            ExtensionKey::Int(-1),
            ExtensionKey::Text("x".into())
        ]
    );
    let bytes = c.encode();
    let map = find(&bytes, &[0xa5, 0x01]);
    let tail = find(&bytes, &[0x18, 0x64, 0x05, 0x20, 0xf6, 0x61, 0x78, 0xf5]);
    assert!(tail > map);
    assert_eq!(MimiContent::decode(&bytes), Ok(c.clone()));

    // Without sender or room there is no message ID.
    let mut anon = sample();
    anon.extensions.sender_uri = None;
    assert_eq!(
        anon.message_id(),
        Err(ContentError::MissingUri("senderUri (1)"))
    );
    let mut long = sample();
    long.extensions.room_uri = Some("r".repeat(70_000));
    assert_eq!(
        long.message_id(),
        Err(ContentError::UriTooLong {
            which: "room",
            len: 70_000
        })
    );
}
