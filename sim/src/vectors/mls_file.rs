//! The JSON schema of the mlswg/mls-implementations "passive client" test vectors
//! (`test-vectors.md`, section "Passive Client Scenarios"), decoded into bytes.
//!
//! The three passive-client files (`passive-client-welcome.json`,
//! `passive-client-handling-commit.json`, `passive-client-random.json`) share this schema;
//! the welcome file simply has no `epochs`. Byte strings are hex in JSON; here they are
//! decoded once, so a malformed file is rejected before any replay starts.
//!
//! Choices:
//! * `external_psks`, `ratchet_tree` and `epochs` may be absent (the schema in
//!   `test-vectors.md` omits the first two; the welcome file has no epochs).
//! * Unknown fields are ignored, so newer vector files with extra fields still load.
//! * Limits: [`MAX_FILE_BYTES`], [`MAX_TESTS`], [`MAX_EPOCHS_PER_TEST`] and
//!   [`MAX_PROPOSALS_PER_EPOCH`] bound what one file may ask us to replay.

use serde::Deserialize;
use thiserror::Error;

/// Largest vector file accepted (the handling-commit file is about 1.5 MB).
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Most tests accepted in one file.
pub const MAX_TESTS: usize = 10_000;
/// Most epochs accepted in one test.
pub const MAX_EPOCHS_PER_TEST: usize = 1_000;
/// Most proposals accepted in one epoch.
pub const MAX_PROPOSALS_PER_EPOCH: usize = 1_000;

/// Why a vector file could not be read as passive-client tests.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VectorFileError {
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("file is {size} bytes, more than the limit of {MAX_FILE_BYTES}")]
    TooLarge { size: usize },
    /// The file is not JSON of the passive-client schema.
    #[error("not a JSON array of passive-client tests: {0}")]
    Json(String),
    /// More tests than [`MAX_TESTS`].
    #[error("{count} tests, more than the limit of {MAX_TESTS}")]
    TooManyTests { count: usize },
    /// A test has more epochs than [`MAX_EPOCHS_PER_TEST`].
    #[error("test {test}: {count} epochs, more than the limit of {MAX_EPOCHS_PER_TEST}")]
    TooManyEpochs { test: usize, count: usize },
    /// An epoch has more proposals than [`MAX_PROPOSALS_PER_EPOCH`].
    #[error(
        "test {test}, epoch {epoch}: {count} proposals, more than the limit of {MAX_PROPOSALS_PER_EPOCH}"
    )]
    TooManyProposals {
        test: usize,
        epoch: usize,
        count: usize,
    },
    /// A byte-string field is not valid hex.
    #[error("test {test}: field `{field}` is not valid hex: {reason}")]
    Hex {
        test: usize,
        field: String,
        reason: String,
    },
}

/// One external PSK the group uses (`external_psks[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPsk {
    /// The PSK identifier (`psk_id`).
    pub psk_id: Vec<u8>,
    /// The PSK value (`psk`).
    pub psk: Vec<u8>,
}

/// One epoch of a test: the proposals (applied by reference) and the commit that ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorEpoch {
    /// Serialized MLSMessages (PublicMessage or PrivateMessage) carrying proposals.
    pub proposals: Vec<Vec<u8>>,
    /// Serialized MLSMessage (PublicMessage or PrivateMessage) carrying the commit.
    pub commit: Vec<u8>,
    /// The epoch authenticator every member has after merging `commit`.
    pub epoch_authenticator: Vec<u8>,
}

/// One passive-client test: a joiner's key material, a Welcome, and the epochs to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveClientTest {
    /// The MLS cipher suite (RFC 9420 §17.1 registry value).
    pub cipher_suite: u16,
    /// External PSKs that proposals or the Welcome may reference.
    pub external_psks: Vec<ExternalPsk>,
    /// Serialized MLSMessage carrying the joiner's KeyPackage.
    pub key_package: Vec<u8>,
    /// The joiner's signature private key.
    pub signature_priv: Vec<u8>,
    /// The joiner's leaf HPKE private key.
    pub encryption_priv: Vec<u8>,
    /// The joiner's KeyPackage init private key.
    pub init_priv: Vec<u8>,
    /// Serialized MLSMessage carrying the Welcome.
    pub welcome: Vec<u8>,
    /// The ratchet tree, when the Welcome's GroupInfo does not carry it.
    pub ratchet_tree: Option<Vec<u8>>,
    /// The epoch authenticator right after joining.
    pub initial_epoch_authenticator: Vec<u8>,
    /// The epochs to follow after joining.
    pub epochs: Vec<VectorEpoch>,
}

#[derive(Deserialize)]
struct RawPsk {
    psk_id: String,
    psk: String,
}

#[derive(Deserialize)]
struct RawEpoch {
    proposals: Vec<String>,
    commit: String,
    epoch_authenticator: String,
}

#[derive(Deserialize)]
struct RawTest {
    cipher_suite: u16,
    #[serde(default)]
    external_psks: Vec<RawPsk>,
    key_package: String,
    signature_priv: String,
    encryption_priv: String,
    init_priv: String,
    welcome: String,
    #[serde(default)]
    ratchet_tree: Option<String>,
    initial_epoch_authenticator: String,
    #[serde(default)]
    epochs: Vec<RawEpoch>,
}

