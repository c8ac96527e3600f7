//! The follower's planted bugs ([`Bug::FOLLOWER`]) as a wrapper around the honest
//! [`Follower`]: a [`FaultyFollower`] composes the honest follower's steps the way the
//! bug says, and leaves everything else to it.

use crate::endpoint::Endpoint;
use crate::follower::{BeforeRelay, Delivery, Follower, FollowerRole};
use crate::ids::{ClientUri, RoomUri, UserUri};
use crate::io::{status, Millis, ProviderToClient, Response};
use crate::wire::{encode, FanoutBody, FanoutMessage, HandshakeBody};

use super::{Bug, Bugs};

/// The honest follower with follower bugs planted (see [`crate::planted`]).
pub struct FaultyFollower {
    honest: Follower,
    /// Follower bugs only, never empty.
    bugs: Bugs,
}

impl FaultyFollower {
    /// `follower` with `bugs` planted: follower bugs ([`Bug::for_follower`]), at least
    /// one.
    pub fn new(follower: Follower, bugs: Bugs) -> FaultyFollower {
        assert!(
            !bugs.is_empty() && bugs.iter().all(|b| Bug::FOLLOWER.contains(b)),
            "a faulty follower has follower bugs, at least one: {bugs:?}"
        );
        FaultyFollower {
            honest: follower,
            bugs,
        }
    }

    /// The honest follower, without the bugs.
    pub fn into_follower(self) -> Follower {
        self.honest
    }

    /// The follower bugs planted.
    pub fn bugs(&self) -> &Bugs {
        &self.bugs
    }

    fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }
}

impl FollowerRole for FaultyFollower {
    fn follower(&self) -> &Follower {
        &self.honest
    }

    fn follower_mut(&mut self) -> &mut Follower {
        &mut self.honest
    }

    /// [`Follower::notify`], but under [`Bug::FollowerSkipsDedup`] a retry is processed
    /// again (still remembered), and under [`Bug::FollowerReversesBatches`] the batch is
    /// processed last message first.
    fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        let (notify, hash) = match Follower::read_notify(body) {
            Ok(n) => n,
            Err(refused) => return (refused, Vec::new()),
        };
        if !self.honest.first_copy(hash) && !self.has(Bug::FollowerSkipsDedup) {
            self.honest.note_duplicate(room, &hash);
            return (Response::empty(status::CREATED), Vec::new());
        }
        let mut messages = notify.messages;
        if self.has(Bug::FollowerReversesBatches) {
            messages.reverse();
        }
        let deliveries = self.honest.deliver(room, &hash, messages);
        (Response::empty(status::CREATED), deliveries)
    }

    fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        self.honest.key_material(target, body)
    }

    /// Under [`Bug::FollowerEchoesLocalCommits`], a local client's commit (`/update`) is
    /// delivered to the room's other local clients before it is relayed to the hub.
    fn before_relay(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> BeforeRelay {
        let mut before = BeforeRelay::default();
        if self.has(Bug::FollowerEchoesLocalCommits) && matches!(endpoint, Endpoint::Update(_)) {
            before.deliveries = echo_local_commit(&self.honest, now, client, room, body);
        }
        before
    }

    fn forked_commit(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        body: &[u8],
    ) -> Vec<Delivery> {
        self.honest.forked_commit(now, client, room, body)
    }

    fn hub_answered(&mut self, room: RoomUri, status: u16, body: Vec<u8>) {
        self.honest.hub_answered(room, status, body);
    }

    fn checkpoint_role(&self) -> Self {
        FaultyFollower {
            honest: self.honest.checkpoint(),
            bugs: self.bugs.clone(),
        }
    }
}

/// A local client's commit (`body`, an `/update` request) as the fan-out of a commit the
/// hub accepted, delivered to the room's other local clients — before, and whether or
/// not, the hub sees it. What [`Bug::FollowerEchoesLocalCommits`] does by mistake and a
/// malicious provider's equivocation ([`crate::adversary::Adversary::Equivocate`]) on
/// purpose. Nothing for a body that is not a commit.
pub fn echo_local_commit(
    follower: &Follower,
    now: Millis,
    client: &ClientUri,
    room: &RoomUri,
    body: &[u8],
) -> Vec<Delivery> {
    let Ok(req) = crate::room::hub_only::update_request(body) else {
        return Vec::new();
    };
    if !matches!(req.bundle.body, HandshakeBody::Commit { .. }) {
        return Vec::new();
    }
    let fanout = FanoutMessage {
        timestamp: now,
        message: req.bundle.proposal_or_commit.clone(),
        body: FanoutBody::Commit {
            external_proposals: Vec::new(),
        },
    };
    let Ok(bytes) = encode(&fanout) else {
        return Vec::new();
    };
    follower
        .subscribers(room)
        .into_iter()
        .filter(|c| c != client)
        .map(|c| {
            (
                c,
                ProviderToClient::Deliver {
                    room: room.clone(),
                    fanout: bytes.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Domain;
    use crate::mls::config::Identity;
    use crate::mls::SeededProvider;
    use crate::wire::MlsMessageBytes;

    fn follower() -> (Follower, ClientUri) {
        let d = Domain::new("b.example").unwrap();
        let f = Follower::new(d.clone(), SeededProvider::for_node(1, "follower:b"));
        (f, UserUri::new(&d, "bob").unwrap().client("1").unwrap())
    }

    /// `follower` with `bug` planted, or honest.
    fn role(bug: Option<Bug>) -> (Box<dyn FollowerRole>, ClientUri) {
        let (f, bob) = follower();
        match bug {
            Some(b) => (
                Box::new(FaultyFollower::new(f, [b].into_iter().collect())),
                bob,
            ),
            None => (Box::new(f), bob),
        }
    }

    /// Two distinct FanoutMessages of one room, encoded, for the planted-bug tests.
    fn two_messages(room: &RoomUri) -> (Vec<u8>, Vec<u8>) {
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
        let mut one = |ts| {
            let msg = m.propose_self_remove(&p, &id).unwrap();
            encode(&FanoutMessage {
                timestamp: ts,
                message: MlsMessageBytes::from_bytes(&msg).unwrap(),
                body: FanoutBody::Proposal {
                    more_proposals: vec![],
                },
            })
            .unwrap()
        };
        (one(1), one(2))
    }

    fn delivered(d: &[Delivery]) -> Vec<Vec<u8>> {
        d.iter()
            .filter_map(|(_, m)| match m {
                ProviderToClient::Deliver { fanout, .. } => Some(fanout.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn planted_bug_follower_reverses_batches() {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let (m1, m2) = two_messages(&room);
        let body = [m1.clone(), m2.clone()].concat();
        for (bug, want) in [(false, vec![m1.clone(), m2.clone()]), (true, vec![m2, m1])] {
            let (mut f, bob) = role(bug.then_some(Bug::FollowerReversesBatches));
            f.follower_mut().subscribe(&room, &bob);
            let (_, d) = f.notify(&room, &body);
            assert_eq!(delivered(&d), want, "bug planted: {bug}");
        }
    }

    #[test]
    fn planted_bug_follower_skips_dedup() {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let (m1, _) = two_messages(&room);
        for (bug, copies) in [(false, 1), (true, 2)] {
            let (mut f, bob) = role(bug.then_some(Bug::FollowerSkipsDedup));
            f.follower_mut().subscribe(&room, &bob);
            let (_, d1) = f.notify(&room, &m1);
            let (_, d2) = f.notify(&room, &m1);
            assert_eq!(d1.len() + d2.len(), copies, "bug planted: {bug}");
        }
    }
}
