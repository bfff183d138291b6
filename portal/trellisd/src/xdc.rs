//! XDCs in `trellisd up`: the local runtime and volumes, the XDC controller, the SSH jump host
//! and the Jupyter web proxy, all answering to the portal's policy through
//! [`trellis_api_server::xdc_access::XdcAccess`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trellis_api_server::xdc_access::{XdcAccess, XdcDenial};
use trellis_credentials::SshCa;
use trellis_xdc::{Attacher, ControllerParts, JumpHostInfo, XdcService};
use trellis_xdc_runtime::local::{LocalConfig, LocalRuntime};

use crate::config::XdcSettings;

/// How long the web proxy reuses a policy answer: long enough to spare the store the dozens of
/// requests a notebook page makes, short enough that a removed member loses access promptly.
const WEB_ANSWER_TTL: Duration = Duration::from_secs(2);

/// Filled in once the portal is built; the jump host and web proxy bind before that, so the
/// portal can advertise their real addresses.
pub type LateAccess = Arc<OnceLock<XdcAccess>>;

/// The jump host and web proxy's bound addresses.
pub struct XdcEndpoints {
    pub jump: Vec<SocketAddr>,
    /// `None` when the proxy could not bind (the configured address is still advertised).
    pub web: Option<SocketAddr>,
    pub jump_host: Option<trellis_jump::JumpHost>,
    web_listener: Option<TcpListener>,
}

impl XdcEndpoints {
    /// The configured addresses, for a process that does not run them itself (`serve api`).
    pub fn advertised(settings: &XdcSettings) -> XdcEndpoints {
        XdcEndpoints {
            jump: settings.jump_listen.clone(),
            web: Some(settings.web_listen),
            jump_host: None,
            web_listener: None,
        }
    }
}

struct JumpPolicyAdapter(LateAccess);

#[async_trait::async_trait]
impl trellis_jump::JumpPolicy for JumpPolicyAdapter {
    async fn accepts_key(&self, user: &str, public_key: &str) -> bool {
        match self.0.get() {
            Some(access) => access.key_registered(user, public_key).await,
            None => false,
        }
    }

    async fn account_active(&self, user: &str) -> bool {
        match self.0.get() {
            Some(access) => access.account_active(user).await,
            None => false,
        }
    }

    async fn resolve(&self, user: &str, host: &str, port: u32) -> Result<SocketAddr, String> {
        match self.0.get() {
            Some(access) => access.ssh_target(user, host, port).await,
            None => Err("the portal is still starting".to_owned()),
        }
    }
}

type Cached<T> = Mutex<HashMap<String, (T, Instant)>>;

struct WebPolicyAdapter {
    access: LateAccess,
    users: Cached<Option<String>>,
    backends: Cached<Result<trellis_xdc_proxy::Backend, trellis_xdc_proxy::Denial>>,
}

fn cached<T: Clone>(cache: &Cached<T>, key: &str) -> Option<T> {
    let cache = cache.lock().ok()?;
    cache.get(key).filter(|(_, at)| at.elapsed() < WEB_ANSWER_TTL).map(|(v, _)| v.clone())
}

fn remember<T>(cache: &Cached<T>, key: String, value: T) {
    if let Ok(mut cache) = cache.lock() {
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < WEB_ANSWER_TTL);
        }
        cache.insert(key, (value, Instant::now()));
    }
}

#[async_trait::async_trait]
impl trellis_xdc_proxy::XdcWebPolicy for WebPolicyAdapter {
    async fn authenticate(&self, token: &str) -> Option<String> {
        if let Some(user) = cached(&self.users, token) {
            return user;
        }
        let user = self.access.get()?.authenticate(token).await;
        remember(&self.users, token.to_owned(), user.clone());
        user
    }

