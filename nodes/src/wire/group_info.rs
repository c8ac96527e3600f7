//! Claim group key information for an external join, `POST /groupInfo/{roomId}`
//! (P§5.6; choice 4 of [`crate::wire`] for its inconsistencies).

use super::codec::{
    decode_exact, encode, read_code, write_raw, CipherSuite, Decode, IdentifierUri, Protocol,
    Reader, MAX_JOINING_CODE_BYTES,
};
use super::error::{Place, WireError};
use super::labeled::{
    decrypt_with_label, encrypt_with_label, sign_with_label, verify_with_label,
    GROUP_INFO_ENCRYPTION_LABEL, GROUP_INFO_REQUEST_LABEL, GROUP_INFO_RESPONSE_LABEL,
};
use super::mls::{
    CredentialBytes, ExternalSenderBytes, GroupInfoBytes, HpkeCiphertextBytes, HpkePublicKeyBytes,
    MlsMessageBytes, SignaturePublicKeyBytes,
};
use super::update::RatchetTreeOption;
use super::{Summary, MAX_SIGNATURE_BYTES};
use crate::mls::cost;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer;
use tls_codec::{Serialize as _, Size, TlsSerialize, TlsSize, VLBytes};

const REQ_TBS: &str = "GroupInfoRequestTBS";
const REQ: &str = "GroupInfoRequest";
const RESP_TBS: &str = "GroupInfoResponseTBS";
const RESP: &str = "GroupInfoResponse";
const TBE: &str = "GroupInfoRatchetTreeTBE";

/// `GroupInfoRequestTBS` (P§5.6). `joiningCode` is `optional<opaque joiningCode<V>>`
/// here and in the request (the draft has it optional only in the TBS).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct GroupInfoRequestTbs {
    pub protocol: Protocol,
    /// A suite the hub supports; its signature scheme signs request and response, and
    /// its HPKE configuration encrypts the response.
    pub cipher_suite: CipherSuite,
    pub requesting_signature_key: SignaturePublicKeyBytes,
    pub requesting_credential: CredentialBytes,
    /// The response is encrypted to this key.
    pub group_info_public_key: HpkePublicKeyBytes,
    pub joining_code: Option<VLBytes>,
}

impl GroupInfoRequestTbs {
    fn read(r: &mut Reader<'_>, s: &'static str) -> Result<Self, WireError> {
        let at = |f| Place::new(s, f);
        Ok(GroupInfoRequestTbs {
            protocol: Protocol::read(r, at("protocol"))?,
            cipher_suite: CipherSuite::read(r, at("cipher_suite"))?,
            requesting_signature_key: SignaturePublicKeyBytes::read(
                r,
                at("requestingSignatureKey"),
            )?,
            requesting_credential: CredentialBytes::read(r, at("requestingCredential"))?,
            group_info_public_key: HpkePublicKeyBytes::read(r, at("groupInfoPublicKey"))?,
            joining_code: r.optional(at("joiningCode"), |r| {
                r.vl_bytes(at("joiningCode"), MAX_JOINING_CODE_BYTES)
            })?,
        })
    }
}

impl Decode for GroupInfoRequestTbs {
    const NAME: &'static str = REQ_TBS;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Self::read(r, REQ_TBS)
    }
}

/// `GroupInfoRequest` (P§5.6): the TBS fields and `signature` =
/// SignWithLabel(requestingSignatureKey, "GroupInfoRequestTBS", GroupInfoRequestTBS).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct GroupInfoRequest {
    pub tbs: GroupInfoRequestTbs,
    pub signature: VLBytes,
}

impl GroupInfoRequest {
    /// Sign `tbs`; the signer's scheme must be that of `cipher_suite`.
    pub fn sign(tbs: GroupInfoRequestTbs, signer: &impl Signer) -> Result<Self, WireError> {
        cost::measure("group_info.request_sign", || {
            let suite = tbs
                .cipher_suite
                .openmls(Place::new(REQ_TBS, "cipher_suite"))?;
            if signer.signature_scheme() != suite.signature_algorithm() {
                return Err(WireError::Invalid {
                    at: Place::new(REQ_TBS, "cipher_suite"),
                    reason: "signer's scheme differs from the suite's".into(),
                });
            }
            let sig = sign_with_label(signer, REQ, GROUP_INFO_REQUEST_LABEL, &encode(&tbs)?)?;
            Ok(GroupInfoRequest {
                tbs,
                signature: sig.into(),
            })
        })
    }

