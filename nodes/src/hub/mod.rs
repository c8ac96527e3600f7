//! The hub core (sans-IO): sequencer, enforcement point and fan-out of the rooms it hosts.

pub mod public_view;

pub use public_view::{CommitSummary, CoveredProposal, HandshakeSender, PublicView, ViewError};
