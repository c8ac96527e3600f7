//! Deliberate bugs planted in honest nodes so that each simulator oracle can be shown to
//! fire (like FoundationDB's buggify). Never set in normal runs: a node without bugs
//! behaves as the drafts say.
//!
//! Wiring: [`crate::server::Server::with_bugs`] passes hub and follower bugs down;
//! [`crate::client::core::Client::set_bugs`] sets the client ones.

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
    /// Follower: processes every /notify body, including retransmissions (no dedup).
    FollowerSkipsDedup,
    /// Client: AddUser commits the Adds without the participant-list AppDataUpdate.
    ClientAddsWithoutListUpdate,
    /// Client: RemoveUser/Kick/Ban updates the participant list but leaves the user's clients in the group.
    ClientRemovesUserButNotClients,
}

/// A set of planted bugs.
pub type Bugs = std::collections::BTreeSet<Bug>;

impl Bug {
    /// Every bug, in order.
    pub const ALL: [Bug; 7] = [
        Bug::HubSequencesEveryCommit,
        Bug::HubSkipsMerge,
        Bug::HubDropsMessageFanout,
        Bug::FollowerReversesBatches,
        Bug::FollowerSkipsDedup,
        Bug::ClientAddsWithoutListUpdate,
        Bug::ClientRemovesUserButNotClients,
    ];
}
