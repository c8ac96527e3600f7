//! x-hub-only-room-state: the room state kept only at the hub (issue 4 of mimi-sim, the
//! alternative to binding it into the GroupContext as P§7.5 does).
//!
//! Under the default variant, **bound**, every participant-list change is an
//! AppDataUpdate in a commit (P§7.5), so the list is part of the GroupContext and every
//! member at epoch N decodes the same list. Under **hub-only** (this extension) the list
//! lives at the hub; MLS carries none of its changes.
//!
//! # The extension
//!
//! 1. *Creation.* The group is created as today (P§3.1): the creator's GroupContext holds
//!    the room-state components with their creation values. From then on no commit
//!    updates the participant list component: it stays **frozen at creation** and is not
//!    the room's list. The hub takes its initial room state from the creator's GroupInfo
//!    (unchanged) and keeps it from then on.
//! 2. *A list change.* A client that changes the list (add with role, remove, ban, role
//!    change, leave, the leave steps of every leave order) sends the change beside its
//!    commit or proposals, not inside MLS: the body of `POST /update/{roomId}` is
//!
//!    ```text
//!    struct {
//!      UpdateRequest update;                          // P§5.3, unchanged
//!      opaque list_updates<V>;                        // ParticipantListUpdate (P§7.5) each,
//!    } HubOnlyUpdateRequest;                          //   as a vector of opaque<V>
//!    ```
//!
//!    Each `list_updates` entry is the encoding of a `ParticipantListUpdate`, exactly the
//!    value the AppDataUpdate for `participant_list` would carry under bound; they apply
//!    in order after the handshake's proposals.
//! 3. *The hub.* It treats every entry as if it were an AppDataUpdate of the handshake
//!    (same policy checks at enforcement `full`, same rule ids), refuses (at `full`) a
//!    handshake that still carries a `participant_list` AppDataUpdate in MLS, applies the
//!    change to its room state when it accepts the handshake (proposals: the hub state;
//!    commit: the room state of the new epoch), and below `full` applies it unchecked.
//! 4. *The signal.* For every commit it accepts, the hub logs, **immediately before** the
//!    commit, a FanoutMessage of kind `roomState(5)` (see [`crate::wire::fanout`]):
//!
//!    ```text
//!    case roomState: uint64 epoch; opaque room_state<V>;
//!    ```
//!
//!    whose `message` is the accepted commit, `epoch` the epoch the commit starts, and
//!    `room_state` the hub's room state of that epoch ([`encode_room_state`]). It goes in
//!    hub order to every provider the commit or its Welcome goes to.
//! 5. *Followers* deliver it like any FanoutMessage and keep the room's latest one; a
//!    client newly subscribed by a Welcome gets the kept signal first, then the Welcome.
//! 6. *Clients* keep the newest signalled state whose epoch they have reached; a signal
//!    of a later epoch waits until they merge the commit that reaches it. That copy is
//!    the client's room state (what [`crate::client::core::RoomView::state`] shows).
//!
//! The signal is **not authenticated by MLS**: nothing in the GroupContext or the
//! commit binds the list, so a member cannot tell a hub's or follower's altered list
//! from the true one, and a signal lost, late or reordered leaves a member at epoch N
//! with another epoch's list.
//!
//! # Choices
//!
//! * Frozen at creation rather than no room-state components: the hub's creation path,
//!   its policy and role definitions, and the x-hub-transfer hub record (which is still
//!   bound) stay where they are; only the list moves out of MLS. Members ignore the
//!   GroupContext's list after creation.
//! * Out-of-band field in the `/update` body rather than a separate signed request: the
//!   change must be judged together with the handshake (one acceptance, one answer, one
//!   retry), and the body already comes from the client's provider, the same trust a
//!   bound commit's sender check has. It is not signed by the client: the hub trusts the
//!   provider for the pairing of change and handshake.
//! * One signal per accepted commit, also when the list did not change, so every epoch
//!   has exactly one signal and a joiner by external commit learns the list of its own
//!   epoch. No signal for proposals: the pending state is not the room state of an epoch.
//! * The signal is logged before its commit (not after): in hub order a member then
//!   holds the new list when it reaches the new epoch, as under bound; logged after the
//!   commit every member would hold the old list at the start of each epoch.
//! * Below `full` the hub applies a change it cannot apply (an index out of range) as no
//!   change, and still accepts the handshake (it accepts everything there).
//! * The hub does not check that a commit's Adds match added participants beyond what
//!   `full` checks today ([`crate::room::authorize`] on the combined change).
//! * A hub-only committer merges its own commit when the commit comes back in the
//!   fan-out (after its signal), not at the hub's success answer, so it too reaches the
//!   epoch holding its list; an external joiner still reports joining at the answer and
//!   may hold no list until its signal arrives.
//! * List updates stay index-based (P§7.5 `ParticipantListUpdate`). The index refers to
//!   the client's copy, which may be an epoch behind its MLS state when a signal is
//!   late: the hub then refuses an out-of-range index at `full`, but an in-range one
//!   names whoever holds that index in the hub's list. No epoch of the copy is sent.
//! * Hub transfer (x-hub-transfer) under hub-only is not supported: the handoff and the
//!   takeover read the room state from the GroupContext, whose list is frozen.

