//! The client core (sans-IO): a user's device. It builds every MLS object (P§1.3), talks
//! only to its own provider, runs one operation per room at a time, retries after
//! `wrongEpoch` once it has caught up, and commits pending proposals when it is the
//! designated member (the lowest leaf not being removed by them).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::OpenMlsProvider;

use super::member::{CommitOutput, Member, Processed};
use crate::content::{message_id, MimiContent};
use crate::endpoint::Endpoint;
use crate::ids::{ClientUri, RoomUri, UserUri};
use crate::io::{status, ClientOutput, ClientToProvider, Millis, ProviderToClient, Response};
use crate::mls::commit::CommitPlan;
use crate::mls::config::{self, Identity, CIPHERSUITE};
use crate::mls::{RoomComponents, SeededProvider};
use crate::room::codec::Opaque;
use crate::room::components::{ParticipantListUpdate, UserRolePair, UserindexRolePair};
use crate::room::roles::BANNED_ROLE;
use crate::room::{NewRoomOptions, RolePreset, RoomState, PARTICIPANT_LIST};
use crate::wire::*;

/// Retries of one operation after `wrongEpoch` / `epochTooOld`.
pub const MAX_RETRIES: u32 = 8;
/// Queued operations per room.
pub const MAX_QUEUED: usize = 256;

/// What a user asks its client to do.
#[derive(Debug, Clone)]
pub enum Command {
    CreateRoom {
        room: RoomUri,
        preset: RolePreset,
        hub_sender: ExternalSender,
    },
    AddUser {
        room: RoomUri,
        user: UserUri,
        role: Option<u32>,
    },
    RemoveUser {
        room: RoomUri,
        user: UserUri,
    },
    Kick {
        room: RoomUri,
        user: UserUri,
    },
    Ban {
        room: RoomUri,
        user: UserUri,
    },
    ChangeRole {
        room: RoomUri,
        user: UserUri,
        role: u32,
    },
    Leave {
        room: RoomUri,
    },
    Send {
        room: RoomUri,
        text: String,
    },
    JoinExternal {
        room: RoomUri,
    },
    SelfUpdate {
        room: RoomUri,
    },
    /// Commit the pending proposals (commit duty).
    CommitPending {
        room: RoomUri,
    },
}

impl Command {
    pub fn room(&self) -> &RoomUri {
        match self {
            Command::CreateRoom { room, .. }
            | Command::AddUser { room, .. }
            | Command::RemoveUser { room, .. }
            | Command::Kick { room, .. }
            | Command::Ban { room, .. }
            | Command::ChangeRole { room, .. }
            | Command::Leave { room }
            | Command::Send { room, .. }
            | Command::JoinExternal { room }
            | Command::SelfUpdate { room }
            | Command::CommitPending { room } => room,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateRoom { .. } => "create-room",
            Command::AddUser { .. } => "add-user",
            Command::RemoveUser { .. } => "remove-user",
            Command::Kick { .. } => "kick",
            Command::Ban { .. } => "ban",
            Command::ChangeRole { .. } => "change-role",
            Command::Leave { .. } => "leave",
            Command::Send { .. } => "send",
            Command::JoinExternal { .. } => "join-external",
            Command::SelfUpdate { .. } => "self-update",
            Command::CommitPending { .. } => "commit-pending",
        }
    }
}

/// A command the client cannot even queue.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("room {0}: too many queued operations (limit {MAX_QUEUED})")]
    QueueFull(RoomUri),
    #[error("{0}")]
    Other(String),
}

/// What a client observed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ClientEvent {
    Created {
        room: RoomUri,
    },
    Joined {
        room: RoomUri,
        epoch: u64,
        how: &'static str,
    },
    Epoch {
        room: RoomUri,
        epoch: u64,
    },
    MessageSent {
        room: RoomUri,
        message_id: String,
        timestamp: Millis,
    },
    MessageReceived {
        room: RoomUri,
        sender: Option<ClientUri>,
        message_id: String,
        timestamp: Millis,
        text: String,
    },
    Removed {
        room: RoomUri,
    },
    OpSucceeded {
        room: RoomUri,
        op: &'static str,
    },
    OpFailed {
        room: RoomUri,
        op: &'static str,
        reason: String,
    },
    /// A delivered message this client could not process.
    DeliveryError {
        room: RoomUri,
        reason: String,
    },
}