    /// Verify the signature with `requestingSignatureKey`.
    pub fn verify(&self, crypto: &impl OpenMlsCrypto) -> Result<(), WireError> {
        cost::measure("group_info.request_verify", || {
            let suite = self
                .tbs
                .cipher_suite
                .openmls(Place::new(REQ, "cipher_suite"))?;
            verify_with_label(
                crypto,
                suite.signature_algorithm(),
                &self.tbs.requesting_signature_key.key()?,
                REQ,
                GROUP_INFO_REQUEST_LABEL,
                &encode(&self.tbs)?,
                self.signature.as_slice(),
            )
        })
    }
}

impl Decode for GroupInfoRequest {
    const NAME: &'static str = REQ;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(GroupInfoRequest {
            tbs: GroupInfoRequestTbs::read(r, REQ)?,
            signature: r.vl_bytes(Place::new(REQ, "signature"), MAX_SIGNATURE_BYTES)?,
        })
    }
}

impl Summary for GroupInfoRequest {
    fn summary(&self) -> String {
        let who = self
            .tbs
            .requesting_credential
            .parse()
            .ok()
            .and_then(|c| {
                openmls::prelude::BasicCredential::try_from(c)
                    .ok()
                    .map(|b| String::from_utf8_lossy(b.identity()).into_owned())
            })
            .unwrap_or_else(|| "?".into());
        format!(
            "/groupInfo GroupInfoRequest suite=0x{:04x} requester={who} joiningCode={} sig={}B",
            self.tbs.cipher_suite.0,
            if self.tbs.joining_code.is_some() {
                "yes"
            } else {
                "no"
            },
            self.signature.as_slice().len()
        )
    }
}

/// `PendingProposal` (P§5.6): a proposal the hub accepted in the current epoch.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct PendingProposal {
    pub proposal: MlsMessageBytes,
    pub hub_accepted_time: u64,
}

impl Decode for PendingProposal {
    const NAME: &'static str = "PendingProposal";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        Ok(PendingProposal {
            proposal: MlsMessageBytes::read(r, at("proposal"))?,
            hub_accepted_time: r.u64(at("hub_accepted_time"))?,
        })
    }
}

/// `GroupInfoRatchetTreeTBE` (P§5.6): what the hub encrypts to the requester.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct GroupInfoRatchetTreeTbe {
    /// Without an embedded `ratchet_tree`.
    pub group_info: GroupInfoBytes,
    pub ratchet_tree_option: RatchetTreeOption,
    pub pending_proposals: Vec<PendingProposal>,
}

impl Decode for GroupInfoRatchetTreeTbe {
    const NAME: &'static str = TBE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(TBE, f);
        Ok(GroupInfoRatchetTreeTbe {
            group_info: GroupInfoBytes::read(r, at("groupInfo"))?,
            ratchet_tree_option: RatchetTreeOption::decode(r)?,
            pending_proposals: r.vector(at("pending_proposals"), PendingProposal::decode)?,
        })
    }
}

impl GroupInfoRatchetTreeTbe {
    /// `encrypted_groupinfo_and_tree` = EncryptWithLabel(groupInfoPublicKey,
    /// "GroupInfo and ratchet_tree encryption", room_id, self) with the HPKE
    /// configuration of `suite`. The context is the room id's URI bytes.
    pub fn seal(
        &self,
        crypto: &impl OpenMlsCrypto,
        suite: CipherSuite,
        group_info_public_key: &HpkePublicKeyBytes,
        room_id: &IdentifierUri,
    ) -> Result<HpkeCiphertextBytes, WireError> {
        cost::measure("group_info.seal", || {
            let suite = suite.openmls(Place::new(RESP, "cipher_suite"))?;
            let ct = encrypt_with_label(
                crypto,
                suite,
                &group_info_public_key.key()?,
                TBE,
                GROUP_INFO_ENCRYPTION_LABEL,
                room_id.as_bytes(),
                &encode(self)?,
            )?;
            HpkeCiphertextBytes::from_openmls(&ct)
        })
    }

