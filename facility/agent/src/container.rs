//! Node containers run by `crun`: the OCI bundle, starting, stopping and telling whether the
//! container's init still runs.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::process::Command;
use trellis_types::Error;

use crate::plan::NodePlan;

/// Where crun keeps container state (its default for root).
pub(crate) const CRUN_STATE: &str = "/run/crun";

const CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The container's init process as the host sees it; the start time tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Running {
    pub pid: i32,
    pub start: u64,
}

impl Running {
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

/// The OCI runtime spec for a node: its disk as the root, `/usr` from the host (or the
/// image) read-only, its network namespace, and cgroup limits for cores and memory.
pub(crate) fn oci_config(node: &NodePlan, disk: &Path) -> Value {
    let usr = node.image.as_ref().map_or_else(|| PathBuf::from("/usr"), |image| image.join("usr"));
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        json!({"destination": "/usr", "type": "bind", "source": usr, "options": ["rbind", "ro", "nodev"]}),
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=755"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    if node.image.is_none() {
        // The host's /usr/bin symlinks point into /etc/alternatives.
        mounts.push(json!({"destination": "/etc/alternatives", "type": "bind",
                           "source": "/etc/alternatives", "options": ["rbind", "ro"]}));
    }
    let mut resources = json!({});
    if node.memory_bytes > 0 {
        resources["memory"] = json!({"limit": node.memory_bytes});
    }
    if node.cores > 0 {
        resources["cpu"] = json!({"quota": u64::from(node.cores) * 100_000, "period": 100_000});
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "/init"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": []},
            "noNewPrivileges": false
        },
        "root": {"path": disk, "readonly": false},
        "hostname": node.name,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "network", "path": format!("{}/{}", crate::netns::NETNS_DIR, node.netns)}
            ],
            "cgroupsPath": node.cgroup,
            "resources": resources,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Whether crun holds state for container `id` (running or stopped).
pub(crate) fn known(id: &str) -> bool {
    Path::new(CRUN_STATE).join(id).exists()
}

/// Starts the container detached. Its stdout/stderr (and crun's own errors) go to
/// `<bundle>/console.log`.
pub(crate) async fn start(id: &str, bundle: &Path) -> Result<Running, Error> {
    let log_path = bundle.join("console.log");
    let pid_path = bundle.join("pid");
    let _ = std::fs::remove_file(&pid_path);
    let io_error = |what: &str, e: std::io::Error| Error::Internal(format!("{what} for container {id}: {e}"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_error("console log", e))?;
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log.try_clone().map_err(|e| io_error("console log", e))?;
    let status = Command::new("crun")
        .arg("run")
        .arg("--detach")
        .arg("--bundle")
        .arg(bundle)
        .arg("--pid-file")
        .arg(&pid_path)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .status()
        .await
        .map_err(|e| io_error("running crun", e))?;
    if !status.success() {
        let tail = read_from(&log_path, offset);
        return Err(Error::Internal(format!("crun could not start {id}: {}", tail.trim())));
    }
    let pid: i32 =
        std::fs::read_to_string(&pid_path).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
            Error::Internal(format!("crun started {id} but wrote no pid to {}", pid_path.display()))
        })?;
    let start = process_start(pid).ok_or_else(|| {
        Error::Internal(format!("container {id} exited at once; see {}", log_path.display()))
    })?;
    Ok(Running { pid, start })
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.take(4000).read_to_string(&mut text);
    }
    text
}

/// Kills and deletes container `id` (and, through crun, its cgroups); nothing to do when
/// crun does not know it.
pub(crate) async fn remove(id: &str) -> Result<(), Error> {
    if !known(id) {
        return Ok(());
    }
    match crate::cmd::run("crun", &["delete", "--force", id], None).await {
        Ok(_) => Ok(()),
        Err(_) if !known(id) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
