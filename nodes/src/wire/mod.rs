//! # wire — the MIMI protocol messages of draft-ietf-mimi-protocol-06 (P§5)
//!
//! TLS presentation-language bodies of the endpoints the simulator uses:
//!
//! | Endpoint (P§) | Request | Response |
//! |---|---|---|
//! | `/keyMaterial/{targetUser}` (§5.2) | [`KeyMaterialRequest`] | [`KeyMaterialResponse`] |
//! | `/update/{roomId}` (§5.3) | [`UpdateRequest`] ([`HandshakeBundle`]) | [`UpdateRoomResponse`] |
//! | `/submitMessage/{roomId}` (§5.4) | [`SubmitMessageRequest`] | [`SubmitMessageResponse`] |
//! | `/notify/{roomId}` (§5.5) | [`NotifyBody`] (concatenated [`FanoutMessage`]s) | none (201) |
//! | `/groupInfo/{roomId}` (§5.6) | [`GroupInfoRequest`] | [`GroupInfoResponse`] |
//!
//! * Encoding: `tls_codec::Serialize` (derived with `TlsSerialize`/`TlsSize` where the
//!   layout is "fields in order" or "tag then variant"; by hand where a `select`
//!   depends on a later or embedded field). Use [`encode`].
//! * Decoding: by hand on [`Reader`], so that every [`WireError`] names the
//!   structure and field, every length is checked against the input and a named limit
//!   ([`MAX_BODY_BYTES`], [`MAX_VECTOR_ITEMS`], [`MAX_URI_BYTES`], ...) before
//!   anything is copied, and only canonical encodings are accepted. Use
//!   [`decode_exact`] (rejects trailing bytes). Hence for every accepted body `b`,
//!   `encode(decode_exact(b)) == b`.
//! * MLS objects inside MIMI messages ([`mls`]) are kept as their exact bytes; their
//!   extent is found with openmls' own deserializer; `parse()` gives the openmls type.
//! * SignWithLabel / EncryptWithLabel are in [`labeled`], on `OpenMlsCrypto` and
//!   `Signer` passed in by the caller (no provider is created here).
//! * Every top-level message has a one-line [`Summary`] for traces.
//!
//! ## Choices
//!
//! Where the draft is inconsistent or silent (the draft section in brackets):
//!
//! 1. **FanoutMessage tag** [P§5.5]. The draft's `select (message.wire_format)` mixes
//!    wire formats and content types and has no `protocol` field. Here a
//!    `uint8 FanoutKind { application(1), welcome(2), proposal(3), commit(4) }`
//!    follows `timestamp` and precedes `message`; the tag must agree with the
//!    message (decode rejects a mismatch). No `protocol` field (mls10 implied).
//! 2. **`string errorDescription`** [P§5.3] is `opaque<V>` holding UTF-8; non-UTF-8 is a
//!    decode error.
//! 3. **SubmitMessageResponse** [P§5.4]: the select's `success` branch is the enum's
//!    `accepted(0)`; `notAllowed` carries nothing.
//! 4. **GroupInfoRequest `joiningCode`** [P§5.6] is `optional<opaque joiningCode<V>>` in
//!    both the TBS and the request. **GroupInfoResponse**'s first field (named
//!    `version`, typed Protocol) is the `protocol` the select refers to; the response
//!    TBS is signed only for `success` and contains `status` = success(1).
//! 5. **UpdateRequest** has no `protocol` field (the draft selects on `room.protocol`,
//!    which is not on the wire): it is exactly a HandshakeBundle.
//! 6. **HandshakeBundle select**: the content type is read from the embedded
//!    MLSMessage (PublicMessage, or PrivateMessage whose content_type is also in the
//!    clear); anything that is not a proposal or commit is a decode error. Whether a
//!    PrivateMessage handshake is acceptable is the hub's policy, not the codec's.
//!    `welcome` and `groupInfo` are the bare RFC 9420 structs (not MLSMessages), as
//!    written; FanoutMessage carries MLSMessages, so [`WelcomeBytes::to_mls_message`]
//!    converts. SemiPrivateMessage is not supported (openmls has none).
//! 7. **RatchetTreeOption.full**: RT writes `Node ratchet_tree<V>`; here it is the
//!    RFC 9420 `ratchet_tree` extension encoding `optional<Node> ratchet_tree<V>`
//!    (blank nodes must be representable), parsed with openmls' `RatchetTreeIn`.
//!    RT's select label `httpsUrl` is read as the enum's `httpsUri(2)`.
//! 8. **KeyMaterialRequest**: `roomId` is a plain IdentifierUri as in the struct; an
//!    empty URI means "not in the context of a room". `acceptableCiphersuites` must
//!    be non-empty (decode error otherwise), and the signature scheme of its **first**
//!    suite is the scheme of `requesterSignatureKey` (the draft does not say which
//!    scheme signs the request). CipherSuite values are kept as `uint16`, so suites
//!    openmls does not implement can be listed.
//! 9. **KeyMaterialResponse**: the P§5.2 rule "clients only for success /
//!    partialSuccess / noCompatibleMaterial" is checked by
//!    [`KeyMaterialResponse::check_rules`], not by decode, so a receiver can see and
//!    report a violating response.
//! 10. **EncryptWithLabel context** for `encrypted_groupinfo_and_tree` is the room id's
//!     URI bytes (the response's `room_id`); the HPKE configuration is that of the
//!     request's (and response's) `cipher_suite`.
//! 11. **Strictness**: unknown or `reserved(0)` enum values, optional presence bytes
//!     other than 0/1, non-minimal or 8-byte `<V>` headers, vector items of zero
//!     length and trailing bytes are all decode errors. A `/notify` body must hold at
//!     least one FanoutMessage.

