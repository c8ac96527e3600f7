//! Starting an op: the first request of each command — `/keyMaterial` for an add
//! (P§5.2), `/update` with a commit or proposals (P§5.3), `/submitMessage` (P§5.4),
//! `/groupInfo` for an external join (P§5.6), and the provider's own room creation and
//! takeover (x-hub-transfer §4).

use std::collections::{BTreeMap, BTreeSet};

use openmls::prelude::*;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;
use sha2::{Digest, Sha256};

use super::{fail, Client, ClientEvent, Command, Echo, Stage, Started, MAX_BATCH_USERS};
use crate::client::leave::{admin_commits, own_leave_ops, Departure, LeaveOrder, Step};
use crate::client::member::Member;
use crate::content::{message_id, MimiContent};
use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, RoomUri, UserUri};
use crate::io::{ClientToProvider, Millis};
use crate::mls::commit::CommitPlan;
use crate::mls::config::{self, CIPHERSUITE};
use crate::mls::MlsStorage;
use crate::room::components::{ParticipantListUpdate, UserindexRolePair};
use crate::room::roles::BANNED_ROLE;
use crate::room::{NewRoomOptions, RolePreset, RoomState, PARTICIPANT_LIST};
use crate::wire::*;

impl<S: MlsStorage> Client<S> {
    /// Begin `cmd`: the request to send, its stage and echo, if a request goes out.
    pub(super) fn start(&mut self, now: Millis, cmd: Command) -> Result<Option<Started>, String> {
        let room = cmd.room().clone();
        if let Some((user, steps)) = self.departure_in_steps(&cmd) {
            return self.start_steps(now, &room, user, steps);
        }
        match &cmd {
            Command::CreateRoom {
                preset, hub_sender, ..
            } => self.create_room(&room, *preset, hub_sender).map(Some),
            Command::AddUser { .. } | Command::AddUsers { .. } => {
                self.fetch_key_material(&room, &cmd).map(Some)
            }
            Command::RemoveUser { user, .. } => {
                let plan = self.remove_user_plan(&room, user)?;
                self.commit_op(&room, plan)
            }
            Command::Kick { user, .. } => {
                let plan = CommitPlan {
                    removes: self.removed_clients(&room, user)?,
                    ..Default::default()
                };
                self.commit_op(&room, plan)
            }
            Command::Ban { user, .. } => {
                let plan = self.ban_plan(&room, user)?;
                self.commit_op(&room, plan)
            }
            Command::ChangeRole { user, role, .. } => {
                let idx = self.index(&room, user)?;
                let plan = CommitPlan {
                    proposals: vec![Self::list_update(Self::role_change(idx, *role))?],
                    ..Default::default()
                };
                self.commit_op(&room, plan)
            }
            Command::SelfUpdate { .. } => {
                let plan = CommitPlan {
                    force_self_update: true,
                    ..Default::default()
                };
                self.commit_op(&room, plan)
            }
            Command::CommitPending { .. } => {
                if self.member(&room)?.pending_proposal_count() == 0 {
                    return Ok(None);
                }
                self.commit_op(&room, CommitPlan::default())
            }
            Command::Leave { .. } => self.leave_bundle(&room, true).map(Some),
            Command::LeaveStep { steps, .. } if steps.contains(&Step::ProposeLeave) => {
                self.leave_bundle(&room, false).map(Some)
            }
            Command::LeaveStep { user, steps, .. } => {
                let mut plan = CommitPlan::default();
                if !self.step_plan(&room, user, steps, &mut plan)? {
                    return Ok(None);
                }
                self.commit_op(&room, plan)
            }
            Command::MoveHub { to, hub_sender, .. } => {
                self.transfer_commit(&room, to, hub_sender, false).map(Some)
            }
            Command::TakeOver { hub_sender, .. } => {
                let own = self.uri.domain();
                self.transfer_commit(&room, &own, hub_sender, true)
                    .map(Some)
            }
            Command::Send { text, .. } => self.submit_message(&room, text).map(Some),
            Command::JoinExternal { .. } => self.group_info_request(&room).map(Some),
        }
    }

