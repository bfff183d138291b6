//! The XDC's container, run by `crun` through `trellis-crun`: what sets an XDC apart is
//! fewer capabilities than a node (users are never root inside), the host's `/usr`, and its
//! volumes bound read-write.

use std::path::Path;

use serde_json::Value;
use trellis_crun::{Bind, Bundle};

use super::network::Names;
use crate::{RuntimeError, XdcSpec};

pub(crate) use trellis_crun::{Running, known, log_tail};

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

/// The OCI runtime spec: the bundle's skeleton as root, the host's `/usr` read-only, the
/// volumes bound read-write, the XDC's network namespace, and cgroup limits.
pub(crate) fn oci_config(spec: &XdcSpec, names: &Names, rootfs: &Path) -> Value {
    let mut volumes: Vec<_> = spec.mounts.iter().collect();
    volumes.sort_by_key(|m| m.volume.target());
    let targets: Vec<String> = volumes.iter().map(|m| m.volume.target()).collect();
    let binds: Vec<Bind> = volumes
        .iter()
        .zip(&targets)
        .map(|(mount, target)| Bind { source: &mount.host_path, destination: target })
        .collect();
    Bundle {
        root: rootfs,
        hostname: &spec.id,
        netns: &names.container,
        // Directly under each hierarchy's root, so deleting the container leaves nothing.
        cgroups_path: &format!("/{}", names.container),
        capabilities: CAPABILITIES,
        usr: Path::new("/usr"),
        host_alternatives: true,
        binds: &binds,
        memory_bytes: spec.memory_bytes,
        cpu_millis: u64::from(spec.cpu_millis),
        // Host mounts under a volume's path reach the XDC; nothing mounted inside leaks out.
        rootfs_propagation: Some("rslave"),
    }
    .oci_config()
}

/// Starts the container detached. Its output (sshd's and Jupyter's logs, and crun's own
/// errors) goes to `<bundle>/console.log`.
pub(crate) async fn start(id: &str, bundle: &Path) -> Result<Running, RuntimeError> {
    Ok(trellis_crun::start(id, bundle).await?)
}

/// Sends `signal` (e.g. `HUP`) to the container's init.
pub(crate) async fn signal(id: &str, signal: &str) -> Result<(), RuntimeError> {
    Ok(trellis_crun::signal(id, signal).await?)
}

/// Kills and deletes container `id`; nothing to do when crun does not know it.
pub(crate) async fn remove(id: &str) -> Result<(), RuntimeError> {
    Ok(trellis_crun::remove(id).await?)
}

/// Refuses, with the fix, a host whose cgroup layout crun cannot run containers on.
pub(crate) fn check_host() -> Result<(), RuntimeError> {
    Ok(trellis_crun::check_host()?)
}
