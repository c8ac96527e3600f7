//! Adversarial followers: a malicious provider — its follower role and the clients it
//! hosts (a provider controls its users' devices, P§1.2) — misbehaving on purpose, so the
//! simulator can show which misbehaviour hub enforcement `full` stops that `mls` does
//! not, and which no hub can stop.
//!
//! Unlike [`crate::planted`] (bugs planted in honest nodes), these are attacks: the
//! simulator sets one on a provider with [`crate::server::Server::with_adversary`] and on
//! every client of that provider with [`crate::client::core::Client::set_adversary`].
//! Every behaviour is deterministic (choices come from seeded state or fixed rules).
//! `None` leaves a node honest.
//!
//! A malicious provider is a different node, not a flag in the honest one: its follower
//! role is a [`MaliciousFollower`] wrapping the honest [`crate::follower::Follower`]
//! (through [`crate::follower::FollowerRole`], the seam the server drives), so the
//! honest follower and server read as the protocol. Its devices likewise: each wraps the
//! honest client's conduct ([`crate::client::conduct`], the seams where a client decides
//! what it builds) in a [`MaliciousClient`], so the honest client reads as the protocol.
//!
//! # What the hub does with each, as `nodes/tests/adversaries.rs` shows
//!
//! Room at hub a.example, honest provider b.example, malicious provider c.example (its
//! follower and all its clients). Every test runs at `off`, `mls` and `full`; `mls`
//! behaved exactly like `off` for every adversary (only MLS validity is checked there,
//! and every adversarial commit is valid MLS as far as a hub can see).
//!
//! | adversary | evidence at `off` (= `mls`) | `full` | rule | why the hub cannot, where it cannot |
//! |---|---|---|---|---|
//! | drop-fanout | Carol's client never gets the Welcome nor Alice's message; MLS lists it as a member; c answered 201 to everything | not stopped | — | the hub only sees c's 201s; the last mile (P§5.5) is c's. Hurts only c's own users. |
//! | reorder-fanout | Carol's client gets batches reversed and late: delivery errors, stuck at epoch 2 while the hub is at 5, misses a message; Alice and Bob follow the hub | not stopped | — | as above: nothing after `/notify` is visible to the hub. Hurts only c's users. |
//! | replay-notify | old batches re-delivered to Carol (she drops stale epochs and duplicates and stays at the hub's epoch); Carol's old commit sent to the hub again | answered as a byte-identical retry with the original success, not logged, epoch unchanged — same at `off` | — (P§5.5 idempotence, not an enforcement rule) | nothing to stop: the hub's retry cache and the clients' epoch/duplicate checks absorb it |
//! | equivocate | Carol's second device processes a commit the hub never saw: same epoch number as everyone, different epoch authenticator | not stopped | — | the forked commit never reaches the hub; only c's own clients see it. Alice, Bob and Carol's first device agree with the hub. |
//! | add-non-participant | Dave's client becomes a member, Dave is not a participant | rejected | list-membership | |
//! | omit-cached-proposals | Alice's leave (accepted proposals) is lost: Carol's commit without them moves the epoch on, Alice stays a member | rejected (`invalidProposal`); Alice's leave stays pending and nobody commits it (Carol holds the commit duty) | cached-proposals | stops the safety violation, not the stall: a designated committer that never commits is a liveness attack the hub cannot cure (oracle `departure-completes` at every level) |
//! | omit-list-update | Carol (admin) "bans" Bob: his clients are removed, he stays listed with his old role | not stopped | — | removing all of a user's clients and keeping the user listed is exactly a legitimate Kick (RP§8.1.2), which Carol may do: the hub cannot know she meant Ban |
//! | bad-group-info | the hub serves the GroupInfo of the previous epoch; in the simulator a later external join cannot land (oracle `arrival-completes`) | rejected, hub keeps the old epoch | group-info | |
//! | forge-sending-uri | Carol's message names Alice as sendingUri and is delivered (sim oracle `sending-uri-is-sender`) | rejected when the named user is at another provider; **accepted** when it names Dave, a participant at c — so a muted participant of c (a role without canSendMessage) speaks under the name of a co-hosted one who may send: mute evasion (`scenarios/adversary-forge-sending-uri.toml`, the oracle fires at `full` too) | submit-sender | the sender of a PrivateMessage is encrypted; the hub can only check that the named user is a participant of the submitting provider who may send |
//! | foreign-key-package | Alice adds Carol; Dave's client joins, Carol has no client (oracles `member-is-participant`, `arrival-completes`) | rejected (Carol is not added either) | list-membership | |
//! | ghost-device | Carol's device, on joining, adds Carol's hidden second device: it joins; no participant-list change (sim oracle `no-ghost-device`, at every level) | not stopped | — | adding one's own client is allowed (canAddOwnClient); the hub cannot tell the user's action from its provider's (the provider controls the device) |
//! | bad-confirmation-tag | the hub accepts Carol's commit and moves on; Alice and Bob reject it (delivery errors) and stay at the old epoch; Carol moves on | not stopped (nor at `mls`) | — | a non-member hub has neither the membership key nor the confirmation key (RFC 9420 §6.1, §6.2) |
//!
//! So `full` stops, beyond `mls`: add-non-participant, omit-cached-proposals (its safety
//! part), bad-group-info, foreign-key-package and cross-provider forge-sending-uri. It
//! cannot stop what happens only between a provider and its own clients (drop, reorder,
//! equivocate, ghost devices), what is indistinguishable from an allowed action (a ban
//! committed as a kick, naming a co-hosted participant as sender), nor a commit only
//! members can check (bad confirmation tag).
//!
//! The two metadata lies are invisible to the other oracles (members decrypt the true
//! MLS sender; a ghost belongs to a participant), so the simulator has one oracle each,
//! fed by ground truth the hub lacks: `sending-uri-is-sender` matches each accepted
//! message's sendingUri with the client that built it (client event `MessageBuilt` and
//! hub event `SenderAccepted` carry the MLSMessage's SHA-256), and `no-ghost-device`
//! knows the world's ghosts from [`ghost_devices`], the rule the follower uses. Members
//! could catch the first lie themselves with franking (P§5.4.1: the signed context's
//! sender URI against the decrypted leaf credential), which this simulator does not build
//! (`frank` is always absent); today they decrypt the true sender and do not check its
//! role's canSendMessage.
//!
//! # Choices
//!
//! * Equivocation needs the forked commit to travel from the committing device to its
//!   provider without going to the hub. Both belong to the same party; the sim uses a
//!   provider-internal side channel of its own type,
//!   [`crate::io::ClientToProvider::ForkedCommit`] (the forked `/update` body), which a
//!   malicious follower hands to its other local clients as a fan-out commit and never
//!   relays (an honest provider drops it).
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
//!   its ghosts ([`ghost_devices`], the one rule the simulator's oracle also uses) and
//!   hides them from other users' `/keyMaterial` requests (so nobody else adds them).
//!   When a client of the malicious provider joins a room by Welcome, it asks (through
//!   the hub, so the KeyPackage is "fetched through the hub") for its own user's key
//!   material and commits Adds for every one of the user's devices not yet in the room,
//!   without a participant-list change.
//! * The simulator's oracles for the metadata lies: `sending-uri-is-sender` compares the
//!   sendingUri the hub accepted, as a URI string, with the builder's user URI, and
//!   leaves alone a message no simulated client built (no such message reaches members
//!   as valid MLS); `no-ghost-device` reports each ghost once per room, at the first
//!   honest view that holds it.
//! * replay-notify re-delivers the previous `/notify` batch after each new one, and
//!   re-submits its client's last accepted commit to the hub once, when that client next
//!   sends anything in the room.
//! * reorder-fanout reverses each batch and holds every other batch until the next one
//!   comes (a held batch is released after the next batch, so it arrives late).

