//! The steps of sequencing where a hub that deviates from the protocol on purpose acts
//! differently: the seam a faulty hub ([`crate::planted`]) plugs into, so that the
//! honest hub has no branch on a fault. The honest hub takes [`ProtocolSteps`], the
//! steps the drafts describe; its public entry points ([`Hub::update`],
//! [`Hub::takeover`], [`Hub::poll_notify`]) are the `_with` forms with those steps.

use super::{Entry, Hub, Rejection};
use crate::hub::public_view::{CheckedCommit, PublicView, ViewError};
use crate::hub::room::LogEntry;
use crate::ids::{Domain, RoomUri};
use crate::io::Millis;
use crate::wire::{MlsMessageBytes, WelcomeBytes, WireError};

/// The steps of sequencing that a hub can take differently from the protocol. Every
/// method's default is the protocol's step.
pub(crate) trait HubSteps {
    /// A commit for an epoch this hub already sequenced (a lost race, P§5.3.2): the
    /// protocol refuses it with `wrongEpoch` (phase 1 of `core/commit.rs`), so the
    /// protocol's step here is none (`Ok(None)`). `Some(timestamp)`: the steps sequenced
    /// it after all.
    fn commit_for_sequenced_epoch(
        &self,
        _hub: &mut Hub,
        _now: Millis,
        _from: &Domain,
        _room: &RoomUri,
        _commit: &MlsMessageBytes,
    ) -> Result<Option<Millis>, Rejection> {
        Ok(None)
    }

    /// Merge a commit the hub accepts into its public view (RFC 9420 §12.4), so that the
    /// view is in the new epoch. Returns whether it is: the rules that check the new
    /// epoch (GroupInfo signature, external senders) run only on a view that followed.
    fn merge(&self, view: &mut PublicView, commit: CheckedCommit) -> Result<bool, ViewError> {
        view.merge(commit).map(|()| true)
    }

    /// The fan-out entry of an accepted commit's Welcome, with the new epoch's tree
    /// (P§5.3.2: the hub sends the Welcome on with the ratchet tree).
    fn welcome_entry(
        &self,
        ts: Millis,
        welcome: &WelcomeBytes,
        tree: &[u8],
        epoch: u64,
    ) -> Result<Entry, WireError> {
        Hub::encode_welcome_entry(ts, welcome, tree, epoch)
    }

    /// Whether a `/notify` from hub `own` to provider `to` carries `entry`, one the log
    /// names `to` as a recipient of: always, in the protocol (P§5.5).
    fn carries(&self, _own: &Domain, _to: &Domain, _entry: &LogEntry) -> bool {
        true
    }
}

/// The protocol's steps: the honest hub.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProtocolSteps;

impl HubSteps for ProtocolSteps {}
