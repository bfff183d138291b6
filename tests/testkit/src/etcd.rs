//! A real, throwaway etcd server for tests.
//!
//! [`EtcdServer::start`] runs Debian's `/usr/bin/etcd` as a single-member cluster on free
//! loopback ports with a fresh temporary data directory and waits until it reports healthy.
//! It runs with the transaction limits Trellis requires ([`MAX_TXN_OPS`], [`MAX_REQUEST_BYTES`]).
//! The server can be stopped and restarted on the same ports and data (to test resuming after a
//! restart). Dropping it kills the process (by PID, the one this handle started) and removes the
//! directory. etcd's own output goes to `etcd.log` in that directory, and its tail is included
//! in the error when the server fails to come up.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The etcd binary from Debian's `etcd-server` package.
const ETCD_BIN: &str = "/usr/bin/etcd";
/// How long a start may take before it is treated as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Operations etcd accepts in one transaction (etcd's default is 128). Trellis needs more:
/// realizing an experiment compares and writes one key per host, port, trunk and VLAN it takes,
/// all in one transaction. Production etcd must be started with at least this.
pub const MAX_TXN_OPS: u32 = 10_000;
/// The largest request etcd accepts, in bytes (etcd's default is 1.5 MiB), for the same reason.
pub const MAX_REQUEST_BYTES: u32 = 32 * 1024 * 1024;
/// How many fresh port pairs `start` tries (another process may take a port we picked).
const START_ATTEMPTS: usize = 3;

/// A running (or stopped) single-member etcd cluster owned by a test.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl EtcdServer {
    /// Starts etcd on free 127.0.0.1 ports with a fresh data directory and waits until healthy.
    pub async fn start() -> anyhow::Result<EtcdServer> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new().prefix("trellis-etcd-").tempdir()?;
            let (client_port, peer_port) = free_ports()?;
            let mut server = EtcdServer { child: None, dir, client_port, peer_port };
            match server.launch().await {
                Ok(()) => return Ok(server),
                // Dropping `server` kills the process and removes the directory.
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The client URL, like `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The PID of the running etcd process, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory (kept across restarts, removed on drop).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the etcd process (SIGKILL, like a crash) and waits for it to exit. The data
    /// directory is kept. Stopping a stopped server does nothing.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing etcd")?;
            // The process was just killed, so this wait is short.
            tokio::task::spawn_blocking(move || child.wait()).await?.context("waiting for etcd")?;
        }
        Ok(())
    }

    /// Stops etcd if it is running and starts it again on the same ports and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }

    /// Spawns etcd with this server's ports and directory and waits for it to be healthy.
    async fn launch(&mut self) -> anyhow::Result<()> {
        let log_path = self.dir.path().join("etcd.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(ETCD_BIN)
            .arg("--name=trellis-test")
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=trellis-test={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=trellis-test")
            // Short raft timers: a single member elects itself quickly and the minimum lease
            // TTL (1.5 election timeouts) stays at one second.
            .arg("--heartbeat-interval=50")
            .arg("--election-timeout=500")
            // What Trellis requires of a production etcd: a realization commits every resource
            // it takes in one transaction, beyond the defaults of 128 operations and 1.5 MiB.
            .arg(format!("--max-txn-ops={MAX_TXN_OPS}"))
            .arg(format!("--max-request-bytes={MAX_REQUEST_BYTES}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {ETCD_BIN}"))?;
        self.child = Some(child);
        self.wait_healthy(&log_path).await
    }

    /// Polls `/health` until etcd has a leader, failing early if the process exits.
    async fn wait_healthy(&mut self, log_path: &Path) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("etcd exited with {status} while starting:\n{}", log_tail(log_path));
            }
            if health(self.client_port).await {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                self.kill_now();
                bail!("etcd was not healthy after {START_TIMEOUT:?}:\n{}", log_tail(log_path));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills and reaps the process synchronously (for `Drop` and failed starts).
    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may already have exited; either way `wait` reaps it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill_now();
        // `self.dir` (a TempDir) removes the data directory when it drops after this.
    }
}

/// Two distinct free loopback ports. Both listeners are held until both ports are known so the
/// kernel cannot hand out the same port twice.
fn free_ports() -> anyhow::Result<(u16, u16)> {
    let client = TcpListener::bind("127.0.0.1:0")?;
    let peer = TcpListener::bind("127.0.0.1:0")?;
    Ok((client.local_addr()?.port(), peer.local_addr()?.port()))
}

/// Whether etcd answers `GET /health` with `"health":"true"`.
async fn health(port: u16) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&body).contains("\"health\":\"true\""))
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(true)))
}

/// The last lines of etcd's log, for error messages.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        use std::io::Read;
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
