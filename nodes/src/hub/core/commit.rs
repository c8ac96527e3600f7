//! The hub's acceptance of a commit (`/update` with a commit bundle, P§5.3.2), in four
//! phases, each its own function:
//!
//! 1. [`Hub::check_commit`] — epoch, MLS validity against the hub's public view
//!    (RFC 9420 §12.4), the hub record after the commit (x-hub-transfer), and at `full`
//!    one function per hub rule, in the order the first failure is reported;
//! 2. [`Hub::encode_commit_entries`] — every log entry the acceptance produces is encoded
//!    before any state changes (an entry that cannot be encoded refuses the commit with
//!    500 instead of being dropped after it was accepted);
//! 3. [`Hub::merge_commit`] — the merge into the view and the rules that need the new
//!    epoch (GroupInfo signature, external senders, the new hub's participant); a failure
//!    rolls the view back;
//! 4. [`Hub::log_accepted_commit`] — the room moves to the new epoch and the entries go
//!    into its log (nothing can fail any more).
//!
//! Nothing changes before phase 3, and phase 3 undoes its change when it refuses.

use std::collections::BTreeSet;

use openmls_traits::OpenMlsProvider;

use super::{
    check_exiting, internal, reject, Entry, Hub, HubEvent, HubSteps, RejectCode, Rejection,
};
use crate::hub::enforcement::{Enforcement, EnforcementConfig, Rule};
use crate::hub::public_view::{CheckedCommit, CommitSummary, HandshakeSender, PublicView};
use crate::hub::room::{HubRoom, Sequencer};
use crate::ids::{Domain, RoomUri, UserUri};
use crate::io::Millis;
use crate::mls::config;
use crate::mls::SeededCrypto;
use crate::room::RoomComponents;
use crate::room::{authorize, check_commit_composition, Actor, ChangeKind, RoomState};
use crate::transfer::{self, HubRecord};
use crate::wire::{
    FanoutBody, FanoutMessage, GroupInfoOption, HandshakeBody, MlsMessageBytes, RatchetTreeOption,
    UpdateRequest, WelcomeBytes,
};

/// The parts of a commit bundle (P§5.3.2 `HandshakeBundle`, case commit).
pub(super) struct CommitBundle<'a> {
    commit: &'a MlsMessageBytes,
    welcome: Option<&'a WelcomeBytes>,
    group_info: &'a GroupInfoOption,
    ratchet_tree: &'a RatchetTreeOption,
}

impl<'a> CommitBundle<'a> {
    /// `None` for a proposal bundle.
    pub(super) fn of(req: &'a UpdateRequest) -> Option<Self> {
        match &req.bundle.body {
            HandshakeBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => Some(CommitBundle {
                commit: &req.bundle.proposal_or_commit,
                welcome: welcome.as_ref(),
                group_info: group_info_option,
                ratchet_tree: ratchet_tree_option,
            }),
            HandshakeBody::Proposal { .. } => None,
        }
    }
}

/// What phase 1 found: the commit passed every check; nothing has changed yet.
struct CommitChecked {
    /// The commit validated against the view (`None` without a view, or when the view
    /// could not follow and `mls-valid` is off).
    checked: Option<CheckedCommit>,
    /// Why the view could not follow the commit (`mls-valid` off): the view is dropped.
    diverged: Option<String>,
    /// The providers with members before the commit (they get its fan-out).
    domains_before: BTreeSet<Domain>,
    /// The hub record after the commit (x-hub-transfer).
    after_record: HubRecord,
    /// The commit moves the hub.
    moves: bool,
    /// x-hub-only-room-state: the hub's room state of the new epoch.
    hub_only_state: Option<RoomState>,
}

/// What phase 2 encoded: every log entry of the acceptance but the Welcome's.
struct CommitEntries {
    /// The timestamp the entries carry.
    ts: Millis,
    new_epoch: u64,
    /// x-hub-only-room-state §4: the room-state signal before the commit.
    room_state: Option<Entry>,
    commit: Entry,
}

