//! Hub-shadow replay of the MLS passive-client vectors.
//!
//! For each test (mlswg/mls-implementations `test-vectors.md`, "Passive Client
//! Scenarios"): a passive client joins with the vector's key package, private keys and
//! Welcome (RFC 9420 §12.4.3.1); the hub builds its public view of the group
//! (`PublicGroup`, as an MLS Delivery Service tracking the group without membership,
//! RFC 9420 §16 and mimi-protocol P§5) from the client's GroupInfo and ratchet tree; then
//! every proposal and commit of every epoch goes to both. After the join and after each
//! epoch the client's epoch authenticator must equal the vector's (RFC 9420 §8.7) and the
//! hub's GroupContext must equal the client's, byte for byte.
//!
//! Choices:
//! * **Key material without `test-utils`.** openmls 0.9.2 builds a `KeyPackageBundle` only
//!   from freshly generated keys (its constructor from parts is `test-utils` only). The
//!   bundle is `serde`-deserialisable, which is how storage reads it, so the replay builds
//!   it through serde from the vector's key package and private keys and writes it with
//!   the storage API (`write_key_package`), keyed by the key package's hash reference —
//!   just as a client's own storage would hold it. The Welcome join then stores the leaf
//!   key pair itself. External PSKs go in with `PreSharedKeyId::store`.
//! * **Expired key packages.** The key package is checked with `KeyPackageIn::validate`
//!   (both signatures, version, distinct keys, extension support). If the only error is
//!   its lifetime, the replay accepts it (some vector key packages expired in 2024; all
//!   other checks run before the lifetime check) and converts it through openmls' serde
//!   form, then requires its TLS encoding to equal the vector's bytes. Leaf lifetimes in
//!   the Welcome's tree are not checked (`JoinBuilder::skip_lifetime_validation`).
//! * **The hub and expired leaves.** `PublicGroup::from_external` checks leaf lifetimes
//!   against the wall clock and openmls 0.9.2 has no public switch to skip that (its
//!   switch is `test-utils` only). The vectors' trees hold leaves that expired in March
//!   2025, so every hub view is rejected for that reason alone. Lifetimes are checked
//!   last, after the tree's signatures and parent hashes, the GroupInfo's signature and
//!   the tree hash; and the client's join already ran every leaf check except lifetimes.
//!   So when — and only when — `from_external` fails with a leaf lifetime error, the hub
//!   copies the four values `PublicGroup::load` reads (tree, GroupContext, interim
//!   transcript hash, confirmation tag) from the client's storage into its own, loads
//!   its view from there, and requires its GroupContext to equal the GroupInfo's and its
//!   ratchet tree to equal the exported tree, byte for byte. From then on the hub
//!   processes every proposal and commit itself. The report counts how each hub view
//!   was built ([`HubViewOrigin`]).
//! * **The hub sees what it would see on the wire**: the GroupInfo and ratchet tree are
//!   serialised by the client and parsed by the hub, and every handshake is parsed from
//!   the vector's bytes separately for each side.
//! * **Both sides see every message.** When one side rejects a message the other is
//!   still asked, so a report shows e.g. "client rejected, hub accepted" (a hub that
//!   cannot check membership tags accepts what members reject). The replay of a test
//!   stops at its first disagreement.
//! * **Private handshakes.** If any handshake of a test is a PrivateMessage the hub cannot
//!   follow the group; that test is skipped for the hub ("private handshake") and checked
//!   on the client alone.
//! * **Which suites run** is decided by the provider (`OpenMlsCrypto::supports`): for
//!   RustCrypto that is suites 1, 2 and 3; others are "unsupported cipher suite N".
//! * **Inputs that break RFC 9420.** Before anything else, each test's KeyPackage goes
//!   through our own RFC 9420 check ([`super::rfc9420`]). A test whose KeyPackage breaks a
//!   rule there (e.g. an extension missing from its leaf's capabilities, §10) is not
//!   replayed: it is reported as violating RFC 9420 together with what the client's
//!   key-package check made of it (it runs for any cipher suite, supported or not).
//! * The client accepts PublicMessage and PrivateMessage handshakes (mixed incoming wire
//!   format policy) and keeps [`RESUMPTION_PSKS_KEPT`] resumption PSKs, so vectors that
//!   use resumption PSKs of recent epochs can be followed.

