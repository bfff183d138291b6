//! A `trellisd` child process for integration tests, and small request helpers.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::transport::Channel;

/// A running `trellisd`, killed (by its PID) when dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts `trellisd <args> --listen <free port> --data-dir <data_dir>` and waits until it
    /// accepts connections.
    pub async fn start(args: &[&str], data_dir: &Path, admin_password: &str) -> Daemon {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // Its own output, shown if it exits before listening (the data directory is the test's).
        let log = data_dir.with_extension("trellisd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_trellisd"))
            .args(args)
            .args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .env("TRELLIS_ADMIN_PASSWORD", admin_password)
            // Daemons run side by side: no fixed ports for the other ways in.
            .env("TRELLIS_JUMP_LISTEN", "127.0.0.1:0")
            .env("TRELLIS_XDC_WEB_LISTEN", "127.0.0.1:0")
            .env("TRELLIS_INGRESS_HTTPS", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("trellisd log file"))
            .spawn()
            .expect("spawn trellisd");
        let mut daemon = Daemon { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("trellisd exited early: {status}\n{output}");
            }
            assert!(Instant::now() < deadline, "trellisd did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    /// A gRPC channel to it.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }
}

/// `message` with a bearer token.
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