    /// DecryptWithLabel of [`seal`](Self::seal), then decode (trailing bytes rejected).
    pub fn open(
        crypto: &impl OpenMlsCrypto,
        suite: CipherSuite,
        private_key: &[u8],
        room_id: &IdentifierUri,
        ciphertext: &HpkeCiphertextBytes,
    ) -> Result<Self, WireError> {
        cost::measure("group_info.open", || {
            let suite = suite.openmls(Place::new(RESP, "cipher_suite"))?;
            let pt = decrypt_with_label(
                crypto,
                suite,
                private_key,
                TBE,
                GROUP_INFO_ENCRYPTION_LABEL,
                room_id.as_bytes(),
                &ciphertext.parse()?,
            )?;
            decode_exact(&pt)
        })
    }
}

/// The success branch of a [`GroupInfoResponse`].
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct GroupInfoSuccess {
    pub cipher_suite: CipherSuite,
    /// The hub's external-sender entry; its key signs the response.
    pub hub_sender: ExternalSenderBytes,
    pub encrypted_groupinfo_and_tree: HpkeCiphertextBytes,
    /// SignWithLabel(hub_sender.signature_key, "GroupInfoResponseTBS", TBS).
    pub signature: VLBytes,
}

/// `GroupInfoCode` (P§5.6) with its `select` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupInfoStatus {
    /// `success(1)`.
    Success(GroupInfoSuccess),
    /// `notAuthorized(2)`.
    NotAuthorized,
    /// `noSuchRoom(3)`.
    NoSuchRoom,
}

impl GroupInfoStatus {
    /// The `GroupInfoCode` value.
    pub fn code(&self) -> u8 {
        match self {
            Self::Success(_) => 1,
            Self::NotAuthorized => 2,
            Self::NoSuchRoom => 3,
        }
    }
}

/// `GroupInfoResponse` (P§5.6). The draft's first field is named `version` but has
/// type Protocol and is what `select (protocol)` means: one `protocol` field here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfoResponse {
    pub protocol: Protocol,
    /// `opaque room_id<V>`; same encoding as an IdentifierUri.
    pub room_id: IdentifierUri,
    pub status: GroupInfoStatus,
}

