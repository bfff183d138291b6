//! Starting the components and shutting them down on a signal.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trellis_api_server::{Portal, PortalConfig};
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_identity::TokenConfig;
use trellis_model::ModelService;
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_workspace::WorkspaceConfig;

use trellis_ingress_controller::NODE_HTTPS_ENDPOINT;

use crate::config::{Cli, Command, Component, ENV_ADMIN_PASSWORD, Settings};

/// Runs the command until SIGINT or SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    match cli.command {
        // `up` runs the API and registers this machine as the built-in facility; the other
        // components (facility agent, ingress, XDC operator) join this process as they are built.
        Command::Up(options) => serve_api(options.settings()?, true, cancel).await,
        Command::Serve { component: Component::Api, options } => {
            serve_api(options.settings()?, false, cancel).await
        }
        Command::Serve { component: Component::Facility, options } => {
            serve_facility(options.settings()?, cancel).await
        }
        Command::Serve { component: Component::Ingress, options } => {
            crate::ingress::serve_ingress(options.settings()?, cancel).await
        }
        Command::Serve { component: Component::Launch, options } => {
            serve_launch(options.settings()?, cancel).await
        }
    }
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    cancel.cancel();
}

pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if !settings.etcd.is_empty() {
        let store = EtcdStore::connect(&settings.etcd)
            .await
            .with_context(|| format!("connecting to etcd at {}", settings.etcd.join(",")))?;
        tracing::info!(endpoints = %settings.etcd.join(","), "state store: etcd");
        return Ok(Arc::new(store));
    }
    let path = settings.data_dir.join("state.redb");
    let store = EmbeddedStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
    tracing::info!(path = %path.display(), "state store: embedded");
    Ok(Arc::new(store))
}

pub(crate) fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

async fn load_policy(settings: &Settings) -> anyhow::Result<PolicyHandle> {
    if !settings.policy.exists() {
        // First start: give the administrator the built-in policy as an editable file.
        if let Some(parent) = settings.policy.parent() {
            create_private_dir(parent)?;
        }
        std::fs::write(&settings.policy, Policy::builtin().to_yaml())
            .with_context(|| format!("writing {}", settings.policy.display()))?;
        tracing::info!(path = %settings.policy.display(), "wrote the built-in policy");
    }
    let (handle, _task) = PolicyHandle::watch_file(settings.policy.clone())
        .await
        .with_context(|| format!("loading policy {}", settings.policy.display()))?;
    Ok(handle)
}

