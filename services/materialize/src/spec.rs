//! Building the wanted state of a materialization from a realization and the model it realized.
//!
//! Pure: the service reads the realization, the revision's network and the project's users,
//! and this module turns them into one spec per facility.
//!
//! Rules:
//! - Interfaces: a node's link endpoints sorted by socket index are eth1, eth2, ... (eth0 is the
//!   infranet).
//! - Addresses: a socket's addresses from the model when it gives any (a bare address gets
//!   /24); otherwise, when the model asks for IPv4 addressing, link `i` gets the `i`-th /24 of
//!   10.128.0.0/9 that does not overlap the realization's infranet, and its endpoints .1, .2, ...
//!   in endpoint order. Each materialization is its own network, so the pool is per
//!   materialization.
//! - Emulation from the XIR link: capacity when bounded above (`==`, `<=`, `<`), latency and
//!   loss when bounded below (`==`, `>=`, `>`): those are what a shaper can enforce. XIR
//!   latency is in nanoseconds.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use trellis_api::xir;
use trellis_embed::NodeKind;
use trellis_realize::RealizationRecord;
use trellis_types::Error;

use crate::types::{
    EndpointSpec, FacilitySpec, InterfaceSpec, LinkSpec, MaterializationRecord, NodeSpec, Phase, UserSpec,
};

/// First address of the automatic addressing pool, 10.128.0.0/9.
const POOL_BASE: u32 = 0x0a80_0000;
/// /24 blocks in the pool.
const POOL_BLOCKS: u32 = 1 << 15;
/// Endpoints one automatically addressed link (a /24) can number.
const MAX_AUTO_ENDPOINTS: usize = 254;

/// Everything besides the realization and the model that goes into a materialization.
#[derive(Debug, Clone)]
pub struct Extras {
    pub users: Vec<UserSpec>,
    pub ssh_ca_public_key: String,
    pub creator: String,
    pub created: i64,
}

fn is(op: i32, ops: &[xir::Operator]) -> bool {
    ops.iter().any(|o| *o as i32 == op)
}

fn model_asks_ipv4(network: &xir::Network) -> bool {
    let addressing = network.parameters.as_ref().and_then(|p| p.addressing.as_ref());
    addressing.is_some_and(|c| {
        c.value == xir::Addressing::IPv4Addressing as i32 && c.op != xir::Operator::Ne as i32
    })
}

fn model_asks_static_routing(network: &xir::Network) -> bool {
    let routing = network.parameters.as_ref().and_then(|p| p.routing.as_ref());
    routing.is_some_and(|c| c.value == xir::Routing::StaticRouting as i32 && c.op != xir::Operator::Ne as i32)
}

/// `(first address, prefix length)` of a CIDR like `10.4.0.0/22`.
fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (address, length) = cidr.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let length: u32 = length.parse().ok().filter(|l| *l <= 32)?;
    let mask = if length == 0 { 0 } else { u32::MAX << (32 - length) };
    Some((u32::from(address) & mask, length))
}

/// The /24 blocks of the pool, in order, that do not overlap `avoid`.
fn pool_blocks(avoid: Option<(u32, u32)>) -> impl Iterator<Item = u32> {
    (0..POOL_BLOCKS).map(|i| POOL_BASE + (i << 8)).filter(move |block| match avoid {
        Some((base, length)) => {
            let shorter = length.min(24);
            let mask = if shorter == 0 { 0 } else { u32::MAX << (32 - shorter) };
            block & mask != base & mask
        }
        None => true,
    })
}

fn emulation(link: &xir::Link) -> Result<(u64, u64, f64), Error> {
    use xir::Operator::{Eq, Ge, Gt, Le, Lt};
    let capacity = link.capacity.as_ref().filter(|c| is(c.op, &[Eq, Le, Lt])).map_or(0, |c| c.value);
    let latency_us =
        link.latency.as_ref().filter(|c| is(c.op, &[Eq, Ge, Gt])).map_or(0, |c| c.value.div_ceil(1000));
    let loss = link.loss.as_ref().filter(|c| is(c.op, &[Eq, Ge, Gt])).map_or(0.0, |c| f64::from(c.value));
    if !(0.0..=1.0).contains(&loss) {
        return Err(Error::FailedPrecondition(format!(
            "link {} asks for a loss of {loss}; loss is a fraction between 0 and 1",
            link.id
        )));
    }
    Ok((capacity, latency_us, loss))
}

