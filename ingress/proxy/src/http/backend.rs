//! HTTP/1.1 connections to backends, kept per backend for reuse.
//!
//! This replaces hyper-util's pooled client on the HTTP/1.1 path, which per request hashed a
//! pool key under a global lock, built a lazy connect future, rewrote the URI and spawned a
//! task to return the connection to the pool once the response body ended. Here a
//! connection is popped from its backend's idle list, used, and pushed back by the response
//! body when its last byte has been read; a connection whose response was not read to the end
//! is dropped (and closed) instead.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::body::RequestBody;
use crate::pool::{Backend, Upstream};

/// A backend's idle hyper connections.
pub(crate) type IdleConns = super::idle::IdleList<SendRequest<RequestBody>>;

/// Why a request could not be sent to a backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    #[error("connecting to the backend failed")]
    Connect(#[source] io::Error),
    #[error("the backend exchange failed")]
    Http(#[source] hyper::Error),
}

/// Hands a connection back to its backend's idle list once the response has been read to
/// the end; dropped earlier, it closes the connection.
#[derive(Debug)]
pub(crate) struct Reuse {
    sender: Option<SendRequest<RequestBody>>,
    backend: Arc<Backend>,
    pub(crate) done: bool,
}

impl Drop for Reuse {
    fn drop(&mut self) {
        if self.done
            && let Some(sender) = self.sender.take()
            && !sender.is_closed()
        {
            self.backend.idle.put(sender);
        }
    }
}

/// Sends `request` (origin-form URI) over an idle connection to `backend`, or a new one.
/// A reused connection the backend closed meanwhile is replaced without counting a failure.
pub(crate) async fn send(
    backend: &Arc<Backend>,
    upstream: &Upstream,
    mut request: Request<RequestBody>,
    connect_timeout: Duration,
) -> Result<(Response<Incoming>, Option<Reuse>), BackendError> {
    loop {
        let (mut sender, reused) = match backend.idle.take(|sender| !sender.is_closed()) {
            Some(sender) => (sender, true),
            None => (connect(backend, upstream, connect_timeout).await?, false),
        };
        // Not ready after the previous response means the connection is closing; a fresh
        // one that fails here reports its error from the send below.
        if sender.ready().await.is_err() && reused {
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                let reuse = Reuse { sender: Some(sender), backend: backend.clone(), done: false };
                return Ok((response, Some(reuse)));
            }
            Err(mut err) => match err.take_message() {
                // Not sent at all: the idle connection was closed under us; try another.
                Some(unsent) if reused => request = unsent,
                _ => return Err(BackendError::Http(err.into_error())),
            },
        }
    }
}

async fn connect(
    backend: &Backend,
    upstream: &Upstream,
    timeout: Duration,
) -> Result<SendRequest<RequestBody>, BackendError> {
    let stream =
        super::h1::connect_backend(backend.addr, upstream, timeout).await.map_err(BackendError::Connect)?;
    let (sender, connection) =
        http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(BackendError::Http)?;
    // The connection runs as its own task, as hyper's client expects: driving it from the
    // request's task instead left stale wakers on reused connections and measured slower.
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "backend connection ended with an error");
        }
    });
    Ok(sender)
}
