//! The hub's public view of one room's MLS group (openmls `PublicGroup`).
//!
//! The hub is not a member: it follows the group from the creator's GroupInfo and tree and
//! then from every proposal and commit, validating them (signatures, framing, epoch,
//! proposal and commit rules, leaf nodes, parent hashes). It cannot check membership or
//! confirmation tags (it has neither the membership key, RFC 9420 §6.2, nor the
//! confirmation key, RFC 9420 §6.1), which is why a commit the hub accepts can still
//! be rejected by members — the simulator explores that split.
//!
//! Each staged commit is inspected into a [`CommitSummary`] (who commits, who is added and
//! removed, which room-state updates, which proposals it covers) for the MIMI rules.

use std::collections::BTreeMap;

use openmls::component::ComponentId;
use openmls::messages::group_info::{GroupInfo, VerifiableGroupInfo};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;
use openmls_traits::crypto::OpenMlsCrypto;

use crate::ids::ClientUri;
use crate::mls::app_data::{self, ComponentLogic};
use crate::mls::{config, cost};

/// Why the hub's MLS validation refused a message.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("not a PublicMessage (the hub can only validate PublicMessage handshakes, P§5.3)")]
    NotPublic,
    #[error("message for another group")]
    WrongGroup,
    #[error("message for epoch {got}, the room is at epoch {current}")]
    WrongEpoch { got: u64, current: u64 },
    #[error("invalid MLS: {0}")]
    Invalid(String),
    #[error("room state update invalid: {0}")]
    AppData(#[from] app_data::AppDataError),
    #[error("storage: {0}")]
    Storage(String),
}

fn invalid<E: std::fmt::Debug>(e: E) -> ViewError {
    ViewError::Invalid(format!("{e:?}"))
}

/// Who sent a handshake message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum HandshakeSender {
    /// A member client (leaf index and its client URI, if its credential names one).
    Member {
        leaf: u32,
        client: Option<ClientUri>,
    },
    /// An external sender (index into `external_senders`; its credential identity).
    External { index: u32, identity: Vec<u8> },
    /// A joiner by external commit (its client URI, if named).
    NewMember { client: Option<ClientUri> },
}

/// One proposal a commit covers, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoveredProposal {
    Add {
        client: Option<ClientUri>,
        key_package_ref: Vec<u8>,
    },
    Remove {
        leaf: u32,
        client: Option<ClientUri>,
    },
    SelfRemove {
        leaf: u32,
        client: Option<ClientUri>,
    },
    Update {
        leaf: u32,
    },
    AppDataUpdate {
        component: ComponentId,
        update: Option<Vec<u8>>,
    },
    GroupContextExtensions,
    ExternalInit,
    Other(String),
}

/// What a staged commit does, for the MIMI rules.
#[derive(Debug, Clone)]
pub struct CommitSummary {
    pub committer: HandshakeSender,
    /// Every covered proposal, in commit order.
    pub proposals: Vec<CoveredProposal>,
    /// The proposals carried by value (the committer's own changes).
    pub inline: Vec<CoveredProposal>,
    /// The proposals committed by reference (accepted earlier by the hub).
    pub referenced: Vec<CoveredProposal>,
    /// References of the proposals the commit covers by reference.
    pub by_reference: Vec<Vec<u8>>,
    pub external: bool,
    pub new_epoch: u64,
    /// The GroupContext of the new epoch (TLS bytes).
    pub new_group_context: Vec<u8>,
    /// The room-state dictionary of the new epoch.
    pub new_dictionary: BTreeMap<ComponentId, Vec<u8>>,
}

/// A validated, not yet merged commit.
pub struct CheckedCommit {
    pub staged: StagedCommit,
    pub summary: CommitSummary,
}

/// A validated proposal.
pub struct CheckedProposal {
    pub queued: QueuedProposal,
    pub sender: HandshakeSender,
    pub covered: CoveredProposal,
    pub reference: Vec<u8>,
}

/// The hub's public view of one room.
pub struct PublicView {
    group: PublicGroup,
    storage: MemoryStorage,
}

fn ser(m: &impl tls_codec::Serialize) -> Vec<u8> {
    m.tls_serialize_detached().unwrap_or_default()
}

fn dictionary_of(gc: &GroupContext) -> BTreeMap<ComponentId, Vec<u8>> {
    app_data::dictionary_of(gc.extensions())
}

