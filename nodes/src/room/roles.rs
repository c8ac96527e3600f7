//! Role definitions (RP§3) and preauthorisation (RP§4): wire structures and the
//! lookups the authorisation engine needs.

use super::capability::{Capability, CapabilityType};
use super::codec::{
    check_count, decode_exact, encode, ComponentError, Opaque, MAX_PREAUTH_ENTRIES, MAX_ROLES,
};
use tls_codec::{TlsDeserializeBytes, TlsSerialize, TlsSize};

/// RP§3: role index 0 means "not (yet) or no longer in the participant list".
pub const NO_ROLE: u32 = 0;
/// RP§8.1.3: the "banned" role always has index 1 and name `banned`.
pub const BANNED_ROLE: u32 = 1;
/// RP§8.1.3: the exact name the banned role must have.
pub const BANNED_ROLE_NAME: &str = "banned";
/// The reserved participant-list role index that marks an exiting user
/// (x-exiting-state, see [`super::exiting`]). Far from the preset role indices (0..=10)
/// and from `u32::MAX`.
pub const EXITING_ROLE: u32 = 0x7fff_fffe;

/// RP§3 `SingleSourceRoleChangeTargets { uint32 from_role_index; uint32 target_role_indexes<V>; }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct SingleSourceRoleChangeTargets {
    pub from_role_index: u32,
    pub target_role_indexes: Vec<u32>,
}

/// RP§3 `Role`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct Role {
    pub role_index: u32,
    pub role_name: Opaque,
    pub role_description: Opaque,
    pub role_capabilities: Vec<CapabilityType>,
    pub minimum_participants_constraint: u32,
    pub maximum_participants_constraint: Option<u32>,
    pub minimum_active_participants_constraint: u32,
    pub maximum_active_participants_constraint: Option<u32>,
    pub authorized_role_changes: Vec<SingleSourceRoleChangeTargets>,
}

impl Role {
    /// Whether the role holds `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        self.role_capabilities.contains(&cap.code())
    }

    /// RP§3 authorized_role_changes: is there an entry `from` whose targets include `to`?
    pub fn allows_change(&self, from: u32, to: u32) -> bool {
        self.authorized_role_changes
            .iter()
            .any(|e| e.from_role_index == from && e.target_role_indexes.contains(&to))
    }

    /// Whether this is the RP§8.1.3 banned role (index 1, name exactly "banned").
    pub fn is_banned_role(&self) -> bool {
        self.role_index == BANNED_ROLE && self.role_name.as_slice() == BANNED_ROLE_NAME.as_bytes()
    }

    /// RP§3: a maximum of 0 active participants means users with this role may
    /// have no clients in the MLS group.
    pub fn forbids_clients(&self) -> bool {
        self.maximum_active_participants_constraint == Some(0)
    }

    /// The registered capabilities of this role (unknown code points are skipped).
    pub fn capabilities(&self) -> Vec<Capability> {
        self.role_capabilities
            .iter()
            .filter_map(|c| Capability::from_code(*c))
            .collect()
    }

    /// The role name as text (lossy for non-UTF-8 names).
    pub fn name(&self) -> String {
        String::from_utf8_lossy(self.role_name.as_slice()).into_owned()
    }
}

/// RP§3 `RoleData { Role roles<V>; }` — the data (and replacing update) of 0x0025.
#[derive(Debug, Clone, Default, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct RoleData {
    pub roles: Vec<Role>,
}

impl RoleData {
    /// The role with this index, if defined.
    pub fn get(&self, index: u32) -> Option<&Role> {
        self.roles.iter().find(|r| r.role_index == index)
    }

    /// Whether role 1 exists and is the RP§8.1.3 "banned" role.
    pub fn has_banned_role(&self) -> bool {
        self.get(BANNED_ROLE).is_some_and(Role::is_banned_role)
    }

    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let d: RoleData = decode_exact("roles_list", bytes)?;
        check_count("roles_list", "roles", d.roles.len(), MAX_ROLES)?;
        Ok(d)
    }
}

/// MLS `CredentialType` (RFC 9420 §5.3): basic = 1, x509 = 2.
pub type CredentialType = u16;
/// RFC 9420 basic credential type.
pub const CREDENTIAL_BASIC: CredentialType = 1;

/// RP§4 `ClaimId { CredentialType credential_type; opaque id<V>; }`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes,
)]
pub struct ClaimId {
    pub credential_type: CredentialType,
    pub id: Opaque,
}

/// RP§4 `Claim { ClaimId claim_id; opaque claim_value<V>; }`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes,
)]
pub struct Claim {
    pub claim_id: ClaimId,
    pub claim_value: Opaque,
}

/// Claim ids this project derives from a BasicCredential (choice, see module docs):
/// the user URI of a client credential.
pub const CLAIM_USER: &str = "user";
/// The provider domain of the credential (client or server).
pub const CLAIM_DOMAIN: &str = "domain";
/// Present (value = domain) only for a server acting as MLS external sender.
pub const CLAIM_SERVER: &str = "server";

impl Claim {
    /// A claim on a BasicCredential with claim id `id`.
    pub fn basic(id: &str, value: &[u8]) -> Claim {
        Claim {
            claim_id: ClaimId {
                credential_type: CREDENTIAL_BASIC,
                id: id.into(),
            },
            claim_value: value.into(),
        }
    }

