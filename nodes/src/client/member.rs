//! A client's MLS membership of one room: the `MlsGroup` and the operations MIMI needs
//! (P§3: create, add, remove, leave bundle, external join, messages), exchanging TLS bytes.
//!
//! Everything here is deterministic given the provider's seeded stream; commits go through
//! [`stage_canonical_commit`] so multi-remove commits have stable bytes.

use std::collections::BTreeMap;

use openmls::component::ComponentId;
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::OpenMlsProvider;

use crate::ids::ClientUri;
use crate::mls::app_data::{self, ComponentLogic};
use crate::mls::commit::{stage_canonical_commit, CommitPlan};
use crate::mls::config::{self, Identity};
use crate::mls::cost;
use crate::mls::{MlsStorage, SeededProvider};

/// Errors of a member operation. Network input never panics; it ends here.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("malformed MLS message: {0}")]
    Malformed(String),
    #[error("message is for epoch {got}, this member is at epoch {have}")]
    WrongEpoch { got: u64, have: u64 },
    #[error("message is for another group")]
    WrongGroup,
    #[error("MLS rejected the message: {0}")]
    Rejected(String),
    #[error("building the MLS object failed: {0}")]
    Build(String),
    #[error("a commit of this member is still pending")]
    PendingCommit,
    #[error("no commit of this member is pending")]
    NoPendingCommit,
    #[error("this member is no longer in the group")]
    Inactive,
    #[error("room state update invalid: {0}")]
    AppData(#[from] app_data::AppDataError),
    #[error("commit: {0}")]
    Commit(#[from] crate::mls::commit::CommitError),
}

fn build<E: std::fmt::Debug>(e: E) -> MemberError {
    MemberError::Build(format!("{e:?}"))
}
fn rejected<E: std::fmt::Debug>(e: E) -> MemberError {
    MemberError::Rejected(format!("{e:?}"))
}
fn ser(m: &impl tls_codec::Serialize) -> Result<Vec<u8>, MemberError> {
    m.tls_serialize_detached().map_err(build)
}

/// Parse an MLSMessage into the protocol message a group can process.
pub fn parse_protocol_message(bytes: &[u8]) -> Result<ProtocolMessage, MemberError> {
    cost::measure("member.parse", || {
        MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|e| MemberError::Malformed(format!("{e:?}")))?
            .try_into_protocol_message()
            .map_err(|e| MemberError::Malformed(format!("{e:?}")))
    })
}

/// Everything a committer sends to the hub with a commit (P§5.3 HandshakeBundle, as bytes).
#[derive(Debug, Clone)]
pub struct CommitOutput {
    /// MLSMessage (PublicMessage commit).
    pub commit: Vec<u8>,
    /// The Welcome *structure* (not MLSMessage-wrapped), if the commit adds members.
    pub welcome: Option<Vec<u8>>,
    /// The GroupInfo structure for the new epoch (without the ratchet tree).
    pub group_info: Vec<u8>,
    /// The ratchet tree of the new epoch (`optional<Node> ratchet_tree<V>`).
    pub ratchet_tree: Vec<u8>,
    /// The epoch the commit moves the group to.
    pub new_epoch: u64,
    /// Attempts the canonical commit needed (for cost accounting).
    pub attempts: usize,
}

/// What processing a handshake message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// A proposal was stored; the pending proposals now number `pending`.
    Proposal { pending: usize },
    /// A commit moved the group to `epoch`. `removed_self` if this member was removed.
    Commit { epoch: u64, removed_self: bool },
    /// The member's own pending commit came back and was merged.
    OwnCommit { epoch: u64 },
}

/// A decrypted application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub sender: Option<ClientUri>,
    pub epoch: u64,
    pub plaintext: Vec<u8>,
}

/// A client's state in one room's MLS group.
pub struct Member {
    group: MlsGroup,
}

