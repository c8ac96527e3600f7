//! MLS objects embedded in MIMI messages (RFC 9420), carried as their exact TLS bytes.
//!
//! Each newtype keeps the bytes it was given or decoded from, byte for byte: the hub
//! compares and forwards raw bytes, so nothing here re-encodes an MLS object. On
//! decode the object's extent is found by parsing it with openmls' own
//! `tls_codec::Deserialize`; the consumed slice is kept. `parse()` returns the
//! openmls type.

use super::codec::{decode_exact, printable, short_hex, write_raw, Decode, Reader};
use super::error::{Place, WireError};
use openmls::ciphersuite::hash_ref::ProposalRef;
use openmls::messages::group_info::{GroupInfo, VerifiableGroupInfo};
use openmls::prelude::{
    Capabilities, ContentType, Credential, Extensions, ExternalSender, KeyPackageIn,
    MlsMessageBodyIn, MlsMessageIn, RatchetTreeIn, RequiredCapabilitiesExtension, Sender,
    SignaturePublicKey, Welcome,
};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::HpkeCiphertext;
use tls_codec::{Serialize as _, VLBytes};

/// Implements the raw-bytes plumbing shared by every embedded MLS object.
macro_rules! raw_object {
    ($name:ident, $parsed:ty, $object:literal) => {
        impl $name {
            /// The MLS object's name (RFC 9420 / draft spelling).
            pub const OBJECT: &'static str = $object;

            /// Wrap exactly one encoded object (trailing bytes are an error).
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
                decode_exact(bytes)
            }

            /// Serialise an openmls value and wrap the result (it is re-parsed, so
            /// this also checks that openmls accepts its own encoding).
            pub fn from_openmls(v: &impl tls_codec::Serialize) -> Result<Self, WireError> {
                let bytes = v.tls_serialize_detached().map_err(|e| WireError::Encode {
                    structure: $object,
                    reason: e.to_string(),
                })?;
                Self::from_bytes(&bytes)
            }

            /// The exact TLS bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes
            }

            /// The exact TLS bytes, owned.
            pub fn into_bytes(self) -> Vec<u8> {
                self.bytes
            }

            /// Parse into the openmls type.
            pub fn parse(&self) -> Result<$parsed, WireError> {
                let mut r = Reader::new(&self.bytes);
                let (v, _) = r.mls::<$parsed>(Place::new($object, "(whole)"), $object)?;
                Ok(v)
            }

            /// Read one object from `r`; errors are reported at `at`.
            pub fn read(r: &mut Reader<'_>, at: Place) -> Result<Self, WireError> {
                let (parsed, raw) = r.mls::<$parsed>(at, $object)?;
                Self::with_parsed(raw.to_vec(), &parsed, at)
            }
        }

        impl Decode for $name {
            const NAME: &'static str = $object;
            fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
                Self::read(r, Place::new($object, "(whole)"))
            }
        }

        impl tls_codec::Size for $name {
            fn tls_serialized_len(&self) -> usize {
                self.bytes.len()
            }
        }

        impl tls_codec::Serialize for $name {
            fn tls_serialize<W: std::io::Write>(
                &self,
                writer: &mut W,
            ) -> Result<usize, tls_codec::Error> {
                write_raw(writer, &self.bytes)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "{}({} B, {})",
                    stringify!($name),
                    self.bytes.len(),
                    short_hex(&self.bytes)
                )
            }
        }
    };
}

/// A plain raw object: no cached metadata.
macro_rules! plain_object {
    ($(#[$doc:meta])* $name:ident, $parsed:ty, $object:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            bytes: Vec<u8>,
        }
        impl $name {
            fn with_parsed(bytes: Vec<u8>, _: &$parsed, _: Place) -> Result<Self, WireError> {
                Ok($name { bytes })
            }
        }
        raw_object!($name, $parsed, $object);
    };
}

