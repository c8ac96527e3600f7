//! A malicious provider's devices: the client-side adversaries (see [`crate::adversary`])
//! as a wrapper around a client's conduct ([`crate::client::conduct`]). A
//! [`MaliciousClient`] answers the seams its adversary touches the way the attack says
//! and hands the rest to the conduct it wraps (honest, or with planted bugs).

use std::any::Any;
use std::collections::BTreeSet;

use openmls::prelude::LeafNodeIndex;

use super::{flip_confirmation_tag, Adversary};
use crate::client::conduct::{Committing, Conduct, Deviation};
use crate::client::core::Client;
use crate::client::member::CommitOutput;
use crate::ids::{RoomUri, UserUri};
use crate::io::ClientToProvider;
use crate::mls::commit::CommitPlan;
use crate::mls::config::CIPHERSUITE;
use crate::mls::MlsStorage;
use crate::room::components::ParticipantListUpdate;
use crate::room::RoomState;

/// A device of a malicious provider: a client's conduct with the provider's adversary.
/// Follower-only adversaries change nothing here.
pub struct MaliciousClient {
    inner: Box<dyn Conduct>,
    adversary: Adversary,
    /// Provider-internal messages to send before the next request (the forked commit
    /// of [`Adversary::Equivocate`]).
    forked: Vec<ClientToProvider>,
}

impl MaliciousClient {
    /// `inner` as a device following `adversary`; `inner` itself for `None`.
    pub fn wrap(inner: Box<dyn Conduct>, adversary: Option<Adversary>) -> Box<dyn Conduct> {
        match adversary {
            Some(adversary) => Box::new(MaliciousClient {
                inner,
                adversary,
                forked: Vec::new(),
            }),
            None => inner,
        }
    }

    fn is(&self, a: Adversary) -> bool {
        self.adversary == a
    }

    /// ghost-device: an add of only the device's own user (its other devices).
    fn adds_ghosts(&self, me: &UserUri, users: &[(UserUri, Option<u32>)]) -> bool {
        self.is(Adversary::GhostDevice) && users.iter().all(|(u, _)| u == me)
    }
}

impl<S: MlsStorage> Client<S> {
    /// Make this client one of a malicious provider's devices (see [`crate::adversary`]):
    /// its conduct becomes a [`MaliciousClient`] wrapping the one it has (honest, or
    /// with planted bugs). `None` leaves it as it is. One adversary per client
    /// (asserted); only the client-side behaviours act here.
    pub fn set_adversary(&mut self, adversary: Option<Adversary>) {
        let conduct: &dyn Any = self.conduct();
        assert!(
            !conduct.is::<MaliciousClient>(),
            "a client follows one adversary"
        );
        self.change_conduct(|c| MaliciousClient::wrap(c, adversary));
    }
}

impl Conduct for MaliciousClient {
    fn room_view_state(&self, me: &UserUri, state: Option<RoomState>) -> Option<RoomState> {
        self.inner.room_view_state(me, state)
    }

    fn removed_clients(&self, user: &UserUri, leaves: Vec<LeafNodeIndex>) -> Vec<LeafNodeIndex> {
        self.inner.removed_clients(user, leaves)
    }

    /// omit-list-update: a Remove or a Ban leaves the user listed (its clients go).
    fn departure_list_update(
        &mut self,
        what: &'static str,
        user: &UserUri,
        update: ParticipantListUpdate,
        did: &mut Vec<Deviation>,
    ) -> Option<ParticipantListUpdate> {
        if self.is(Adversary::OmitListUpdate) {
            did.push(Deviation {
                behaviour: "omit-list-update",
                action: format!("{what} of {user} removes the clients but keeps the user listed"),
            });
            return None;
        }
        self.inner.departure_list_update(what, user, update, did)
    }

    /// omit-cached-proposals: its commits carry no SelfRemove, so no unlisting is due.
    fn unlists_leavers(&self) -> bool {
        !self.is(Adversary::OmitCachedProposals) && self.inner.unlists_leavers()
    }

    /// forge-sending-uri: another participant — one hosted by the same provider if there
    /// is one, else the first other one in list order.
    fn sending_user(&self, me: &UserUri, state: &dyn Fn() -> Option<RoomState>) -> UserUri {
        if !self.is(Adversary::ForgeSendingUri) {
            return self.inner.sending_user(me, state);
        }
        let Some(state) = state() else {
            return me.clone();
        };
        let others: Vec<UserUri> = state
            .participants
            .iter()
            .map(|p| p.user.clone())
            .filter(|u| u != me)
            .collect();
        others
            .iter()
            .find(|u| u.domain() == me.domain())
            .or(others.first())
            .cloned()
            .unwrap_or_else(|| me.clone())
    }

    /// add-non-participant, and ghost-device adding its own user's devices: the Adds
    /// alone, no participant-list change.
    fn added_list_update(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        update: ParticipantListUpdate,
    ) -> Option<ParticipantListUpdate> {
        if self.is(Adversary::AddNonParticipant) || self.adds_ghosts(me, users) {
            return None;
        }
        self.inner.added_list_update(me, users, update)
    }

    /// ghost-device adding its own user's devices: only those not in the room yet.
    fn key_packages_left_out(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        in_room: &dyn Fn() -> BTreeSet<Vec<u8>>,
    ) -> BTreeSet<Vec<u8>> {
        if self.adds_ghosts(me, users) {
            return in_room();
        }
        self.inner.key_packages_left_out(me, users, in_room)
    }

    /// ghost-device: on joining, add the user's other devices, unasked.
    fn adds_on_welcome(&mut self, me: &UserUri) -> Option<UserUri> {
        if self.is(Adversary::GhostDevice) {
            return Some(me.clone());
        }
        self.inner.adds_on_welcome(me)
    }