use openmls::prelude::{
    tls_codec::{Deserialize as TlsDeserialize, Serialize as TlsSerialize},
    Ciphersuite, KeyPackage, KeyPackageBundle, KeyPackageIn, KeyPackageVerifyError, MlsGroup,
    MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, ProcessedMessageContent, ProposalStore,
    ProtocolVersion, PublicGroup, RatchetTreeIn, StagedWelcome, WireFormat,
    MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
};
use openmls::prelude::{CreationFromExternalError, GroupId};
use openmls::schedule::PreSharedKeyId;
use openmls::treesync::errors::LeafNodeValidationError;
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use openmls_traits::{
    crypto::OpenMlsCrypto,
    public_storage::PublicStorageProvider,
    signatures::Signer,
    storage::{traits, Entity, StorageProvider as _, CURRENT_VERSION},
    types::HpkePrivateKey,
    OpenMlsProvider,
};
use serde::{Deserialize, Serialize};

use super::mls_file::PassiveClientTest;
use super::provider::{ReplayProvider, VectorSigner};
use super::report::{
    Disagreement, Failure, HubViewOrigin, ReplayReport, SkipReason, Step, TestOutcome,
    VectorViolation, Verdict,
};
use super::rfc9420::{check_key_package, KeyPackageCheck};

/// Resumption PSKs the client keeps (past epochs it can still inject as a PSK).
pub const RESUMPTION_PSKS_KEPT: usize = 16;

/// Label of the payload signed to check that `signature_priv` belongs to the own leaf.
const SIGNATURE_KEY_PROBE: &[u8] = b"mimi-sim vector replay: signature key probe";

/// Checks and replays every test of a passive-client vector file and totals the outcomes.
pub fn replay_passive_client_tests(tests: &[PassiveClientTest]) -> ReplayReport {
    let mut report = ReplayReport::default();
    for (index, test) in tests.iter().enumerate() {
        let check = check_key_package(&test.key_package);
        report.record_check(&check);
        report.record(outcome_after_check(index, test, check));
    }
    report
}

/// Checks one test's inputs against RFC 9420 and, if they conform, replays it (`index`
/// is its position in the file, used in failures).
pub fn replay_test(index: usize, test: &PassiveClientTest) -> TestOutcome {
    outcome_after_check(index, test, check_key_package(&test.key_package))
}

fn outcome_after_check(
    index: usize,
    test: &PassiveClientTest,
    check: KeyPackageCheck,
) -> TestOutcome {
    match check {
        KeyPackageCheck::Violates(violations) => TestOutcome::ViolatesRfc9420(VectorViolation {
            test: index,
            violations,
            client: client_key_package_verdict(test),
        }),
        KeyPackageCheck::Conforms | KeyPackageCheck::Undecodable(_) => {
            replay_conforming(index, test)
        }
    }
}

/// What the client's key-package check makes of the vector's KeyPackage (not run for a
/// cipher suite the provider lacks: signatures could not be checked).
fn client_key_package_verdict(test: &PassiveClientTest) -> Verdict {
    if supported_ciphersuite(test.cipher_suite).is_none() {
        return Verdict::NotRun;
    }
    verdict(key_package_from_vector(&test.key_package, &RustCrypto::default()).map(|_| ()))
}

/// Replays a test whose inputs the RFC 9420 check did not refuse.
fn replay_conforming(index: usize, test: &PassiveClientTest) -> TestOutcome {
    let Some(ciphersuite) = supported_ciphersuite(test.cipher_suite) else {
        return TestOutcome::Skipped(SkipReason::UnsupportedCipherSuite(test.cipher_suite));
    };
    let hub_skipped = if has_private_handshake(test) {
        Some(SkipReason::PrivateHandshake)
    } else {
        None
    };
    let mut replay = Replay {
        test: index,
        epochs_agreeing: 0,
        hub_view: None,
    };
    let failure = replay.run(test, ciphersuite, hub_skipped.is_none()).err();
    TestOutcome::Replayed {
        hub_skipped,
        hub_view: replay.hub_view,
        epochs_agreeing: replay.epochs_agreeing,
        failure,
    }
}

