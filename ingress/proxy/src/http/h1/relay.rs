//! The backend side of an exchange: the rest of a request body, the response head, and the
//! response relayed to the client in whatever framing the backend chose.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::chunked::Chunked;
use super::head::{self, Framing};
use super::streams::BackendStream;
use super::{ClientIo, Conn, Failure, READ_SIZE, Relayed};
use crate::pool::Backend;

impl<I: ClientIo> Conn<'_, I> {
    /// Streams the part of the request body not yet read from the client.
    pub(super) async fn send_body_rest(
        &mut self,
        stream: &mut BackendStream,
        request: &head::Request,
        buffered: u64,
    ) -> Result<(), Failure> {
        let mut left = request.body_len - buffered;
        if left == 0 {
            return Ok(());
        }
        let idle = self.ep.shared.timeouts.idle;
        let mut chunk = vec![0u8; READ_SIZE];
        while left > 0 {
            let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match tokio::time::timeout(idle, self.io.read(&mut chunk[..want])).await {
                Ok(Ok(0)) => return Err(Failure::Client(io::ErrorKind::UnexpectedEof.into())),
                Ok(Ok(n)) => n,
                Ok(Err(err)) => return Err(Failure::Client(err)),
                Err(_) => return Err(Failure::Client(io::ErrorKind::TimedOut.into())),
            };
            write_flushed(stream, &chunk[..n])
                .await
                .map_err(|err| Failure::Backend { connect: false, error: err.to_string() })?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Sends the response head and body to the client; interim (1xx) heads first.
    pub(super) async fn relay(
        &mut self,
        mut stream: BackendStream,
        mut response: BytesMut,
        mut parsed: head::Response,
        request: &head::Request,
        backend: &Arc<Backend>,
    ) -> Result<Relayed, Failure> {
        let idle = self.ep.shared.timeouts.idle;
        while parsed.interim {
            self.write_client().await?;
            response.advance(parsed.head_len);
            parsed = match head::response(&response, request.is_head, request.close, &mut self.head) {
                Ok(Some(next)) => next,
                _ => read_response_head(&mut stream, &mut response, request, idle, &mut self.head)
                    .await
                    // The client has seen an interim answer: no 502, no retry elsewhere.
                    .map_err(|failure| match failure {
                        Failure::Backend { error, .. } => Failure::BackendMidResponse(error),
                        Failure::Stale => {
                            Failure::BackendMidResponse("closed after an interim answer".into())
                        }
                        other => other,
                    })?,
            };
        }
        response.advance(parsed.head_len);
        // The body bytes that came with the head go out with it.
        let mut chunked = Chunked::default();
        let (first, mut done) = match parsed.framing {
            Framing::Empty => (0, true),
            Framing::Length(len) => {
                let first = len.min(response.len() as u64);
                (first as usize, first == len)
            }
            Framing::Chunked => match chunked.feed(&response) {
                Ok(Some(end)) => (end, true),
                Ok(None) => (response.len(), false),
                Err(err) => return Err(Failure::BackendMidResponse(err.to_string())),
            },
            Framing::UntilClose => (response.len(), false),
        };
        self.head.extend_from_slice(&response[..first]);
        // Bytes past the end of the response mean the backend is out of step: do not reuse.
        let mut clean = first == response.len();
        let keep_alive = parsed.framing != Framing::UntilClose;
        if done {
            // The whole response is in hand: the connection can serve another request while
            // this one is written to the client.
            if clean && parsed.reusable {
                backend.streams.put(stream);
            }
            self.write_client().await?;
            return Ok(Relayed { status: parsed.status, keep_alive });
        }
        self.write_client().await?;
        let mut left = match parsed.framing {
            Framing::Length(len) => len - first as u64,
            _ => 0,
        };
        let mut buf = response;
        while !done {
            buf.clear();
            if buf.capacity() < READ_SIZE {
                buf.reserve(READ_SIZE);
            }
            let n = match tokio::time::timeout(idle, stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) if parsed.framing == Framing::UntilClose => {
                    done = true;
                    clean = false;
                    continue;
                }
                Ok(Ok(0)) => return Err(Failure::BackendMidResponse("closed mid-body".into())),
                Ok(Ok(n)) => n,
                Ok(Err(err)) => return Err(Failure::BackendMidResponse(err.to_string())),
                Err(_) => return Err(Failure::BackendMidResponse("timed out mid-body".into())),
            };
            let take = match parsed.framing {
                Framing::Length(_) => {
                    let take = (n as u64).min(left);
                    left -= take;
                    done = left == 0;
                    take as usize
                }
                Framing::Chunked => match chunked.feed(&buf) {
                    Ok(Some(end)) => {
                        done = true;
                        end
                    }
                    Ok(None) => n,
                    Err(err) => return Err(Failure::BackendMidResponse(err.to_string())),
                },
                _ => n,
            };
            clean = take == n;
            self.io.write_all(&buf[..take]).await.map_err(Failure::Client)?;
        }
        self.io.flush().await.map_err(Failure::Client)?;
        if clean && parsed.reusable {
            backend.streams.put(stream);
        }
        Ok(Relayed { status: parsed.status, keep_alive })
    }
}

/// Writes `bytes` and flushes them (TLS holds written bytes until then).
pub(super) async fn write_flushed(stream: &mut BackendStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Reads from `stream` into `buf` until a whole response head is there, parses it, and
/// writes the head for the client into `out`.
pub(super) async fn read_response_head(
    stream: &mut BackendStream,
    buf: &mut BytesMut,
    request: &head::Request,
    idle: Duration,
    out: &mut Vec<u8>,
) -> Result<head::Response, Failure> {
    let failed = |error: String| Failure::Backend { connect: false, error };
    loop {
        if !buf.is_empty() {
            match head::response(buf, request.is_head, request.close, out) {
                Ok(Some(parsed)) => return Ok(parsed),
                Ok(None) if buf.len() >= crate::http::MAX_HEADER_BYTES => {
                    return Err(failed("response head too large".into()));
                }
                Ok(None) => {}
                Err(err) => return Err(failed(err.to_string())),
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_SIZE);
        }
        match tokio::time::timeout(idle, stream.read_buf(buf)).await {
            Ok(Ok(0)) if buf.is_empty() => return Err(Failure::Stale),
            Ok(Ok(0)) => return Err(failed("closed in the response head".into())),
            Ok(Ok(_)) => {}
            Ok(Err(err)) if buf.is_empty() && err.kind() == io::ErrorKind::ConnectionReset => {
                return Err(Failure::Stale);
            }
            Ok(Err(err)) => return Err(failed(err.to_string())),
            Err(_) => return Err(failed("no response in time".into())),
        }
    }
}
