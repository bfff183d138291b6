//! The XDC's container run by `crun`: the OCI bundle, starting, signalling, deleting, and
//! telling whether its init still runs and what it listens on.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::Command;

use super::cmd;
use super::network::{NETNS_DIR, Names};
use crate::{RuntimeError, XdcSpec};

/// Where crun keeps container state (its default for root).
const CRUN_STATE: &str = "/run/crun";

/// What sshd, an optional Jupyter and their users need; no `CAP_NET_ADMIN`, `CAP_SYS_ADMIN`
/// or `CAP_MKNOD`: users are never root inside, and root is only the init.
const CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The container's init as the host sees it; the start time tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Running {
    pub pid: i32,
    pub start: u64,
}

impl Running {
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

/// The OCI runtime spec: the bundle's skeleton as root, the host's `/usr` read-only, the
/// volumes bind-mounted read-write, the XDC's network namespace, and cgroup limits.
pub(crate) fn oci_config(spec: &XdcSpec, names: &Names, rootfs: &Path) -> Value {
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
        json!({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nodev"]}),
        // The host's /usr/bin symlinks point into /etc/alternatives.
        json!({"destination": "/etc/alternatives", "type": "bind", "source": "/etc/alternatives",
               "options": ["rbind", "ro"]}),
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    let mut volumes: Vec<_> = spec.mounts.iter().collect();
    volumes.sort_by_key(|m| m.volume.target());
    for mount in volumes {
        mounts.push(json!({"destination": mount.volume.target(), "type": "bind", "source": mount.host_path,
                           "options": ["rbind", "rw", "nosuid", "nodev"]}));
    }
    let mut resources = json!({});
    if spec.memory_bytes > 0 {
        resources["memory"] = json!({"limit": spec.memory_bytes});
    }
    if spec.cpu_millis > 0 {
        resources["cpu"] = json!({"quota": u64::from(spec.cpu_millis) * 100, "period": 100_000});
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
        "root": {"path": rootfs, "readonly": false},
        "hostname": spec.id,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "network", "path": format!("{NETNS_DIR}/{}", names.container)}
            ],
            // Directly under each hierarchy's root, so deleting the container leaves nothing.
            "cgroupsPath": format!("/{}", names.container),
            "resources": resources,
            // Host mounts under a volume's path reach the XDC; nothing mounted inside leaks out.
            "rootfsPropagation": "rslave",
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

/// Starts the container detached. Its output (sshd's and Jupyter's logs, and crun's own
/// errors) goes to `<bundle>/console.log`.
pub(crate) async fn start(id: &str, bundle: &Path) -> Result<Running, RuntimeError> {
    let log_path = bundle.join("console.log");
    let pid_path = bundle.join("pid");
    let _ = std::fs::remove_file(&pid_path);
    let io_error =
        |what: &str, e: std::io::Error| RuntimeError::Failed(format!("{what} for container {id}: {e}"));
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
        return Err(RuntimeError::Failed(format!("crun could not start {id}: {}", tail.trim())));
    }
    let pid: i32 =
        std::fs::read_to_string(&pid_path).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
            RuntimeError::Failed(format!("crun started {id} but wrote no pid to {}", pid_path.display()))
        })?;
    let start = process_start(pid).ok_or_else(|| {
        RuntimeError::Failed(format!("container {id} exited at once; see {}", log_path.display()))
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

/// The last lines of the container's log, for a failed XDC's message.
pub(crate) fn log_tail(bundle: &Path, lines: usize) -> String {
    let path = bundle.join("console.log");
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let text = read_from(&path, len.saturating_sub(4000));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `signal` (e.g. `HUP`) to the container's init.
pub(crate) async fn signal(id: &str, signal: &str) -> Result<(), RuntimeError> {
    cmd::run("crun", &["kill", id, signal], None).await.map(drop)
}

/// Kills and deletes container `id` (and, through crun, its cgroups); nothing to do when
/// crun does not know it.
pub(crate) async fn remove(id: &str) -> Result<(), RuntimeError> {
    if !known(id) {
        return Ok(());
    }
    match cmd::run("crun", &["delete", "--force", id], None).await {
        Ok(_) => Ok(()),
        Err(_) if !known(id) => Ok(()),
        Err(e) => Err(e),
    }
}

/// crun 1.8 cannot run containers on a hybrid cgroup layout with controllers on v2; say so
/// (and how to fix it) before anything is built.
pub(crate) fn check_host() -> Result<(), RuntimeError> {
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let on_v2 = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let controllers = on_v2.trim();
    if pure_v2 || controllers.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::Unavailable(format!(
        "crun refuses this host's hybrid cgroup layout while controllers ({controllers}) are enabled on cgroup v2 \
         (/sys/fs/cgroup/unified); move them to v1 first, e.g. `mkdir -p /sys/fs/cgroup/hugetlb && \
         mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb` (scripts/setup.sh does this)"
    )))
}
