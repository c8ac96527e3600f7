//! Codec tests: RFC 8949 Appendix A vectors, planted non-deterministic encodings, limits, and
//! the `Ord` = encoded-bytes-order property.

use super::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

/// RFC 8949 Appendix A examples within our data model: decode, then re-encode byte for byte.
#[test]
fn rfc8949_appendix_a_round_trip() {
    let vectors = [
        "00",
        "01",
        "0a",
        "17",
        "1818",
        "1819",
        "1864",
        "1903e8",
        "1a000f4240",
        "1b000000e8d4a51000",
        "1bffffffffffffffff",
        "c249010000000000000000",
        "3bffffffffffffffff",
        "c349010000000000000000",
        "20",
        "29",
        "3863",
        "3903e7",
        "f4",
        "f5",
        "f6",
        "c074323031332d30332d32315432303a30343a30305a",
        "c11a514b67b0",
        "d74401020304",
        "d818456449455446",
        "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        "40",
        "4401020304",
        "60",
        "6161",
        "6449455446",
        "62225c",
        "62c3bc",
        "63e6b0b4",
        "64f0908591",
        "80",
        "83010203",
        "8301820203820405",
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        "a0",
        "a201020304",
        "a26161016162820203",
        "826161a161626163",
        "a56161614161626142616361436164614461656145",
    ];
    for v in vectors {
        let bytes = h(v);
        let value = decode(&bytes).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(value.encode(), bytes, "re-encoding of {v}");
    }
}

/// Decoded meaning, not just bytes (RFC 8949 Appendix A).
#[test]
fn rfc8949_values() {
    let cases: [(&str, Value); 8] = [
        ("3903e7", Value::integer(-1000)),
        ("1b000000e8d4a51000", Value::Unsigned(1_000_000_000_000)),
        ("3bffffffffffffffff", Value::Negative(u64::MAX)),
        ("63e6b0b4", Value::Text("水".into())),
        (
            "8301820203820405",
            Value::Array(vec![
                Value::integer(1),
                Value::Array(vec![Value::integer(2), Value::integer(3)]),
                Value::Array(vec![Value::integer(4), Value::integer(5)]),
            ]),
        ),
        (
            "a201020304",
            Value::Map(BTreeMap::from([
                (Value::integer(3), Value::integer(4)),
                (Value::integer(1), Value::integer(2)),
            ])),
        ),
        (
            "c11a514b67b0",
            Value::Tag(1, Box::new(Value::Unsigned(1363896240))),
        ),
        ("f6", Value::Null),
    ];
    for (hex, value) in cases {
        assert_eq!(decode(&h(hex)), Ok(value.clone()), "{hex}");
        assert_eq!(value.encode(), h(hex), "{hex}");
    }
    assert_eq!(Value::integer(-1000).as_i128(), Some(-1000));
    assert_eq!(
        Value::integer(i64::MIN).as_i128(),
        Some(i128::from(i64::MIN))
    );
    assert_eq!(Value::integer(i64::MIN).encode(), h("3b7fffffffffffffff"));
}

/// Every head size boundary encodes in its shortest form.
#[test]
fn shortest_heads() {
    let cases: [(u64, &str); 9] = [
        (0, "00"),
        (23, "17"),
        (24, "1818"),
        (255, "18ff"),
        (256, "190100"),
        (65535, "19ffff"),
        (65536, "1a00010000"),
        (u64::from(u32::MAX), "1affffffff"),
        (u64::from(u32::MAX) + 1, "1b0000000100000000"),
    ];
    for (n, hex) in cases {
        assert_eq!(Value::Unsigned(n).encode(), h(hex), "{n}");
        assert_eq!(decode(&h(hex)), Ok(Value::Unsigned(n)));
    }
}

