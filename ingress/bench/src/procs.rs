//! Child processes and what `/proc` says about them.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

/// A child process killed (by its PID) when dropped.
pub struct Server {
    pub name: &'static str,
    child: Child,
}

impl Server {
    /// Starts `program` at `nice -15`, on `cpus` when given (a `taskset` list), with output to
    /// `<log_dir>/<name>.log`.
    pub fn start(
        name: &'static str,
        log_dir: &Path,
        cpus: Option<&str>,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<Server> {
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let child = niced(cpus, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(Server { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process and its descendants (nginx's worker is a child of its master).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        let mut i = 0;
        while i < pids.len() {
            pids.extend(children(pids[i]));
            i += 1;
        }
        pids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// `program` at `nice -15`, and on `cpus` when given.
pub fn niced(cpus: Option<&str>, program: &str) -> Command {
    let mut command = match cpus {
        Some(cpus) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", cpus, "nice"]);
            taskset
        }
        None => Command::new("nice"),
    };
    command.args(["-n", "-15", program]);
    command
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|candidate| {
            stat_fields(*candidate).is_some_and(|f| f.get(1).and_then(|p| p.parse().ok()) == Some(pid))
        })
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// CPU time used by some processes, in clock ticks (1/100 s).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
}

impl CpuTicks {
    /// What `pids` have used so far (processes that are gone count nothing).
    pub fn of(pids: &[u32]) -> CpuTicks {
        pids.iter()
            .filter_map(|pid| {
                let fields = stat_fields(*pid)?;
                // utime and stime are fields 14 and 15, i.e. indexes 11 and 12 after the name.
                Some(CpuTicks { user: fields.get(11)?.parse().ok()?, system: fields.get(12)?.parse().ok()? })
            })
            .fold(CpuTicks::default(), |sum, t| CpuTicks {
                user: sum.user + t.user,
                system: sum.system + t.system,
            })
    }

    /// The time used since `earlier`.
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> u64 {
        self.user + self.system
    }
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
