//! The OCI runtime spec (`config.json`) of a Trellis container.

use std::path::Path;

use serde_json::{Value, json};

use crate::NETNS_DIR;

/// A host directory bound read-write into the container (an XDC's volume).
#[derive(Debug, Clone, Copy)]
pub struct Bind<'a> {
    pub source: &'a Path,
    pub destination: &'a str,
}

/// What a container is made of; [`Bundle::oci_config`] renders it.
#[derive(Debug, Clone, Copy)]
pub struct Bundle<'a> {
    /// The container's root: its skeleton, read-write.
    pub root: &'a Path,
    pub hostname: &'a str,
    /// The network namespace, by its name under [`NETNS_DIR`]; made before the container.
    pub netns: &'a str,
    pub cgroups_path: &'a str,
    /// Bounding, effective and permitted; none ambient.
    pub capabilities: &'a [&'a str],
    /// Bound read-only at `/usr`: the host's, or an image's.
    pub usr: &'a Path,
    /// The host's `/usr/bin` symlinks point into `/etc/alternatives`, so a container on the
    /// host's `/usr` needs it too.
    pub host_alternatives: bool,
    pub binds: &'a [Bind<'a>],
    /// 0: no limit.
    pub memory_bytes: u64,
    /// Thousandths of a core; 0: no limit.
    pub cpu_millis: u64,
    /// `rslave` lets host mounts made later below a bind reach the container.
    pub rootfs_propagation: Option<&'a str>,
}

impl Bundle<'_> {
    pub fn oci_config(&self) -> Value {
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
            json!({"destination": "/usr", "type": "bind", "source": self.usr, "options": ["rbind", "ro", "nodev"]}),
        ];
        if self.host_alternatives {
            mounts.push(json!({"destination": "/etc/alternatives", "type": "bind",
                               "source": "/etc/alternatives", "options": ["rbind", "ro"]}));
        }
        mounts.extend([
            json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}),
            json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}),
        ]);
        for bind in self.binds {
            mounts.push(json!({"destination": bind.destination, "type": "bind", "source": bind.source,
                               "options": ["rbind", "rw", "nosuid", "nodev"]}));
        }
        let mut resources = json!({});
        if self.memory_bytes > 0 {
            resources["memory"] = json!({"limit": self.memory_bytes});
        }
        if self.cpu_millis > 0 {
            resources["cpu"] = json!({"quota": self.cpu_millis * 100, "period": 100_000});
        }
        let mut linux = json!({
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "network", "path": format!("{NETNS_DIR}/{}", self.netns)}
            ],
            "cgroupsPath": self.cgroups_path,
            "resources": resources,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        });
        if let Some(propagation) = self.rootfs_propagation {
            linux["rootfsPropagation"] = json!(propagation);
        }
        let caps = self.capabilities;
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
            "root": {"path": self.root, "readonly": false},
            "hostname": self.hostname,
            "mounts": mounts,
            "linux": linux,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle<'a>(binds: &'a [Bind<'a>]) -> Bundle<'a> {
        Bundle {
            root: Path::new("/var/lib/x/rootfs"),
            hostname: "a",
            netns: "ns-a",
            cgroups_path: "/trellis-a",
            capabilities: &["CAP_KILL", "CAP_SETUID"],
            usr: Path::new("/usr"),
            host_alternatives: true,
            binds,
            memory_bytes: 0,
            cpu_millis: 0,
            rootfs_propagation: None,
        }
    }

    fn destinations(config: &Value) -> Vec<&str> {
        config["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect()
    }

    #[test]
    fn limits_binds_and_propagation_appear_only_when_asked_for() {
        let plain = bundle(&[]).oci_config();
        assert_eq!(plain["linux"]["resources"], json!({}));
        assert!(plain["linux"].get("rootfsPropagation").is_none());
        assert_eq!(plain["linux"]["namespaces"][4]["path"], "/run/netns/ns-a");
        assert_eq!(plain["process"]["capabilities"]["ambient"], json!([]));
        assert_eq!(plain["process"]["capabilities"]["bounding"], json!(["CAP_KILL", "CAP_SETUID"]));
        assert!(destinations(&plain).contains(&"/etc/alternatives"));

        let home = [Bind { source: Path::new("/srv/vol/alice"), destination: "/home/alice" }];
        let full = Bundle {
            memory_bytes: 1 << 30,
            cpu_millis: 1500,
            rootfs_propagation: Some("rslave"),
            host_alternatives: false,
            usr: Path::new("/images/debian/usr"),
            ..bundle(&home)
        }
        .oci_config();
        assert_eq!(full["linux"]["resources"]["memory"]["limit"], 1u64 << 30);
        assert_eq!(full["linux"]["resources"]["cpu"], json!({"quota": 150_000, "period": 100_000}));
        assert_eq!(full["linux"]["rootfsPropagation"], "rslave");
        let mounts = destinations(&full);
        assert!(!mounts.contains(&"/etc/alternatives"));
        // Binds come last, so nothing the runtime mounts can cover a volume.
        assert_eq!(mounts.last(), Some(&"/home/alice"));
        let usr = full["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/usr").unwrap();
        assert_eq!(usr["source"], "/images/debian/usr");
        assert_eq!(usr["options"], json!(["rbind", "ro", "nodev"]));
    }
}
