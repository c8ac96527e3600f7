//! The two roles a provider's server drives, each as the node the scenario set up: the
//! honest one, or a wrapper around it that deviates on purpose — planted bugs
//! ([`crate::planted`]) or, for the follower role, a malicious provider
//! ([`crate::adversary`]). The choice is made once, when the server is built
//! ([`crate::server::Server::with_bugs`], [`crate::server::Server::with_adversary`]);
//! from then on the server drives whichever node it holds the same way, and neither the
//! server nor the honest cores branch on a bug or an adversary.

use std::ops::{Deref, DerefMut};

use crate::adversary::{Adversary, AdversaryAction, MaliciousFollower};
use crate::endpoint::Endpoint;
use crate::follower::{BeforeRelay, Delivery, Follower, FollowerRole};
use crate::hub::{Hub, ViewError};
use crate::ids::{ClientUri, Domain, RoomUri, UserUri};
use crate::io::{Millis, Response};
use crate::planted::{Bug, Bugs, FaultyFollower, FaultyHub};
use crate::transfer::TransferError;

/// A provider's hub role: the honest [`Hub`], or a [`FaultyHub`] wrapping it.
///
/// The hub's state (rooms, logs, events) and every step no bug changes are the honest
/// hub's, reached through `Deref`; the entry points where a planted bug can act
/// ([`HubNode::update`], [`HubNode::takeover`], [`HubNode::poll_notify`]) are this
/// type's own methods, which method lookup picks before the honest hub's.
pub enum HubNode {
    Honest(Hub),
    Faulty(FaultyHub),
}

impl HubNode {
    /// This hub with the planted bugs `bugs` set on the honest hub beneath, replacing any
    /// set before; only hub bugs act.
    pub fn plant(self, bugs: &Bugs) -> HubNode {
        let honest = match self {
            HubNode::Honest(h) => h,
            HubNode::Faulty(f) => f.into_hub(),
        };
        let bugs = Bug::for_hub(bugs);
        if bugs.is_empty() {
            HubNode::Honest(honest)
        } else {
            HubNode::Faulty(FaultyHub::new(honest, bugs))
        }
    }

    /// An independent deep copy (see [`crate::server::Server::checkpoint`]).
    pub fn checkpoint(&self) -> Result<HubNode, ViewError> {
        Ok(match self {
            HubNode::Honest(h) => HubNode::Honest(h.checkpoint()?),
            HubNode::Faulty(f) => HubNode::Faulty(f.checkpoint()?),
        })
    }

    /// `POST /update/{room}` ([`Hub::update`]).
    pub fn update(&mut self, now: Millis, from: &Domain, room: &RoomUri, body: &[u8]) -> Response {
        match self {
            HubNode::Honest(h) => h.update(now, from, room, body),
            HubNode::Faulty(f) => f.update(now, from, room, body),
        }
    }

    /// x-hub-transfer takeover ([`Hub::takeover`]).
    pub fn takeover(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
        body: &[u8],
    ) -> Result<Response, TransferError> {
        match self {
            HubNode::Honest(h) => h.takeover(now, from, room, group_info, ratchet_tree, body),
            HubNode::Faulty(f) => f.takeover(now, from, room, group_info, ratchet_tree, body),
        }
    }

    /// The `/notify` bodies to send now ([`Hub::poll_notify`]).
    pub fn poll_notify(&mut self, now: Millis) -> Vec<(RoomUri, Domain, Vec<u8>)> {
        match self {
            HubNode::Honest(h) => h.poll_notify(now),
            HubNode::Faulty(f) => f.poll_notify(now),
        }
    }
}

impl Deref for HubNode {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        match self {
            HubNode::Honest(h) => h,
            HubNode::Faulty(f) => f.hub(),
        }
    }
}

impl DerefMut for HubNode {
    fn deref_mut(&mut self) -> &mut Hub {
        match self {
            HubNode::Honest(h) => h,
            HubNode::Faulty(f) => f.hub_mut(),
        }
    }
}