use std::collections::BTreeMap;

use super::codec::{ComponentError, ComponentId, PARTICIPANT_LIST};
use super::components::ParticipantListUpdate;
use super::state::RoomState;
use crate::wire::codec::{Decode, Reader};
use crate::wire::{encode, Place, UpdateRequest, WireError};

/// At most this many list updates beside one handshake.
pub const MAX_LIST_UPDATES: usize = 64;
/// At most this many bytes per encoded list update.
pub const MAX_LIST_UPDATE_BYTES: usize = 1 << 20;
/// At most this many components in a signalled room state.
pub const MAX_ROOM_STATE_COMPONENTS: usize = 32;
/// At most this many bytes of one component in a signalled room state.
pub const MAX_COMPONENT_BYTES: usize = 4 << 20;

/// The room-state variant (issue 4): where the participant list lives.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum RoomStateMode {
    /// Bound into the GroupContext: list changes are AppDataUpdates (P§7.5).
    #[default]
    Bound,
    /// Kept at the hub and signalled out of band (this module).
    HubOnly,
}

impl RoomStateMode {
    /// The variant's name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            RoomStateMode::Bound => "bound",
            RoomStateMode::HubOnly => "hub-only",
        }
    }

    pub fn is_hub_only(self) -> bool {
        self == RoomStateMode::HubOnly
    }
}

/// What went wrong with a hub-only body or signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubOnlyError {
    #[error("x-hub-only-room-state: {0}")]
    Wire(#[from] WireError),
    #[error("x-hub-only-room-state: {0} list updates (limit {MAX_LIST_UPDATES})")]
    TooManyListUpdates(usize),
    #[error("x-hub-only-room-state: list update {index}: {source}")]
    ListUpdate {
        index: usize,
        source: ComponentError,
    },
    #[error("x-hub-only-room-state: component {0:#06x} twice in the room state")]
    DuplicateComponent(ComponentId),
    #[error("x-hub-only-room-state: room state: {0}")]
    State(ComponentError),
}

const HOU: &str = "HubOnlyUpdateRequest";
const RS: &str = "RoomState";

/// `HubOnlyUpdateRequest` (module doc, §2): an `/update` body with its list change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOnlyUpdate {
    pub request: UpdateRequest,
    pub list_updates: Vec<ParticipantListUpdate>,
}