impl PublicView {
    /// Start following a room from a GroupInfo structure and the ratchet tree.
    pub fn from_group_info(
        crypto: &impl OpenMlsCrypto,
        group_info: &[u8],
        ratchet_tree: &[u8],
    ) -> Result<Self, ViewError> {
        cost::measure("public_view.from_group_info", || {
            let vgi = VerifiableGroupInfo::tls_deserialize_exact(group_info)
                .map_err(|e| ViewError::Malformed(format!("GroupInfo: {e:?}")))?;
            let tree = RatchetTreeIn::tls_deserialize_exact(ratchet_tree)
                .map_err(|e| ViewError::Malformed(format!("ratchet tree: {e:?}")))?;
            let storage = MemoryStorage::default();
            let (group, _) =
                PublicGroup::from_external(crypto, &storage, tree, vgi, ProposalStore::new())
                    .map_err(invalid)?;
            Ok(PublicView { group, storage })
        })
    }

    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    pub fn group_id(&self) -> &[u8] {
        self.group.group_id().as_slice()
    }

    pub fn group_context_bytes(&self) -> Vec<u8> {
        ser(self.group.group_context())
    }

    pub fn dictionary(&self) -> BTreeMap<ComponentId, Vec<u8>> {
        dictionary_of(self.group.group_context())
    }

    pub fn ratchet_tree(&self) -> Vec<u8> {
        cost::measure("public_view.ratchet_tree", || {
            ser(&self.group.export_ratchet_tree())
        })
    }

    /// Leaf index → client URI of every member.
    pub fn members(&self) -> Vec<(u32, Option<ClientUri>)> {
        self.group
            .members()
            .map(|m| (m.index.u32(), config::client_of_credential(&m.credential)))
            .collect()
    }

    fn client_at(&self, leaf: LeafNodeIndex) -> Option<ClientUri> {
        self.group
            .leaf(leaf)
            .and_then(|l| config::client_of_credential(l.credential()))
    }

