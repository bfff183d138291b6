//! Assembling the API router and serving it.

use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trellis_api::portal::v1 as pb;
use trellis_credentials::{SshCa, SshCaConfig};
use trellis_identity::{OidcConfig, TokenConfig, TokenService};
use trellis_materialize::{IngressConfig, MaterializeConfig, MaterializeService, MtlsConnector};
use trellis_model::ModelService;
use trellis_pki::Pki;
use trellis_policy::PolicyHandle;
use trellis_realize::RealizeService;
use trellis_store::Store;
use trellis_store::cache::CachedStore;
use trellis_types::Error;
use trellis_workspace::{Workspace, WorkspaceConfig};
use trellis_xdc::{XdcConfig, XdcService};

use crate::api::Services;
use crate::api::alloc::AllocApi;
use crate::api::commission::CommissionApi;
use crate::api::cred::CredApi;
use crate::api::identity::IdentityApi;
use crate::api::materialize::MaterializeApi;
use crate::api::model::ModelApi;
use crate::api::realize::RealizeApi;
use crate::api::unbuilt::Unbuilt;
use crate::api::workspace::WorkspaceApi;
use crate::api::xdc::XdcApi;
use crate::authz::Gate;
use crate::authz::layer::{Authorizer, authorize};

/// Settings of the API.
#[derive(Clone, Default)]
pub struct PortalConfig {
    pub tokens: TokenConfig,
    pub oidc: Option<OidcConfig>,
    pub workspace: WorkspaceConfig,
    /// Model compilation and revisions; without it the Model RPCs say they are unavailable.
    pub models: Option<ModelService>,
    /// Where node ingresses are published.
    pub ingress: IngressConfig,
    /// Lifetimes of SSH certificates the portal issues.
    pub ssh_ca: SshCaConfig,
    /// XDC limits, jump hosts and web proxy URLs.
    pub xdc: XdcConfig,
    /// Where the per-experiment git repositories live; `None` disables `/git/...`.
    pub git_root: Option<std::path::PathBuf>,
}

/// The assembled API: services plus the authorization layer.
pub struct Portal {
    services: Services,
    store: Arc<dyn Store>,
    git_root: Option<std::path::PathBuf>,
    pki: Pki,
}

impl Portal {
    /// Builds the services over `store`, loading or creating the token-signing key.
    ///
    /// Reads of workspace and identity records go through a watch cache (see
    /// `trellis_store::cache`): authorizing a call then costs one revision check instead of a
    /// store read per record, and reads stay consistent across replicas.
    pub async fn new(
        store: Arc<dyn Store>,
        policy: PolicyHandle,
        config: PortalConfig,
    ) -> Result<Portal, Error> {
        // Realizations read allocations straight from the store: their compare-and-swap
        // commits must see the latest revision, and the cache covers only workspace records.
        let raw_store = store.clone();
        let realize = config.models.clone().map(|models| RealizeService::new(store.clone(), models));
        let credentials = SshCa::open(store.clone(), config.ssh_ca).await?;
        let store: Arc<dyn Store> = Arc::new(CachedStore::new(
            store,
            "/trellis/",
            vec!["/trellis/ws/".to_owned(), "/trellis/identity/".to_owned()],
        ));
        let workspace = Workspace::new(store.clone(), config.workspace);
        let tokens = Arc::new(TokenService::new(store.clone(), config.tokens, config.oidc).await?);
        let gate = Gate::new(workspace.clone(), policy);
        let pki = Pki::load_or_create(raw_store.as_ref()).await?;
        let materialize = match (&realize, &config.models) {
            (Some(realize), Some(models)) => Some(MaterializeService::new(
                raw_store.clone(),
                realize.clone(),
                models.clone(),
                workspace.clone(),
                Arc::new(MtlsConnector::new(pki.clone())),
                MaterializeConfig {
                    ssh_ca_public_key: credentials.public_key_openssh()?,
                    ingress: config.ingress.clone(),
                    controller: Default::default(),
                },
            )),
            _ => None,
        };
        // XDC records are not cached: the controller and the jump host read them straight.
        let xdc = XdcService::new(raw_store.clone(), workspace.clone(), credentials.clone(), config.xdc);
        let services = Services {
            workspace,
            tokens,
            gate,
            models: config.models,
            realize,
            credentials,
            materialize,
            xdc,
        };
        Ok(Portal { services, store, git_root: config.git_root, pki })
    }

