//! Fetch key material, `POST /keyMaterial/{targetUser}` (P§5.2).

use super::codec::{read_code, write_raw, CipherSuite, Decode, IdentifierUri, Protocol, Reader};
use super::error::{Place, WireError};
use super::labeled::{sign_with_label, verify_with_label, KEY_MATERIAL_REQUEST_LABEL};
use super::mls::SignaturePublicKeyBytes;
use super::mls::{CapabilitiesBytes, CredentialBytes, KeyPackageBytes, RequiredCapabilitiesBytes};
use super::{Summary, MAX_SIGNATURE_BYTES};
use crate::mls::cost;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::Signer;
use tls_codec::{Serialize as _, Size, TlsSerialize, TlsSize, VLBytes};

const TBS: &str = "KeyMaterialRequestTBS";
const REQ: &str = "KeyMaterialRequest";

/// `KeyMaterialRequestTBS` (P§5.2): the request without its signature.
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct KeyMaterialRequestTbs {
    pub protocol: Protocol,
    pub requesting_user: IdentifierUri,
    pub target_user: IdentifierUri,
    /// Choice: an empty URI means "not in the context of a room".
    pub room_id: IdentifierUri,
    /// Non-empty (P§5.2). The first suite's signature scheme verifies the signature.
    pub acceptable_ciphersuites: Vec<CipherSuite>,
    pub required_capabilities: RequiredCapabilitiesBytes,
    pub requester_signature_key: SignaturePublicKeyBytes,
    pub requester_credential: CredentialBytes,
}

impl KeyMaterialRequestTbs {
    fn read(r: &mut Reader<'_>, s: &'static str) -> Result<Self, WireError> {
        let at = |f| Place::new(s, f);
        let protocol = Protocol::read(r, at("protocol"))?;
        let requesting_user = IdentifierUri::read(r, at("requestingUser"))?;
        let target_user = IdentifierUri::read(r, at("targetUser"))?;
        let room_id = IdentifierUri::read(r, at("roomId"))?;
        let acceptable_ciphersuites = r.vector(at("acceptableCiphersuites"), |r| {
            CipherSuite::read(r, at("acceptableCiphersuites"))
        })?;
        if acceptable_ciphersuites.is_empty() {
            return Err(WireError::Invalid {
                at: at("acceptableCiphersuites"),
                reason: "must not be empty".into(),
            });
        }
        Ok(KeyMaterialRequestTbs {
            protocol,
            requesting_user,
            target_user,
            room_id,
            acceptable_ciphersuites,
            required_capabilities: RequiredCapabilitiesBytes::read(r, at("requiredCapabilities"))?,
            requester_signature_key: SignaturePublicKeyBytes::read(r, at("requesterSignatureKey"))?,
            requester_credential: CredentialBytes::read(r, at("requesterCredential"))?,
        })
    }

    fn scheme(&self) -> Result<openmls_traits::types::SignatureScheme, WireError> {
        let at = Place::new(TBS, "acceptableCiphersuites");
        let first = self
            .acceptable_ciphersuites
            .first()
            .ok_or(WireError::Invalid {
                at,
                reason: "must not be empty".into(),
            })?;
        Ok(first.openmls(at)?.signature_algorithm())
    }
}

impl Decode for KeyMaterialRequestTbs {
    const NAME: &'static str = TBS;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Self::read(r, TBS)
    }
}

/// `KeyMaterialRequest` (P§5.2): the TBS fields followed by
/// `key_material_request_signature` = SignWithLabel(requesterSignatureKey,
/// "KeyMaterialRequestTBS", KeyMaterialRequestTBS).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct KeyMaterialRequest {
    pub tbs: KeyMaterialRequestTbs,
    pub key_material_request_signature: VLBytes,
}

