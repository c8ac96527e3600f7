//! The incoming side: a hyper HTTP/1.1 server on any [`Transport`] that checks MIMI requests
//! (P§4.1: POST, `Host` = this provider, `From: mimi@<source>`, endpoint path, body size)
//! and hands the good ones to the host's event loop.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, FROM, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use nodes::endpoint::{Endpoint, PathError};
use nodes::ids::{Domain, IdError};
use nodes::io::{status, Request, Response};
use tokio::sync::{mpsc, oneshot};

use super::input::Input;
use super::transport::{Peer, Transport};

/// Why the adapter refused an incoming request (the core never sees it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("method {0} not allowed: MIMI requests are POST")]
    Method(String),
    #[error("bad path: {0}")]
    Path(#[from] PathError),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("{0} header is not valid: {1}")]
    BadHeader(&'static str, String),
    #[error("Host header names {got}, but this server is {this}")]
    WrongHost { got: String, this: String },
    #[error("From header claims {claimed}, but the connection comes from {peer}")]
    FromNotPeer { claimed: String, peer: String },
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("could not read request body: {0}")]
    Body(String),
}

impl RequestError {
    /// The HTTP status the adapter answers with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Method(_) => 405,
            RequestError::FromNotPeer { .. } => status::FORBIDDEN,
            RequestError::BodyTooLarge(_) => status::PAYLOAD_TOO_LARGE,
            _ => status::BAD_REQUEST,
        }
    }
}

/// What every connection task of one host needs.
pub(crate) struct Server<T> {
    pub transport: Rc<T>,
    pub domain: Domain,
    pub max_body_len: usize,
    pub connection_timeout: Duration,
    pub inputs: mpsc::UnboundedSender<Input>,
}

/// Accepts connections for ever, one task per connection.
pub(crate) async fn accept_loop<T: Transport>(listener: T::Listener, server: Rc<Server<T>>) {
    loop {
        // turmoil's accept only fails if the host is torn down; then this task goes too.
        let Ok(accepted) = server.transport.accept(&listener).await else {
            return;
        };
        tokio::task::spawn_local(serve(accepted, server.clone()));
    }
}

/// Serves one request on one connection, then closes it; gives up after the
/// connection timeout (a stalled connection never recovers on turmoil TCP).
async fn serve<T: Transport>(accepted: T::Accepted, server: Rc<Server<T>>) {
    let limit = server.connection_timeout;
    let established = tokio::time::timeout(limit, server.transport.establish(accepted)).await;
    let (stream, peer) = match established {
        Ok(Ok(ok)) => ok,
        Ok(Err(reason)) => return refuse(&server, reason),
        Err(_) => return refuse(&server, "peer did not finish the handshake in time".into()),
    };
    let peer = Rc::new(peer);
    let service = hyper::service::service_fn(move |req| {
        let (server, peer) = (server.clone(), peer.clone());
        async move { Ok::<_, Infallible>(handle(req, &peer, &server).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .auto_date_header(false)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    // Errors here are the client's broken connection; nothing to answer.
    let _ = tokio::time::timeout(limit, connection).await;
}

/// A connection whose peer the transport did not accept (no or a wrong TLS certificate).
fn refuse<T>(server: &Server<T>, reason: String) {
    tracing::warn!(provider = %server.domain, "refused an incoming connection: {reason}");
    let _ = server.inputs.send(Input::PeerRefused { reason });
}

async fn handle<T>(
    req: hyper::Request<Incoming>,
    peer: &Peer,
    server: &Server<T>,
) -> hyper::Response<Full<Bytes>> {
    let request = match read_request(req, peer, server).await {
        Ok(request) => request,
        Err(e) => {
            let (status, reason) = (e.status(), e.to_string());
            tracing::info!(provider = %server.domain, status, "rejected a request: {reason}");
            let _ = server.inputs.send(Input::Rejected {
                status,
                reason: reason.clone(),
            });
            return to_hyper(Response::error(status, reason), true);
        }
    };
    let (reply, answer) = oneshot::channel();
    if server
        .inputs
        .send(Input::Request { request, reply })
        .is_err()
    {
        return to_hyper(
            Response::error(status::UNAVAILABLE, "server shutting down"),
            true,
        );
    }
    match answer.await {
        Ok(response) => to_hyper(response, false),
        Err(_) => to_hyper(
            Response::error(status::INTERNAL, "core dropped the request"),
            true,
        ),
    }
}

/// Checks method, path, `Host`, `From` and body size; reads the body.
async fn read_request<T>(
    req: hyper::Request<Incoming>,
    peer: &Peer,
    server: &Server<T>,
) -> Result<Request, RequestError> {
    if req.method() != Method::POST {
        return Err(RequestError::Method(req.method().to_string()));
    }
    let endpoint = Endpoint::parse(req.uri().path())?;
    let headers = req.headers();
    let host = header(headers, HOST, "Host")?;
    let host = host.split_once(':').map_or(host, |(h, _port)| h);
    if host != server.domain.as_str() {
        return Err(RequestError::WrongHost {
            got: host.to_string(),
            this: server.domain.to_string(),
        });
    }
    let from = Domain::parse_from_header(header(headers, FROM, "From")?)
        .map_err(|e: IdError| RequestError::BadHeader("From", e.to_string()))?;
    if !peer.names.iter().any(|n| n == from.as_str()) {
        return Err(RequestError::FromNotPeer {
            claimed: from.to_string(),
            peer: peer.shown.clone(),
        });
    }
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RequestError::BadHeader("Content-Length", "not a number".into()))?;
        if len > server.max_body_len as u64 {
            return Err(RequestError::BodyTooLarge(server.max_body_len));
        }
    }
    let body = Limited::new(req.into_body(), server.max_body_len)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                RequestError::BodyTooLarge(server.max_body_len)
            } else {
                RequestError::Body(e.to_string())
            }
        })?
        .to_bytes();
    Ok(Request {
        from,
        to: server.domain.clone(),
        endpoint,
        body: body.to_vec(),
    })
}

fn header<'a>(
    headers: &'a HeaderMap,
    name: hyper::header::HeaderName,
    label: &'static str,
) -> Result<&'a str, RequestError> {
    headers
        .get(name)
        .ok_or(RequestError::MissingHeader(label))?
        .to_str()
        .map_err(|_| RequestError::BadHeader(label, "not visible ASCII".into()))
}

fn to_hyper(response: Response, text: bool) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(response.body)));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if text {
        out.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    out
}
