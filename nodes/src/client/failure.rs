//! Where a failed operation failed ([`FailureOrigin`]), set where the failure is produced,
//! so that whoever reads a [`super::core::ClientEvent::OpFailed`] (a person, the
//! simulator's oracles) can tell a refusal by the hub from the client's own failure
//! without reading its text.

use serde::{Deserialize, Serialize};

/// The response code of a hub's refusal, as the hub's answer carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    /// `UpdateResponseCode` `wrongEpoch(1)` (P§5.3).
    WrongEpoch,
    /// `UpdateResponseCode` `notAllowed(2)` or `SubmitResponseCode` `notAllowed(1)`.
    NotAllowed,
    /// `UpdateResponseCode` `invalidProposal(3)`.
    InvalidProposal,
    /// `SubmitResponseCode` `epochTooOld(2)` (P§5.4).
    EpochTooOld,
    /// `GroupInfoCode` `notAuthorized(2)` (P§5.6).
    NotAuthorized,
    /// `GroupInfoCode` `noSuchRoom(3)`.
    NoSuchRoom,
}

impl RefusalCode {
    /// The code's name as the draft spells it (`wrongEpoch`, `notAllowed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RefusalCode::WrongEpoch => "wrongEpoch",
            RefusalCode::NotAllowed => "notAllowed",
            RefusalCode::InvalidProposal => "invalidProposal",
            RefusalCode::EpochTooOld => "epochTooOld",
            RefusalCode::NotAuthorized => "notAuthorized",
            RefusalCode::NoSuchRoom => "noSuchRoom",
        }
    }
}

/// The client's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalFailure {
    /// Building the request failed: not a member (any more), no room state yet, the
    /// room's policy or MLS refused to build the commit, a limit.
    Build,
    /// MLS refused what the client was served, after the answer was decoded: e.g. the
    /// external commit built from the hub's GroupInfo (RFC 9420 §12.4.3.2).
    Mls,
}

/// Where an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureOrigin {
    /// The hub judged the request and refused it with `code` in its answer.
    HubRefused { code: RefusalCode },
    /// The request got an HTTP error status (4xx) instead of a protocol answer: the
    /// provider or the hub would not take it (no hub for the room there, the hub moved,
    /// a malformed request).
    HttpError { status: u16 },
    /// The answer could not be decoded or verified (malformed, bad signature, no
    /// ratchet tree, a KeyPackage that does not validate).
    BadAnswer,
    /// The provider had no KeyPackage for a user to be added.
    NoKeyMaterial,
    /// The client itself failed.
    Local(LocalFailure),
    /// Every attempt lost (wrongEpoch, epochTooOld, another commit won the epoch) and
    /// the client gave up after `retries` retries.
    RetriesExhausted { retries: u32 },
    /// After a lost epoch the retry had to wait to reach `epoch` (the hub's), and the
    /// client was still at `reached` after [`super::core::CATCH_UP_TIMEOUT`]: the fan-out
    /// it needs never came (or could not be processed).
    EpochOutOfReach { epoch: u64, reached: u64 },
    /// No definitive answer (timeouts, 5xx) after `attempts` byte-identical sends, and
    /// no fan-out settled the op: the client stopped trying (`MAX_ATTEMPTS`).
    Unanswered { attempts: u32 },
}

/// A failure: its origin and, for people, what happened.
pub type Failure = (FailureOrigin, String);

/// A [`Failure`] of `origin` described by `reason`.
pub fn failure(origin: FailureOrigin, reason: impl std::fmt::Display) -> Failure {
    (origin, reason.to_string())
}

/// A failure building the request.
pub fn build_failure(reason: impl std::fmt::Display) -> Failure {
    failure(FailureOrigin::Local(LocalFailure::Build), reason)
}

/// An answer that could not be decoded or verified.
pub fn bad_answer(reason: impl std::fmt::Display) -> Failure {
    failure(FailureOrigin::BadAnswer, reason)
}