impl KeyMaterialRequest {
    /// Sign `tbs` with `signer`, whose scheme must be that of the first acceptable suite.
    pub fn sign(tbs: KeyMaterialRequestTbs, signer: &impl Signer) -> Result<Self, WireError> {
        cost::measure("key_material.request_sign", || {
            if signer.signature_scheme() != tbs.scheme()? {
                return Err(WireError::Invalid {
                    at: Place::new(TBS, "acceptableCiphersuites"),
                    reason: "signer's scheme differs from the first acceptable suite's".into(),
                });
            }
            let content = tbs
                .tls_serialize_detached()
                .map_err(|e| WireError::Encode {
                    structure: TBS,
                    reason: e.to_string(),
                })?;
            let sig = sign_with_label(signer, REQ, KEY_MATERIAL_REQUEST_LABEL, &content)?;
            Ok(KeyMaterialRequest {
                tbs,
                key_material_request_signature: sig.into(),
            })
        })
    }

    /// Verify the signature with `requesterSignatureKey`.
    pub fn verify(&self, crypto: &impl OpenMlsCrypto) -> Result<(), WireError> {
        cost::measure("key_material.request_verify", || {
            let content = self
                .tbs
                .tls_serialize_detached()
                .map_err(|e| WireError::Encode {
                    structure: TBS,
                    reason: e.to_string(),
                })?;
            verify_with_label(
                crypto,
                self.tbs.scheme()?,
                &self.tbs.requester_signature_key.key()?,
                REQ,
                KEY_MATERIAL_REQUEST_LABEL,
                &content,
                self.key_material_request_signature.as_slice(),
            )
        })
    }
}

impl Decode for KeyMaterialRequest {
    const NAME: &'static str = REQ;
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let tbs = KeyMaterialRequestTbs::read(r, REQ)?;
        let key_material_request_signature = r.vl_bytes(
            Place::new(REQ, "key_material_request_signature"),
            MAX_SIGNATURE_BYTES,
        )?;
        Ok(KeyMaterialRequest {
            tbs,
            key_material_request_signature,
        })
    }
}

impl Summary for KeyMaterialRequest {
    fn summary(&self) -> String {
        let suites: Vec<String> = self
            .tbs
            .acceptable_ciphersuites
            .iter()
            .map(|c| format!("0x{:04x}", c.0))
            .collect();
        format!(
            "/keyMaterial KeyMaterialRequest requester={} target={} room={} suites=[{}] sig={}B",
            self.tbs.requesting_user.display(),
            self.tbs.target_user.display(),
            self.tbs.room_id.display(),
            suites.join(","),
            self.key_material_request_signature.as_slice().len()
        )
    }
}

/// `KeyMaterialUserCode` (P§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialUserCode {
    Success = 0,
    PartialSuccess = 1,
    IncompatibleProtocol = 2,
    NoCompatibleMaterial = 3,
    UserUnknown = 4,
    NoConsent = 5,
    NoConsentForThisRoom = 6,
    UserDeleted = 7,
}

impl KeyMaterialUserCode {
    fn from_u8(v: u8) -> Option<Self> {
        use KeyMaterialUserCode::*;
        Some(match v {
            0 => Success,
            1 => PartialSuccess,
            2 => IncompatibleProtocol,
            3 => NoCompatibleMaterial,
            4 => UserUnknown,
            5 => NoConsent,
            6 => NoConsentForThisRoom,
            7 => UserDeleted,
            _ => return None,
        })
    }

    /// Whether `clients` may be non-empty with this code (P§5.2).
    pub fn allows_clients(self) -> bool {
        matches!(
            self,
            Self::Success | Self::PartialSuccess | Self::NoCompatibleMaterial
        )
    }
}

/// `KeyMaterialClientCode` (P§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSerialize, TlsSize)]
#[repr(u8)]
pub enum KeyMaterialClientCode {
    Success = 0,
    KeyMaterialExhausted = 1,
    NothingCompatible = 2,
}

/// The `select (clientStatus)` part of a [`ClientKeyMaterial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMaterial {
    /// `success`: a KeyPackage.
    Success(KeyPackageBytes),
    /// `keyMaterialExhausted`: nothing.
    KeyMaterialExhausted,
    /// `nothingCompatible`: optionally the client's capabilities.
    NothingCompatible(Option<CapabilitiesBytes>),
}

/// `ClientKeyMaterial` (P§5.2): `clientStatus`, `clientUri`, then per status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKeyMaterial {
    pub client_uri: IdentifierUri,
    pub material: ClientMaterial,
}