/// A read-only view of the client's state in one room.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub epoch: u64,
    pub group_context: Vec<u8>,
    pub epoch_authenticator: Vec<u8>,
    pub dictionary: BTreeMap<u16, Vec<u8>>,
    pub members: Vec<ClientUri>,
    pub state: Option<RoomState>,
}

enum Stage {
    Create,
    KeyMaterial,
    Update { commit: bool, join: bool },
    Submit { message_id: String },
    GroupInfo { private_key: Vec<u8> },
}

struct InFlight {
    corr: u64,
    cmd: Command,
    stage: Stage,
}

#[derive(Default)]
struct ClientRoom {
    member: Option<Member>,
    queue: VecDeque<(Command, u32)>,
    in_flight: Option<(InFlight, u32)>,
    /// Do not start the next operation before reaching this epoch.
    wait_epoch: Option<u64>,
}

/// A client (device) of a user.
pub struct Client {
    uri: ClientUri,
    provider: SeededProvider,
    identity: Identity,
    rooms: BTreeMap<RoomUri, ClientRoom>,
    next_corr: u64,
    events: Vec<ClientEvent>,
}

fn fail(reason: impl std::fmt::Display) -> String {
    reason.to_string()
}

impl Client {
    pub fn new(run_seed: u64, uri: ClientUri) -> Self {
        let provider = SeededProvider::for_node(run_seed, uri.as_str());
        let identity = Identity::for_client(&provider, &uri).expect("seeded Ed25519 key");
        Client {
            uri,
            provider,
            identity,
            rooms: BTreeMap::new(),
            next_corr: 1,
            events: Vec::new(),
        }
    }

    pub fn uri(&self) -> &ClientUri {
        &self.uri
    }

    /// `n` fresh KeyPackages to publish at the provider.
    pub fn publish_key_packages(&mut self, n: usize) -> ClientOutput {
        let key_packages = (0..n)
            .filter_map(|_| self.identity.key_package(&self.provider).ok())
            .filter_map(|b| b.key_package().tls_serialize_detached().ok())
            .collect();
        ClientOutput::ToProvider(ClientToProvider::PublishKeyPackages { key_packages })
    }

    pub fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn room_view(&self, room: &RoomUri) -> Option<RoomView> {
        let m = self.rooms.get(room)?.member.as_ref()?;
        if !m.is_active() {
            return None;
        }
        let dictionary = m.dictionary();
        Some(RoomView {
            epoch: m.epoch(),
            group_context: m.group_context_bytes(),
            epoch_authenticator: m.epoch_authenticator(),
            state: RoomState::from_dictionary(&dictionary).ok(),
            dictionary,
            members: m.members().into_iter().filter_map(|(_, c)| c).collect(),
        })
    }

    /// No operation in flight or queued for `room`.
    pub fn is_idle(&self, room: &RoomUri) -> bool {
        self.rooms
            .get(room)
            .is_none_or(|r| r.in_flight.is_none() && r.queue.is_empty())
    }

    pub fn command(&mut self, now: Millis, cmd: Command) -> Result<Vec<ClientOutput>, ClientError> {
        let room = cmd.room().clone();
        let r = self.rooms.entry(room.clone()).or_default();
        if r.queue.len() >= MAX_QUEUED {
            return Err(ClientError::QueueFull(room));
        }
        r.queue.push_back((cmd, 0));
        let mut out = Vec::new();
        self.pump(now, &room, &mut out);
        Ok(out)
    }

    fn corr(&mut self) -> u64 {
        self.next_corr += 1;
        self.next_corr
    }

    fn relay(&mut self, endpoint: Endpoint, body: Vec<u8>) -> (u64, ClientOutput) {
        let corr = self.corr();
        (
            corr,
            ClientOutput::ToProvider(ClientToProvider::Relay {
                corr,
                endpoint,
                body,
            }),
        )
    }

