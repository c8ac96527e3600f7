//! Replays of external test vectors against our MLS stack.
//!
//! * [`mls_file`] — the JSON schema of the mlswg/mls-implementations passive-client
//!   vectors, decoded into bytes.
//! * [`passive_client`] — the hub-shadow replay: a passive client joins through the
//!   vector's Welcome, the hub follows from the client's GroupInfo, both process every
//!   proposal and commit, and after each epoch the client's epoch authenticator must
//!   equal the vector's and the hub's GroupContext the client's.
//! * [`rfc9420`] — our own check of a vector's KeyPackage against RFC 9420's capability
//!   rules, run first: a vector that breaks them is reported as such, not replayed.
//! * [`report`] — outcomes and totals (serialisable to JSON).
//! * [`provider`] — the randomness-free OpenMLS provider and the vector-key signer.
//!
//! The library does no I/O: callers hand in the file's bytes.

pub mod mls_file;
pub mod passive_client;
pub mod provider;
pub mod report;
pub mod rfc9420;

pub use mls_file::{parse_passive_client_tests, PassiveClientTest, VectorFileError};
pub use passive_client::{replay_passive_client_tests, replay_test};
pub use report::{
    Disagreement, Failure, HubViewOrigin, ReplayReport, Rfc9420CheckCounts, SkipReason, Step,
    TestOutcome, VectorViolation, Verdict,
};
pub use rfc9420::{check_key_package, KeyPackageCheck, RfcViolation};
