//! The outgoing side: one attempt of one MIMI request (P§4.1) over a fresh connection of
//! the [`Transport`], bounded by a timeout. No retries here; the core decides.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{FROM, HOST};
use hyper_util::rt::TokioIo;
use nodes::io::{Request, Response, TransportError};

use super::transport::Transport;

/// Sends `request` to the provider named by `request.to` and waits for the whole
/// response, at most `timeout`.
pub(crate) async fn attempt<T: Transport>(
    transport: &T,
    request: Request,
    timeout: Duration,
    max_body_len: usize,
) -> Result<Response, TransportError> {
    tokio::time::timeout(timeout, exchange(transport, request, max_body_len))
        .await
        .unwrap_or(Err(TransportError::Timeout))
}

/// Any failure to get a readable response other than the timeout.
fn unreachable<E>(_: E) -> TransportError {
    TransportError::Unreachable
}

async fn exchange<T: Transport>(
    transport: &T,
    request: Request,
    max_body_len: usize,
) -> Result<Response, TransportError> {
    // An unknown host name, or a host with nothing listening, fails at once.
    let stream = transport.connect(&request.to).await.map_err(|e| {
        tracing::debug!(to = %request.to, "could not connect: {e}");
        TransportError::Unreachable
    })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(unreachable)?;
    let http_request = hyper::Request::post(request.endpoint.path())
        .header(HOST, request.to.as_str())
        .header(FROM, request.from.from_header())
        .body(Full::new(Bytes::from(request.body)))
        .map_err(unreachable)?;
    let mut response = pin!(async move {
        let response = sender
            .send_request(http_request)
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), max_body_len)
            .collect()
            .await
            .map_err(unreachable)?
            .to_bytes();
        Ok(Response::new(status, body.to_vec()))
    });
    // The connection future does the I/O; the response future reads what it produced.
    // If the connection ends first, the response may still be buffered: finish reading it.
    tokio::select! {
        biased;
        result = &mut response => return result,
        _ = connection => {}
    }
    response.await
}