/// Parses a passive-client vector file (the whole JSON text).
pub fn parse_passive_client_tests(json: &[u8]) -> Result<Vec<PassiveClientTest>, VectorFileError> {
    if json.len() > MAX_FILE_BYTES {
        return Err(VectorFileError::TooLarge { size: json.len() });
    }
    let raw: Vec<RawTest> =
        serde_json::from_slice(json).map_err(|e| VectorFileError::Json(e.to_string()))?;
    if raw.len() > MAX_TESTS {
        return Err(VectorFileError::TooManyTests { count: raw.len() });
    }
    raw.into_iter()
        .enumerate()
        .map(|(test, raw)| decode_test(test, raw))
        .collect()
}

fn decode_test(test: usize, raw: RawTest) -> Result<PassiveClientTest, VectorFileError> {
    if raw.epochs.len() > MAX_EPOCHS_PER_TEST {
        return Err(VectorFileError::TooManyEpochs {
            test,
            count: raw.epochs.len(),
        });
    }
    let hex = |field: &str, text: &str| -> Result<Vec<u8>, VectorFileError> {
        hex::decode(text).map_err(|e| VectorFileError::Hex {
            test,
            field: field.to_string(),
            reason: e.to_string(),
        })
    };
    let external_psks = raw
        .external_psks
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(ExternalPsk {
                psk_id: hex(&format!("external_psks[{i}].psk_id"), &p.psk_id)?,
                psk: hex(&format!("external_psks[{i}].psk"), &p.psk)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut epochs = Vec::with_capacity(raw.epochs.len());
    for (e, epoch) in raw.epochs.iter().enumerate() {
        if epoch.proposals.len() > MAX_PROPOSALS_PER_EPOCH {
            return Err(VectorFileError::TooManyProposals {
                test,
                epoch: e,
                count: epoch.proposals.len(),
            });
        }
        let proposals = epoch
            .proposals
            .iter()
            .enumerate()
            .map(|(p, text)| hex(&format!("epochs[{e}].proposals[{p}]"), text))
            .collect::<Result<Vec<_>, _>>()?;
        epochs.push(VectorEpoch {
            proposals,
            commit: hex(&format!("epochs[{e}].commit"), &epoch.commit)?,
            epoch_authenticator: hex(
                &format!("epochs[{e}].epoch_authenticator"),
                &epoch.epoch_authenticator,
            )?,
        });
    }
    Ok(PassiveClientTest {
        cipher_suite: raw.cipher_suite,
        external_psks,
        key_package: hex("key_package", &raw.key_package)?,
        signature_priv: hex("signature_priv", &raw.signature_priv)?,
        encryption_priv: hex("encryption_priv", &raw.encryption_priv)?,
        init_priv: hex("init_priv", &raw.init_priv)?,
        welcome: hex("welcome", &raw.welcome)?,
        ratchet_tree: raw
            .ratchet_tree
            .as_deref()
            .map(|t| hex("ratchet_tree", t))
            .transpose()?,
        initial_epoch_authenticator: hex(
            "initial_epoch_authenticator",
            &raw.initial_epoch_authenticator,
        )?,
        epochs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_TEST: &str = r#"[{"cipher_suite":1,"key_package":"00","signature_priv":"01",
        "encryption_priv":"02","init_priv":"03","welcome":"04","ratchet_tree":null,
        "initial_epoch_authenticator":"05",
        "epochs":[{"proposals":["0a"],"commit":"0b","epoch_authenticator":"0c"}]}]"#;

    #[test]
    fn decodes_every_field() {
        let tests = parse_passive_client_tests(ONE_TEST.as_bytes()).expect("valid");
        assert_eq!(tests.len(), 1);
        let t = &tests[0];
        assert_eq!(t.cipher_suite, 1);
        assert!(t.external_psks.is_empty());
        assert_eq!(t.key_package, vec![0]);
        assert_eq!(t.init_priv, vec![3]);
        assert_eq!(t.ratchet_tree, None);
        assert_eq!(t.epochs[0].proposals, vec![vec![0x0a]]);
        assert_eq!(t.epochs[0].commit, vec![0x0b]);
        assert_eq!(t.epochs[0].epoch_authenticator, vec![0x0c]);
    }

    #[test]
    fn bad_hex_names_test_and_field() {
        let bad = ONE_TEST.replace("\"0b\"", "\"0g\"");
        let err = parse_passive_client_tests(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, VectorFileError::Hex { test: 0, field, .. } if field == "epochs[0].commit"),
            "{err}"
        );
    }

    #[test]
    fn missing_field_and_non_json_are_rejected() {
        let missing = ONE_TEST.replace("\"welcome\":\"04\",", "");
        let err = parse_passive_client_tests(missing.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("welcome"), "{err}");
        assert!(matches!(
            parse_passive_client_tests(b"{not json"),
            Err(VectorFileError::Json(_))
        ));
    }
}