    /// Start queued operations while the room is idle.
    fn pump(&mut self, now: Millis, room: &RoomUri, out: &mut Vec<ClientOutput>) {
        for _ in 0..MAX_QUEUED {
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            if r.in_flight.is_some() {
                return;
            }
            if let (Some(w), Some(m)) = (r.wait_epoch, r.member.as_ref()) {
                if m.epoch() < w {
                    return;
                }
            }
            r.wait_epoch = None;
            let Some((cmd, retries)) = r.queue.pop_front() else {
                return;
            };
            let name = cmd.name();
            match self.start(now, cmd.clone(), out) {
                Ok(Some((corr, stage))) => {
                    if let Some(r) = self.rooms.get_mut(room) {
                        r.in_flight = Some((InFlight { corr, cmd, stage }, retries));
                    }
                }
                Ok(None) => {}
                Err(reason) => self.events.push(ClientEvent::OpFailed {
                    room: room.clone(),
                    op: name,
                    reason,
                }),
            }
        }
    }

    fn member(&mut self, room: &RoomUri) -> Result<&mut Member, String> {
        self.rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .filter(|m| m.is_active())
            .ok_or_else(|| format!("not a member of {room}"))
    }

    fn state(&mut self, room: &RoomUri) -> Result<RoomState, String> {
        let d = self.member(room)?.dictionary();
        RoomState::from_dictionary(&d).map_err(fail)
    }

    fn leaves_of(&mut self, room: &RoomUri, user: &UserUri) -> Result<Vec<LeafNodeIndex>, String> {
        Ok(self
            .member(room)?
            .members()
            .into_iter()
            .filter(|(_, c)| c.as_ref().is_some_and(|c| &c.user() == user))
            .map(|(l, _)| LeafNodeIndex::new(l))
            .collect())
    }

    fn list_update(u: ParticipantListUpdate) -> Result<Proposal, String> {
        Ok(Proposal::AppDataUpdate(Box::new(
            AppDataUpdateProposal::update(PARTICIPANT_LIST, u.encode().map_err(fail)?),
        )))
    }

    fn index(&mut self, room: &RoomUri, user: &UserUri) -> Result<u32, String> {
        self.state(room)?
            .index_of(user)
            .ok_or_else(|| format!("{user} is not a participant"))
    }