/// The cipher suite, if the replay's crypto provider implements it.
fn supported_ciphersuite(value: u16) -> Option<Ciphersuite> {
    let ciphersuite = Ciphersuite::try_from(value).ok()?;
    RustCrypto::default()
        .supports(ciphersuite)
        .ok()
        .map(|()| ciphersuite)
}

/// True if any handshake of the test parses as a PrivateMessage.
fn has_private_handshake(test: &PassiveClientTest) -> bool {
    test.epochs
        .iter()
        .flat_map(|e| e.proposals.iter().chain(std::iter::once(&e.commit)))
        .any(|bytes| {
            MlsMessageIn::tls_deserialize_exact(bytes.as_slice())
                .map(|m| m.wire_format() == WireFormat::PrivateMessage)
                .unwrap_or(false)
        })
}

/// The kind of handshake a step of the vector must carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expected {
    Proposal,
    Commit,
}

struct Replay {
    test: usize,
    epochs_agreeing: usize,
    hub_view: Option<HubViewOrigin>,
}

impl Replay {
    fn failure(&self, epoch: usize, disagreements: Vec<Disagreement>) -> Failure {
        Failure {
            test: self.test,
            epoch,
            disagreements,
        }
    }

    fn client_rejected(&self, epoch: usize, step: Step, error: String) -> Failure {
        self.failure(
            epoch,
            vec![Disagreement::Rejected {
                step,
                client: Verdict::Rejected(error),
                hub: Verdict::NotRun,
            }],
        )
    }

    fn run(
        &mut self,
        test: &PassiveClientTest,
        ciphersuite: Ciphersuite,
        with_hub: bool,
    ) -> Result<(), Failure> {
        let mut client = Client::join(test, ciphersuite)
            .map_err(|(step, e)| self.client_rejected(0, step, e))?;
        let mut hub = if with_hub {
            let (group_info, tree) = client
                .export_for_hub(test)
                .map_err(|(step, e)| self.client_rejected(0, step, e))?;
            let (hub, origin) = Hub::from_group_info(&group_info, &tree, client.provider.storage())
                .map_err(|e| {
                    self.failure(
                        0,
                        vec![Disagreement::Rejected {
                            step: Step::HubView,
                            client: Verdict::Accepted,
                            hub: Verdict::Rejected(e),
                        }],
                    )
                })?;
            self.hub_view = Some(origin);
            Some(hub)
        } else {
            None
        };
        self.check_epoch(0, &test.initial_epoch_authenticator, &client, hub.as_ref())?;

        for (k, epoch) in test.epochs.iter().enumerate() {
            let number = k + 1;
            let steps = epoch
                .proposals
                .iter()
                .enumerate()
                .map(|(index, bytes)| (Step::Proposal { index }, Expected::Proposal, bytes))
                .chain(std::iter::once((
                    Step::Commit,
                    Expected::Commit,
                    &epoch.commit,
                )));
            for (step, expected, bytes) in steps {
                let client_verdict = verdict(client.apply(bytes, expected));
                let hub_verdict = match hub.as_mut() {
                    Some(hub) => verdict(hub.apply(bytes, expected)),
                    None => Verdict::NotRun,
                };
                if matches!(client_verdict, Verdict::Rejected(_))
                    || matches!(hub_verdict, Verdict::Rejected(_))
                {
                    return Err(self.failure(
                        number,
                        vec![Disagreement::Rejected {
                            step,
                            client: client_verdict,
                            hub: hub_verdict,
                        }],
                    ));
                }
            }
            self.check_epoch(number, &epoch.epoch_authenticator, &client, hub.as_ref())?;
        }
        Ok(())
    }

