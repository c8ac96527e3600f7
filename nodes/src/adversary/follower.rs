//! A malicious provider's follower role: [`MaliciousFollower`] wraps the follower it
//! would otherwise be (honest, or with planted bugs) and deviates where its adversary
//! says — the last mile of `/notify` (drop-fanout, reorder-fanout, replay-notify), the
//! `/keyMaterial` answers (ghost-device, foreign-key-package), the commits of its own
//! clients (replay-notify's stale commit, equivocate's forked commit). Every choice is the
//! one the module documentation ([`crate::adversary`], "Choices") describes.

use std::collections::BTreeMap;

use crate::endpoint::Endpoint;
use crate::follower::{BeforeRelay, Delivery, Follower, FollowerRole};
use crate::ids::{ClientUri, RoomUri, UserUri};
use crate::io::{Millis, Response};
use crate::planted::echo_local_commit;
use crate::wire::{ClientKeyMaterial, HandshakeBody, IdentifierUri};

use super::{ghost_devices, Adversary, AdversaryAction};

/// The follower role of a malicious provider (see [`crate::adversary`]), wrapping `R`,
/// the follower role it would have if it were not malicious.
pub struct MaliciousFollower<R> {
    /// The follower this provider would be if it were not malicious.
    inner: R,
    adversary: Adversary,
    /// reorder-fanout: non-empty batches seen so far.
    batches: u64,
    /// reorder-fanout: the held batch.
    held: Vec<Delivery>,
    /// replay-notify: the previous batch.
    previous: Vec<Delivery>,
    /// replay-notify: the last commit (`/update` body) of a local client, per room.
    commits: BTreeMap<RoomUri, Vec<u8>>,
    actions: Vec<AdversaryAction>,
}

impl<R: FollowerRole> MaliciousFollower<R> {
    /// `role` as the follower role of a provider following `adversary`.
    pub fn new(role: R, adversary: Adversary) -> Self {
        MaliciousFollower {
            inner: role,
            adversary,
            batches: 0,
            held: Vec::new(),
            previous: Vec::new(),
            commits: BTreeMap::new(),
            actions: Vec::new(),
        }
    }

    /// The adversary this provider follows.
    pub fn adversary(&self) -> Adversary {
        self.adversary
    }

    /// What this provider did as an adversary, in order.
    pub fn actions(&self) -> &[AdversaryAction] {
        &self.actions
    }

    /// The same malicious provider over `change(inner)`: the follower role beneath it
    /// changed (e.g. planted bugs set on it), what it did as an adversary kept.
    pub fn map_inner(self, change: impl FnOnce(R) -> R) -> Self {
        MaliciousFollower {
            inner: change(self.inner),
            ..self
        }
    }

    /// The deliveries of one `/notify` batch as this provider hands them out.
    fn last_mile(&mut self, room: &RoomUri, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        match self.adversary {
            Adversary::DropFanout => {
                if !deliveries.is_empty() {
                    self.actions.push(AdversaryAction::Dropped {
                        room: room.clone(),
                        deliveries: deliveries.len(),
                    });
                }
                Vec::new()
            }
            Adversary::ReorderFanout if !deliveries.is_empty() => {
                let mut batch = deliveries;
                batch.reverse();
                self.batches += 1;
                if self.batches % 2 == 1 {
                    self.actions.push(AdversaryAction::Held {
                        room: room.clone(),
                        deliveries: batch.len(),
                    });
                    self.held.extend(batch);
                    Vec::new()
                } else {
                    batch.append(&mut self.held);
                    self.actions.push(AdversaryAction::Released {
                        room: room.clone(),
                        deliveries: batch.len(),
                    });
                    batch
                }
            }
            Adversary::ReplayNotify if !deliveries.is_empty() => {
                let mut out = deliveries.clone();
                let old = std::mem::replace(&mut self.previous, deliveries);
                if !old.is_empty() {
                    self.actions.push(AdversaryAction::Replayed {
                        room: room.clone(),
                        deliveries: old.len(),
                    });
                    out.extend(old);
                }
                out
            }
            _ => deliveries,
        }
    }