#[test]
fn rejects_non_deterministic_and_malformed() {
    use CborError::*;
    let cases: Vec<(&str, CborError)> = vec![
        // Non-shortest heads: integers, lengths, tags.
        ("1817", NonShortestHead { offset: 0 }),
        ("190017", NonShortestHead { offset: 0 }),
        ("1a000000ff", NonShortestHead { offset: 0 }),
        ("1b00000000ffffffff", NonShortestHead { offset: 0 }),
        ("380a", NonShortestHead { offset: 0 }),
        ("580161", NonShortestHead { offset: 0 }),
        ("82015801ff", NonShortestHead { offset: 2 }),
        ("d80100", NonShortestHead { offset: 0 }),
        // Indefinite lengths (RFC 8949 Appendix A forms).
        ("5f42010243030405ff", IndefiniteLength { offset: 0 }),
        ("7f657374726561646d696e67ff", IndefiniteLength { offset: 0 }),
        ("9fff", IndefiniteLength { offset: 0 }),
        ("9f018202039f0405ffff", IndefiniteLength { offset: 0 }),
        ("83018202039f0405ff", IndefiniteLength { offset: 5 }),
        ("bf61610161629f0203ffff", IndefiniteLength { offset: 0 }),
        // Map key order: unsorted, duplicate, and RFC 7049 "canonical" (length-first) order,
        // which C§6 forbids: -1 (0x20) before 100 (0x18 0x64).
        ("a2020001 00", UnsortedMapKeys { offset: 3 }),
        ("a2010001 00", DuplicateMapKey { offset: 3 }),
        ("a2200018 6400", UnsortedMapKeys { offset: 3 }),
        // Shorter keys sort first: "b" (0x61 0x62) before "aa" (0x62 0x61 0x61).
        ("a2626161006162 00", UnsortedMapKeys { offset: 5 }),
        // Trailing bytes, truncation, bogus lengths (no huge allocation).
        (
            "0000",
            TrailingBytes {
                offset: 1,
                count: 1,
            },
        ),
        ("", Truncated { offset: 0 }),
        ("1901", Truncated { offset: 0 }),
        ("6261", Truncated { offset: 0 }),
        // The declared count cannot fit in the rest of the input: refused at the array head.
        ("8201", Truncated { offset: 0 }),
        ("820161", Truncated { offset: 2 }),
        ("5bffffffffffffffff", Truncated { offset: 0 }),
        ("9bffffffffffffffff", Truncated { offset: 0 }),
        ("bbffffffffffffffff", Truncated { offset: 0 }),
        // Reserved values, stray break, UTF-8.
        (
            "1c",
            ReservedInfo {
                offset: 0,
                info: 28,
            },
        ),
        ("ff", UnexpectedBreak { offset: 0 }),
        (
            "1f",
            Malformed {
                offset: 0,
                what: "additional information 31 on an integer or tag",
            },
        ),
        ("62c328", InvalidUtf8 { offset: 0 }),
        (
            "f818",
            Malformed {
                offset: 0,
                what: "simple value below 32 in two-byte form",
            },
        ),
        // Outside the supported data model.
        (
            "f90000",
            Unsupported {
                offset: 0,
                what: "floating-point number",
            },
        ),
        (
            "fb3ff199999999999a",
            Unsupported {
                offset: 0,
                what: "floating-point number",
            },
        ),
        (
            "f7",
            Unsupported {
                offset: 0,
                what: "simple value other than false/true/null",
            },
        ),
        (
            "f8ff",
            Unsupported {
                offset: 0,
                what: "simple value other than false/true/null",
            },
        ),
        // Bignums that fit in an integer or carry a leading zero.
        ("c24101", NonPreferredBignum { offset: 0 }),
        ("c240", NonPreferredBignum { offset: 0 }),
        ("c24a00010000000000000000", NonPreferredBignum { offset: 0 }),
        ("c201", NonPreferredBignum { offset: 0 }),
    ];
    for (hex, want) in cases {
        let bytes = h(&hex.replace(' ', ""));
        assert_eq!(decode(&bytes), Err(want), "input {hex}");
    }
}

