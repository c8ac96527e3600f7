//! Deliberate bugs planted in honest nodes so that each simulator oracle can be shown to
//! fire (like FoundationDB's buggify). Never set in normal runs: a node without bugs
//! behaves as the drafts say.
//!
//! A faulty node is a different node, not a flag in the honest one: a [`FaultyHub`]
//! wraps the honest hub and drives it with its own steps where a bug acts (the seam
//! [`crate::hub::core`] leaves for it), a [`FaultyFollower`] wraps the honest follower
//! and composes its steps the way a bug says, and a [`FaultyClient`] wraps the honest
//! client's conduct ([`crate::client::conduct`]). Wiring:
//! [`crate::server::Server::with_bugs`] makes the provider's roles these wrappers
//! (`nodes/src/server/roles.rs`); [`crate::client::core::Client::set_bugs`] sets the
//! client ones.

mod client;
pub use client::FaultyClient;
mod follower;
mod hub;
pub use follower::{echo_local_commit, FaultyFollower};
pub use hub::FaultyHub;

/// Deliberate bugs planted in honest nodes so each simulator oracle can be shown to fire (like FoundationDB's buggify). Never set in normal runs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Hub: sequences every valid commit even for an epoch already sequenced (no wrongEpoch), answers success, fans it out, but merges only the first into its view.
    HubSequencesEveryCommit,
    /// Hub: fans out an accepted commit but never merges it into its public view.
    HubSkipsMerge,
    /// Hub: never sends application-message fan-out to remote followers (local delivery still happens). The log entry still records them as recipients.
    HubDropsMessageFanout,
    /// Follower: hands each /notify batch to its clients in reverse order.
    FollowerReversesBatches,
    /// Hub: the Welcome fan-out of an accepted commit fails to encode, as a message beyond
    /// a length limit would. A correct hub refuses such a commit (500, state unchanged)
    /// instead of accepting it and dropping the Welcome; this fault shows that it does.
    HubWelcomeUnencodable,
    /// Follower: processes every /notify body, including retransmissions (no dedup).
    FollowerSkipsDedup,
    /// Follower: hands a local client's commit to the room's other local clients as soon
    /// as the client sends it, before (and whether or not) the hub accepts it: an
    /// "optimistic local delivery" of something the hub never sequenced.
    FollowerEchoesLocalCommits,
    /// Client: AddUser commits the Adds without the participant-list AppDataUpdate.
    ClientAddsWithoutListUpdate,
    /// Client: RemoveUser/Kick/Ban updates the participant list but leaves the user's clients in the group.
    ClientRemovesUserButNotClients,
    /// Client: the room state it holds for display (its room view) leaves out the last
    /// participant, unless the client's own user is the first participant: a client whose
    /// own copy of the participant list drifts from the group's — what a room state kept
    /// outside the GroupContext risks. Its commits are unaffected.
    ClientMisreadsParticipantList,
    /// Client: under `clients-first` / `exiting` (see [`crate::client::leave`]), the
    /// member whose commit carried a leaver's SelfRemove never commits the unlisting that
    /// is its duty: the leaver stays listed with no clients, its departure stuck.
    ClientSkipsUnlisting,
}

/// A set of planted bugs.
pub type Bugs = std::collections::BTreeSet<Bug>;

impl Bug {
    /// The bug's name in scenario files (kebab-case).
    pub fn id(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl Bug {
    /// The bugs a [`FaultyHub`] plants in the hub role.
    pub const HUB: [Bug; 4] = [
        Bug::HubSequencesEveryCommit,
        Bug::HubSkipsMerge,
        Bug::HubDropsMessageFanout,
        Bug::HubWelcomeUnencodable,
    ];

    /// The bugs a [`FaultyFollower`] plants in the follower role.
    pub const FOLLOWER: [Bug; 3] = [
        Bug::FollowerReversesBatches,
        Bug::FollowerSkipsDedup,
        Bug::FollowerEchoesLocalCommits,
    ];

    /// The bugs among `bugs` that act in the hub role ([`Bug::HUB`]).
    pub fn for_hub(bugs: &Bugs) -> Bugs {
        Self::among(&Bug::HUB, bugs)
    }

    /// The bugs among `bugs` that act in the follower role ([`Bug::FOLLOWER`]).
    pub fn for_follower(bugs: &Bugs) -> Bugs {
        Self::among(&Bug::FOLLOWER, bugs)
    }

    fn among(role: &[Bug], bugs: &Bugs) -> Bugs {
        bugs.iter().copied().filter(|b| role.contains(b)).collect()
    }

    /// Every bug, in order.
    pub const ALL: [Bug; 11] = [
        Bug::HubSequencesEveryCommit,
        Bug::HubSkipsMerge,
        Bug::HubDropsMessageFanout,
        Bug::HubWelcomeUnencodable,
        Bug::FollowerReversesBatches,
        Bug::FollowerSkipsDedup,
        Bug::FollowerEchoesLocalCommits,
        Bug::ClientAddsWithoutListUpdate,
        Bug::ClientRemovesUserButNotClients,
        Bug::ClientMisreadsParticipantList,
        Bug::ClientSkipsUnlisting,
    ];
}
