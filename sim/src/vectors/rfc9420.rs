//! Our own check of a vector's inputs against RFC 9420, run before openmls sees them.
//!
//! A vector whose inputs break a rule of the RFC cannot be "agreed with": a conforming
//! implementation must reject it, and the vector expects it to be accepted. So such a
//! test is neither an agreement nor a disagreement of our stack; the replay reports it
//! on its own line, citing the rule ([`super::report::ReplayReport::violating_rfc9420`]).
//! The check decodes the joiner's KeyPackage itself (with the project's TLS reader,
//! `nodes::wire::codec::Reader`, not openmls) and applies the capability rules:
//!
//! * RFC 9420 §10: "Extensions included in the `extensions` or `leaf_node.extensions`
//!   fields MUST be included in the `leaf_node.capabilities` field." — for the
//!   KeyPackage's own `extensions`.
//! * RFC 9420 §7.2: "The types of any non-default extensions that appear in the
//!   `extensions` field of a LeafNode MUST be included in the `extensions` field of the
//!   `capabilities` field" — for `leaf_node.extensions`.
//! * RFC 9420 §7.2: "the credential type used in the LeafNode MUST be included in the
//!   `credentials` field of the `capabilities` field".
//!
//! Choices:
//! * The five default extension types of §7.2 (0x0001–0x0005) "MUST NOT be listed" in
//!   capabilities, so they are exempt from the first two rules (as openmls does too).
//! * A KeyPackage this decoder cannot read (truncated, an unknown credential type whose
//!   layout RFC 9420 does not define, trailing bytes) is not called a violation: the check
//!   returns [`KeyPackageCheck::Undecodable`] and the replay judges the test as usual, so
//!   an input our decoder misreads can never hide a disagreement.
//! * Only structure is checked, not signatures: a KeyPackage edited to break a rule is
//!   reported for that rule whether or not its signature still verifies.

use std::collections::BTreeSet;
use std::fmt;

use nodes::wire::codec::Reader;
use nodes::wire::{Place, WireError};
use serde::Serialize;

/// `WireFormat` value of a KeyPackage in an MLSMessage (RFC 9420 §6).
const WIRE_FORMAT_KEY_PACKAGE: u16 = 5;
/// `CredentialType` values whose layout RFC 9420 §5.3 defines.
const CREDENTIAL_BASIC: u16 = 1;
const CREDENTIAL_X509: u16 = 2;
/// `LeafNodeSource` values (RFC 9420 §7.2).
const SOURCE_KEY_PACKAGE: u8 = 1;
const SOURCE_UPDATE: u8 = 2;
const SOURCE_COMMIT: u8 = 3;
/// Largest `<V>` field read (a whole X.509 chain fits).
const MAX_FIELD_BYTES: usize = 1 << 20;
/// Most entries read from one `<V>` list of `uint16` codes or extensions.
const MAX_LIST_ITEMS: usize = 4096;

/// One rule of RFC 9420 that a vector's input breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RfcViolation {
    /// The section of RFC 9420 that states the rule, e.g. `RFC 9420 §10`.
    pub section: &'static str,
    /// The rule, in short.
    pub rule: &'static str,
    /// What this input does against it.
    pub detail: String,
}

impl fmt::Display for RfcViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.section, self.rule, self.detail)
    }
}

/// What the check made of one KeyPackage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPackageCheck {
    /// Decoded; no rule broken.
    Conforms,
    /// Decoded; these rules are broken (in the order listed in the module docs).
    Violates(Vec<RfcViolation>),
    /// Not decodable by this check; left to the replay.
    Undecodable(String),
}

/// The fields of a KeyPackage the capability rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageFields {
    /// `leaf_node.credential.credential_type`.
    pub credential_type: u16,
    /// `leaf_node.capabilities.extensions`.
    pub capability_extensions: Vec<u16>,
    /// `leaf_node.capabilities.credentials`.
    pub capability_credentials: Vec<u16>,
    /// The types of `leaf_node.extensions`, in order.
    pub leaf_extensions: Vec<u16>,
    /// The types of the KeyPackage's `extensions`, in order.
    pub key_package_extensions: Vec<u16>,
}

/// True for the extension types RFC 9420 §7.2 calls "default" (never listed).
pub fn is_default_extension(extension_type: u16) -> bool {
    (0x0001..=0x0005).contains(&extension_type)
}

