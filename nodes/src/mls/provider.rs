//! A seeded OpenMLS provider: every random byte of a node comes from one ChaCha20 stream.
//!
//! `openmls_rust_crypto::OpenMlsRustCrypto` cannot be seeded: its RNG is private and seeded
//! from the OS, its HPKE builds a fresh `hpke_rs::Hpke` per call that reseeds from the OS,
//! and `openmls_basic_credential::SignatureKeyPair::new` uses `OsRng`
//! (read in `openmls_rust_crypto` 0.6.0 `src/provider.rs`, `hpke-rs-rust-crypto` 0.7.0
//! `src/lib.rs` and `openmls_basic_credential` 0.6.0 `src/lib.rs`). [`SeededCrypto`]
//! delegates every primitive to `RustCrypto` except the three that draw randomness:
//!
//! * `signature_key_gen` — Ed25519 key from 32 bytes of the seeded stream;
//! * `hpke_seal` and `hpke_setup_sender_and_export` — run `hpke_rs` over [`DetHpke`], whose
//!   PRNG seed is handed over in a thread-local that is set and cleared inside the one call.
//!
//! openmls encrypts UpdatePath secrets with rayon (`par_iter` in `treesync/treekem.rs` and
//! `parent_node.rs`), so `hpke_seal` runs on worker threads in no fixed order. Its seed
//! therefore must not depend on call order: it is derived from the inputs, as
//! `SHA-256(node HPKE key ‖ pk_r ‖ info ‖ aad ‖ plaintext)` (derandomised encryption; the
//! plaintexts — path and group secrets — are fresh per commit, so no ephemeral key repeats
//! for different plaintexts). `hpke_setup_sender_and_export` (ExternalInit) runs on the
//! caller's thread and draws its seed from the stream.
//!
//! The stream can be snapshotted and restored ([`SeededCrypto::snapshot`]); the MLS glue uses
//! that to re-draw a commit deterministically (see `mls::commit`).

use std::cell::Cell;
use std::sync::Mutex;

use hpke_rs::{Hpke, Mode};
use hpke_rs_crypto::types::{AeadAlgorithm, KdfAlgorithm, KemAlgorithm};
use hpke_rs_crypto::{error::Error as HpkeCryptoError, HpkeCrypto, HpkeTestRng};
use hpke_rs_rust_crypto::HpkeRustCrypto;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::storage::{StorageProvider, CURRENT_VERSION};
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeAeadType, HpkeCiphertext,
    HpkeConfig, HpkeKdfType, HpkeKemType, HpkeKeyPair, KemOutput, SignatureScheme,
};
use openmls_traits::OpenMlsProvider;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tls_codec::SecretVLBytes;

use super::cost;

thread_local! {
    /// The seed for the next `DetHpke::prng()` call on this thread; only set inside
    /// `hpke_seal` / `hpke_setup_sender_and_export`.
    static NEXT_HPKE_SEED: Cell<Option<[u8; 32]>> = const { Cell::new(None) };
}

/// Derive a 32-byte seed for a named stream from a run seed: `SHA-256(run_seed ‖ label)`.
/// Each node gets its own stream, so how much randomness one node draws never shifts
/// another node's bytes.
pub fn derive_seed(run_seed: u64, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mimi-sim seed v1");
    h.update(run_seed.to_be_bytes());
    h.update((label.len() as u64).to_be_bytes());
    h.update(label.as_bytes());
    h.finalize().into()
}

/// The PRNG handed to `hpke_rs`: a ChaCha20 stream seeded from the provider's stream.
pub struct DetPrng(ChaCha20Rng);

impl zeroize::Zeroize for DetPrng {
    fn zeroize(&mut self) {
        // ChaCha20Rng has no zeroize; nothing secret outlives the single HPKE call.
    }
}

impl hpke_rs_crypto::TryRng for DetPrng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl hpke_rs_crypto::TryCryptoRng for DetPrng {}

impl HpkeTestRng for DetPrng {
    type Error = core::convert::Infallible;
    fn try_fill_test_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
    fn seed(&mut self, seed: &[u8]) {
        let mut s = [0u8; 32];
        for (d, b) in s.iter_mut().zip(seed) {
            *d = *b;
        }
        self.0 = ChaCha20Rng::from_seed(s);
    }
}

/// `hpke_rs` crypto backend: RustCrypto for every primitive, a seeded PRNG.
#[derive(Debug)]
pub struct DetHpke;

impl HpkeCrypto for DetHpke {
    type HpkePrng = DetPrng;

