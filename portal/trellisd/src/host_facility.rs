//! The built-in facility: this machine, offered as one hypervisor whose VM-style slots are
//! sized from its cores and memory, so a fresh `trellisd up` can realize right away.
//! (Materialization runs the nodes as containers on it.)

use trellis_api::xir;
use trellis_realize::{FacilityRecord, RealizeService};
use trellis_types::Error;

/// The facility's name in the portal.
pub const NAME: &str = "local";

/// Containers share cores, so each core carries several experiment nodes' worth of
/// reservations; memory is not overcommitted.
const CORE_OVERCOMMIT: u32 = 8;

/// Memory kept back for the portal and the host itself.
const RESERVED_MEMORY: u64 = 1 << 30;

fn total_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(4 << 30)
}

fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() { "host".to_owned() } else { name.to_ascii_lowercase() }
}

/// The XIR model of this machine.
pub fn model(data_dir: &std::path::Path) -> xir::Facility {
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    let memory = total_memory().saturating_sub(RESERVED_MEMORY).max(512 << 20);
    let disk = rustix::fs::statvfs(data_dir).map(|s| s.f_bavail * s.f_frsize).unwrap_or(0);
    xir::Facility {
        id: NAME.to_owned(),
        fqdn: "localhost".to_owned(),
        resources: vec![xir::Resource {
            id: host_name(),
            facility: NAME.to_owned(),
            procs: vec![xir::Proc { cores: cores * CORE_OVERCOMMIT, ..Default::default() }],
            memory: vec![xir::Dimm { capacity: memory, ..Default::default() }],
            disks: vec![xir::Disk { capacity: disk, ..Default::default() }],
            alloc: vec![xir::AllocMode::Virtual as i32],
            roles: vec![xir::Role::Hypervisor as i32],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Registers the built-in facility, or refreshes its model (the machine may have changed).
pub async fn ensure(realize: &RealizeService, data_dir: &std::path::Path) -> Result<(), Error> {
    let model = model(data_dir);
    match realize.facility(NAME).await {
        Ok(_) => realize.update_facility(NAME, None, None, Some(model)).await,
        Err(Error::NotFound { .. }) => {
            let record = FacilityRecord {
                name: NAME.to_owned(),
                address: "localhost".to_owned(),
                description: "this machine (built-in container facility)".to_owned(),
                creator: "trellisd".to_owned(),
                certificate: String::new(),
                ca_certificate: String::new(),
                deactivated: vec![],
                ver: 0,
                created: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
            };
            match realize.register_facility(record, model).await {
                // Another replica registered it first.
                Err(Error::AlreadyExists { .. }) => Ok(()),
                other => other,
            }
        }
        Err(other) => Err(other),
    }
}
