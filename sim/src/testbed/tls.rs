//! The testbed's back end of the host adapter: tokio TCP on loopback wrapped in mutual
//! TLS (rustls, ring provider). Both sides present a certificate of the testbed CA; the
//! server requires one, and the peer's identity is the DNS name in its verified
//! certificate (the adapter then checks `From` against it, P§4.1). Time is the wall clock.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nodes::ids::Domain;
use nodes::io::Millis;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::certs::{self, CertError};
use super::peers::PeersFile;
use crate::world::net::{Peer, Transport};

/// The wall clock in ms since the UNIX epoch.
pub fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS settings of one provider: its certificate and key, and the CA it trusts.
#[derive(Clone)]
pub struct TlsConfig {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl TlsConfig {
    /// Loads `domain`'s certificate and key and the CA from the certificate directory.
    pub fn load(certs_dir: &std::path::Path, domain: &Domain) -> Result<Self, CertError> {
        let roots = certs::load_roots(&certs::ca_path(certs_dir))?;
        let chain = certs::load_certs(&certs::cert_path(certs_dir, domain))?;
        let key = certs::load_key(&certs::key_path(certs_dir, domain))?;
        Self::new(roots, chain, key)
    }

    /// Mutual TLS with `chain`/`key` as this provider's identity and `roots` trusted.
    pub fn new(
        roots: Arc<rustls::RootCertStore>,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Self, CertError> {
        let tls = |e: rustls::Error| CertError::Tls(e.to_string());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(tls)?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(tls)?;
        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The names a verified end-entity certificate is valid for (its DNS SANs).
pub fn certificate_names(der: &[u8]) -> Result<Vec<String>, String> {
    let der = rustls::pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|e| e.to_string())?;
    Ok(cert.valid_dns_names().map(str::to_string).collect())
}

/// Mutual TLS over tokio TCP. The listener is bound by the caller (so that it can print
/// the address before the host starts); peers' addresses are read from the peers file
/// each time one is connected to, so a testbed can write it after every node has bound.
pub struct TlsTransport {
    listener: RefCell<Option<std::net::TcpListener>>,
    peers: PathBuf,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl TlsTransport {
    pub fn new(listener: std::net::TcpListener, peers: PathBuf, config: &TlsConfig) -> Self {
        TlsTransport {
            listener: RefCell::new(Some(listener)),
            peers,
            acceptor: TlsAcceptor::from(config.server.clone()),
            connector: TlsConnector::from(config.client.clone()),
        }
    }
}

impl Transport for TlsTransport {
    type Listener = TcpListener;
    type Accepted = (TcpStream, SocketAddr);
    type Stream = TlsStream<TcpStream>;

    async fn bind(&self) -> io::Result<TcpListener> {
        let listener = self.listener.borrow_mut().take().ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrInUse, "the listener was already taken")
        })?;
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener)
    }

    async fn accept(&self, listener: &TcpListener) -> io::Result<Self::Accepted> {
        loop {
            match listener.accept().await {
                Ok(accepted) => return Ok(accepted),
                // A connection reset before it was accepted, or out of descriptors for a
                // moment: keep serving the others.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn establish(&self, (tcp, addr): Self::Accepted) -> Result<(Self::Stream, Peer), String> {
        let refused = |why: String| {
            format!(
                "TLS client at {addr} refused: {why} (a provider must present a certificate \
                 issued by this testbed's CA)"
            )
        };
        let tls = self
            .acceptor
            .accept(tcp)
            .await
            .map_err(|e| refused(e.to_string()))?;
        let names = match tls.get_ref().1.peer_certificates() {
            Some([leaf, ..]) => certificate_names(leaf).map_err(refused)?,
            _ => return Err(refused("no client certificate".into())),
        };
        if names.is_empty() {
            return Err(refused("its certificate names no DNS name".into()));
        }
        let shown = format!("{} (TLS client certificate)", names.join(", "));
        Ok((TlsStream::Server(tls), Peer { names, shown }))
    }

    async fn connect(&self, to: &Domain) -> io::Result<Self::Stream> {
        let peers = PeersFile::load(&self.peers)
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
        let addr = peers.address(to).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} names no address for {to}", self.peers.display()),
            )
        })?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(to.as_str().to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let tls = self.connector.connect(name, tcp).await?;
        Ok(TlsStream::Client(tls))
    }

    fn now_ms(&self) -> Millis {
        wall_ms()
    }
}
