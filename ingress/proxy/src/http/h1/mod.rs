//! The HTTP/1.1 fast path: one task per client connection reads a request head, forwards it
//! over a pooled plain TCP connection to a backend and relays the answer.
//!
//! hyper's server and client cost this proxy ~2× HAProxy's CPU per request and 24 KiB per idle
//! keep-alive connection (BENCHMARKS.md, "Ingress"): a `HeaderMap` built and serialized twice
//! per request, a task switch to the backend connection's own task, and two 8 KiB buffers held
//! while a connection waits. Here the heads are parsed in place and copied with their
//! hop-by-hop and forwarding headers fixed (`head.rs`), bodies pass through unchanged
//! (`chunked.rs` only finds where a chunked one ends; `relay.rs` moves them), backend
//! connections are pooled plain TCP or TLS (`streams.rs`), and a connection between requests
//! holds no buffer at all: it waits for readability first.
//!
//! Everything else — HTTP/2, HTTP/1.0, upgrades, `Expect`, chunked request bodies,
//! absolute-form targets, gRPC, pools of HTTP/2 backends — is handed to the hyper path
//! with the bytes read so far replayed ([`Served::Fallback`]).

mod chunked;
mod head;
mod relay;
mod streams;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use self::head::{HeadError, Verdict};
use super::HttpEndpoint;
use super::headers::Client;
use crate::metrics::ProxyError;
use crate::pool::{Backend, Pool, Tried, Upstream};

pub(crate) use self::streams::{BackendStream, IdleStreams, connect as connect_backend};

/// How many backends one request may try (the first plus retries).
const MAX_ATTEMPTS: usize = 3;
/// Read buffer for a request head, and the unit bodies move in.
const READ_SIZE: usize = 16 * 1024;

/// A client connection the fast path can serve.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Waits until the connection has something to read, without a buffer to read it into.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientIo for TcpStream {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        // rustls may already hold decrypted bytes the socket will never signal again, so a
        // TLS connection waits in its read instead (and keeps its buffer).
        std::future::ready(Ok(()))
    }
}

/// How a connection left the fast path.
pub(crate) enum Served<I> {
    Closed,
    /// The hyper path takes over: `io`, with `read` (bytes already read from it) replayed first.
    Fallback {
        io: I,
        read: Bytes,
    },
}

/// Serves HTTP/1.1 requests on `io` until the client leaves, an error closes the connection,
/// `stop` asks for a graceful close, or a request needs the hyper path.
pub(crate) async fn serve<I: ClientIo>(
    ep: &HttpEndpoint,
    io: I,
    peer: SocketAddr,
    stop: &CancellationToken,
) -> Served<I> {
    let mut conn = Conn {
        ep,
        https: ep.tls.is_some(),
        io,
        client: Client::new(peer),
        input: BytesMut::new(),
        scanned: 0,
        head: Vec::new(),
    };
    loop {
        let (request, pool, route) = match conn.next_request(stop).await {
            Next::Request(request, pool, route) => (request, pool, route),
            Next::Answered { keep_alive } => {
                if conn.write_client().await.is_err() || !keep_alive {
                    break;
                }
                continue;
            }
            Next::Fallback => return Served::Fallback { io: conn.io, read: conn.input.freeze() },
            Next::Close => break,
        };
        // Boxed: an exchange's state is most of this future, and an idle connection (the
        // common case with thousands open) does not need room for it.
        let keep_alive = Box::pin(conn.exchange(request, &pool, &route)).await;
        if !keep_alive || stop.is_cancelled() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.io.shutdown()).await;
    Served::Closed
}

enum Next {
    Request(head::Request, Arc<Pool>, Arc<str>),
    /// A local answer is in `head`, to be sent before the next request (or the close).
    Answered {
        keep_alive: bool,
    },
    Fallback,
    Close,
}

