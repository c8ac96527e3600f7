//! The MLS glue: a seeded provider, credentials, the group configuration every MIMI
//! member and hub uses, room-state resolution, canonical commits, and the cost meter the
//! benchmark uses to measure time spent in openmls ([`cost`]).

pub mod app_data;
pub mod commit;
pub mod config;
pub mod cost;
pub mod provider;

pub use app_data::{AppDataError, ComponentLogic};
pub use commit::{stage_canonical_commit, CommitError, CommitPlan};
pub use config::{Identity, CIPHERSUITE};
pub use provider::{derive_seed, MlsStorage, SeededCrypto, SeededProvider, StreamPosition};