    fn name() -> String {
        "DetHpke(RustCrypto)".into()
    }
    fn supports_kdf(alg: KdfAlgorithm) -> Result<(), HpkeCryptoError> {
        HpkeRustCrypto::supports_kdf(alg)
    }
    fn supports_kem(alg: KemAlgorithm) -> Result<(), HpkeCryptoError> {
        HpkeRustCrypto::supports_kem(alg)
    }
    fn supports_aead(alg: AeadAlgorithm) -> Result<(), HpkeCryptoError> {
        HpkeRustCrypto::supports_aead(alg)
    }
    fn prng() -> DetPrng {
        // `Hpke::clone` calls prng() again, so read the seed rather than take it. Outside a
        // seeded call (e.g. the unused PRNG of `hpke_open`) a fixed all-zero seed is used:
        // such a PRNG never produces output that reaches the wire.
        let seed = NEXT_HPKE_SEED.with(|s| s.get()).unwrap_or([0u8; 32]);
        DetPrng(ChaCha20Rng::from_seed(seed))
    }
    fn kdf_extract(alg: KdfAlgorithm, salt: &[u8], ikm: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kdf_extract(alg, salt, ikm)
    }
    fn kdf_expand(
        alg: KdfAlgorithm,
        prk: &[u8],
        info: &[u8],
        output_size: usize,
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kdf_expand(alg, prk, info, output_size)
    }
    fn dh(alg: KemAlgorithm, pk: &[u8], sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::dh(alg, pk, sk)
    }
    fn secret_to_public(alg: KemAlgorithm, sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::secret_to_public(alg, sk)
    }
    fn kem_key_gen(
        _alg: KemAlgorithm,
        _prng: &mut DetPrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        // DH-KEMs derive keys from `Hpke::random` bytes; only PQ KEMs call this.
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }
    fn kem_key_gen_derand(
        alg: KemAlgorithm,
        seed: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        HpkeRustCrypto::kem_key_gen_derand(alg, seed)
    }
    fn kem_encaps(
        _alg: KemAlgorithm,
        _pk_r: &[u8],
        _prng: &mut DetPrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }
    fn kem_decaps(alg: KemAlgorithm, ct: &[u8], sk_r: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::kem_decaps(alg, ct, sk_r)
    }
    fn dh_validate_sk(alg: KemAlgorithm, sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::dh_validate_sk(alg, sk)
    }
    fn aead_seal(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::aead_seal(alg, key, nonce, aad, msg)
    }
    fn aead_open(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        HpkeRustCrypto::aead_open(alg, key, nonce, aad, msg)
    }
}

fn kem_alg(kem: HpkeKemType) -> Result<KemAlgorithm, CryptoError> {
    match kem {
        HpkeKemType::DhKemP256 => Ok(KemAlgorithm::DhKemP256),
        HpkeKemType::DhKemP384 => Ok(KemAlgorithm::DhKemP384),
        HpkeKemType::DhKemP521 => Ok(KemAlgorithm::DhKemP521),
        HpkeKemType::DhKem25519 => Ok(KemAlgorithm::DhKem25519),
        HpkeKemType::DhKem448 => Ok(KemAlgorithm::DhKem448),
        #[allow(unreachable_patterns)]
        _ => Err(CryptoError::UnsupportedKdf),
    }
}

fn kdf_alg(kdf: HpkeKdfType) -> KdfAlgorithm {
    match kdf {
        HpkeKdfType::HkdfSha256 => KdfAlgorithm::HkdfSha256,
        HpkeKdfType::HkdfSha384 => KdfAlgorithm::HkdfSha384,
        HpkeKdfType::HkdfSha512 => KdfAlgorithm::HkdfSha512,
    }
}

fn aead_alg(aead: HpkeAeadType) -> AeadAlgorithm {
    match aead {
        HpkeAeadType::AesGcm128 => AeadAlgorithm::Aes128Gcm,
        HpkeAeadType::AesGcm256 => AeadAlgorithm::Aes256Gcm,
        HpkeAeadType::ChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
        HpkeAeadType::Export => AeadAlgorithm::HpkeExport,
    }
}

/// Sets the thread-local HPKE seed for the duration of `f` and always clears it again.
fn with_hpke_seed<T>(seed: [u8; 32], f: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            NEXT_HPKE_SEED.with(|s| s.set(None));
        }
    }
    NEXT_HPKE_SEED.with(|s| s.set(Some(seed)));
    let _clear = Clear;
    f()
}

/// A saved position of a [`SeededCrypto`] stream.
#[derive(Clone)]
pub struct RngSnapshot(ChaCha20Rng);

