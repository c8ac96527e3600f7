//! The answers to an op's requests (P§5): an ambiguous one (resend later), an HTTP
//! error, and for each stage the hub's answer read as the drafts say — KeyPackages for
//! an add (P§5.2), the outcome of an `/update` (P§5.3) or `/submitMessage` (P§5.4), a
//! GroupInfo to join by external commit (P§5.6).

use std::collections::BTreeSet;

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_traits::OpenMlsProvider;
use sha2::{Digest, Sha256};

use super::commit::update_body;
use super::{
    ambiguous, resend_backoff, Client, ClientEvent, Command, Echo, InFlight, Phase, Stage, Started,
    EVIDENCE_TIMEOUT,
};
use crate::client::failure::{
    bad_answer, build_failure, failure, Failure, FailureOrigin, LocalFailure, RefusalCode,
};
use crate::client::member::{Member, MemberError};
use crate::endpoint::Endpoint;
use crate::ids::RoomUri;
use crate::io::{status, ClientOutput, ClientToProvider, Millis, Response};
use crate::mls::commit::CommitPlan;
use crate::mls::MlsStorage;
use crate::room::codec::Opaque;
use crate::room::components::{ParticipantListUpdate, UserRolePair};
use crate::room::RoomComponents;
use crate::wire::*;

impl<S: MlsStorage> Client<S> {
    /// An answer to the op in flight in `room`, handled with `answering` set to the
    /// digest of the request it answers.
    pub(super) fn on_reply(
        &mut self,
        now: Millis,
        room: &RoomUri,
        corr: u64,
        response: Response,
        out: &mut Vec<ClientOutput>,
    ) {
        self.answering = self
            .rooms
            .get(room)
            .and_then(|r| r.in_flight.as_ref())
            .and_then(|(f, _)| match &f.request {
                ClientToProvider::Relay { body, .. } => Some(hex::encode(Sha256::digest(body))),
                _ => None,
            });
        self.answer(now, room, corr, response, out);
        self.answering = None;
    }

    /// The answer `response` to attempt `corr` of the op in flight in `room`.
    fn answer(
        &mut self,
        now: Millis,
        room: &RoomUri,
        corr: u64,
        response: Response,
        out: &mut Vec<ClientOutput>,
    ) {
        if ambiguous(&response) {
            return self.ambiguous_answer(now, room, corr, &response);
        }
        let Some((f, retries)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
            return;
        };
        if response.status != status::OK {
            return self.http_error(room, f, &response);
        }
        let op = f.cmd.name();
        let body = response.body.as_slice();
        match f.stage {
            Stage::Create => {
                self.events
                    .push(ClientEvent::Created { room: room.clone() });
                self.finish(room, op, Ok(()));
            }
            Stage::KeyMaterial { index, got } => {
                let next = self.key_material_answered(room, &f.cmd, index, got, body);
                self.launch_or_fail(now, room, f.cmd, retries, next, out);
            }
            Stage::Update { commit, join } => {
                self.update_answered(now, room, f, retries, commit, join, body)
            }
            Stage::Submit { ref message_id } => {
                let message_id = message_id.clone();
                self.submit_answered(now, room, f, retries, message_id, body)
            }
            Stage::GroupInfo { private_key } => {
                let next = self.group_info_answered(room, &private_key, body);
                self.launch_or_fail(now, room, f.cmd, retries, next, out);
            }
        }
    }

