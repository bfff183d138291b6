//! The harness the `trellis` end-to-end tests share: a real `trellisd up` per test and CLI
//! sessions with private configuration files.
//!
//! `trellisd` is not a dependency of this crate (a client must not link the server), so its
//! binary must already be built: run `cargo build --workspace` (CI runs
//! `cargo build --workspace --all-targets`) before `cargo test -p trellis-cli`.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "adminpass123";

/// The `trellisd` binary: next to `trellis` in the same target directory.
pub fn trellisd_binary() -> PathBuf {
    let beside = Path::new(env!("CARGO_BIN_EXE_trellis")).with_file_name("trellisd");
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/trellisd");
    for candidate in [&beside, &in_workspace] {
        if candidate.is_file() {
            return candidate.clone();
        }
    }
    panic!(
        "trellisd binary not found at {} or {}: run `cargo build --workspace` (or \
         `cargo build -p trellisd`) before `cargo test -p trellis-cli`",
        beside.display(),
        in_workspace.display()
    );
}

/// A running `trellisd up`, stopped (by PID) when dropped.
pub struct Portal {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// What `trellis --server` is given: `addr`, or `https://addr` when serving TLS.
    pub server: String,
    /// The temporary directory holding the portal's data, logs and the sessions' homes.
    pub dir: tempfile::TempDir,
}

impl Portal {
    pub fn start() -> Portal {
        Portal::start_with(tempfile::tempdir().unwrap(), None)
    }

    /// Starts trellisd in `dir`, serving TLS with `tls` = (certificate chain, key) if given.
    pub fn start_with(dir: tempfile::TempDir, tls: Option<(PathBuf, PathBuf)>) -> Portal {
        let binary = trellisd_binary();
        // A port picked by the kernel can be taken again before trellisd binds it: retry.
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr = format!("127.0.0.1:{port}");
            let log = std::fs::File::create(dir.path().join(format!("trellisd-{attempt}.log"))).unwrap();
            let mut command = Command::new(&binary);
            command
                .args(["up", "--listen", &addr, "--data-dir"])
                .arg(dir.path().join(format!("data-{attempt}")));
            if let Some((cert, key)) = &tls {
                command.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            }
            let mut child = command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .env("TRELLIS_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("TRELLIS_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            if wait_healthy(&mut child, &addr, tls.is_some()) {
                let server = if tls.is_some() { format!("https://{addr}") } else { addr.clone() };
                return Portal { child, addr, server, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let logs: Vec<String> = (0..3)
            .filter_map(|a| std::fs::read_to_string(dir.path().join(format!("trellisd-{a}.log"))).ok())
            .collect();
        panic!("trellisd did not become healthy:\n{}", logs.join("\n---\n"));
    }

    /// A CLI user with their own configuration file.
    pub fn session(&self, name: &str) -> Session<'_> {
        let home = self.dir.path().join(format!("home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        Session { portal: self, config: home.join("config.yml"), home }
    }
}

/// Polls `/healthz` until it answers 200, the process exits, or 60 s pass.
///
/// Over TLS this test speaks no TLS itself, so there it waits for the port to accept
/// connections: trellisd binds only after opening its store, and serves right after binding.
pub fn wait_healthy(child: &mut Child, addr: &str, tls: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if tls {
            if TcpStream::connect(addr).is_ok() {
                return true;
            }
        } else if let Ok(mut stream) = TcpStream::connect(addr) {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 200")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person running `trellis`, with a private configuration file.
pub struct Session<'a> {
    portal: &'a Portal,
    /// The session's configuration file.
    pub config: PathBuf,
    /// The session's `HOME`.
    pub home: PathBuf,
}

impl Session<'_> {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trellis"));
        cmd.arg("--server")
            .arg(&self.portal.server)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("xdg"));
        cmd
    }

    /// Runs `trellis <args>` with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a command that must succeed, returning its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// Runs a `--json` command that must succeed, returning the parsed output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        serde_json::from_str(&self.ok(&with_json)).unwrap()
    }

    /// Runs a command that must fail with exit status `code`, returning its standard error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "trellis {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "trellis {args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
        stderr
    }

    pub fn login(&self, username: &str, password: &str) {
        let args = ["login", username, "--password-stdin"];
        succeeded(&args, self.run_with_input(&args, &format!("{password}\n")));
    }

    pub fn register(&self, username: &str, password: &str) {
        let email = format!("{username}@example.org");
        let args = ["register", username, "--email", &email, "--name", "Test User", "--password-stdin"];
        succeeded(&args, self.run_with_input(&args, &format!("{password}\n")));
    }

    pub fn stored_token(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.config).unwrap();
        text.lines().find_map(|l| l.strip_prefix("token: ")).map(|t| t.trim().to_owned())
    }
}

pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "trellis {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v[field].as_str().unwrap().to_owned()).collect()
}
