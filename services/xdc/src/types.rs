//! XDC records as kept in the store.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Who an XDC is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdcKind {
    /// Every member of the project has an account; attaches to the project's materializations.
    #[default]
    Shared,
    /// Only its creator has an account, with all of the creator's projects mounted; attaches
    /// to any materialization the creator may use.
    Personal,
}

/// The materialization an XDC is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub project: String,
    pub experiment: String,
    pub realization: String,
    /// `<realization>.<experiment>.<project>`.
    pub mzid: String,
}

impl Attachment {
    pub fn new(project: &str, experiment: &str, realization: &str) -> Attachment {
        Attachment {
            project: project.to_owned(),
            experiment: experiment.to_owned(),
            realization: realization.to_owned(),
            mzid: format!("{realization}.{experiment}.{project}"),
        }
    }
}

/// The wanted state of one XDC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdcRecord {
    pub name: String,
    pub project: String,
    pub creator: String,
    pub kind: XdcKind,
    /// Image name; `default` is the portal host's `/usr`.
    pub image: String,
    /// CPU limit in cores.
    pub cpu_cores: u32,
    /// Memory limit in GiB.
    pub memory_gib: u32,
    /// Seconds since the epoch.
    pub created: i64,
    /// Seconds since the epoch after which the XDC is deleted; `None` = never.
    pub expires: Option<i64>,
    pub attachment: Option<Attachment>,
    /// The XDC's SSH host key (OpenSSH private key) and its certificate from the host CA.
    pub host_private_key: String,
    pub host_certificate: String,
    /// Jupyter's own token: only the web proxy uses it.
    pub jupyter_token: String,
}

impl XdcRecord {
    /// `<xdc>-<project>`: the runtime id, hostname and SSH target name.
    pub fn id(&self) -> String {
        runtime_id(&self.project, &self.name)
    }

    /// `<xdc>.<project>`: how Merge names an XDC.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.name, self.project)
    }

    /// The path prefix Jupyter serves under (the web proxy's canonical form).
    pub fn jupyter_base_url(&self) -> String {
        format!("/{}/{}/", self.project, self.name)
    }
}

/// `<xdc>-<project>`. Names never contain `-`, so the last `-` splits it unambiguously.
pub fn runtime_id(project: &str, name: &str) -> String {
    format!("{name}-{project}")
}

/// How an XDC is doing, as the controller last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum XdcPhase {
    /// Not yet running (volumes, container and sshd being set up).
    #[default]
    Pending,
    Running,
    Failed,
}

/// An XDC's place on a materialization's infranet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedNetwork {
    pub mzid: String,
    /// The XDC's address on the infranet.
    pub address: IpAddr,
    /// Experiment node names and the addresses they have from the XDC.
    pub hosts: Vec<(String, IpAddr)>,
    /// DNS search domains (`infra.<mzid>`).
    pub search: Vec<String>,
}

/// What the controller last observed about an XDC.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XdcStatusRecord {
    pub phase: XdcPhase,
    /// Where sshd (22) and Jupyter listen, reachable from the portal host.
    pub address: Option<IpAddr>,
    pub message: String,
    /// Seconds since the epoch.
    pub updated: i64,
    pub attached: Option<AttachedNetwork>,
    /// Attaching failed: why (the XDC itself may be fine).
    pub attach_error: Option<String>,
}