/// What phase 3 left for phase 4.
struct CommitMerged {
    /// Phase 2's entries.
    entries: CommitEntries,
    /// The Welcome's entry (its tree is the merged view's).
    welcome: Option<Entry>,
    /// The view diverged (`mls-valid` off): drop it, with this reason.
    drop_view: Option<String>,
    /// The commit's contents as the view saw them.
    contents: Option<HubEvent>,
}

impl Hub {
    pub(super) fn accept_commit(
        &mut self,
        steps: &dyn HubSteps,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        list: &[(u16, Vec<u8>)],
    ) -> Result<Millis, Rejection> {
        let r = self.rooms.get(room).expect("checked by caller");
        if Self::for_sequenced_epoch(r, bundle.commit) {
            if let Some(ts) =
                steps.commit_for_sequenced_epoch(self, now, from, room, bundle.commit)?
            {
                return Ok(ts);
            }
        }
        let checked = self.check_commit(from, room, bundle, list)?;
        let entries = self.encode_commit_entries(now, room, bundle, &checked)?;
        let (merged, checked) = self.merge_commit(steps, room, bundle, checked, entries)?;
        Ok(self.log_accepted_commit(now, from, room, bundle, checked, merged))
    }

    /// `commit` is for an epoch of the room's group that this hub already sequenced: it
    /// lost the race for that epoch (phase 1 refuses it with `wrongEpoch`, P§5.3.2).
    fn for_sequenced_epoch(r: &HubRoom, commit: &MlsMessageBytes) -> bool {
        let info = commit.info();
        info.group_id.as_deref() == Some(r.group_id.as_slice())
            && info.epoch.is_some_and(|e| e < r.epoch)
    }

    /// Phase 1: every check that needs no merge, in the order the first failure is
    /// reported.
    fn check_commit(
        &self,
        from: &Domain,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        list: &[(u16, Vec<u8>)],
    ) -> Result<CommitChecked, Rejection> {
        let config = &self.config;
        let r = self.rooms.get(room).expect("checked by caller");
        Self::check_epoch(r, bundle.commit)?;
        let mut checked = None;
        let mut diverged = None;
        if let Some(view) = &r.view {
            match view.check_commit(
                self.provider.crypto(),
                bundle.commit.as_bytes(),
                &RoomComponents,
            ) {
                Ok(c) => checked = Some(c),
                Err(e) if config.on(Rule::MlsValid) => return Err(Self::mls_rejection(e, r)),
                Err(e) => diverged = Some(e.to_string()),
            }
        }
        let domains_before = r.member_domains();
        let after_record = match &checked {
            Some(c) => transfer::hub_record(room, &c.summary.new_dictionary)
                .map_err(|e| reject(Rule::MlsValid, e.to_string()))?,
            None => r.record.clone(),
        };
        let moves = after_record != r.record;
        self.rule_takeover_moves_hub(r, moves, &after_record)?;
        let mut hub_only_state = None;
        if let (Some(c), true) = (&checked, config.level >= Enforcement::Full) {
            if moves && config.on(Rule::HubTransfer) {
                Self::check_transfer(r, &c.summary, &after_record)?;
            }
            hub_only_state = self.check_commit_rules(from, r, &c.summary, bundle, list)?;
        }
        if self.room_state.is_hub_only() && hub_only_state.is_none() {
            let kind = match checked.as_ref().map(|c| c.summary.external) {
                Some(true) => ChangeKind::ExternalCommit,
                _ => ChangeKind::Commit,
            };
            hub_only_state = Some(Self::apply_unchecked(&r.hub_state, kind, list));
        }
        Ok(CommitChecked {
            checked,
            diverged,
            domains_before,
            after_record,
            moves,
            hub_only_state,
        })
    }