impl HubOnlyUpdate {
    /// The body bytes.
    pub fn encode(&self) -> Result<Vec<u8>, HubOnlyError> {
        if self.list_updates.len() > MAX_LIST_UPDATES {
            return Err(HubOnlyError::TooManyListUpdates(self.list_updates.len()));
        }
        let mut out = encode(&self.request)?;
        let mut items = Vec::new();
        for u in &self.list_updates {
            let b = u.encode().map_err(|e| WireError::Encode {
                structure: HOU,
                reason: e.to_string(),
            })?;
            write_opaque(&mut items, &b);
        }
        write_opaque(&mut out, &items);
        Ok(out)
    }

    /// Decode an `/update` body: exactly one `HubOnlyUpdateRequest`.
    pub fn decode(body: &[u8]) -> Result<Self, HubOnlyError> {
        let mut r = Reader::new(body);
        let request = UpdateRequest::decode(&mut r)?;
        let at = Place::new(HOU, "list_updates");
        let raw = r.vector(at, |r| r.opaque(at, MAX_LIST_UPDATE_BYTES))?;
        if !r.is_empty() {
            return Err(WireError::TrailingBytes {
                structure: HOU,
                count: r.remaining(),
            }
            .into());
        }
        if raw.len() > MAX_LIST_UPDATES {
            return Err(HubOnlyError::TooManyListUpdates(raw.len()));
        }
        let list_updates = raw
            .iter()
            .enumerate()
            .map(|(index, b)| {
                ParticipantListUpdate::decode(b)
                    .map_err(|source| HubOnlyError::ListUpdate { index, source })
            })
            .collect::<Result<_, _>>()?;
        Ok(HubOnlyUpdate {
            request,
            list_updates,
        })
    }

    /// The list updates as `(component, update bytes)` pairs, as the hub's change
    /// builder takes AppDataUpdates.
    pub fn as_app_data_updates(&self) -> Vec<(ComponentId, Vec<u8>)> {
        self.list_updates
            .iter()
            .filter_map(|u| u.encode().ok().map(|b| (PARTICIPANT_LIST, b)))
            .collect()
    }
}

/// The `UpdateRequest` of an `/update` body of either variant (bound: the whole body;
/// hub-only: its first part).
pub fn update_request(body: &[u8]) -> Result<UpdateRequest, HubOnlyError> {
    match crate::wire::decode_exact::<UpdateRequest>(body) {
        Ok(r) => Ok(r),
        Err(e) => HubOnlyUpdate::decode(body)
            .map(|u| u.request)
            .map_err(|_| HubOnlyError::Wire(e)),
    }
}

/// `opaque x<V>` (RFC 9420 §2.1.2 variable-length header).
fn write_opaque(out: &mut Vec<u8>, b: &[u8]) {
    use tls_codec::Serialize as _;
    let v = tls_codec::VLBytes::new(b.to_vec());
    // Writing to a Vec cannot fail and `b` is far below the 2^30 limit of our bodies.
    let _ = v.tls_serialize(out);
}

/// The signal's `room_state`: the state's components as
/// `struct { uint16 component_id; opaque data<V>; } components<V>` in component order.
pub fn encode_room_state(state: &RoomState) -> Vec<u8> {
    let mut items = Vec::new();
    for (id, data) in state.to_dictionary() {
        items.extend_from_slice(&id.to_be_bytes());
        write_opaque(&mut items, &data);
    }
    let mut out = Vec::new();
    write_opaque(&mut out, &items);
    out
}

