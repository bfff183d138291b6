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

/// Registers the built-in facility, or refreshes its model (the machine may have changed) and
/// the address its agent listens on (`None` while no agent runs).
pub async fn ensure(
    realize: &RealizeService,
    data_dir: &std::path::Path,
    agent: Option<std::net::SocketAddr>,
) -> Result<(), Error> {
    let model = model(data_dir);
    let address = agent.map(|a| a.to_string()).unwrap_or_default();
    match realize.facility(NAME).await {
        Ok(_) => realize.update_facility(NAME, Some(address), None, Some(model)).await,
        Err(Error::NotFound { .. }) => {
            let record = FacilityRecord {
                name: NAME.to_owned(),
                address,
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

/// Starts this machine's facility agent (containers in network namespaces, run by crun) on a
/// loopback port behind mutual TLS: it presents a certificate the portal CA issued for the
/// facility and accepts only clients the portal CA signed. `None`, with the reason logged, when
/// the machine cannot run it (not root, or crun missing): the portal still realizes, and
/// materializations report the facility unreachable.
pub async fn start_agent(
    pki: &trellis_pki::Pki,
    data_dir: &std::path::Path,
    listen: std::net::SocketAddr,
    cancel: tokio_util::sync::CancellationToken,
) -> Option<std::net::SocketAddr> {
    let agent = match trellis_facility::Agent::open(data_dir.join("facility")).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::warn!(error = %e, "the built-in facility agent cannot run here; materialization is unavailable");
            return None;
        }
    };
    let started = async {
        let cert = pki.issue_server_cert(NAME, &["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        let tls = trellis_pki::server_tls_config(&cert.cert_pem, &cert.key_pem, pki.ca_pem())?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Unavailable(format!("binding the facility agent: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Unavailable(format!("binding the facility agent: {e}")))?;
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| Error::Internal(format!("facility agent TLS: {e}")))?
            .add_service(trellis_facility::service(agent));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            if let Err(e) = server.serve_with_incoming_shutdown(incoming, cancel.cancelled_owned()).await {
                tracing::error!(error = %e, "the facility agent stopped");
            }
        });
        Ok::<_, Error>(addr)
    };
    match started.await {
        Ok(addr) => Some(addr),
        Err(e) => {
            tracing::warn!(error = %e, "the built-in facility agent did not start");
            None
        }
    }
}
