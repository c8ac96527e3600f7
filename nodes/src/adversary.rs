//! Adversarial followers: a malicious provider — its follower role and the clients it
//! hosts (a provider controls its users' devices, P§1.2) — misbehaving on purpose, so the
//! simulator can show which misbehaviour hub enforcement `full` stops that `mls` does
//! not, and which no hub can stop.
//!
//! Unlike [`crate::sabotage`] (bugs planted in honest nodes), these are attacks: the
//! simulator sets one on a provider with [`crate::server::Server::with_adversary`] and on
//! every client of that provider with [`crate::client::core::Client::set_adversary`].
//! Every behaviour is deterministic (choices come from seeded state or fixed rules).
//! `None` leaves a node honest.
//!
//! # What the hub (`full`) does with each, as shown by `nodes/tests/adversaries.rs`
//!
//! (Room at hub a.example, honest provider b.example, malicious provider c.example.)
//!
//! | adversary | `off` (evidence it happens) | `full` | rule | why not, when not |
//! |---|---|---|---|---|
//! | drop-fanout | c's clients never join or see messages; hub logs them as sent, c answered 201 | not stopped | — | the hub only sees c's 201; delivery to c's own clients is c's business (last mile, P§5.5). Hurts only c's users. |
//! | reorder-fanout | c's clients get commits out of order: delivery errors, they fall behind the hub | not stopped | — | same: after /notify the hub sees nothing. Hurts only c's users. |
//! | replay-notify | c's clients get old fan-out again (ignored or delivery errors, no state change); the stale /update reaches the hub | the stale commit is answered as a retry (same at `off`); replays are harmless to clients | — (P§5.5 idempotent retry) | re-delivery to own clients is invisible to the hub; clients drop stale epochs and duplicate ciphertexts themselves |
//! | equivocate | c's second client processes a commit the hub never saw: its epoch authenticator differs from every other member's | not stopped | — | the forked commit never reaches the hub; only c's own clients are shown it. Members outside c are unaffected. |
//! | add-non-participant | a non-participant's client becomes a member | rejected | list-membership | |
//! | omit-cached-proposals | c's commit is accepted without the pending proposals: the leave is lost | rejected (`invalidProposal`), the leave stays pending (c keeps its commit duty: liveness, not safety) | cached-proposals | |
//! | omit-list-update | a Ban commit removes the clients but leaves the user listed with its old role: the ban is a kick | not stopped | — | removing all of a user's clients and keeping the user listed is exactly a legitimate Kick (RP§8.1.2); the hub cannot know the user meant Ban |
//! | bad-group-info | the hub stores the previous epoch's GroupInfo | rejected | group-info | |
//! | forge-sending-uri | a message is accepted with another participant's URI as sendingUri | rejected when the named user is at another provider; accepted when the named user is at c | submit-sender | the sender of a PrivateMessage is encrypted; the hub can only check that the named user is c's own participant |
//! | foreign-key-package | Alice adds Carol but Dave's client joins | rejected | list-membership | |
//! | ghost-device | a device of Carol that Carol never added joins the room | not stopped | — | adding one's own client is allowed (canAddOwnClient) and the hub cannot tell the user's action from its provider's |
//! | bad-confirmation-tag | the hub accepts the commit; honest members reject it and stay at the old epoch | not stopped (also at `mls`) | — | a non-member hub has neither the membership key nor the confirmation key (openmls-notes §2.2) |
//!
//! # Choices
//!
//! * Equivocation needs the forked commit to travel from the committing device to its
//!   provider without going to the hub. Both belong to the same party; the sim uses a
//!   provider-internal side channel: a `Relay` of the forked `/update` with the reserved
//!   correlation id [`EQUIVOCATION_CORR`], which a malicious follower hands to its other
//!   local clients as a fan-out commit and never relays.
//! * bad-confirmation-tag flips one byte of the confirmation tag in the serialized
//!   PublicMessage. The membership tag covers the confirmation tag, and openmls 0.9.2 does
//!   not export the membership key (only with `test-utils`), so the membership tag is not
//!   recomputed: members reject at the membership-tag check, which comes first. The effect
//!   is the one asked for (the hub validates signature and structure and accepts; members
//!   reject), and the hub could not have told either tag apart.
//! * omit-list-update is the "remove the clients, keep the user listed" variant: a Remove
//!   or a Ban commits only the Removes (the reverse variant is the planted bug
//!   `client-removes-user-but-not-clients`, which `full` rejects).
//! * forge-sending-uri names another participant hosted by the malicious provider if
//!   there is one, else any other participant (first in participant-list order).
//! * foreign-key-package hands out, under each of the target's client URIs, a KeyPackage
//!   of a client of another user of the same provider (first such user in URI order), and
//!   routes the Welcome to that client.
//! * ghost-device: the follower treats a user's devices after the first (URI order) as
//!   its ghosts and hides them from other users' `/keyMaterial` requests (so nobody
//!   else adds them). When a client of the malicious provider joins a room by Welcome, it
//!   asks (through the hub, so the KeyPackage is "fetched through the hub") for its own
//!   user's key material and commits Adds for every one of the user's devices not yet in
//!   the room, without a participant-list change.
//! * replay-notify re-delivers the previous `/notify` batch after each new one, and
//!   re-submits its client's last accepted commit to the hub once, when that client next
//!   sends anything in the room.
//! * reorder-fanout reverses each batch and holds every other batch until the next one
//!   comes (a held batch is released after the next batch, so it arrives late).