struct Conn<'a, I> {
    ep: &'a HttpEndpoint,
    https: bool,
    io: I,
    client: Client,
    /// Bytes from the client not yet forwarded: the next request's head, and maybe more.
    input: BytesMut,
    /// How much of `input` is known to hold no complete head yet.
    scanned: usize,
    /// The head being sent (rewritten request, rewritten response, or a local answer).
    head: Vec<u8>,
}

/// Why an exchange with a backend failed.
enum Failure {
    /// The backend failed before a byte of its response reached the client.
    Backend { connect: bool, error: String },
    /// The backend closed the connection without a byte of response (on a pooled
    /// connection: it closed it while idle, before it could see the request).
    Stale,
    /// The backend's response broke off or was malformed after the client saw part of it.
    BackendMidResponse(String),
    /// The client went away or sent a bad body.
    Client(io::Error),
}

/// The end of a successful exchange.
struct Relayed {
    status: u16,
    /// The client connection can carry another request.
    keep_alive: bool,
}

impl<I: ClientIo> Conn<'_, I> {
    async fn next_request(&mut self, stop: &CancellationToken) -> Next {
        // For HTTP/1.1 the header clock also runs while a kept-alive connection waits.
        let deadline = tokio::time::Instant::now() + self.ep.shared.timeouts.header_read;
        loop {
            if self.input.is_empty() {
                // Between requests the connection holds no buffer.
                self.input = BytesMut::new();
                self.head = Vec::new();
                self.scanned = 0;
                tokio::select! {
                    ready = tokio::time::timeout_at(deadline, self.io.readable()) => {
                        if !matches!(ready, Ok(Ok(()))) {
                            return Next::Close;
                        }
                    }
                    _ = stop.cancelled() => return Next::Close,
                }
            } else if let Some(next) = self.parse_request() {
                return next;
            }
            if self.input.capacity() - self.input.len() < 1024 {
                self.input.reserve(READ_SIZE);
            }
            // A TLS connection waits here rather than in `readable`: a graceful stop may close
            // it as long as no request has begun.
            let between_requests = self.input.is_empty();
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.input)) => read,
                _ = stop.cancelled(), if between_requests => return Next::Close,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return Next::Close,
                Ok(Ok(_)) => {}
                Err(_) if self.input.is_empty() => return Next::Close,
                Err(_) => {
                    self.local(408, "Request Timeout", "the request head took too long\n", true);
                    return Next::Answered { keep_alive: false };
                }
            }
        }
    }

    /// Tries to parse the head in `input`; `None` when more bytes are needed.
    fn parse_request(&mut self) -> Option<Next> {
        // Only parse once a blank line has arrived: a client sending its head a byte at a
        // time must not make the proxy parse it from the start each time.
        let from = self.scanned.saturating_sub(3);
        let complete = self.input[from..].windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
        self.scanned = self.input.len();
        let verdict = if complete || self.input.len() < 4 {
            head::request(&self.input, &self.client, self.https, &mut self.head)
        } else {
            Ok(Verdict::Partial)
        };
        match verdict {
            Ok(Verdict::Partial) if self.input.len() >= super::MAX_HEADER_BYTES => {
                self.local(431, "Request Header Fields Too Large", "request headers too large\n", true);
                Some(Next::Answered { keep_alive: false })
            }
            Ok(Verdict::Partial) => None,
            Ok(Verdict::Fallback) => Some(Next::Fallback),
            Ok(Verdict::Forward(request)) => Some(self.route(request)),
            Err(err) => {
                tracing::debug!(endpoint = %self.ep.name, client = %self.client.addr, error = %err, "bad request head");
                if err == HeadError::Malformed(httparse::Error::TooManyHeaders) {
                    self.local(431, "Request Header Fields Too Large", "too many request headers\n", true);
                } else {
                    self.local(400, "Bad Request", "malformed request\n", true);
                }
                Some(Next::Answered { keep_alive: false })
            }
        }
    }

    fn route(&mut self, request: head::Request) -> Next {
        let target = std::str::from_utf8(&self.input[request.path.clone()]).unwrap_or("/");
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let found = {
            let routes = self.ep.shared.routes.load();
            routes.lookup(&self.ep.name, request.host.as_deref().unwrap_or(""), path).map(|r| {
                let stripped = r.stripped(target).zip(r.strip.clone());
                (r.pool.clone(), r.id.clone(), stripped)
            })
        };
        match found {
            // HTTP/2 backends are the hyper client's job.
            Some((pool, _, _)) if pool.config.http2 => Next::Fallback,
            Some((pool, route, stripped)) => {
                if let Some((target, prefix)) = stripped {
                    head::retarget(&mut self.head, &request, &target, &prefix);
                }
                Next::Request(request, pool, route)
            }
            None => {
                self.ep.metrics.error(ProxyError::NoRoute);
                // With its body all read, the request can be skipped and the connection kept.
                let keep_alive = !request.close && self.body_buffered(&request) == request.body_len;
                self.local(404, "Not Found", "no route for this host and path\n", !keep_alive);
                self.log(&request, None, 404, None, Instant::now());
                if keep_alive {
                    self.consume(&request);
                }
                Next::Answered { keep_alive }
            }
        }
    }

    /// Forwards `request` and relays the answer; `true` when the connection may carry another.
    async fn exchange(&mut self, request: head::Request, pool: &Pool, route: &str) -> bool {
        let started = Instant::now();
        let buffered = self.body_buffered(&request);
        let replayable = buffered == request.body_len;
        // The rewritten head and the body bytes already read go out in one write.
        let body_start = request.head_len;
        self.head.extend_from_slice(&self.input[body_start..body_start + buffered as usize]);
        let retry_elsewhere = replayable && request.idempotent && pool.backends.len() > 1;

        let mut tried = Tried::default();
        let mut last_failure = None;
        for attempt in 1..=MAX_ATTEMPTS {
            let Some((index, backend)) = pool.pick(tried) else { break };
            tried.add(index);
            let backend = backend.clone();
            let _in_flight = backend.start();
            let result = self.forward(&backend, &pool.upstream, &request, buffered, replayable).await;
            match result {
                Ok(relayed) => {
                    backend.record_success();
                    self.log(&request, Some(route), relayed.status, Some(backend.addr), started);
                    self.consume(&request);
                    return relayed.keep_alive && !request.close;
                }
                Err(Failure::Client(err)) => {
                    tracing::debug!(endpoint = %self.ep.name, client = %self.client.addr, error = %err, "client connection failed mid-request");
                    return false;
                }
                Err(Failure::BackendMidResponse(error)) => {
                    self.blame(&backend, pool);
                    tracing::debug!(endpoint = %self.ep.name, backend = %backend.addr, error, "backend response broke off");
                    self.ep.metrics.error(ProxyError::BackendFailed);
                    return false;
                }
                Err(Failure::Stale) => {
                    // A new connection closed without answering.
                    self.blame(&backend, pool);
                    last_failure = Some(ProxyError::BackendFailed);
                    if !retry_elsewhere {
                        break;
                    }
                }
                Err(Failure::Backend { connect, error }) => {
                    self.blame(&backend, pool);
                    tracing::debug!(endpoint = %self.ep.name, backend = %backend.addr, attempt, error, "backend request failed");
                    last_failure =
                        Some(if connect { ProxyError::ConnectFailed } else { ProxyError::BackendFailed });
                    if !retry_elsewhere {
                        break;
                    }
                }
            }
        }
        let kind = last_failure.unwrap_or(ProxyError::NoBackend);
        self.ep.metrics.error(kind);
        let (status, reason, text) = match kind {
            ProxyError::NoBackend => (503, "Service Unavailable", "no healthy backend\n"),
            _ => (502, "Bad Gateway", "the backend did not answer\n"),
        };
        // The body may be half read; only a fully buffered one leaves the connection usable.
        let keep_alive = replayable && !request.close;
        self.local(status, reason, text, !keep_alive);
        self.log(&request, Some(route), status, None, started);
        if keep_alive {
            self.consume(&request);
        }
        self.write_client().await.is_ok() && keep_alive
    }

    /// One attempt on one backend.
    async fn forward(
        &mut self,
        backend: &Arc<Backend>,
        upstream: &Upstream,
        request: &head::Request,
        buffered: u64,
        replayable: bool,
    ) -> Result<Relayed, Failure> {
        let idle = self.ep.shared.timeouts.idle;
        let (mut stream, mut reused) = match backend.streams.take(BackendStream::is_quiet) {
            Some(stream) => (stream, true),
            None => (self.connect(backend, upstream).await?, false),
        };
        let mut response = BytesMut::with_capacity(READ_SIZE);
        let parsed = loop {
            let result = match relay::write_flushed(&mut stream, &self.head).await {
                Ok(()) => self.send_body_rest(&mut stream, request, buffered).await,
                Err(_) if reused => Err(Failure::Stale),
                Err(err) => Err(Failure::Backend { connect: false, error: err.to_string() }),
            };
            let result = match result {
                Ok(()) => {
                    relay::read_response_head(&mut stream, &mut response, request, idle, &mut self.head).await
                }
                Err(failure) => Err(failure),
            };
            match result {
                // The backend closed a pooled connection as we picked it (it cannot have seen
                // the request): send it again on a new one, without blaming the backend.
                Err(Failure::Stale) if reused && replayable => {
                    stream = self.connect(backend, upstream).await?;
                    reused = false;
                }
                other => break other?,
            }
        };
        self.relay(stream, response, parsed, request, backend).await
    }

    async fn connect(&self, backend: &Backend, upstream: &Upstream) -> Result<BackendStream, Failure> {
        streams::connect(backend.addr, upstream, self.ep.shared.timeouts.connect)
            .await
            .map_err(|err| Failure::Backend { connect: true, error: err.to_string() })
    }

    async fn write_client(&mut self) -> Result<(), Failure> {
        self.io.write_all(&self.head).await.map_err(Failure::Client)?;
        self.io.flush().await.map_err(Failure::Client)
    }

    fn blame(&self, backend: &Backend, pool: &Pool) {
        let ejection = &pool.config.ejection;
        backend.record_failure(ejection.consecutive_failures, ejection.cooldown);
    }

    /// How many body bytes of `request` are already in `input`.
    fn body_buffered(&self, request: &head::Request) -> u64 {
        ((self.input.len() - request.head_len) as u64).min(request.body_len)
    }

    /// Drops `request` (head and buffered body) from `input`.
    fn consume(&mut self, request: &head::Request) {
        let used = request.head_len + self.body_buffered(request) as usize;
        self.input.advance(used);
        self.scanned = 0;
    }

    /// Writes a local answer into `head`, for [`Self::write_client`].
    fn local(&mut self, status: u16, reason: &str, text: &str, close: bool) {
        head::local(&mut self.head, status, reason, text, close);
    }

    fn log(
        &self,
        request: &head::Request,
        route: Option<&str>,
        status: u16,
        backend: Option<SocketAddr>,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        self.ep.metrics.response(status, elapsed);
        if self.ep.shared.access_log() {
            let text =
                |range: std::ops::Range<usize>| String::from_utf8_lossy(&self.input[range]).into_owned();
            tracing::info!(
                target: "access",
                endpoint = %self.ep.name,
                client = %self.client.addr,
                method = %text(request.method.clone()),
                host = request.host.as_deref().unwrap_or("-"),
                path = %text(request.path.clone()),
                route = route.unwrap_or("-"),
                status,
                backend = %backend.map_or_else(|| "-".to_owned(), |b| b.to_string()),
                micros = elapsed.as_micros() as u64,
            );
        }
    }
}
