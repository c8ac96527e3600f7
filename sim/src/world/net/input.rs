//! What the incoming side ([`super::server`]) and the outgoing-request tasks tell a host's
//! event loop ([`super::host`]). Its own module so that the server does not depend on the
//! host that runs it.

use nodes::io::{Request, Response, Token, TransportError};
use tokio::sync::oneshot;

/// What the server and the outgoing-request tasks tell the event loop.
pub(crate) enum Input {
    Request {
        request: Request,
        reply: oneshot::Sender<Response>,
    },
    Rejected {
        status: u16,
        reason: String,
    },
    /// The transport refused an incoming connection (its peer is not authenticated).
    PeerRefused {
        reason: String,
    },
    Outcome {
        token: Token,
        result: Result<Response, TransportError>,
    },
}