/// Decode a signalled room state (untrusted: from the fan-out).
pub fn decode_room_state(bytes: &[u8]) -> Result<RoomState, HubOnlyError> {
    let mut r = Reader::new(bytes);
    let at = Place::new(RS, "components");
    let items = r.vector(at, |r| {
        let id = r.u16(Place::new(RS, "component_id"))?;
        let data = r.opaque(Place::new(RS, "data"), MAX_COMPONENT_BYTES)?;
        Ok((id, data.to_vec()))
    })?;
    if !r.is_empty() {
        return Err(WireError::TrailingBytes {
            structure: RS,
            count: r.remaining(),
        }
        .into());
    }
    if items.len() > MAX_ROOM_STATE_COMPONENTS {
        return Err(WireError::TooManyItems {
            at,
            max: MAX_ROOM_STATE_COMPONENTS,
        }
        .into());
    }
    let mut dict = BTreeMap::new();
    for (id, data) in items {
        if dict.insert(id, data).is_some() {
            return Err(HubOnlyError::DuplicateComponent(id));
        }
    }
    RoomState::from_dictionary(&dict).map_err(HubOnlyError::State)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomUri, UserUri};
    use crate::room::components::{UserRolePair, UserindexRolePair};
    use crate::room::{codec::Opaque, NewRoomOptions, RolePreset};

    fn state() -> RoomState {
        let room: RoomUri = "mimi://a.example/r/x".parse().unwrap();
        let alice: UserUri = "mimi://a.example/u/alice".parse().unwrap();
        RoomState::new_room(
            &room,
            &alice,
            RolePreset::Cooperative,
            NewRoomOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn room_state_round_trips_and_rejects_garbage() {
        let s = state();
        let b = encode_room_state(&s);
        assert_eq!(decode_room_state(&b).unwrap(), s);
        // Truncated, trailing byte, empty.
        assert!(decode_room_state(&b[..b.len() - 1]).is_err());
        let mut t = b.clone();
        t.push(0);
        assert!(matches!(
            decode_room_state(&t),
            Err(HubOnlyError::Wire(WireError::TrailingBytes { .. }))
        ));
        assert!(decode_room_state(&[]).is_err());
        // A component twice.
        let mut items = Vec::new();
        for _ in 0..2 {
            items.extend_from_slice(&PARTICIPANT_LIST.to_be_bytes());
            write_opaque(&mut items, &[0]);
        }
        let mut dup = Vec::new();
        write_opaque(&mut dup, &items);
        assert_eq!(
            decode_room_state(&dup),
            Err(HubOnlyError::DuplicateComponent(PARTICIPANT_LIST))
        );
    }

    #[test]
    fn list_updates_ride_beside_the_update_request() {
        // Any UpdateRequest will do; the wire tests' fixture is private, so take the
        // smallest valid one: a proposal bundle decoded from the hub-only body of a
        // real SelfRemove.
        use crate::mls::config::Identity;
        use crate::mls::SeededProvider;
        use crate::wire::{HandshakeBody, HandshakeBundle, MlsMessageBytes};
        let p = SeededProvider::for_node(9, "a");
        let c: crate::ids::ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let id = Identity::for_client(&p, &c).unwrap();
        let hub = Identity::for_server(&p, &crate::ids::Domain::new("a.example").unwrap()).unwrap();
        let mut m = crate::client::Member::create(
            &p,
            &id,
            b"mimi://a.example/r/x",
            Default::default(),
            hub.external_sender(),
        )
        .unwrap();
        let msg = m.propose_self_remove(&p, &id).unwrap();
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: MlsMessageBytes::from_bytes(&msg).unwrap(),
                body: HandshakeBody::Proposal {
                    more_proposals: vec![],
                },
            },
        };
        let u = HubOnlyUpdate {
            request: request.clone(),
            list_updates: vec![
                ParticipantListUpdate {
                    removed_indices: vec![1],
                    ..Default::default()
                },
                ParticipantListUpdate {
                    changed_role_participants: vec![UserindexRolePair {
                        user_index: 0,
                        role_index: 3,
                    }],
                    added_participants: vec![UserRolePair {
                        user: Opaque(b"mimi://b.example/u/bob".to_vec()),
                        role_index: 2,
                    }],
                    ..Default::default()
                },
            ],
        };
        let body = u.encode().unwrap();
        assert_eq!(HubOnlyUpdate::decode(&body).unwrap(), u);
        assert_eq!(u.as_app_data_updates().len(), 2);
        // The bound body is a prefix: a bound hub refuses the hub-only body (trailing
        // bytes) and a hub-only hub refuses the bound body (list_updates missing).
        let bound = encode(&request).unwrap();
        assert!(body.starts_with(&bound));
        assert!(crate::wire::decode_exact::<UpdateRequest>(&body).is_err());
        assert!(HubOnlyUpdate::decode(&bound).is_err());
        // No list updates: the body is the bound body plus an empty vector.
        let none = HubOnlyUpdate {
            request,
            list_updates: vec![],
        };
        assert_eq!(none.encode().unwrap(), [bound.clone(), vec![0]].concat());
        // A list update that does not decode names its index.
        let mut bad = bound.clone();
        let mut items = Vec::new();
        write_opaque(&mut items, &[0xff]);
        write_opaque(&mut bad, &items);
        assert!(matches!(
            HubOnlyUpdate::decode(&bad),
            Err(HubOnlyError::ListUpdate { index: 0, .. })
        ));
        // Too many list updates.
        let many = HubOnlyUpdate {
            request: none.request.clone(),
            list_updates: vec![ParticipantListUpdate::default(); MAX_LIST_UPDATES + 1],
        };
        assert_eq!(
            many.encode(),
            Err(HubOnlyError::TooManyListUpdates(MAX_LIST_UPDATES + 1))
        );
    }

    #[test]
    fn the_signal_carries_a_commit_and_round_trips() {
        use crate::mls::commit::CommitPlan;
        use crate::mls::config::Identity;
        use crate::mls::SeededProvider;
        use crate::room::RoomComponents;
        use crate::wire::{decode_exact, FanoutBody, FanoutMessage, MlsMessageBytes};
        let p = SeededProvider::for_node(11, "a");
        let c: crate::ids::ClientUri = "mimi://a.example/d/alice/1".parse().unwrap();
        let id = Identity::for_client(&p, &c).unwrap();
        let hub = Identity::for_server(&p, &crate::ids::Domain::new("a.example").unwrap()).unwrap();
        let mut m = crate::client::Member::create(
            &p,
            &id,
            b"mimi://a.example/r/x",
            state().to_dictionary(),
            hub.external_sender(),
        )
        .unwrap();
        let proposal = m.propose_self_remove(&p, &id).unwrap();
        m.discard_pending_proposals(&p).unwrap();
        let plan = CommitPlan {
            force_self_update: true,
            ..Default::default()
        };
        let commit = m.commit(&p, &id, &plan, &RoomComponents).unwrap().commit;
        let signal = |message: &[u8]| FanoutMessage {
            timestamp: 7,
            message: MlsMessageBytes::from_bytes(message).unwrap(),
            body: FanoutBody::RoomState {
                epoch: 1,
                room_state: encode_room_state(&state()),
            },
        };
        let fm = signal(&commit);
        let b = encode(&fm).unwrap();
        let back: FanoutMessage = decode_exact(&b).unwrap();
        assert_eq!(back, fm);
        let FanoutBody::RoomState { room_state, .. } = &back.body else {
            unreachable!()
        };
        assert_eq!(decode_room_state(room_state).unwrap(), state());
        assert!(decode_exact::<FanoutMessage>(&b[..b.len() - 1]).is_err());
        // The kind must agree with the message: a proposal is refused both ways.
        assert!(encode(&signal(&proposal)).is_err());
        let mut wrong = encode(&FanoutMessage {
            body: FanoutBody::Proposal {
                more_proposals: vec![],
            },
            ..signal(&proposal)
        })
        .unwrap();
        wrong[8] = 5;
        wrong.truncate(wrong.len() - 1);
        wrong.extend_from_slice(&[0; 8]);
        wrong.push(0);
        assert!(decode_exact::<FanoutMessage>(&wrong).is_err());
    }
}