    /// Under a non-atomic leave ordering (see [`crate::client::leave`]): the user a
    /// Remove, Ban or Leave is about and the ops (each a list of steps) it becomes.
    fn departure_in_steps(&self, cmd: &Command) -> Option<(UserUri, Vec<Vec<Step>>)> {
        let order = self.leave_order;
        if order == LeaveOrder::Atomic {
            return None;
        }
        match cmd {
            Command::RemoveUser { user, .. } => {
                Some((user.clone(), admin_commits(order, Departure::Remove)))
            }
            Command::Ban { user, .. } => Some((
                user.clone(),
                admin_commits(order, Departure::Ban(BANNED_ROLE)),
            )),
            Command::Leave { .. } => own_leave_ops(order).map(|ops| (self.uri.user(), ops)),
            _ => None,
        }
    }

    /// Start the first of a departure's ops about `user`; the others follow it, one
    /// after the other, each once the one before has succeeded.
    fn start_steps(
        &mut self,
        now: Millis,
        room: &RoomUri,
        user: UserUri,
        mut ops: Vec<Vec<Step>>,
    ) -> Result<Option<Started>, String> {
        if ops.is_empty() {
            return Ok(None);
        }
        let first = ops.remove(0);
        let rest = ops
            .into_iter()
            .map(|steps| Command::LeaveStep {
                room: room.clone(),
                user: user.clone(),
                steps,
            })
            .collect();
        let step = Command::LeaveStep {
            room: room.clone(),
            user,
            steps: first,
        };
        let started = self.start(now, step)?;
        if let Some(r) = self.rooms.get_mut(room) {
            let mut next: Vec<Command> = rest;
            next.append(&mut r.after_success);
            r.after_success = next;
        }
        Ok(started)
    }

    /// A commit of `plan` as the op's request. Under `clients-first` / `exiting` the
    /// unlistings due after it (see [`crate::client::leave`]) follow once it succeeds.
    fn commit_op(&mut self, room: &RoomUri, plan: CommitPlan) -> Result<Option<Started>, String> {
        let follow = if self.leave_order.committer_unlists() && self.conduct.unlists_leavers() {
            self.unlistings_due(room)
        } else {
            Vec::new()
        };
        let started = self.commit_request(room, plan)?;
        if let Some(r) = self.rooms.get_mut(room) {
            r.after_success = follow;
        }
        Ok(Some(started))
    }

    /// The room's creation (P§3.1): this client creates the group with the room's
    /// initial state and asks its provider's hub to host it.
    fn create_room(
        &mut self,
        room: &RoomUri,
        preset: RolePreset,
        hub_sender: &ExternalSender,
    ) -> Result<Started, String> {
        let room = room.clone();
        let hub = room.domain();
        let state = RoomState::new_room(
            &room,
            &self.uri.user(),
            preset,
            NewRoomOptions {
                hub: Some(hub),
                ..Default::default()
            },
        )
        .map_err(fail)?;
        let m = Member::create(
            &self.provider,
            &self.identity,
            room.as_bytes(),
            state.to_dictionary(),
            hub_sender.clone(),
        )
        .map_err(fail)?;
        let group_info = m.group_info(&self.provider, &self.identity).map_err(fail)?;
        let ratchet_tree = m.ratchet_tree();
        let r = self.rooms.entry(room.clone()).or_default();
        r.joined_epoch = Some(m.epoch());
        if self.room_state.is_hub_only() {
            // x-hub-only-room-state: the creator's copy is the creation state.
            r.signalled = Some((m.epoch(), state.clone()));
        }
        r.member = Some(m);
        let msg = ClientToProvider::CreateRoom {
            corr: 0,
            room,
            group_info,
            ratchet_tree,
        };
        Ok((msg, Stage::Create, None))
    }