    /// The workspace service (for bootstrapping the administrator).
    pub fn workspace(&self) -> &Workspace {
        &self.services.workspace
    }

    /// The realization service (facilities, pools, realizations), if models are enabled.
    pub fn realize(&self) -> Option<&RealizeService> {
        self.services.realize.as_ref()
    }

    /// The materialization service, if models are enabled (its controller is the caller's to run).
    pub fn materialize(&self) -> Option<&MaterializeService> {
        self.services.materialize.as_ref()
    }

    /// The portal's X.509 authority (facility certificates for mutual TLS).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The SSH certificate authority.
    pub fn credentials(&self) -> &SshCa {
        &self.services.credentials
    }

    /// The XDC service (its controller is the caller's to run).
    pub fn xdc(&self) -> &XdcService {
        &self.services.xdc
    }

    /// The policy gate (the jump host and the web proxy authorize through it too).
    pub fn gate(&self) -> &Gate {
        &self.services.gate
    }

    /// What the SSH jump host and the XDC web proxy ask the portal.
    pub fn xdc_access(&self) -> crate::xdc_access::XdcAccess {
        let s = &self.services;
        crate::xdc_access::XdcAccess::new(
            s.workspace.clone(),
            s.gate.clone(),
            s.xdc.clone(),
            s.tokens.clone(),
        )
    }

    /// The token service.
    pub fn tokens(&self) -> &Arc<TokenService> {
        &self.services.tokens
    }

    /// Every gRPC service and HTTP endpoint, behind the authorization layer.
    pub fn router(&self) -> Router {
        let s = &self.services;
        let grpc =
            tonic::service::Routes::new(pb::identity_server::IdentityServer::new(IdentityApi(s.clone())))
                .add_service(pb::workspace_server::WorkspaceServer::new(WorkspaceApi(s.clone())))
                .add_service(pb::alloc_server::AllocServer::new(AllocApi(s.clone())))
                .add_service(pb::artifact_server::ArtifactServer::new(Unbuilt))
                .add_service(pb::commission_server::CommissionServer::new(CommissionApi(s.clone())))
                .add_service(pb::communications_server::CommunicationsServer::new(Unbuilt))
                .add_service(pb::cred_server::CredServer::new(CredApi(s.clone())))
                .add_service(pb::deploy_server::DeployServer::new(Unbuilt))
                .add_service(pb::key_value_server::KeyValueServer::new(Unbuilt))
                .add_service(pb::materialize_server::MaterializeServer::new(MaterializeApi(s.clone())))
                .add_service(pb::mergefs_server::MergefsServer::new(Unbuilt))
                .add_service(pb::model_server::ModelServer::new(ModelApi(s.clone())))
                .add_service(pb::realize_server::RealizeServer::new(RealizeApi(s.clone())))
                .add_service(pb::wireguard_server::WireguardServer::new(Unbuilt))
                .add_service(pb::xdc_server::XdcServer::new(XdcApi(s.clone())));
        let authorizer = Arc::new(Authorizer::new(s.tokens.clone(), s.workspace.clone(), s.gate.clone()));
        grpc.into_axum_router()
            .merge(crate::http::router(s.tokens.clone(), self.store.clone()))
            .merge(crate::git::router(crate::git::GitState {
                root: self.git_root.clone(),
                authorizer: authorizer.clone(),
                gate: s.gate.clone(),
                models: s.models.clone(),
            }))
            // Outermost: every request (gRPC and HTTP) meets authentication and the policy
            // before routing; non-gRPC requests pass through untouched.
            .layer(axum::middleware::from_fn_with_state(authorizer, authorize))
    }
}

/// Serves `router` on `listener` (HTTP/1.1 and HTTP/2 cleartext) until `cancel` fires, then
/// lets open requests finish.
pub async fn serve(listener: TcpListener, router: Router, cancel: CancellationToken) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small request/response exchanges: without TCP_NODELAY, Nagle's algorithm and delayed
    // ACKs add 40 ms stalls.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(cancel.cancelled_owned()).await
}