impl ClientKeyMaterial {
    /// The `clientStatus` implied by the material.
    pub fn client_status(&self) -> KeyMaterialClientCode {
        match self.material {
            ClientMaterial::Success(_) => KeyMaterialClientCode::Success,
            ClientMaterial::KeyMaterialExhausted => KeyMaterialClientCode::KeyMaterialExhausted,
            ClientMaterial::NothingCompatible(_) => KeyMaterialClientCode::NothingCompatible,
        }
    }
}

impl Size for ClientKeyMaterial {
    fn tls_serialized_len(&self) -> usize {
        1 + self.client_uri.tls_serialized_len()
            + match &self.material {
                ClientMaterial::Success(kp) => kp.tls_serialized_len(),
                ClientMaterial::KeyMaterialExhausted => 0,
                ClientMaterial::NothingCompatible(c) => c.tls_serialized_len(),
            }
    }
}

impl tls_codec::Serialize for ClientKeyMaterial {
    fn tls_serialize<W: std::io::Write>(&self, w: &mut W) -> Result<usize, tls_codec::Error> {
        let mut n = write_raw(w, &[self.client_status() as u8])?;
        n += self.client_uri.tls_serialize(w)?;
        n += match &self.material {
            ClientMaterial::Success(kp) => kp.tls_serialize(w)?,
            ClientMaterial::KeyMaterialExhausted => 0,
            ClientMaterial::NothingCompatible(c) => c.tls_serialize(w)?,
        };
        Ok(n)
    }
}

impl Decode for ClientKeyMaterial {
    const NAME: &'static str = "ClientKeyMaterial";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        let status = r.u8(at("clientStatus"))?;
        let client_uri = IdentifierUri::read(r, at("clientUri"))?;
        let material = match status {
            0 => ClientMaterial::Success(KeyPackageBytes::read(r, at("keyPackage"))?),
            1 => ClientMaterial::KeyMaterialExhausted,
            2 => ClientMaterial::NothingCompatible(r.optional(at("clientCapabilities"), |r| {
                CapabilitiesBytes::read(r, at("clientCapabilities"))
            })?),
            v => {
                return Err(WireError::UnknownCode {
                    at: at("clientStatus"),
                    value: u64::from(v),
                })
            }
        };
        Ok(ClientKeyMaterial {
            client_uri,
            material,
        })
    }
}

/// `KeyMaterialResponse` (P§5.2).
#[derive(Debug, Clone, PartialEq, Eq, TlsSerialize, TlsSize)]
pub struct KeyMaterialResponse {
    pub protocol: Protocol,
    pub user_status: KeyMaterialUserCode,
    pub user_uri: IdentifierUri,
    pub clients: Vec<ClientKeyMaterial>,
}

impl KeyMaterialResponse {
    /// The sender-side rule of P§5.2: `clients` is empty unless the user code is
    /// success, partialSuccess or noCompatibleMaterial. (Not checked by decode, so
    /// that a receiver can see and report a violation.)
    pub fn check_rules(&self) -> Result<(), WireError> {
        if !self.user_status.allows_clients() && !self.clients.is_empty() {
            return Err(WireError::Invalid {
                at: Place::new("KeyMaterialResponse", "clients"),
                reason: format!("must be empty with userStatus {:?}", self.user_status),
            });
        }
        Ok(())
    }
}

impl Decode for KeyMaterialResponse {
    const NAME: &'static str = "KeyMaterialResponse";
    fn decode(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let at = |f| Place::new(Self::NAME, f);
        Ok(KeyMaterialResponse {
            protocol: Protocol::read(r, at("protocol"))?,
            user_status: read_code(r, at("userStatus"), KeyMaterialUserCode::from_u8)?,
            user_uri: IdentifierUri::read(r, at("userUri"))?,
            clients: r.vector(at("clients"), ClientKeyMaterial::decode)?,
        })
    }
}

impl Summary for KeyMaterialResponse {
    fn summary(&self) -> String {
        let clients: Vec<String> = self
            .clients
            .iter()
            .map(|c| format!("{}:{:?}", c.client_uri.display(), c.client_status()))
            .collect();
        format!(
            "/keyMaterial KeyMaterialResponse user={} status={:?} clients=[{}]",
            self.user_uri.display(),
            self.user_status,
            clients.join(",")
        )
    }
}