/// A provider's follower role: the honest [`Follower`], a [`FaultyFollower`] wrapping
/// it, or a [`MaliciousFollower`] wrapping either of those.
pub enum FollowerNode {
    Honest(Follower),
    Faulty(FaultyFollower),
    Malicious(Box<MaliciousFollower<FollowerNode>>),
}

impl FollowerNode {
    /// This role with the planted bugs `bugs` set on the honest follower beneath it (under
    /// a malicious provider's wrapper too), replacing any set before; only follower bugs
    /// act.
    pub fn plant(self, bugs: &Bugs) -> FollowerNode {
        let honest = match self {
            FollowerNode::Honest(f) => f,
            FollowerNode::Faulty(f) => f.into_follower(),
            FollowerNode::Malicious(m) => {
                return FollowerNode::Malicious(Box::new(m.map_inner(|inner| inner.plant(bugs))))
            }
        };
        let bugs = Bug::for_follower(bugs);
        if bugs.is_empty() {
            FollowerNode::Honest(honest)
        } else {
            FollowerNode::Faulty(FaultyFollower::new(honest, bugs))
        }
    }

    /// This role as a malicious provider following `adversary` has it (a
    /// [`MaliciousFollower`] wrapping it); `None` keeps it. A provider follows one
    /// adversary, set once.
    pub fn turn(self, adversary: Option<Adversary>) -> FollowerNode {
        assert!(
            self.adversary().is_none(),
            "a provider follows one adversary, set once (already {:?})",
            self.adversary()
        );
        match adversary {
            None => self,
            Some(a) => FollowerNode::Malicious(Box::new(MaliciousFollower::new(self, a))),
        }
    }

    /// The adversary a malicious provider follows; `None` for an honest or merely
    /// faulty follower.
    pub fn adversary(&self) -> Option<Adversary> {
        match self {
            FollowerNode::Malicious(m) => Some(m.adversary()),
            _ => None,
        }
    }

    /// What a malicious provider did, in order (empty for any other).
    pub fn adversary_actions(&self) -> &[AdversaryAction] {
        match self {
            FollowerNode::Malicious(m) => m.actions(),
            _ => &[],
        }
    }

    fn role(&self) -> &dyn FollowerRole {
        match self {
            FollowerNode::Honest(f) => f,
            FollowerNode::Faulty(f) => f,
            FollowerNode::Malicious(m) => &**m,
        }
    }

    fn role_mut(&mut self) -> &mut dyn FollowerRole {
        match self {
            FollowerNode::Honest(f) => f,
            FollowerNode::Faulty(f) => f,
            FollowerNode::Malicious(m) => &mut **m,
        }
    }
}

impl FollowerRole for FollowerNode {
    fn follower(&self) -> &Follower {
        self.role().follower()
    }

    fn follower_mut(&mut self) -> &mut Follower {
        self.role_mut().follower_mut()
    }

    fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        self.role_mut().notify(room, body)
    }

    fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        self.role_mut().key_material(target, body)
    }

    fn before_relay(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> BeforeRelay {
        self.role_mut()
            .before_relay(now, client, room, endpoint, body)
    }

    fn forked_commit(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        body: &[u8],
    ) -> Vec<Delivery> {
        self.role_mut().forked_commit(now, client, room, body)
    }

    fn hub_answered(&mut self, room: RoomUri, status: u16, body: Vec<u8>) {
        self.role_mut().hub_answered(room, status, body);
    }

    fn checkpoint_role(&self) -> Self {
        match self {
            FollowerNode::Honest(f) => FollowerNode::Honest(f.checkpoint_role()),
            FollowerNode::Faulty(f) => FollowerNode::Faulty(f.checkpoint_role()),
            FollowerNode::Malicious(m) => FollowerNode::Malicious(Box::new(m.checkpoint_role())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Enforcement, EnforcementConfig};
    use crate::mls::config::Identity;
    use crate::mls::SeededProvider;
    use crate::wire::{encode, FanoutBody, FanoutMessage, MlsMessageBytes};

    fn follower() -> (FollowerNode, ClientUri) {
        let d = Domain::new("b.example").unwrap();
        let f = Follower::new(d.clone(), SeededProvider::for_node(1, "follower:b"));
        (
            FollowerNode::Honest(f),
            UserUri::new(&d, "bob").unwrap().client("1").unwrap(),
        )
    }

    /// A FanoutMessage of `room` (a SelfRemove proposal), encoded.
    fn one_message(room: &RoomUri) -> Vec<u8> {
        let p = SeededProvider::for_node(4, "a");
        let c: ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let id = Identity::for_client(&p, &c).unwrap();
        let hub = Identity::for_server(&p, &Domain::new("a.example").unwrap()).unwrap();
        let mut m = crate::client::Member::create(
            &p,
            &id,
            room.as_bytes(),
            Default::default(),
            hub.external_sender(),
        )
        .unwrap();
        let msg = m.propose_self_remove(&p, &id).unwrap();
        encode(&FanoutMessage {
            timestamp: 1,
            message: MlsMessageBytes::from_bytes(&msg).unwrap(),
            body: FanoutBody::Proposal {
                more_proposals: vec![],
            },
        })
        .unwrap()
    }

    /// Bugs planted after the provider turned malicious still go to the honest follower
    /// beneath: under reorder-fanout (hold every other batch) with FollowerSkipsDedup, a
    /// retry is processed again and releases the held batch; without the bug it is
    /// dropped as a duplicate and nothing is released.
    #[test]
    fn bugs_are_planted_beneath_a_malicious_follower() {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let m1 = one_message(&room);
        for (bug, released) in [(false, 0), (true, 2)] {
            let (f, bob) = follower();
            let bugs: Bugs = bug.then_some(Bug::FollowerSkipsDedup).into_iter().collect();
            let mut f = f.turn(Some(Adversary::ReorderFanout)).plant(&bugs);
            assert_eq!(f.adversary(), Some(Adversary::ReorderFanout));
            f.follower_mut().subscribe(&room, &bob);
            let (_, d1) = f.notify(&room, &m1);
            assert!(d1.is_empty(), "the first batch is held");
            let (_, d2) = f.notify(&room, &m1);
            assert_eq!(d2.len(), released, "bug planted: {bug}");
        }
    }

    /// Each role wraps its honest node only for bugs of that role, and planting again
    /// replaces the bugs planted before (none: the honest node again).
    #[test]
    fn each_role_is_faulty_only_for_its_own_bugs() {
        let d = Domain::new("a.example").unwrap();
        let hub = || {
            HubNode::Honest(Hub::new(
                d.clone(),
                1,
                EnforcementConfig::new(Enforcement::Full),
            ))
        };
        let (f, _) = follower();
        let only = |b: Bug| -> Bugs { [b].into_iter().collect() };
        let faulty_hub = hub().plant(&only(Bug::HubSkipsMerge));
        assert!(matches!(&faulty_hub, HubNode::Faulty(h) if h.bugs() == &only(Bug::HubSkipsMerge)));
        assert!(matches!(faulty_hub.plant(&Bugs::new()), HubNode::Honest(_)));
        assert!(matches!(
            hub().plant(&only(Bug::FollowerSkipsDedup)),
            HubNode::Honest(_)
        ));
        let f = f.plant(&only(Bug::HubSkipsMerge));
        assert!(matches!(f, FollowerNode::Honest(_)));
        let f = f.plant(&only(Bug::FollowerReversesBatches));
        assert!(
            matches!(&f, FollowerNode::Faulty(x) if x.bugs() == &only(Bug::FollowerReversesBatches))
        );
        let f = f.plant(&only(Bug::FollowerSkipsDedup));
        assert!(
            matches!(&f, FollowerNode::Faulty(x) if x.bugs() == &only(Bug::FollowerSkipsDedup))
        );
        assert_eq!(f.adversary(), None);
        assert!(f.adversary_actions().is_empty());
    }
}