/// `GroupInfoResponseTBS` (P§5.6): protocol, room_id, status (= success), cipher_suite,
/// hub_sender, encrypted_groupinfo_and_tree.
fn response_tbs(
    protocol: Protocol,
    room_id: &IdentifierUri,
    s: &GroupInfoSuccess,
) -> Result<Vec<u8>, WireError> {
    let enc = |e: tls_codec::Error| WireError::Encode {
        structure: RESP_TBS,
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    protocol.tls_serialize(&mut out).map_err(enc)?;
    room_id.tls_serialize(&mut out).map_err(enc)?;
    out.push(1);
    s.cipher_suite.tls_serialize(&mut out).map_err(enc)?;
    s.hub_sender.tls_serialize(&mut out).map_err(enc)?;
    s.encrypted_groupinfo_and_tree
        .tls_serialize(&mut out)
        .map_err(enc)?;
    Ok(out)
}

impl GroupInfoResponse {
    /// A signed success response: `signer` must hold `hub_sender`'s signature key and
    /// use the scheme of `cipher_suite`.
    pub fn sign_success(
        room_id: IdentifierUri,
        cipher_suite: CipherSuite,
        hub_sender: ExternalSenderBytes,
        encrypted_groupinfo_and_tree: HpkeCiphertextBytes,
        signer: &impl Signer,
    ) -> Result<Self, WireError> {
        cost::measure("group_info.response_sign", || {
            let suite = cipher_suite.openmls(Place::new(RESP, "cipher_suite"))?;
            if signer.signature_scheme() != suite.signature_algorithm() {
                return Err(WireError::Invalid {
                    at: Place::new(RESP, "cipher_suite"),
                    reason: "signer's scheme differs from the suite's".into(),
                });
            }
            let mut success = GroupInfoSuccess {
                cipher_suite,
                hub_sender,
                encrypted_groupinfo_and_tree,
                signature: VLBytes::new(vec![]),
            };
            let tbs = response_tbs(Protocol::Mls10, &room_id, &success)?;
            success.signature =
                sign_with_label(signer, RESP, GROUP_INFO_RESPONSE_LABEL, &tbs)?.into();
            Ok(GroupInfoResponse {
                protocol: Protocol::Mls10,
                room_id,
                status: GroupInfoStatus::Success(success),
            })
        })
    }

    /// Verify a success response's signature with `hub_sender.signature_key`. (The
    /// caller checks that `hub_sender` is the room's hub, e.g. against the group's
    /// `external_senders`.)
    pub fn verify(&self, crypto: &impl OpenMlsCrypto) -> Result<(), WireError> {
        cost::measure("group_info.response_verify", || {
            self.verify_signature(crypto)
        })
    }

    fn verify_signature(&self, crypto: &impl OpenMlsCrypto) -> Result<(), WireError> {
        let GroupInfoStatus::Success(s) = &self.status else {
            return Err(WireError::Invalid {
                at: Place::new(RESP, "status"),
                reason: "only a success response is signed".into(),
            });
        };
        let suite = s.cipher_suite.openmls(Place::new(RESP, "cipher_suite"))?;
        verify_with_label(
            crypto,
            suite.signature_algorithm(),
            &s.hub_sender.signature_key()?,
            RESP,
            GROUP_INFO_RESPONSE_LABEL,
            &response_tbs(self.protocol, &self.room_id, s)?,
            s.signature.as_slice(),
        )
    }
}

impl Size for GroupInfoResponse {
    fn tls_serialized_len(&self) -> usize {
        1 + self.room_id.tls_serialized_len()
            + 1
            + match &self.status {
                GroupInfoStatus::Success(s) => s.tls_serialized_len(),
                _ => 0,
            }
    }
}

impl tls_codec::Serialize for GroupInfoResponse {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.protocol.tls_serialize(w)?;
        n += self.room_id.tls_serialize(w)?;
        n += write_raw(w, &[self.status.code()])?;
        if let GroupInfoStatus::Success(s) = &self.status {
            n += s.tls_serialize(w)?;
        }
        Ok(n)
    }
}

impl Decode for GroupInfoResponse {
    const NAME: &'static str = RESP;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(RESP, f);
        let protocol = Protocol::read(r, at("version"))?;
        let room_id = IdentifierUri::read(r, at("room_id"))?;
        let code = read_code(r, at("status"), |v| (1..=3).contains(&v).then_some(v))?;
        let status = match code {
            1 => GroupInfoStatus::Success(GroupInfoSuccess {
                cipher_suite: CipherSuite::read(r, at("cipher_suite"))?,
                hub_sender: ExternalSenderBytes::read(r, at("hub_sender"))?,
                encrypted_groupinfo_and_tree: HpkeCiphertextBytes::read(
                    r,
                    at("encrypted_groupinfo_and_tree"),
                )?,
                signature: r.vl_bytes(at("signature"), MAX_SIGNATURE_BYTES)?,
            }),
            2 => GroupInfoStatus::NotAuthorized,
            _ => GroupInfoStatus::NoSuchRoom,
        };
        Ok(GroupInfoResponse {
            protocol,
            room_id,
            status,
        })
    }
}

impl Summary for GroupInfoResponse {
    fn summary(&self) -> String {
        let what = match &self.status {
            GroupInfoStatus::Success(s) => format!(
                "success suite=0x{:04x} encrypted={}B",
                s.cipher_suite.0,
                s.encrypted_groupinfo_and_tree.as_bytes().len()
            ),
            GroupInfoStatus::NotAuthorized => "notAuthorized".into(),
            GroupInfoStatus::NoSuchRoom => "noSuchRoom".into(),
        };
        format!(
            "/groupInfo GroupInfoResponse room={} {what}",
            self.room_id.display()
        )
    }
}
