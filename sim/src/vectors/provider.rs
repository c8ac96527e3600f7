//! The OpenMLS provider and signer used to replay vectors.
//!
//! Choices:
//! * A replay only verifies and decrypts; it never needs randomness. [`ReplayProvider`]'s
//!   randomness source therefore refuses every request ([`NoRandomness`]), so a replay
//!   that unexpectedly drew random bytes would fail loudly instead of silently reading
//!   the OS. (openmls_rust_crypto's `RustCrypto` seeds a private, here unused, RNG from
//!   the OS when constructed, and its HPKE `open` seeds an unused PRNG per call; neither
//!   can influence any output.)
//! * Each side of a replay (the joined client, the hub's public view) gets its own
//!   `MemoryStorage`, as two different nodes would have.

use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::{
    crypto::OpenMlsCrypto,
    random::OpenMlsRand,
    signatures::{Signer, SignerError},
    types::SignatureScheme,
    OpenMlsProvider,
};
use thiserror::Error;

/// A randomness request was made during a replay, which needs none.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("a vector replay needs no randomness, yet {0} random bytes were requested")]
pub struct NoRandomnessError(pub usize);

/// A randomness source that refuses every request.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRandomness;

impl OpenMlsRand for NoRandomness {
    type Error = NoRandomnessError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        Err(NoRandomnessError(N))
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        Err(NoRandomnessError(len))
    }
}

/// RustCrypto primitives, no randomness, and an in-memory storage of its own.
#[derive(Default)]
pub struct ReplayProvider {
    crypto: RustCrypto,
    rand: NoRandomness,
    storage: MemoryStorage,
}

impl OpenMlsProvider for ReplayProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = NoRandomness;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.rand
    }
}

/// A signer over a raw private key from a vector (RFC 9420 test-vector encoding:
/// Ed25519 seed bytes, ECDSA big-endian scalar).
pub struct VectorSigner<'a> {
    crypto: &'a RustCrypto,
    scheme: SignatureScheme,
    private_key: &'a [u8],
}

/// Why a vector's signature private key cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignerKeyError {
    /// The key length does not fit the scheme.
    #[error("signature private key is {actual} bytes; {scheme:?} needs {expected}")]
    Length {
        scheme: SignatureScheme,
        expected: usize,
        actual: usize,
    },
    /// The scheme is not one the replay signs with.
    #[error("signature scheme {0:?} is not supported for signing")]
    Scheme(SignatureScheme),
}

impl<'a> VectorSigner<'a> {
    /// Wraps `private_key` after checking its length (RustCrypto would panic on a
    /// wrong-length ECDSA key).
    pub fn new(
        crypto: &'a RustCrypto,
        scheme: SignatureScheme,
        private_key: &'a [u8],
    ) -> Result<Self, SignerKeyError> {
        let expected = match scheme {
            SignatureScheme::ED25519 | SignatureScheme::ECDSA_SECP256R1_SHA256 => 32,
            SignatureScheme::ECDSA_SECP384R1_SHA384 => 48,
            other => return Err(SignerKeyError::Scheme(other)),
        };
        if private_key.len() != expected {
            return Err(SignerKeyError::Length {
                scheme,
                expected,
                actual: private_key.len(),
            });
        }
        Ok(Self {
            crypto,
            scheme,
            private_key,
        })
    }
}

impl Signer for VectorSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.crypto
            .sign(self.scheme, payload, self.private_key)
            .map_err(SignerError::CryptoError)
    }

    fn signature_scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomness_is_refused() {
        let provider = ReplayProvider::default();
        assert_eq!(provider.rand().random_vec(7), Err(NoRandomnessError(7)));
        assert_eq!(
            provider.rand().random_array::<32>(),
            Err(NoRandomnessError(32))
        );
    }

    #[test]
    fn wrong_length_key_is_an_error_not_a_panic() {
        let crypto = RustCrypto::default();
        let short = [1u8; 31];
        let err = VectorSigner::new(&crypto, SignatureScheme::ECDSA_SECP256R1_SHA256, &short)
            .err()
            .expect("31 bytes is not a P-256 key");
        assert_eq!(
            err,
            SignerKeyError::Length {
                scheme: SignatureScheme::ECDSA_SECP256R1_SHA256,
                expected: 32,
                actual: 31
            }
        );
    }

    /// RFC 8032 §7.1, TEST 1 (empty message).
    #[test]
    fn signs_like_rfc8032() {
        let crypto = RustCrypto::default();
        let secret =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .expect("hex");
        let public =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .expect("hex");
        let expected = hex::decode(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        )
        .expect("hex");
        let signer = VectorSigner::new(&crypto, SignatureScheme::ED25519, &secret).expect("key");
        let signature = signer.sign(b"").expect("sign");
        assert_eq!(signature, expected);
        assert!(crypto
            .verify_signature(SignatureScheme::ED25519, b"", &public, &signature)
            .is_ok());
    }
}
