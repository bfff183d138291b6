//! The service handle and its configuration.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use trellis_model::ModelService;
use trellis_realize::RealizeService;
use trellis_store::Store;
use trellis_workspace::Workspace;

use crate::connector::FacilityConnector;

/// Pacing of the controller. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// TTL of the lease a controller holds its locks with: how long a dead controller's
    /// materializations wait before another replica takes them over.
    pub lease_ttl: Duration,
    /// How often every materialization is listed again (catches anything a watch missed and
    /// locks freed by dead controllers).
    pub resync: Duration,
    /// How often a materialization still coming up or going down is polled.
    pub poll_busy: Duration,
    /// How often a settled (ready or failed) materialization is polled.
    pub poll_settled: Duration,
    /// Retry delays after failed facility calls grow from `retry_min` to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Longest one facility call may take.
    pub call_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            lease_ttl: Duration::from_secs(15),
            resync: Duration::from_secs(30),
            poll_busy: Duration::from_secs(2),
            poll_settled: Duration::from_secs(30),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// Where ingress routes are reached from outside.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// The gateway's host name, as users reach it.
    pub gateway: String,
    /// The gateway's HTTPS port, which serves every http and https route by path.
    pub https_port: u16,
    /// Gateway ports handed to tcp and udp routes (one each, per protocol).
    pub ports: RangeInclusive<u16>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig { gateway: "localhost".to_owned(), https_port: 443, ports: 30000..=39999 }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MaterializeConfig {
    /// OpenSSH public key of the portal's SSH CA, sent to nodes (empty until the portal has one).
    pub ssh_ca_public_key: String,
    pub ingress: IngressConfig,
    pub controller: ControllerConfig,
}

/// Materializations over the state store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct MaterializeService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) realize: RealizeService,
    pub(crate) models: ModelService,
    pub(crate) workspace: Workspace,
    pub(crate) connector: Arc<dyn FacilityConnector>,
    pub(crate) config: Arc<MaterializeConfig>,
}

impl MaterializeService {
    pub fn new(
        store: Arc<dyn Store>,
        realize: RealizeService,
        models: ModelService,
        workspace: Workspace,
        connector: Arc<dyn FacilityConnector>,
        config: MaterializeConfig,
    ) -> Self {
        MaterializeService { store, realize, models, workspace, connector, config: Arc::new(config) }
    }

    pub fn config(&self) -> &MaterializeConfig {
        &self.config
    }
}
