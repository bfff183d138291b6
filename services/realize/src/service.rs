//! The service handle; its operations live in the topic modules (`commission`, `pools`,
//! `realize`, `lifecycle`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use trellis_model::ModelService;
use trellis_store::Store;

use crate::snapshot::TestbedCache;

/// Facilities, pools and realizations over the state store.
///
/// Deployment note for etcd: one realization commits every resource it takes in a single
/// transaction (one compare and one write per host, port, trunk and VLAN, plus a few more), and
/// etcd refuses transactions with more than `--max-txn-ops` operations (default 128) or larger
/// than `--max-request-bytes` (default 1.5 MiB). Run etcd with `--max-txn-ops 10000` and
/// `--max-request-bytes 33554432` (32 MiB) or realizations of more than a few dozen nodes fail.
#[derive(Clone)]
pub struct RealizeService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) models: ModelService,
    /// The resource graph of the commissioned facilities, rebuilt only when one changes.
    pub(crate) testbed: TestbedCache,
    /// Realization commits that lost a race (see [`RealizeService::commit_conflicts`]).
    pub(crate) conflicts: Arc<AtomicU64>,
}

impl RealizeService {
    pub fn new(store: Arc<dyn Store>, models: ModelService) -> Self {
        Self { store, models, testbed: TestbedCache::default(), conflicts: Arc::default() }
    }
}