use crate::ids::{ClientUri, RoomUri};

/// The correlation id a malicious client uses to hand its provider a forked commit (see
/// "Choices"); never used by honest clients (their ids count up from 2).
pub const EQUIVOCATION_CORR: u64 = u64::MAX;

/// One adversarial behaviour of a malicious provider and its clients.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Adversary {
    /// Follower: acknowledges `/notify` (201) but never hands the messages to its clients.
    DropFanout,
    /// Follower: hands each `/notify` batch to its clients reversed, holding every other
    /// batch until the next one.
    ReorderFanout,
    /// Follower: re-delivers the previous `/notify` batch after each new one; re-submits
    /// its client's last commit to the hub (stale bytes).
    ReplayNotify,
    /// Client + follower: a committing client also builds a second commit for the same
    /// epoch, which the follower shows to its other local clients only.
    Equivocate,
    /// Client: AddUser commits the Adds without the participant-list update.
    AddNonParticipant,
    /// Client: commits leave out the proposals the hub accepted this epoch.
    OmitCachedProposals,
    /// Client: Remove and Ban commits remove the clients but keep the user listed.
    OmitListUpdate,
    /// Client: commits carry the previous epoch's GroupInfo.
    BadGroupInfo,
    /// Client: `/submitMessage` names another participant as sendingUri (P§5.4).
    ForgeSendingUri,
    /// Follower: `/keyMaterial` hands out another local user's KeyPackages as the target's.
    ForeignKeyPackage,
    /// Client: after joining a room, adds its user's other devices without the user.
    GhostDevice,
    /// Client: commits carry a wrong confirmation tag (hub accepts, members reject).
    BadConfirmationTag,
}

impl Adversary {
    /// Every adversary, in order.
    pub const ALL: [Adversary; 12] = [
        Adversary::DropFanout,
        Adversary::ReorderFanout,
        Adversary::ReplayNotify,
        Adversary::Equivocate,
        Adversary::AddNonParticipant,
        Adversary::OmitCachedProposals,
        Adversary::OmitListUpdate,
        Adversary::BadGroupInfo,
        Adversary::ForgeSendingUri,
        Adversary::ForeignKeyPackage,
        Adversary::GhostDevice,
        Adversary::BadConfirmationTag,
    ];

    /// The adversary's name in scenario files (kebab-case).
    pub fn id(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// One line on what the malicious provider does.
    pub fn describe(self) -> &'static str {
        match self {
            Adversary::DropFanout => {
                "follower acknowledges /notify (201) but never hands the messages to its clients"
            }
            Adversary::ReorderFanout => {
                "follower reverses each /notify batch and holds every other batch until the next"
            }
            Adversary::ReplayNotify => {
                "follower re-delivers old fan-out to its clients and re-submits an old commit of its client to the hub"
            }
            Adversary::Equivocate => {
                "a committing client also builds another commit for the same epoch, which the follower shows only to its other local clients"
            }
            Adversary::AddNonParticipant => {
                "client adds a user's clients without adding the user to the participant list"
            }
            Adversary::OmitCachedProposals => {
                "client commits leave out the proposals the hub accepted this epoch"
            }
            Adversary::OmitListUpdate => {
                "client Remove/Ban commits remove the clients but keep the user in the participant list"
            }
            Adversary::BadGroupInfo => {
                "client commits carry the previous epoch's GroupInfo"
            }
            Adversary::ForgeSendingUri => {
                "client names another participant as sendingUri in /submitMessage (P§5.4)"
            }
            Adversary::ForeignKeyPackage => {
                "follower answers /keyMaterial with another local user's KeyPackages presented as the target's"
            }
            Adversary::GhostDevice => {
                "client adds another device of its own user, which the user never added"
            }
            Adversary::BadConfirmationTag => {
                "client commits carry a wrong confirmation tag: the hub accepts, members reject"
            }
        }
    }
}

