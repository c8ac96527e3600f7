//! SignWithLabel / VerifyWithLabel (RFC 9420 §5.1.2) and EncryptWithLabel /
//! DecryptWithLabel (RFC 9420 §5.1.3), on `openmls_traits` crypto.
//!
//! ```text
//! struct { opaque label<V> = "MLS 1.0 " + Label; opaque content<V> = Content; } SignContent;
//! struct { opaque label<V> = "MLS 1.0 " + Label; opaque context<V> = Context; } EncryptContext;
//! EncryptWithLabel(PublicKey, Label, Context, Plaintext) = SealBase(PublicKey, EncryptContext, "", Plaintext)
//! ```

use super::error::WireError;
use openmls::prelude::Ciphersuite;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer;
use openmls_traits::types::{HpkeCiphertext, SignatureScheme};
use tls_codec::{Serialize as _, VLBytes};

/// The prefix RFC 9420 puts before every label.
pub const LABEL_PREFIX: &str = "MLS 1.0 ";
/// P§5.2: label of `key_material_request_signature`.
pub const KEY_MATERIAL_REQUEST_LABEL: &str = "KeyMaterialRequestTBS";
/// P§5.6: label of the GroupInfoRequest signature.
pub const GROUP_INFO_REQUEST_LABEL: &str = "GroupInfoRequestTBS";
/// P§5.6: label of the GroupInfoResponse signature.
pub const GROUP_INFO_RESPONSE_LABEL: &str = "GroupInfoResponseTBS";
/// P§5.6: label of `encrypted_groupinfo_and_tree`.
pub const GROUP_INFO_ENCRYPTION_LABEL: &str = "GroupInfo and ratchet_tree encryption";

fn labeled(label: &str, second: &[u8], structure: &'static str) -> Result<Vec<u8>, WireError> {
    let full = format!("{LABEL_PREFIX}{label}");
    let mut out = VLBytes::new(full.into_bytes())
        .tls_serialize_detached()
        .map_err(|e| WireError::Encode {
            structure,
            reason: e.to_string(),
        })?;
    let tail = VLBytes::new(second.to_vec())
        .tls_serialize_detached()
        .map_err(|e| WireError::Encode {
            structure,
            reason: e.to_string(),
        })?;
    out.extend_from_slice(&tail);
    Ok(out)
}

/// The serialised `SignContent` for `label` and `content`.
pub fn sign_content(label: &str, content: &[u8]) -> Result<Vec<u8>, WireError> {
    labeled(label, content, "SignContent")
}

/// The serialised `EncryptContext` for `label` and `context`.
pub fn encrypt_context(label: &str, context: &[u8]) -> Result<Vec<u8>, WireError> {
    labeled(label, context, "EncryptContext")
}

/// SignWithLabel(signer's key, `label`, `content`). `structure` names what is signed.
pub fn sign_with_label(
    signer: &impl Signer,
    structure: &'static str,
    label: &str,
    content: &[u8],
) -> Result<Vec<u8>, WireError> {
    let tbs = sign_content(label, content)?;
    signer.sign(&tbs).map_err(|e| WireError::Crypto {
        structure,
        operation: "SignWithLabel",
        reason: format!("{e:?}"),
    })
}

/// VerifyWithLabel(`public_key`, `label`, `content`, `signature`) under `scheme`.
pub fn verify_with_label(
    crypto: &impl OpenMlsCrypto,
    scheme: SignatureScheme,
    public_key: &[u8],
    structure: &'static str,
    label: &'static str,
    content: &[u8],
    signature: &[u8],
) -> Result<(), WireError> {
    let tbs = sign_content(label, content)?;
    crypto
        .verify_signature(scheme, &tbs, public_key, signature)
        .map_err(|_| WireError::BadSignature { structure, label })
}

/// EncryptWithLabel(`public_key`, `label`, `context`, `plaintext`) with the HPKE
/// configuration of `suite`.
pub fn encrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    suite: Ciphersuite,
    public_key: &[u8],
    structure: &'static str,
    label: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<HpkeCiphertext, WireError> {
    let info = encrypt_context(label, context)?;
    crypto
        .hpke_seal(suite.hpke_config(), public_key, &info, &[], plaintext)
        .map_err(|e| WireError::Crypto {
            structure,
            operation: "EncryptWithLabel",
            reason: format!("{e:?}"),
        })
}

/// DecryptWithLabel(`private_key`, `label`, `context`, `ciphertext`) with the HPKE
/// configuration of `suite`.
pub fn decrypt_with_label(
    crypto: &impl OpenMlsCrypto,
    suite: Ciphersuite,
    private_key: &[u8],
    structure: &'static str,
    label: &str,
    context: &[u8],
    ciphertext: &HpkeCiphertext,
) -> Result<Vec<u8>, WireError> {
    let info = encrypt_context(label, context)?;
    crypto
        .hpke_open(suite.hpke_config(), ciphertext, private_key, &info, &[])
        .map_err(|e| WireError::Crypto {
            structure,
            operation: "DecryptWithLabel",
            reason: format!("{e:?}"),
        })
}