impl RngSnapshot {
    /// The stream's seed, stream number and word position: the position as plain numbers
    /// (a client's snapshot stores them, `client::snapshot`).
    pub fn position(&self) -> ([u8; 32], u64, u128) {
        (
            self.0.get_seed(),
            self.0.get_stream(),
            self.0.get_word_pos(),
        )
    }

    /// The position [`Self::position`] returned.
    pub fn at(seed: [u8; 32], stream: u64, word_pos: u128) -> RngSnapshot {
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(stream);
        rng.set_word_pos(word_pos);
        RngSnapshot(rng)
    }
}

/// OpenMLS crypto + randomness with every random byte drawn from one seeded stream.
pub struct SeededCrypto {
    inner: RustCrypto,
    /// Secret key for input-derived HPKE seeds (see the module doc).
    hpke_key: [u8; 32],
    /// `Mutex` only because the OpenMLS traits require `Send + Sync`; never contended.
    rng: Mutex<ChaCha20Rng>,
}

impl SeededCrypto {
    pub fn new(seed: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"mimi-sim hpke key");
        h.update(seed);
        SeededCrypto {
            inner: RustCrypto::default(),
            hpke_key: h.finalize().into(),
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
        }
    }

    fn draw<const N: usize>(&self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        self.rng
            .lock()
            .map_err(|_| CryptoError::InsufficientRandomness)?
            .fill_bytes(&mut out);
        Ok(out)
    }

    /// An independent copy at the same stream position: both draw the same bytes from
    /// here on (see [`crate::server::Server::checkpoint`]).
    pub fn checkpoint(&self) -> SeededCrypto {
        SeededCrypto {
            inner: RustCrypto::default(),
            hpke_key: self.hpke_key,
            rng: Mutex::new(self.snapshot().0),
        }
    }

    /// Save the stream position.
    pub fn snapshot(&self) -> RngSnapshot {
        RngSnapshot(self.rng.lock().expect("rng lock is never poisoned").clone())
    }

    /// Return the stream to a saved position.
    pub fn restore(&self, snap: &RngSnapshot) {
        *self.rng.lock().expect("rng lock is never poisoned") = snap.0.clone();
    }

    fn hpke(config: HpkeConfig) -> Result<Hpke<DetHpke>, CryptoError> {
        Ok(Hpke::<DetHpke>::new(
            Mode::Base,
            kem_alg(config.0)?,
            kdf_alg(config.1),
            aead_alg(config.2),
        ))
    }
}

impl OpenMlsRand for SeededCrypto {
    type Error = CryptoError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        self.draw::<N>()
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        let mut v = vec![0u8; len];
        self.rng
            .lock()
            .map_err(|_| CryptoError::InsufficientRandomness)?
            .fill_bytes(&mut v);
        Ok(v)
    }
}

impl OpenMlsCrypto for SeededCrypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        self.inner.supports(ciphersuite)
    }
    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        self.inner.supported_ciphersuites()
    }
    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        self.inner.hkdf_extract(hash_type, salt, ikm)
    }
    fn hmac(
        &self,
        hash_type: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        self.inner.hmac(hash_type, key, message)
    }
    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        self.inner.hkdf_expand(hash_type, prk, info, okm_len)
    }
    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.inner.hash(hash_type, data)
    }
    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.inner.aead_encrypt(alg, key, data, nonce, aad)
    }
    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.inner.aead_decrypt(alg, key, ct_tag, nonce, aad)
    }
    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        cost::measure("crypto.signature_key_gen", || {
            match alg {
                SignatureScheme::ED25519 => {
                    let seed = self.draw::<32>()?;
                    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
                    Ok((sk.to_bytes().into(), sk.verifying_key().to_bytes().into()))
                }
                // Only Ed25519 suites are seeded; refusing is better than drawing from the OS.
                _ => Err(CryptoError::UnsupportedSignatureScheme),
            }
        })
    }
    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        cost::measure("crypto.verify", || {
            self.inner.verify_signature(alg, data, pk, signature)
        })
    }
    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        cost::measure("crypto.sign", || self.inner.sign(alg, data, key))
    }
    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        cost::measure("crypto.hpke_seal", || {
            let mut h = Sha256::new();
            h.update(self.hpke_key);
            for part in [pk_r, info, aad, ptxt] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            let seed: [u8; 32] = h.finalize().into();
            with_hpke_seed(seed, || {
                let mut hpke = Self::hpke(config)?;
                let (kem_output, ciphertext) = hpke
                    .seal(&pk_r.into(), info, aad, ptxt, None, None, None)
                    .map_err(|e| match e {
                        hpke_rs::HpkeError::InvalidInput => CryptoError::InvalidLength,
                        _ => CryptoError::CryptoLibraryError,
                    })?;
                Ok(HpkeCiphertext {
                    kem_output: kem_output.into(),
                    ciphertext: ciphertext.into(),
                })
            })
        })
    }
    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        cost::measure("crypto.hpke_open", || {
            self.inner.hpke_open(config, input, sk_r, info, aad)
        })
    }
    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        cost::measure("crypto.hpke_export", || {
            let seed = self.draw::<32>()?;
            with_hpke_seed(seed, || {
                let mut hpke = Self::hpke(config)?;
                let (kem_output, context) = hpke
                    .setup_sender(&pk_r.into(), info, None, None, None)
                    .map_err(|_| CryptoError::SenderSetupError)?;
                let exported = context
                    .export(exporter_context, exporter_length)
                    .map_err(|_| CryptoError::ExporterError)?;
                Ok((kem_output, exported.into()))
            })
        })
    }
    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        cost::measure("crypto.hpke_export", || {
            self.inner.hpke_setup_receiver_and_export(
                config,
                enc,
                sk_r,
                info,
                exporter_context,
                exporter_length,
            )
        })
    }
    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        cost::measure("crypto.derive_hpke_keypair", || {
            self.inner.derive_hpke_keypair(config, ikm)
        })
    }
}