    /// x-hub-transfer: while this hub waits for its takeover commit, only a commit that
    /// moves the hub here is sequenced.
    fn rule_takeover_moves_hub(
        &self,
        r: &HubRoom,
        moves: bool,
        after_record: &HubRecord,
    ) -> Result<(), Rejection> {
        if r.sequencer == Sequencer::TakeoverPending && (!moves || after_record.hub != self.domain)
        {
            return Err(reject(
                Rule::HubTransfer,
                format!(
                    "a takeover commit must move the hub to {} (it names {})",
                    self.domain, after_record.hub
                ),
            ));
        }
        Ok(())
    }

    /// The hub rules of `full` on a commit the view validated, one function each, in the
    /// order the first failure is reported. Returns the hub's room state of the new epoch
    /// under x-hub-only-room-state when the policy rules computed it.
    fn check_commit_rules(
        &self,
        from: &Domain,
        r: &HubRoom,
        s: &CommitSummary,
        bundle: &CommitBundle<'_>,
        list: &[(u16, Vec<u8>)],
    ) -> Result<Option<RoomState>, Rejection> {
        let config = &self.config;
        let actor = self.actor_of(&s.committer, from)?;
        rule_mute(config, r, &actor)?;
        rule_cached_proposals(config, r, s)?;
        rule_external_join(config, r, s)?;
        let kind = if s.external {
            ChangeKind::ExternalCommit
        } else {
            ChangeKind::Commit
        };
        let inline = self.with_list_updates(s.inline.clone(), list)?;
        let change = Self::change_of(&r.hub_state, kind, &inline)?;
        // The external joiner is no inline Add: exiting-add counts it as one.
        let joiner = match (&s.committer, s.external) {
            (HandshakeSender::NewMember { client: Some(cl) }, true) => Some(cl),
            _ => None,
        };
        check_exiting(config, &r.hub_state, &actor, &change, joiner)?;
        if config.on(Rule::Composition) {
            let referenced = Self::change_of(&r.committed, ChangeKind::Proposals, &s.referenced)
                .unwrap_or_default();
            check_commit_composition(&[&referenced, &change])
                .map_err(|e| reject(Rule::Composition, e.to_string()))?;
        }
        let state = rule_policy(config, r, &actor, &change, s, self.room_state.is_hub_only())?;
        self.rule_welcome_routing(bundle.welcome)?;
        if config.on(Rule::GroupInfo) && !matches!(bundle.group_info, GroupInfoOption::Full(_)) {
            return Err(reject(
                Rule::GroupInfo,
                "a commit must carry a full GroupInfo",
            ));
        }
        Ok(state)
    }