    /// The end-of-epoch checks: the vector's epoch authenticator, and hub == client.
    fn check_epoch(
        &mut self,
        epoch: usize,
        expected_authenticator: &[u8],
        client: &Client,
        hub: Option<&Hub>,
    ) -> Result<(), Failure> {
        let mut disagreements = Vec::new();
        let authenticator = client.group.epoch_authenticator().as_slice();
        if authenticator != expected_authenticator {
            disagreements.push(Disagreement::EpochAuthenticator {
                expected: hex::encode(expected_authenticator),
                client: hex::encode(authenticator),
            });
        }
        if let Some(hub) = hub {
            let client_context = client.group.public_group().group_context();
            let hub_context = hub.group.group_context();
            let client_bytes = client_context.tls_serialize_detached();
            let hub_bytes = hub_context.tls_serialize_detached();
            match (client_bytes, hub_bytes) {
                (Ok(c), Ok(h)) if c == h => {}
                (c, h) => disagreements.push(Disagreement::GroupContext {
                    client: c.map(hex::encode).unwrap_or_else(|e| e.to_string()),
                    hub: h.map(hex::encode).unwrap_or_else(|e| e.to_string()),
                }),
            }
        }
        if disagreements.is_empty() {
            self.epochs_agreeing += 1;
            Ok(())
        } else {
            Err(self.failure(epoch, disagreements))
        }
    }
}

fn verdict(result: Result<(), String>) -> Verdict {
    match result {
        Ok(()) => Verdict::Accepted,
        Err(e) => Verdict::Rejected(e),
    }
}

/// Parses a handshake MLSMessage into a protocol message.
fn protocol_message(bytes: &[u8]) -> Result<openmls::prelude::ProtocolMessage, String> {
    MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| format!("not an MLSMessage: {e}"))?
        .try_into_protocol_message()
        .map_err(|e| format!("not a handshake message: {e}"))
}

/// The passive client: an MLS member with its own storage.
struct Client {
    provider: ReplayProvider,
    group: MlsGroup,
}

/// The serde image of openmls' `KeyPackageBundle` (see the module's Choices).
#[derive(Serialize)]
struct BundleImage<'a> {
    key_package: &'a KeyPackage,
    private_init_key: HpkePrivateKey,
    private_encryption_key: EncryptionPrivateKeyImage,
}

#[derive(Serialize)]
struct EncryptionPrivateKeyImage {
    key: HpkePrivateKey,
}

impl Client {
    /// Loads the vector's key material and joins through its Welcome.
    fn join(test: &PassiveClientTest, ciphersuite: Ciphersuite) -> Result<Self, (Step, String)> {
        let provider = ReplayProvider::default();
        let key_material = |e: String| (Step::KeyMaterial, e);

        for psk in &test.external_psks {
            PreSharedKeyId::external(psk.psk_id.clone(), Vec::new())
                .store(&provider, &psk.psk)
                .map_err(|e| key_material(format!("storing external PSK: {e}")))?;
        }

        let key_package =
            key_package_from_vector(&test.key_package, provider.crypto()).map_err(key_material)?;
        if key_package.ciphersuite() != ciphersuite {
            return Err(key_material(format!(
                "key package is for {:?}, the test for {:?}",
                key_package.ciphersuite(),
                ciphersuite
            )));
        }
        let bundle = bundle_from_parts(&key_package, &test.init_priv, &test.encryption_priv)
            .map_err(key_material)?;
        let hash_ref = key_package
            .hash_ref(provider.crypto())
            .map_err(|e| key_material(format!("key package reference: {e}")))?;
        provider
            .storage()
            .write_key_package(&hash_ref, &bundle)
            .map_err(|e| key_material(format!("storing key package bundle: {e}")))?;

        let welcome_error = |e: String| (Step::Welcome, e);
        let welcome = match MlsMessageIn::tls_deserialize_exact(test.welcome.as_slice())
            .map_err(|e| welcome_error(format!("not an MLSMessage: {e}")))?
            .extract()
        {
            MlsMessageBodyIn::Welcome(welcome) => welcome,
            _ => return Err(welcome_error("MLSMessage is not a Welcome".into())),
        };
        let config = MlsGroupJoinConfig::builder()
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .number_of_resumption_psks(RESUMPTION_PSKS_KEPT)
            .build();
        let mut join = StagedWelcome::build_from_welcome(&provider, &config, welcome)
            .map_err(|e| welcome_error(format!("processing Welcome: {e}")))?
            .skip_lifetime_validation();
        if let Some(tree) = &test.ratchet_tree {
            let tree = RatchetTreeIn::tls_deserialize_exact(tree.as_slice())
                .map_err(|e| welcome_error(format!("ratchet_tree does not parse: {e}")))?;
            join = join.with_ratchet_tree(tree);
        }
        let group = join
            .build()
            .map_err(|e| welcome_error(format!("staging Welcome: {e}")))?
            .into_group(&provider)
            .map_err(|e| welcome_error(format!("joining: {e}")))?;
        Ok(Self { provider, group })
    }

