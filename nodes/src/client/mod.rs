//! The client core (sans-IO): a user's device. It builds every MLS object (P§1.3) and
//! talks only to its own provider.

pub mod conduct;
pub mod core;
mod encoding;
pub mod failure;
pub mod leave;
pub mod member;
pub mod snapshot;
pub mod tick;

pub use member::{CommitOutput, Member, MemberError, Processed, Received};
pub use tick::TickGate;
