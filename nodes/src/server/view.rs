//! What a provider's hub role publishes about one room it hosts, read-only: the view the
//! simulator's oracles and the testbed's observer judge by, instead of the hub's own
//! fields ([`crate::hub::room::HubRoom`] is the hub's, and may change shape freely).
//!
//! [`HubRoomView`] holds plain data (sequencing, generation, counts, the committed room
//! state) and borrows the rest from the hub, handing it out as plain data on request
//! ([`HubRoomView::group`], [`HubRoomView::log_from`]) so that a reader pays only for
//! what it reads.

use std::collections::BTreeMap;

use openmls::component::ComponentId;

use crate::hub::room::{HubRoom, LogEntry};
use crate::hub::{Hub, PublicView};
use crate::ids::{ClientUri, Domain, RoomUri};
use crate::room::RoomState;

/// One room as this provider's hub holds it.
#[derive(Clone, Copy)]
pub struct HubRoomView<'a> {
    /// The room (P§3: the room ID is its URI; its authority is the initial hub).
    pub room: &'a RoomUri,
    /// Whether this hub sequences the room now: it accepts and orders its messages
    /// (P§2 "hub"; x-hub-transfer §1: the hub the committed `HubRecord` names, not
    /// fenced or handed off).
    pub sequencing: bool,
    /// The newest hub generation this hub knows for the room: its committed `HubRecord`,
    /// or the fence that stopped it if newer (x-hub-transfer §1, §4).
    pub generation: u64,
    /// The generation the entries of this hub's log are logged under: the newest record's
    /// if it names this hub, else the committed record's (x-hub-transfer §1).
    pub log_generation: u64,
    /// The committed room state of the current epoch, from the GroupContext (P§4.3.1;
    /// participant list P§7.5, roles RP§3).
    pub committed: &'a RoomState,
    /// How many entries the hub's log holds (P§5.5: messages the hub fans out, in order).
    pub log_len: usize,
    /// How many accepted proposals wait for a commit (P§7.1, RFC 9420 §12.1).
    pub pending: usize,
    view: Option<&'a PublicView>,
    log: &'a [LogEntry],
}

/// The hub's public view of the room's MLS group (RFC 9420 §8.1 `GroupContext`, §7.8 the
/// ratchet tree's leaves), kept when the hub enforces the room's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubGroupView {
    /// The group's epoch (RFC 9420 §8.1 `GroupContext.epoch`).
    pub epoch: u64,
    /// The serialized `GroupContext` (RFC 9420 §8.1).
    pub group_context: Vec<u8>,
    /// The member clients the leaves' credentials name (P§4.2: one leaf per client), in
    /// leaf order.
    pub members: Vec<ClientUri>,
    /// How many member leaves the tree has, named or not (RFC 9420 §7.8).
    pub leaves: usize,
}

/// One entry of the hub's log: a `FanoutMessage` the hub sends to the room's providers
/// with `POST /notify` (P§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedFanout<'a> {
    /// The encoded `FanoutMessage` (P§5.5).
    pub fanout: &'a [u8],
    /// Its place in the hub's order (the log continues across a handoff,
    /// x-hub-transfer §3).
    pub seq: u64,
    /// The MLS epoch it was accepted in (RFC 9420 §8.1).
    pub epoch: u64,
}

impl<'a> HubRoomView<'a> {
    /// The view of `r`, hosted by `hub` of provider `me`.
    pub(crate) fn of(hub: &'a Hub, me: &Domain, r: &'a HubRoom) -> Self {
        let room = &r.room;
        let newest = hub.hub_record(room);
        let generation = newest
            .as_ref()
            .map_or(r.record.generation, |rec| rec.generation);
        let log_generation = match newest {
            Some(rec) if rec.hub == *me => rec.generation,
            _ => r.record.generation,
        };
        HubRoomView {
            room,
            sequencing: hub.sequencing(room),
            generation,
            log_generation,
            committed: &r.committed,
            log_len: r.log.len(),
            pending: r.pending.len(),
            view: r.view.as_ref(),
            log: &r.log,
        }
    }

    /// The hub's view of the MLS group; `None` under enforcement `off` or once the view
    /// diverged from what was accepted.
    pub fn group(&self) -> Option<HubGroupView> {
        self.view.map(|v| {
            let leaves = v.members();
            HubGroupView {
                epoch: v.epoch(),
                group_context: v.group_context_bytes(),
                leaves: leaves.len(),
                members: leaves.into_iter().filter_map(|(_, c)| c).collect(),
            }
        })
    }

    /// The GroupContext's `app_data_dictionary` as the hub's view holds it (X§4.7: the
    /// room's components, P§7.5–7.6, RP§3–5); `None` without a view (see
    /// [`HubRoomView::group`]).
    pub fn group_dictionary(&self) -> Option<BTreeMap<ComponentId, Vec<u8>>> {
        self.view.map(PublicView::dictionary)
    }

    /// The hub's log entries from index `from` on (none if `from` is past the end).
    pub fn log_from(&self, from: usize) -> impl Iterator<Item = LoggedFanout<'a>> {
        self.log.iter().skip(from).map(|e| LoggedFanout {
            fanout: &e.fanout,
            seq: e.seq,
            epoch: e.epoch,
        })
    }
}