/// Checks the KeyPackage carried in `mls_message` (an MLSMessage, as in a vector's
/// `key_package` field).
pub fn check_key_package(mls_message: &[u8]) -> KeyPackageCheck {
    match decode_key_package(mls_message) {
        Ok(fields) => {
            let violations = violations(&fields);
            if violations.is_empty() {
                KeyPackageCheck::Conforms
            } else {
                KeyPackageCheck::Violates(violations)
            }
        }
        Err(e) => KeyPackageCheck::Undecodable(e.to_string()),
    }
}

/// The capability rules applied to decoded fields.
pub fn violations(kp: &KeyPackageFields) -> Vec<RfcViolation> {
    let listed: BTreeSet<u16> = kp.capability_extensions.iter().copied().collect();
    let missing = |types: &[u16]| -> Vec<String> {
        types
            .iter()
            .filter(|t| !is_default_extension(**t) && !listed.contains(t))
            .map(|t| format!("0x{t:04x}"))
            .collect()
    };
    let capabilities = format_codes(&kp.capability_extensions);
    let mut out = Vec::new();
    let kp_missing = missing(&kp.key_package_extensions);
    if !kp_missing.is_empty() {
        out.push(RfcViolation {
            section: "RFC 9420 §10",
            rule: "a KeyPackage's extensions must be listed in leaf_node.capabilities.extensions",
            detail: format!(
                "KeyPackage extension(s) {} not in capabilities.extensions {capabilities}",
                kp_missing.join(", ")
            ),
        });
    }
    let leaf_missing = missing(&kp.leaf_extensions);
    if !leaf_missing.is_empty() {
        out.push(RfcViolation {
            section: "RFC 9420 §7.2",
            rule:
                "a LeafNode's non-default extensions must be listed in its capabilities.extensions",
            detail: format!(
                "leaf_node extension(s) {} not in capabilities.extensions {capabilities}",
                leaf_missing.join(", ")
            ),
        });
    }
    if !kp.capability_credentials.contains(&kp.credential_type) {
        out.push(RfcViolation {
            section: "RFC 9420 §7.2",
            rule: "a LeafNode's credential type must be listed in its capabilities.credentials",
            detail: format!(
                "credential type 0x{:04x} not in capabilities.credentials {}",
                kp.credential_type,
                format_codes(&kp.capability_credentials)
            ),
        });
    }
    out
}

fn format_codes(codes: &[u16]) -> String {
    let inner: Vec<String> = codes.iter().map(|c| format!("0x{c:04x}")).collect();
    format!("[{}]", inner.join(", "))
}

const fn at(field: &'static str) -> Place {
    Place::new("KeyPackage", field)
}