/// The addresses the model gives a node's socket, each with a prefix length.
fn model_addresses(node: Option<&xir::Node>, socket: u32) -> Vec<String> {
    let Some(node) = node else { return vec![] };
    let given = node.sockets.iter().filter(|s| u32::try_from(s.index) == Ok(socket)).flat_map(|s| &s.addrs);
    given.map(|a| if a.contains('/') { a.clone() } else { format!("{a}/24") }).collect()
}

/// Builds the wanted state of materializing `realization`, whose model is `network`.
pub fn build(
    realization: &RealizationRecord,
    network: &xir::Network,
    extras: Extras,
) -> Result<MaterializationRecord, Error> {
    let embedding = &realization.embedding;
    let mzid = realization.mzid();
    if realization.node_hosts.len() != embedding.nodes.len()
        || realization.infranet_addrs.len() != embedding.nodes.len()
    {
        return Err(Error::Internal(format!(
            "realization {mzid} is inconsistent: hosts or addresses missing"
        )));
    }
    let model_nodes: HashMap<&str, &xir::Node> = network.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let model_links: HashMap<&str, &xir::Link> = network.links.iter().map(|l| (l.id.as_str(), l)).collect();
    let ipv4 = model_asks_ipv4(network);

    // Interface names: each node's endpoints in socket order.
    let mut sockets: HashMap<&str, Vec<(u32, usize, usize)>> = HashMap::new();
    for (l, link) in embedding.links.iter().enumerate() {
        for (e, endpoint) in link.endpoints.iter().enumerate() {
            sockets.entry(endpoint.node.as_str()).or_default().push((endpoint.socket, l, e));
        }
    }
    let mut interface_names: HashMap<(usize, usize), String> = HashMap::new();
    for used in sockets.values_mut() {
        used.sort();
        for (rank, (_, l, e)) in used.iter().enumerate() {
            interface_names.insert((*l, *e), format!("eth{}", rank + 1));
        }
    }

    // Addresses per endpoint.
    let mut blocks = pool_blocks(parse_cidr(&realization.infranet_subnet));
    let mut addresses: HashMap<(usize, usize), Vec<String>> = HashMap::new();
    for (l, link) in embedding.links.iter().enumerate() {
        // Every link takes its block, used or not, so a link's subnet depends only on its index.
        let block = if ipv4 { blocks.next() } else { None };
        if ipv4 && link.endpoints.len() > MAX_AUTO_ENDPOINTS {
            return Err(Error::FailedPrecondition(format!(
                "link {} has {} endpoints; automatic addressing numbers at most {MAX_AUTO_ENDPOINTS} per link",
                link.link,
                link.endpoints.len()
            )));
        }
        for (e, endpoint) in link.endpoints.iter().enumerate() {
            let mut addrs =
                model_addresses(model_nodes.get(endpoint.node.as_str()).copied(), endpoint.socket);
            if addrs.is_empty() && ipv4 {
                let block = block.ok_or_else(|| {
                    Error::FailedPrecondition(format!(
                        "{mzid} has more links than automatic addressing has subnets"
                    ))
                })?;
                addrs.push(format!("{}/24", Ipv4Addr::from(block + e as u32 + 1)));
            }
            addresses.insert((l, e), addrs);
        }
    }

    let mut facilities: BTreeMap<&str, FacilitySpec> = BTreeMap::new();
    let mut node_facility: HashMap<&str, &str> = HashMap::new();
    for (i, placement) in embedding.nodes.iter().enumerate() {
        let (facility, host) = &realization.node_hosts[i];
        node_facility.insert(placement.node.as_str(), facility.as_str());
        let model = model_nodes.get(placement.node.as_str()).copied();
        let interfaces: Vec<InterfaceSpec> = sockets
            .get(placement.node.as_str())
            .into_iter()
            .flatten()
            .map(|&(socket, l, e)| InterfaceSpec {
                name: interface_names[&(l, e)].clone(),
                link: embedding.links[l].link.clone(),
                socket,
                addrs: addresses.remove(&(l, e)).unwrap_or_default(),
            })
            .collect();
        let image = model
            .and_then(|n| n.image.as_ref())
            .filter(|c| c.op != xir::Operator::Ne as i32)
            .map(|c| c.value.clone())
            .unwrap_or_default();
        let node = NodeSpec {
            name: placement.node.clone(),
            host: host.clone(),
            metal: placement.kind == NodeKind::BareMetal,
            infranet_addr: realization.infranet_addrs[i].clone(),
            image,
            cores: placement.cores,
            memory_bytes: placement.memory,
            disk_bytes: placement.disk,
            interfaces,
            persistent: false,
        };
        facility_entry(&mut facilities, facility).nodes.push(node);
    }

    for (l, placement) in embedding.links.iter().enumerate() {
        let model = model_links.get(placement.link.as_str()).ok_or_else(|| {
            Error::Internal(format!("{mzid} realizes link {} which its model does not have", placement.link))
        })?;
        let (capacity_bps, latency_us, loss) = emulation(model)?;
        let endpoints = placement
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, endpoint)| EndpointSpec {
                node: endpoint.node.clone(),
                interface: interface_names[&(l, e)].clone(),
            })
            .collect();
        let facility = match placement.facility.as_str() {
            "" => placement.endpoints.first().and_then(|e| node_facility.get(e.node.as_str())).copied(),
            named => Some(named),
        };
        let facility = facility
            .ok_or_else(|| Error::Internal(format!("{mzid}: link {} has no facility", placement.link)))?;
        facility_entry(&mut facilities, facility).links.push(LinkSpec {
            name: placement.link.clone(),
            endpoints,
            capacity_bps,
            latency_us,
            loss,
            vlan: placement.vlan.unwrap_or(0),
        });
    }

    Ok(MaterializationRecord {
        project: realization.project.clone(),
        experiment: realization.experiment.clone(),
        realization: realization.name.clone(),
        revision: realization.revision.clone(),
        creator: extras.creator,
        created: extras.created,
        phase: Phase::Active,
        generation: 1,
        infranet_subnet: realization.infranet_subnet.clone(),
        static_routing: model_asks_static_routing(network),
        ipv4_addressing: ipv4,
        users: extras.users,
        ssh_ca_public_key: extras.ssh_ca_public_key,
        facilities: facilities.into_values().collect(),
    })
}

