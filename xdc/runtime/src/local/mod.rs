//! The local runtime: each XDC is a `crun` container in its own network namespace on this
//! host.
//!
//! The container's root is a small skeleton in the XDC's state directory with the host's
//! `/usr` mounted read-only (no image to build or pull), its volumes bind-mounted from their
//! host paths, and `eth0` a veth into a host bridge whose address is the XDC's gateway. Its
//! init runs sshd (and Jupyter when wanted); the XDC lives as long as sshd does.
//!
//! Guarantees:
//! - `apply` is idempotent. Accounts, authorized keys, the user CA, hosts and search domains
//!   are rewritten in place (sshd reads them per login); a new host key or certificate makes
//!   sshd reload (SIGHUP, same process). Changed volumes, limits or Jupyter settings restart
//!   the container, keeping its network namespace and address.
//! - Everything an XDC owns on the host is named after a hash of its id (`trx-<hash10>`:
//!   namespace, container, cgroup, state directory; `trx<hash10>`: host veth), so removal and
//!   tests touch nothing else.
//! - State lives only on disk ([`state`]), so [`LocalRuntime::open`] on the same state
//!   directory adopts XDCs that are running, and `apply` restarts those that are not
//!   (after a reboot the namespace is rebuilt too).
//! - `remove` never deletes a volume's contents: the bind mounts exist only in the
//!   container's mount namespace, and the state directory is not deleted while anything is
//!   mounted below it.
//!
//! Assumptions: one runtime per state directory, and one state directory per bridge and
//! subnet (addresses are allocated from the state directory). Runs as root.
//!
//! Caveats: the bridge is created but never deleted (other XDCs may use it); the container
//! log (`bundle/console.log`) is not rotated.

mod cmd;
mod container;
mod network;
mod rootfs;
mod state;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use network::Subnet;

use self::container::Running;
use self::network::Names;
use self::state::{Record, RuntimeRecord};
use crate::{RuntimeError, XdcPhase, XdcRuntime, XdcSpec, XdcStatus};

/// How a [`LocalRuntime`] runs XDCs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// Where XDC bundles and records live (root-only: records hold host private keys).
    pub state_dir: PathBuf,
    /// Addresses for XDCs; the first host address is the host's, on the bridge.
    pub subnet: Subnet,
    /// The host bridge every XDC's veth joins.
    pub bridge: String,
}

impl LocalConfig {
    /// The defaults: subnet 172.29.0.0/16 on bridge `trxbr0` (outside 10.0.0.0/8, where
    /// realizations get their infranets: an attached XDC must not have both on one subnet).
    pub fn new(state_dir: impl Into<PathBuf>) -> LocalConfig {
        LocalConfig {
            state_dir: state_dir.into(),
            subnet: Subnet { network: std::net::Ipv4Addr::new(172, 29, 0, 0), prefix: 16 },
            bridge: "trxbr0".into(),
        }
    }
}

/// Runs XDCs as crun containers on this host. See the module documentation.
pub struct LocalRuntime {
    config: LocalConfig,
    /// Serializes operations on one XDC; different XDCs proceed in parallel.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held while choosing an address, so two new XDCs never take the same one.
    allocation: Mutex<()>,
}