    /// The claims of a client's BasicCredential: its user URI and domain.
    pub fn for_client(client: &crate::ids::ClientUri) -> Vec<Claim> {
        vec![
            Claim::basic(CLAIM_USER, client.user().as_bytes()),
            Claim::basic(CLAIM_DOMAIN, client.domain().as_str().as_bytes()),
        ]
    }

    /// The claims of a user (as seen through any of its clients' credentials).
    pub fn for_user(user: &crate::ids::UserUri) -> Vec<Claim> {
        vec![
            Claim::basic(CLAIM_USER, user.as_bytes()),
            Claim::basic(CLAIM_DOMAIN, user.domain().as_str().as_bytes()),
        ]
    }

    /// The claims of a server's external-sender credential (P§7.4).
    pub fn for_server(domain: &crate::ids::Domain) -> Vec<Claim> {
        vec![
            Claim::basic(CLAIM_SERVER, domain.as_str().as_bytes()),
            Claim::basic(CLAIM_DOMAIN, domain.as_str().as_bytes()),
        ]
    }
}

/// RP§4 `PreAuthRoleEntry { Claim claimset<V>; Role target_role; }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct PreAuthRoleEntry {
    pub claimset: Vec<Claim>,
    pub target_role: Role,
}

impl PreAuthRoleEntry {
    /// RP§4: matches when every claim of the claimset equals a claim of the requester.
    pub fn matches(&self, claims: &[Claim]) -> bool {
        self.claimset.iter().all(|c| claims.contains(c))
    }
}

/// RP§4 `PreAuthData { PreAuthRoleEntry preauthorized_entries<V>; }` — 0x0026.
#[derive(Debug, Clone, Default, PartialEq, Eq, TlsSize, TlsSerialize, TlsDeserializeBytes)]
pub struct PreAuthData {
    pub preauthorized_entries: Vec<PreAuthRoleEntry>,
}

impl PreAuthData {
    /// RP§4: the first matching entry's target role index.
    pub fn first_match(&self, claims: &[Claim]) -> Option<u32> {
        self.preauthorized_entries
            .iter()
            .find(|e| e.matches(claims))
            .map(|e| e.target_role.role_index)
    }

    /// RP§8.1.3 canChangeOwnRole: "the first non-zero role it matches".
    pub fn first_nonzero_match(&self, claims: &[Claim]) -> Option<u32> {
        self.preauthorized_entries
            .iter()
            .filter(|e| e.target_role.role_index != NO_ROLE)
            .find(|e| e.matches(claims))
            .map(|e| e.target_role.role_index)
    }

    pub fn encode(&self) -> Result<Vec<u8>, tls_codec::Error> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ComponentError> {
        let d: PreAuthData = decode_exact("preauth_list", bytes)?;
        check_count(
            "preauth_list",
            "entries",
            d.preauthorized_entries.len(),
            MAX_PREAUTH_ENTRIES,
        )?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(index: u32, name: &str) -> Role {
        Role {
            role_index: index,
            role_name: name.into(),
            role_description: Opaque::default(),
            role_capabilities: vec![Capability::Ban.code(), 0xF123],
            minimum_participants_constraint: 1,
            maximum_participants_constraint: Some(3),
            minimum_active_participants_constraint: 0,
            maximum_active_participants_constraint: None,
            authorized_role_changes: vec![SingleSourceRoleChangeTargets {
                from_role_index: 2,
                target_role_indexes: vec![0, 1],
            }],
        }
    }

    #[test]
    fn role_data_round_trip_keeps_unknown_capabilities() {
        let d = RoleData {
            roles: vec![role(1, "banned"), role(2, "user")],
        };
        let bytes = d.encode().unwrap();
        let back = RoleData::decode(&bytes).unwrap();
        assert_eq!(back, d);
        assert!(back.has_banned_role());
        assert_eq!(back.get(2).unwrap().capabilities(), vec![Capability::Ban]);
        assert!(back.get(2).unwrap().allows_change(2, 1));
        assert!(!back.get(2).unwrap().allows_change(1, 2));
    }

    #[test]
    fn banned_role_needs_exact_name_and_index() {
        assert!(role(1, "banned").is_banned_role());
        assert!(!role(1, "Banned").is_banned_role());
        assert!(!role(2, "banned").is_banned_role());
    }

    #[test]
    fn preauth_first_match_wins() {
        let alice =
            crate::ids::UserUri::new(&crate::ids::Domain::new("a.example").unwrap(), "alice")
                .unwrap();
        let p = PreAuthData {
            preauthorized_entries: vec![
                PreAuthRoleEntry {
                    claimset: vec![Claim::basic(CLAIM_DOMAIN, b"b.example")],
                    target_role: role(3, "b-admin"),
                },
                PreAuthRoleEntry {
                    claimset: vec![Claim::basic(CLAIM_DOMAIN, b"a.example")],
                    target_role: role(2, "a-user"),
                },
                PreAuthRoleEntry {
                    claimset: vec![],
                    target_role: role(4, "anyone"),
                },
            ],
        };
        assert_eq!(p.first_match(&Claim::for_user(&alice)), Some(2));
        assert_eq!(p.first_match(&[]), Some(4), "empty claimset matches anyone");
        let bytes = p.encode().unwrap();
        assert_eq!(PreAuthData::decode(&bytes).unwrap(), p);
    }
}
