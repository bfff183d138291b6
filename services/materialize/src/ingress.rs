//! Ingress routes: ways in from outside to a port of an experiment node, through the portal's
//! ingress gateway. http and https routes share the gateway's HTTPS port and are told apart by
//! path; tcp and udp routes each get a gateway port of their own, claimed by a store key so no
//! two routes ever share one. The gateway itself reads these records.

use std::collections::HashSet;

use rand::Rng;
use serde::{Deserialize, Serialize};
use trellis_store::{Compare, Op, Txn};
use trellis_types::Error;

use crate::keys;
use crate::lifecycle::mzid;
use crate::service::MaterializeService;
use crate::stored::{load, load_all, now_unix, put, retrying, store_error};
use crate::types::{MaterializationRecord, Phase};

/// Merge's `xir.Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngressProtocol {
    Http,
    Https,
    Tcp,
    Udp,
}

impl IngressProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            IngressProtocol::Http => "http",
            IngressProtocol::Https => "https",
            IngressProtocol::Tcp => "tcp",
            IngressProtocol::Udp => "udp",
        }
    }

    /// Whether the route gets a gateway port of its own.
    fn needs_port(self) -> bool {
        matches!(self, IngressProtocol::Tcp | IngressProtocol::Udp)
    }
}

/// One route, in the shape of Merge's `Ingress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRoute {
    pub mzid: String,
    pub protocol: IngressProtocol,
    /// The experiment node and port reached.
    pub node: String,
    pub port: u32,
    /// The node's infranet address (where the gateway forwards to).
    pub node_addr: String,
    /// Where users connect: the gateway host and port, and the whole address.
    pub gateway: String,
    pub gateway_port: u32,
    pub url: String,
    pub creator: String,
    /// Seconds since the epoch.
    pub created: i64,
}

impl IngressRoute {
    fn key(&self) -> String {
        keys::ingress_route(&self.mzid, &self.node, self.protocol.as_str(), self.port)
    }

    /// The key claiming its gateway port, for protocols that get one.
    pub fn gateway_port_key(&self) -> Option<String> {
        self.protocol.needs_port().then(|| keys::gateway_port(self.protocol.as_str(), self.gateway_port))
    }
}

fn validate_port(port: u32) -> Result<(), Error> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(Error::invalid("port", format!("{port} is not a port number (1-65535)")))
    }
}

impl MaterializeService {
    /// Opens a way in to `port` of `node`. `AlreadyExists` if that route exists,
    /// `ResourceExhausted` if no gateway port is free.
    #[allow(clippy::too_many_arguments)]
    pub async fn new_ingress(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        protocol: IngressProtocol,
        node: &str,
        port: u32,
        creator: &str,
    ) -> Result<IngressRoute, Error> {
        validate_port(port)?;
        let id = mzid(project, experiment, realization);
        let record_key = keys::materialization(project, experiment, realization);
        let route_key = keys::ingress_route(&id, node, protocol.as_str(), port);
        let store = self.store.as_ref();
        let cfg = &self.config.ingress;
        retrying(&format!("adding an ingress to {id}"), || async {
            let Some(record) = load::<MaterializationRecord>(store, &record_key).await? else {
                return Err(Error::not_found("materialization", &id));
            };
            if record.value.phase == Phase::Dematerializing {
                return Err(Error::FailedPrecondition(format!("{id} is being dematerialized")));
            }
            let (_, spec) = record.value.node(node).ok_or_else(|| Error::not_found("node", node))?;
            if store.get(&route_key).await.map_err(store_error)?.is_some() {
                return Err(Error::already_exists(
                    "ingress",
                    format!("{}:{port} on {node}", protocol.as_str()),
                ));
            }
            let gateway_port = if protocol.needs_port() {
                self.free_gateway_port(protocol).await?
            } else {
                u32::from(cfg.https_port)
            };
            let url = if protocol.needs_port() {
                format!("{}://{}:{gateway_port}", protocol.as_str(), cfg.gateway)
            } else if cfg.https_port == 443 {
                format!("https://{}/{id}/{node}/{port}/", cfg.gateway)
            } else {
                format!("https://{}:{}/{id}/{node}/{port}/", cfg.gateway, cfg.https_port)
            };
            let route = IngressRoute {
                mzid: id.clone(),
                protocol,
                node: node.to_owned(),
                port,
                node_addr: spec.infranet_addr.clone(),
                gateway: cfg.gateway.clone(),
                gateway_port,
                url,
                creator: creator.to_owned(),
                created: now_unix(),
            };
            let mut txn = Txn {
                compares: vec![
                    Compare::ModRevision { key: route_key.clone(), revision: 0 },
                    // A route is added only while the materialization is active, so teardown
                    // sees every route it must remove.
                    Compare::ModRevision { key: record_key.clone(), revision: record.revision },
                ],
                success: vec![put(&route_key, &route)?],
            };
            if let Some(port_key) = route.gateway_port_key() {
                txn.compares.push(Compare::ModRevision { key: port_key.clone(), revision: 0 });
                txn.success.push(Op::Put {
                    key: port_key,
                    value: route_key.clone().into_bytes(),
                    lease: None,
                });
            }
            Ok(store.txn(txn).await.map_err(store_error)?.succeeded.then_some(route))
        })
        .await
    }

