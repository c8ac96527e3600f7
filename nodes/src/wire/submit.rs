//! Submit an application message, `POST /submitMessage/{roomId}` (P§5.4),
//! and the `Frank` of P§5.4.1.

use super::codec::{write_raw, CipherSuite, Decode, IdentifierUri, Protocol, Reader};
use super::error::{Place, WireError};
use super::mls::MlsMessageBytes;
use super::{Summary, MAX_SIGNATURE_BYTES};
use tls_codec::{Size, TlsSerialize, TlsSize, VLBytes};

/// `Frank` (P§5.4): the hub's franking data for an accepted application message.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct Frank {
    pub server_frank: [u8; 32],
    pub franking_signature_ciphersuite: CipherSuite,
    pub franking_integrity_signature: VLBytes,
}

impl Decode for Frank {
    const NAME: &'static str = "Frank";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        Ok(Frank {
            server_frank: r.fixed(at("server_frank"))?,
            franking_signature_ciphersuite: CipherSuite::read(
                r,
                at("franking_signature_ciphersuite"),
            )?,
            franking_integrity_signature: r
                .vl_bytes(at("franking_integrity_signature"), MAX_SIGNATURE_BYTES)?,
        })
    }
}

/// `SubmitMessageRequest` (P§5.4): a PrivateMessage application message and the
/// sender's user URI.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct SubmitMessageRequest {
    pub protocol: Protocol,
    pub app_message: MlsMessageBytes,
    pub sending_uri: IdentifierUri,
}

impl Decode for SubmitMessageRequest {
    const NAME: &'static str = "SubmitMessageRequest";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        Ok(SubmitMessageRequest {
            protocol: Protocol::read(r, at("protocol"))?,
            app_message: MlsMessageBytes::read(r, at("appMessage"))?,
            sending_uri: IdentifierUri::read(r, at("sendingUri"))?,
        })
    }
}

impl Summary for SubmitMessageRequest {
    fn summary(&self) -> String {
        format!(
            "/submitMessage SubmitMessageRequest {} sendingUri={}",
            self.app_message.info().summary(),
            self.sending_uri.display()
        )
    }
}

/// `SubmitResponseCode` (P§5.4) with its `select` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// `accepted(0)` (the draft's select says `success`).
    Accepted {
        accepted_timestamp: u64,
        frank: Option<Frank>,
    },
    /// `notAllowed(1)`.
    NotAllowed,
    /// `epochTooOld(2)`: the hub's current epoch.
    EpochTooOld { current_epoch: u64 },
}

impl SubmitOutcome {
    /// The `SubmitResponseCode` value.
    pub fn code(&self) -> u8 {
        match self {
            Self::Accepted { .. } => 0,
            Self::NotAllowed => 1,
            Self::EpochTooOld { .. } => 2,
        }
    }
}

/// `SubmitMessageResponse` (P§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitMessageResponse {
    pub protocol: Protocol,
    pub outcome: SubmitOutcome,
}

impl Size for SubmitMessageResponse {
    fn tls_serialized_len(&self) -> usize {
        2 + match &self.outcome {
            SubmitOutcome::Accepted { frank, .. } => 8 + frank.tls_serialized_len(),
            SubmitOutcome::NotAllowed => 0,
            SubmitOutcome::EpochTooOld { .. } => 8,
        }
    }
}

impl tls_codec::Serialize for SubmitMessageResponse {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = self.protocol.tls_serialize(w)?;
        n += write_raw(w, &[self.outcome.code()])?;
        n += match &self.outcome {
            SubmitOutcome::Accepted {
                accepted_timestamp,
                frank,
            } => accepted_timestamp.tls_serialize(w)? + frank.tls_serialize(w)?,
            SubmitOutcome::NotAllowed => 0,
            SubmitOutcome::EpochTooOld { current_epoch } => current_epoch.tls_serialize(w)?,
        };
        Ok(n)
    }
}

impl Decode for SubmitMessageResponse {
    const NAME: &'static str = "SubmitMessageResponse";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        let protocol = Protocol::read(r, at("protocol"))?;
        let outcome = match r.u8(at("statusCode"))? {
            0 => SubmitOutcome::Accepted {
                accepted_timestamp: r.u64(at("accepted_timestamp"))?,
                frank: r.optional(at("frank"), Frank::decode)?,
            },
            1 => SubmitOutcome::NotAllowed,
            2 => SubmitOutcome::EpochTooOld {
                current_epoch: r.u64(at("currentEpoch"))?,
            },
            v => {
                return Err(WireError::UnknownCode {
                    at: at("statusCode"),
                    value: u64::from(v),
                })
            }
        };
        Ok(SubmitMessageResponse { protocol, outcome })
    }
}

impl Summary for SubmitMessageResponse {
    fn summary(&self) -> String {
        let what = match &self.outcome {
            SubmitOutcome::Accepted {
                accepted_timestamp,
                frank,
            } => format!(
                "accepted accepted_timestamp={accepted_timestamp} frank={}",
                if frank.is_some() { "yes" } else { "no" }
            ),
            SubmitOutcome::NotAllowed => "notAllowed".to_string(),
            SubmitOutcome::EpochTooOld { current_epoch } => {
                format!("epochTooOld currentEpoch={current_epoch}")
            }
        };
        format!("/submitMessage SubmitMessageResponse {what}")
    }
}
