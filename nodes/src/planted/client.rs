//! The client's planted bugs ([`Bug::CLIENT`]) as a wrapper around the honest client's
//! conduct ([`crate::client::conduct`]): a [`FaultyClient`] answers the seams its bugs
//! touch the way the bug says and hands the rest to the conduct it wraps.

use std::any::Any;
use std::collections::BTreeSet;

use openmls::prelude::LeafNodeIndex;

use super::{Bug, Bugs};
use crate::client::conduct::{Committing, Conduct, Deviation, Honest};
use crate::client::core::Client;
use crate::client::member::CommitOutput;
use crate::ids::{RoomUri, UserUri};
use crate::io::ClientToProvider;
use crate::mls::commit::CommitPlan;
use crate::mls::MlsStorage;
use crate::room::components::ParticipantListUpdate;
use crate::room::RoomState;

impl Bug {
    /// The bugs a [`FaultyClient`] plants in the client.
    pub const CLIENT: [Bug; 4] = [
        Bug::ClientAddsWithoutListUpdate,
        Bug::ClientRemovesUserButNotClients,
        Bug::ClientMisreadsParticipantList,
        Bug::ClientSkipsUnlisting,
    ];
}

/// A client's conduct with client bugs planted (see [`crate::planted`]).
pub struct FaultyClient {
    inner: Box<dyn Conduct>,
    /// Client bugs only, never empty.
    bugs: Bugs,
}

impl FaultyClient {
    /// `inner` with the client bugs among `bugs` planted; `inner` itself when `bugs`
    /// has none.
    pub fn plant(inner: Box<dyn Conduct>, bugs: &Bugs) -> Box<dyn Conduct> {
        let bugs: Bugs = bugs
            .iter()
            .copied()
            .filter(|b| Bug::CLIENT.contains(b))
            .collect();
        if bugs.is_empty() {
            inner
        } else {
            Box::new(FaultyClient { inner, bugs })
        }
    }

    fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }
}

impl<S: MlsStorage> Client<S> {
    /// Plant deliberate bugs (see [`crate::planted`]) in this client: its conduct becomes
    /// the honest one with the client bugs among `bugs` planted, replacing bugs planted
    /// before. Bugs go into a client before any adversary (asserted).
    pub fn set_bugs(&mut self, bugs: &Bugs) {
        let conduct: &dyn Any = self.conduct();
        assert!(
            conduct.is::<Honest>() || conduct.is::<FaultyClient>(),
            "bugs are planted in an honest client, before any adversary"
        );
        self.change_conduct(|_| FaultyClient::plant(Box::new(Honest), bugs));
    }
}

impl Conduct for FaultyClient {
    /// Under [`Bug::ClientMisreadsParticipantList`] the shown state leaves out the last
    /// participant, unless the client's own user is the first.
    fn room_view_state(&self, me: &UserUri, state: Option<RoomState>) -> Option<RoomState> {
        let mut state = self.inner.room_view_state(me, state);
        if self.has(Bug::ClientMisreadsParticipantList) {
            if let Some(st) = state.as_mut() {
                if st.participants.first().is_some_and(|p| p.user != *me) {
                    st.participants.pop();
                }
            }
        }
        state
    }

    /// Under [`Bug::ClientRemovesUserButNotClients`] no client is removed.
    fn removed_clients(&self, user: &UserUri, leaves: Vec<LeafNodeIndex>) -> Vec<LeafNodeIndex> {
        if self.has(Bug::ClientRemovesUserButNotClients) {
            return Vec::new();
        }
        self.inner.removed_clients(user, leaves)
    }

    fn departure_list_update(
        &mut self,
        what: &'static str,
        user: &UserUri,
        update: ParticipantListUpdate,
        did: &mut Vec<Deviation>,
    ) -> Option<ParticipantListUpdate> {
        self.inner.departure_list_update(what, user, update, did)
    }

    /// Under [`Bug::ClientSkipsUnlisting`] the committer never unlists the leavers.
    fn unlists_leavers(&self) -> bool {
        !self.has(Bug::ClientSkipsUnlisting) && self.inner.unlists_leavers()
    }

    fn sending_user(&self, me: &UserUri, state: &dyn Fn() -> Option<RoomState>) -> UserUri {
        self.inner.sending_user(me, state)
    }

    /// Under [`Bug::ClientAddsWithoutListUpdate`] an add commits the Adds alone.
    fn added_list_update(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        update: ParticipantListUpdate,
    ) -> Option<ParticipantListUpdate> {
        if self.has(Bug::ClientAddsWithoutListUpdate) {
            return None;
        }
        self.inner.added_list_update(me, users, update)
    }

    fn key_packages_left_out(
        &self,
        me: &UserUri,
        users: &[(UserUri, Option<u32>)],
        in_room: &dyn Fn() -> BTreeSet<Vec<u8>>,
    ) -> BTreeSet<Vec<u8>> {
        self.inner.key_packages_left_out(me, users, in_room)
    }

    fn adds_on_welcome(&mut self, me: &UserUri) -> Option<UserUri> {
        self.inner.adds_on_welcome(me)
    }

    fn commit(
        &mut self,
        room: &RoomUri,
        plan: CommitPlan,
        group: &mut dyn Committing,
        did: &mut Vec<Deviation>,
    ) -> Result<CommitOutput, String> {
        self.inner.commit(room, plan, group, did)
    }

    fn before_request(&mut self) -> Vec<ClientToProvider> {
        self.inner.before_request()
    }

    fn at_rest(&self) -> bool {
        self.inner.at_rest()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adversary::Adversary;
    use crate::ids::ClientUri;

    fn client() -> Client {
        let uri: ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        Client::new(1, uri)
    }

    fn is<T: Any>(c: &Client) -> bool {
        let conduct: &dyn Any = c.conduct();
        conduct.is::<T>()
    }

    #[test]
    fn only_client_bugs_make_a_faulty_client() {
        let mut c = client();
        c.set_bugs(&[Bug::HubSkipsMerge, Bug::FollowerSkipsDedup].into());
        assert!(is::<Honest>(&c), "no client bug: the client stays honest");
        c.set_bugs(&[Bug::HubSkipsMerge, Bug::ClientSkipsUnlisting].into());
        assert!(is::<FaultyClient>(&c));
        assert!(!c.conduct().unlists_leavers());
        c.set_bugs(&Bugs::new());
        assert!(is::<Honest>(&c), "bugs set again replace the ones before");
        assert!(c.conduct().unlists_leavers());
    }

    #[test]
    fn bugs_beneath_an_adversary_both_act() {
        let mut c = client();
        c.set_bugs(&[Bug::ClientSkipsUnlisting].into());
        c.set_adversary(Some(Adversary::ForgeSendingUri));
        let me = c.uri().user();
        assert!(!c.conduct().unlists_leavers(), "the planted bug still acts");
        let state = || None;
        assert_eq!(c.conduct().sending_user(&me, &state), me);
    }

    #[test]
    #[should_panic(expected = "before any adversary")]
    fn bugs_go_in_before_an_adversary() {
        let mut c = client();
        c.set_adversary(Some(Adversary::GhostDevice));
        c.set_bugs(&[Bug::ClientSkipsUnlisting].into());
    }
}
