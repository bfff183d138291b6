//! Command line and configuration file.
//!
//! Precedence: built-in defaults < YAML config file (`--config`) < `TRELLIS_*` environment
//! variables < flags. Unknown keys in the file are errors: a typo in a security setting must
//! not be silently ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use trellis_identity::OidcConfig;

/// The address `trellisd up` listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7080";

/// Environment variable holding the bootstrap administrator's password.
pub const ENV_ADMIN_PASSWORD: &str = "TRELLIS_ADMIN_PASSWORD";

/// The Trellis portal daemon.
#[derive(Debug, Parser)]
#[command(name = "trellisd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every component in one process (embedded store unless --etcd is given).
    Up(Options),
    /// Run one component.
    Serve {
        /// The component to run.
        #[arg(value_enum)]
        component: Component,
        #[command(flatten)]
        options: Options,
    },
}

/// Components `trellisd serve` can run on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// The gRPC API and its HTTP endpoints.
    Api,
    /// This machine's facility agent (containers in network namespaces) on `--listen`, behind
    /// mutual TLS with the portal CA; it registers itself as the built-in facility.
    Facility,
    /// The ingress (proxy, NAT, node ingress) alone, on the shared store; needs --ingress-config.
    Ingress,
    /// The web portal ("launch") alone on --listen, calling the API at --api-url over gRPC.
    Launch,
}

/// Settings shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// YAML configuration file.
    #[arg(long, env = "TRELLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded store, policy file and other state live.
    #[arg(long, env = "TRELLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the API (gRPC and HTTP on one port).
    #[arg(long, env = "TRELLIS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// etcd endpoints (comma-separated); without them the embedded store is used.
    #[arg(long, env = "TRELLIS_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// The policy file (default: <data-dir>/policy.yml, created from the built-in policy).
    #[arg(long, env = "TRELLIS_POLICY")]
    pub policy: Option<PathBuf>,
    /// Lifetime of login tokens, in seconds.
    #[arg(long, env = "TRELLIS_TOKEN_TTL")]
    pub token_ttl: Option<u64>,
    /// The `iss` claim of portal tokens.
    #[arg(long, env = "TRELLIS_ISSUER")]
    pub issuer: Option<String>,
    /// The Python venv with `mergexp` that compiles models (default: `.venv` in the current
    /// directory or next to the source tree the binary was built in).
    #[arg(long, env = "TRELLIS_MODEL_VENV")]
    pub model_venv: Option<PathBuf>,
    /// PEM certificate chain to serve TLS with (together with --tls-key).
    #[arg(long, env = "TRELLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TRELLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ingress configuration (YAML, like ingress/ingress.example.yml); reloaded on change and
    /// SIGHUP. `up` serves a built-in one without it.
    #[arg(long, env = "TRELLIS_INGRESS_CONFIG")]
    pub ingress_config: Option<PathBuf>,
    /// The API `serve launch` calls (for example http://127.0.0.1:8080).
    #[arg(long, env = "TRELLIS_API_URL")]
    pub api_url: Option<String>,
    /// Node-ingress HTTPS address of `up`'s built-in ingress configuration (default 127.0.0.1:7443).
    #[arg(long, env = "TRELLIS_INGRESS_HTTPS")]
    pub ingress_https: Option<SocketAddr>,
    /// Where node-ingress tcp/udp gateway ports listen (default 127.0.0.1).
    #[arg(long, env = "TRELLIS_INGRESS_GATEWAY_IP")]
    pub ingress_gateway_ip: Option<IpAddr>,
    /// Addresses of the SSH jump host (comma-separated; default 127.0.0.1:2202,127.0.0.1:2022).
    #[arg(long, env = "TRELLIS_JUMP_LISTEN", value_delimiter = ',')]
    pub jump_listen: Vec<SocketAddr>,
    /// Address of the XDC web (Jupyter) proxy (default 127.0.0.1:7081).
    #[arg(long, env = "TRELLIS_XDC_WEB_LISTEN")]
    pub xdc_web_listen: Option<SocketAddr>,
    /// Host name users reach the jump host by (default: its listen address).
    #[arg(long, env = "TRELLIS_JUMP_FQDN")]
    pub jump_fqdn: Option<String>,
    /// Domain of the XDC web proxy's host-form URLs (`<xdc>-<project>.<domain>`).
    #[arg(long, env = "TRELLIS_XDC_DOMAIN")]
    pub xdc_domain: Option<String>,
    /// Subnet of the local XDC runtime's bridge (default 172.29.0.0/16).
    #[arg(long, env = "TRELLIS_XDC_SUBNET")]
    pub xdc_subnet: Option<String>,
    /// Name of the local XDC runtime's bridge (default trxbr0).
    #[arg(long, env = "TRELLIS_XDC_BRIDGE")]
    pub xdc_bridge: Option<String>,
    /// `ceph.conf` of a cluster whose CephFS (`cephfs`) holds XDC homes and project
    /// directories as subvolumes; without it they are directories under the data directory.
    #[arg(long, env = "TRELLIS_XDC_CEPHFS_CONF")]
    pub xdc_cephfs_conf: Option<PathBuf>,
}

