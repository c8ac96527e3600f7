//! MIMI content messages (draft-ietf-mimi-content-08) — work in progress.

pub mod cbor;
