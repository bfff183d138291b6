//! A minimal CGI/1.1 bridge to `git http-backend`: request body to stdin, parsed headers and
//! streamed stdout back.

use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderName, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::process::{Child, ChildStdout, Command};
use tokio_util::io::ReaderStream;

/// The CGI program.
pub const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// Largest CGI header block accepted from the backend.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why the bridge could not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum CgiError {
    #[error("starting {HTTP_BACKEND}: {0}")]
    Spawn(std::io::Error),
    #[error("reading the git backend's response: {0}")]
    Read(std::io::Error),
    #[error("the git backend's response headers are malformed: {0}")]
    Malformed(String),
}

/// One CGI invocation.
pub struct Invocation {
    pub project_root: PathBuf,
    /// `/<project>/<experiment>.git/<rest>`.
    pub path_info: String,
    pub remote_user: String,
    /// Extra variables (the hook directory for receive-pack).
    pub env: Vec<(String, String)>,
    /// Kept alive as long as the response body (for example, the hook watcher's drop guard).
    pub guard: Box<dyn Send + Sync + 'static>,
}

/// Runs `git http-backend` for `request` and streams its answer.
pub async fn run(invocation: Invocation, request: Request) -> Result<Response, CgiError> {
    let (parts, body) = request.into_parts();
    let mut command = Command::new(HTTP_BACKEND);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("GIT_PROJECT_ROOT", &invocation.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &invocation.path_info)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_USER", &invocation.remote_user)
        .env("AUTH_TYPE", "Basic");
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        match *name {
            // Credentials stay here; `Proxy:` would become HTTP_PROXY ("httpoxy").
            http::header::AUTHORIZATION | http::header::COOKIE => {}
            _ if name.as_str().eq_ignore_ascii_case("proxy") => {}
            http::header::CONTENT_TYPE => {
                command.env("CONTENT_TYPE", value);
            }
            http::header::CONTENT_LENGTH => {
                command.env("CONTENT_LENGTH", value);
            }
            _ => {
                let var = format!("HTTP_{}", name.as_str().to_ascii_uppercase().replace('-', "_"));
                command.env(var, value);
            }
        }
    }
    for (k, v) in &invocation.env {
        command.env(k, v);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().map_err(CgiError::Spawn)?;

    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                if stdin.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes it: the backend sees the end of the request.
        });
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(%line, "git http-backend");
            }
        });
    }
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| CgiError::Read(std::io::Error::other("backend stdout is not piped")))?;

    let mut buffer = Vec::with_capacity(8192);
    let header_end = loop {
        if let Some(end) = header_end(&buffer) {
            break end;
        }
        if buffer.len() > MAX_HEADER_BYTES {
            return Err(CgiError::Malformed(format!("header block exceeds {MAX_HEADER_BYTES} bytes")));
        }
        let mut chunk = [0u8; 8192];
        let n = stdout.read(&mut chunk).await.map_err(CgiError::Read)?;
        if n == 0 {
            return Err(CgiError::Malformed("the backend ended before its headers did".to_owned()));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let (head, body_len) = header_end;
    let rest = buffer.split_off(head + body_len);
    let head = String::from_utf8_lossy(&buffer[..head]).into_owned();

    let mut response = Response::builder().status(StatusCode::OK);
    for line in head.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let (name, value) =
            line.split_once(':').ok_or_else(|| CgiError::Malformed(format!("header line {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            let code = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| CgiError::Malformed(format!("status {value:?}")))?;
            response = response.status(code);
        } else {
            let name = HeaderName::try_from(name).map_err(|e| CgiError::Malformed(e.to_string()))?;
            let value = HeaderValue::try_from(value).map_err(|e| CgiError::Malformed(e.to_string()))?;
            response = response.header(name, value);
        }
    }
    let output = Output { stdout, _child: child, _guard: invocation.guard };
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(rest))])
        .chain(ReaderStream::new(output));
    response.body(Body::from_stream(stream)).map_err(|e| CgiError::Malformed(e.to_string()))
}

/// Where the header block ends: (its length, the separator's length).
fn header_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The backend's stdout; owns the process (killed when the client goes away and the body is
/// dropped) and whatever must live as long as the response.
struct Output {
    stdout: ChildStdout,
    _child: Child,
    _guard: Box<dyn Send + Sync + 'static>,
}

impl AsyncRead for Output {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::header_end;

    #[test]
    fn finds_the_end_of_either_header_style() {
        assert_eq!(header_end(b"Status: 200\r\n\r\nbody"), Some((11, 4)));
        assert_eq!(header_end(b"Content-Type: x\n\nbody"), Some((15, 2)));
        assert_eq!(header_end(b"Content-Type: x\r\n"), None);
    }
}
