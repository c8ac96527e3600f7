//! The room's fan-out as this client receives it (P§5.5): a Welcome to join by, a
//! commit or proposals to process, an application message to decrypt, and under
//! x-hub-only-room-state the signalled room state; each may settle the op in flight.

use std::collections::BTreeSet;

use openmls::prelude::*;
use sha2::{Digest, Sha256};

use super::{fail, Client, ClientEvent, Command, Settle, Stage};
use crate::client::member::{Member, MemberError, Processed};
use crate::content::{message_id, MimiContent};
use crate::ids::RoomUri;
use crate::io::{ClientOutput, ClientToProvider, Millis};
use crate::mls::MlsStorage;
use crate::room::hub_only;
use crate::room::RoomComponents;
use crate::wire::*;

impl<S: MlsStorage> Client<S> {
    /// Whether a fan-out message settles the op in flight: `Some(true)` it is the op's own
    /// message (accepted), `Some(false)` it is another commit of the op's epoch (the op's
    /// message will never be accepted).
    fn verdict(&self, room: &RoomUri, fm: &FanoutMessage) -> Option<bool> {
        let (f, _) = self.rooms.get(room)?.in_flight.as_ref()?;
        let echo = f.echo.as_ref()?;
        if fm.message.as_bytes() == echo.bytes.as_slice() {
            return Some(true);
        }
        if matches!(fm.body, FanoutBody::Commit { .. })
            && fm.message.info().epoch == Some(echo.epoch)
        {
            return Some(false);
        }
        None
    }

    pub(super) fn on_deliver(
        &mut self,
        now: Millis,
        room: &RoomUri,
        fanout: &[u8],
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        let fm: FanoutMessage = decode_exact(fanout).map_err(fail)?;
        if let FanoutBody::RoomState { epoch, room_state } = &fm.body {
            // x-hub-only-room-state: not an MLS message; it settles no op.
            if fm.message.info().epoch.map(|e| e + 1) != Some(*epoch) {
                return Err(format!(
                    "room-state signal for epoch {epoch} carries a commit of epoch {:?}",
                    fm.message.info().epoch
                ));
            }
            let state = hub_only::decode_room_state(room_state).map_err(fail)?;
            self.on_signal(room, *epoch, state);
            return Ok(());
        }
        // After the message is processed: settle the op in flight.
        let mut settle = None;
        match self.verdict(room, &fm) {
            Some(true) => {
                let Some((f, _)) = self.rooms.get_mut(room).and_then(|r| r.in_flight.take()) else {
                    return Ok(());
                };
                let op = f.cmd.name();
                match f.stage {
                    Stage::Update { join: true, .. } => {
                        // The joiner merged its external commit when it made it.
                        self.update_succeeded(room, op, true, true);
                        return Ok(());
                    }
                    Stage::Submit { message_id } => {
                        if let Some(r) = self.rooms.get_mut(room) {
                            r.first_sight(Sha256::digest(fm.message.as_bytes()).into());
                        }
                        self.events.push(ClientEvent::MessageSent {
                            room: room.clone(),
                            message_id,
                            timestamp: fm.timestamp,
                        });
                        self.finish(room, op, Ok(()));
                        return Ok(());
                    }
                    // Our commit (merged as OwnPendingCommit below) or our proposals.
                    _ => settle = Some(Settle::Succeeded(op)),
                }
            }
            Some(false) => {
                if let Some((f, retries)) =
                    self.rooms.get_mut(room).and_then(|r| r.in_flight.take())
                {
                    if let Stage::Update { commit: true, join } = f.stage {
                        self.discard_update(room, true, join);
                    }
                    settle = Some(Settle::Lost(f.cmd, retries, f.hub_epoch.unwrap_or(0)));
                }
            }
            None => {}
        }
        let result = self.process_fanout(room, &fm, out);
        match settle {
            Some(Settle::Succeeded(op)) => self.finish(room, op, Ok(())),
            Some(Settle::Lost(cmd, retries, hub_epoch)) => {
                let have = self
                    .rooms
                    .get(room)
                    .and_then(|r| r.member.as_ref())
                    .map_or(0, Member::epoch);
                self.retry(now, room, cmd, retries, hub_epoch.max(have));
            }
            None => {}
        }
        result
    }