    async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        match self.access.get() {
            Some(access) => access.login(username, password).await,
            None => Err("the portal is still starting".to_owned()),
        }
    }

    async fn resolve(
        &self,
        user: &str,
        project: &str,
        xdc: &str,
    ) -> Result<trellis_xdc_proxy::Backend, trellis_xdc_proxy::Denial> {
        use trellis_xdc_proxy::{Backend, Denial};
        let key = format!("{user}\n{project}\n{xdc}");
        if let Some(answer) = cached(&self.backends, &key) {
            return answer;
        }
        let Some(access) = self.access.get() else {
            return Err(Denial::NotFound("the portal is still starting".to_owned()));
        };
        let answer = match access.jupyter(user, project, xdc).await {
            Ok(b) => Ok(Backend { addr: b.addr, jupyter_token: b.token, base_path: b.base_path }),
            Err(XdcDenial::NotFound(why)) => Err(Denial::NotFound(why)),
            Err(XdcDenial::Forbidden(why)) => Err(Denial::Forbidden(why)),
        };
        remember(&self.backends, key, answer.clone());
        answer
    }
}

/// Attaches XDCs to materializations through the facility that runs them (a veth into the
/// infranet when the XDC and the facility share this host).
pub struct FacilityAttacher(pub trellis_materialize::MaterializeService);

#[async_trait::async_trait]
impl Attacher for FacilityAttacher {
    async fn attach(
        &self,
        attachment: &trellis_xdc::Attachment,
        xdc_id: &str,
        netns: &str,
    ) -> Result<trellis_xdc::AttachedNetwork, trellis_types::Error> {
        let network = self
            .0
            .attach_xdc(&attachment.project, &attachment.experiment, &attachment.realization, xdc_id, netns)
            .await?;
        Ok(trellis_xdc::AttachedNetwork {
            mzid: attachment.mzid.clone(),
            address: network.address,
            hosts: network.hosts,
            search: network.search,
        })
    }

    async fn detach(&self, mzid: &str, xdc_id: &str, netns: &str) -> Result<(), trellis_types::Error> {
        let Some((project, experiment, realization)) = trellis_materialize::split_mzid(mzid) else {
            return Err(trellis_types::Error::invalid(
                "mzid",
                format!("{mzid:?} is not <realization>.<experiment>.<project>"),
            ));
        };
        self.0.detach_xdc(&project, &experiment, &realization, xdc_id, netns).await
    }
}