    /// The client's GroupInfo and ratchet tree, serialised as the hub would receive them.
    /// Also checks that the vector's `signature_priv` signs for the client's own leaf.
    fn export_for_hub(
        &self,
        test: &PassiveClientTest,
    ) -> Result<(Vec<u8>, Vec<u8>), (Step, String)> {
        let crypto = self.provider.crypto();
        let scheme = self.group.ciphersuite().signature_algorithm();
        let signer = VectorSigner::new(crypto, scheme, &test.signature_priv)
            .map_err(|e| (Step::SignatureKey, e.to_string()))?;
        let own_leaf = self
            .group
            .own_leaf_node()
            .ok_or_else(|| (Step::SignatureKey, "client has no own leaf".to_string()))?;
        let probe = signer
            .sign(SIGNATURE_KEY_PROBE)
            .map_err(|e| (Step::SignatureKey, format!("signing: {e:?}")))?;
        crypto
            .verify_signature(
                scheme,
                SIGNATURE_KEY_PROBE,
                own_leaf.signature_key().as_slice(),
                &probe,
            )
            .map_err(|e| {
                (
                    Step::SignatureKey,
                    format!("signature_priv does not match the own leaf's key: {e:?}"),
                )
            })?;

        let group_info = self
            .group
            .export_group_info(crypto, &signer, false)
            .map_err(|e| (Step::Export, format!("exporting GroupInfo: {e}")))?
            .tls_serialize_detached()
            .map_err(|e| (Step::Export, format!("serialising GroupInfo: {e}")))?;
        let tree = self
            .group
            .export_ratchet_tree()
            .tls_serialize_detached()
            .map_err(|e| (Step::Export, format!("serialising ratchet tree: {e}")))?;
        Ok((group_info, tree))
    }

    /// Processes one handshake: stores a proposal, merges a commit.
    fn apply(&mut self, bytes: &[u8], expected: Expected) -> Result<(), String> {
        let message = protocol_message(bytes)?;
        let processed = self
            .group
            .process_message(&self.provider, message)
            .map_err(|e| format!("process_message: {e}"))?;
        match (processed.into_content(), expected) {
            (ProcessedMessageContent::ProposalMessage(proposal), Expected::Proposal)
            | (
                ProcessedMessageContent::ExternalJoinProposalMessage(proposal),
                Expected::Proposal,
            ) => self
                .group
                .store_pending_proposal(self.provider.storage(), *proposal)
                .map_err(|e| format!("store_pending_proposal: {e}")),
            (ProcessedMessageContent::StagedCommitMessage(commit), Expected::Commit) => self
                .group
                .merge_staged_commit(&self.provider, *commit)
                .map_err(|e| format!("merge_staged_commit: {e}")),
            (other, _) => Err(unexpected_content(&other, expected)),
        }
    }
}

fn unexpected_content(content: &ProcessedMessageContent, expected: Expected) -> String {
    let got = match content {
        ProcessedMessageContent::ApplicationMessage(_) => "an application message",
        ProcessedMessageContent::ProposalMessage(_) => "a proposal",
        ProcessedMessageContent::ExternalJoinProposalMessage(_) => "an external join proposal",
        ProcessedMessageContent::StagedCommitMessage(_) => "a commit",
        #[allow(unreachable_patterns)]
        _ => "another kind of content",
    };
    let wanted = match expected {
        Expected::Proposal => "a proposal",
        Expected::Commit => "a commit",
    };
    format!("expected {wanted}, got {got}")
}

