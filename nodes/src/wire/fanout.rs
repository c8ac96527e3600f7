//! Fan-out, `POST /notify/{roomId}` (P§5.5; choice 1 of [`crate::wire`]).
//!
//! The draft's `select (message.wire_format)` mixes wire formats and content types,
//! so this encoding carries an explicit `FanoutKind` tag after the timestamp:
//!
//! ```text
//! enum { reserved(0), application(1), welcome(2), proposal(3), commit(4),
//!        roomState(5), (255) } FanoutKind;
//! struct {
//!   uint64 timestamp;
//!   FanoutKind kind;
//!   MLSMessage message;
//!   select (kind) {
//!     case application: optional<Frank> frank;
//!     case welcome:     RatchetTreeOption ratchetTreeOption;
//!     case proposal:    MLSMessage moreProposals<V>;
//!     case commit:      MLSMessage externalProposals<V>;
//!     case roomState:   uint64 epoch; opaque roomState<V>;   // x-hub-only-room-state
//!   };
//! } FanoutMessage;
//! ```
//!
//! The tag must agree with the message: application → content type application;
//! welcome → wire format welcome; proposal / commit → that content type; roomState →
//! a commit (the one the signalled state goes with, see [`crate::room::hub_only`]).

use super::codec::{write_raw, Decode, Reader, MAX_BODY_BYTES, MAX_VECTOR_ITEMS};
use super::error::{Place, WireError};
use super::mls::{ContentKind, MlsMessageBytes, WireFormatKind};
use super::submit::Frank;
use super::update::RatchetTreeOption;
use super::Summary;
use tls_codec::Size;

/// The kind-specific part of a [`FanoutMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FanoutBody {
    /// `application(1)`: an application message and the hub's frank, if any.
    Application { frank: Option<Frank> },
    /// `welcome(2)`: a Welcome and how to get the tree.
    Welcome {
        ratchet_tree_option: RatchetTreeOption,
    },
    /// `proposal(3)`: the proposal and the bundle's other proposals (P§5.5: the same
    /// list as in the HandshakeBundle).
    Proposal {
        more_proposals: Vec<MlsMessageBytes>,
    },
    /// `commit(4)`: the commit and, after an external commit, the hub's regenerated
    /// proposals for the new epoch.
    Commit {
        external_proposals: Vec<MlsMessageBytes>,
    },
    /// `roomState(5)` (x-hub-only-room-state, [`crate::room::hub_only`]): the hub's room
    /// state of `epoch`, the epoch the carried commit starts. Not authenticated by MLS.
    RoomState { epoch: u64, room_state: Vec<u8> },
}

/// At most this many bytes of a signalled room state.
pub const MAX_ROOM_STATE_BYTES: usize = 4 << 20;

impl FanoutBody {
    /// The `FanoutKind` value.
    pub fn code(&self) -> u8 {
        match self {
            Self::Application { .. } => 1,
            Self::Welcome { .. } => 2,
            Self::Proposal { .. } => 3,
            Self::Commit { .. } => 4,
            Self::RoomState { .. } => 5,
        }
    }

    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Application { .. } => "application",
            Self::Welcome { .. } => "welcome",
            Self::Proposal { .. } => "proposal",
            Self::Commit { .. } => "commit",
            Self::RoomState { .. } => "roomState",
        }
    }
}

/// `FanoutMessage` (P§5.5) with the explicit kind tag described in the module doc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutMessage {
    /// The hub's acceptance time (ms since the UNIX epoch).
    pub timestamp: u64,
    pub message: MlsMessageBytes,
    pub body: FanoutBody,
}

const FM: &str = "FanoutMessage";

