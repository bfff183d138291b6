//! From an XDC record and the workspace to the runtime's wanted state: accounts from project
//! membership, the user's home and the project directories, SSH trust and Jupyter.

use std::collections::BTreeMap;

use trellis_types::{Error, MemberState, Project, UserState};
use trellis_volumes::{VolumeOwner, Volumes};
use trellis_xdc_runtime::{JupyterSpec, VolumeRef, XdcGroup, XdcIdentity, XdcMount, XdcSpec, XdcUser};

use crate::service::{IssuedIdentity, XdcService};
use crate::types::{AttachedNetwork, XdcKind, XdcRecord};

/// The port Jupyter listens on inside every XDC.
pub const JUPYTER_PORT: u16 = 8888;

/// Homes are private to their user; project directories are shared by the project group and
/// setgid so new files stay in it.
const HOME_MODE: u32 = 0o750;
const PROJECT_MODE: u32 = 0o2770;

fn active_members(project: &Project) -> impl Iterator<Item = &String> {
    project.members.iter().filter(|(_, m)| m.state == MemberState::Active).map(|(name, _)| name)
}

impl XdcService {
    /// The runtime spec for `xdc`, creating its volumes as needed.
    pub async fn build_spec(
        &self,
        xdc: &XdcRecord,
        volumes: &dyn Volumes,
        attached: Option<&AttachedNetwork>,
    ) -> Result<XdcSpec, Error> {
        let ws = &self.workspace;
        // Projects whose directories the XDC mounts, and who has an account.
        let (projects, usernames): (Vec<Project>, Vec<String>) = match xdc.kind {
            XdcKind::Shared => {
                let project = ws.get_project(&xdc.project).await?;
                let members = active_members(&project).cloned().collect();
                (vec![project], members)
            }
            XdcKind::Personal => {
                let creator = ws.get_user(&xdc.creator).await?;
                let mut projects = Vec::new();
                for name in creator.projects.keys() {
                    if let Some(p) = ws.find_project(name).await?
                        && p.active_role(&xdc.creator).is_some()
                    {
                        projects.push(p);
                    }
                }
                (projects, vec![xdc.creator.clone()])
            }
        };

        let mut users = Vec::new();
        let mut groups: BTreeMap<u32, XdcGroup> = BTreeMap::new();
        let mut mounts = Vec::new();
        for username in &usernames {
            let Some(user) = ws.find_user(username).await? else { continue };
            if user.state != UserState::Active {
                continue;
            }
            let keys = ws.public_keys(username).await?.into_iter().map(|k| k.key).collect();
            let identity = Some(self.identity(&user.username).await?);
            users.push(XdcUser {
                name: user.username.clone(),
                uid: user.uid,
                gid: user.gid,
                authorized_keys: keys,
                identity,
            });
            groups.insert(
                user.gid,
                XdcGroup { name: user.username.clone(), gid: user.gid, members: vec![user.username.clone()] },
            );
            let home = VolumeRef::Home(user.username.clone());
            let owner = VolumeOwner { uid: user.uid, gid: user.gid, mode: HOME_MODE, quota_bytes: 0 };
            let host_path = volumes.ensure(&home, owner).await.map_err(volume_error)?;
            mounts.push(XdcMount { volume: home, host_path });
        }
        let accounts: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        for project in &projects {
            let members =
                active_members(project).filter(|m| accounts.contains(&m.as_str())).cloned().collect();
            // A personal project has its owner's name, which is already the owner's own group.
            let name = if accounts.contains(&project.name.as_str()) {
                format!("{}-project", project.name)
            } else {
                project.name.clone()
            };
            groups.insert(project.gid, XdcGroup { name, gid: project.gid, members });
            let volume = VolumeRef::Project(project.name.clone());
            let owner = VolumeOwner { uid: 0, gid: project.gid, mode: PROJECT_MODE, quota_bytes: 0 };
            let host_path = volumes.ensure(&volume, owner).await.map_err(volume_error)?;
            mounts.push(XdcMount { volume, host_path });
        }

        let jupyter_user = if accounts.contains(&xdc.creator.as_str()) {
            Some(xdc.creator.clone())
        } else {
            // An administrator created it without being a member: Jupyter runs as the first
            // member, so its files land in a real home.
            users.first().map(|u| u.name.clone())
        };
        Ok(XdcSpec {
            id: xdc.id(),
            users,
            groups: groups.into_values().collect(),
            mounts,
            user_ca_public_key: self.ca.public_key_openssh()?,
            host_private_key: xdc.host_private_key.clone(),
            host_certificate: xdc.host_certificate.clone(),
            jupyter: jupyter_user.map(|user| JupyterSpec {
                user,
                base_url: xdc.jupyter_base_url(),
                token: xdc.jupyter_token.clone(),
                port: JUPYTER_PORT,
            }),
            cpu_millis: xdc.cpu_cores.saturating_mul(1000),
            memory_bytes: u64::from(xdc.memory_gib) << 30,
            hosts: attached.map(|a| a.hosts.clone()).unwrap_or_default(),
            search: attached.map(|a| a.search.clone()).unwrap_or_default(),
        })
    }
}

impl XdcService {
    /// `username`'s portal key pair with a certificate for use inside XDCs, renewed when less
    /// than a week of it is left.
    async fn identity(&self, username: &str) -> Result<XdcIdentity, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Ok(cache) = self.identities.lock()
            && let Some(issued) = cache.get(username)
            && issued.valid_before > now + IDENTITY_RENEW_BEFORE.as_secs()
        {
            return Ok(XdcIdentity {
                private_key: issued.private_key.clone(),
                certificate: issued.certificate.clone(),
            });
        }
        let keys = self.ca.user_keys(username).await?;
        let validity = self.ca.config().max_user_cert_validity;
        let cert = self.ca.user_certificate(username, &[], Some(validity)).await?;
        let issued = IssuedIdentity {
            private_key: keys.private_openssh.clone(),
            certificate: cert.openssh.clone(),
            valid_before: cert.valid_before,
        };
        if let Ok(mut cache) = self.identities.lock() {
            cache.insert(username.to_owned(), issued);
        }
        Ok(XdcIdentity { private_key: keys.private_openssh, certificate: cert.openssh })
    }
}

/// Identities inside XDCs are renewed this long before their certificates expire.
const IDENTITY_RENEW_BEFORE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn volume_error(e: trellis_volumes::VolumeError) -> Error {
    match e {
        trellis_volumes::VolumeError::InvalidName(name) => {
            Error::invalid("volume", format!("invalid name {name:?}"))
        }
        other => Error::Unavailable(format!("XDC volumes: {other}")),
    }
}