    fn commit_request(
        &mut self,
        room: &RoomUri,
        mut plan: CommitPlan,
    ) -> Result<(u64, Stage, ClientOutput), String> {
        plan.consume_proposal_store = true;
        let provider = &self.provider;
        let identity = &self.identity;
        let m = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.member.as_mut())
            .ok_or_else(|| format!("not a member of {room}"))?;
        let co = m
            .commit(provider, identity, &plan, &RoomComponents)
            .map_err(fail)?;
        let body = update_body(&co)?;
        let (corr, o) = self.relay(Endpoint::Update(room.clone()), body);
        Ok((
            corr,
            Stage::Update {
                commit: true,
                join: false,
            },
            o,
        ))
    }

    /// Begin `cmd`: returns the correlation id and stage if a request went out.
    fn start(
        &mut self,
        _now: Millis,
        cmd: Command,
        out: &mut Vec<ClientOutput>,
    ) -> Result<Option<(u64, Stage)>, String> {
        let room = cmd.room().clone();
        let mut plan = CommitPlan::default();
        match &cmd {
            Command::CreateRoom {
                preset, hub_sender, ..
            } => {
                let hub = room.domain();
                let state = RoomState::new_room(
                    &room,
                    &self.uri.user(),
                    *preset,
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
                self.rooms.entry(room.clone()).or_default().member = Some(m);
                let corr = self.corr();
                out.push(ClientOutput::ToProvider(ClientToProvider::CreateRoom {
                    corr,
                    room,
                    group_info,
                    ratchet_tree,
                }));
                return Ok(Some((corr, Stage::Create)));
            }
            Command::AddUser { user, .. } => {
                self.member(&room)?;
                let tbs = KeyMaterialRequestTbs {
                    protocol: Protocol::Mls10,
                    requesting_user: IdentifierUri::from(&self.uri.user()),
                    target_user: IdentifierUri::from(user),
                    room_id: IdentifierUri::from(&room),
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
                let (corr, o) = self.relay(
                    Endpoint::KeyMaterial(user.clone()),
                    encode(&req).map_err(fail)?,
                );
                out.push(o);
                return Ok(Some((corr, Stage::KeyMaterial)));
            }
            Command::RemoveUser { user, .. } => {
                let idx = self.index(&room, user)?;
                plan.removes = self.leaves_of(&room, user)?;
                plan.proposals
                    .push(Self::list_update(ParticipantListUpdate {
                        removed_indices: vec![idx],
                        ..Default::default()
                    })?);
            }
            Command::Kick { user, .. } => {
                plan.removes = self.leaves_of(&room, user)?;
            }
            Command::Ban { user, .. } | Command::ChangeRole { user, .. } => {
                let idx = self.index(&room, user)?;
                let role = match &cmd {
                    Command::ChangeRole { role, .. } => *role,
                    _ => {
                        plan.removes = self.leaves_of(&room, user)?;
                        BANNED_ROLE
                    }
                };
                plan.proposals
                    .push(Self::list_update(ParticipantListUpdate {
                        changed_role_participants: vec![UserindexRolePair {
                            user_index: idx,
                            role_index: role,
                        }],
                        ..Default::default()
                    })?);
            }
            Command::SelfUpdate { .. } => plan.force_self_update = true,
            Command::CommitPending { .. } => {
                if self.member(&room)?.pending_proposal_count() == 0 {
                    return Ok(None);
                }
            }
            Command::Leave { .. } => {
                let me = self.uri.user();
                let idx = self.index(&room, &me)?;
                let own = self.member(&room)?.own_leaf();
                let others: Vec<u32> = self
                    .leaves_of(&room, &me)?
                    .into_iter()
                    .map(|l| l.u32())
                    .filter(|l| *l != own)
                    .collect();
                let update = ParticipantListUpdate {
                    removed_indices: vec![idx],
                    ..Default::default()
                }
                .encode()
                .map_err(fail)?;
                let (provider, identity) = (&self.provider, &self.identity);
                let m = self
                    .rooms
                    .get_mut(&room)
                    .and_then(|r| r.member.as_mut())
                    .ok_or("not a member")?;
                let mut msgs = vec![m.propose_self_remove(provider, identity).map_err(fail)?];
                for l in others {
                    msgs.push(m.propose_remove(provider, identity, l).map_err(fail)?);
                }
                msgs.push(
                    m.propose_app_data_update(provider, identity, PARTICIPANT_LIST, update)
                        .map_err(fail)?,
                );
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
                let (corr, o) = self.relay(
                    Endpoint::Update(room.clone()),
                    encode(&UpdateRequest { bundle }).map_err(fail)?,
                );
                out.push(o);
                return Ok(Some((
                    corr,
                    Stage::Update {
                        commit: false,
                        join: false,
                    },
                )));
            }
            Command::Send { text, .. } => {
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
                    sending_uri: IdentifierUri::from(&self.uri.user()),
                };
                let (corr, o) = self.relay(
                    Endpoint::SubmitMessage(room.clone()),
                    encode(&req).map_err(fail)?,
                );
                out.push(o);
                return Ok(Some((corr, Stage::Submit { message_id: id })));
            }
            Command::JoinExternal { .. } => {
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
                    group_info_public_key: HpkePublicKeyBytes::from_key(&keys.public)
                        .map_err(fail)?,
                    joining_code: None,
                };
                let req = GroupInfoRequest::sign(tbs, &self.identity.signer).map_err(fail)?;
                let (corr, o) = self.relay(
                    Endpoint::GroupInfo(room.clone()),
                    encode(&req).map_err(fail)?,
                );
                out.push(o);
                return Ok(Some((
                    corr,
                    Stage::GroupInfo {
                        private_key: keys.private.to_vec(),
                    },
                )));
            }
        }
        let (corr, stage, o) = self.commit_request(&room, plan)?;
        out.push(o);
        Ok(Some((corr, stage)))
    }

    pub fn on_message(&mut self, now: Millis, message: ProviderToClient) -> Vec<ClientOutput> {
        let mut out = Vec::new();
        match message {
            ProviderToClient::Reply { corr, response } => {
                let room = self
                    .rooms
                    .iter()
                    .find(|(_, r)| r.in_flight.as_ref().is_some_and(|(f, _)| f.corr == corr))
                    .map(|(k, _)| k.clone());
                if let Some(room) = room {
                    self.on_reply(now, &room, response, &mut out);
                    self.pump(now, &room, &mut out);
                }
            }
            ProviderToClient::Deliver { room, fanout } => {
                if let Err(reason) = self.on_deliver(&room, &fanout, &mut out) {
                    self.events.push(ClientEvent::DeliveryError {
                        room: room.clone(),
                        reason,
                    });
                }
                self.pump(now, &room, &mut out);
            }
        }
        out
    }

    fn finish(&mut self, room: &RoomUri, op: &'static str, result: Result<(), String>) {
        self.events.push(match result {
            Ok(()) => ClientEvent::OpSucceeded {
                room: room.clone(),
                op,
            },
            Err(reason) => ClientEvent::OpFailed {
                room: room.clone(),
                op,
                reason,
            },
        });
    }

    fn retry(&mut self, room: &RoomUri, cmd: Command, retries: u32, epoch: u64) {
        if retries + 1 > MAX_RETRIES {
            self.finish(
                room,
                cmd.name(),
                Err(format!("gave up after {MAX_RETRIES} retries")),
            );
            return;
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.queue.push_front((cmd, retries + 1));
            r.wait_epoch = Some(epoch);
        }
    }

    fn on_reply(
        &mut self,
        now: Millis,
        room: &RoomUri,
        response: Response,
        out: &mut Vec<ClientOutput>,
    ) {
        let Some((f, retries)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
            return;
        };
        let op = f.cmd.name();
        if response.status != status::OK {
            let reason = format!(
                "provider answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
            if let Stage::Update {
                commit: true,
                join: false,
            } = f.stage
            {
                let (p, m) = (
                    &self.provider,
                    self.rooms.get_mut(room).and_then(|r| r.member.as_mut()),
                );
                if let Some(m) = m {
                    let _ = m.discard_pending_commit(p);
                }
            }
            self.finish(room, op, Err(reason));
            return;
        }
        match f.stage {
            Stage::Create => {
                self.events
                    .push(ClientEvent::Created { room: room.clone() });
                self.finish(room, op, Ok(()));
            }
            Stage::KeyMaterial => {
                let r = (|| {
                    let resp: KeyMaterialResponse = decode_exact(&response.body).map_err(fail)?;
                    let mut kps = Vec::new();
                    for c in resp.clients {
                        if let ClientMaterial::Success(kp) = c.material {
                            let kp = KeyPackageIn::tls_deserialize_exact(kp.as_bytes())
                                .map_err(fail)?
                                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                                .map_err(fail)?;
                            kps.push(kp);
                        }
                    }
                    if kps.is_empty() {
                        return Err(format!("no KeyPackages ({:?})", resp.user_status));
                    }
                    let Command::AddUser { user, role, .. } = &f.cmd else {
                        unreachable!()
                    };
                    let role = role.unwrap_or(2);
                    let plan = CommitPlan {
                        adds: kps,
                        proposals: vec![Self::list_update(ParticipantListUpdate {
                            added_participants: vec![UserRolePair {
                                user: Opaque(user.as_bytes().to_vec()),
                                role_index: role,
                            }],
                            ..Default::default()
                        })?],
                        ..Default::default()
                    };
                    self.commit_request(room, plan)
                })();
                match r {
                    Ok((corr, stage, o)) => {
                        out.push(o);
                        if let Some(r) = self.rooms.get_mut(room) {
                            r.in_flight = Some((
                                InFlight {
                                    corr,
                                    cmd: f.cmd,
                                    stage,
                                },
                                retries,
                            ));
                        }
                    }
                    Err(e) => self.finish(room, op, Err(e)),
                }
            }
            Stage::Update { commit, join } => {
                let resp = match decode_exact::<UpdateRoomResponse>(&response.body) {
                    Ok(r) => r,
                    Err(e) => return self.finish(room, op, Err(fail(e))),
                };
                let (provider, r) = (&self.provider, self.rooms.get_mut(room));
                let Some(r) = r else { return };
                match resp.outcome {
                    UpdateOutcome::Success { .. } => {
                        if commit && !join {
                            if let Some(m) = r.member.as_mut() {
                                if m.has_pending_commit() {
                                    let _ = m.merge_pending_commit(provider);
                                }
                            }
                        }
                        if let Some(e) = r.member.as_ref().map(Member::epoch) {
                            if commit {
                                let ev = if join {
                                    ClientEvent::Joined {
                                        room: room.clone(),
                                        epoch: e,
                                        how: "external commit",
                                    }
                                } else {
                                    ClientEvent::Epoch {
                                        room: room.clone(),
                                        epoch: e,
                                    }
                                };
                                self.events.push(ev);
                            }
                        }
                        self.finish(room, op, Ok(()));
                    }
                    UpdateOutcome::WrongEpoch { current_epoch } => {
                        if join {
                            r.member = None;
                        } else if let Some(m) = r.member.as_mut() {
                            let _ = m.discard_pending_commit(provider);
                            if !commit {
                                let _ = m.discard_pending_proposals(provider);
                            }
                        }
                        let wait = if join { 0 } else { current_epoch };
                        self.retry(room, f.cmd, retries, wait);
                    }
                    other => {
                        if join {
                            r.member = None;
                        } else if let Some(m) = r.member.as_mut() {
                            let _ = m.discard_pending_commit(provider);
                        }
                        self.finish(
                            room,
                            op,
                            Err(format!("{other:?}: {}", resp.error_description)),
                        );
                    }
                }
            }
            Stage::Submit { message_id } => {
                match decode_exact::<SubmitMessageResponse>(&response.body) {
                    Ok(SubmitMessageResponse {
                        outcome:
                            SubmitOutcome::Accepted {
                                accepted_timestamp, ..
                            },
                        ..
                    }) => {
                        self.events.push(ClientEvent::MessageSent {
                            room: room.clone(),
                            message_id,
                            timestamp: accepted_timestamp,
                        });
                        self.finish(room, op, Ok(()));
                    }
                    Ok(SubmitMessageResponse {
                        outcome: SubmitOutcome::EpochTooOld { current_epoch },
                        ..
                    }) => self.retry(room, f.cmd, retries, current_epoch),
                    Ok(other) => self.finish(room, op, Err(format!("{:?}", other.outcome))),
                    Err(e) => self.finish(room, op, Err(fail(e))),
                }
            }
            Stage::GroupInfo { private_key } => {
                let r = (|| {
                    let resp: GroupInfoResponse = decode_exact(&response.body).map_err(fail)?;
                    resp.verify(self.provider.crypto()).map_err(fail)?;
                    let GroupInfoStatus::Success(s) = &resp.status else {
                        return Err(format!("groupInfo refused: {:?}", resp.status.code()));
                    };
                    let tbe = GroupInfoRatchetTreeTbe::open(
                        self.provider.crypto(),
                        s.cipher_suite,
                        &private_key,
                        &resp.room_id,
                        &s.encrypted_groupinfo_and_tree,
                    )
                    .map_err(fail)?;
                    let RatchetTreeOption::Full(tree) = &tbe.ratchet_tree_option else {
                        return Err("the hub sent no full ratchet tree".into());
                    };
                    let pending: Vec<Vec<u8>> = tbe
                        .pending_proposals
                        .iter()
                        .map(|p| p.proposal.as_bytes().to_vec())
                        .collect();
                    let (m, co) = Member::join_by_external_commit(
                        &self.provider,
                        &self.identity,
                        tbe.group_info.as_bytes(),
                        tree.as_bytes(),
                        &pending,
                        vec![],
                        &RoomComponents,
                    )
                    .map_err(fail)?;
                    Ok((m, update_body(&co)?))
                })();
                match r {
                    Ok((m, body)) => {
                        self.rooms.entry(room.clone()).or_default().member = Some(m);
                        let (corr, o) = self.relay(Endpoint::Update(room.clone()), body);
                        out.push(o);
                        if let Some(r) = self.rooms.get_mut(room) {
                            r.in_flight = Some((
                                InFlight {
                                    corr,
                                    cmd: f.cmd,
                                    stage: Stage::Update {
                                        commit: true,
                                        join: true,
                                    },
                                },
                                retries,
                            ));
                        }
                    }
                    Err(e) => self.finish(room, op, Err(e)),
                }
            }
        }
        let _ = now;
    }

    fn on_deliver(
        &mut self,
        room: &RoomUri,
        fanout: &[u8],
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        let fm: FanoutMessage = decode_exact(fanout).map_err(fail)?;
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
        match &fm.body {
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => {
                if r.member.as_ref().is_some_and(Member::is_active) {
                    return Ok(());
                }
                let RatchetTreeOption::Full(tree) = ratchet_tree_option else {
                    return Err("Welcome without a full ratchet tree".into());
                };
                let welcome = fm
                    .message
                    .to_welcome()
                    .map_err(fail)?
                    .ok_or("not a Welcome")?;
                let m = Member::join_by_welcome(provider, welcome.as_bytes(), tree.as_bytes())
                    .map_err(fail)?;
                let epoch = m.epoch();
                r.member = Some(m);
                self.events.push(ClientEvent::Joined {
                    room: room.clone(),
                    epoch,
                    how: "welcome",
                });
            }
            FanoutBody::Commit { .. } => {
                let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
                    return Ok(());
                };
                match m.process_handshake(provider, fm.message.as_bytes(), &RoomComponents) {
                    Ok(Processed::Commit {
                        epoch,
                        removed_self,
                    }) => {
                        self.events.push(ClientEvent::Epoch {
                            room: room.clone(),
                            epoch,
                        });
                        if removed_self {
                            self.events
                                .push(ClientEvent::Removed { room: room.clone() });
                            out.push(ClientOutput::ToProvider(ClientToProvider::LeaveRoom {
                                room: room.clone(),
                            }));
                        }
                    }
                    Ok(Processed::OwnCommit { epoch }) => self.events.push(ClientEvent::Epoch {
                        room: room.clone(),
                        epoch,
                    }),
                    Ok(Processed::Proposal { .. }) => {}
                    Err(super::MemberError::WrongEpoch { got, have }) if got < have => {}
                    Err(e) => return Err(fail(e)),
                }
            }
            FanoutBody::Proposal { more_proposals } => {
                let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
                    return Ok(());
                };
                let mut all = vec![fm.message.clone()];
                all.extend(more_proposals.iter().cloned());
                for p in &all {
                    match m.process_handshake(provider, p.as_bytes(), &RoomComponents) {
                        Ok(_) => {}
                        // Our own proposals come back: they are already in our store.
                        Err(super::MemberError::Rejected(e))
                            if e.contains("OwnProposal") || e.contains("Duplicate") => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                if self.has_commit_duty(room) {
                    let r = self.rooms.entry(room.clone()).or_default();
                    r.queue
                        .push_front((Command::CommitPending { room: room.clone() }, 0));
                }
            }
            FanoutBody::Application { .. } => {
                let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
                    return Ok(());
                };
                let got = match m.decrypt(provider, fm.message.as_bytes()) {
                    Ok(g) => g,
                    Err(super::MemberError::Rejected(e))
                        if e.contains("own application message") =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(fail(e)),
                };
                if got.sender.as_ref() == Some(&self.uri) {
                    return Ok(());
                }
                let content = MimiContent::decode(&got.plaintext).map_err(fail)?;
                let id = message_id(&got.plaintext).map_err(fail)?;
                self.events.push(ClientEvent::MessageReceived {
                    room: room.clone(),
                    sender: got.sender,
                    message_id: hex::encode(id),
                    timestamp: fm.timestamp,
                    text: content.text_body().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Whether this client should commit the pending proposals: it is the lowest leaf
    /// among the members those proposals do not remove.
    fn has_commit_duty(&self, room: &RoomUri) -> bool {
        let Some(m) = self.rooms.get(room).and_then(|r| r.member.as_ref()) else {
            return false;
        };
        let g = m.group();
        if g.pending_proposals().count() == 0 {
            return false;
        }
        let removed: BTreeSet<u32> = g
            .pending_proposals()
            .filter_map(|qp| match (qp.proposal(), qp.sender()) {
                (Proposal::Remove(r), _) => Some(r.removed().u32()),
                (Proposal::SelfRemove, Sender::Member(l)) => Some(l.u32()),
                _ => None,
            })
            .collect();
        let lowest = m
            .members()
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| !removed.contains(l))
            .min();
        lowest == Some(m.own_leaf())
    }
}

/// The `/update` body for a commit (P§5.3): commit, Welcome, full GroupInfo and tree.
fn update_body(co: &CommitOutput) -> Result<Vec<u8>, String> {
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