#[test]
fn sorted_maps_are_accepted() {
    for hex in ["a2616200626161 00", "a2186400 2000", "a3 0100 2000 616100"] {
        let bytes = h(&hex.replace(' ', ""));
        assert_eq!(decode(&bytes).map(|v| v.encode()), Ok(bytes), "{hex}");
    }
}

#[test]
fn limits_are_enforced() {
    // Depth: MAX_DEPTH nested arrays pass, one more fails.
    let nest = |n: usize| {
        let mut b = vec![0x81; n - 1];
        b.push(0x80);
        b
    };
    assert!(decode(&nest(MAX_DEPTH)).is_ok());
    assert_eq!(
        decode(&nest(MAX_DEPTH + 1)),
        Err(CborError::TooDeep {
            offset: MAX_DEPTH,
            limit: MAX_DEPTH
        })
    );
    // Deep input far beyond the limit fails without recursing into it.
    assert!(matches!(
        decode(&vec![0x81; 100_000]),
        Err(CborError::TooDeep { .. })
    ));
    // Size.
    let tight = Limits {
        max_len: 3,
        ..Limits::DEFAULT
    };
    assert_eq!(
        decode_with_limits(&h("83010203"), &tight),
        Err(CborError::TooLarge { len: 4, limit: 3 })
    );
    // Item count: [1, 2, 3] is 4 items.
    let few = Limits {
        max_items: 3,
        ..Limits::DEFAULT
    };
    assert_eq!(
        decode_with_limits(&h("83010203"), &few),
        Err(CborError::TooManyItems { limit: 3 })
    );
    let four = Limits {
        max_items: 4,
        ..Limits::DEFAULT
    };
    assert!(decode_with_limits(&h("83010203"), &four).is_ok());
}

/// splitmix64: a tiny deterministic generator for property tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_value(r: &mut Rng, depth: usize) -> Value {
    // Integers near head boundaries to exercise ordering across head sizes.
    let edges = [0u64, 1, 23, 24, 255, 256, 65535, 65536, 1 << 32, u64::MAX];
    let pick = if depth == 0 { r.below(6) } else { r.below(9) };
    match pick {
        0 => Value::Unsigned(edges[r.below(10) as usize].wrapping_sub(r.below(2))),
        1 => Value::Negative(edges[r.below(10) as usize].wrapping_sub(r.below(2))),
        2 => Value::Bytes((0..r.below(30)).map(|_| r.below(256) as u8).collect()),
        3 => Value::Text(
            (0..r.below(30))
                .map(|_| ['a', 'b', 'é', '水'][r.below(4) as usize])
                .collect(),
        ),
        4 => Value::Bool(r.below(2) == 1),
        5 => Value::Null,
        6 => Value::Array(
            (0..r.below(4))
                .map(|_| random_value(r, depth - 1))
                .collect(),
        ),
        7 => Value::Map(
            (0..r.below(4))
                .map(|_| (random_value(r, depth - 1), random_value(r, depth - 1)))
                .collect(),
        ),
        _ => Value::Tag(r.below(300), Box::new(random_value(r, depth - 1))),
    }
}

/// `Ord` on values equals bytewise order of their encodings (RFC 8949 §4.2.1), and every
/// generated value round-trips through the decoder.
#[test]
fn ord_matches_encoded_order_and_values_round_trip() {
    let mut r = Rng(0x6d69_6d69);
    let values: Vec<Value> = (0..400).map(|_| random_value(&mut r, 3)).collect();
    for a in &values {
        let ea = a.encode();
        // Tags 2/3 around generated non-bytes content are legitimately refused.
        match decode(&ea) {
            Ok(back) => assert_eq!(&back, a),
            Err(e) => assert_eq!(
                e,
                CborError::NonPreferredBignum {
                    offset: e_offset(&e)
                }
            ),
        }
        for b in values.iter().take(60) {
            assert_eq!(a.cmp(b), ea.cmp(&b.encode()), "{a:?} vs {b:?}");
        }
    }
}

fn e_offset(e: &CborError) -> usize {
    match e {
        CborError::NonPreferredBignum { offset } => *offset,
        _ => usize::MAX,
    }
}