    /// Rule `welcome-routing`: a Welcome goes only to KeyPackages fetched through this hub.
    fn rule_welcome_routing(&self, welcome: Option<&WelcomeBytes>) -> Result<(), Rejection> {
        let (true, Some(w)) = (self.config.on(Rule::WelcomeRouting), welcome) else {
            return Ok(());
        };
        let refs = w
            .new_member_refs()
            .map_err(|e| reject(Rule::WelcomeRouting, e.to_string()))?;
        for kp in refs {
            if !self.key_package_routes.contains_key(&kp) {
                return Err(reject(
                    Rule::WelcomeRouting,
                    format!(
                        "Welcome for KeyPackageRef {} that was not fetched through this hub",
                        hex::encode(&kp[..kp.len().min(8)])
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Phase 2: the room-state signal and the commit's fan-out, encoded.
    fn encode_commit_entries(
        &self,
        now: Millis,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        checked: &CommitChecked,
    ) -> Result<CommitEntries, Rejection> {
        let ts = self.next_timestamp(now);
        let new_epoch = self.rooms.get(room).expect("checked by caller").epoch + 1;
        let room_state = match &checked.hub_only_state {
            Some(state) => Some(
                Self::encode_room_state_entry(ts, bundle.commit, new_epoch, state)
                    .map_err(|e| internal(format!("room-state signal: {e}")))?,
            ),
            None => None,
        };
        let commit = Self::encode_entry(
            &FanoutMessage {
                timestamp: ts,
                message: bundle.commit.clone(),
                body: FanoutBody::Commit {
                    external_proposals: Vec::new(),
                },
            },
            "commit",
            new_epoch,
        )
        .map_err(|e| internal(format!("commit fan-out: {e}")))?;
        Ok(CommitEntries {
            ts,
            new_epoch,
            room_state,
            commit,
        })
    }

    /// Phase 3: merge into the view, check what needs the new epoch, encode the Welcome
    /// with the new tree. On a refusal the view is rolled back.
    fn merge_commit(
        &mut self,
        steps: &dyn HubSteps,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        mut checked: CommitChecked,
        entries: CommitEntries,
    ) -> Result<(CommitMerged, CommitChecked), Rejection> {
        let config = &self.config;
        let (ts, new_epoch) = (entries.ts, entries.new_epoch);
        let crypto = self.provider.crypto();
        let r = self.rooms.get_mut(room).expect("checked by caller");
        let contents = checked.checked.as_ref().map(|c| HubEvent::CommitContents {
            room: room.clone(),
            epoch: new_epoch,
            committer: super::describe_sender(&c.summary.committer),
            proposals: c
                .summary
                .proposals
                .iter()
                .map(super::describe_proposal)
                .collect(),
        });
        let mut merged = CommitMerged {
            entries,
            welcome: None,
            drop_view: None,
            contents,
        };
        let Some(c) = checked.checked.take() else {
            // No view to merge: the tree is the committer's (or stays the same).
            let tree = match bundle.ratchet_tree {
                RatchetTreeOption::Full(t) => t.as_bytes().to_vec(),
                _ => r.ratchet_tree.clone(),
            };
            if let Some(w) = bundle.welcome {
                merged.welcome = Some(
                    steps
                        .welcome_entry(ts, w, &tree, new_epoch)
                        .map_err(|e| internal(format!("Welcome fan-out: {e}")))?,
                );
            }
            if let (Some(reason), Some(_)) = (&checked.diverged, &r.view) {
                merged.drop_view = Some(reason.clone());
            }
            return Ok((merged, checked));
        };
        let full = config.level >= Enforcement::Full;
        let wants_gi = full && config.on(Rule::GroupInfo);
        let wants_es = full && config.on(Rule::HubExternalSender);
        let signer_leaf = match &c.summary.committer {
            HandshakeSender::Member { leaf, .. } => Some(*leaf),
            _ => None,
        };
        let joiner = match &c.summary.committer {
            HandshakeSender::NewMember { client } => client.clone(),
            _ => None,
        };
        let view = r.view.as_mut().expect("checked implies a view");
        // The Welcome's tree is the merged view's: keep a copy to roll back to if
        // its entry cannot be encoded.
        let backup = if wants_gi || wants_es || bundle.welcome.is_some() {
            view.snapshot().ok()
        } else {
            None
        };
        let followed = steps
            .merge(view, c)
            .map_err(|e| reject(Rule::MlsValid, e.to_string()))?;
        let check_gi = followed && wants_gi;
        let check_es = followed && wants_es;
        let mut outcome = Ok(());
        if check_gi {
            let leaf = signer_leaf.or_else(|| joiner.as_ref().and_then(|j| view.leaf_of(j)));
            outcome = rule_group_info_signed(crypto, view, leaf, bundle.group_info);
        }
        if outcome.is_ok() && check_es {
            outcome =
                rule_hub_external_sender(view, &checked.after_record, &r.record, checked.moves);
        }
        if outcome.is_ok() && checked.moves && full && config.on(Rule::HubTransfer) {
            outcome = rule_new_hub_serves(view, &checked.after_record, &checked.hub_only_state);
        }
        if let (true, Some(w)) = (outcome.is_ok(), bundle.welcome) {
            let tree = view.ratchet_tree();
            match steps.welcome_entry(ts, w, &tree, new_epoch) {
                Ok(e) => merged.welcome = Some(e),
                Err(e) => outcome = Err(internal(format!("Welcome fan-out: {e}"))),
            }
        }
        if let Err(f) = outcome {
            if let Some(b) = backup {
                r.view = Some(b);
            }
            return Err(f);
        }
        Ok((merged, checked))
    }

    /// Phase 4: accepted — the room moves to the new epoch and the entries go into its
    /// log. Returns the commit's timestamp.
    fn log_accepted_commit(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        checked: CommitChecked,
        merged: CommitMerged,
    ) -> Millis {
        let entries = merged.entries;
        let new_epoch = entries.new_epoch;
        let log_before = self.rooms.get(room).map_or(0, |r| r.log.len());
        if let Some(reason) = merged.drop_view {
            let r = self.rooms.get_mut(room).expect("checked by caller");
            self.events.push(HubEvent::ViewDiverged {
                room: room.clone(),
                epoch: r.epoch,
                reason,
            });
            r.view = None;
        }
        if let Some(e) = merged.contents {
            self.events.push(e);
        }
        let ts = self.timestamp(now);
        let transfer_event = self.advance_room(from, room, bundle, &checked, new_epoch);
        let CommitChecked {
            domains_before: mut recipients,
            ..
        } = checked;
        recipients.extend(
            self.rooms
                .get(room)
                .expect("checked by caller")
                .member_domains(),
        );
        let welcome_to = bundle.welcome.map(|w| self.welcome_targets(room, w));
        let expected =
            1 + usize::from(entries.room_state.is_some()) + usize::from(bundle.welcome.is_some());
        if let Some(entry) = entries.room_state {
            // x-hub-only-room-state §4: the signal, just before its commit, to every
            // provider the commit or its Welcome goes to.
            let mut to = recipients.clone();
            to.extend(welcome_to.iter().flatten().cloned());
            self.append(room, entry, to, from);
        }
        self.append(room, entries.commit, recipients, from);
        if let Some(e) = transfer_event {
            self.events.push(e);
        }
        if let (Some(entry), Some(to)) = (merged.welcome, welcome_to) {
            // Without an MLS view (enforcement off) the hub knows a room's followers only
            // from who talked to it; a provider that gets a Welcome now has members.
            if let Some(r) = self.rooms.get_mut(room) {
                r.known_domains.extend(to.iter().cloned());
            }
            self.append(room, entry, to, from);
        }
        // The invariant this function keeps: an accepted commit is in the log with its
        // room-state signal and its Welcome, each exactly once.
        let logged = self.rooms.get(room).map_or(0, |r| r.log.len() - log_before);
        assert_eq!(
            logged, expected,
            "accepted commit of epoch {new_epoch} in {room}: {logged} log entries, expected {expected}"
        );
        ts
    }

    /// The room's state after an accepted commit: epoch, pending proposals, the states
    /// and tree of the new epoch, the GroupInfo, the hub record and sequencer
    /// (x-hub-transfer §3). Returns the transfer event the commit causes, if any.
    fn advance_room(
        &mut self,
        from: &Domain,
        room: &RoomUri,
        bundle: &CommitBundle<'_>,
        checked: &CommitChecked,
        new_epoch: u64,
    ) -> Option<HubEvent> {
        let r = self.rooms.get_mut(room).expect("checked by caller");
        r.epoch = new_epoch;
        r.pending.clear();
        r.pending_client_delta.clear();
        r.pending_added.clear();
        r.known_domains.insert(from.clone());
        if let Some(view) = &r.view {
            if let Ok(state) = RoomState::from_dictionary(&view.dictionary()) {
                r.committed = state.clone();
                r.hub_state = state;
            }
            r.ratchet_tree = view.ratchet_tree();
            let users: BTreeSet<UserUri> = view
                .members()
                .into_iter()
                .filter_map(|(_, c)| c.map(|c| c.user()))
                .collect();
            r.muted.retain(|u| users.contains(u));
        } else if let RatchetTreeOption::Full(t) = bundle.ratchet_tree {
            r.ratchet_tree = t.as_bytes().to_vec();
        }
        if let Some(state) = &checked.hub_only_state {
            r.committed = state.clone();
            r.hub_state = state.clone();
        }
        if let GroupInfoOption::Full(g) = bundle.group_info {
            r.group_info = g.as_bytes().to_vec();
        }
        r.authorized_joiners.clear();
        let previous_hub = r.record.hub.clone();
        let base_epoch = new_epoch - 1;
        let after = &checked.after_record;
        r.record = after.clone();
        if checked.moves && after.hub != self.domain {
            // x-hub-transfer §3: handed off; from now on only the log drains.
            r.sequencer = Sequencer::HandedOff(after.clone());
            Some(HubEvent::StoppedSequencing {
                room: room.clone(),
                new_hub: after.hub.clone(),
                generation: after.generation,
                reason: "handed off",
                fork_epoch: None,
                abandoned: 0,
            })
        } else if r.sequencer == Sequencer::TakeoverPending {
            r.sequencer = Sequencer::Active;
            r.took_over_at = Some(base_epoch);
            Some(HubEvent::TookOver {
                room: room.clone(),
                previous_hub,
                generation: after.generation,
                base_epoch,
            })
        } else {
            None
        }
    }
}

/// Rule `mute`: a muted user may not commit.
fn rule_mute(config: &EnforcementConfig, r: &HubRoom, actor: &Actor) -> Result<(), Rejection> {
    match actor.user() {
        Some(u) if config.on(Rule::Mute) && r.muted.contains(u) => Err(reject(
            Rule::Mute,
            format!("{u} is muted and may not commit"),
        )),
        _ => Ok(()),
    }
}

/// Rule `cached-proposals`: a commit covers every proposal the hub accepted this epoch
/// (P§5.3.2); the refusal names the missing ones (`invalidProposal`).
fn rule_cached_proposals(
    config: &EnforcementConfig,
    r: &HubRoom,
    s: &CommitSummary,
) -> Result<(), Rejection> {
    if !config.on(Rule::CachedProposals) {
        return Ok(());
    }
    let missing: Vec<Vec<u8>> = r
        .pending
        .iter()
        .map(|p| p.reference.clone())
        .filter(|p| !p.is_empty())
        .filter(|p| !s.by_reference.contains(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Rejection {
        code: RejectCode::InvalidProposal(missing.clone()),
        rule: Some(Rule::CachedProposals),
        reason: format!(
            "{} ({}): the commit leaves out {} proposal(s) the hub accepted this epoch",
            Rule::CachedProposals.id(),
            Rule::CachedProposals.reference(),
            missing.len()
        ),
    })
}

/// Rule `external-join`: an external commit comes from a client that asked this hub for
/// the GroupInfo with authorisation (P§5.6).
fn rule_external_join(
    config: &EnforcementConfig,
    r: &HubRoom,
    s: &CommitSummary,
) -> Result<(), Rejection> {
    match &s.committer {
        HandshakeSender::NewMember { client: Some(cl) }
            if config.on(Rule::ExternalJoin)
                && s.external
                && !r.authorized_joiners.contains(cl) =>
        {
            Err(reject(
                Rule::ExternalJoin,
                format!("{cl} joins without an authorised /groupInfo request"),
            ))
        }
        _ => Ok(()),
    }
}

/// Rules `policy` and `list-membership`: the change is authorised against the hub state
/// (RP§8), and the commit's participant list is the one the change leads to. Returns the
/// new state under x-hub-only-room-state (where the GroupContext's list is frozen and
/// not compared).
fn rule_policy(
    config: &EnforcementConfig,
    r: &HubRoom,
    actor: &Actor,
    change: &crate::room::ProposedChange,
    s: &CommitSummary,
    hub_only: bool,
) -> Result<Option<RoomState>, Rejection> {
    if !(config.on(Rule::Policy) || config.on(Rule::ListMembership)) {
        return Ok(None);
    }
    let ok = authorize(&r.hub_state, &r.membership(), actor, change).map_err(|e| {
        let rule = if matches!(
            e,
            crate::room::PolicyViolation::ClientsOfUnlistedUser { .. }
                | crate::room::PolicyViolation::RemovedUserKeepsClients { .. }
                | crate::room::PolicyViolation::BannedUserHasClients { .. }
        ) {
            Rule::ListMembership
        } else {
            Rule::Policy
        };
        reject(rule, e.to_string())
    })?;
    if hub_only {
        return Ok(Some(ok.state));
    }
    if let Ok(after) = RoomState::from_dictionary(&s.new_dictionary) {
        if after.participants != ok.state.participants {
            return Err(reject(
                Rule::ListMembership,
                "the commit's participant list differs from the hub state after the change",
            ));
        }
    }
    Ok(None)
}

/// Rule `group-info` after the merge: the committer's GroupInfo describes the new epoch
/// and is signed by the committer (or the external joiner's new leaf) (P§5.3.2, RP§7).
fn rule_group_info_signed(
    crypto: &SeededCrypto,
    view: &PublicView,
    leaf: Option<u32>,
    group_info: &GroupInfoOption,
) -> Result<(), Rejection> {
    let gi = match group_info {
        GroupInfoOption::Full(g) => Some(g.as_bytes()),
        GroupInfoOption::Partial(_) => None,
    };
    match (leaf, gi) {
        (Some(l), Some(gi)) => view
            .check_group_info(crypto, gi, l)
            .map_err(|e| reject(Rule::GroupInfo, e.to_string())),
        _ => Err(reject(Rule::GroupInfo, "no checkable GroupInfo")),
    }
}

/// Rule `hub-external-sender` after the merge: the hub after this commit stays in
/// external_senders, and a transfer replaces the old hub's entry (x-hub-transfer §2 T4).
fn rule_hub_external_sender(
    view: &PublicView,
    after: &HubRecord,
    before: &HubRecord,
    moves: bool,
) -> Result<(), Rejection> {
    let senders = view.external_sender_identities();
    let hub = config::server_credential_identity(&after.hub).into_bytes();
    let old = config::server_credential_identity(&before.hub).into_bytes();
    if !senders.contains(&hub) {
        return Err(reject(
            Rule::HubExternalSender,
            format!(
                "the commit drops the hub {} from external_senders",
                after.hub
            ),
        ));
    }
    if moves && senders.contains(&old) {
        return Err(reject(
            Rule::HubExternalSender,
            "a transfer commit must replace the old hub's external sender",
        ));
    }
    Ok(())
}

/// Rule `hub-transfer` after the merge: the new hub serves a participant with a client
/// in the room (x-hub-transfer §2 T2).
fn rule_new_hub_serves(
    view: &PublicView,
    after: &HubRecord,
    hub_only_state: &Option<RoomState>,
) -> Result<(), Rejection> {
    let listed = match hub_only_state {
        Some(s) => Some(s.clone()),
        None => RoomState::from_dictionary(&view.dictionary()).ok(),
    };
    let served = view.members().into_iter().any(|(_, c)| {
        c.is_some_and(|c| {
            c.domain() == after.hub && listed.as_ref().is_some_and(|s| s.is_participant(&c.user()))
        })
    });
    if served {
        return Ok(());
    }
    Err(reject(
        Rule::HubTransfer,
        format!(
            "the new hub {} has no participant with a client in the room",
            after.hub
        ),
    ))
}
