//! Deliberate bugs planted in honest nodes so that each simulator oracle can be shown to
//! fire (like FoundationDB's buggify). Never set in normal runs: a node without bugs
//! behaves as the drafts say.
//!
//! Wiring: [`crate::server::Server::with_bugs`] passes the hub bugs to the hub and
//! wraps the honest follower in a [`FaultyFollower`] carrying the follower bugs;
//! [`crate::client::core::Client::set_bugs`] sets the client ones, wrapping the honest
//! client's conduct ([`crate::client::conduct`]) in a [`FaultyClient`].

mod client;
pub use client::FaultyClient;
mod follower;
pub use follower::{echo_local_commit, FaultyFollower};

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
    /// The bugs a [`FaultyFollower`] plants in the follower role.
    pub const FOLLOWER: [Bug; 3] = [
        Bug::FollowerReversesBatches,
        Bug::FollowerSkipsDedup,
        Bug::FollowerEchoesLocalCommits,
    ];

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