fn out_bundle(
    group: &MlsGroup,
    bundle: &CommitMessageBundle,
    attempts: usize,
) -> Result<CommitOutput, MemberError> {
    let group_info = bundle
        .group_info()
        .ok_or_else(|| MemberError::Build("commit without GroupInfo".into()))?;
    let epoch = group
        .pending_commit()
        .map(|s| s.epoch().as_u64())
        .unwrap_or_else(|| group.epoch().as_u64());
    Ok(CommitOutput {
        commit: ser(bundle.commit())?,
        welcome: bundle.welcome().map(ser).transpose()?,
        group_info: ser(group_info)?,
        ratchet_tree: Vec::new(),
        new_epoch: epoch,
        attempts,
    })
}

impl Member {
    /// Create the room's group (P§3.1): the room state dictionary and the hub as external
    /// sender in the GroupContext. The group id is the room URI.
    pub fn create<S: MlsStorage>(
        provider: &SeededProvider<S>,
        identity: &Identity,
        group_id: &[u8],
        dictionary: BTreeMap<ComponentId, Vec<u8>>,
        hub_sender: ExternalSender,
    ) -> Result<Self, MemberError> {
        cost::measure("member.create", || {
            let mut dict = AppDataDictionary::new();
            for (k, v) in dictionary {
                dict.insert(k, v);
            }
            let gce = config::room_group_context_extensions(dict, hub_sender).map_err(build)?;
            let group = MlsGroup::builder()
                .with_group_id(GroupId::from_slice(group_id))
                .ciphersuite(config::CIPHERSUITE)
                .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
                .with_capabilities(config::leaf_capabilities())
                .with_group_context_extensions(gce)
                .lifetime(config::lifetime())
                .max_past_epochs(config::MAX_PAST_EPOCHS)
                .use_ratchet_tree_extension(false)
                .build(
                    provider,
                    &identity.signer,
                    identity.credential_with_key.clone(),
                )
                .map_err(build)?;
            Ok(Member { group })
        })
    }

    /// Join from a Welcome structure and the ratchet tree the hub forwarded.
    pub fn join_by_welcome<S: MlsStorage>(
        provider: &SeededProvider<S>,
        welcome: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<Self, MemberError> {
        cost::measure("member.join_by_welcome", || {
            let welcome = Welcome::tls_deserialize_exact(welcome)
                .map_err(|e| MemberError::Malformed(format!("Welcome: {e:?}")))?;
            let tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree)
                .map_err(|e| MemberError::Malformed(format!("ratchet tree: {e:?}")))?;
            let group =
                StagedWelcome::build_from_welcome(provider, &config::join_config(), welcome)
                    .map_err(rejected)?
                    .with_ratchet_tree(tree)
                    .build()
                    .map_err(rejected)?
                    .into_group(provider)
                    .map_err(rejected)?;
            Ok(Member { group })
        })
    }

