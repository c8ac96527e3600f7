//! The commits a client sends (P§3.5, P§5.3): the `/update` request of a commit plan,
//! hub transfers (x-hub-transfer), and the group operations a conduct builds a commit
//! with ([`Committing`]).

use openmls::prelude::*;

use super::{fail, Client, Echo, Stage, Started};
use crate::client::conduct::Committing;
use crate::client::member::{CommitOutput, Member};
use crate::endpoint::Endpoint;
use crate::ids::{Domain, RoomUri};
use crate::io::ClientToProvider;
use crate::mls::commit::CommitPlan;
use crate::mls::config::Identity;
use crate::mls::{MlsStorage, SeededProvider};
use crate::room::components::ParticipantListUpdate;
use crate::room::hub_only::HubOnlyUpdate;
use crate::room::{RoomComponents, PARTICIPANT_LIST};
use crate::wire::*;

impl<S: MlsStorage> Client<S> {
    /// x-hub-only-room-state: take the participant-list AppDataUpdates out of `plan`
    /// (they go beside the commit, not in it).
    fn take_list_updates(plan: &mut CommitPlan) -> Result<Vec<ParticipantListUpdate>, String> {
        let mut list = Vec::new();
        let mut rest = Vec::new();
        for p in std::mem::take(&mut plan.proposals) {
            match &p {
                Proposal::AppDataUpdate(u) if u.component_id() == PARTICIPANT_LIST => {
                    match u.operation() {
                        AppDataUpdateOperation::Update(b) => {
                            list.push(ParticipantListUpdate::decode(b.as_slice()).map_err(fail)?)
                        }
                        AppDataUpdateOperation::Remove => {
                            return Err("the participant list cannot be removed".into())
                        }
                    }
                }
                _ => rest.push(p),
            }
        }
        plan.proposals = rest;
        Ok(list)
    }

    /// x-hub-only-room-state: an `/update` body with `list` beside the handshake.
    pub(super) fn hub_only_body(
        body: Vec<u8>,
        list: &[ParticipantListUpdate],
    ) -> Result<Vec<u8>, String> {
        HubOnlyUpdate {
            request: decode_exact(&body).map_err(fail)?,
            list_updates: list.to_vec(),
        }
        .encode()
        .map_err(fail)
    }

    /// The `/update` request of a commit of `plan` in `room` (P§3.5, P§5.3): the commit
    /// covers the proposals the hub accepted this epoch (the proposal store) besides
    /// `plan`'s own; this client's conduct builds it ([`Conduct::commit`]).
    pub(super) fn commit_request(
        &mut self,
        room: &RoomUri,
        mut plan: CommitPlan,
    ) -> Result<Started, String> {
        let list = if self.room_state.is_hub_only() {
            Some(Self::take_list_updates(&mut plan)?)
        } else {
            None
        };
        plan.consume_proposal_store = true;
        let member = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .ok_or_else(|| format!("not a member of {room}"))?;
        let mut group = Group {
            member,
            provider: &self.provider,
            identity: &self.identity,
            beside: list.as_deref(),
        };
        let mut did = Vec::new();
        let co = self.conduct.commit(room, plan, &mut group, &mut did)?;
        let body = group.update_body(&co)?;
        self.deviated(room, did);
        Ok((
            Self::relay(Endpoint::Update(room.clone()), body),
            Stage::Update {
                commit: true,
                join: false,
            },
            Echo::of(&co.commit),
        ))
    }

    /// A transfer commit of `room`'s hub to `to` (x-hub-transfer §2); for a takeover the
    /// request asks this client's provider to take the room over with the GroupInfo and
    /// tree of the epoch the commit is built on.
    pub(super) fn transfer_commit(
        &mut self,
        room: &RoomUri,
        to: &Domain,
        hub_sender: &ExternalSender,
        takeover: bool,
    ) -> Result<Started, String> {
        let (provider, identity) = (&self.provider, &self.identity);
        let m = self
            .rooms
            .get(room)
            .and_then(|r| r.member.as_ref())
            .ok_or_else(|| format!("not a member of {room}"))?;
        let current = crate::transfer::hub_record(room, &m.dictionary()).map_err(fail)?;
        let plan = crate::transfer::transfer_plan(
            m.group().extensions(),
            &current.hub,
            hub_sender.clone(),
            &current.next(to),
        )
        .map_err(fail)?;
        let base = if takeover {
            Some((
                m.group_info(provider, identity).map_err(fail)?,
                m.ratchet_tree(),
            ))
        } else {
            None
        };
        let (request, stage, echo) = self.commit_request(room, plan)?;
        let request = match (base, request) {
            (Some((group_info, ratchet_tree)), ClientToProvider::Relay { body, .. }) => {
                ClientToProvider::TakeOver {
                    corr: 0,
                    room: room.clone(),
                    group_info,
                    ratchet_tree,
                    body,
                }
            }
            (_, r) => r,
        };
        Ok((request, stage, echo))
    }
}

/// The `/update` body for a commit (P§5.3): commit, Welcome, full GroupInfo and tree.
pub(super) fn update_body(co: &CommitOutput) -> Result<Vec<u8>, String> {
    let bundle = HandshakeBundle {
        proposal_or_commit: MlsMessageBytes::from_bytes(&co.commit).map_err(fail)?,
        body: HandshakeBody::Commit {
            welcome: co
                .welcome
                .as_ref()
                .map(|w| WelcomeBytes::from_bytes(w))
                .transpose()
                .map_err(fail)?,
            group_info_option: GroupInfoOption::Full(
                GroupInfoBytes::from_bytes(&co.group_info).map_err(fail)?,
            ),
            ratchet_tree_option: RatchetTreeOption::Full(
                RatchetTreeBytes::from_bytes(&co.ratchet_tree).map_err(fail)?,
            ),
        },
    };
    encode(&UpdateRequest { bundle }).map_err(fail)
}

/// The member's group in one room while this client builds a commit.
struct Group<'a, S: MlsStorage> {
    member: &'a mut Member,
    provider: &'a SeededProvider<S>,
    identity: &'a Identity,
    /// x-hub-only-room-state: the participant-list changes that go beside the commit.
    beside: Option<&'a [ParticipantListUpdate]>,
}

impl<S: MlsStorage> Committing for Group<'_, S> {
    fn pending_proposal_count(&self) -> usize {
        self.member.pending_proposal_count()
    }

    fn discard_pending_proposals(&mut self) -> Result<(), String> {
        self.member
            .discard_pending_proposals(self.provider)
            .map_err(fail)
    }

    fn group_info(&self) -> Result<Vec<u8>, String> {
        self.member
            .group_info(self.provider, self.identity)
            .map_err(fail)
    }

    fn commit(&mut self, plan: &CommitPlan) -> Result<CommitOutput, String> {
        self.member
            .commit(self.provider, self.identity, plan, &RoomComponents)
            .map_err(fail)
    }

    fn discard_pending_commit(&mut self) -> Result<(), String> {
        self.member
            .discard_pending_commit(self.provider)
            .map_err(fail)
    }

    fn update_body(&self, commit: &CommitOutput) -> Result<Vec<u8>, String> {
        let body = update_body(commit)?;
        match self.beside {
            Some(list) => Client::<S>::hub_only_body(body, list),
            None => Ok(body),
        }
    }
}