/// Where a provider keeps its MLS state: any OpenMLS storage of the trait version this
/// build of openmls uses (the simulator's [`MemoryStorage`]; the testbed's SQLite files,
/// `sim/src/testbed/mls_store.rs`).
pub trait MlsStorage: StorageProvider<CURRENT_VERSION> {}

impl<S: StorageProvider<CURRENT_VERSION>> MlsStorage for S {}

/// An OpenMLS provider for one node: seeded crypto and its own storage (in memory unless
/// the node was built with another, see [`SeededProvider::with_storage`]).
pub struct SeededProvider<S: MlsStorage = MemoryStorage> {
    crypto: SeededCrypto,
    storage: S,
}

impl SeededProvider {
    pub fn new(seed: [u8; 32]) -> Self {
        Self::with_storage(seed, MemoryStorage::default())
    }

    /// A provider for the stream `label` of run `run_seed` (see [`derive_seed`]).
    pub fn for_node(run_seed: u64, label: &str) -> Self {
        Self::new(derive_seed(run_seed, label))
    }

    /// A deep copy of the storage (the hub keeps one per epoch to roll back a commit).
    pub fn storage_snapshot(&self) -> MemoryStorage {
        let values = self
            .storage
            .values
            .read()
            .expect("storage lock is never poisoned")
            .clone();
        MemoryStorage {
            values: std::sync::RwLock::new(values),
        }
    }

    /// An independent deep copy: the same stream position and the same stored objects
    /// (see [`crate::server::Server::checkpoint`]).
    pub fn checkpoint(&self) -> SeededProvider {
        SeededProvider {
            crypto: self.crypto.checkpoint(),
            storage: self.storage_snapshot(),
        }
    }

    /// Replace the storage with a snapshot taken earlier.
    pub fn restore_storage(&mut self, snap: MemoryStorage) {
        self.storage = snap;
    }

    /// The same random stream (at the same position) over another storage. Only a
    /// provider that has stored nothing yet may move: its state would be left behind.
    pub fn into_storage<S: MlsStorage>(self, storage: S) -> SeededProvider<S> {
        let stored = self
            .storage
            .values
            .read()
            .expect("storage lock is never poisoned")
            .len();
        assert_eq!(
            stored, 0,
            "a provider with stored MLS state cannot move to another storage"
        );
        SeededProvider {
            crypto: self.crypto,
            storage,
        }
    }
}

impl<S: MlsStorage> SeededProvider<S> {
    /// A provider whose random stream starts at `seed` and whose MLS state lives in
    /// `storage`. The stream does not depend on the storage: the same seed draws the same
    /// bytes whatever keeps the state.
    pub fn with_storage(seed: [u8; 32], storage: S) -> Self {
        SeededProvider {
            crypto: SeededCrypto::new(seed),
            storage,
        }
    }

    pub fn seeded_crypto(&self) -> &SeededCrypto {
        &self.crypto
    }
}

impl<S: MlsStorage> OpenMlsProvider for SeededProvider<S> {
    type CryptoProvider = SeededCrypto;
    type RandProvider = SeededCrypto;
    type StorageProvider = S;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }
    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }
    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}