/// Decodes an MLSMessage carrying a KeyPackage (RFC 9420 §6, §10, §7.2, §5.3).
pub fn decode_key_package(mls_message: &[u8]) -> Result<KeyPackageFields, WireError> {
    let mut r = Reader::new(mls_message);
    let _version = r.u16(Place::new("MLSMessage", "version"))?;
    let wire_format = r.u16(Place::new("MLSMessage", "wire_format"))?;
    if wire_format != WIRE_FORMAT_KEY_PACKAGE {
        return Err(WireError::Invalid {
            at: Place::new("MLSMessage", "wire_format"),
            reason: format!("{wire_format} is not mls_key_package ({WIRE_FORMAT_KEY_PACKAGE})"),
        });
    }
    let _version = r.u16(at("version"))?;
    let _cipher_suite = r.u16(at("cipher_suite"))?;
    r.opaque(at("init_key"), MAX_FIELD_BYTES)?;

    // LeafNode (§7.2).
    r.opaque(at("leaf_node.encryption_key"), MAX_FIELD_BYTES)?;
    r.opaque(at("leaf_node.signature_key"), MAX_FIELD_BYTES)?;
    let credential_type = r.u16(at("leaf_node.credential.credential_type"))?;
    match credential_type {
        CREDENTIAL_BASIC => {
            r.opaque(at("leaf_node.credential.identity"), MAX_FIELD_BYTES)?;
        }
        CREDENTIAL_X509 => {
            r.opaque(at("leaf_node.credential.certificates"), MAX_FIELD_BYTES)?;
        }
        other => {
            return Err(WireError::UnknownCode {
                at: at("leaf_node.credential.credential_type"),
                value: u64::from(other),
            })
        }
    }
    let _versions = codes(&mut r, at("leaf_node.capabilities.versions"))?;
    let _cipher_suites = codes(&mut r, at("leaf_node.capabilities.cipher_suites"))?;
    let capability_extensions = codes(&mut r, at("leaf_node.capabilities.extensions"))?;
    let _proposals = codes(&mut r, at("leaf_node.capabilities.proposals"))?;
    let capability_credentials = codes(&mut r, at("leaf_node.capabilities.credentials"))?;
    let source_at = at("leaf_node.leaf_node_source");
    match r.u8(source_at)? {
        SOURCE_KEY_PACKAGE => {
            r.u64(at("leaf_node.lifetime.not_before"))?;
            r.u64(at("leaf_node.lifetime.not_after"))?;
        }
        SOURCE_UPDATE => {}
        SOURCE_COMMIT => {
            r.opaque(at("leaf_node.parent_hash"), MAX_FIELD_BYTES)?;
        }
        other => {
            return Err(WireError::UnknownCode {
                at: source_at,
                value: u64::from(other),
            })
        }
    }
    let leaf_extensions = extension_types(&mut r, at("leaf_node.extensions"))?;
    r.opaque(at("leaf_node.signature"), MAX_FIELD_BYTES)?;

    let key_package_extensions = extension_types(&mut r, at("extensions"))?;
    r.opaque(at("signature"), MAX_FIELD_BYTES)?;
    if !r.is_empty() {
        return Err(WireError::Invalid {
            at: at("signature"),
            reason: format!("{} trailing bytes after the KeyPackage", r.remaining()),
        });
    }
    Ok(KeyPackageFields {
        credential_type,
        capability_extensions,
        capability_credentials,
        leaf_extensions,
        key_package_extensions,
    })
}

