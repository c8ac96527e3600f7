//! Building commits whose bytes are a function of the seed.
//!
//! openmls 0.9.2 orders the Remove/Update/SelfRemove proposals of a commit by iterating a
//! `HashMap<LeafNodeIndex, _>` with a per-process `RandomState`
//! (`ProposalQueue::filter_proposals` in openmls' `src/group/mls_group/proposal_store.rs`).
//! A MIMI commit must remove all of a user's clients at once (RP§8.1.2), so "one Remove
//! per commit" is not an option, and the project takes dependencies only from the
//! registry, so patching openmls is not one either.
//!
//! The way out used here: **canonical re-drawing**. The provider's random stream is
//! snapshotted; the commit is built and staged; if its member-specific proposals are not
//! in ascending leaf order, the pending commit is cleared, the stream restored, and the
//! commit built again. Every attempt consumes exactly the same random bytes, so the
//! accepted commit — whose member-specific proposals are in the one canonical order — is
//! byte-identical in every run. Receivers honour whatever order a commit lists, so the
//! result is an ordinary, valid MLS commit.
//!
//! Cost: the expected number of attempts is k! for k member-specific proposals, because
//! the HashMap order is uniformly random; hence the explicit limit
//! [`MAX_MEMBER_SPECIFIC_PROPOSALS`] (5 ⇒ at most 120 expected attempts).

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider;

use super::app_data::{self, AppDataError, ComponentLogic};
use super::cost;
use super::provider::{MlsStorage, SeededProvider};

/// At most this many Remove/Update/SelfRemove proposals in one commit.
pub const MAX_MEMBER_SPECIFIC_PROPOSALS: usize = 5;
/// Give up after this many attempts (far above the expected 120 for 5 proposals).
pub const MAX_COMMIT_ATTEMPTS: usize = 5_000;

/// What a member puts into a commit.
#[derive(Default, Clone)]
pub struct CommitPlan {
    /// KeyPackages to add.
    pub adds: Vec<KeyPackage>,
    /// Leaves to remove.
    pub removes: Vec<LeafNodeIndex>,
    /// Further inline proposals (e.g. AppDataUpdate).
    pub proposals: Vec<Proposal>,
    /// Also commit every proposal in the group's proposal store.
    pub consume_proposal_store: bool,
    /// Include an UpdatePath even if no proposal requires one.
    pub force_self_update: bool,
    /// A GroupContextExtensions proposal (replaces the whole extension list).
    pub group_context_extensions: Option<Extensions<GroupContext>>,
}

/// Errors from building a commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("commit would carry {0} Remove/Update/SelfRemove proposals; the limit is {MAX_MEMBER_SPECIFIC_PROPOSALS}")]
    TooManyMemberSpecific(usize),
    #[error("no canonical commit after {MAX_COMMIT_ATTEMPTS} attempts")]
    NoCanonicalOrder,
    #[error("room state update: {0}")]
    AppData(#[from] AppDataError),
    #[error("openmls: {0}")]
    Mls(String),
}

fn mls<E: std::fmt::Debug>(e: E) -> CommitError {
    CommitError::Mls(format!("{e:?}"))
}

/// The leaf a member-specific proposal is about, in commit order.
fn member_specific_leaves(staged: &StagedCommit) -> Vec<u32> {
    staged
        .queued_proposals()
        .filter_map(|qp| match qp.proposal() {
            Proposal::Remove(r) => Some(r.removed().u32()),
            Proposal::Update(_) | Proposal::SelfRemove => match qp.sender() {
                Sender::Member(i) => Some(i.u32()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A staged commit and how many attempts it took.
pub struct StagedCommitBundle {
    pub bundle: CommitMessageBundle,
    pub attempts: usize,
}

/// One attempt: build and stage the commit the plan describes.
fn build_once<S: MlsStorage>(
    group: &mut MlsGroup,
    provider: &SeededProvider<S>,
    signer: &SignatureKeyPair,
    plan: &CommitPlan,
    logic: &dyn ComponentLogic,
) -> Result<CommitMessageBundle, CommitError> {
    let mut initial = group.commit_builder();
    if let Some(exts) = &plan.group_context_extensions {
        initial = initial
            .propose_group_context_extensions(exts.clone())
            .map_err(mls)?;
    }
    let mut builder = initial
        .consume_proposal_store(plan.consume_proposal_store)
        .force_self_update(plan.force_self_update)
        .propose_adds(plan.adds.iter().cloned())
        .propose_removals(plan.removes.iter().copied())
        .add_proposals(plan.proposals.iter().cloned())
        .load_psks(provider.storage())
        .map_err(mls)?
        .create_group_info(true);
    let updates = app_data::resolve(
        builder.app_data_dictionary_updater(),
        builder
            .app_data_update_proposals()
            .cloned()
            .collect::<Vec<_>>()
            .iter(),
        logic,
    )?;
    builder.with_app_data_dictionary_updates(updates);
    builder
        .build(provider.rand(), provider.crypto(), signer, |_| true)
        .map_err(mls)?
        .stage_commit(provider)
        .map_err(mls)
}

/// Build and stage a commit whose bytes depend only on the group state, the plan and the
/// provider's random stream. On success the group has a pending commit.
pub fn stage_canonical_commit<S: MlsStorage>(
    group: &mut MlsGroup,
    provider: &SeededProvider<S>,
    signer: &SignatureKeyPair,
    plan: &CommitPlan,
    logic: &dyn ComponentLogic,
) -> Result<StagedCommitBundle, CommitError> {
    cost::measure("commit.stage_canonical", || {
        let store_specific = if plan.consume_proposal_store {
            group
                .pending_proposals()
                .filter(|qp| {
                    matches!(
                        qp.proposal(),
                        Proposal::Remove(_) | Proposal::Update(_) | Proposal::SelfRemove
                    )
                })
                .count()
        } else {
            0
        };
        let specific = plan.removes.len() + store_specific;
        if specific > MAX_MEMBER_SPECIFIC_PROPOSALS {
            return Err(CommitError::TooManyMemberSpecific(specific));
        }
        let snapshot = provider.seeded_crypto().snapshot();
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            provider.seeded_crypto().restore(&snapshot);
            let bundle = cost::measure("commit.attempt", || {
                build_once(group, provider, signer, plan, logic)
            })?;
            let leaves = group
                .pending_commit()
                .map(member_specific_leaves)
                .unwrap_or_default();
            if leaves.windows(2).all(|w| w[0] < w[1]) {
                return Ok(StagedCommitBundle {
                    bundle,
                    attempts: attempt,
                });
            }
            group
                .clear_pending_commit(provider.storage())
                .map_err(mls)?;
        }
        Err(CommitError::NoCanonicalOrder)
    })
}