    /// A provider-side transport failure (5xx) answering the current attempt: the
    /// outcome is ambiguous, so the request is resent after a backoff (see the module
    /// doc of [`super`]). An answer to a superseded attempt is ignored.
    fn ambiguous_answer(&mut self, now: Millis, room: &RoomUri, corr: u64, response: &Response) {
        let Some((f, _)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.as_mut()) else {
            return;
        };
        if f.corr == corr && matches!(f.phase, Phase::Waiting { .. }) {
            f.last_ambiguity = format!(
                "provider answered {}: {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
            f.phase = Phase::Backoff {
                resend_at: now + resend_backoff(f.attempt),
            };
        }
    }

    /// An HTTP error other than a transport failure: the op fails, its pending commit
    /// discarded.
    fn http_error(&mut self, room: &RoomUri, f: InFlight, response: &Response) {
        let reason = format!(
            "provider answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        if let Stage::Update { commit, join } = f.stage {
            if commit {
                self.discard_update(room, commit, join);
            }
        }
        let origin = FailureOrigin::HttpError {
            status: response.status,
        };
        self.finish(room, f.cmd.name(), Err((origin, reason)));
    }

    /// Send `next`, the op's next request, or fail the op.
    fn launch_or_fail(
        &mut self,
        now: Millis,
        room: &RoomUri,
        cmd: Command,
        retries: u32,
        next: Result<Started, Failure>,
        out: &mut Vec<ClientOutput>,
    ) {
        match next {
            Ok((msg, stage, echo)) => self.launch(now, room, cmd, retries, msg, stage, echo, out),
            Err(e) => self.finish(room, cmd.name(), Err(e)),
        }
    }

    /// An add's `/keyMaterial` answer (P§5.2) for its `index`-th user, whose
    /// KeyPackages join `got` (those of the earlier users): the next user's request, or
    /// after the last one the commit of the Adds with the participant-list change that
    /// lists the users (RP§8.1.2).
    fn key_material_answered(
        &mut self,
        room: &RoomUri,
        cmd: &Command,
        index: usize,
        mut got: Vec<KeyPackage>,
        body: &[u8],
    ) -> Result<Started, Failure> {
        let users = Self::users_of(cmd);
        let me = self.uri.user();
        let left_out = self
            .conduct
            .key_packages_left_out(&me, &users, &|| self.clients_in_room(room));
        let resp: KeyMaterialResponse = decode_exact(body).map_err(bad_answer)?;
        let before = got.len();
        for c in resp.clients {
            if left_out.contains(c.client_uri.as_bytes()) {
                continue;
            }
            if let ClientMaterial::Success(kp) = c.material {
                let kp = KeyPackageIn::tls_deserialize_exact(kp.as_bytes())
                    .map_err(bad_answer)?
                    .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(bad_answer)?;
                got.push(kp);
            }
        }
        if got.len() == before {
            let who = users.get(index).map(|(u, _)| u.to_string());
            return Err(failure(
                FailureOrigin::NoKeyMaterial,
                format!(
                    "no KeyPackages for {} ({:?})",
                    who.unwrap_or_default(),
                    resp.user_status
                ),
            ));
        }
        if let Some((next, _)) = users.get(index + 1) {
            let msg = self
                .key_material_request(room, next)
                .map_err(build_failure)?;
            return Ok((
                msg,
                Stage::KeyMaterial {
                    index: index + 1,
                    got,
                },
                None,
            ));
        }
        let listed = ParticipantListUpdate {
            added_participants: users
                .iter()
                .map(|(user, role)| UserRolePair {
                    user: Opaque(user.as_bytes().to_vec()),
                    role_index: role.unwrap_or(2),
                })
                .collect(),
            ..Default::default()
        };
        let mut proposals = Vec::new();
        if let Some(u) = self.conduct.added_list_update(&me, &users, listed) {
            proposals.push(Self::list_update(u).map_err(build_failure)?);
        }
        let plan = CommitPlan {
            adds: got,
            proposals,
            ..Default::default()
        };
        self.commit_request(room, plan).map_err(build_failure)
    }

    /// The clients (URI bytes) in `room`'s group, if this client is an active member.
    fn clients_in_room(&self, room: &RoomUri) -> BTreeSet<Vec<u8>> {
        self.active_member(room)
            .map(|m| m.members())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, c)| c.map(|c| c.as_bytes().to_vec()))
            .collect()
    }

    /// The hub's answer to an `/update` (P§5.3) with our commit (`commit`; an external
    /// join's with `join`) or our proposals: success, or a refusal — a lost epoch waits
    /// for the fan-out or retries, anything else fails the op.
    #[allow(clippy::too_many_arguments)]
    fn update_answered(
        &mut self,
        now: Millis,
        room: &RoomUri,
        f: InFlight,
        retries: u32,
        commit: bool,
        join: bool,
        body: &[u8],
    ) {
        let op = f.cmd.name();
        let echo_epoch = f.echo.as_ref().map(|e| e.epoch);
        let resp = match decode_exact::<UpdateRoomResponse>(body) {
            Ok(r) => r,
            Err(e) => {
                if commit {
                    self.discard_update(room, commit, join);
                }
                return self.finish(room, op, Err(bad_answer(e)));
            }
        };
        match resp.outcome {
            // x-hub-only-room-state: the hub signals the new list just before
            // our commit in the fan-out; merge at our commit's echo there, so
            // that we reach the epoch holding its list.
            UpdateOutcome::Success { .. }
                if commit && !join && self.room_state.is_hub_only() && !f.rechecked =>
            {
                let next = echo_epoch.map_or(0, |e| e + 1);
                self.await_evidence(now, room, f, retries, next)
            }
            UpdateOutcome::Success { .. } => self.update_succeeded(room, op, commit, join),
            UpdateOutcome::WrongEpoch { current_epoch }
                if !join && f.rechecked && echo_epoch.is_some_and(|e| current_epoch > e) =>
            {
                self.discard_update(room, true, join);
                if !commit {
                    self.discard_update(room, false, join);
                }
                let reason = Self::no_evidence(echo_epoch, "wrongEpoch", current_epoch);
                let origin = FailureOrigin::HubRefused {
                    code: RefusalCode::WrongEpoch,
                };
                self.finish(room, op, Err((origin, reason)));
            }
            UpdateOutcome::WrongEpoch { current_epoch }
                if !join && echo_epoch.is_some_and(|e| current_epoch > e) =>
            {
                self.await_evidence(now, room, f, retries, current_epoch)
            }
            UpdateOutcome::WrongEpoch { current_epoch } => {
                self.discard_update(room, true, join);
                if !commit {
                    self.discard_update(room, false, join);
                }
                let wait = if join { 0 } else { current_epoch };
                self.retry(now, room, f.cmd, retries, wait);
            }
            UpdateOutcome::InvalidProposal { .. } if commit && !join => {
                // The hub accepted proposals this member has not received yet
                // (P§3.5: a commit must cover them): wait for the fan-out, retry.
                self.discard_update(room, commit, join);
                let wait = self
                    .rooms
                    .get(room)
                    .and_then(|r| r.member.as_ref())
                    .map_or(0, Member::epoch);
                self.retry(now, room, f.cmd, retries, wait);
                if let Some(r) = self.rooms.get_mut(room) {
                    r.not_before = Some(now + resend_backoff(retries + 1));
                }
            }
            other => {
                if commit {
                    self.discard_update(room, commit, join);
                }
                let code = match other {
                    UpdateOutcome::WrongEpoch { .. } => RefusalCode::WrongEpoch,
                    UpdateOutcome::InvalidProposal { .. } => RefusalCode::InvalidProposal,
                    _ => RefusalCode::NotAllowed,
                };
                self.finish(
                    room,
                    op,
                    Err(failure(
                        FailureOrigin::HubRefused { code },
                        format!("{other:?}: {}", resp.error_description),
                    )),
                );
            }
        }
    }

    /// The hub's answer to our `/submitMessage` (P§5.4): accepted, or `epochTooOld`
    /// (wait for the fan-out or retry), or a refusal.
    fn submit_answered(
        &mut self,
        now: Millis,
        room: &RoomUri,
        f: InFlight,
        retries: u32,
        message_id: String,
        body: &[u8],
    ) {
        let op = f.cmd.name();
        let echo_epoch = f.echo.as_ref().map(|e| e.epoch);
        match decode_exact::<SubmitMessageResponse>(body) {
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
            }) => {
                if f.rechecked && echo_epoch.is_some_and(|e| current_epoch > e) {
                    let reason = Self::no_evidence(echo_epoch, "epochTooOld", current_epoch);
                    let origin = FailureOrigin::HubRefused {
                        code: RefusalCode::EpochTooOld,
                    };
                    self.finish(room, op, Err((origin, reason)));
                } else if echo_epoch.is_some_and(|e| current_epoch > e) {
                    self.await_evidence(now, room, f, retries, current_epoch)
                } else {
                    self.retry(now, room, f.cmd, retries, current_epoch)
                }
            }
            Ok(other) => {
                let code = match other.outcome {
                    SubmitOutcome::EpochTooOld { .. } => RefusalCode::EpochTooOld,
                    _ => RefusalCode::NotAllowed,
                };
                let refused = failure(
                    FailureOrigin::HubRefused { code },
                    format!("{:?}", other.outcome),
                );
                self.finish(room, op, Err(refused))
            }
            Err(e) => self.finish(room, op, Err(bad_answer(e))),
        }
    }

    /// The hub's answer to our `/groupInfo` request (P§5.6): the GroupInfo and tree to
    /// join by external commit; the join's `/update` request, or the failure.
    fn group_info_answered(
        &mut self,
        room: &RoomUri,
        private_key: &[u8],
        body: &[u8],
    ) -> Result<Started, Failure> {
        let resp: GroupInfoResponse = decode_exact(body).map_err(bad_answer)?;
        // Only a success is signed (P§5.6): a refusal is read as one, never
        // as an answer that failed to verify.
        let s = match &resp.status {
            GroupInfoStatus::Success(s) => s,
            refused => {
                let code = match refused {
                    GroupInfoStatus::NoSuchRoom => RefusalCode::NoSuchRoom,
                    _ => RefusalCode::NotAuthorized,
                };
                return Err(failure(
                    FailureOrigin::HubRefused { code },
                    format!("groupInfo refused: {:?}", refused.code()),
                ));
            }
        };
        resp.verify(self.provider.crypto()).map_err(bad_answer)?;
        let tbe = GroupInfoRatchetTreeTbe::open(
            self.provider.crypto(),
            s.cipher_suite,
            private_key,
            &resp.room_id,
            &s.encrypted_groupinfo_and_tree,
        )
        .map_err(bad_answer)?;
        let RatchetTreeOption::Full(tree) = &tbe.ratchet_tree_option else {
            return Err(bad_answer("the hub sent no full ratchet tree"));
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
        .map_err(|e| match e {
            MemberError::Malformed(_) => bad_answer(e),
            e => failure(FailureOrigin::Local(LocalFailure::Mls), e),
        })?;
        let body = update_body(&co).map_err(build_failure)?;
        let echo = Echo::of(&co.commit);
        self.rooms.entry(room.clone()).or_default().member = Some(m);
        let msg = Self::relay(Endpoint::Update(room.clone()), body);
        let stage = Stage::Update {
            commit: true,
            join: true,
        };
        Ok((msg, stage, echo))
    }

    /// The failure reason of an op whose evidence phase expired and whose resend was
    /// answered `code` (the hub did not take its message).
    fn no_evidence(echo_epoch: Option<u64>, code: &str, current_epoch: u64) -> String {
        format!(
            "no evidence: no fan-out of epoch {} settled the op within {EVIDENCE_TIMEOUT} ms, \
             and the hub answered a resend with {code} (current epoch {current_epoch}): \
             it did not take the message",
            echo_epoch.map_or_else(|| "?".into(), |e| e.to_string())
        )
    }
}