pub mod codec;
pub mod error;
pub mod fanout;
pub mod group_info;
pub mod key_material;
pub mod labeled;
pub mod mls;
pub mod submit;
pub mod update;

#[cfg(test)]
mod tests;

pub use codec::{
    decode_exact, encode, CipherSuite, Decode, IdentifierUri, Protocol, Reader, MAX_BODY_BYTES,
    MAX_JOINING_CODE_BYTES, MAX_SIGNATURE_BYTES, MAX_TEXT_BYTES, MAX_URI_BYTES, MAX_VECTOR_ITEMS,
};
pub use error::{Place, WireError};
pub use fanout::{FanoutBody, FanoutMessage, NotifyBody};
pub use group_info::{
    GroupInfoRatchetTreeTbe, GroupInfoRequest, GroupInfoRequestTbs, GroupInfoResponse,
    GroupInfoStatus, GroupInfoSuccess, PendingProposal,
};
pub use key_material::{
    ClientKeyMaterial, ClientMaterial, KeyMaterialClientCode, KeyMaterialRequest,
    KeyMaterialRequestTbs, KeyMaterialResponse, KeyMaterialUserCode,
};
pub use mls::{
    CapabilitiesBytes, ContentKind, CredentialBytes, ExternalSenderBytes, GroupInfoBytes,
    GroupInfoExtensionsBytes, HpkeCiphertextBytes, HpkePublicKeyBytes, KeyPackageBytes,
    MlsMessageBytes, MlsMessageInfo, ProposalRefBytes, RatchetTreeBytes, RequiredCapabilitiesBytes,
    SenderKind, SignaturePublicKeyBytes, WelcomeBytes, WireFormatKind,
};
pub use submit::{Frank, SubmitMessageRequest, SubmitMessageResponse, SubmitOutcome};
pub use update::{
    GroupInfoOption, HandshakeBody, HandshakeBundle, PartialGroupInfo, RatchetTreeOption,
    RatchetTreePresence, UpdateOutcome, UpdateRequest, UpdateRoomResponse,
};

/// A one-line decoded description of a message for traces: endpoint, structure, and
/// what is visible (room, group, epoch, sender, content type, codes).
pub trait Summary {
    fn summary(&self) -> String;
}
