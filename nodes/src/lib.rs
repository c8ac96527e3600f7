//! # mimi-nodes — the MIMI protocol on real MLS
//!
//! Sans-IO protocol cores for the three MIMI roles (hub, follower, client), built on
//! openmls with a seeded provider so that every byte is a function of the seed.
//!
//! * [`ids`] — provider domains and the `mimi://` URIs of users, clients and rooms.
//! * [`wire`] — the draft-ietf-mimi-protocol-06 structures in TLS presentation language.
//! * [`content`] — mimi-content CBOR (deterministic encoding) and the -08 message ID.
//! * [`room`] — room state (participant list, roles, preauthorisation, base policy,
//!   metadata) as `app_data_dictionary` components, and the authorisation engine.
//! * [`mls`] — the MLS glue: seeded provider, credentials, group configuration.
//!
//! Choices made where the drafts are silent or inconsistent are listed in
//! `nodes/CHOICES.md`.

pub mod adversary;
pub mod client;
pub mod content;
pub mod endpoint;
pub mod follower;
pub mod hub;
pub mod ids;
pub mod io;
pub mod mls;
pub mod planted;
pub mod room;
pub mod server;
pub mod transfer;
pub mod wire;
pub mod world;
