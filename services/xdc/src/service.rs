//! The XDC objects: creating, reading, attaching, deleting. The controller
//! ([`crate::controller`]) makes the runtime follow.

use std::sync::Arc;

use rand::RngCore;
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use trellis_credentials::SshCa;
use trellis_realize::stored::{Versioned, commit, load, load_all, now_unix, put, retrying, store_error};
use trellis_store::{Compare, Op, Store, Txn};
use trellis_types::{Error, MemberState, validate_name};
use trellis_workspace::Workspace;

use crate::keys;
use crate::types::{Attachment, XdcKind, XdcRecord, XdcStatusRecord, runtime_id};

/// A jump host users reach XDCs through (Merge's `SshJump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHostInfo {
    pub name: String,
    pub fqdn: String,
    pub port: u16,
}

/// Settings of the XDC service.
#[derive(Debug, Clone)]
pub struct XdcConfig {
    /// Jump hosts as clients should address them.
    pub jump_hosts: Vec<JumpHostInfo>,
    /// Base of the web proxy's URLs, e.g. `https://xdc.example.net` (path form).
    pub web_base_url: String,
    /// The domain of the Merge v1 host form: `https://<xdc>-<project>.<web_domain>/jupyter`.
    pub web_domain: String,
    /// Limits when the request names none.
    pub default_cpu_cores: u32,
    pub default_memory_gib: u32,
    /// The most a request may ask for.
    pub max_cpu_cores: u32,
    pub max_memory_gib: u32,
    /// XDCs per project.
    pub max_xdcs_per_project: usize,
}

impl Default for XdcConfig {
    fn default() -> Self {
        XdcConfig {
            jump_hosts: vec![JumpHostInfo { name: "jump".into(), fqdn: "localhost".into(), port: 2202 }],
            web_base_url: "http://localhost".into(),
            web_domain: "xdc.localhost".into(),
            default_cpu_cores: 2,
            default_memory_gib: 4,
            max_cpu_cores: 16,
            max_memory_gib: 64,
            max_xdcs_per_project: 32,
        }
    }
}

/// What a caller asks for when creating an XDC.
#[derive(Debug, Clone, Default)]
pub struct NewXdc {
    pub project: String,
    pub name: String,
    pub kind: XdcKind,
    pub image: String,
    /// 0 = the default.
    pub cpu_cores: u32,
    /// 0 = the default.
    pub memory_gib: u32,
    /// Lifetime in seconds; `None` = no expiry.
    pub lifetime: Option<i64>,
}

/// Images XDCs can run; only the portal host's own `/usr` so far.
pub const IMAGES: &[(&str, &str, &str)] =
    &[("default", "Portal host", "The portal host's /usr (read-only) with OpenSSH and Jupyter")];

/// A user certificate issued for use inside XDCs, with when it stops being valid.
#[derive(Clone)]
pub(crate) struct IssuedIdentity {
    pub private_key: String,
    pub certificate: String,
    pub valid_before: u64,
}

/// The XDC service. Cheap to clone.
#[derive(Clone)]
pub struct XdcService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) workspace: Workspace,
    pub(crate) ca: SshCa,
    pub(crate) config: Arc<XdcConfig>,
    /// Certificates handed to XDCs, reused until close to expiry: issuing one on every
    /// controller pass would change every spec every time.
    pub(crate) identities: Arc<std::sync::Mutex<std::collections::HashMap<String, IssuedIdentity>>>,
}

impl XdcService {
    pub fn new(store: Arc<dyn Store>, workspace: Workspace, ca: SshCa, config: XdcConfig) -> XdcService {
        XdcService { store, workspace, ca, config: Arc::new(config), identities: Default::default() }
    }

    pub fn config(&self) -> &XdcConfig {
        &self.config
    }