impl LocalRuntime {
    /// Opens (creating if needed) the state directory and adopts the XDCs recorded there.
    /// Refuses a subnet or bridge different from the ones its XDCs were made with.
    pub fn open(mut config: LocalConfig) -> Result<LocalRuntime, RuntimeError> {
        config.subnet = Subnet::new(config.subnet.network, config.subnet.prefix)?;
        if config.bridge.is_empty()
            || config.bridge.len() > 15
            || !config.bridge.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(RuntimeError::InvalidSpec(format!(
                "{:?} is not a usable bridge name",
                config.bridge
            )));
        }
        let dir = &config.state_dir;
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)))
            .map_err(|e| RuntimeError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let wanted = RuntimeRecord { subnet: config.subnet, bridge: config.bridge.clone() };
        let path = dir.join("runtime.json");
        let recorded: Option<RuntimeRecord> =
            std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str(&text).ok());
        let xdcs = state::xdc_dirs(dir)?;
        if let Some(recorded) = recorded.filter(|r| *r != wanted && !xdcs.is_empty()) {
            return Err(RuntimeError::Unavailable(format!(
                "{} holds {} XDCs on subnet {} and bridge {}; remove them before changing to {} on {}",
                dir.display(),
                xdcs.len(),
                recorded.subnet,
                recorded.bridge,
                wanted.subnet,
                wanted.bridge
            )));
        }
        let json = serde_json::to_vec_pretty(&wanted).map_err(|e| RuntimeError::Failed(e.to_string()))?;
        state::write_file(&path, &json, 0o644)?;
        let running = xdcs
            .iter()
            .filter_map(|d| state::read_record(d).ok().flatten())
            .filter(|r| r.running.is_some_and(Running::alive))
            .count();
        tracing::info!(state_dir = %dir.display(), xdcs = xdcs.len(), running, "local XDC runtime opened");
        Ok(LocalRuntime { config, locks: Mutex::default(), allocation: Mutex::default() })
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The name of XDC `id`'s container, network namespace and cgroup (`trx-<hash10>`).
    pub fn container_name(id: &str) -> String {
        Names::new(id).container
    }

    /// Checks that crun can run containers on this host (see `scripts/setup.sh`).
    pub fn check_host() -> Result<(), RuntimeError> {
        container::check_host()
    }

    fn dir(&self, names: &Names) -> PathBuf {
        self.config.state_dir.join(&names.container)
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn address(&self, dir: &Path) -> Result<std::net::Ipv4Addr, RuntimeError> {
        let _held = self.allocation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match state::read_address(dir)? {
            Some(address) if self.config.subnet.contains(address) => Ok(address),
            _ => state::allocate(&self.config.state_dir, dir, &self.config.subnet),
        }
    }

    /// The status of the XDC recorded in `dir`, `None` when there is none. `busy`: an apply
    /// or remove holds the XDC's lock right now.
    fn observe(&self, dir: &Path, names: &Names, busy: bool) -> Result<Option<XdcStatus>, RuntimeError> {
        if state::read_id(dir)?.is_none() {
            return Ok(None);
        }
        let netns = Some(names.container.clone());
        let Some(record) = state::read_record(dir)? else {
            let (phase, message) = if busy {
                (XdcPhase::Starting, "being created")
            } else {
                (XdcPhase::Failed, "the last apply did not finish; apply again or remove")
            };
            return Ok(Some(XdcStatus {
                phase,
                address: state::read_address(dir)?.map(IpAddr::V4),
                netns,
                message: message.into(),
            }));
        };
        let address = Some(IpAddr::V4(record.address));
        let running = record.running.filter(|r| r.alive());
        let (phase, message) = match running {
            None => {
                let tail = container::log_tail(&dir.join("bundle"), 5);
                (XdcPhase::Failed, format!("the container is not running; its log ends with:\n{tail}"))
            }
            Some(r) if !r.listens(22) => (XdcPhase::Starting, "sshd is starting".into()),
            Some(r) if record.spec.jupyter.as_ref().is_some_and(|j| !r.listens(j.port)) => {
                (XdcPhase::Starting, "Jupyter is starting".into())
            }
            Some(_) => (XdcPhase::Running, String::new()),
        };
        Ok(Some(XdcStatus { phase, address, netns, message }))
    }

    async fn apply_locked(&self, spec: &XdcSpec, names: &Names) -> Result<XdcStatus, RuntimeError> {
        let dir = self.dir(names);
        let state_dir = &self.config.state_dir;
        if let Some(mount) = spec.mounts.iter().find(|m| m.host_path.starts_with(state_dir)) {
            return Err(RuntimeError::InvalidSpec(format!(
                "volume path {} lies inside the runtime's state directory",
                mount.host_path.display()
            )));
        }
        if let Some(mount) = spec.mounts.iter().find(|m| !m.host_path.is_dir()) {
            return Err(RuntimeError::Failed(format!(
                "the volume for {} is not a directory on this host: {}",
                mount.volume.target(),
                mount.host_path.display()
            )));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        match state::read_id(&dir)? {
            Some(other) if other != spec.id => {
                return Err(RuntimeError::Failed(format!(
                    "XDC ids {other:?} and {:?} hash to the same name {}",
                    spec.id, names.container
                )));
            }
            Some(_) => {}
            None => state::write_file(&dir.join("id"), format!("{}\n", spec.id).as_bytes(), 0o644)?,
        }
        let previous = state::read_record(&dir)?;
        let address = self.address(&dir)?;
        network::ensure_bridge(&self.config.bridge, &self.config.subnet).await?;
        let fingerprint = state::fingerprint(spec, address, &self.config.bridge);
        let alive = previous
            .as_ref()
            .and_then(|r| r.running)
            .filter(|r| r.alive() && container::known(&names.container));
        let network_ok = network::present(names);
        let unchanged = previous.as_ref().is_some_and(|r| r.fingerprint == fingerprint);

        let bundle = dir.join("bundle");
        let root = bundle.join("rootfs");
        rootfs::ensure_skeleton(&root)?;
        let reload = rootfs::write_managed(&root, spec, IpAddr::V4(address))?;

        let running = match alive {
            Some(running) if network_ok && unchanged => {
                network::attach(names, &self.config.bridge).await?;
                if reload {
                    container::signal(&names.container, "HUP").await?;
                }
                running
            }
            _ => {
                tracing::info!(xdc = %spec.id, container = %names.container, "starting the XDC's container");
                container::remove(&names.container).await?;
                if network_ok {
                    network::attach(names, &self.config.bridge).await?;
                } else {
                    network::unplug(names).await?;
                    network::plug(names, address, &self.config.subnet, &self.config.bridge).await?;
                }
                let config = container::oci_config(spec, names, &root);
                let json =
                    serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::Failed(e.to_string()))?;
                state::write_file(&bundle.join("config.json"), &json, 0o600)?;
                container::start(&names.container, &bundle).await?
            }
        };
        let record = Record { spec: spec.clone(), address, fingerprint, running: Some(running) };
        state::write_record(&dir, &record)?;
        self.observe(&dir, names, false)?
            .ok_or_else(|| RuntimeError::Failed(format!("{} vanished while being applied", spec.id)))
    }
}