/// A `uint16 x<V>` list (versions, cipher suites, extension/proposal/credential types).
fn codes(r: &mut Reader<'_>, place: Place) -> Result<Vec<u16>, WireError> {
    let body = r.opaque(place, MAX_FIELD_BYTES)?;
    if body.len() % 2 != 0 {
        return Err(WireError::Invalid {
            at: place,
            reason: format!("{} bytes is not a list of uint16", body.len()),
        });
    }
    if body.len() / 2 > MAX_LIST_ITEMS {
        return Err(WireError::TooManyItems {
            at: place,
            max: MAX_LIST_ITEMS,
        });
    }
    Ok(body
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// The types of an `Extension extensions<V>` list (`uint16 extension_type;
/// opaque extension_data<V>`).
fn extension_types(r: &mut Reader<'_>, place: Place) -> Result<Vec<u16>, WireError> {
    let body = r.opaque(place, MAX_FIELD_BYTES)?;
    let mut inner = Reader::new(body);
    let mut types = Vec::new();
    while !inner.is_empty() {
        if types.len() == MAX_LIST_ITEMS {
            return Err(WireError::TooManyItems {
                at: place,
                max: MAX_LIST_ITEMS,
            });
        }
        types.push(inner.u16(place)?);
        inner.opaque(place, MAX_FIELD_BYTES)?;
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `<V>` header for `len` (RFC 9420 §2.1.2), minimal.
    fn vl(len: usize) -> Vec<u8> {
        match len {
            0..=0x3f => vec![len as u8],
            0x40..=0x3fff => vec![0x40 | (len >> 8) as u8, len as u8],
            _ => {
                let v = 0x8000_0000u32 | len as u32;
                v.to_be_bytes().to_vec()
            }
        }
    }

    fn opaque(bytes: &[u8]) -> Vec<u8> {
        let mut out = vl(bytes.len());
        out.extend_from_slice(bytes);
        out
    }

    fn code_list(codes: &[u16]) -> Vec<u8> {
        let body: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
        opaque(&body)
    }

    fn extension_list(types: &[u16]) -> Vec<u8> {
        let body: Vec<u8> = types
            .iter()
            .flat_map(|t| {
                let mut e = t.to_be_bytes().to_vec();
                e.extend(opaque(b"x"));
                e
            })
            .collect();
        opaque(&body)
    }

    /// A KeyPackage MLSMessage with the given capability and extension lists (dummy keys
    /// and signatures: the check reads structure only).
    fn key_package(
        credential_type: u16,
        capability_extensions: &[u16],
        capability_credentials: &[u16],
        leaf_extensions: &[u16],
        kp_extensions: &[u16],
    ) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 5, 0, 1, 0, 1];
        b.extend(opaque(&[1; 32])); // init_key
        b.extend(opaque(&[2; 32])); // encryption_key
        b.extend(opaque(&[3; 32])); // signature_key
        b.extend(credential_type.to_be_bytes());
        b.extend(opaque(b"alice"));
        b.extend(code_list(&[1])); // versions
        b.extend(code_list(&[1])); // cipher suites
        b.extend(code_list(capability_extensions));
        b.extend(code_list(&[])); // proposals
        b.extend(code_list(capability_credentials));
        b.push(SOURCE_KEY_PACKAGE);
        b.extend(0u64.to_be_bytes());
        b.extend(u64::MAX.to_be_bytes());
        b.extend(extension_list(leaf_extensions));
        b.extend(opaque(&[4; 64])); // leaf signature
        b.extend(extension_list(kp_extensions));
        b.extend(opaque(&[5; 64])); // signature
        b
    }

    #[test]
    fn decodes_every_field_it_reads() {
        let bytes = key_package(1, &[0x000a, 0xff01], &[1, 2], &[0xff01], &[0x000a]);
        assert_eq!(
            decode_key_package(&bytes).expect("decodes"),
            KeyPackageFields {
                credential_type: 1,
                capability_extensions: vec![0x000a, 0xff01],
                capability_credentials: vec![1, 2],
                leaf_extensions: vec![0xff01],
                key_package_extensions: vec![0x000a],
            }
        );
        assert_eq!(check_key_package(&bytes), KeyPackageCheck::Conforms);
    }

    #[test]
    fn key_package_extension_not_in_capabilities_breaks_section_10() {
        // last_resort (0x000a) carried but not listed, as some generators emit.
        let bytes = key_package(1, &[], &[1], &[], &[0x000a]);
        let KeyPackageCheck::Violates(v) = check_key_package(&bytes) else {
            panic!("not caught");
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].section, "RFC 9420 §10");
        assert!(v[0].detail.contains("0x000a"), "{}", v[0]);
    }

    #[test]
    fn leaf_extension_not_in_capabilities_breaks_section_7_2() {
        let bytes = key_package(1, &[0x000a], &[1], &[0xff02], &[]);
        let KeyPackageCheck::Violates(v) = check_key_package(&bytes) else {
            panic!("not caught");
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].section, "RFC 9420 §7.2");
        assert!(v[0].detail.contains("0xff02"), "{}", v[0]);
    }

    #[test]
    fn credential_type_not_in_capabilities_breaks_section_7_2() {
        let bytes = key_package(2, &[], &[1], &[], &[]);
        let KeyPackageCheck::Violates(v) = check_key_package(&bytes) else {
            panic!("not caught");
        };
        assert_eq!(v.len(), 1);
        assert!(v[0].rule.contains("credential type"), "{}", v[0]);
    }

    #[test]
    fn default_extensions_need_not_be_listed() {
        // application_id (1) in the leaf: default, so never listed (§7.2).
        let bytes = key_package(1, &[], &[1], &[0x0001], &[]);
        assert_eq!(check_key_package(&bytes), KeyPackageCheck::Conforms);
    }

    #[test]
    fn undecodable_input_is_left_to_the_replay() {
        let bytes = key_package(1, &[], &[1], &[], &[0x000a]);
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(
                matches!(
                    check_key_package(&bytes[..cut]),
                    KeyPackageCheck::Undecodable(_)
                ),
                "cut at {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            check_key_package(&trailing),
            KeyPackageCheck::Undecodable(e) if e.contains("trailing")
        ));
        let mut unknown_credential = key_package(1, &[], &[1], &[], &[]);
        // credential_type sits after the 4-byte header, 4 bytes of version and suite and
        // three 33-byte keys.
        unknown_credential[8 + 3 * 33 + 1] = 9;
        assert!(matches!(
            check_key_package(&unknown_credential),
            KeyPackageCheck::Undecodable(_)
        ));
    }
}