/// The jump host's SSH host key, kept under the data directory so clients see one identity
/// across restarts.
fn jump_host_key(data_dir: &Path) -> anyhow::Result<String> {
    use ssh_key::rand_core::OsRng;
    let path = data_dir.join("jump_host_ed25519_key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text);
    }
    let key = ssh_key::PrivateKey::random(&mut OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(|e| anyhow::anyhow!("generating the jump host key: {e}"))?;
    let text = key.to_openssh(ssh_key::LineEnding::LF).map_err(|e| anyhow::anyhow!("{e}"))?.to_string();
    let tmp = path.with_extension("new");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(text)
}

/// Binds the jump host and the web proxy (before the portal exists, so it can advertise their
/// addresses); they answer "still starting" until `access` is set.
pub async fn bind(
    settings: &XdcSettings,
    data_dir: &Path,
    ca: &SshCa,
    access: LateAccess,
) -> anyhow::Result<XdcEndpoints> {
    let key = jump_host_key(data_dir)?;
    let public = ssh_key::PrivateKey::from_openssh(&key)
        .map_err(|e| anyhow::anyhow!("reading the jump host key: {e}"))?
        .public_key()
        .to_openssh()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut names: Vec<String> = settings.jump_listen.iter().map(|a| a.ip().to_string()).collect();
    names.push("localhost".to_owned());
    if let Some(fqdn) = &settings.jump_fqdn {
        names.insert(0, fqdn.clone());
    }
    names.dedup();
    let cert = ca.host_certificate(&public, &names, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = trellis_jump::JumpConfig::new(settings.jump_listen.clone(), key);
    config.host_certificate = Some(cert.openssh);
    config.user_ca_public_keys = vec![ca.public_key_openssh().map_err(|e| anyhow::anyhow!("{e}"))?];
    let (jump_host, jump) = match trellis_jump::JumpHost::start(
        config,
        Arc::new(JumpPolicyAdapter(access.clone())),
    )
    .await
    {
        Ok(host) => {
            let addrs = host.local_addrs();
            (Some(host), addrs)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the SSH jump host could not start; XDCs are reachable only by the web proxy");
            (None, vec![])
        }
    };
    // Like the jump host, a taken port costs only this way in, not the whole portal.
    let (web, web_listener) = match TcpListener::bind(settings.web_listen).await {
        Ok(listener) => (Some(listener.local_addr()?), Some(listener)),
        Err(e) => {
            tracing::warn!(address = %settings.web_listen, error = %e, "the XDC web proxy could not bind; Jupyter is unreachable");
            (None, None)
        }
    };
    Ok(XdcEndpoints { jump, web, jump_host, web_listener })
}

/// What the XDC service tells clients about the endpoints.
pub fn service_config(settings: &XdcSettings, endpoints: &XdcEndpoints) -> trellis_xdc::XdcConfig {
    let jump_hosts = endpoints
        .jump
        .iter()
        .map(|addr| JumpHostInfo {
            name: "jump".to_owned(),
            fqdn: settings.jump_fqdn.clone().unwrap_or_else(|| addr.ip().to_string()),
            port: addr.port(),
        })
        .collect();
    trellis_xdc::XdcConfig {
        jump_hosts,
        web_base_url: format!("http://{}", endpoints.web.unwrap_or(settings.web_listen)),
        web_domain: settings.domain.clone(),
        ..Default::default()
    }
}

/// Serves the web proxy and runs the XDC controller on the local runtime (if this machine can
/// run containers).
pub async fn start(
    settings: &XdcSettings,
    data_dir: &Path,
    endpoints: &mut XdcEndpoints,
    access: LateAccess,
    xdc: &XdcService,
    attacher: Option<Arc<dyn Attacher>>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(listener) = endpoints.web_listener.take() {
        let mut config = trellis_xdc_proxy::XdcProxyConfig::new(settings.domain.clone());
        config.secure_cookie = false;
        // One login for both: the web portal's session cookie opens Jupyter too (cookies are
        // shared across ports of one host).
        config.cookie_name = trellis_web::session::DEFAULT_SESSION_COOKIE.to_owned();
        let policy = Arc::new(WebPolicyAdapter {
            access,
            users: Mutex::new(HashMap::new()),
            backends: Mutex::new(HashMap::new()),
        });
        let proxy = trellis_xdc_proxy::service(config, policy).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy.serve(listener, cancel).await {
                tracing::error!(error = %e, "the XDC web proxy stopped");
            }
        });
    }
    let mut local = LocalConfig::new(data_dir.join("xdc"));
    if let Some(subnet) = &settings.subnet {
        local.subnet = subnet.parse().map_err(|e| anyhow::anyhow!("xdc_subnet {subnet:?}: {e}"))?;
    }
    if let Some(bridge) = &settings.bridge {
        local.bridge.clone_from(bridge);
    }
    let runtime = match LocalRuntime::open(local) {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "XDCs cannot run on this machine; XDC records are kept but not started");
            return Ok(());
        }
    };
    let volumes: Arc<dyn trellis_volumes::Volumes> = match &settings.cephfs_conf {
        Some(conf) => {
            // Mounts are matched against the kernel's mount table: the root must be canonical.
            let root =
                std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()).join("cephfs");
            let config = trellis_volumes::cephfs::CephFsConfig::new(conf.clone(), root);
            let cephfs = trellis_volumes::cephfs::CephFsVolumes::new(config);
            cephfs
                .check()
                .await
                .map_err(|e| anyhow::anyhow!("XDC volumes on CephFS ({}): {e}", conf.display()))?;
            tracing::info!(conf = %conf.display(), "XDC volumes: CephFS subvolumes");
            Arc::new(cephfs)
        }
        None => Arc::new(trellis_volumes::local::LocalVolumes::new(data_dir.join("volumes"))),
    };
    let parts =
        ControllerParts { runtime: Arc::new(runtime), volumes, attacher, resync: Duration::from_secs(30) };
    xdc.spawn_controller(parts, cancel);
    Ok(())
}
