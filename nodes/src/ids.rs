//! Identifiers: provider domains and the `mimi://` URIs of users, clients and rooms.
//!
//! Choice (the draft's "Known Gap" on binding clients to users, P§1.1; `nodes/CHOICES.md` 1):
//! * user   `mimi://<domain>/u/<name>`
//! * client `mimi://<domain>/d/<name>/<device>` — the MLS BasicCredential identity;
//!   the user is derived from it, so all clients of a user map to one participant.
//! * room   `mimi://<domain>/r/<name>` — the authority is the hub's domain.
//!
//! Names are restricted to `[A-Za-z0-9._-]` so that a URI can be parsed back
//! unambiguously and used in an HTTP path without escaping.

use std::fmt;

/// Errors from parsing an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier {0:?} does not start with mimi://")]
    Scheme(String),
    #[error("identifier {0:?} is not of the form mimi://<domain>/{1}/...")]
    Shape(String, &'static str),
    #[error("identifier {0:?} has an empty or invalid name part (allowed: A-Z a-z 0-9 . _ -)")]
    Name(String),
    #[error("identifier bytes are not UTF-8")]
    Utf8,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A provider's domain, e.g. `a.example`. Stands for one MIMI server.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Domain(String);

impl Domain {
    pub fn new(s: &str) -> Result<Self, IdError> {
        if valid_name(s) {
            Ok(Domain(s.to_string()))
        } else {
            Err(IdError::Name(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The `From` header value a server sends: `mimi@<domain>`.
    pub fn from_header(&self) -> String {
        format!("mimi@{}", self.0)
    }
    /// Parse a `From: mimi@<domain>` header value.
    pub fn parse_from_header(v: &str) -> Result<Self, IdError> {
        let d = v
            .strip_prefix("mimi@")
            .ok_or_else(|| IdError::Shape(v.to_string(), "mimi@<domain>"))?;
        Domain::new(d)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn split(uri: &str, kind: &'static str) -> Result<(Domain, Vec<String>), IdError> {
    let rest = uri
        .strip_prefix("mimi://")
        .ok_or_else(|| IdError::Scheme(uri.to_string()))?;
    let mut parts = rest.split('/');
    let domain = parts.next().unwrap_or_default();
    let domain = Domain::new(domain).map_err(|_| IdError::Name(uri.to_string()))?;
    if parts.next() != Some(kind) {
        return Err(IdError::Shape(uri.to_string(), kind));
    }
    let rest: Vec<String> = parts.map(str::to_string).collect();
    if rest.iter().any(|p| !valid_name(p)) || rest.is_empty() {
        return Err(IdError::Name(uri.to_string()));
    }
    Ok((domain, rest))
}

macro_rules! uri_type {
    ($name:ident, $kind:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
        )]
        pub struct $name(String);

        impl $name {
            /// The URI as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The URI as bytes (the `IdentifierUri.uri` on the wire).
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
            /// Parse from wire bytes.
            pub fn from_bytes(b: &[u8]) -> Result<Self, IdError> {
                let s = std::str::from_utf8(b).map_err(|_| IdError::Utf8)?;
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uri_type!(UserUri, "u", "A user: `mimi://<domain>/u/<name>`.");
uri_type!(
    ClientUri,
    "d",
    "A client (device) of a user: `mimi://<domain>/d/<name>/<device>`."
);
uri_type!(
    RoomUri,
    "r",
    "A room: `mimi://<domain>/r/<name>`; the domain is the hub's."
);

impl UserUri {
    pub fn new(domain: &Domain, name: &str) -> Result<Self, IdError> {
        format!("mimi://{domain}/u/{name}").parse()
    }
    pub fn domain(&self) -> Domain {
        split(&self.0, "u").expect("validated at construction").0
    }
    pub fn name(&self) -> String {
        split(&self.0, "u").expect("validated at construction").1[0].clone()
    }
    /// The URI of this user's device `device`.
    pub fn client(&self, device: &str) -> Result<ClientUri, IdError> {
        format!("mimi://{}/d/{}/{}", self.domain(), self.name(), device).parse()
    }
}

impl std::str::FromStr for UserUri {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let (_, rest) = split(s, "u")?;
        if rest.len() != 1 {
            return Err(IdError::Shape(s.to_string(), "u"));
        }
        Ok(UserUri(s.to_string()))
    }
}

impl ClientUri {
    pub fn domain(&self) -> Domain {
        split(&self.0, "d").expect("validated at construction").0
    }
    /// The user this client belongs to.
    pub fn user(&self) -> UserUri {
        let (d, rest) = split(&self.0, "d").expect("validated at construction");
        UserUri(format!("mimi://{d}/u/{}", rest[0]))
    }
    pub fn device(&self) -> String {
        split(&self.0, "d").expect("validated at construction").1[1].clone()
    }
}

impl std::str::FromStr for ClientUri {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let (_, rest) = split(s, "d")?;
        if rest.len() != 2 {
            return Err(IdError::Shape(s.to_string(), "d"));
        }
        Ok(ClientUri(s.to_string()))
    }
}

impl RoomUri {
    pub fn new(hub: &Domain, name: &str) -> Result<Self, IdError> {
        format!("mimi://{hub}/r/{name}").parse()
    }
    /// The domain in the room URI: the provider that created the room (its first hub).
    pub fn domain(&self) -> Domain {
        split(&self.0, "r").expect("validated at construction").0
    }
    pub fn name(&self) -> String {
        split(&self.0, "r").expect("validated at construction").1[0].clone()
    }
}

impl std::str::FromStr for RoomUri {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let (_, rest) = split(s, "r")?;
        if rest.len() != 1 {
            return Err(IdError::Shape(s.to_string(), "r"));
        }
        Ok(RoomUri(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_maps_to_user() {
        let d = Domain::new("b.example").unwrap();
        let bob = UserUri::new(&d, "bob").unwrap();
        let c = bob.client("2").unwrap();
        assert_eq!(c.as_str(), "mimi://b.example/d/bob/2");
        assert_eq!(c.user(), bob);
        assert_eq!(c.domain(), d);
        assert_eq!(c.device(), "2");
    }

    #[test]
    fn malformed_identifiers_are_errors() {
        assert!("http://a/u/x".parse::<UserUri>().is_err());
        assert!("mimi://a.example/d/bob".parse::<ClientUri>().is_err());
        assert!("mimi://a.example/u/".parse::<UserUri>().is_err());
        assert!("mimi://a example/u/x".parse::<UserUri>().is_err());
        assert!(UserUri::from_bytes(&[0xff, 0xfe]).is_err());
        assert_eq!(
            Domain::parse_from_header("mimi@c.example")
                .unwrap()
                .as_str(),
            "c.example"
        );
        assert!(Domain::parse_from_header("c.example").is_err());
    }
}
