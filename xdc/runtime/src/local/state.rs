//! What the local runtime keeps on disk, per XDC under `<state_dir>/trx-<hash>/`:
//!
//! - `id`: the XDC id, written first, so `list` and `remove` find half-made XDCs too;
//! - `address`: its address, written when allocated (allocation reads every XDC's file);
//! - `xdc.json`: the spec last applied, the restart fingerprint and the init process,
//!   written when an apply finishes (mode 0600: the spec holds the host's private key);
//! - `bundle/`: the OCI bundle (`config.json`, `rootfs/`, `console.log`).
//!
//! Nothing else is remembered in memory, so a reopened runtime adopts whatever is there.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::container::Running;
use super::network::Subnet;
use crate::{RuntimeError, XdcSpec};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub spec: XdcSpec,
    pub address: Ipv4Addr,
    pub fingerprint: String,
    pub running: Option<Running>,
}

/// The runtime's own settings, kept so a reopened runtime cannot silently move XDCs to
/// another subnet or bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RuntimeRecord {
    pub subnet: Subnet,
    pub bridge: String,
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed(format!("{what} {}: {e}", path.display()))
}

pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("trellis-new");
    fs::write(&tmp, contents)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| failed("cannot write", path, e))
}

fn read_optional(path: &Path) -> Result<Option<String>, RuntimeError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed("cannot read", path, e)),
    }
}

pub(crate) fn read_id(dir: &Path) -> Result<Option<String>, RuntimeError> {
    Ok(read_optional(&dir.join("id"))?.map(|t| t.trim().to_owned()))
}

pub(crate) fn read_record(dir: &Path) -> Result<Option<Record>, RuntimeError> {
    let path = dir.join("xdc.json");
    read_optional(&path)?
        .map(|text| serde_json::from_str(&text).map_err(|e| failed("cannot parse", &path, e)))
        .transpose()
}

pub(crate) fn write_record(dir: &Path, record: &Record) -> Result<(), RuntimeError> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| failed("cannot encode", dir, e))?;
    write_file(&dir.join("xdc.json"), &json, 0o600)
}

pub(crate) fn read_address(dir: &Path) -> Result<Option<Ipv4Addr>, RuntimeError> {
    let path = dir.join("address");
    read_optional(&path)?
        .map(|text| text.trim().parse().map_err(|e| failed("cannot parse", &path, e)))
        .transpose()
}

/// Every XDC directory under the state directory.
pub(crate) fn xdc_dirs(state_dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let entries = match fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed("cannot list", state_dir, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("trx-"))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Chooses the lowest free address, writes it into `dir` and returns it. The caller holds
/// the runtime's allocation lock.
pub(crate) fn allocate(state_dir: &Path, dir: &Path, subnet: &Subnet) -> Result<Ipv4Addr, RuntimeError> {
    let mut used = std::collections::HashSet::new();
    for other in xdc_dirs(state_dir)? {
        if let Some(addr) = read_address(&other)? {
            used.insert(addr);
        }
    }
    let address = subnet
        .hosts()
        .find(|a| !used.contains(a))
        .ok_or_else(|| RuntimeError::Unavailable(format!("no free address left in {subnet}")))?;
    write_file(&dir.join("address"), format!("{address}\n").as_bytes(), 0o644)?;
    Ok(address)
}

/// What forces a restart when it changes: the volumes, the limits, Jupyter's settings and
/// the network. Accounts, keys, hosts and search domains are updated in place.
pub(crate) fn fingerprint(spec: &XdcSpec, address: Ipv4Addr, bridge: &str) -> String {
    let mut mounts: Vec<(String, String)> =
        spec.mounts.iter().map(|m| (m.volume.target(), m.host_path.to_string_lossy().into_owned())).collect();
    mounts.sort();
    let text = serde_json::json!({
        "mounts": mounts,
        "cpu_millis": spec.cpu_millis,
        "memory_bytes": spec.memory_bytes,
        "jupyter": spec.jupyter,
        "address": address,
        "bridge": bridge,
    })
    .to_string();
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::spec;

    #[test]
    fn only_restart_relevant_changes_move_the_fingerprint() {
        let s = spec();
        let addr = Ipv4Addr::new(10, 250, 0, 2);
        let base = fingerprint(&s, addr, "trxbr0");
        let mut keys = s.clone();
        keys.users[0].authorized_keys.clear();
        keys.hosts.clear();
        keys.groups.clear();
        assert_eq!(fingerprint(&keys, addr, "trxbr0"), base);
        let mut limits = s.clone();
        limits.memory_bytes *= 2;
        assert_ne!(fingerprint(&limits, addr, "trxbr0"), base);
        let mut mounts = s.clone();
        mounts.mounts.pop();
        assert_ne!(fingerprint(&mounts, addr, "trxbr0"), base);
        assert_ne!(fingerprint(&s, Ipv4Addr::new(10, 250, 0, 3), "trxbr0"), base);
    }

    #[test]
    fn allocation_takes_the_lowest_free_address() {
        let state = tempfile::tempdir().unwrap();
        let subnet: Subnet = "10.9.0.0/29".parse().unwrap();
        let mut got = Vec::new();
        for n in 0..5 {
            let dir = state.path().join(format!("trx-{n}"));
            fs::create_dir(&dir).unwrap();
            got.push(allocate(state.path(), &dir, &subnet).unwrap().to_string());
        }
        assert_eq!(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
        let full = state.path().join("trx-full");
        fs::create_dir(&full).unwrap();
        assert!(matches!(allocate(state.path(), &full, &subnet), Err(RuntimeError::Unavailable(_))));
        fs::remove_dir_all(state.path().join("trx-1")).unwrap();
        assert_eq!(allocate(state.path(), &full, &subnet).unwrap().to_string(), "10.9.0.3");
    }
}
