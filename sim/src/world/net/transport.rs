//! What the HTTP host adapter needs from a network: listen, accept, learn who the peer is,
//! connect to a provider by domain, and tell the time.
//!
//! The host logic ([`super::HttpHost`], the hyper server and client) is written once over
//! [`Transport`]. Two back ends:
//! * [`Turmoil`]: the simulator's. TCP inside turmoil; the peer's identity is its turmoil
//!   host name (`turmoil::reverse_lookup`); time is simulated.
//! * `crate::testbed::tls::TlsTransport`: real tokio TCP wrapped in mutual TLS; the peer's
//!   identity is the DNS name in its verified client certificate; time is the wall clock.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use nodes::ids::Domain;
use nodes::io::Millis;
use tokio::io::{AsyncRead, AsyncWrite};

use super::HTTP_PORT;

/// The authenticated identity of the other end of an incoming connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The provider domains the transport vouches for (`From` must be one of them).
    pub names: Vec<String>,
    /// How that name is shown in an error (names the source of the identity).
    pub shown: String,
}

/// A network the host adapter runs on. All futures run on one thread (`spawn_local`).
pub trait Transport: 'static {
    /// What [`Transport::bind`] returns.
    type Listener: 'static;
    /// A connection as accepted, before the peer is authenticated.
    type Accepted: 'static;
    /// A connection ready for HTTP/1.1.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;

    /// Starts listening for this provider's incoming MIMI connections.
    fn bind(&self) -> impl Future<Output = io::Result<Self::Listener>>;
    /// Waits for the next incoming connection. An error ends the accept loop.
    fn accept(&self, listener: &Self::Listener)
        -> impl Future<Output = io::Result<Self::Accepted>>;
    /// Authenticates an accepted connection (runs in the connection's own task). An `Err`
    /// is a refused peer, with a reason for people.
    fn establish(
        &self,
        accepted: Self::Accepted,
    ) -> impl Future<Output = Result<(Self::Stream, Peer), String>>;
    /// Opens a connection to provider `to`'s MIMI server.
    fn connect(&self, to: &Domain) -> impl Future<Output = io::Result<Self::Stream>>;
    /// The current time in ms since the UNIX epoch.
    fn now_ms(&self) -> Millis;
    /// How long to sleep, on the runtime's clock, until [`Self::now_ms`] reads `at`.
    fn until(&self, at: Millis) -> std::time::Duration {
        std::time::Duration::from_millis(at.saturating_sub(self.now_ms()))
    }
}

/// The simulator's back end: turmoil TCP on [`HTTP_PORT`], simulated time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Turmoil;

impl Transport for Turmoil {
    type Listener = turmoil::net::TcpListener;
    type Accepted = (turmoil::net::TcpStream, SocketAddr);
    type Stream = turmoil::net::TcpStream;

    async fn bind(&self) -> io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, HTTP_PORT))).await
    }

    async fn accept(&self, listener: &Self::Listener) -> io::Result<Self::Accepted> {
        listener.accept().await
    }

    async fn establish(
        &self,
        (stream, peer): Self::Accepted,
    ) -> Result<(Self::Stream, Peer), String> {
        // In the simulation the peer's turmoil host name is its authenticated identity
        // (it stands in for TLS client authentication, P§4.1).
        let name = turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string());
        Ok((
            stream,
            Peer {
                shown: name.clone(),
                names: vec![name],
            },
        ))
    }

    async fn connect(&self, to: &Domain) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect((to.as_str(), HTTP_PORT)).await
    }

    fn now_ms(&self) -> Millis {
        super::now_ms()
    }
}