    /// An add's first request (P§3.2): the first user's KeyPackages (`/keyMaterial`).
    fn fetch_key_material(&mut self, room: &RoomUri, cmd: &Command) -> Result<Started, String> {
        self.member(room)?;
        let users = Self::users_of(cmd);
        if users.len() > MAX_BATCH_USERS {
            return Err(format!(
                "{} users in one batch (limit {MAX_BATCH_USERS})",
                users.len()
            ));
        }
        let Some((first, _)) = users.first() else {
            return Err("no users to add".into());
        };
        let msg = self.key_material_request(room, first)?;
        Ok((
            msg,
            Stage::KeyMaterial {
                index: 0,
                got: Vec::new(),
            },
            None,
        ))
    }

    /// A Remove (RP§8.1.2): `user`'s clients leave the group and the user the
    /// participant list.
    fn remove_user_plan(&mut self, room: &RoomUri, user: &UserUri) -> Result<CommitPlan, String> {
        let idx = self.index(room, user)?;
        let removes = self.removed_clients(room, user)?;
        let mut proposals = Vec::new();
        if let Some(u) = self.departure_list_update(room, "remove", user, Self::unlisting(idx)) {
            proposals.push(Self::list_update(u)?);
        }
        Ok(CommitPlan {
            removes,
            proposals,
            ..Default::default()
        })
    }

    /// A Ban (RP§8.1.2): `user`'s clients leave the group and the user stays listed
    /// with the banned role.
    fn ban_plan(&mut self, room: &RoomUri, user: &UserUri) -> Result<CommitPlan, String> {
        let idx = self.index(room, user)?;
        let removes = self.removed_clients(room, user)?;
        let mut proposals = Vec::new();
        let ban = Self::role_change(idx, BANNED_ROLE);
        if let Some(u) = self.departure_list_update(room, "ban", user, ban) {
            proposals.push(Self::list_update(u)?);
        }
        Ok(CommitPlan {
            removes,
            proposals,
            ..Default::default()
        })
    }

    /// The leaves a commit removing `user` from `room` removes: the user's clients.
    fn removed_clients(
        &mut self,
        room: &RoomUri,
        user: &UserUri,
    ) -> Result<Vec<LeafNodeIndex>, String> {
        let leaves = self.leaves_of(room, user)?;
        Ok(self.conduct.removed_clients(user, leaves))
    }

    /// The participant-list change of a `what` commit about `user`: `update`.
    fn departure_list_update(
        &mut self,
        room: &RoomUri,
        what: &'static str,
        user: &UserUri,
        update: ParticipantListUpdate,
    ) -> Option<ParticipantListUpdate> {
        let mut did = Vec::new();
        let update = self
            .conduct
            .departure_list_update(what, user, update, &mut did);
        self.deviated(room, did);
        update
    }

    /// The participant-list change that unlists the participant at `idx`.
    fn unlisting(idx: u32) -> ParticipantListUpdate {
        ParticipantListUpdate {
            removed_indices: vec![idx],
            ..Default::default()
        }
    }

    /// The participant-list change that gives the participant at `idx` role `role`.
    fn role_change(idx: u32, role: u32) -> ParticipantListUpdate {
        ParticipantListUpdate {
            changed_role_participants: vec![UserindexRolePair {
                user_index: idx,
                role_index: role,
            }],
            ..Default::default()
        }
    }