    /// Creates an XDC record; the controller starts it.
    pub async fn create(&self, creator: &str, new: NewXdc) -> Result<XdcRecord, Error> {
        validate_name("xdc", &new.name)?;
        validate_name("project", &new.project)?;
        let image = if new.image.is_empty() { "default".to_owned() } else { new.image.clone() };
        if !IMAGES.iter().any(|(name, _, _)| *name == image) {
            return Err(Error::invalid("image", format!("unknown XDC image {image:?}; images: default")));
        }
        let cpu_cores = if new.cpu_cores == 0 { self.config.default_cpu_cores } else { new.cpu_cores };
        let memory_gib = if new.memory_gib == 0 { self.config.default_memory_gib } else { new.memory_gib };
        if cpu_cores > self.config.max_cpu_cores {
            return Err(Error::invalid(
                "cpulimit",
                format!("at most {} cores (asked for {cpu_cores})", self.config.max_cpu_cores),
            ));
        }
        if memory_gib > self.config.max_memory_gib {
            return Err(Error::invalid(
                "memlimit",
                format!("at most {} GiB (asked for {memory_gib})", self.config.max_memory_gib),
            ));
        }
        if let Some(lifetime) = new.lifetime
            && lifetime <= 0
        {
            return Err(Error::invalid("duration", "must be positive"));
        }
        let project = self.workspace.get_project(&new.project).await?;
        if new.kind == XdcKind::Personal && project.active_role(creator).is_none() {
            // Administrators may create shared XDCs anywhere, but a personal XDC is an account
            // for its creator inside the project's files, so it needs real membership.
            return Err(Error::FailedPrecondition(format!(
                "a personal XDC needs its creator to be an active member of project {}",
                project.name
            )));
        }

        let host_key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(|e| Error::Internal(format!("generating an XDC host key: {e}")))?;
        let host_public = host_key
            .public_key()
            .to_openssh()
            .map_err(|e| Error::Internal(format!("encoding an XDC host key: {e}")))?;
        let id = runtime_id(&new.project, &new.name);
        let cert = self.ca.host_certificate(&host_public, std::slice::from_ref(&id), None).await?;
        let mut token = [0u8; 24];
        rand::rng().fill_bytes(&mut token);
        let now = now_unix();
        let record = XdcRecord {
            name: new.name.clone(),
            project: new.project.clone(),
            creator: creator.to_owned(),
            kind: new.kind,
            image,
            cpu_cores,
            memory_gib,
            created: now,
            expires: new.lifetime.map(|l| now + l),
            attachment: None,
            host_private_key: host_key
                .to_openssh(LineEnding::LF)
                .map_err(|e| Error::Internal(format!("encoding an XDC host key: {e}")))?
                .to_string(),
            host_certificate: cert.openssh,
            jupyter_token: token.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let existing = self.store.range(&keys::project_xdcs(&new.project)).await.map_err(store_error)?;
        if existing.kvs.len() >= self.config.max_xdcs_per_project {
            return Err(Error::ResourceExhausted(format!(
                "project {} already has {} XDCs, the most allowed",
                new.project, self.config.max_xdcs_per_project
            )));
        }
        let key = keys::xdc(&new.project, &new.name);
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision: 0 }],
            success: vec![put(&key, &record)?, Op::Delete { key: keys::status(&new.project, &new.name) }],
        };
        if !commit(self.store.as_ref(), txn).await? {
            return Err(Error::already_exists("xdc", format!("{}.{}", new.name, new.project)));
        }
        tracing::info!(xdc = %record.full_name(), creator, kind = ?record.kind, "XDC created");
        Ok(record)
    }

    pub async fn find(&self, project: &str, name: &str) -> Result<Option<XdcRecord>, Error> {
        Ok(load::<XdcRecord>(self.store.as_ref(), &keys::xdc(project, name)).await?.map(|v| v.value))
    }

    pub async fn get(&self, project: &str, name: &str) -> Result<XdcRecord, Error> {
        self.find(project, name).await?.ok_or_else(|| Error::not_found("xdc", format!("{name}.{project}")))
    }

    /// The controller's last observation of an XDC, if it made one.
    pub async fn status(&self, project: &str, name: &str) -> Result<Option<XdcStatusRecord>, Error> {
        Ok(load::<XdcStatusRecord>(self.store.as_ref(), &keys::status(project, name)).await?.map(|v| v.value))
    }

    /// XDCs of `project`, or of every project.
    pub async fn list(&self, project: Option<&str>) -> Result<Vec<XdcRecord>, Error> {
        let prefix = match project {
            Some(p) => keys::project_xdcs(p),
            None => keys::XDCS.to_owned(),
        };
        Ok(load_all::<XdcRecord>(self.store.as_ref(), &prefix).await?.into_iter().map(|v| v.value).collect())
    }

    /// Deletes the XDC's records; the controller stops it. Volumes stay.
    pub async fn delete(&self, project: &str, name: &str) -> Result<(), Error> {
        let key = keys::xdc(project, name);
        let txn = Txn {
            compares: vec![Compare::Exists { key: key.clone() }],
            success: vec![Op::Delete { key }, Op::Delete { key: keys::status(project, name) }],
        };
        if !commit(self.store.as_ref(), txn).await? {
            return Err(Error::not_found("xdc", format!("{name}.{project}")));
        }
        tracing::info!(xdc = %format!("{name}.{project}"), "XDC deleted");
        Ok(())
    }

    /// Read-modify-write of one record with compare-and-swap.
    async fn modify(
        &self,
        project: &str,
        name: &str,
        what: &str,
        change: impl Fn(&mut XdcRecord) -> Result<(), Error>,
    ) -> Result<XdcRecord, Error> {
        let key = keys::xdc(project, name);
        retrying(what, || async {
            let Some(Versioned { mut value, revision }) =
                load::<XdcRecord>(self.store.as_ref(), &key).await?
            else {
                return Err(Error::not_found("xdc", format!("{name}.{project}")));
            };
            change(&mut value)?;
            let txn = Txn {
                compares: vec![Compare::ModRevision { key: key.clone(), revision }],
                success: vec![put(&key, &value)?],
            };
            Ok(commit(self.store.as_ref(), txn).await?.then_some(value))
        })
        .await
    }

    /// Sets when the XDC expires (`None`: never).
    pub async fn set_expiry(
        &self,
        project: &str,
        name: &str,
        expires: Option<i64>,
    ) -> Result<XdcRecord, Error> {
        if let Some(at) = expires
            && at <= now_unix()
        {
            return Err(Error::invalid("expires", "must be in the future"));
        }
        self.modify(project, name, "updating an XDC", |r| {
            r.expires = expires;
            Ok(())
        })
        .await
    }

    /// Attaches the XDC to a materialization (one at a time; `force` replaces the current one).
    /// The caller has checked that the user may use that materialization.
    pub async fn attach(
        &self,
        project: &str,
        name: &str,
        target: Attachment,
        force: bool,
    ) -> Result<XdcRecord, Error> {
        for (field, value) in [
            ("realization_project", &target.project),
            ("experiment", &target.experiment),
            ("realization", &target.realization),
        ] {
            validate_name(field, value)?;
        }
        let xdc = self.get(project, name).await?;
        if xdc.kind == XdcKind::Shared && target.project != xdc.project {
            return Err(Error::FailedPrecondition(format!(
                "shared XDC {} attaches only to materializations of project {} (asked: {})",
                xdc.full_name(),
                xdc.project,
                target.mzid
            )));
        }
        let mz_key = trellis_materialize::keys::materialization(
            &target.project,
            &target.experiment,
            &target.realization,
        );
        if self.store.get(&mz_key).await.map_err(store_error)?.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "{} is not materialized; materialize it before attaching an XDC",
                target.mzid
            )));
        }
        self.modify(project, name, "attaching an XDC", |r| {
            match &r.attachment {
                Some(current) if *current == target => {}
                Some(current) if !force => {
                    return Err(Error::FailedPrecondition(format!(
                        "XDC {} is attached to {}; detach it first (or force)",
                        r.full_name(),
                        current.mzid
                    )));
                }
                _ => r.attachment = Some(target.clone()),
            }
            Ok(())
        })
        .await
    }

    /// Detaches the XDC from its materialization; nothing to do when it is not attached.
    pub async fn detach(&self, project: &str, name: &str) -> Result<XdcRecord, Error> {
        self.modify(project, name, "detaching an XDC", |r| {
            r.attachment = None;
            Ok(())
        })
        .await
    }

    /// URLs of the XDC's Jupyter: (title, url), the path form first.
    pub fn urls(&self, xdc: &XdcRecord) -> Vec<(String, String)> {
        vec![
            (
                "Jupyter".to_owned(),
                format!("{}{}", self.config.web_base_url.trim_end_matches('/'), xdc.jupyter_base_url()),
            ),
            (
                "Jupyter (host form)".to_owned(),
                format!("https://{}.{}/jupyter", xdc.id(), self.config.web_domain),
            ),
        ]
    }

    /// The XDC a jump-host target names: `<xdc>-<project>` (optionally with `.<domain>`), or
    /// `xdc-<experiment>-<project>`, meaning the project's XDC attached to that experiment.
    pub async fn resolve_ssh_name(&self, host: &str) -> Result<Option<XdcRecord>, Error> {
        let label = host.split('.').next().unwrap_or(host);
        let parts: Vec<&str> = label.split('-').collect();
        match parts.as_slice() {
            [name, project] if validate_name("", name).is_ok() && validate_name("", project).is_ok() => {
                self.find(project, name).await
            }
            ["xdc", experiment, project] if validate_name("", project).is_ok() => {
                let mut attached: Vec<XdcRecord> = self
                    .list(Some(project))
                    .await?
                    .into_iter()
                    .filter(|x| x.attachment.as_ref().is_some_and(|a| a.experiment == *experiment))
                    .collect();
                attached.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(attached.into_iter().next())
            }
            _ => Ok(None),
        }
    }

    /// Whether `user` has an account inside `xdc` (who may log in by SSH).
    pub async fn has_account(&self, xdc: &XdcRecord, user: &str) -> Result<bool, Error> {
        match xdc.kind {
            XdcKind::Personal => Ok(xdc.creator == user),
            XdcKind::Shared => {
                let project = self.workspace.get_project(&xdc.project).await?;
                Ok(project.members.get(user).is_some_and(|m| m.state == MemberState::Active))
            }
        }
    }

    /// Deletes XDCs past their expiry; returns how many.
    pub async fn reap_expired(&self) -> Result<usize, Error> {
        let now = now_unix();
        let mut reaped = 0;
        for xdc in self.list(None).await? {
            if xdc.expires.is_some_and(|at| at <= now) {
                match self.delete(&xdc.project, &xdc.name).await {
                    Ok(()) | Err(Error::NotFound { .. }) => reaped += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(reaped)
    }
}

/// The creator of XDC `name` of `project`, if it exists (the policy's `User.Self` for XDCs).
pub async fn creator_of(store: &dyn Store, project: &str, name: &str) -> Result<Option<String>, Error> {
    Ok(load::<XdcRecord>(store, &keys::xdc(project, name)).await?.map(|v| v.value.creator))
}
