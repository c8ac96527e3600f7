//! The -08 MIMI message ID (C§3.3):
//!
//! ```text
//! hash_output = SHA-256( u16be(len(senderUri)) || senderUri ||
//!                        u16be(len(roomUri))   || roomUri   || message || salt )
//! messageId   = 0x01 || hash_output[0..31]
//! ```
//!
//! The input is the exact encoded message, so deterministic encoding matters; the salt
//! appears twice on purpose (against length extension).

use sha2::{Digest, Sha256};

use super::ContentError;

/// IANA named-information hash algorithm ID of SHA-256, the first byte of every message ID
/// this implementation computes (C§3.3).
pub const HASH_ALG_SHA256: u8 = 0x01;

/// The C§3.3 hash over `cbor` (the message's encoding) with the message's sender and room
/// URIs (extensions 1 and 2; both are required). This module knows only bytes and URIs, not
/// the content model, which calls it ([`super::MimiContent::message_id`]).
pub(super) fn compute_message_id(
    sender: Option<&str>,
    room: Option<&str>,
    cbor: &[u8],
    salt: &[u8; 16],
) -> Result<[u8; 32], ContentError> {
    let sender = sender.ok_or(ContentError::MissingUri("senderUri (1)"))?;
    let room = room.ok_or(ContentError::MissingUri("roomUri (2)"))?;
    let mut h = Sha256::new();
    for (which, uri) in [("sender", sender), ("room", room)] {
        let len = u16::try_from(uri.len()).map_err(|_| ContentError::UriTooLong {
            which,
            len: uri.len(),
        })?;
        h.update(len.to_be_bytes());
        h.update(uri.as_bytes());
    }
    h.update(cbor);
    h.update(salt);
    let hash = h.finalize();
    let mut id = [0u8; 32];
    id[0] = HASH_ALG_SHA256;
    for (dst, src) in id.iter_mut().skip(1).zip(hash.iter()) {
        *dst = *src;
    }
    Ok(id)
}
