//! Asking an XDC's services whether they answer: sshd's banner and Jupyter's HTTP status.
//!
//! [`crate::XdcRuntime::apply`] returns once the container runs; callers that need to know
//! when users can actually log in (tests, the benchmark, a controller reporting readiness)
//! poll these. Each call makes one bounded attempt.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

const ATTEMPT: Duration = Duration::from_secs(5);

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Connects to `addr` and reads the SSH identification line (`SSH-2.0-…`).
pub async fn ssh_banner(addr: SocketAddr) -> io::Result<String> {
    let stream = timeout(ATTEMPT, TcpStream::connect(addr)).await.map_err(|_| timed_out("connect"))??;
    let mut line = String::new();
    let mut reader = BufReader::new(stream).take(512);
    timeout(ATTEMPT, reader.read_line(&mut line)).await.map_err(|_| timed_out("reading the banner"))??;
    if line.starts_with("SSH-") {
        Ok(line.trim_end().to_owned())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, format!("not an SSH banner: {line:?}")))
    }
}

/// Sends `GET path` over HTTP/1.0 with the given extra header lines and returns the status
/// code.
pub async fn http_status(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> io::Result<u16> {
    let mut stream = timeout(ATTEMPT, TcpStream::connect(addr)).await.map_err(|_| timed_out("connect"))??;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut line = String::new();
    let mut reader = BufReader::new(stream).take(4096);
    timeout(ATTEMPT, reader.read_line(&mut line)).await.map_err(|_| timed_out("reading the status"))??;
    line.split_whitespace().nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("not an HTTP status line: {line:?}"))
    })
}

/// Repeats `attempt` every `every` until it succeeds or `patience` has passed; returns the
/// last outcome.
pub async fn retry<T, F, Fut>(patience: Duration, every: Duration, mut attempt: F) -> io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if start.elapsed() >= patience => return Err(e),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
