//! The MIMI endpoints (P§5) and their HTTP paths.
//!
//! Choice (P§5.1 defines a directory document, whose example has typos, and the flows of
//! P§3 name some paths differently from P§5): one fixed path scheme, no directory fetch:
//! `/keyMaterial/{user}`, `/update/{room}`, `/submitMessage/{room}`, `/notify/{room}`,
//! `/groupInfo/{room}`, and for x-hub-transfer `/handoff/{room}`, `/fence/{room}`;
//! the URI in the path is percent-encoded (RFC 3986 unreserved
//! characters stay as they are). Every request is a POST with a TLS-PL body, a `Host`
//! header naming the target provider and `From: mimi@<source>`.

use crate::ids::{IdError, RoomUri, UserUri};

/// Maximum length of a request path we accept.
pub const MAX_PATH_LEN: usize = 2048;

/// A MIMI endpoint with its path parameter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Endpoint {
    KeyMaterial(UserUri),
    Update(RoomUri),
    SubmitMessage(RoomUri),
    Notify(RoomUri),
    GroupInfo(RoomUri),
    /// x-hub-transfer §3: the old hub hands a room to the new hub (body `Handoff`).
    Handoff(RoomUri),
    /// x-hub-transfer §4–5: the new hub announces itself (body `Fence`).
    Fence(RoomUri),
}

/// A path that names no MIMI endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error(
        "unknown endpoint {0:?} (expected keyMaterial, update, submitMessage, notify, groupInfo, handoff or fence)"
    )]
    UnknownEndpoint(String),
    #[error("bad percent-encoding in path")]
    Percent,
    #[error("bad identifier in path: {0}")]
    Id(#[from] IdError),
}

impl Endpoint {
    /// The endpoint's name as in P§5.1.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::KeyMaterial(_) => "keyMaterial",
            Endpoint::Update(_) => "update",
            Endpoint::SubmitMessage(_) => "submitMessage",
            Endpoint::Notify(_) => "notify",
            Endpoint::GroupInfo(_) => "groupInfo",
            Endpoint::Handoff(_) => "handoff",
            Endpoint::Fence(_) => "fence",
        }
    }

    /// The room the endpoint is about, if any.
    pub fn room(&self) -> Option<&RoomUri> {
        match self {
            Endpoint::KeyMaterial(_) => None,
            Endpoint::Update(r)
            | Endpoint::SubmitMessage(r)
            | Endpoint::Notify(r)
            | Endpoint::GroupInfo(r)
            | Endpoint::Handoff(r)
            | Endpoint::Fence(r) => Some(r),
        }
    }

    /// The HTTP path.
    pub fn path(&self) -> String {
        let param = match self {
            Endpoint::KeyMaterial(u) => u.as_str(),
            Endpoint::Update(r)
            | Endpoint::SubmitMessage(r)
            | Endpoint::Notify(r)
            | Endpoint::GroupInfo(r)
            | Endpoint::Handoff(r)
            | Endpoint::Fence(r) => r.as_str(),
        };
        format!("/{}/{}", self.name(), percent_encode(param))
    }

    /// Parse an HTTP path.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if path.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (name, param) = rest
            .split_once('/')
            .ok_or_else(|| PathError::UnknownEndpoint(rest.to_string()))?;
        let param = percent_decode(param)?;
        Ok(match name {
            "keyMaterial" => Endpoint::KeyMaterial(param.parse()?),
            "update" => Endpoint::Update(param.parse()?),
            "submitMessage" => Endpoint::SubmitMessage(param.parse()?),
            "notify" => Endpoint::Notify(param.parse()?),
            "groupInfo" => Endpoint::GroupInfo(param.parse()?),
            "handoff" => Endpoint::Handoff(param.parse()?),
            "fence" => Endpoint::Fence(param.parse()?),
            other => return Err(PathError::UnknownEndpoint(other.to_string())),
        })
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, PathError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::Percent)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::Percent)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PathError::Percent)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Percent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Domain;

    #[test]
    fn paths_round_trip() {
        let d = Domain::new("a.example").unwrap();
        let room = RoomUri::new(&d, "clubhouse").unwrap();
        let user = UserUri::new(&d, "alice").unwrap();
        for e in [
            Endpoint::KeyMaterial(user),
            Endpoint::Update(room.clone()),
            Endpoint::SubmitMessage(room.clone()),
            Endpoint::Notify(room.clone()),
            Endpoint::GroupInfo(room.clone()),
            Endpoint::Handoff(room.clone()),
            Endpoint::Fence(room),
        ] {
            let p = e.path();
            assert!(!p[1..].contains("//"), "{p}");
            assert_eq!(Endpoint::parse(&p).unwrap(), e);
        }
        assert_eq!(
            Endpoint::Update(RoomUri::new(&d, "x").unwrap()).path(),
            "/update/mimi%3A%2F%2Fa.example%2Fr%2Fx"
        );
    }

    #[test]
    fn bad_paths_are_errors() {
        assert!(matches!(
            Endpoint::parse("/nope/x"),
            Err(PathError::UnknownEndpoint(_))
        ));
        assert!(matches!(
            Endpoint::parse("/update/%zz"),
            Err(PathError::Percent)
        ));
        assert!(matches!(
            Endpoint::parse("/update/%4"),
            Err(PathError::Percent)
        ));
        assert!(matches!(
            Endpoint::parse("/update/mimi%3A%2F%2Fa%2Fu%2Fx"),
            Err(PathError::Id(_))
        ));
        assert!(Endpoint::parse(&"a".repeat(5000)).is_err());
    }
}
