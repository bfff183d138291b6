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
use std::sync::atomic::{AtomicU32, Ordering};
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
    /// The data directory trellisd was started with.
    pub data_dir: PathBuf,
    /// The host bridge this portal's XDCs join (created only once an XDC starts).
    pub xdc_bridge: String,
}

/// A bridge name and subnet no other portal of this or a concurrent test run uses, so
/// XDCs of portals running side by side never share addresses or a bridge.
fn xdc_network() -> (String, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    (format!("trc{}n{}", pid % 100_000, n % 100), format!("10.251.{}.0/24", (pid % 32) * 8 + n % 8))
}

impl Portal {
    pub fn start() -> Portal {
        Portal::start_with(tempfile::tempdir().unwrap(), None)
    }

    /// Starts trellisd in `dir`, serving TLS with `tls` = (certificate chain, key) if given.
    pub fn start_with(dir: tempfile::TempDir, tls: Option<(PathBuf, PathBuf)>) -> Portal {
        let binary = trellisd_binary();
        let (bridge, subnet) = xdc_network();
        // A port picked by the kernel can be taken again before trellisd binds it: retry.
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr = format!("127.0.0.1:{port}");
            let log = std::fs::File::create(dir.path().join(format!("trellisd-{attempt}.log"))).unwrap();
            let data_dir = dir.path().join(format!("data-{attempt}"));
            let mut command = Command::new(&binary);
            command.args(["up", "--listen", &addr, "--data-dir"]).arg(&data_dir);
            if let Some((cert, key)) = &tls {
                command.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            }
            let mut child = command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .env("TRELLIS_ADMIN_PASSWORD", ADMIN_PASSWORD)
                .env("TRELLIS_LOG", "warn")
                // Portals run side by side: the jump host and web proxy take free ports, and
                // each portal's XDCs get their own bridge and subnet.
                .env("TRELLIS_JUMP_LISTEN", "127.0.0.1:0")
                .env("TRELLIS_XDC_WEB_LISTEN", "127.0.0.1:0")
                .env("TRELLIS_INGRESS_HTTPS", "127.0.0.1:0")
                .env("TRELLIS_XDC_BRIDGE", &bridge)
                .env("TRELLIS_XDC_SUBNET", &subnet)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            if wait_healthy(&mut child, &addr, tls.is_some()) {
                let server = if tls.is_some() { format!("https://{addr}") } else { addr.clone() };
                return Portal { child, addr, server, dir, data_dir, xdc_bridge: bridge };
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

impl Portal {
    /// The XDCs the local runtime holds (its state directory, less its own record).
    pub fn xdcs_on_runtime(&self) -> Vec<String> {
        match std::fs::read_dir(self.data_dir.join("xdc")) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "runtime.json")
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Deletes every XDC through the portal and waits (up to a minute) for the runtime to
    /// remove them, so a test that failed half-way leaves no container behind. Runs in `drop`,
    /// possibly while a panic unwinds, so it must not panic itself.
    fn remove_xdcs(&self) {
        if self.xdcs_on_runtime().is_empty() {
            return;
        }
        let home = self.dir.path().join("home-xdc-cleanup");
        let _ = std::fs::create_dir_all(&home);
        let run = |args: &[&str], input: Option<&str>| -> Option<Output> {
            let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
            command
                .arg("--server")
                .arg(&self.server)
                .arg("--config")
                .arg(home.join("config.yml"))
                .args(args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = command.spawn().ok()?;
            let mut stdin = child.stdin.take()?;
            let _ = stdin.write_all(input.unwrap_or_default().as_bytes());
            drop(stdin);
            child.wait_with_output().ok()
        };
        run(&["login", "admin", "--password-stdin", "--no-ssh"], Some(&format!("{ADMIN_PASSWORD}\n")));
        let listed = run(&["--json", "list", "xdcs", "--all"], None)
            .and_then(|out| serde_json::from_slice::<Value>(&out.stdout).ok())
            .and_then(|v| v["xdcs"].as_array().cloned())
            .unwrap_or_default();
        for x in listed {
            if let Some(name) = x["name"].as_str() {
                run(&["delete", "xdc", name], None);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.xdcs_on_runtime().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.remove_xdcs();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The bridge outlives trellisd; it is this portal's alone (see `xdc_network`).
        if Path::new("/sys/class/net").join(&self.xdc_bridge).exists() {
            let _ = Command::new("ip").args(["link", "del", &self.xdc_bridge]).status();
        }
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