/// The vector's KeyPackage, checked (except for its lifetime, see Choices).
fn key_package_from_vector(bytes: &[u8], crypto: &RustCrypto) -> Result<KeyPackage, String> {
    let key_package_in: KeyPackageIn = match MlsMessageIn::tls_deserialize_exact(bytes)
        .map_err(|e| format!("key_package is not an MLSMessage: {e}"))?
        .extract()
    {
        MlsMessageBodyIn::KeyPackage(kp) => kp,
        _ => return Err("key_package MLSMessage does not carry a KeyPackage".into()),
    };
    let key_package = match key_package_in
        .clone()
        .validate(crypto, ProtocolVersion::Mls10)
    {
        Ok(kp) => kp,
        Err(KeyPackageVerifyError::LifetimeError(_)) => {
            let image = serde_json::to_value(&key_package_in)
                .map_err(|e| format!("key package serde image: {e}"))?;
            serde_json::from_value::<KeyPackage>(image)
                .map_err(|e| format!("key package from serde image: {e}"))?
        }
        Err(e) => return Err(format!("invalid key package: {e}")),
    };
    // The Welcome names the key package by the hash of its exact bytes: they must survive.
    let reencoded = key_package
        .tls_serialize_detached()
        .map_err(|e| format!("re-encoding key package: {e}"))?;
    let original = MlsMessageIn::tls_deserialize_exact(bytes)
        .ok()
        .and_then(|m| m.tls_serialize_detached().ok());
    let body = original
        .as_deref()
        .and_then(|b| b.get(MLS_MESSAGE_HEADER_BYTES..));
    if body != Some(reencoded.as_slice()) {
        return Err("key package does not re-encode to the vector's bytes".into());
    }
    Ok(key_package)
}

/// `ProtocolVersion version; WireFormat wire_format;` (RFC 9420 §6) before the body.
const MLS_MESSAGE_HEADER_BYTES: usize = 4;

/// A `KeyPackageBundle` from the key package and the two HPKE private keys.
fn bundle_from_parts(
    key_package: &KeyPackage,
    init_priv: &[u8],
    encryption_priv: &[u8],
) -> Result<KeyPackageBundle, String> {
    let image = BundleImage {
        key_package,
        private_init_key: HpkePrivateKey::from(init_priv),
        private_encryption_key: EncryptionPrivateKeyImage {
            key: HpkePrivateKey::from(encryption_priv),
        },
    };
    let value =
        serde_json::to_value(&image).map_err(|e| format!("key package bundle image: {e}"))?;
    let bundle: KeyPackageBundle =
        serde_json::from_value(value).map_err(|e| format!("key package bundle from image: {e}"))?;
    if &bundle.init_private_key()[..] != init_priv {
        return Err("key package bundle lost the init private key".into());
    }
    Ok(bundle)
}

/// The hub's public view of the group, with its own storage.
struct Hub {
    provider: ReplayProvider,
    group: PublicGroup,
}

impl Hub {
    /// Builds the view from a serialised GroupInfo MLSMessage and ratchet tree with
    /// `PublicGroup::from_external`. If that rejects them only for an expired leaf
    /// lifetime, the view is built from the client's stored public state instead (see
    /// [`HubViewOrigin::ClientStateAfterExpiredLifetime`]); `client_storage` is read for
    /// that case only.
    fn from_group_info(
        group_info_bytes: &[u8],
        tree_bytes: &[u8],
        client_storage: &MemoryStorage,
    ) -> Result<(Self, HubViewOrigin), String> {
        let provider = ReplayProvider::default();
        let group_info = match MlsMessageIn::tls_deserialize_exact(group_info_bytes)
            .map_err(|e| format!("GroupInfo is not an MLSMessage: {e}"))?
            .extract()
        {
            MlsMessageBodyIn::GroupInfo(gi) => gi,
            _ => return Err("MLSMessage is not a GroupInfo".into()),
        };
        let claimed_context = group_info
            .group_context()
            .tls_serialize_detached()
            .map_err(|e| format!("serialising the GroupInfo's group context: {e}"))?;
        let group_id = group_info.group_id().clone();
        let tree = RatchetTreeIn::tls_deserialize_exact(tree_bytes)
            .map_err(|e| format!("ratchet tree does not parse: {e}"))?;
        match PublicGroup::from_external(
            provider.crypto(),
            provider.storage(),
            tree,
            group_info,
            ProposalStore::new(),
        ) {
            Ok((group, _group_info)) => Ok((Self { provider, group }, HubViewOrigin::GroupInfo)),
            Err(CreationFromExternalError::LeafNodeValidation(
                LeafNodeValidationError::Lifetime(lifetime),
            )) => {
                copy_public_state(client_storage, provider.storage(), &group_id).map_err(|e| {
                    format!("after an expired leaf lifetime ({lifetime}): copying state: {e}")
                })?;
                let group = PublicGroup::load(provider.storage(), &group_id)
                    .map_err(|e| format!("loading the copied state: {e}"))?
                    .ok_or("the client's storage holds no public state for the group")?;
                let loaded_context = group
                    .group_context()
                    .tls_serialize_detached()
                    .map_err(|e| format!("serialising the copied group context: {e}"))?;
                if loaded_context != claimed_context {
                    return Err(
                        "the client's stored group context differs from its GroupInfo's".into(),
                    );
                }
                let loaded_tree = group
                    .export_ratchet_tree()
                    .tls_serialize_detached()
                    .map_err(|e| format!("serialising the copied tree: {e}"))?;
                if loaded_tree != tree_bytes {
                    return Err("the client's stored tree differs from its exported tree".into());
                }
                Ok((
                    Self { provider, group },
                    HubViewOrigin::ClientStateAfterExpiredLifetime,
                ))
            }
            Err(e) => Err(format!("PublicGroup::from_external: {e}")),
        }
    }

