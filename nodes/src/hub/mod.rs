//! The hub core (sans-IO): sequencer, enforcement point and fan-out of the rooms it hosts.

pub mod core;
pub mod enforcement;
pub mod public_view;
pub mod room;

pub use self::core::{Hub, HubEvent, RejectCode, Rejection};
pub use enforcement::{Enforcement, EnforcementConfig, Rule};
pub use public_view::{CommitSummary, CoveredProposal, HandshakeSender, PublicView, ViewError};