#[async_trait::async_trait]
impl XdcRuntime for LocalRuntime {
    async fn apply(&self, spec: &XdcSpec) -> Result<XdcStatus, RuntimeError> {
        spec.validate()?;
        container::check_host()?;
        let names = Names::new(&spec.id);
        let lock = self.lock(&spec.id);
        let _held = lock.lock().await;
        self.apply_locked(spec, &names).await
    }

    async fn status(&self, id: &str) -> Result<Option<XdcStatus>, RuntimeError> {
        let names = Names::new(id);
        let dir = self.dir(&names);
        match state::read_id(&dir)? {
            Some(recorded) if recorded == id => {
                let busy = self.lock(id).try_lock().is_err();
                self.observe(&dir, &names, busy)
            }
            _ => Ok(None),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let names = Names::new(id);
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let dir = self.dir(&names);
        if let Some(recorded) = state::read_id(&dir)?
            && recorded != id
        {
            // Another XDC's name: leave it alone.
            return Ok(());
        }
        container::remove(&names.container).await?;
        network::unplug(&names).await?;
        rootfs::remove_dir(&dir)?;
        tracing::info!(xdc = %id, container = %names.container, "XDC removed");
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids = Vec::new();
        for dir in state::xdc_dirs(&self.config.state_dir)? {
            if let Some(id) = state::read_id(&dir)? {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}