use std::collections::BTreeSet;

use crate::ids::{ClientUri, RoomUri};

mod client;
pub use client::MaliciousClient;
mod follower;
pub use follower::MaliciousFollower;

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

/// What a malicious provider did, recorded by its [`MaliciousFollower`] (read through
/// [`crate::server::Server::adversary_actions`]) so tests and traces can show that a
/// behaviour really happened.
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

/// ghost-device: the devices among `devices` that a malicious provider holds as its
/// ghosts — for each user, every device after the user's first in URI order (see
/// "Choices"). The one rule the follower (which hides the ghosts from other users'
/// `/keyMaterial`) and the simulator's oracle `no-ghost-device` (which knows the world's
/// ghosts from it) both use.
pub fn ghost_devices<'a>(devices: impl IntoIterator<Item = &'a ClientUri>) -> BTreeSet<ClientUri> {
    let all: BTreeSet<&ClientUri> = devices.into_iter().collect();
    let mut seen_users = BTreeSet::new();
    all.into_iter()
        .filter(|c| !seen_users.insert(c.user()))
        .cloned()
        .collect()
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
    fn ghost_devices_are_every_device_after_each_users_first() {
        let c = |s: &str| s.parse::<ClientUri>().unwrap();
        let devices = [
            c("mimi://c.example/d/cathy/2"),
            c("mimi://c.example/d/erin/1"),
            c("mimi://c.example/d/cathy/1"),
            c("mimi://c.example/d/cathy/3"),
            c("mimi://c.example/d/cathy2/1"),
        ];
        let ghosts = ghost_devices(&devices);
        assert_eq!(
            ghosts.into_iter().collect::<Vec<_>>(),
            vec![
                c("mimi://c.example/d/cathy/2"),
                c("mimi://c.example/d/cathy/3")
            ]
        );
        assert!(
            ghost_devices(&devices[1..2]).is_empty(),
            "a lone device is real"
        );
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
