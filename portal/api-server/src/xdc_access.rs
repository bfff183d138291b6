//! What the SSH jump host and the XDC web proxy ask the portal: is this key registered, may this
//! account log in, which XDC does a name mean and may this user reach it. Decisions go through
//! the same policy gate as the API (`xdc` read), so one policy governs every way in.

use std::net::SocketAddr;
use std::sync::Arc;

use trellis_identity::TokenService;
use trellis_policy::{Entity, Operation};
use trellis_types::{Error, User, UserState};
use trellis_workspace::Workspace;
use trellis_xdc::{JUPYTER_PORT, XdcPhase, XdcRecord, XdcService};

use crate::authz::{Gate, Target};

/// Why a web request for an XDC is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdcDenial {
    NotFound(String),
    Forbidden(String),
}

/// Where an XDC's Jupyter is, for the web proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JupyterBackend {
    pub addr: SocketAddr,
    pub token: String,
    pub base_path: String,
}

/// The portal's answers for the jump host and the web proxy. Cheap to clone.
#[derive(Clone)]
pub struct XdcAccess {
    workspace: Workspace,
    gate: Gate,
    xdc: XdcService,
    tokens: Arc<TokenService>,
}

/// The key material of an OpenSSH public key line (type and base64), without its comment.
fn key_material(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.split_whitespace();
    Some((fields.next()?, fields.next()?))
}

impl XdcAccess {
    pub fn new(workspace: Workspace, gate: Gate, xdc: XdcService, tokens: Arc<TokenService>) -> XdcAccess {
        XdcAccess { workspace, gate, xdc, tokens }
    }

    async fn active_user(&self, username: &str) -> Option<User> {
        match self.workspace.find_user(username).await {
            Ok(Some(user)) if user.state == UserState::Active => Some(user),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(user = username, error = %e, "cannot read account");
                None
            }
        }
    }

    /// Whether `username` is an active account.
    pub async fn account_active(&self, username: &str) -> bool {
        self.active_user(username).await.is_some()
    }

    /// Whether `public_key` is one of `username`'s registered keys and the account is active.
    pub async fn key_registered(&self, username: &str, public_key: &str) -> bool {
        if self.active_user(username).await.is_none() {
            return false;
        }
        let Some(offered) = key_material(public_key) else { return false };
        match self.workspace.public_keys(username).await {
            Ok(keys) => keys.iter().any(|k| key_material(&k.key) == Some(offered)),
            Err(e) => {
                tracing::warn!(user = username, error = %e, "cannot read registered keys");
                false
            }
        }
    }

    /// An XDC `user` may use (policy: `xdc` read), with the reason when not.
    async fn permitted(&self, user: &User, xdc: &XdcRecord) -> Result<(), String> {
        let target = Target::Xdc { project: xdc.project.clone(), name: xdc.name.clone() };
        match self.gate.check_account(user, Entity::Xdc, Operation::Read, &target).await {
            Ok(()) => Ok(()),
            Err(Error::PermissionDenied(why)) => Err(why),
            Err(Error::NotFound { .. }) => Err(format!("no XDC {}", xdc.full_name())),
            Err(e) => Err(format!("cannot decide: {e}")),
        }
    }

    /// Where an SSH `direct-tcpip` request from `username` to `host:port` goes: only port 22 of
    /// a running XDC the user may use.
    pub async fn ssh_target(&self, username: &str, host: &str, port: u32) -> Result<SocketAddr, String> {
        let Some(user) = self.active_user(username).await else {
            return Err(format!("account {username} is not active"));
        };
        let xdc = match self.xdc.resolve_ssh_name(host).await {
            Ok(Some(xdc)) => xdc,
            Ok(None) => return Err(format!("{host} is not an XDC (use <xdc>-<project>)")),
            Err(e) => return Err(format!("cannot look up {host}: {e}")),
        };
        self.permitted(&user, &xdc).await?;
        if port != 22 {
            return Err(format!(
                "only SSH (port 22) of XDCs is reachable through the jump host, not port {port}"
            ));
        }
        // sshd starts long before Jupyter: a starting XDC with an address takes SSH already
        // (if sshd is not up yet the client sees the connection refused, not a policy error).
        if let Ok(Some(s)) = self.xdc.status(&xdc.project, &xdc.name).await
            && s.phase == XdcPhase::Pending
            && let Some(address) = s.address
        {
            return Ok(SocketAddr::new(address, 22));
        }
        let address = self.running_address(&xdc).await.map_err(|e| e.to_string())?;
        Ok(SocketAddr::new(address, 22))
    }

    async fn running_address(&self, xdc: &XdcRecord) -> Result<std::net::IpAddr, Error> {
        match self.xdc.status(&xdc.project, &xdc.name).await? {
            Some(s) if s.phase == XdcPhase::Running => s.address.ok_or_else(|| {
                Error::Unavailable(format!("XDC {} runs but has no address yet", xdc.full_name()))
            }),
            Some(s) => Err(Error::Unavailable(format!(
                "XDC {} is not running ({:?}{}{})",
                xdc.full_name(),
                s.phase,
                if s.message.is_empty() { "" } else { ": " },
                s.message
            ))),
            None => Err(Error::Unavailable(format!("XDC {} is still starting", xdc.full_name()))),
        }
    }

    /// The username a portal token belongs to, if it is valid and its account active.
    pub async fn authenticate(&self, token: &str) -> Option<String> {
        let verified = self.tokens.verify(token).await.ok()?;
        self.active_user(&verified.username).await.map(|u| u.username)
    }

    /// A portal token for a username and password.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        self.tokens.login(username, password).await.map_err(|e| e.to_string())
    }

    /// Where `username` reaches the Jupyter of XDC `name` of `project`.
    pub async fn jupyter(
        &self,
        username: &str,
        project: &str,
        name: &str,
    ) -> Result<JupyterBackend, XdcDenial> {
        let Some(user) = self.active_user(username).await else {
            return Err(XdcDenial::Forbidden(format!("account {username} is not active")));
        };
        let xdc = match self.xdc.find(project, name).await {
            Ok(Some(xdc)) => xdc,
            Ok(None) => return Err(XdcDenial::NotFound(format!("no XDC {name}.{project}"))),
            Err(e) => return Err(XdcDenial::NotFound(format!("cannot look up {name}.{project}: {e}"))),
        };
        self.permitted(&user, &xdc).await.map_err(XdcDenial::Forbidden)?;
        let address = self.running_address(&xdc).await.map_err(|e| XdcDenial::NotFound(e.to_string()))?;
        Ok(JupyterBackend {
            addr: SocketAddr::new(address, JUPYTER_PORT),
            token: xdc.jupyter_token.clone(),
            base_path: xdc.jupyter_base_url(),
        })
    }
}
