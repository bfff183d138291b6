//! Node containers, run by `crun` through `trellis-crun`: what sets a node apart is its
//! capabilities (it may manage its own network) and its `/usr`, the host's or an image's.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_crun::Bundle;
use trellis_types::Error;

use crate::cmd::internal;
use crate::plan::NodePlan;

pub(crate) use trellis_crun::{CRUN_STATE, Running};

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

/// The `/usr` a node sees: its image's, or the host's.
pub(crate) fn usr(node: &NodePlan) -> PathBuf {
    node.image.as_ref().map_or_else(|| PathBuf::from("/usr"), |image| image.join("usr"))
}

/// The OCI runtime spec for a node: its disk as the root, `/usr` read-only, its network
/// namespace, and cgroup limits for cores and memory.
pub(crate) fn oci_config(node: &NodePlan, disk: &Path) -> Value {
    Bundle {
        root: disk,
        hostname: &node.name,
        netns: &node.netns,
        cgroups_path: &node.cgroup,
        capabilities: CAPABILITIES,
        usr: &usr(node),
        host_alternatives: node.image.is_none(),
        binds: &[],
        memory_bytes: node.memory_bytes,
        cpu_millis: u64::from(node.cores) * 1000,
        rootfs_propagation: None,
    }
    .oci_config()
}

/// Starts the node's container detached; its output goes to `<bundle>/console.log`.
pub(crate) async fn start(id: &str, bundle: &Path) -> Result<Running, Error> {
    trellis_crun::start(id, bundle).await.map_err(internal)
}

/// Kills and deletes container `id`; nothing to do when crun does not know it.
pub(crate) async fn remove(id: &str) -> Result<(), Error> {
    trellis_crun::remove(id).await.map_err(internal)
}
