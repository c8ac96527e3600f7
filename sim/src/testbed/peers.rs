//! The peers file (TOML) every node of a testbed reads: where each provider's MIMI server
//! listens and where the certificates are.
//!
//! ```toml
//! certs = "certs"                 # ca.pem, <domain>.pem, <domain>.key; relative to this file
//! [providers]
//! "a.example" = "127.0.0.1:40001"
//! "b.example" = "127.0.0.1:40002"
//! ```
//! Only loopback addresses are accepted (the testbed never leaves this machine).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use nodes::ids::Domain;
use serde::{Deserialize, Serialize};

/// Why a peers file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error("could not read peers file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("peers file {path} is not valid: {reason}")]
    Parse { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeersFile {
    /// The certificate directory, relative to the peers file.
    pub certs: PathBuf,
    /// Provider domain → its MIMI server's address.
    #[serde(default)]
    pub providers: BTreeMap<String, SocketAddr>,
    /// Where this file was read from (to resolve `certs`).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl PeersFile {
    pub fn load(path: &Path) -> Result<Self, PeersError> {
        let text = std::fs::read_to_string(path).map_err(|source| PeersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let parse = |reason: String| PeersError::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let mut file: PeersFile = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
        for (d, addr) in &file.providers {
            Domain::new(d).map_err(|e| parse(format!("provider {d:?}: {e}")))?;
            if !addr.ip().is_loopback() {
                return Err(parse(format!(
                    "provider {d} is at {addr}, not a loopback address; the testbed only \
                     talks to 127.0.0.0/8 or [::1]"
                )));
            }
        }
        file.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(file)
    }

    /// The certificate directory.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join(&self.certs)
    }

    pub fn address(&self, d: &Domain) -> Option<SocketAddr> {
        self.providers.get(d.as_str()).copied()
    }

    /// Writes the file (atomically: a reader never sees half of it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }
}