    /// replay-notify: the last commit a local client made in `room`, to re-submit once
    /// before the client's next request there (`body`) unless that request is the same
    /// commit; then `body` is remembered if it is a commit.
    fn stale_commit(
        &mut self,
        room: &RoomUri,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> Option<Vec<u8>> {
        let mut resubmit = None;
        if let Some(stale) = self.commits.remove(room) {
            if stale.as_slice() != body {
                self.actions
                    .push(AdversaryAction::StaleCommitResubmitted { room: room.clone() });
                resubmit = Some(stale);
            } else {
                self.commits.insert(room.clone(), stale);
            }
        }
        let is_commit = matches!(endpoint, Endpoint::Update(_))
            && crate::room::hub_only::update_request(body)
                .is_ok_and(|r| matches!(r.bundle.body, HandshakeBody::Commit { .. }));
        if is_commit {
            self.commits.insert(room.clone(), body.to_vec());
        }
        resubmit
    }
}

/// foreign-key-package: the first client (URI order) of a user other than `target` that
/// still has a KeyPackage.
fn foreign_source(follower: &Follower, target: &UserUri) -> Option<ClientUri> {
    follower
        .published()
        .find(|(c, left)| &c.user() != target && *left > 0)
        .map(|(c, _)| c.clone())
}

impl<R: FollowerRole> FollowerRole for MaliciousFollower<R> {
    fn follower(&self) -> &Follower {
        self.inner.follower()
    }

    fn follower_mut(&mut self) -> &mut Follower {
        self.inner.follower_mut()
    }

    /// The wrapped follower's deliveries, dropped, reordered or replayed
    /// (`last_mile`); the hub still gets its 201.
    fn notify(&mut self, room: &RoomUri, body: &[u8]) -> (Response, Vec<Delivery>) {
        let (response, deliveries) = self.inner.notify(room, body);
        (response, self.last_mile(room, deliveries))
    }

    /// ghost-device hides the provider's ghosts from other users; foreign-key-package
    /// hands out another local user's KeyPackages under the target's client URIs (the
    /// Welcome then goes to that other client). Every other adversary answers honestly.
    fn key_material(&mut self, target: &UserUri, body: &[u8]) -> Response {
        let ghost = self.adversary == Adversary::GhostDevice;
        let foreign = self.adversary == Adversary::ForeignKeyPackage;
        if !ghost && !foreign {
            return self.inner.key_material(target, body);
        }
        let f = self.inner.follower_mut();
        let req = match f.read_key_material_request(target, body) {
            Ok(r) => r,
            Err(refused) => return refused,
        };
        let clients = f.clients_of(target).map(|mut mine| {
            if ghost && req.tbs.requesting_user.as_bytes() != target.as_bytes() {
                let ghosts = ghost_devices(&mine);
                mine.retain(|c| !ghosts.contains(c));
            }
            mine.into_iter()
                .map(|c| {
                    let source = if foreign {
                        foreign_source(f, target).unwrap_or_else(|| c.clone())
                    } else {
                        c.clone()
                    };
                    ClientKeyMaterial {
                        client_uri: IdentifierUri::from_bytes(c.as_bytes()),
                        material: f.hand_out(&source),
                    }
                })
                .collect()
        });
        Follower::key_material_response(target, clients)
    }

    /// replay-notify: the client's previous commit in the room goes to the hub first.
    fn before_relay(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        endpoint: &Endpoint,
        body: &[u8],
    ) -> BeforeRelay {
        let mut before = self.inner.before_relay(now, client, room, endpoint, body);
        if self.adversary == Adversary::ReplayNotify {
            if let Some(stale) = self.stale_commit(room, endpoint, body) {
                before
                    .to_hub
                    .insert(0, (Endpoint::Update(room.clone()), stale));
            }
        }
        before
    }

    /// equivocate: the forked commit goes to the room's other local clients as a fan-out
    /// commit, never to the hub.
    fn forked_commit(
        &mut self,
        now: Millis,
        client: &ClientUri,
        room: &RoomUri,
        body: &[u8],
    ) -> Vec<Delivery> {
        if self.adversary != Adversary::Equivocate {
            return self.inner.forked_commit(now, client, room, body);
        }
        // Like any request of the device in the room, it keeps the device subscribed.
        self.follower_mut().subscribe(room, client);
        let to: Vec<ClientUri> = self
            .follower()
            .subscribers(room)
            .into_iter()
            .filter(|c| c != client)
            .collect();
        let deliveries = echo_local_commit(self.follower(), now, client, room, body);
        self.actions.push(AdversaryAction::ForkedCommitShown {
            room: room.clone(),
            to,
        });
        deliveries
    }

    /// replay-notify: the hub's answer to a stale commit (the only request this role
    /// sends of its own).
    fn hub_answered(&mut self, room: RoomUri, status: u16, body: Vec<u8>) {
        self.actions
            .push(AdversaryAction::StaleCommitAnswered { room, status, body });
    }

    fn checkpoint_role(&self) -> Self {
        MaliciousFollower {
            inner: self.inner.checkpoint_role(),
            adversary: self.adversary,
            batches: self.batches,
            held: self.held.clone(),
            previous: self.previous.clone(),
            commits: self.commits.clone(),
            actions: self.actions.clone(),
        }
    }
}
