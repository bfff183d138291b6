//! Network namespaces a test creates for itself: a "client" and a "portal" joined by a veth
//! pair, the portal holding a public address the client routes to, so traffic between them
//! crosses a real interface and the portal's nftables hooks, and never leaves the machine.
//!
//! Everything is named after the test's tag and process id and deleted by name when the
//! [`PortalNet`] is dropped (also when the test panics); nothing else is touched.

use std::fs::File;
use std::os::fd::AsFd as _;
use std::process::Command;
use std::thread::JoinHandle;

/// Whether this process may create namespaces and run `tools` (root, and each tool present).
/// Outside CI a missing prerequisite skips `test` with a message; under CI (`CI` set) it
/// fails, so a suite cannot pass by skipping.
pub fn prerequisites_met(test: &str, tools: &[&str]) -> bool {
    let root = rustix::process::geteuid().is_root();
    let present = |tool: &str| {
        ["--version", "-V"]
            .iter()
            .any(|flag| Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success()))
    };
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !present(tool)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = format!("needs root (root: {root}) and the commands {tools:?} (missing: {missing:?})");
    assert!(std::env::var_os("CI").is_none(), "{test} cannot run under CI: {why}");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Two namespaces and a veth pair: the client at `198.18.<subnet>.1`, the portal at `.2` and
/// at its public address.
pub struct PortalNet {
    pub client: String,
    pub portal: String,
}

impl PortalNet {
    /// `tag` (at most 6 characters) and `subnet` tell apart the tests that run at the same
    /// time; `public` is the portal's public IPv4 address.
    pub fn create(tag: &str, subnet: u8, public: &str) -> PortalNet {
        assert!(tag.len() <= 6, "tag {tag:?}: interface names allow 15 characters");
        let pid = std::process::id();
        let net =
            PortalNet { client: format!("trellis-{tag}-c-{pid}"), portal: format!("trellis-{tag}-p-{pid}") };
        net.delete();
        let (veth_client, veth_portal) = (format!("{tag}c{pid}"), format!("{tag}p{pid}"));
        run("ip", &["netns", "add", &net.client]);
        run("ip", &["netns", "add", &net.portal]);
        let pair = ["link", "add", &veth_client, "netns", &net.client, "type", "veth", "peer", "name"];
        run("ip", &[&pair[..], &[&veth_portal, "netns", &net.portal]].concat());
        let (client_addr, portal_addr) = (format!("198.18.{subnet}.1/24"), format!("198.18.{subnet}.2/24"));
        for (ns, dev, addr) in
            [(&net.client, &veth_client, &client_addr), (&net.portal, &veth_portal, &portal_addr)]
        {
            run_in(ns, "ip", &["link", "set", "lo", "up"]);
            run_in(ns, "ip", &["addr", "add", addr, "dev", dev]);
            run_in(ns, "ip", &["link", "set", dev, "up"]);
        }
        run_in(&net.portal, "ip", &["addr", "add", &format!("{public}/32"), "dev", &veth_portal]);
        let via = format!("198.18.{subnet}.2");
        run_in(&net.client, "ip", &["route", "add", &format!("{public}/32"), "via", &via]);
        net
    }

    fn delete(&self) {
        for ns in [&self.client, &self.portal] {
            // Deleting a namespace also deletes the veth end inside it, and with it the pair.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for PortalNet {
    fn drop(&mut self) {
        self.delete();
    }
}

/// Moves the calling thread into the network namespace `name`; sockets it opens and
/// processes it starts from then on live there.
pub fn enter(name: &str) {
    let ns = File::open(format!("/var/run/netns/{name}")).unwrap();
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
        .unwrap();
}

/// Runs `f` on a new thread inside the namespace `name`.
pub fn spawn_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        enter(&name);
        f()
    })
}

/// Runs `f` inside the namespace `name` and returns what it returns.
pub fn run_inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in(name, f).join().unwrap()
}

/// Runs `program`, failing the test with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Runs `program` in the namespace `ns`, failing the test when it fails.
pub fn run_in(ns: &str, program: &str, args: &[&str]) {
    run("ip", &[&["netns", "exec", ns, program], args].concat());
}

/// What `program` prints in the namespace `ns` (whether or not it succeeds).
pub fn output_in(ns: &str, program: &str, args: &[&str]) -> String {
    let output = Command::new("ip").args([&["netns", "exec", ns, program], args].concat()).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}
