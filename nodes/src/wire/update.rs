//! Update room state, `POST /update/{roomId}` (P§5.3), with the
//! RatchetTreeOption and PartialGroupInfo of draft-mahy-mls-ratchet-tree-options (RT§3–4).

use super::codec::{read_code, write_raw, Decode, Reader, MAX_URI_BYTES};
use super::error::{Place, WireError};
use super::mls::{
    ContentKind, GroupInfoBytes, GroupInfoExtensionsBytes, MlsMessageBytes, ProposalRefBytes,
    RatchetTreeBytes, WelcomeBytes,
};
use super::{Summary, MAX_SIGNATURE_BYTES, MAX_TEXT_BYTES};
use tls_codec::{Size, TlsSerialize, TlsSize, VLBytes};

/// `RatchetTreeOption` (RT§3): how a joiner obtains the ratchet tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RatchetTreeOption {
    /// `full(1)`: the tree inline (the `ratchet_tree` extension's encoding).
    Full(RatchetTreeBytes),
    /// `httpsUri(2)`: download from `ratchet_tree_url`.
    HttpsUri {
        ratchet_tree_url: VLBytes,
        tree_signature: VLBytes,
    },
    /// `outOfBand(3)`.
    OutOfBand { tree_signature: VLBytes },
    /// `distributionService(4)`: the hub rebuilds the tree from the handshakes.
    DistributionService,
}

impl RatchetTreeOption {
    fn code(&self) -> u8 {
        match self {
            Self::Full(_) => 1,
            Self::HttpsUri { .. } => 2,
            Self::OutOfBand { .. } => 3,
            Self::DistributionService => 4,
        }
    }

    /// A short name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full(_) => "full",
            Self::HttpsUri { .. } => "httpsUri",
            Self::OutOfBand { .. } => "outOfBand",
            Self::DistributionService => "distributionService",
        }
    }
}

impl Size for RatchetTreeOption {
    fn tls_serialized_len(&self) -> usize {
        1 + match self {
            Self::Full(t) => t.tls_serialized_len(),
            Self::HttpsUri {
                ratchet_tree_url,
                tree_signature,
            } => ratchet_tree_url.tls_serialized_len() + tree_signature.tls_serialized_len(),
            Self::OutOfBand { tree_signature } => tree_signature.tls_serialized_len(),
            Self::DistributionService => 0,
        }
    }
}

impl tls_codec::Serialize for RatchetTreeOption {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = write_raw(w, &[self.code()])?;
        n += match self {
            Self::Full(t) => t.tls_serialize(w)?,
            Self::HttpsUri {
                ratchet_tree_url,
                tree_signature,
            } => ratchet_tree_url.tls_serialize(w)? + tree_signature.tls_serialize(w)?,
            Self::OutOfBand { tree_signature } => tree_signature.tls_serialize(w)?,
            Self::DistributionService => 0,
        };
        Ok(n)
    }
}

impl Decode for RatchetTreeOption {
    const NAME: &'static str = "RatchetTreeOption";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        match r.u8(at("representation"))? {
            1 => Ok(Self::Full(RatchetTreeBytes::read(r, at("ratchet_tree"))?)),
            2 => Ok(Self::HttpsUri {
                ratchet_tree_url: r.vl_bytes(at("ratchet_tree_url"), MAX_URI_BYTES)?,
                tree_signature: r.vl_bytes(at("tree_signature"), MAX_SIGNATURE_BYTES)?,
            }),
            3 => Ok(Self::OutOfBand {
                tree_signature: r.vl_bytes(at("tree_signature"), MAX_SIGNATURE_BYTES)?,
            }),
            4 => Ok(Self::DistributionService),
            v => Err(WireError::UnknownCode {
                at: at("representation"),
                value: u64::from(v),
            }),
        }
    }
}

/// `RatchetTreePresence` (RT§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
#[repr(u8)]
pub enum RatchetTreePresence {
    NoRatchetTree = 0,
    Present = 1,
    Removed = 2,
    Added = 3,
}

/// `PartialGroupInfo` (RT§4): what the hub needs, with the previous epoch's GroupInfo
/// and the commit, to rebuild the new GroupInfo.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct PartialGroupInfo {
    pub ratchet_tree_presence: RatchetTreePresence,
    /// GroupInfo extensions excluding `ratchet_tree`.
    pub group_info_extensions: GroupInfoExtensionsBytes,
    /// The committer's GroupInfo signature.
    pub signature: VLBytes,
}

impl Decode for PartialGroupInfo {
    const NAME: &'static str = "PartialGroupInfo";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        Ok(PartialGroupInfo {
            ratchet_tree_presence: read_code(r, at("ratchet_tree_presence"), |v| match v {
                0 => Some(RatchetTreePresence::NoRatchetTree),
                1 => Some(RatchetTreePresence::Present),
                2 => Some(RatchetTreePresence::Removed),
                3 => Some(RatchetTreePresence::Added),
                _ => None,
            })?,
            group_info_extensions: GroupInfoExtensionsBytes::read(r, at("group_info_extensions"))?,
            signature: r.vl_bytes(at("signature"), MAX_SIGNATURE_BYTES)?,
        })
    }
}