impl std::str::FromStr for Adversary {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Adversary::ALL
            .into_iter()
            .find(|a| a.id() == s)
            .ok_or_else(|| {
                let ids: Vec<String> = Adversary::ALL.iter().map(|a| a.id()).collect();
                format!("unknown adversary {s:?} (known: {})", ids.join(", "))
            })
    }
}

/// What a malicious provider did, recorded by [`crate::server::Server`] so tests and
/// traces can show that a behaviour really happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum AdversaryAction {
    /// drop-fanout: deliveries of one `/notify` withheld from the provider's clients.
    Dropped { room: RoomUri, deliveries: usize },
    /// reorder-fanout: a reversed batch held back until the next one.
    Held { room: RoomUri, deliveries: usize },
    /// reorder-fanout: a reversed batch handed out, followed by the held one.
    Released { room: RoomUri, deliveries: usize },
    /// replay-notify: the previous batch handed out again.
    Replayed { room: RoomUri, deliveries: usize },
    /// replay-notify: a client's old `/update` (commit) sent to the hub again.
    StaleCommitResubmitted { room: RoomUri },
    /// replay-notify: the hub's answer to it (HTTP status and body).
    StaleCommitAnswered {
        room: RoomUri,
        status: u16,
        body: Vec<u8>,
    },
    /// equivocate: a forked commit shown to these local clients (never sent to the hub).
    ForkedCommitShown { room: RoomUri, to: Vec<ClientUri> },
}

/// Flip one byte of the confirmation tag of a serialized member PublicMessage commit
/// (`MLSMessage` TLS bytes). The message ends `confirmation_tag<V> membership_tag<V>`,
/// both MACs of the ciphersuite's hash length (`mac_len` bytes, one-byte length prefix):
/// the last byte of the confirmation tag sits `mac_len + 2` bytes before the end.
/// Returns `None` if the bytes are too short or the layout does not match.
pub fn flip_confirmation_tag(commit: &[u8], mac_len: usize) -> Option<Vec<u8>> {
    let n = commit.len();
    let membership_len_at = n.checked_sub(mac_len + 1)?;
    let confirmation_len_at = membership_len_at.checked_sub(mac_len + 1)?;
    if usize::from(*commit.get(membership_len_at)?) != mac_len
        || usize::from(*commit.get(confirmation_len_at)?) != mac_len
    {
        return None;
    }
    let mut out = commit.to_vec();
    let last = out.get_mut(membership_len_at - 1)?;
    *last ^= 0x01;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_distinct() {
        let ids: std::collections::BTreeSet<String> =
            Adversary::ALL.iter().map(|a| a.id()).collect();
        assert_eq!(ids.len(), Adversary::ALL.len());
        for a in Adversary::ALL {
            assert_eq!(a.id().parse::<Adversary>().unwrap(), a);
            assert!(!a.describe().is_empty());
        }
        assert_eq!(Adversary::DropFanout.id(), "drop-fanout");
        assert!("nope".parse::<Adversary>().unwrap_err().contains("known"));
    }

    #[test]
    fn flip_confirmation_tag_touches_only_that_tag() {
        let mut m = vec![7u8; 10];
        m.push(4);
        m.extend([1, 2, 3, 4]);
        m.push(4);
        m.extend([5, 6, 7, 8]);
        let f = flip_confirmation_tag(&m, 4).unwrap();
        let diff: Vec<usize> = (0..m.len()).filter(|&i| m[i] != f[i]).collect();
        assert_eq!(diff, vec![14]);
        assert!(flip_confirmation_tag(&m, 5).is_none());
        assert!(flip_confirmation_tag(&[1, 2], 4).is_none());
    }
}