impl FanoutMessage {
    /// Check that the kind tag agrees with the message.
    pub fn check_kind(&self) -> Result<(), WireError> {
        let info = self.message.info();
        let ok = match self.body {
            FanoutBody::Application { .. } => info.content_type == Some(ContentKind::Application),
            FanoutBody::Welcome { .. } => info.wire_format == WireFormatKind::Welcome,
            FanoutBody::Proposal { .. } => info.content_type == Some(ContentKind::Proposal),
            FanoutBody::Commit { .. } | FanoutBody::RoomState { .. } => {
                info.content_type == Some(ContentKind::Commit)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(WireError::Invalid {
                at: Place::new(FM, "message"),
                reason: format!(
                    "a {:?} {:?} does not match kind {}",
                    info.wire_format,
                    info.content_type,
                    self.body.name()
                ),
            })
        }
    }

    fn describe(&self) -> String {
        let extra = match &self.body {
            FanoutBody::Application { frank } => {
                format!("frank={}", if frank.is_some() { "yes" } else { "no" })
            }
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => format!("tree={}", ratchet_tree_option.name()),
            FanoutBody::Proposal { more_proposals } => {
                format!("moreProposals={}", more_proposals.len())
            }
            FanoutBody::Commit { external_proposals } => {
                format!("externalProposals={}", external_proposals.len())
            }
            FanoutBody::RoomState { epoch, room_state } => {
                format!("epoch={epoch} roomState={}B", room_state.len())
            }
        };
        format!(
            "{} ts={} {} {extra}",
            self.body.name(),
            self.timestamp,
            self.message.info().summary()
        )
    }
}

impl Size for FanoutMessage {
    fn tls_serialized_len(&self) -> usize {
        8 + 1
            + self.message.tls_serialized_len()
            + match &self.body {
                FanoutBody::Application { frank } => frank.tls_serialized_len(),
                FanoutBody::Welcome {
                    ratchet_tree_option,
                } => ratchet_tree_option.tls_serialized_len(),
                FanoutBody::Proposal { more_proposals: v }
                | FanoutBody::Commit {
                    external_proposals: v,
                } => v.tls_serialized_len(),
                FanoutBody::RoomState { room_state, .. } => {
                    8 + tls_codec::VLBytes::new(room_state.clone()).tls_serialized_len()
                }
            }
    }
}

impl tls_codec::Serialize for FanoutMessage {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        self.check_kind()
            .map_err(|e| tls_codec::Error::EncodingError(e.to_string()))?;
        let mut n = self.timestamp.tls_serialize(w)?;
        n += write_raw(w, &[self.body.code()])?;
        n += self.message.tls_serialize(w)?;
        n += match &self.body {
            FanoutBody::Application { frank } => frank.tls_serialize(w)?,
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => ratchet_tree_option.tls_serialize(w)?,
            FanoutBody::Proposal { more_proposals: v }
            | FanoutBody::Commit {
                external_proposals: v,
            } => v.tls_serialize(w)?,
            FanoutBody::RoomState { epoch, room_state } => {
                epoch.tls_serialize(w)?
                    + tls_codec::VLBytes::new(room_state.clone()).tls_serialize(w)?
            }
        };
        Ok(n)
    }
}

impl Decode for FanoutMessage {
    const NAME: &'static str = FM;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(FM, f);
        let timestamp = r.u64(at("timestamp"))?;
        let kind = r.u8(at("kind"))?;
        if !(1..=5).contains(&kind) {
            return Err(WireError::UnknownCode {
                at: at("kind"),
                value: u64::from(kind),
            });
        }
        let message = MlsMessageBytes::read(r, at("message"))?;
        let body = match kind {
            1 => FanoutBody::Application {
                frank: r.optional(at("frank"), Frank::decode)?,
            },
            2 => FanoutBody::Welcome {
                ratchet_tree_option: RatchetTreeOption::decode(r)?,
            },
            3 => FanoutBody::Proposal {
                more_proposals: r.vector(at("moreProposals"), |r| {
                    MlsMessageBytes::read(r, at("moreProposals"))
                })?,
            },
            5 => FanoutBody::RoomState {
                epoch: r.u64(at("epoch"))?,
                room_state: r.opaque(at("roomState"), MAX_ROOM_STATE_BYTES)?.to_vec(),
            },
            _ => FanoutBody::Commit {
                external_proposals: r.vector(at("externalProposals"), |r| {
                    MlsMessageBytes::read(r, at("externalProposals"))
                })?,
            },
        };
        let m = FanoutMessage {
            timestamp,
            message,
            body,
        };
        m.check_kind()?;
        Ok(m)
    }
}

impl Summary for FanoutMessage {
    fn summary(&self) -> String {
        format!("/notify FanoutMessage {}", self.describe())
    }
}

/// The body of `POST /notify/{roomId}`: one or more FanoutMessages for the same room,
/// concatenated (P§5.5), at most [`MAX_VECTOR_ITEMS`] of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyBody {
    pub messages: Vec<FanoutMessage>,
}

impl Size for NotifyBody {
    fn tls_serialized_len(&self) -> usize {
        self.messages.iter().map(Size::tls_serialized_len).sum()
    }
}

impl tls_codec::Serialize for NotifyBody {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        if self.messages.is_empty() {
            return Err(tls_codec::Error::EncodingError(
                "a /notify body holds at least one FanoutMessage".into(),
            ));
        }
        let mut n = 0;
        for m in &self.messages {
            n += m.tls_serialize(w)?;
        }
        Ok(n)
    }
}

impl Decode for NotifyBody {
    const NAME: &'static str = "NotifyBody";
    /// Reads FanoutMessages until the input ends (the body has no outer length).
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        if r.remaining() > MAX_BODY_BYTES {
            return Err(WireError::BodyTooLarge {
                structure: Self::NAME,
                len: r.remaining(),
                max: MAX_BODY_BYTES,
            });
        }
        if r.is_empty() {
            return Err(WireError::Empty {
                structure: Self::NAME,
            });
        }
        let mut messages = Vec::new();
        while !r.is_empty() {
            if messages.len() >= MAX_VECTOR_ITEMS {
                return Err(WireError::TooManyItems {
                    at: Place::new(Self::NAME, "messages"),
                    max: MAX_VECTOR_ITEMS,
                });
            }
            messages.push(FanoutMessage::decode(r)?);
        }
        Ok(NotifyBody { messages })
    }
}

impl Summary for NotifyBody {
    fn summary(&self) -> String {
        let parts: Vec<String> = self.messages.iter().map(FanoutMessage::describe).collect();
        format!(
            "/notify NotifyBody n={} [{}]",
            self.messages.len(),
            parts.join("; ")
        )
    }
}