    /// The identities in the `external_senders` extension.
    pub fn external_sender_identities(&self) -> Vec<Vec<u8>> {
        self.group
            .group_context()
            .extensions()
            .external_senders()
            .map(|s| {
                s.iter()
                    .map(|e| {
                        // ExternalSender { SignaturePublicKey signature_key; Credential credential; }
                        // (the accessor is crate-private in openmls 0.9.2).
                        let bytes = ser(e);
                        let mut rest = bytes.as_slice();
                        tls_codec::VLBytes::tls_deserialize(&mut rest)
                            .ok()
                            .and_then(|_| Credential::tls_deserialize(&mut rest).ok())
                            .and_then(|c| BasicCredential::try_from(c).ok())
                            .map(|b| b.identity().to_vec())
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn parse(&self, message: &[u8]) -> Result<ProtocolMessage, ViewError> {
        let msg = MlsMessageIn::tls_deserialize_exact(message)
            .map_err(|e| ViewError::Malformed(format!("MLSMessage: {e:?}")))?;
        let pm = msg
            .try_into_protocol_message()
            .map_err(|_| ViewError::NotPublic)?;
        if !matches!(pm, ProtocolMessage::PublicMessage(_)) {
            return Err(ViewError::NotPublic);
        }
        if pm.group_id() != self.group.group_id() {
            return Err(ViewError::WrongGroup);
        }
        let got = pm.epoch().as_u64();
        if got != self.epoch() {
            return Err(ViewError::WrongEpoch {
                got,
                current: self.epoch(),
            });
        }
        Ok(pm)
    }

    fn sender_of(&self, sender: &Sender, credential: &Credential) -> HandshakeSender {
        match sender {
            Sender::Member(i) => HandshakeSender::Member {
                leaf: i.u32(),
                client: self.client_at(*i),
            },
            Sender::External(i) => HandshakeSender::External {
                index: {
                    let b = ser(i);
                    b.get(..4)
                        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                        .unwrap_or(u32::MAX)
                },
                identity: BasicCredential::try_from(credential.clone())
                    .map(|b| b.identity().to_vec())
                    .unwrap_or_default(),
            },
            Sender::NewMemberCommit | Sender::NewMemberProposal => HandshakeSender::NewMember {
                client: config::client_of_credential(credential),
            },
        }
    }

    fn cover(&self, crypto: &impl OpenMlsCrypto, qp: &QueuedProposal) -> CoveredProposal {
        match qp.proposal() {
            Proposal::Add(a) => CoveredProposal::Add {
                client: config::client_of_credential(a.key_package().leaf_node().credential()),
                key_package_ref: a
                    .key_package()
                    .hash_ref(crypto)
                    .map(|r| r.as_slice().to_vec())
                    .unwrap_or_default(),
            },
            Proposal::Remove(r) => CoveredProposal::Remove {
                leaf: r.removed().u32(),
                client: self.client_at(r.removed()),
            },
            Proposal::SelfRemove => match qp.sender() {
                Sender::Member(i) => CoveredProposal::SelfRemove {
                    leaf: i.u32(),
                    client: self.client_at(*i),
                },
                _ => CoveredProposal::Other("SelfRemove from a non-member".into()),
            },
            Proposal::Update(_) => match qp.sender() {
                Sender::Member(i) => CoveredProposal::Update { leaf: i.u32() },
                _ => CoveredProposal::Other("Update from a non-member".into()),
            },
            Proposal::AppDataUpdate(u) => CoveredProposal::AppDataUpdate {
                component: u.component_id(),
                update: match u.operation() {
                    AppDataUpdateOperation::Update(b) => Some(b.as_slice().to_vec()),
                    AppDataUpdateOperation::Remove => None,
                },
            },
            Proposal::GroupContextExtensions(_) => CoveredProposal::GroupContextExtensions,
            Proposal::ExternalInit(_) => CoveredProposal::ExternalInit,
            other => CoveredProposal::Other(format!("{:?}", other.proposal_type())),
        }
    }

    /// Validate a proposal (member or external sender). Not yet stored: call
    /// [`PublicView::store_proposal`] once the hub accepts it.
    pub fn check_proposal(
        &self,
        crypto: &impl OpenMlsCrypto,
        message: &[u8],
    ) -> Result<CheckedProposal, ViewError> {
        cost::measure("public_view.check_proposal", || {
            let pm = self.parse(message)?;
            let processed = self.group.process_message(crypto, pm).map_err(invalid)?;
            let sender = self.sender_of(processed.sender(), processed.credential());
            match processed.into_content() {
                ProcessedMessageContent::ProposalMessage(qp)
                | ProcessedMessageContent::ExternalJoinProposalMessage(qp) => {
                    let covered = self.cover(crypto, &qp);
                    let reference = qp.proposal_reference_ref().as_slice().to_vec();
                    Ok(CheckedProposal {
                        queued: *qp,
                        sender,
                        covered,
                        reference,
                    })
                }
                _ => Err(ViewError::Invalid("expected a proposal".into())),
            }
        })
    }

    pub fn store_proposal(&mut self, p: CheckedProposal) -> Result<(), ViewError> {
        cost::measure("public_view.store_proposal", || {
            self.group
                .add_proposal(&self.storage, p.queued)
                .map_err(|e| ViewError::Storage(format!("{e:?}")))
        })
    }

    /// Validate a commit and stage it (not merged).
    pub fn check_commit(
        &self,
        crypto: &impl OpenMlsCrypto,
        message: &[u8],
        logic: &dyn ComponentLogic,
    ) -> Result<CheckedCommit, ViewError> {
        cost::measure("public_view.check_commit", || {
            let pm = self.parse(message)?;
            let processed = self.group.process_message(crypto, pm).map_err(invalid)?;
            let committer = self.sender_of(processed.sender(), processed.credential());
            let staged = match processed.into_content() {
                ProcessedMessageContent::StagedCommitMessage(s) => *s,
                ProcessedMessageContent::UnresolvedAppDataCommit(u) => {
                    let updates = app_data::resolve(
                        self.group.app_data_dictionary_updater(),
                        u.app_data_update_proposals(),
                        logic,
                    )?;
                    self.group
                        .stage_app_data_commit(crypto, *u, updates)
                        .map_err(invalid)?
                }
                _ => return Err(ViewError::Invalid("expected a commit".into())),
            };
            let proposals: Vec<CoveredProposal> = staged
                .queued_proposals()
                .map(|qp| self.cover(crypto, qp))
                .collect();
            let inline = staged
                .queued_proposals()
                .filter(|qp| qp.proposal_or_ref_type() != ProposalOrRefType::Reference)
                .map(|qp| self.cover(crypto, qp))
                .collect();
            let referenced = staged
                .queued_proposals()
                .filter(|qp| qp.proposal_or_ref_type() == ProposalOrRefType::Reference)
                .map(|qp| self.cover(crypto, qp))
                .collect();
            let by_reference = staged
                .queued_proposals()
                .filter(|qp| qp.proposal_or_ref_type() == ProposalOrRefType::Reference)
                .map(|qp| qp.proposal_reference_ref().as_slice().to_vec())
                .collect();
            let external = matches!(committer, HandshakeSender::NewMember { .. });
            let summary = CommitSummary {
                committer,
                proposals,
                inline,
                referenced,
                by_reference,
                external,
                new_epoch: staged.epoch().as_u64(),
                new_group_context: ser(staged.group_context()),
                new_dictionary: dictionary_of(staged.group_context()),
            };
            Ok(CheckedCommit { staged, summary })
        })
    }

    /// Merge a checked commit: the room moves to the next epoch.
    pub fn merge(&mut self, checked: CheckedCommit) -> Result<(), ViewError> {
        cost::measure("public_view.merge", || {
            self.group
                .merge_commit(&self.storage, checked.staged)
                .map_err(|e| ViewError::Storage(format!("{e:?}")))
        })
    }

    /// Check a committer's GroupInfo for the epoch this view is now in (RP§7, P§5.3):
    /// its GroupContext equals ours and it is signed by `signer_leaf` (the committer).
    /// For an external commit pass the joiner's new leaf.
    pub fn check_group_info(
        &self,
        crypto: &impl OpenMlsCrypto,
        group_info: &[u8],
        signer_leaf: u32,
    ) -> Result<(), ViewError> {
        cost::measure("public_view.check_group_info", || {
            let vgi = VerifiableGroupInfo::tls_deserialize_exact(group_info)
                .map_err(|e| ViewError::Malformed(format!("GroupInfo: {e:?}")))?;
            if ser(vgi.group_context()) != self.group_context_bytes() {
                return Err(ViewError::Invalid(
                    "GroupInfo's GroupContext differs from the hub's".into(),
                ));
            }
            let leaf = self
                .group
                .leaf(LeafNodeIndex::new(signer_leaf))
                .ok_or_else(|| ViewError::Invalid("GroupInfo signer is not a member".into()))?;
            let key = OpenMlsSignaturePublicKey::from_signature_key(
                leaf.signature_key().clone(),
                config::CIPHERSUITE.signature_algorithm(),
            );
            let _verified: GroupInfo = vgi
                .verify(crypto, &key)
                .map_err(|_| ViewError::Invalid("GroupInfo signature does not verify".into()))?;
            Ok(())
        })
    }

    /// A deep copy to roll back to: `PublicGroup` is not `Clone`, so the storage's values
    /// are copied and the group is loaded from the copy.
    pub fn snapshot(&self) -> Result<PublicView, ViewError> {
        cost::measure("public_view.snapshot", || {
            let values = self
                .storage
                .values
                .read()
                .map_err(|_| ViewError::Storage("poisoned".into()))?
                .clone();
            let storage = MemoryStorage {
                values: std::sync::RwLock::new(values),
            };
            let group = PublicGroup::load(&storage, self.group.group_id())
                .map_err(|e| ViewError::Storage(format!("{e:?}")))?
                .ok_or_else(|| ViewError::Storage("group not in storage".into()))?;
            Ok(PublicView { group, storage })
        })
    }

    /// The openmls storage entries of this group (key → value, in key order): with
    /// the group ID, all [`PublicView::from_storage_entries`] needs to load it again.
    pub fn storage_entries(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ViewError> {
        let values = self
            .storage
            .values
            .read()
            .map_err(|_| ViewError::Storage("poisoned".into()))?;
        Ok(values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// The view of group `group_id` loaded (`PublicGroup::load`) from storage entries
    /// written by [`PublicView::storage_entries`].
    pub fn from_storage_entries(
        group_id: &[u8],
        entries: BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<PublicView, ViewError> {
        let storage = MemoryStorage {
            values: std::sync::RwLock::new(entries.into_iter().collect()),
        };
        let group = PublicGroup::load(&storage, &GroupId::from_slice(group_id))
            .map_err(|e| ViewError::Storage(format!("{e:?}")))?
            .ok_or_else(|| ViewError::Storage("group not in storage".into()))?;
        Ok(PublicView { group, storage })
    }

    /// The leaf index of the member whose credential names `client`.
    pub fn leaf_of(&self, client: &ClientUri) -> Option<u32> {
        self.members()
            .into_iter()
            .find(|(_, c)| c.as_ref() == Some(client))
            .map(|(l, _)| l)
    }
}