/// `GroupInfoOption` (P§5.3): `representation` full(1) or partial(2).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
#[repr(u8)]
pub enum GroupInfoOption {
    /// The whole GroupInfo (without `ratchet_tree`).
    #[tls_codec(discriminant = 1)]
    Full(GroupInfoBytes),
    /// A PartialGroupInfo (RT§4).
    #[tls_codec(discriminant = 2)]
    Partial(PartialGroupInfo),
}

impl GroupInfoOption {
    /// A short name for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full(_) => "full",
            Self::Partial(_) => "partial",
        }
    }
}

impl Decode for GroupInfoOption {
    const NAME: &'static str = "GroupInfoOption";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        match r.u8(at("representation"))? {
            1 => Ok(Self::Full(GroupInfoBytes::read(r, at("groupInfo"))?)),
            2 => Ok(Self::Partial(PartialGroupInfo::decode(r)?)),
            v => Err(WireError::UnknownCode {
                at: at("representation"),
                value: u64::from(v),
            }),
        }
    }
}

/// The `select (proposalOrCommit.content.content_type)` part of a [`HandshakeBundle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeBody {
    /// `case commit`.
    Commit {
        /// The Welcome (without `ratchet_tree`), if the commit adds members.
        welcome: Option<WelcomeBytes>,
        group_info_option: GroupInfoOption,
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `case proposal`: further proposals accepted or rejected with the first.
    Proposal {
        more_proposals: Vec<MlsMessageBytes>,
    },
}

/// `HandshakeBundle` (P§5.3): a proposal or commit (PublicMessage or
/// SemiPrivateMessage) and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeBundle {
    pub proposal_or_commit: MlsMessageBytes,
    pub body: HandshakeBody,
}

const HB: &str = "HandshakeBundle";

impl HandshakeBundle {
    /// Check that `body` matches the content type of `proposal_or_commit`.
    pub fn check_select(&self) -> Result<(), WireError> {
        let want = match self.body {
            HandshakeBody::Commit { .. } => ContentKind::Commit,
            HandshakeBody::Proposal { .. } => ContentKind::Proposal,
        };
        if self.proposal_or_commit.content_type() != Some(want) {
            return Err(WireError::Invalid {
                at: Place::new(HB, "proposalOrCommit"),
                reason: format!(
                    "content type {:?} does not match the {want:?} body",
                    self.proposal_or_commit.content_type()
                ),
            });
        }
        Ok(())
    }
}

impl Size for HandshakeBundle {
    fn tls_serialized_len(&self) -> usize {
        self.proposal_or_commit.tls_serialized_len()
            + match &self.body {
                HandshakeBody::Commit {
                    welcome,
                    group_info_option,
                    ratchet_tree_option,
                } => {
                    welcome.tls_serialized_len()
                        + group_info_option.tls_serialized_len()
                        + ratchet_tree_option.tls_serialized_len()
                }
                HandshakeBody::Proposal { more_proposals } => more_proposals.tls_serialized_len(),
            }
    }
}

impl tls_codec::Serialize for HandshakeBundle {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        self.check_select()
            .map_err(|e| tls_codec::Error::EncodingError(e.to_string()))?;
        let mut n = self.proposal_or_commit.tls_serialize(w)?;
        n += match &self.body {
            HandshakeBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                welcome.tls_serialize(w)?
                    + group_info_option.tls_serialize(w)?
                    + ratchet_tree_option.tls_serialize(w)?
            }
            HandshakeBody::Proposal { more_proposals } => more_proposals.tls_serialize(w)?,
        };
        Ok(n)
    }
}

impl Decode for HandshakeBundle {
    const NAME: &'static str = HB;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(HB, f);
        let proposal_or_commit = MlsMessageBytes::read(r, at("proposalOrCommit"))?;
        let body = match proposal_or_commit.content_type() {
            Some(ContentKind::Commit) => HandshakeBody::Commit {
                welcome: r.optional(at("welcome"), |r| WelcomeBytes::read(r, at("welcome")))?,
                group_info_option: GroupInfoOption::decode(r)?,
                ratchet_tree_option: RatchetTreeOption::decode(r)?,
            },
            Some(ContentKind::Proposal) => HandshakeBody::Proposal {
                more_proposals: r.vector(at("moreProposals"), |r| {
                    MlsMessageBytes::read(r, at("moreProposals"))
                })?,
            },
            other => {
                return Err(WireError::Invalid {
                    at: at("proposalOrCommit"),
                    reason: format!(
                        "a {:?} with content type {other:?} is neither a proposal nor a commit",
                        proposal_or_commit.wire_format()
                    ),
                })
            }
        };
        Ok(HandshakeBundle {
            proposal_or_commit,
            body,
        })
    }
}