plain_object!(
    /// `Welcome` (RFC 9420 §12.4.3.1), bare (not wrapped in an MLSMessage).
    WelcomeBytes,
    Welcome,
    "Welcome"
);
plain_object!(
    /// `GroupInfo` (RFC 9420 §12.4.3), bare; parsed as openmls' `VerifiableGroupInfo`.
    GroupInfoBytes,
    VerifiableGroupInfo,
    "GroupInfo"
);
plain_object!(
    /// `KeyPackage` (RFC 9420 §10), bare; parsed as openmls' `KeyPackageIn`.
    KeyPackageBytes,
    KeyPackageIn,
    "KeyPackage"
);
plain_object!(
    /// `Credential` (RFC 9420 §5.3).
    CredentialBytes,
    Credential,
    "Credential"
);
plain_object!(
    /// `SignaturePublicKey` (RFC 9420 §5.1.1): `opaque signature_key<V>`.
    SignaturePublicKeyBytes,
    SignaturePublicKey,
    "SignaturePublicKey"
);
plain_object!(
    /// `HPKEPublicKey` (RFC 9420 §5.1.1): `opaque HPKEPublicKey<V>`.
    HpkePublicKeyBytes,
    VLBytes,
    "HPKEPublicKey"
);
plain_object!(
    /// `RequiredCapabilities` (RFC 9420 §11.1).
    RequiredCapabilitiesBytes,
    RequiredCapabilitiesExtension,
    "RequiredCapabilities"
);
plain_object!(
    /// `Capabilities` (RFC 9420 §7.2).
    CapabilitiesBytes,
    Capabilities,
    "Capabilities"
);
plain_object!(
    /// A ratchet tree, `optional<Node> ratchet_tree<V>` (RFC 9420 §12.4.3.3).
    RatchetTreeBytes,
    RatchetTreeIn,
    "ratchet_tree"
);
plain_object!(
    /// `ProposalRef` (RFC 9420 §5.2): `opaque HashReference<V>`.
    ProposalRefBytes,
    ProposalRef,
    "ProposalRef"
);
plain_object!(
    /// `ExternalSender` (RFC 9420 §12.1.8.1): signature key and credential.
    ExternalSenderBytes,
    ExternalSender,
    "ExternalSender"
);
plain_object!(
    /// `HPKECiphertext` (RFC 9420 §5.1.3): `kem_output<V>`, `ciphertext<V>`.
    HpkeCiphertextBytes,
    HpkeCiphertext,
    "HPKECiphertext"
);
plain_object!(
    /// `Extension extensions<V>` of a GroupInfo (RT§4 `group_info_extensions`).
    GroupInfoExtensionsBytes,
    Extensions<GroupInfo>,
    "GroupInfo extensions"
);

/// MLSMessage `version` = mls10 followed by a `wire_format` (RFC 9420 §6).
const MLS10: [u8; 2] = [0, 1];
const WF_WELCOME: [u8; 2] = [0, 3];
const WF_GROUP_INFO: [u8; 2] = [0, 4];

fn wrap(wire_format: [u8; 2], body: &[u8]) -> Result<MlsMessageBytes, WireError> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.extend_from_slice(&MLS10);
    b.extend_from_slice(&wire_format);
    b.extend_from_slice(body);
    MlsMessageBytes::from_bytes(&b)
}

impl WelcomeBytes {
    /// The same Welcome wrapped in an MLSMessage (wire_format welcome), as fanned out.
    pub fn to_mls_message(&self) -> Result<MlsMessageBytes, WireError> {
        wrap(WF_WELCOME, &self.bytes)
    }

    /// The KeyPackageRefs in `secrets` (whom the Welcome is for), in order.
    pub fn new_member_refs(&self) -> Result<Vec<Vec<u8>>, WireError> {
        Ok(self
            .parse()?
            .secrets()
            .iter()
            .map(|s| s.new_member().as_slice().to_vec())
            .collect())
    }
}

impl GroupInfoBytes {
    /// The same GroupInfo wrapped in an MLSMessage (wire_format group_info).
    pub fn to_mls_message(&self) -> Result<MlsMessageBytes, WireError> {
        wrap(WF_GROUP_INFO, &self.bytes)
    }

    /// Whether the GroupInfo carries a `ratchet_tree` extension (P§5.3 says the
    /// GroupInfo in a HandshakeBundle omits it).
    pub fn has_ratchet_tree(&self) -> Result<bool, WireError> {
        Ok(self
            .parse()?
            .extensions()
            .contains(openmls::prelude::ExtensionType::RatchetTree))
    }
}

impl KeyPackageBytes {
    /// The KeyPackage's `cipher_suite` (its bytes 2..4, after `version`).
    pub fn cipher_suite(&self) -> Result<super::CipherSuite, WireError> {
        let at = Place::new("KeyPackage", "cipher_suite");
        let mut r = Reader::new(&self.bytes);
        r.u16(at)?;
        super::CipherSuite::read(&mut r, at)
    }