    /// omit-cached-proposals: commit only what the plan names inline. bad-group-info:
    /// the commit carries this epoch's GroupInfo. equivocate: another commit for the
    /// same epoch (re-drawn with a fresh path) is built and discarded before the real
    /// one, and goes to the provider only. bad-confirmation-tag: one byte of the
    /// commit's confirmation tag flipped.
    fn commit(
        &mut self,
        room: &RoomUri,
        mut plan: CommitPlan,
        group: &mut dyn Committing,
        did: &mut Vec<Deviation>,
    ) -> Result<CommitOutput, String> {
        match self.adversary {
            Adversary::OmitCachedProposals => {
                plan.consume_proposal_store = false;
                // openmls resolves AppDataUpdates of the whole store even when the store
                // is not consumed; forgetting the received proposals leaves them out
                // cleanly.
                let omitted = group.pending_proposal_count();
                group.discard_pending_proposals()?;
                let co = self.inner.commit(room, plan, group, did)?;
                if omitted > 0 {
                    did.push(Deviation {
                        behaviour: "omit-cached-proposals",
                        action: format!("commit leaves out {omitted} cached proposal(s)"),
                    });
                }
                Ok(co)
            }
            Adversary::BadGroupInfo => {
                let stale = group.group_info()?;
                let mut co = self.inner.commit(room, plan, group, did)?;
                co.group_info = stale;
                Ok(co)
            }
            Adversary::Equivocate => {
                let alt = CommitPlan {
                    force_self_update: true,
                    ..plan.clone()
                };
                let fork = group.commit(&alt)?;
                group.discard_pending_commit()?;
                let body = group.update_body(&fork)?;
                let co = self.inner.commit(room, plan, group, did)?;
                self.forked.push(ClientToProvider::ForkedCommit {
                    room: room.clone(),
                    body,
                });
                Ok(co)
            }
            Adversary::BadConfirmationTag => {
                let mut co = self.inner.commit(room, plan, group, did)?;
                co.commit = flip_confirmation_tag(&co.commit, CIPHERSUITE.hash_length())
                    .ok_or("bad-confirmation-tag: the commit is not a member PublicMessage")?;
                Ok(co)
            }
            _ => self.inner.commit(room, plan, group, did),
        }
    }

    /// equivocate: the forked commit, before the next request.
    fn before_request(&mut self) -> Vec<ClientToProvider> {
        let mut out = std::mem::take(&mut self.forked);
        out.extend(self.inner.before_request());
        out
    }

    fn at_rest(&self) -> bool {
        self.forked.is_empty() && self.inner.at_rest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::conduct::Honest;
    use crate::ids::ClientUri;

    #[test]
    fn no_adversary_leaves_the_client_as_it_is() {
        let uri: ClientUri = "mimi://c.example/d/cathy/1".parse().unwrap();
        let mut c = Client::new(1, uri);
        c.set_adversary(None);
        let conduct: &dyn Any = c.conduct();
        assert!(conduct.is::<Honest>());
        c.set_adversary(Some(Adversary::GhostDevice));
        let conduct: &dyn Any = c.conduct();
        assert!(conduct.is::<MaliciousClient>());
    }

    #[test]
    fn ghost_device_adds_its_own_user_and_only_devices_not_in_the_room() {
        let mut m = MaliciousClient::wrap(
            Box::new(crate::client::conduct::Honest),
            Some(Adversary::GhostDevice),
        );
        let me: UserUri = "mimi://c.example/u/cathy".parse().unwrap();
        let other: UserUri = "mimi://c.example/u/dave".parse().unwrap();
        assert_eq!(m.adds_on_welcome(&me), Some(me.clone()));
        let in_room = || BTreeSet::from([b"x".to_vec()]);
        let own = [(me.clone(), None)];
        assert_eq!(m.key_packages_left_out(&me, &own, &in_room), in_room());
        assert!(m
            .added_list_update(&me, &own, ParticipantListUpdate::default())
            .is_none());
        let theirs = [(other, None)];
        assert!(m.key_packages_left_out(&me, &theirs, &in_room).is_empty());
        assert!(m
            .added_list_update(&me, &theirs, ParticipantListUpdate::default())
            .is_some());
    }

    #[test]
    fn forge_sending_uri_prefers_a_co_hosted_participant() {
        let m = MaliciousClient::wrap(Box::new(Honest), Some(Adversary::ForgeSendingUri));
        let me: UserUri = "mimi://c.example/u/cathy".parse().unwrap();
        assert_eq!(
            m.sending_user(&me, &|| None),
            me,
            "no room state: its own user"
        );
        let listed = |users: &[&str]| {
            let room: RoomUri = "mimi://c.example/r/x".parse().unwrap();
            let mut st = RoomState::new_room(
                &room,
                &me,
                crate::room::RolePreset::Cooperative,
                Default::default(),
            )
            .unwrap();
            st.participants = users
                .iter()
                .map(|u| crate::room::participants::Participant {
                    user: u.parse().unwrap(),
                    role: 2,
                })
                .collect();
            st
        };
        let alice = "mimi://a.example/u/alice";
        let dave = "mimi://c.example/u/dave";
        let st = listed(&[alice, "mimi://c.example/u/cathy", dave]);
        assert_eq!(m.sending_user(&me, &|| Some(st.clone())).to_string(), dave);
        let st = listed(&["mimi://c.example/u/cathy", alice]);
        assert_eq!(m.sending_user(&me, &|| Some(st.clone())).to_string(), alice);
        let honest = MaliciousClient::wrap(Box::new(Honest), Some(Adversary::DropFanout));
        assert_eq!(honest.sending_user(&me, &|| Some(st.clone())), me);
    }
}
