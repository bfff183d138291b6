//! Memory of idle keep-alive connections: open many, send one request on each, keep them
//! open, and read the proxy's resident memory.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::procs::rss_kib;

/// What holding the connections cost the proxy.
pub struct Report {
    pub open: usize,
    pub failed: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub kib_per_connection: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connections open ({} failed); proxy RSS {:.1} MiB before, {:.1} MiB with them open \
             ({:.1} KiB per connection)",
            self.open,
            self.failed,
            self.rss_before_kib as f64 / 1024.0,
            self.rss_after_kib as f64 / 1024.0,
            self.kib_per_connection
        )
    }
}

pub fn measure(addr: &str, proxy_pid: u32, connections: usize) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let before = rss_kib(proxy_pid);
        let mut open = Vec::with_capacity(connections);
        let mut failed = 0usize;
        for _ in 0..connections {
            match one_request(addr).await {
                Ok(stream) => open.push(stream),
                Err(_) => failed += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kib(proxy_pid);
        let report = Report {
            open: open.len(),
            failed,
            rss_before_kib: before,
            rss_after_kib: after,
            kib_per_connection: after.saturating_sub(before) as f64 / open.len().max(1) as f64,
        };
        drop(open);
        // Let the proxy see the closes before anything else is measured.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(report)
    })
}

async fn one_request(addr: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    // The response is headers plus a 612-byte body; read until both have arrived.
    loop {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "closed before the response ended");
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n")
            && seen.len() >= end + 4 + 612
        {
            return Ok(stream);
        }
    }
}
