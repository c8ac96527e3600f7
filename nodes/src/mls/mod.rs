//! The MLS glue: a seeded provider, credentials, the group configuration every MIMI
//! member and hub uses, room-state resolution and canonical commits.

pub mod app_data;
pub mod commit;
pub mod config;
pub mod provider;
pub mod room_components;

pub use app_data::{AppDataError, ComponentLogic};
pub use commit::{stage_canonical_commit, CommitError, CommitPlan};
pub use config::{Identity, CIPHERSUITE};
pub use provider::{derive_seed, SeededCrypto, SeededProvider};
pub use room_components::RoomComponents;
