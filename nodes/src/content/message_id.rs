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

use super::model::{Extensions, MimiContent};
use super::ContentError;

/// IANA named-information hash algorithm ID of SHA-256, the first byte of every message ID
/// this implementation computes (C§3.3).
pub const HASH_ALG_SHA256: u8 = 0x01;

/// The message ID of an encoded content message. The bytes must be a valid message in
/// deterministic CBOR ([`MimiContent::decode`]) with sender and room URIs (extensions 1, 2).
pub fn message_id(cbor: &[u8]) -> Result<[u8; 32], ContentError> {
    let content = MimiContent::decode(cbor)?;
    compute_message_id(&content.extensions, cbor, &content.salt)
}

/// The C§3.3 hash over `cbor` (the message's encoding) with the URIs from `extensions`.
pub(super) fn compute_message_id(
    extensions: &Extensions,
    cbor: &[u8],
    salt: &[u8; 16],
) -> Result<[u8; 32], ContentError> {
    let sender = extensions
        .sender_uri
        .as_deref()
        .ok_or(ContentError::MissingUri("senderUri (1)"))?;
    let room = extensions
        .room_uri
        .as_deref()
        .ok_or(ContentError::MissingUri("roomUri (2)"))?;
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