    /// Processes one handshake: queues a proposal, merges a commit.
    fn apply(&mut self, bytes: &[u8], expected: Expected) -> Result<(), String> {
        let message = protocol_message(bytes)?;
        let processed = self
            .group
            .process_message(self.provider.crypto(), message)
            .map_err(|e| format!("process_message: {e}"))?;
        match (processed.into_content(), expected) {
            (ProcessedMessageContent::ProposalMessage(proposal), Expected::Proposal)
            | (
                ProcessedMessageContent::ExternalJoinProposalMessage(proposal),
                Expected::Proposal,
            ) => self
                .group
                .add_proposal(self.provider.storage(), *proposal)
                .map_err(|e| format!("add_proposal: {e}")),
            (ProcessedMessageContent::StagedCommitMessage(commit), Expected::Commit) => self
                .group
                .merge_commit(self.provider.storage(), *commit)
                .map_err(|e| format!("merge_commit: {e}")),
            (other, _) => Err(unexpected_content(&other, expected)),
        }
    }
}

/// A stored value copied verbatim from one storage to another (its serde form, which is
/// what `MemoryStorage` keeps).
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct StoredValue(serde_json::Value);

impl Entity<CURRENT_VERSION> for StoredValue {}
impl traits::TreeSync<CURRENT_VERSION> for StoredValue {}
impl traits::GroupContext<CURRENT_VERSION> for StoredValue {}
impl traits::InterimTranscriptHash<CURRENT_VERSION> for StoredValue {}
impl traits::ConfirmationTag<CURRENT_VERSION> for StoredValue {}

/// Copies the four values `PublicGroup::load` reads (tree, group context, interim
/// transcript hash, confirmation tag) of `group_id` from `from` into `to`.
fn copy_public_state(
    from: &MemoryStorage,
    to: &MemoryStorage,
    group_id: &GroupId,
) -> Result<(), String> {
    let missing = |what: &str| format!("no stored {what}");
    let tree: StoredValue =
        <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::tree(from, group_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| missing("tree"))?;
    let context: StoredValue =
        <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::group_context(from, group_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| missing("group context"))?;
    let interim: StoredValue =
        <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::interim_transcript_hash(
            from, group_id,
        )
        .map_err(|e| e.to_string())?
        .ok_or_else(|| missing("interim transcript hash"))?;
    let tag: StoredValue =
        <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::confirmation_tag(from, group_id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| missing("confirmation tag"))?;
    <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::write_tree(to, group_id, &tree)
        .map_err(|e| e.to_string())?;
    <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::write_context(
        to, group_id, &context,
    )
    .map_err(|e| e.to_string())?;
    <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::write_interim_transcript_hash(
        to, group_id, &interim,
    )
    .map_err(|e| e.to_string())?;
    <MemoryStorage as PublicStorageProvider<CURRENT_VERSION>>::write_confirmation_tag(
        to, group_id, &tag,
    )
    .map_err(|e| e.to_string())
}