fn facility_entry<'m, 'k>(
    facilities: &'m mut BTreeMap<&'k str, FacilitySpec>,
    name: &'k str,
) -> &'m mut FacilitySpec {
    facilities.entry(name).or_insert_with(|| FacilitySpec {
        facility: name.to_owned(),
        nodes: vec![],
        links: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(block: u32) -> String {
        Ipv4Addr::from(block).to_string()
    }

    #[test]
    fn the_pool_skips_blocks_of_the_infranet() {
        let first: Vec<String> = pool_blocks(None).take(2).map(addr).collect();
        assert_eq!(first, ["10.128.0.0", "10.128.1.0"]);
        let avoid = parse_cidr("10.128.0.0/23");
        let first: Vec<String> = pool_blocks(avoid).take(2).map(addr).collect();
        assert_eq!(first, ["10.128.2.0", "10.128.3.0"]);
        // An infranet outside the pool removes nothing.
        assert_eq!(pool_blocks(parse_cidr("10.4.0.0/24")).count(), POOL_BLOCKS as usize);
        assert_eq!(pool_blocks(parse_cidr("10.130.7.0/24")).count(), POOL_BLOCKS as usize - 1);
        assert_eq!(pool_blocks(parse_cidr("10.0.0.0/8")).count(), 0);
    }

    #[test]
    fn cidrs_parse_to_their_network() {
        assert_eq!(parse_cidr("10.4.1.7/22"), Some((u32::from(Ipv4Addr::new(10, 4, 0, 0)), 22)));
        assert_eq!(parse_cidr("10.4.0.0/33"), None);
        assert_eq!(parse_cidr("10.4.0.0"), None);
        assert_eq!(parse_cidr("x/8"), None);
    }

    #[test]
    fn emulation_takes_only_enforceable_bounds() {
        let c64 = |op: xir::Operator, value| Some(xir::Uint64Constraint { op: op as i32, value });
        let f = |op: xir::Operator, value| Some(xir::FloatConstraint { op: op as i32, value });
        let link = xir::Link {
            id: "l".into(),
            capacity: c64(xir::Operator::Le, 100_000_000),
            latency: c64(xir::Operator::Eq, 10_000_000),
            loss: f(xir::Operator::Ge, 0.25),
            ..Default::default()
        };
        assert_eq!(emulation(&link).unwrap(), (100_000_000, 10_000, 0.25));
        let floor = xir::Link {
            id: "l".into(),
            capacity: c64(xir::Operator::Ge, 1_000_000_000),
            latency: c64(xir::Operator::Lt, 1_500),
            loss: f(xir::Operator::Le, 0.5),
            ..Default::default()
        };
        assert_eq!(emulation(&floor).unwrap(), (0, 0, 0.0));
        let bad = xir::Link { id: "l".into(), loss: f(xir::Operator::Eq, 1.5), ..Default::default() };
        assert!(matches!(emulation(&bad), Err(Error::FailedPrecondition(_))));
    }
}
