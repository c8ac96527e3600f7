//! The hub's planted bugs ([`Bug::HUB`]) as a wrapper around the honest [`Hub`]: a
//! [`FaultyHub`] drives the honest hub with its own [`HubSteps`] — the seam of
//! `nodes/src/hub/core/steps.rs` — where a bug changes a step, and leaves everything
//! else to it.

use crate::hub::core::{internal, Entry, HubSteps, ProtocolSteps};
use crate::hub::public_view::{CheckedCommit, PublicView, ViewError};
use crate::hub::room::LogEntry;
use crate::hub::Hub;
use crate::hub::Rejection;
use crate::ids::{Domain, RoomUri};
use crate::io::{Millis, Response};
use crate::transfer::TransferError;
use crate::wire::{FanoutBody, FanoutMessage, MlsMessageBytes, WelcomeBytes, WireError};

use super::{Bug, Bugs};

/// The honest hub with hub bugs planted (see [`crate::planted`]).
pub struct FaultyHub {
    honest: Hub,
    faults: HubFaults,
}

/// The steps of a hub with `bugs` planted: the protocol's, except where a bug acts.
struct HubFaults {
    /// Hub bugs only, never empty.
    bugs: Bugs,
}

impl FaultyHub {
    /// `hub` with `bugs` planted: hub bugs ([`Bug::for_hub`]), at least one.
    pub fn new(hub: Hub, bugs: Bugs) -> FaultyHub {
        assert!(
            !bugs.is_empty() && bugs.iter().all(|b| Bug::HUB.contains(b)),
            "a faulty hub has hub bugs, at least one: {bugs:?}"
        );
        FaultyHub {
            honest: hub,
            faults: HubFaults { bugs },
        }
    }

    /// The honest hub beneath (its rooms, logs and events).
    pub fn hub(&self) -> &Hub {
        &self.honest
    }

    /// The honest hub beneath, to change its state.
    pub fn hub_mut(&mut self) -> &mut Hub {
        &mut self.honest
    }

    /// The honest hub, without the bugs.
    pub fn into_hub(self) -> Hub {
        self.honest
    }

    /// The hub bugs planted.
    pub fn bugs(&self) -> &Bugs {
        &self.faults.bugs
    }

    /// An independent deep copy (see [`crate::server::Server::checkpoint`]).
    pub fn checkpoint(&self) -> Result<FaultyHub, ViewError> {
        Ok(FaultyHub {
            honest: self.honest.checkpoint()?,
            faults: HubFaults {
                bugs: self.faults.bugs.clone(),
            },
        })
    }

    /// [`Hub::update`], with the bugs' steps.
    pub fn update(&mut self, now: Millis, from: &Domain, room: &RoomUri, body: &[u8]) -> Response {
        self.honest.update_with(&self.faults, now, from, room, body)
    }

    /// [`Hub::takeover`], with the bugs' steps.
    pub fn takeover(
        &mut self,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        group_info: &[u8],
        ratchet_tree: &[u8],
        body: &[u8],
    ) -> Result<Response, TransferError> {
        self.honest.takeover_with(
            &self.faults,
            now,
            from,
            room,
            group_info,
            ratchet_tree,
            body,
        )
    }

    /// [`Hub::poll_notify`], with the bugs' steps.
    pub fn poll_notify(&mut self, now: Millis) -> Vec<(RoomUri, Domain, Vec<u8>)> {
        self.honest.poll_notify_with(&self.faults, now)
    }
}

impl HubFaults {
    fn has(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }
}

impl HubSteps for HubFaults {
    /// [`Bug::HubSequencesEveryCommit`]: the commit is accepted and fanned out to the
    /// providers with members, at the room's epoch, but the view keeps the first commit.
    fn commit_for_sequenced_epoch(
        &self,
        hub: &mut Hub,
        now: Millis,
        from: &Domain,
        room: &RoomUri,
        commit: &MlsMessageBytes,
    ) -> Result<Option<Millis>, Rejection> {
        if !self.has(Bug::HubSequencesEveryCommit) {
            return Ok(None);
        }
        let r = hub.room(room).expect("checked by caller");
        let recipients = r.member_domains();
        let entry = Hub::encode_entry(
            &FanoutMessage {
                timestamp: hub.next_timestamp(now),
                message: commit.clone(),
                body: FanoutBody::Commit {
                    external_proposals: Vec::new(),
                },
            },
            "commit",
            r.epoch,
        )
        .map_err(|e| internal(format!("commit fan-out: {e}")))?;
        let ts = hub.timestamp(now);
        hub.append(room, entry, recipients, from);
        Ok(Some(ts))
    }

    /// [`Bug::HubSkipsMerge`]: the commit is accepted and fanned out, never merged.
    fn merge(&self, view: &mut PublicView, commit: CheckedCommit) -> Result<bool, ViewError> {
        if self.has(Bug::HubSkipsMerge) {
            return Ok(false);
        }
        ProtocolSteps.merge(view, commit)
    }

    /// [`Bug::HubWelcomeUnencodable`]: the Welcome's entry fails to encode.
    fn welcome_entry(
        &self,
        ts: Millis,
        welcome: &WelcomeBytes,
        tree: &[u8],
        epoch: u64,
    ) -> Result<Entry, WireError> {
        if self.has(Bug::HubWelcomeUnencodable) {
            return Err(WireError::Encode {
                structure: "FanoutMessage",
                reason: format!("planted bug {}", Bug::HubWelcomeUnencodable.id()),
            });
        }
        ProtocolSteps.welcome_entry(ts, welcome, tree, epoch)
    }

    /// [`Bug::HubDropsMessageFanout`]: remote followers never get application messages
    /// (the log entry still names them as recipients).
    fn carries(&self, own: &Domain, to: &Domain, entry: &LogEntry) -> bool {
        !(self.has(Bug::HubDropsMessageFanout) && entry.kind == "application" && to != own)
    }
}