impl HandshakeBundle {
    fn describe(&self) -> String {
        let mut s = self.proposal_or_commit.info().summary();
        match &self.body {
            HandshakeBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                s.push_str(&format!(
                    " welcome={} groupInfo={} tree={}",
                    if welcome.is_some() { "yes" } else { "no" },
                    group_info_option.name(),
                    ratchet_tree_option.name()
                ));
            }
            HandshakeBody::Proposal { more_proposals } => {
                s.push_str(&format!(" moreProposals={}", more_proposals.len()));
            }
        }
        s
    }
}

/// `UpdateRequest` (P§5.3): for mls10 just the HandshakeBundle (the draft's
/// `select (room.protocol)` has no field on the wire).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct UpdateRequest {
    pub bundle: HandshakeBundle,
}

impl Decode for UpdateRequest {
    const NAME: &'static str = "UpdateRequest";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(UpdateRequest {
            bundle: HandshakeBundle::decode(r)?,
        })
    }
}

impl Summary for UpdateRequest {
    fn summary(&self) -> String {
        format!("/update UpdateRequest {}", self.bundle.describe())
    }
}

/// `UpdateResponseCode` (P§5.3) with its `select` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// `success(0)`: accepted at `accepted_timestamp` (ms since the UNIX epoch).
    Success { accepted_timestamp: u64 },
    /// `wrongEpoch(1)`: the hub's current epoch.
    WrongEpoch { current_epoch: u64 },
    /// `notAllowed(2)`.
    NotAllowed,
    /// `invalidProposal(3)`: the invalid proposals.
    InvalidProposal {
        invalid_proposals: Vec<ProposalRefBytes>,
    },
}

impl UpdateOutcome {
    /// The `UpdateResponseCode` value.
    pub fn code(&self) -> u8 {
        match self {
            Self::Success { .. } => 0,
            Self::WrongEpoch { .. } => 1,
            Self::NotAllowed => 2,
            Self::InvalidProposal { .. } => 3,
        }
    }
}

/// `UpdateRoomResponse` (P§5.3). `errorDescription` is `opaque<V>` UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRoomResponse {
    pub error_description: String,
    pub outcome: UpdateOutcome,
}

impl UpdateRoomResponse {
    fn description(&self) -> VLBytes {
        VLBytes::new(self.error_description.as_bytes().to_vec())
    }
}

impl Size for UpdateRoomResponse {
    fn tls_serialized_len(&self) -> usize {
        1 + self.description().tls_serialized_len()
            + match &self.outcome {
                UpdateOutcome::Success { .. } | UpdateOutcome::WrongEpoch { .. } => 8,
                UpdateOutcome::NotAllowed => 0,
                UpdateOutcome::InvalidProposal { invalid_proposals } => {
                    invalid_proposals.tls_serialized_len()
                }
            }
    }
}

impl tls_codec::Serialize for UpdateRoomResponse {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = write_raw(w, &[self.outcome.code()])?;
        n += self.description().tls_serialize(w)?;
        n += match &self.outcome {
            UpdateOutcome::Success {
                accepted_timestamp: v,
            }
            | UpdateOutcome::WrongEpoch { current_epoch: v } => v.tls_serialize(w)?,
            UpdateOutcome::NotAllowed => 0,
            UpdateOutcome::InvalidProposal { invalid_proposals } => {
                invalid_proposals.tls_serialize(w)?
            }
        };
        Ok(n)
    }
}

impl Decode for UpdateRoomResponse {
    const NAME: &'static str = "UpdateRoomResponse";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        let code = r.u8(at("responseCode"))?;
        let error_description = r.text(at("errorDescription"), MAX_TEXT_BYTES)?;
        let outcome = match code {
            0 => UpdateOutcome::Success {
                accepted_timestamp: r.u64(at("accepted_timestamp"))?,
            },
            1 => UpdateOutcome::WrongEpoch {
                current_epoch: r.u64(at("currentEpoch"))?,
            },
            2 => UpdateOutcome::NotAllowed,
            3 => UpdateOutcome::InvalidProposal {
                invalid_proposals: r.vector(at("invalidProposals"), |r| {
                    ProposalRefBytes::read(r, at("invalidProposals"))
                })?,
            },
            v => {
                return Err(WireError::UnknownCode {
                    at: at("responseCode"),
                    value: u64::from(v),
                })
            }
        };
        Ok(UpdateRoomResponse {
            error_description,
            outcome,
        })
    }
}

impl Summary for UpdateRoomResponse {
    fn summary(&self) -> String {
        let what = match &self.outcome {
            UpdateOutcome::Success { accepted_timestamp } => {
                format!("success accepted_timestamp={accepted_timestamp}")
            }
            UpdateOutcome::WrongEpoch { current_epoch } => {
                format!("wrongEpoch currentEpoch={current_epoch}")
            }
            UpdateOutcome::NotAllowed => "notAllowed".to_string(),
            UpdateOutcome::InvalidProposal { invalid_proposals } => {
                format!("invalidProposal refs={}", invalid_proposals.len())
            }
        };
        if self.error_description.is_empty() {
            format!("/update UpdateRoomResponse {what}")
        } else {
            format!(
                "/update UpdateRoomResponse {what} error={:?}",
                self.error_description
            )
        }
    }
}