    /// A gateway port no route of `protocol` holds, from a random place in the range so
    /// concurrent requests rarely collide.
    async fn free_gateway_port(&self, protocol: IngressProtocol) -> Result<u32, Error> {
        let range = &self.config.ingress.ports;
        let prefix = keys::gateway_ports(protocol.as_str());
        let held: HashSet<u32> = self
            .store
            .range(&prefix)
            .await
            .map_err(store_error)?
            .kvs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix)?.parse().ok())
            .collect();
        let (first, last) = (u32::from(*range.start()), u32::from(*range.end()));
        if first > last {
            return Err(Error::ResourceExhausted("no ingress gateway ports are configured".to_owned()));
        }
        let size = last - first + 1;
        let start = rand::rng().random_range(0..size);
        (0..size).map(|i| first + (start + i) % size).find(|p| !held.contains(p)).ok_or_else(|| {
            Error::ResourceExhausted(format!("every ingress gateway {} port is taken", protocol.as_str()))
        })
    }

    pub async fn ingress(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        protocol: IngressProtocol,
        node: &str,
        port: u32,
    ) -> Result<IngressRoute, Error> {
        let id = mzid(project, experiment, realization);
        let key = keys::ingress_route(&id, node, protocol.as_str(), port);
        load(self.store.as_ref(), &key).await?.map(|v| v.value).ok_or_else(|| {
            Error::not_found("ingress", format!("{}:{port} on {node} of {id}", protocol.as_str()))
        })
    }

    /// A materialization's routes, by node, protocol and port.
    pub async fn ingresses(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
    ) -> Result<Vec<IngressRoute>, Error> {
        let id = mzid(project, experiment, realization);
        let routes = load_all(self.store.as_ref(), &keys::ingress_routes(&id)).await?;
        Ok(routes.into_iter().map(|v| v.value).collect())
    }

    pub async fn delete_ingress(
        &self,
        project: &str,
        experiment: &str,
        realization: &str,
        protocol: IngressProtocol,
        node: &str,
        port: u32,
    ) -> Result<(), Error> {
        let id = mzid(project, experiment, realization);
        let key = keys::ingress_route(&id, node, protocol.as_str(), port);
        let store = self.store.as_ref();
        retrying(&format!("deleting an ingress of {id}"), || async {
            let Some(route) = load::<IngressRoute>(store, &key).await? else {
                return Err(Error::not_found(
                    "ingress",
                    format!("{}:{port} on {node} of {id}", protocol.as_str()),
                ));
            };
            let mut txn = Txn {
                compares: vec![Compare::ModRevision { key: route.value.key(), revision: route.revision }],
                success: vec![Op::Delete { key: key.clone() }],
            };
            if let Some(port_key) = route.value.gateway_port_key() {
                txn.success.push(Op::Delete { key: port_key });
            }
            Ok(store.txn(txn).await.map_err(store_error)?.succeeded.then_some(()))
        })
        .await
    }
}
