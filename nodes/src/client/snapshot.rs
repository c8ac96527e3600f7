//! A client's state outside MLS as one serde value ([`ClientSnapshot`]), and the client
//! rebuilt from it over the storage that holds its MLS groups ([`Client::restore`]).
//!
//! What a [`Client`] holds splits in two:
//!
//! * its MLS state (every group, its pending commit and proposals, the epoch secrets, the
//!   KeyPackages' private keys): openmls writes it into the client's storage as it goes
//!   (RFC 9420 §8 key schedule state, kept by the `StorageProvider`), and
//!   `MlsGroup::load` reads a group back from there. A snapshot holds only each room's
//!   group id.
//! * everything else (this module's snapshot): the client URI, its signature key and
//!   credential (P§1.3: the credential names the client URI), the position of its seeded
//!   random stream (`mls::provider`: the next random byte it draws), per room the op
//!   queue, the op in flight with its request, stage, echo and timers, the retry and
//!   catch-up waits, the seen-ciphertext window, the next steps of a leave and the
//!   x-hub-only-room-state signals, then the next `corr`, the events not taken yet, and
//!   the variants (leave order, room-state mode).
//!
//! How the client deviates from the protocol, if it does (its conduct: planted bugs, a
//! malicious provider's behaviour, `super::conduct`), is not in a snapshot: it is the
//! node's configuration, like a server's roles (`crate::server::snapshot`). A restored
//! client is honest until whoever restores it sets its conduct again (`set_bugs`,
//! `set_adversary`). A snapshot is taken only between inputs, when a conduct holds
//! nothing but its configuration (asserted).
//!
//! A snapshot and the storage it was taken beside are one state: restoring a snapshot
//! over the storage as it was at that moment gives a client that answers every later
//! input with the same bytes as the original (the unit test below checks it byte for
//! byte). The testbed writes both in one SQLite transaction (`sim/src/testbed/mls_store.rs`).

use std::collections::BTreeMap;

use openmls::prelude::{CredentialWithKey, GroupId};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::conduct::Honest;
use super::core::{Client, ClientEvent, ClientRoom};
use super::leave::LeaveOrder;
use super::member::Member;
use crate::ids::{ClientUri, RoomUri};
use crate::mls::config::Identity;
use crate::mls::{MlsStorage, SeededProvider, StreamPosition};
use crate::room::hub_only::RoomStateMode;

/// A room of a snapshot: the client's room state and the id of its MLS group, if it is a
/// member (the group itself is in the storage).
#[derive(Serialize, Deserialize)]
struct RoomSnapshot {
    room: ClientRoom,
    group_id: Option<Vec<u8>>,
}

/// A client's state outside MLS (see the module doc). Taken with [`Client::snapshot`],
/// turned back into a client with [`Client::restore`].
#[derive(Serialize, Deserialize)]
pub struct ClientSnapshot {
    uri: ClientUri,
    rng: StreamPosition,
    signer: SignatureKeyPair,
    credential_with_key: CredentialWithKey,
    rooms: BTreeMap<RoomUri, RoomSnapshot>,
    next_corr: u64,
    #[serde(with = "events")]
    events: Vec<ClientEvent>,
    leave_order: LeaveOrder,
    room_state: RoomStateMode,
    answering: Option<String>,
}

impl ClientSnapshot {
    /// The client this is a snapshot of.
    pub fn uri(&self) -> &ClientUri {
        &self.uri
    }

    /// The rooms the client knows, with the id of its MLS group in each room it is a
    /// member of.
    pub fn groups(&self) -> impl Iterator<Item = (&RoomUri, Option<&[u8]>)> {
        self.rooms
            .iter()
            .map(|(room, r)| (room, r.group_id.as_deref()))
    }
}

impl std::fmt::Debug for ClientSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSnapshot")
            .field("uri", &self.uri)
            .field("rooms", &self.rooms.keys().collect::<Vec<_>>())
            .field("next_corr", &self.next_corr)
            .finish_non_exhaustive()
    }
}

