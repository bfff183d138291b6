//! Connections to Jupyter, owned by the client connection they serve.
//!
//! A client connection keeps its last upstream connection for its next request, and the
//! client connection's own task drives every upstream connection it opened ([`Upstreams::drive`]),
//! so a proxied HTTP/1.1 request runs in one task from start to end: no shared pool, no lock
//! held across requests, no hand-off to a connection task on another thread. Upstream
//! connections close with the client connection that opened them (a WebSocket, once upgraded,
//! lives on in its splice task).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
pub(crate) struct Upstreams {
    idle: Mutex<Option<(SocketAddr, http1::SendRequest<Incoming>)>>,
    drivers: Mutex<Drivers>,
}

#[derive(Default)]
struct Drivers {
    running: Vec<Driver>,
    /// The client connection's task, woken when a new upstream connection needs driving.
    waker: Option<Waker>,
}

/// Why a request did not get a response from Jupyter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting: timed out")]
    ConnectTimeout,
    #[error("HTTP: {0}")]
    Http(#[source] hyper::Error),
}

impl Upstreams {
    /// Sends `req` to `addr` on this client connection's idle upstream connection, or a new
    /// one. A reused connection that the server closed meanwhile (keep-alive race) is
    /// detected before the request is written, and the request goes on a new one.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        req: Request<Incoming>,
        connect_timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut req = req;
        if let Some(mut sender) = self.take_idle(addr) {
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.keep(addr, sender, response)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Http(err.into_error())),
                },
            }
        }
        let mut sender = self.connect(addr, connect_timeout).await?;
        let response = sender.send_request(req).await.map_err(UpstreamError::Http)?;
        Ok(self.keep(addr, sender, response))
    }

    fn keep(
        &self,
        addr: SocketAddr,
        sender: http1::SendRequest<Incoming>,
        response: Response<Incoming>,
    ) -> Response<Incoming> {
        // An upgraded connection is no longer HTTP.
        if response.status() != StatusCode::SWITCHING_PROTOCOLS
            && let Ok(mut idle) = self.idle.lock()
        {
            *idle = Some((addr, sender));
        }
        response
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<http1::SendRequest<Incoming>> {
        let mut idle = self.idle.lock().ok()?;
        match idle.take() {
            Some((at, sender)) if at == addr && sender.is_ready() => Some(sender),
            // Busy: the previous response is still streaming (an HTTP/2 client's concurrent
            // requests); this request gets a connection of its own.
            Some((at, sender)) if at == addr && !sender.is_closed() => {
                *idle = Some((at, sender));
                None
            }
            _ => None,
        }
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<http1::SendRequest<Incoming>, UpstreamError> {
        let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(UpstreamError::Connect(err)),
            Err(_) => return Err(UpstreamError::ConnectTimeout),
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Http)?;
        let driver: Driver = Box::pin(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(target: "xdc_web", backend = %addr, error = %err, "upstream connection failed");
            }
        });
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.running.push(driver);
            if let Some(waker) = &drivers.waker {
                waker.wake_by_ref();
            }
        }
        Ok(sender)
    }

    /// Drives this client connection's upstream connections; never completes. Poll it in the
    /// client connection's task, before the client connection itself, so an upstream
    /// connection that finished a response is ready again when the next request is read.
    pub(crate) fn drive(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            let Ok(mut drivers) = self.drivers.lock() else { return Poll::Pending };
            if !drivers.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                drivers.waker = Some(cx.waker().clone());
            }
            drivers.running.retain_mut(|driver| driver.as_mut().poll(cx).is_pending());
            Poll::Pending
        })
    }
}