/// The configuration file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    #[serde(default)]
    etcd: Vec<String>,
    policy: Option<PathBuf>,
    token_ttl: Option<u64>,
    issuer: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    model_venv: Option<PathBuf>,
    oidc: Option<OidcConfig>,
    /// Registration lists offered before an administrator edits them.
    institutions: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    ingress_config: Option<PathBuf>,
    ingress_https: Option<SocketAddr>,
    ingress_gateway_ip: Option<IpAddr>,
    api_url: Option<String>,
    #[serde(default)]
    jump_listen: Vec<SocketAddr>,
    xdc_web_listen: Option<SocketAddr>,
    jump_fqdn: Option<String>,
    xdc_domain: Option<String>,
    xdc_subnet: Option<String>,
    xdc_bridge: Option<String>,
    xdc_cephfs_conf: Option<PathBuf>,
}

/// Settings after every layer has been applied and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub etcd: Vec<String>,
    pub policy: PathBuf,
    pub token_ttl: Duration,
    pub issuer: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub model_venv: Option<PathBuf>,
    pub oidc: Option<OidcConfig>,
    pub institutions: Option<Vec<String>>,
    pub categories: Option<Vec<String>>,
    pub xdc: XdcSettings,
    pub ingress_config: Option<PathBuf>,
    pub ingress_https: SocketAddr,
    pub ingress_gateway_ip: IpAddr,
    pub api_url: Option<String>,
}

/// Where XDCs, the jump host and the XDC web proxy run.
#[derive(Debug, Clone)]
pub struct XdcSettings {
    pub jump_listen: Vec<SocketAddr>,
    pub jump_fqdn: Option<String>,
    pub web_listen: SocketAddr,
    pub domain: String,
    pub subnet: Option<String>,
    pub bridge: Option<String>,
    pub cephfs_conf: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("trellis");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/trellis"),
        None => PathBuf::from("/var/lib/trellis"),
    }
}

/// `.venv` in the current directory, or in an ancestor of the executable (a binary run from
/// `target/release` of a checkout finds the checkout's venv that `scripts/setup.sh` made).
fn find_venv() -> Option<PathBuf> {
    let here = std::env::current_dir().ok().map(|d| d.join(".venv"));
    let exe = std::env::current_exe().ok();
    let beside_build = exe.iter().flat_map(|e| e.ancestors().skip(1).take(4)).map(|d| d.join(".venv"));
    here.into_iter().chain(beside_build).find(|v| v.join("bin/python").exists())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl Options {
    /// Applies the layers and validates the result.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = self.data_dir.clone().or(file.data_dir).unwrap_or_else(default_data_dir);
        let listen = match self.listen.or(file.listen) {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let etcd = if self.etcd.is_empty() { file.etcd } else { self.etcd.clone() };
        let policy = self.policy.clone().or(file.policy).unwrap_or_else(|| data_dir.join("policy.yml"));
        let token_ttl = Duration::from_secs(self.token_ttl.or(file.token_ttl).unwrap_or(24 * 3600));
        anyhow::ensure!(token_ttl >= Duration::from_secs(60), "token_ttl must be at least 60 seconds");
        let tls = match (self.tls_cert.clone().or(file.tls_cert), self.tls_key.clone().or(file.tls_key)) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert and tls_key must be given together"),
        };
        Ok(Settings {
            data_dir,
            listen,
            etcd,
            policy,
            token_ttl,
            issuer: self.issuer.clone().or(file.issuer).unwrap_or_else(|| "trellis".to_owned()),
            tls,
            model_venv: self.model_venv.clone().or(file.model_venv).or_else(find_venv),
            oidc: file.oidc,
            institutions: file.institutions,
            categories: file.categories,
            ingress_config: self.ingress_config.clone().or(file.ingress_config),
            api_url: self.api_url.clone().or(file.api_url),
            ingress_https: self
                .ingress_https
                .or(file.ingress_https)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443))),
            ingress_gateway_ip: self
                .ingress_gateway_ip
                .or(file.ingress_gateway_ip)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            xdc: XdcSettings {
                jump_listen: if !self.jump_listen.is_empty() {
                    self.jump_listen.clone()
                } else if !file.jump_listen.is_empty() {
                    file.jump_listen
                } else {
                    vec![SocketAddr::from(([127, 0, 0, 1], 2202)), SocketAddr::from(([127, 0, 0, 1], 2022))]
                },
                jump_fqdn: self.jump_fqdn.clone().or(file.jump_fqdn),
                web_listen: self
                    .xdc_web_listen
                    .or(file.xdc_web_listen)
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7081))),
                domain: self
                    .xdc_domain
                    .clone()
                    .or(file.xdc_domain)
                    .unwrap_or_else(|| "xdc.localhost".to_owned()),
                subnet: self.xdc_subnet.clone().or(file.xdc_subnet),
                bridge: self.xdc_bridge.clone().or(file.xdc_bridge),
                cephfs_conf: self.xdc_cephfs_conf.clone().or(file.xdc_cephfs_conf),
            },
        })
    }
}
