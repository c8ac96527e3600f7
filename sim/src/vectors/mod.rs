//! Replays of external test vectors against our MLS stack.
//!
//! * [`mls_file`] — the JSON schema of the mlswg/mls-implementations passive-client
//!   vectors, decoded into bytes.
//! * [`passive_client`] — the hub-shadow replay: a passive client joins through the
//!   vector's Welcome, the hub follows from the client's GroupInfo, both process every
//!   proposal and commit, and after each epoch the client's epoch authenticator must
//!   equal the vector's and the hub's GroupContext the client's.
//! * [`report`] — outcomes and totals (serialisable to JSON).
//! * [`provider`] — the randomness-free OpenMLS provider and the vector-key signer.
//!
//! The library does no I/O: callers hand in the file's bytes.

pub mod mls_file;
pub mod passive_client;
pub mod provider;
pub mod report;

pub use mls_file::{parse_passive_client_tests, PassiveClientTest, VectorFileError};
pub use passive_client::{replay_passive_client_tests, replay_test};
pub use report::{
    Disagreement, Failure, HubViewOrigin, ReplayReport, SkipReason, Step, TestOutcome, Verdict,
};