    /// An application message (P§5.4): `text` as MIMI content, encrypted for the
    /// room's group, for `/submitMessage` under this client's sendingUri.
    fn submit_message(&mut self, room: &RoomUri, text: &str) -> Result<Started, String> {
        let room = room.clone();
        let me = self.uri.user();
        let sending_user = self.conduct.sending_user(&me, &|| self.state(&room).ok());
        let salt: [u8; 16] = self.provider.rand().random_array().map_err(fail)?;
        let content = MimiContent::text(salt, &self.uri.user(), &room, text);
        let cbor = content.encode();
        let id = hex::encode(message_id(&cbor).map_err(fail)?);
        let (provider, identity) = (&self.provider, &self.identity);
        let m = self
            .rooms
            .get_mut(&room)
            .and_then(|r| r.member.as_mut())
            .ok_or("not a member")?;
        let ct = m.encrypt(provider, identity, &cbor).map_err(fail)?;
        let req = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: MlsMessageBytes::from_bytes(&ct).map_err(fail)?,
            sending_uri: IdentifierUri::from(&sending_user),
        };
        let msg = Self::relay(
            Endpoint::SubmitMessage(room.clone()),
            encode(&req).map_err(fail)?,
        );
        self.events.push(ClientEvent::MessageBuilt {
            room: room.clone(),
            mls_message_sha256: hex::encode(Sha256::digest(req.app_message.as_bytes())),
        });
        Ok((msg, Stage::Submit { message_id: id }, Echo::of(&ct)))
    }

    /// An external join's first request (P§5.6): a signed `/groupInfo` request with a
    /// fresh HPKE key to encrypt the answer to.
    fn group_info_request(&mut self, room: &RoomUri) -> Result<Started, String> {
        let ikm = self.provider.rand().random_vec(32).map_err(fail)?;
        let keys = self
            .provider
            .crypto()
            .derive_hpke_keypair(CIPHERSUITE.hpke_config(), &ikm)
            .map_err(fail)?;
        let tbs = GroupInfoRequestTbs {
            protocol: Protocol::Mls10,
            cipher_suite: CIPHERSUITE.into(),
            requesting_signature_key: SignaturePublicKeyBytes::from_openmls(
                &self.identity.credential_with_key.signature_key,
            )
            .map_err(fail)?,
            requesting_credential: CredentialBytes::from_openmls(
                &self.identity.credential_with_key.credential,
            )
            .map_err(fail)?,
            group_info_public_key: HpkePublicKeyBytes::from_key(&keys.public).map_err(fail)?,
            joining_code: None,
        };
        let req = GroupInfoRequest::sign(tbs, &self.identity.signer).map_err(fail)?;
        let msg = Self::relay(
            Endpoint::GroupInfo(room.clone()),
            encode(&req).map_err(fail)?,
        );
        Ok((
            msg,
            Stage::GroupInfo {
                private_key: keys.private.to_vec(),
            },
            None,
        ))
    }

    /// The users an add op adds, with their roles.
    pub(super) fn users_of(cmd: &Command) -> Vec<(UserUri, Option<u32>)> {
        match cmd {
            Command::AddUser { user, role, .. } => vec![(user.clone(), *role)],
            Command::AddUsers { users, .. } => users.clone(),
            _ => Vec::new(),
        }
    }

    /// A signed `/keyMaterial/{user}` request for adding `user` to `room` (P§5.2).
    pub(super) fn key_material_request(
        &self,
        room: &RoomUri,
        user: &UserUri,
    ) -> Result<ClientToProvider, String> {
        let tbs = KeyMaterialRequestTbs {
            protocol: Protocol::Mls10,
            requesting_user: IdentifierUri::from(&self.uri.user()),
            target_user: IdentifierUri::from(user),
            room_id: IdentifierUri::from(room),
            acceptable_ciphersuites: vec![CIPHERSUITE.into()],
            required_capabilities: RequiredCapabilitiesBytes::from_openmls(
                &match config::required_capabilities() {
                    Extension::RequiredCapabilities(r) => r,
                    _ => unreachable!("required_capabilities() builds that extension"),
                },
            )
            .map_err(fail)?,
            requester_signature_key: SignaturePublicKeyBytes::from_openmls(
                &self.identity.credential_with_key.signature_key,
            )
            .map_err(fail)?,
            requester_credential: CredentialBytes::from_openmls(
                &self.identity.credential_with_key.credential,
            )
            .map_err(fail)?,
        };
        let req = KeyMaterialRequest::sign(tbs, &self.identity.signer).map_err(fail)?;
        Ok(Self::relay(
            Endpoint::KeyMaterial(user.clone()),
            encode(&req).map_err(fail)?,
        ))
    }

    /// The leave's proposal bundle (P§3.5 step 1, RP§8.1.2 canRemoveSelf): SelfRemove,
    /// Removes of this user's other clients and, with `list_update`, the removal from the
    /// participant list.
    fn leave_bundle(&mut self, room: &RoomUri, list_update: bool) -> Result<Started, String> {
        let me = self.uri.user();
        let hub_only = self.room_state.is_hub_only();
        let update = if list_update {
            let idx = self.index(room, &me)?;
            Some(
                ParticipantListUpdate {
                    removed_indices: vec![idx],
                    ..Default::default()
                }
                .encode()
                .map_err(fail)?,
            )
        } else {
            None
        };
        let own = self.member(room)?.own_leaf();
        let others: Vec<u32> = self
            .leaves_of(room, &me)?
            .into_iter()
            .map(|l| l.u32())
            .filter(|l| *l != own)
            .collect();
        let (provider, identity) = (&self.provider, &self.identity);
        let m = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .ok_or("not a member")?;
        let mut msgs = vec![m.propose_self_remove(provider, identity).map_err(fail)?];
        for l in others {
            msgs.push(m.propose_remove(provider, identity, l).map_err(fail)?);
        }
        let mut beside = Vec::new();
        match update {
            Some(update) if hub_only => {
                beside.push(ParticipantListUpdate::decode(&update).map_err(fail)?)
            }
            Some(update) => msgs.push(
                m.propose_app_data_update(provider, identity, PARTICIPANT_LIST, update)
                    .map_err(fail)?,
            ),
            None => {}
        }
        let bundle = HandshakeBundle {
            proposal_or_commit: MlsMessageBytes::from_bytes(&msgs[0]).map_err(fail)?,
            body: HandshakeBody::Proposal {
                more_proposals: msgs[1..]
                    .iter()
                    .map(|b| MlsMessageBytes::from_bytes(b))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?,
            },
        };
        let mut body = encode(&UpdateRequest { bundle }).map_err(fail)?;
        if hub_only {
            body = Self::hub_only_body(body, &beside)?;
        }
        let msg = Self::relay(Endpoint::Update(room.clone()), body);
        Ok((
            msg,
            Stage::Update {
                commit: false,
                join: false,
            },
            Echo::of(&msgs[0]),
        ))
    }

    /// Fill `plan` with the leave `steps` about `user`; false if they change nothing
    /// (no clients left to remove, the user no longer listed).
    fn step_plan(
        &mut self,
        room: &RoomUri,
        user: &UserUri,
        steps: &[Step],
        plan: &mut CommitPlan,
    ) -> Result<bool, String> {
        let idx = self.state(room)?.index_of(user);
        let mut any = false;
        for step in steps {
            match (step, idx) {
                (Step::RemoveClients, _) => {
                    plan.removes = self.leaves_of(room, user)?;
                    any |= !plan.removes.is_empty();
                }
                (Step::Unlist, Some(i)) => {
                    plan.proposals.push(Self::list_update(Self::unlisting(i))?);
                    any = true;
                }
                (Step::SetRole(role), Some(i)) => {
                    plan.proposals
                        .push(Self::list_update(Self::role_change(i, *role))?);
                    any = true;
                }
                (Step::Unlist | Step::SetRole(_), None) | (Step::ProposeLeave, _) => {}
            }
        }
        Ok(any)
    }

    /// Under `clients-first` / `exiting`: the users whose SelfRemove this client's next
    /// commit carries (from the proposal store) and who are still listed — this client
    /// must unlist them after its commit is accepted (see [`super::leave`]).
    fn unlistings_due(&mut self, room: &RoomUri) -> Vec<Command> {
        let Ok(state) = self.state(room) else {
            return Vec::new();
        };
        let Ok(m) = self.member(room) else {
            return Vec::new();
        };
        let members: BTreeMap<u32, Option<ClientUri>> = m.members().into_iter().collect();
        let leavers: BTreeSet<UserUri> = m
            .group()
            .pending_proposals()
            .filter_map(|qp| match (qp.proposal(), qp.sender()) {
                (Proposal::SelfRemove, Sender::Member(l)) => {
                    members.get(&l.u32()).cloned().flatten().map(|c| c.user())
                }
                _ => None,
            })
            .filter(|u| state.index_of(u).is_some())
            .collect();
        leavers
            .into_iter()
            .map(|user| Command::LeaveStep {
                room: room.clone(),
                user,
                steps: vec![Step::Unlist],
            })
            .collect()
    }
}
