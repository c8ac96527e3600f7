//! The testbed's PKI: one CA and one certificate per provider (SAN = the provider's
//! domain, usable as TLS server and client certificate), written as PEM files:
//! `ca.pem`, and `<domain>.pem` + `<domain>.key` per provider.
//!
//! The CA's private key is not kept: a testbed's providers are fixed when its certificates
//! are made (`mimi-sim testbed-certs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nodes::ids::Domain;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("could not generate a certificate for {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not read {path}: {reason} (make the files with `mimi-sim testbed-certs --out DIR --providers ...`)")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    Empty { path: PathBuf },
    #[error("bad TLS configuration: {0}")]
    Tls(String),
}

/// The file names inside a certificate directory.
pub fn ca_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}
pub fn cert_path(dir: &Path, domain: &Domain) -> PathBuf {
    dir.join(format!("{}.pem", domain.as_str()))
}
pub fn key_path(dir: &Path, domain: &Domain) -> PathBuf {
    dir.join(format!("{}.key", domain.as_str()))
}

/// Makes a fresh CA named `ca_name` and a certificate for each provider; writes them to
/// `dir` (created if missing). Returns the files written.
pub fn generate(
    dir: &Path,
    ca_name: &str,
    providers: &[Domain],
) -> Result<Vec<PathBuf>, CertError> {
    let gen = |what: &str| {
        let what = what.to_string();
        move |source| CertError::Generate { what, source }
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen("the CA"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(gen("the CA"))?;
    let ca = ca_params.self_signed(&ca_key).map_err(gen("the CA"))?;

    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|source| CertError::Write { path, source })
    };
    let mut written = vec![write(ca_path(dir), ca.pem())?];
    for d in providers {
        let name = d.as_str();
        let mut p = CertificateParams::new(vec![name.to_string()]).map_err(gen(name))?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(gen(name))?;
        let cert = p.signed_by(&key, &ca, &ca_key).map_err(gen(name))?;
        written.push(write(cert_path(dir, d), cert.pem())?);
        written.push(write(key_path(dir, d), key.serialize_pem())?);
    }
    Ok(written)
}

/// The certificates in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let read = |reason: String| CertError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| CertError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A root store holding the CA certificates of `path`.
pub fn load_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, CertError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| CertError::Tls(format!("{}: {e}", path.display())))?;
    }
    Ok(Arc::new(roots))
}