/// Why a snapshot could not be turned back into a client.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "room {room}: the snapshot names MLS group {group_id} but the storage holds no \
         such group (the storage is not the one the snapshot was taken beside)"
    )]
    MissingGroup { room: RoomUri, group_id: String },
    #[error("room {room}: MLS group {group_id} could not be read from the storage: {reason}")]
    Storage {
        room: RoomUri,
        group_id: String,
        reason: String,
    },
    #[error(
        "room {room}: MLS group {group_id} in the storage is not {client}'s (its own leaf \
         has another credential or signature key)"
    )]
    NotOurs {
        room: RoomUri,
        group_id: String,
        client: ClientUri,
    },
    #[error(
        "the snapshot of {client} is damaged: its random stream's position is not on the \
         stream its seed starts"
    )]
    OtherStream { client: ClientUri },
    #[error("the snapshot of {client} is damaged: its signature key is not its credential's")]
    KeyMismatch { client: ClientUri },
}

impl<S: MlsStorage> Client<S> {
    /// This client's state outside MLS (see the module doc); its MLS state is what its
    /// storage holds now.
    pub fn snapshot(&self) -> ClientSnapshot {
        assert!(
            self.conduct.at_rest(),
            "a client is snapshotted between inputs, when its conduct holds no message"
        );
        let rooms = self
            .rooms
            .iter()
            .map(|(uri, r)| {
                let room = ClientRoom {
                    member: None,
                    queue: r.queue.clone(),
                    in_flight: r.in_flight.clone(),
                    wait_epoch: r.wait_epoch,
                    not_before: r.not_before,
                    joined_epoch: r.joined_epoch,
                    seen: r.seen.clone(),
                    seen_set: r.seen_set.clone(),
                    after_success: r.after_success.clone(),
                    signalled: r.signalled.clone(),
                    pending_signals: r.pending_signals.clone(),
                };
                let group_id = r
                    .member
                    .as_ref()
                    .map(|m| m.group().group_id().as_slice().to_vec());
                (uri.clone(), RoomSnapshot { room, group_id })
            })
            .collect();
        ClientSnapshot {
            uri: self.uri.clone(),
            rng: self.provider.seeded_crypto().stream_position(),
            signer: self.identity.signer.clone(),
            credential_with_key: self.identity.credential_with_key.clone(),
            rooms,
            next_corr: self.next_corr,
            events: self.events.clone(),
            leave_order: self.leave_order,
            room_state: self.room_state,
            answering: self.answering.clone(),
        }
    }

    /// The client `snapshot` was taken of, over `storage`, the storage its MLS state was
    /// in at that moment: each room's group is loaded with `MlsGroup::load`. A group the
    /// storage lacks, cannot read, or whose own leaf is not this client's is an error
    /// naming the room.
    pub fn restore(snapshot: ClientSnapshot, storage: S) -> Result<Client<S>, RestoreError> {
        let ClientSnapshot {
            uri,
            rng,
            signer,
            credential_with_key,
            rooms,
            next_corr,
            events,
            leave_order,
            room_state,
            answering,
        } = snapshot;
        if signer.public() != credential_with_key.signature_key.as_slice() {
            return Err(RestoreError::KeyMismatch { client: uri });
        }
        let provider = SeededProvider::with_storage(rng.seed, storage);
        if !provider.seeded_crypto().set_stream_position(&rng) {
            return Err(RestoreError::OtherStream { client: uri });
        }
        let mut restored = BTreeMap::new();
        for (
            room,
            RoomSnapshot {
                room: mut state,
                group_id,
            },
        ) in rooms
        {
            state.seen_set = state.seen.iter().copied().collect();
            if let Some(id) = group_id {
                state.member = Some(load_member(
                    &provider,
                    &room,
                    &id,
                    &uri,
                    &credential_with_key,
                )?);
            }
            restored.insert(room, state);
        }
        Ok(Client {
            uri,
            provider,
            identity: Identity {
                signer,
                credential_with_key,
            },
            rooms: restored,
            next_corr,
            events,
            conduct: Box::new(Honest),
            leave_order,
            room_state,
            answering,
        })
    }
}

