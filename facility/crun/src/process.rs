//! Telling whether a container's init still runs.

use serde::{Deserialize, Serialize};

/// The container's init as the host sees it; the start time tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub pid: i32,
    pub start: u64,
}

impl Running {
    /// The running process `pid`, if it is one.
    pub fn of(pid: i32) -> Option<Running> {
        process_start(pid).map(|start| Running { pid, start })
    }

    /// `pid start`, as [`Running::parse`] reads it back.
    pub fn to_line(self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    pub fn parse(text: &str) -> Option<Running> {
        let mut parts = text.split_whitespace();
        Some(Running { pid: parts.next()?.parse().ok()?, start: parts.next()?.parse().ok()? })
    }

    /// Whether this exact process still runs (exists, not a zombie, same start time).
    pub fn alive(self) -> bool {
        process_start(self.pid).is_some_and(|start| start == self.start)
    }

    /// Whether something in the container's network namespace listens on TCP `port`
    /// (read through the init's `/proc/<pid>/net`, which shows its namespace).
    pub fn listens(self, port: u16) -> bool {
        let wanted = format!(":{port:04X}");
        ["tcp", "tcp6"].iter().any(|table| {
            std::fs::read_to_string(format!("/proc/{}/net/{table}", self.pid)).is_ok_and(|text| {
                text.lines().skip(1).any(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local_address is field 1, state field 3; 0A is LISTEN.
                    fields.get(1).is_some_and(|local| local.ends_with(&wanted))
                        && fields.get(3) == Some(&"0A")
                })
            })
        })
    }
}

/// The start time (clock ticks since boot) of a live, non-zombie process.
fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_reused_pid_is_told_apart() {
        let me = Running::of(std::process::id() as i32).expect("this process runs");
        assert!(me.alive());
        assert_eq!(Running::parse(&me.to_line()), Some(me));
        assert!(!Running { start: me.start + 1, ..me }.alive(), "another start time is another process");
        assert_eq!(Running::parse("12"), None);
        assert_eq!(Running::parse("x 12"), None);
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        // Not waited for: once it exits it stays a zombie until `child` is reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Running::of(pid).is_some() {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().expect("reaping `true`");
    }

    #[test]
    fn a_listening_socket_is_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let me = Running::of(std::process::id() as i32).expect("this process runs");
        assert!(me.listens(port));
        drop(listener);
        assert!(!me.listens(port));
    }
}