    /// Join by external commit (P§3.6) from the hub's GroupInfo and tree, including the
    /// pending SelfRemove proposals (X) and optional inline proposals (e.g. the joiner's
    /// own participant-list AppDataUpdate). The group is merged at once (openmls); if the
    /// hub rejects the commit, drop this `Member` and try again.
    pub fn join_by_external_commit<S: MlsStorage>(
        provider: &SeededProvider<S>,
        identity: &Identity,
        group_info: &[u8],
        ratchet_tree: &[u8],
        pending_proposals: &[Vec<u8>],
        app_data_updates: Vec<AppDataUpdateProposal>,
        logic: &dyn ComponentLogic,
    ) -> Result<(Self, CommitOutput), MemberError> {
        cost::measure("member.join_by_external_commit", || {
            let vgi = VerifiableGroupInfo::tls_deserialize_exact(group_info)
                .map_err(|e| MemberError::Malformed(format!("GroupInfo: {e:?}")))?;
            let tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree)
                .map_err(|e| MemberError::Malformed(format!("ratchet tree: {e:?}")))?;
            let mut self_removes = Vec::new();
            for p in pending_proposals {
                let msg = MlsMessageIn::tls_deserialize_exact(p.as_slice())
                    .map_err(|e| MemberError::Malformed(format!("pending proposal: {e:?}")))?;
                if let MlsMessageBodyIn::PublicMessage(pm) = msg.extract() {
                    self_removes.push(pm);
                }
            }
            let mut builder = MlsGroup::external_commit_builder()
                .with_ratchet_tree(tree)
                .with_config(config::join_config())
                .with_proposals(self_removes)
                .build_group(provider, vgi, identity.credential_with_key.clone())
                .map_err(rejected)?
                .leaf_node_parameters(
                    LeafNodeParameters::builder()
                        .with_capabilities(config::leaf_capabilities())
                        .build(),
                );
            for u in app_data_updates {
                builder = builder.add_app_data_update_proposal(u);
            }
            let mut loaded = builder.load_psks(provider.storage()).map_err(build)?;
            let updates = app_data::resolve(
                loaded.app_data_dictionary_updater(),
                loaded
                    .app_data_update_proposals()
                    .cloned()
                    .collect::<Vec<_>>()
                    .iter(),
                logic,
            )?;
            loaded.with_app_data_dictionary_updates(updates);
            let (group, bundle) = loaded
                .build(provider.rand(), provider.crypto(), &identity.signer, |_| {
                    true
                })
                .map_err(build)?
                .finalize(provider)
                .map_err(build)?;
            let member = Member { group };
            // The external commit builder makes no GroupInfo; the joiner signs one for the
            // epoch it created (it is already merged).
            let out = CommitOutput {
                commit: ser(bundle.commit())?,
                welcome: None,
                group_info: member.group_info(provider, identity)?,
                ratchet_tree: ser(&member.group.export_ratchet_tree())?,
                new_epoch: member.epoch(),
                attempts: 1,
            };
            Ok((member, out))
        })
    }

    /// The member whose group `group_id` is in `storage` (as openmls stored it after the
    /// last change), or `None` if the storage holds no such group.
    pub fn load<S: MlsStorage>(storage: &S, group_id: &GroupId) -> Result<Option<Self>, S::Error> {
        Ok(MlsGroup::load(storage, group_id)?.map(|group| Member { group }))
    }

    pub fn group(&self) -> &MlsGroup {
        &self.group
    }

    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    pub fn own_leaf(&self) -> u32 {
        self.group.own_leaf_index().u32()
    }

    pub fn has_pending_commit(&self) -> bool {
        self.group.pending_commit().is_some()
    }

    /// The pending proposals (by reference) this member has received or made.
    pub fn pending_proposal_count(&self) -> usize {
        self.group.pending_proposals().count()
    }

    /// TLS bytes of the current GroupContext.
    pub fn group_context_bytes(&self) -> Vec<u8> {
        self.group
            .public_group()
            .group_context()
            .tls_serialize_detached()
            .unwrap_or_default()
    }

    pub fn epoch_authenticator(&self) -> Vec<u8> {
        self.group.epoch_authenticator().as_slice().to_vec()
    }

    /// The room-state dictionary of the current epoch.
    pub fn dictionary(&self) -> BTreeMap<ComponentId, Vec<u8>> {
        app_data::dictionary_of(self.group.extensions())
    }

    /// The members: leaf index → client URI (leaves whose credential is not a client URI
    /// are listed with `None`).
    pub fn members(&self) -> Vec<(u32, Option<ClientUri>)> {
        self.group
            .members()
            .map(|m| (m.index.u32(), config::client_of_credential(&m.credential)))
            .collect()
    }

    /// Build and stage a commit; the caller sends it to the hub and then calls
    /// [`Member::merge_pending_commit`] (accepted) or [`Member::discard_pending_commit`].
    pub fn commit<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        identity: &Identity,
        plan: &CommitPlan,
        logic: &dyn ComponentLogic,
    ) -> Result<CommitOutput, MemberError> {
        cost::measure("member.commit", || {
            if self.has_pending_commit() {
                return Err(MemberError::PendingCommit);
            }
            if !self.is_active() {
                return Err(MemberError::Inactive);
            }
            let staged =
                stage_canonical_commit(&mut self.group, provider, &identity.signer, plan, logic)?;
            let mut out = out_bundle(&self.group, &staged.bundle, staged.attempts)?;
            // RatchetTreeOption `full` (RT§4): the tree of the new epoch.
            let tree = self
                .group
                .pending_commit()
                .ok_or(MemberError::NoPendingCommit)?
                .export_ratchet_tree(provider.crypto(), self.group.export_ratchet_tree())
                .map_err(build)?
                .ok_or_else(|| MemberError::Build("staged commit has no tree".into()))?;
            out.ratchet_tree = ser(&tree)?;
            Ok(out)
        })
    }

    /// The hub accepted our commit: merge it.
    pub fn merge_pending_commit<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
    ) -> Result<u64, MemberError> {
        cost::measure("member.merge_pending_commit", || {
            if !self.has_pending_commit() {
                return Err(MemberError::NoPendingCommit);
            }
            self.group
                .merge_pending_commit(provider)
                .map_err(rejected)?;
            Ok(self.epoch())
        })
    }

    /// The hub rejected our commit (e.g. `wrongEpoch`): forget it.
    pub fn discard_pending_commit<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
    ) -> Result<(), MemberError> {
        cost::measure("member.discard_pending_commit", || {
            self.group
                .clear_pending_commit(provider.storage())
                .map_err(rejected)
        })
    }

    /// Forget proposals that will not be committed (e.g. after a rejected leave bundle).
    pub fn discard_pending_proposals<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
    ) -> Result<(), MemberError> {
        cost::measure("member.discard_pending_proposals", || {
            self.group
                .clear_pending_proposals(provider.storage())
                .map_err(rejected)
        })
    }

    /// A GroupInfo structure (not MLSMessage-wrapped, without the tree) for the current
    /// epoch, signed by this member: what a room's creator hands its hub (P§3.1).
    pub fn group_info<S: MlsStorage>(
        &self,
        provider: &SeededProvider<S>,
        identity: &Identity,
    ) -> Result<Vec<u8>, MemberError> {
        cost::measure("member.group_info", || {
            let m = self
                .group
                .export_group_info(provider.crypto(), &identity.signer, false)
                .map_err(build)?;
            let bytes = ser(&m)?;
            // MLSMessage = version (2) ‖ wire_format (2) ‖ GroupInfo.
            bytes
                .get(4..)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| MemberError::Build("short GroupInfo message".into()))
        })
    }

    /// The ratchet tree of the current epoch.
    pub fn ratchet_tree(&self) -> Vec<u8> {
        cost::measure("member.ratchet_tree", || {
            self.group
                .export_ratchet_tree()
                .tls_serialize_detached()
                .unwrap_or_default()
        })
    }

    /// A proposal to remove one leaf (PublicMessage bytes).
    pub fn propose_remove<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        identity: &Identity,
        leaf: u32,
    ) -> Result<Vec<u8>, MemberError> {
        cost::measure("member.propose_remove", || {
            let (m, _) = self
                .group
                .propose_remove_member(provider, &identity.signer, LeafNodeIndex::new(leaf))
                .map_err(build)?;
            ser(&m)
        })
    }

    /// A SelfRemove proposal (X) for this member.
    pub fn propose_self_remove<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        identity: &Identity,
    ) -> Result<Vec<u8>, MemberError> {
        cost::measure("member.propose_self_remove", || {
            let m = self
                .group
                .leave_group_via_self_remove(provider, &identity.signer)
                .map_err(build)?;
            ser(&m)
        })
    }

    /// An AppDataUpdate proposal (X§4.7) by reference.
    pub fn propose_app_data_update<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        identity: &Identity,
        component: ComponentId,
        update: Vec<u8>,
    ) -> Result<Vec<u8>, MemberError> {
        cost::measure("member.propose_app_data_update", || {
            let (m, _) = self
                .group
                .propose_app_data_update(
                    provider,
                    &identity.signer,
                    component,
                    AppDataUpdateOperation::Update(update.into()),
                )
                .map_err(build)?;
            ser(&m)
        })
    }

    /// Process a handshake message (proposal or commit) delivered by the hub.
    pub fn process_handshake<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        message: &[u8],
        logic: &dyn ComponentLogic,
    ) -> Result<Processed, MemberError> {
        cost::measure("member.process_handshake", || {
            let msg = parse_protocol_message(message)?;
            if msg.group_id() != self.group.group_id() {
                return Err(MemberError::WrongGroup);
            }
            let have = self.epoch();
            let got = msg.epoch().as_u64();
            if got != have {
                return Err(MemberError::WrongEpoch { got, have });
            }
            let processed = self
                .group
                .process_message(provider, msg)
                .map_err(rejected)?;
            match processed.into_content() {
                ProcessedMessageContent::ProposalMessage(qp)
                | ProcessedMessageContent::ExternalJoinProposalMessage(qp) => {
                    self.group
                        .store_pending_proposal(provider.storage(), *qp)
                        .map_err(rejected)?;
                    Ok(Processed::Proposal {
                        pending: self.pending_proposal_count(),
                    })
                }
                ProcessedMessageContent::StagedCommitMessage(staged) => {
                    self.merge(provider, *staged)
                }
                ProcessedMessageContent::UnresolvedAppDataCommit(u) => {
                    let updates = app_data::resolve(
                        self.group.app_data_dictionary_updater(),
                        u.app_data_update_proposals(),
                        logic,
                    )?;
                    let staged = self
                        .group
                        .stage_app_data_commit(provider, *u, updates)
                        .map_err(rejected)?;
                    self.merge(provider, staged)
                }
                ProcessedMessageContent::OwnPendingCommit => {
                    let epoch = self.merge_pending_commit(provider)?;
                    Ok(Processed::OwnCommit { epoch })
                }
                ProcessedMessageContent::ApplicationMessage(_)
                | ProcessedMessageContent::OwnPrivateMessage => Err(MemberError::Malformed(
                    "an application message where a handshake was expected".into(),
                )),
            }
        })
    }

    fn merge<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        staged: StagedCommit,
    ) -> Result<Processed, MemberError> {
        let removed_self = staged.self_removed();
        self.group
            .merge_staged_commit(provider, staged)
            .map_err(rejected)?;
        Ok(Processed::Commit {
            epoch: self.epoch(),
            removed_self,
        })
    }

    /// Encrypt an application message (PrivateMessage bytes).
    pub fn encrypt<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        identity: &Identity,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, MemberError> {
        cost::measure("member.encrypt", || {
            let m = self
                .group
                .create_message(provider, &identity.signer, plaintext)
                .map_err(build)?;
            ser(&m)
        })
    }

    /// Decrypt an application message.
    pub fn decrypt<S: MlsStorage>(
        &mut self,
        provider: &SeededProvider<S>,
        message: &[u8],
    ) -> Result<Received, MemberError> {
        cost::measure("member.decrypt", || {
            let msg = parse_protocol_message(message)?;
            if msg.group_id() != self.group.group_id() {
                return Err(MemberError::WrongGroup);
            }
            let epoch = msg.epoch().as_u64();
            let processed = self
                .group
                .process_message(provider, msg)
                .map_err(rejected)?;
            let sender = config::client_of_credential(processed.credential());
            match processed.into_content() {
                ProcessedMessageContent::ApplicationMessage(a) => Ok(Received {
                    sender,
                    epoch,
                    plaintext: a.into_bytes(),
                }),
                ProcessedMessageContent::OwnPrivateMessage => Err(MemberError::Rejected(
                    "own application message echoed back (cannot be decrypted by its sender)"
                        .into(),
                )),
                _ => Err(MemberError::Malformed(
                    "a handshake where an application message was expected".into(),
                )),
            }
        })
    }
}