    /// Process one fan-out message (not a room-state signal).
    fn process_fanout(
        &mut self,
        room: &RoomUri,
        fm: &FanoutMessage,
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        match &fm.body {
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => self.welcome_received(room, fm, ratchet_tree_option),
            FanoutBody::Commit { .. } => self.commit_received(room, fm, out),
            FanoutBody::Proposal { more_proposals } => {
                self.proposals_received(room, fm, more_proposals)
            }
            // Handled in `on_deliver`.
            FanoutBody::RoomState { .. } => Ok(()),
            FanoutBody::Application { .. } => self.application_received(room, fm),
        }
    }

    /// A Welcome (P§3.2): join the room by it, unless already an active member.
    fn welcome_received(
        &mut self,
        room: &RoomUri,
        fm: &FanoutMessage,
        ratchet_tree_option: &RatchetTreeOption,
    ) -> Result<(), String> {
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
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
        let m =
            Member::join_by_welcome(provider, welcome.as_bytes(), tree.as_bytes()).map_err(fail)?;
        let epoch = m.epoch();
        r.member = Some(m);
        r.joined_epoch = Some(epoch);
        if let Some(user) = self.conduct.adds_on_welcome(&self.uri.user()) {
            r.queue.push_back((
                Command::AddUser {
                    room: room.clone(),
                    user,
                    role: None,
                },
                0,
            ));
        }
        self.events.push(ClientEvent::Joined {
            room: room.clone(),
            epoch,
            how: "welcome",
        });
        Ok(())
    }

    /// A commit in the room's fan-out (P§5.5): process it (our own merges as our
    /// pending commit); a commit that removes this client ends its membership.
    fn commit_received(
        &mut self,
        room: &RoomUri,
        fm: &FanoutMessage,
        out: &mut Vec<ClientOutput>,
    ) -> Result<(), String> {
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
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
            Err(MemberError::WrongEpoch { got, have }) if got < have => {}
            Err(e) => return Err(fail(e)),
        }
        Ok(())
    }

    /// A proposal bundle the hub accepted (P§3.5 step 1): store its proposals, and
    /// commit them if this client has the commit duty.
    fn proposals_received(
        &mut self,
        room: &RoomUri,
        fm: &FanoutMessage,
        more_proposals: &[MlsMessageBytes],
    ) -> Result<(), String> {
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
        let Some(m) = r.member.as_mut().filter(|m| m.is_active()) else {
            return Ok(());
        };
        let mut all = vec![fm.message.clone()];
        all.extend(more_proposals.iter().cloned());
        for p in &all {
            match m.process_handshake(provider, p.as_bytes(), &RoomComponents) {
                Ok(_) => {}
                // Our own proposals come back: they are already in our store.
                Err(MemberError::Rejected(e))
                    if e.contains("OwnProposal") || e.contains("Duplicate") => {}
                Err(e) => return Err(fail(e)),
            }
        }
        if self.has_commit_duty(room) {
            let r = self.rooms.entry(room.clone()).or_default();
            r.queue
                .push_front((Command::CommitPending { room: room.clone() }, 0));
        }
        Ok(())
    }

    /// An application message (P§5.4): decrypt it, unless it predates this client's
    /// membership, is a duplicate, or is its own.
    fn application_received(&mut self, room: &RoomUri, fm: &FanoutMessage) -> Result<(), String> {
        let provider = &self.provider;
        let r = self.rooms.entry(room.clone()).or_default();
        if r.member.as_ref().is_none_or(|m| !m.is_active()) {
            return Ok(());
        }
        // Not for us: sent before we joined.
        if let (Some(e), Some(j)) = (fm.message.info().epoch, r.joined_epoch) {
            if e < j {
                return Ok(());
            }
        }
        // A duplicate (accepted twice by the hub): drop silently.
        if !r.first_sight(Sha256::digest(fm.message.as_bytes()).into()) {
            return Ok(());
        }
        let Some(m) = r.member.as_mut() else {
            return Ok(());
        };
        let got = match m.decrypt(provider, fm.message.as_bytes()) {
            Ok(g) => g,
            Err(MemberError::Rejected(e)) if e.contains("own application message") => return Ok(()),
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