    /// The KeyPackageRef: `RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)`
    /// (RFC 9420 §5.2), over exactly these bytes.
    pub fn key_package_ref(&self, crypto: &impl OpenMlsCrypto) -> Result<Vec<u8>, WireError> {
        let at = Place::new("KeyPackage", "cipher_suite");
        let suite = self.cipher_suite()?.openmls(at)?;
        openmls::ciphersuite::hash_ref::make_key_package_ref(&self.bytes, suite, crypto)
            .map(|r| r.as_slice().to_vec())
            .map_err(|e| WireError::Crypto {
                structure: "KeyPackage",
                operation: "KeyPackageRef hash",
                reason: format!("{e:?}"),
            })
    }
}

impl ExternalSenderBytes {
    /// The `signature_key` bytes (the first field).
    pub fn signature_key(&self) -> Result<Vec<u8>, WireError> {
        let mut r = Reader::new(&self.bytes);
        let (k, _) = r.mls::<SignaturePublicKey>(
            Place::new("ExternalSender", "signature_key"),
            "SignaturePublicKey",
        )?;
        Ok(k.as_slice().to_vec())
    }

    /// The `credential` (the second field).
    pub fn credential(&self) -> Result<Credential, WireError> {
        let mut r = Reader::new(&self.bytes);
        r.opaque(Place::new("ExternalSender", "signature_key"), usize::MAX)?;
        let (c, _) =
            r.mls::<Credential>(Place::new("ExternalSender", "credential"), "Credential")?;
        Ok(c)
    }
}

impl SignaturePublicKeyBytes {
    /// The raw key (without the `<V>` header).
    pub fn key(&self) -> Result<Vec<u8>, WireError> {
        Ok(self.parse()?.as_slice().to_vec())
    }
}

impl HpkePublicKeyBytes {
    /// Wrap a raw HPKE public key.
    pub fn from_key(key: &[u8]) -> Result<Self, WireError> {
        Self::from_openmls(&VLBytes::new(key.to_vec()))
    }

    /// The raw key (without the `<V>` header).
    pub fn key(&self) -> Result<Vec<u8>, WireError> {
        Ok(self.parse()?.as_slice().to_vec())
    }
}

/// RFC 9420 `WireFormat` of an MLSMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum WireFormatKind {
    PublicMessage,
    PrivateMessage,
    Welcome,
    GroupInfo,
    KeyPackage,
}

/// RFC 9420 `ContentType` of a Public/PrivateMessage (visible in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ContentKind {
    Application,
    Proposal,
    Commit,
}

/// RFC 9420 `Sender` of a PublicMessage (a PrivateMessage's sender is encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum SenderKind {
    /// A member, by leaf index.
    Member(u32),
    /// An external sender, by index into `external_senders`.
    External(u32),
    NewMemberProposal,
    NewMemberCommit,
}

impl std::fmt::Display for SenderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SenderKind::Member(i) => write!(f, "member:{i}"),
            SenderKind::External(i) => write!(f, "external:{i}"),
            SenderKind::NewMemberProposal => f.write_str("new_member_proposal"),
            SenderKind::NewMemberCommit => f.write_str("new_member_commit"),
        }
    }
}

/// What an MLSMessage shows without any key: taken once, when the bytes are parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MlsMessageInfo {
    pub wire_format: WireFormatKind,
    /// For Public/PrivateMessage.
    pub content_type: Option<ContentKind>,
    /// For Public/PrivateMessage and GroupInfo.
    pub group_id: Option<Vec<u8>>,
    /// For Public/PrivateMessage and GroupInfo.
    pub epoch: Option<u64>,
    /// For PublicMessage.
    pub sender: Option<SenderKind>,
}

impl MlsMessageInfo {
    fn of(m: &MlsMessageIn, at: Place) -> Result<Self, WireError> {
        let content = |c: ContentType| match c {
            ContentType::Application => ContentKind::Application,
            ContentType::Proposal => ContentKind::Proposal,
            ContentType::Commit => ContentKind::Commit,
        };
        let info = match m.clone().extract() {
            MlsMessageBodyIn::PublicMessage(p) => MlsMessageInfo {
                wire_format: WireFormatKind::PublicMessage,
                content_type: Some(content(p.content_type())),
                group_id: Some(p.group_id().as_slice().to_vec()),
                epoch: Some(p.epoch().as_u64()),
                sender: Some(sender_kind(p.sender(), at)?),
            },
            MlsMessageBodyIn::PrivateMessage(p) => MlsMessageInfo {
                wire_format: WireFormatKind::PrivateMessage,
                content_type: Some(content(p.content_type())),
                group_id: Some(p.group_id().as_slice().to_vec()),
                epoch: Some(p.epoch().as_u64()),
                sender: None,
            },
            MlsMessageBodyIn::Welcome(_) => MlsMessageInfo {
                wire_format: WireFormatKind::Welcome,
                content_type: None,
                group_id: None,
                epoch: None,
                sender: None,
            },
            MlsMessageBodyIn::GroupInfo(g) => MlsMessageInfo {
                wire_format: WireFormatKind::GroupInfo,
                content_type: None,
                group_id: Some(g.group_id().as_slice().to_vec()),
                epoch: Some(g.epoch().as_u64()),
                sender: None,
            },
            MlsMessageBodyIn::KeyPackage(_) => MlsMessageInfo {
                wire_format: WireFormatKind::KeyPackage,
                content_type: None,
                group_id: None,
                epoch: None,
                sender: None,
            },
        };
        Ok(info)
    }

