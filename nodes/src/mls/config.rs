//! The MLS configuration every MIMI member and hub of this project uses.
//!
//! * Cipher suite 0x0001 (X25519, AES-128-GCM, SHA-256, Ed25519): the seeded provider
//!   seeds Ed25519 keys only.
//! * Handshakes are PublicMessage (`MIXED_PLAINTEXT` policy) so the hub's `PublicGroup`
//!   can validate every proposal and commit (P§5.3; RFC 9420 §6 allows PublicMessage
//!   handshakes where the Delivery Service must examine them).
//! * Room state lives in the `app_data_dictionary` GroupContext extension, changed only
//!   by AppDataUpdate proposals (X§4.6–4.7); SelfRemove is used for leaving. Every leaf
//!   advertises both and the GroupContext requires them.
//! * Lifetimes are a constant window (2020–2100): `Lifetime::new` reads the wall clock,
//!   which would make bytes depend on the date (openmls 0.9.2 `src/key_packages/lifetime.rs`).

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider;

use crate::ids::{ClientUri, Domain};
use crate::mls::cost;

/// The one cipher suite of the simulator.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// KeyPackage and leaf lifetime window: 2020-01-01 to 2100-01-01 (seconds since the epoch).
/// Constant so that bytes never depend on the wall clock; wide so that openmls' real-clock
/// validation accepts it.
pub const LIFETIME_NOT_BEFORE: u64 = 1_577_836_800;
pub const LIFETIME_NOT_AFTER: u64 = 4_102_444_800;

/// How many past epochs a client keeps secrets for (late application messages).
pub const MAX_PAST_EPOCHS: usize = 8;

/// Tolerated out-of-order application messages per sender (sender ratchet window).
pub const OUT_OF_ORDER_TOLERANCE: u32 = 32;
/// Maximum forward distance of a sender ratchet.
pub const MAXIMUM_FORWARD_DISTANCE: u32 = 1000;

pub fn lifetime() -> Lifetime {
    Lifetime::init(LIFETIME_NOT_BEFORE, LIFETIME_NOT_AFTER)
}

/// Leaf capabilities: AppDataDictionary extension; AppDataUpdate and SelfRemove proposals.
pub fn leaf_capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::AppDataDictionary]),
        Some(&[ProposalType::AppDataUpdate, ProposalType::SelfRemove]),
        Some(&[CredentialType::Basic]),
    )
}

/// The GroupContext's `required_capabilities`.
pub fn required_capabilities() -> Extension {
    Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
        &[ExtensionType::AppDataDictionary],
        &[ProposalType::AppDataUpdate, ProposalType::SelfRemove],
        &[CredentialType::Basic],
    ))
}

fn sender_ratchet() -> SenderRatchetConfiguration {
    SenderRatchetConfiguration::new(OUT_OF_ORDER_TOLERANCE, MAXIMUM_FORWARD_DISTANCE)
}

/// Join configuration (Welcome and external commit).
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(sender_ratchet())
        .use_ratchet_tree_extension(false)
        .build()
}

/// The GroupContext extensions of a new room: required capabilities, the room state
/// (`app_data_dictionary`) and the hub as external sender (P§7.4).
pub fn room_group_context_extensions(
    dictionary: AppDataDictionary,
    hub_sender: ExternalSender,
) -> Result<Extensions<GroupContext>, InvalidExtensionError> {
    Extensions::from_vec(vec![
        required_capabilities(),
        Extension::AppDataDictionary(AppDataDictionaryExtension::new(dictionary)),
        Extension::ExternalSenders(vec![hub_sender]),
    ])
}

/// A node's MLS identity: a BasicCredential and a seeded Ed25519 key pair.
#[derive(Clone)]
pub struct Identity {
    pub signer: SignatureKeyPair,
    pub credential_with_key: CredentialWithKey,
}

impl Identity {
    /// An identity whose credential names `identity` (bytes) and whose key comes from
    /// `provider`'s seeded stream.
    pub fn generate<P: OpenMlsProvider>(
        provider: &P,
        identity: &[u8],
    ) -> Result<Self, CryptoError> {
        cost::measure("identity.generate", || {
            use openmls_traits::crypto::OpenMlsCrypto;
            let (sk, pk) = provider
                .crypto()
                .signature_key_gen(CIPHERSUITE.signature_algorithm())?;
            let signer = SignatureKeyPair::from_raw(CIPHERSUITE.signature_algorithm(), sk, pk);
            let credential = BasicCredential::new(identity.to_vec());
            let credential_with_key = CredentialWithKey {
                credential: credential.into(),
                signature_key: signer.public().into(),
            };
            Ok(Identity {
                signer,
                credential_with_key,
            })
        })
    }

    /// A client's identity: its credential is the client URI ([`crate::ids`]; choice 1 of
    /// `nodes/CHOICES.md`).
    pub fn for_client<P: OpenMlsProvider>(
        provider: &P,
        client: &ClientUri,
    ) -> Result<Self, CryptoError> {
        Self::generate(provider, client.as_bytes())
    }

    /// A server's identity (hub or follower as external sender): credential `mimi://<domain>`.
    pub fn for_server<P: OpenMlsProvider>(
        provider: &P,
        domain: &Domain,
    ) -> Result<Self, CryptoError> {
        Self::generate(provider, server_credential_identity(domain).as_bytes())
    }

    /// This identity as an `external_senders` entry.
    pub fn external_sender(&self) -> ExternalSender {
        ExternalSender::new(
            self.credential_with_key.signature_key.clone(),
            self.credential_with_key.credential.clone(),
        )
    }

    /// A fresh KeyPackage with the project's fixed lifetime and capabilities.
    pub fn key_package<P: OpenMlsProvider>(
        &self,
        provider: &P,
    ) -> Result<KeyPackageBundle, KeyPackageNewError> {
        cost::measure("keypackage.create", || {
            KeyPackage::builder()
                .key_package_lifetime(lifetime())
                .leaf_node_capabilities(leaf_capabilities())
                .build(
                    CIPHERSUITE,
                    provider,
                    &self.signer,
                    self.credential_with_key.clone(),
                )
        })
    }
}

/// The credential identity of a server: `mimi://<domain>`.
pub fn server_credential_identity(domain: &Domain) -> String {
    format!("mimi://{domain}")
}

/// The client URI named by a member's BasicCredential, if it is one.
pub fn client_of_credential(credential: &Credential) -> Option<ClientUri> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    ClientUri::from_bytes(basic.identity()).ok()
}