/// The model service: blobs under the data directory, and the sandboxed compiler if its venv
/// and tools are present (otherwise the portal runs and says why models cannot be compiled).
fn model_service(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<ModelService> {
    let blobs_dir = settings.data_dir.join("blobs");
    let blobs =
        LocalBlobStore::open(&blobs_dir).with_context(|| format!("opening {}", blobs_dir.display()))?;
    let compiler = match &settings.model_venv {
        Some(venv) => Compiler::new(CompilerConfig::new(venv)).map_err(|e| e.to_string()),
        None => {
            Err("no Python venv with mergexp was found; run scripts/setup.sh or pass --model-venv".to_owned())
        }
    };
    match &compiler {
        Ok(_) => tracing::info!("model compiler ready"),
        Err(why) => tracing::warn!(%why, "models cannot be compiled"),
    }
    Ok(ModelService::new(store, Arc::new(blobs), compiler))
}

/// How often expired realizations are looked for.
const RECLAIM_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

async fn serve_api(settings: Settings, all_in_one: bool, cancel: CancellationToken) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
    let policy = load_policy(&settings).await?;
    let mut workspace = WorkspaceConfig::default();
    if let Some(list) = &settings.institutions {
        workspace.default_user_configurations.institutions.clone_from(list);
    }
    if let Some(list) = &settings.categories {
        workspace.default_user_configurations.categories.clone_from(list);
    }
    // The ingress binds before the portal is built, so node ingress URLs carry its real port.
    let ingress_cancel = cancel.child_token();
    let ingress = if all_in_one {
        match crate::ingress::start_ingress(&settings, store.clone(), true, ingress_cancel.clone()).await {
            Ok(running) => Some(running),
            // The built-in configuration is a convenience; the portal runs without it.
            Err(err) if settings.ingress_config.is_none() => {
                tracing::warn!("node ingress is not served: {err:#}");
                None
            }
            Err(err) => return Err(err),
        }
    } else {
        None
    };
    let node_https = ingress.as_ref().and_then(|i| i.local_addr(NODE_HTTPS_ENDPOINT));
    // The jump host and the web proxy bind first, so the portal advertises their real ports.
    let access: crate::xdc::LateAccess = Default::default();
    let mut xdc_endpoints = if all_in_one {
        let ca = trellis_credentials::SshCa::open(store.clone(), Default::default())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some(crate::xdc::bind(&settings.xdc, &settings.data_dir, &ca, access.clone()).await?)
    } else {
        None
    };
    let xdc_config = match &xdc_endpoints {
        Some(endpoints) => crate::xdc::service_config(&settings.xdc, endpoints),
        None => {
            crate::xdc::service_config(&settings.xdc, &crate::xdc::XdcEndpoints::advertised(&settings.xdc))
        }
    };
    let config = PortalConfig {
        tokens: TokenConfig { issuer: settings.issuer.clone(), ttl: settings.token_ttl },
        xdc: xdc_config,
        ingress: trellis_materialize::IngressConfig {
            https_port: node_https.map_or(443, |addr| addr.port()),
            ..Default::default()
        },
        oidc: settings.oidc.clone(),
        workspace,
        models: Some(model_service(&settings, store.clone())?),
        git_root: Some(settings.data_dir.join("git")),
        ..Default::default()
    };
    let portal = Portal::new(store.clone(), policy, config).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let password = std::env::var(ENV_ADMIN_PASSWORD).ok().filter(|p| !p.is_empty());
    let generated = portal.workspace().bootstrap_admin(password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(realize) = portal.realize() {
        if all_in_one {
            let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let agent = crate::host_facility::start_agent(
                portal.pki(),
                &settings.data_dir,
                loopback,
                cancel.child_token(),
            )
            .await;
            crate::host_facility::ensure(realize, &settings.data_dir, agent)
                .await
                .map_err(|e| anyhow::anyhow!("registering the built-in facility: {e}"))?;
        }
        // Every replica reclaims expired realizations; their compare-and-swap commits make
        // concurrent reclaims harmless.
        realize.clone().spawn_reclaimer(RECLAIM_EVERY, cancel.clone());
    }
    // Every replica runs the materialization controller; a lease per materialization makes
    // exactly one of them drive it.
    if let Some(materialize) = portal.materialize() {
        materialize.clone().spawn_controller(cancel.child_token());
    }
    if let Some(endpoints) = xdc_endpoints.as_mut() {
        let _ = access.set(portal.xdc_access());
        crate::xdc::start(
            &settings.xdc,
            &settings.data_dir,
            endpoints,
            access.clone(),
            portal.xdc(),
            portal
                .materialize()
                .map(|m| Arc::new(crate::xdc::FacilityAttacher(m.clone())) as Arc<dyn trellis_xdc::Attacher>),
            cancel.child_token(),
        )
        .await?;
    }
    let listener =
        TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    eprintln!("Trellis portal {} at {scheme}://{addr}", if all_in_one { "up" } else { "API serving" });
    eprintln!("  data:   {}", settings.data_dir.display());
    eprintln!("  policy: {}", settings.policy.display());
    if let Some(password) = generated {
        eprintln!();
        eprintln!("  First start: created the administrator account.");
        eprintln!("    username: admin");
        eprintln!("    password: {password}");
        eprintln!("  This password is shown only once. Set {ENV_ADMIN_PASSWORD} to choose it instead.");
    }
    if let Some(addr) = node_https {
        eprintln!(
            "  Node ingress: https://localhost:{}/<mzid>/<node>/<port>/ (CA {})",
            addr.port(),
            settings.data_dir.join("ingress-ca/ca.pem").display()
        );
    }
    if let Some(endpoints) = &xdc_endpoints {
        let jump: Vec<String> = endpoints.jump.iter().map(ToString::to_string).collect();
        eprintln!(
            "  XDC SSH jump host: {}",
            if jump.is_empty() { "not running".to_owned() } else { jump.join(", ") }
        );
        match endpoints.web {
            Some(web) => eprintln!("  XDC web (Jupyter): http://{web}"),
            None => eprintln!("  XDC web (Jupyter): not running"),
        }
    }
    eprintln!();
    eprintln!("  Log in:  trellis --server {addr} login admin");
    let router = with_web_portal(portal.router(), &settings);
    let served = match &settings.tls {
        Some((cert, key)) => crate::tls::serve(listener, router, cert, key, cancel).await,
        None => trellis_api_server::serve(listener, router, cancel).await.context("serving the API"),
    };
    if let Some(jump_host) = xdc_endpoints.and_then(|e| e.jump_host) {
        jump_host.shutdown().await;
    }
    ingress_cancel.cancel();
    if let Some(ingress) = ingress {
        // The NAT (if any) is removed before the process exits.
        ingress.stopped().await;
    }
    served
}

/// `trellisd serve facility`: the built-in facility agent alone, for a portal whose API runs
/// elsewhere on the same store.
async fn serve_facility(settings: Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    create_private_dir(&settings.data_dir)?;
    let store = open_store(&settings).await?;
    let pki = trellis_pki::Pki::load_or_create(store.as_ref()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let realize =
        trellis_realize::RealizeService::new(store.clone(), model_service(&settings, store.clone())?);
    let Some(addr) =
        crate::host_facility::start_agent(&pki, &settings.data_dir, settings.listen, cancel.child_token())
            .await
    else {
        anyhow::bail!("the facility agent cannot run on this machine (see the log above)");
    };
    crate::host_facility::ensure(&realize, &settings.data_dir, Some(addr))
        .await
        .map_err(|e| anyhow::anyhow!("registering the built-in facility: {e}"))?;
    eprintln!("Trellis facility agent at {addr} (mutual TLS with the portal CA)");
    cancel.cancelled().await;
    Ok(())
}

/// `trellisd serve launch`: the web portal alone, calling a remote API over gRPC (the same
/// calls, the same policy gate, as in `up`).
async fn serve_launch(settings: Settings, cancel: CancellationToken) -> anyhow::Result<()> {
    let url = settings
        .api_url
        .clone()
        .context("serve launch needs --api-url (the portal API, e.g. http://127.0.0.1:8080)")?;
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("--api-url {url:?} is not a URL"))?;
    // Connect lazily: the web portal starts (and says the API is unavailable) before the API.
    let api = trellis_web::Api::remote(endpoint.connect_lazy());
    let config = trellis_web::WebConfig {
        secure_cookies: settings.tls.is_some() || settings.listen.ip().is_loopback(),
        session_lifetime: settings.token_ttl,
        ..Default::default()
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    eprintln!("trellisd: web portal on http://{}, calling the API at {url}", listener.local_addr()?);
    let router = trellis_web::router(api, config);
    match &settings.tls {
        Some((cert, key)) => crate::tls::serve(listener, router, cert, key, cancel).await,
        None => trellis_api_server::serve(listener, router, cancel).await.context("serving the web portal"),
    }
}

/// The API plus the web portal at `/` of the same address. The portal's pages call the API
/// router in process, through its authorization layer, as the signed-in user.
fn with_web_portal(api: axum::Router, settings: &Settings) -> axum::Router {
    let config = trellis_web::WebConfig {
        // Browsers keep Secure cookies from loopback addresses over plain HTTP too.
        secure_cookies: settings.tls.is_some() || settings.listen.ip().is_loopback(),
        session_lifetime: settings.token_ttl,
        ..Default::default()
    };
    let web = trellis_web::router(trellis_web::Api::in_process(api.clone()), config);
    api.merge(web)
}