/// The member of `room` whose group `id` is in the provider's storage, checked to be
/// this client's (its own leaf carries the client's credential and key).
fn load_member<S: MlsStorage>(
    provider: &SeededProvider<S>,
    room: &RoomUri,
    id: &[u8],
    client: &ClientUri,
    ours: &CredentialWithKey,
) -> Result<Member, RestoreError> {
    let group_id = hex::encode(id);
    let member = Member::load(provider.storage(), &GroupId::from_slice(id))
        .map_err(|e| RestoreError::Storage {
            room: room.clone(),
            group_id: group_id.clone(),
            reason: format!("{e:?}"),
        })?
        .ok_or_else(|| RestoreError::MissingGroup {
            room: room.clone(),
            group_id: group_id.clone(),
        })?;
    let own = member.group().own_leaf_node().is_some_and(|leaf| {
        leaf.credential() == &ours.credential
            && leaf.signature_key().as_slice() == ours.signature_key.as_slice()
    });
    if !own {
        return Err(RestoreError::NotOurs {
            room: room.clone(),
            group_id,
            client: client.clone(),
        });
    }
    Ok(member)
}

/// The events of a snapshot not taken yet. A [`ClientEvent`] holds `&'static str` names,
/// so it is read from an owned value ([`super::encoding::known_name`] maps each name back).
mod events {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[ClientEvent], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ClientEvent>, D::Error> {
        Vec::<serde_json::Value>::deserialize(d)?
            .into_iter()
            .map(|v| ClientEvent::deserialize(v).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::core::Command;
    use crate::hub::{Enforcement, EnforcementConfig};
    use crate::ids::{Domain, UserUri};
    use crate::io::Request;
    use crate::room::RolePreset;
    use crate::world::MemoryWorld;

    type Delivered = Vec<(ClientUri, RoomUri, Vec<u8>)>;

    fn client(d: &str, user: &str) -> ClientUri {
        UserUri::new(&Domain::new(d).unwrap(), user)
            .unwrap()
            .client("1")
            .unwrap()
    }

    /// The client of `uri` in `w`, replaced by the one restored from its snapshot (after
    /// a round trip through JSON) over a copy of its storage as it is now.
    fn restore_in_place(w: &mut MemoryWorld, uri: &ClientUri) {
        let old = w.clients.remove(uri).unwrap();
        let bytes = serde_json::to_vec(&old.snapshot()).unwrap();
        let snapshot: ClientSnapshot = serde_json::from_slice(&bytes).unwrap();
        let storage = old.provider.storage_snapshot();
        drop(old);
        let restored = Client::restore(snapshot, storage).unwrap();
        assert_eq!(
            serde_json::to_vec(&restored.snapshot()).unwrap(),
            bytes,
            "a restored client's snapshot is the snapshot it came from"
        );
        w.clients.insert(uri.clone(), restored);
    }

    /// Alice creates a room, adds Bob, both send; then (if `restore`) both clients are
    /// restored from snapshots taken with an op in flight and an event not taken; then
    /// messages, a self-update and another add. Returns every request between providers
    /// (the clients' MLS objects inside), every delivery and every client event.
    fn run(restore: bool) -> (Vec<Request>, Delivered, Vec<(ClientUri, ClientEvent)>) {
        let mut w = MemoryWorld::new(11);
        for d in ["a.example", "b.example"] {
            w.add_server(
                &Domain::new(d).unwrap(),
                EnforcementConfig::new(Enforcement::Full),
            );
        }
        let (alice, bob, cathy) = (
            client("a.example", "alice"),
            client("b.example", "bob"),
            client("b.example", "cathy"),
        );
        for c in [&alice, &bob, &cathy] {
            w.add_client(c, 4);
        }
        w.run();
        w.record_requests = true;
        w.record_deliveries = true;
        let room = w
            .create_room(&alice, "lobby", RolePreset::Cooperative)
            .unwrap();
        let add = |user: &ClientUri| Command::AddUser {
            room: room.clone(),
            user: user.user(),
            role: None,
        };
        let send = |text: &str| Command::Send {
            room: room.clone(),
            text: text.into(),
        };
        w.command(&alice, add(&bob)).unwrap();
        w.command(&alice, send("hello bob")).unwrap();
        w.command(&bob, send("hello alice")).unwrap();
        // An op in flight (its request is queued, not yet taken by the provider) and its
        // MessageSent event not taken yet.
        w.queue_command(&alice, send("in flight")).unwrap();
        if restore {
            let snap = w.client(&alice).snapshot();
            assert!(snap.rooms[&room].room.in_flight.is_some());
            assert!(!snap.events.is_empty() && snap.next_corr > 1);
            restore_in_place(&mut w, &alice);
            restore_in_place(&mut w, &bob);
        }
        w.run();
        // Every fan-out Bob got so far comes again: he drops the messages he saw
        // (the seen window is part of the snapshot).
        let again: Vec<_> = w
            .delivered
            .iter()
            .filter(|(c, _, _)| *c == bob)
            .map(|(_, r, fanout)| (r.clone(), fanout.clone()))
            .collect();
        for (room, fanout) in again {
            w.to_client(&bob, crate::io::ProviderToClient::Deliver { room, fanout });
        }
        w.run();
        w.command(&bob, Command::SelfUpdate { room: room.clone() })
            .unwrap();
        w.command(&alice, send("after the update")).unwrap();
        w.command(&bob, add(&cathy)).unwrap();
        w.command(&cathy, send("hello both")).unwrap();
        w.command(&alice, send("last")).unwrap();
        (w.requests, w.delivered, w.client_events)
    }

    #[test]
    fn a_restored_client_goes_on_with_exactly_the_bytes_of_the_original() {
        let (requests, delivered, events) = run(false);
        let (r_requests, r_delivered, r_events) = run(true);
        // The run got somewhere: Cathy's message reached Alice.
        assert!(events.iter().any(|(_, e)| matches!(
            e,
            ClientEvent::MessageReceived { text, .. } if text == "hello both"
        )));
        assert!(requests.len() > 10, "{}", requests.len());
        let hello = |events: &[(ClientUri, ClientEvent)]| {
            events
                .iter()
                .filter(|(_, e)| {
                    matches!(
                        e,
                        ClientEvent::MessageReceived { text, .. } if text == "hello bob"
                    )
                })
                .count()
        };
        assert_eq!((hello(&events), hello(&r_events)), (1, 1));
        assert_eq!(requests, r_requests);
        assert_eq!(delivered, r_delivered);
        assert_eq!(events, r_events);
    }

    #[test]
    fn a_storage_without_the_rooms_group_is_a_typed_error_naming_the_room() {
        let mut w = MemoryWorld::new(3);
        w.add_server(
            &Domain::new("a.example").unwrap(),
            EnforcementConfig::new(Enforcement::Full),
        );
        let alice = client("a.example", "alice");
        w.add_client(&alice, 2);
        w.run();
        let room = w
            .create_room(&alice, "lobby", RolePreset::Cooperative)
            .unwrap();
        let snapshot = w.client(&alice).snapshot();
        let e = Client::restore(snapshot, openmls_memory_storage::MemoryStorage::default())
            .err()
            .unwrap();
        assert!(
            matches!(&e, RestoreError::MissingGroup { room: r, .. } if *r == room),
            "{e}"
        );
        assert!(e.to_string().contains(room.as_str()), "{e}");
        // A snapshot of an unknown event name is refused, not guessed.
        let bad = r#"[{"OpSucceeded":{"room":"mimi://a.example/r/lobby","op":"fly"}}]"#;
        let mut de = serde_json::Deserializer::from_str(bad);
        let e = events::deserialize(&mut de).err().unwrap();
        assert!(e.to_string().contains("\"fly\""), "{e}");
    }
}