    /// One line for traces: `public commit group=… epoch=3 from=member:0`.
    pub fn summary(&self) -> String {
        let mut s = match self.wire_format {
            WireFormatKind::PublicMessage => "public".to_string(),
            WireFormatKind::PrivateMessage => "private".to_string(),
            WireFormatKind::Welcome => "welcome".to_string(),
            WireFormatKind::GroupInfo => "group_info".to_string(),
            WireFormatKind::KeyPackage => "key_package".to_string(),
        };
        if let Some(c) = self.content_type {
            s.push_str(match c {
                ContentKind::Application => " application",
                ContentKind::Proposal => " proposal",
                ContentKind::Commit => " commit",
            });
        }
        if let Some(g) = &self.group_id {
            s.push_str(&format!(" group={}", printable(g)));
        }
        if let Some(e) = self.epoch {
            s.push_str(&format!(" epoch={e}"));
        }
        if let Some(from) = self.sender {
            s.push_str(&format!(" from={from}"));
        }
        s
    }
}

fn sender_kind(s: &Sender, at: Place) -> Result<SenderKind, WireError> {
    Ok(match s {
        Sender::Member(i) => SenderKind::Member(i.u32()),
        Sender::External(i) => {
            // SenderExtensionIndex has no public getter; its encoding is a uint32.
            let b = i.tls_serialize_detached().map_err(|e| WireError::Mls {
                at,
                object: "MLSMessage",
                reason: e.to_string(),
            })?;
            let a: [u8; 4] = b.as_slice().try_into().map_err(|_| WireError::Mls {
                at,
                object: "MLSMessage",
                reason: "sender extension index is not a uint32".into(),
            })?;
            SenderKind::External(u32::from_be_bytes(a))
        }
        Sender::NewMemberProposal => SenderKind::NewMemberProposal,
        Sender::NewMemberCommit => SenderKind::NewMemberCommit,
    })
}

/// `MLSMessage` (RFC 9420 §6), with the metadata visible without keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MlsMessageBytes {
    bytes: Vec<u8>,
    info: MlsMessageInfo,
}

impl MlsMessageBytes {
    fn with_parsed(bytes: Vec<u8>, parsed: &MlsMessageIn, at: Place) -> Result<Self, WireError> {
        let info = MlsMessageInfo::of(parsed, at)?;
        Ok(MlsMessageBytes { bytes, info })
    }

    /// What the message shows without keys.
    pub fn info(&self) -> &MlsMessageInfo {
        &self.info
    }

    /// The content type, for Public/PrivateMessage.
    pub fn content_type(&self) -> Option<ContentKind> {
        self.info.content_type
    }

    /// The wire format.
    pub fn wire_format(&self) -> WireFormatKind {
        self.info.wire_format
    }

    /// The bare Welcome, if this MLSMessage carries one.
    pub fn to_welcome(&self) -> Result<Option<WelcomeBytes>, WireError> {
        match self.info.wire_format {
            WireFormatKind::Welcome => {
                WelcomeBytes::from_bytes(self.bytes.get(4..).unwrap_or_default()).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The bare GroupInfo, if this MLSMessage carries one.
    pub fn to_group_info(&self) -> Result<Option<GroupInfoBytes>, WireError> {
        match self.info.wire_format {
            WireFormatKind::GroupInfo => {
                GroupInfoBytes::from_bytes(self.bytes.get(4..).unwrap_or_default()).map(Some)
            }
            _ => Ok(None),
        }
    }
}

raw_object!(MlsMessageBytes, MlsMessageIn, "MLSMessage");
