//! `portal.v1.Alloc`: resource pools, and the allocation table for operators.

use std::collections::{BTreeMap, HashMap};

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::alloc_server::Alloc;
use trellis_api::xir;
use trellis_embed::{NodeKind, NodePlacement, ResourceKey};
use trellis_realize::{Pool, PoolResources, RealizationRecord, RealizeService, keys};
use trellis_types::Error;

use super::{Reply, Services, ok};
use crate::authz::caller;
use crate::convert::realize::pool_to;
use crate::status::status;

/// One experiment node on a host.
pub(crate) struct NodeOnHost {
    pub mzid: String,
    pub placement: NodePlacement,
}

/// The allocation table in Merge's terms: one entry per node on each host, one per link on
/// each switch trunk. (Our table keeps one entry per realization and resource, with usage
/// summed; the realization records say which node is which.)
pub(crate) struct Table {
    pub nodes: BTreeMap<(String, String), Vec<NodeOnHost>>,
    pub cables: Vec<xir::CableAllocation>,
}

impl Table {
    pub(crate) async fn read(service: &RealizeService) -> Result<Table, Error> {
        let records: HashMap<String, RealizationRecord> =
            service.realizations().await?.into_iter().map(|r| (r.mzid(), r)).collect();
        let mut table = Table { nodes: BTreeMap::new(), cables: Vec::new() };
        for (key, allocations) in service.allocation_table().await? {
            match keys::parse_resource(&key) {
                Some(ResourceKey::Host { facility, host }) => {
                    let list = table.nodes.entry((facility.clone(), host.clone())).or_default();
                    for a in &allocations {
                        let Some(r) = records.get(&a.mzid) else { continue };
                        let here = r.embedding.nodes.iter().zip(&r.node_hosts);
                        for (placement, _) in here.filter(|(_, (f, h))| *f == facility && *h == host) {
                            list.push(NodeOnHost { mzid: a.mzid.clone(), placement: placement.clone() });
                        }
                    }
                }
                Some(ResourceKey::Trunk { facility, trunk }) => {
                    for a in &allocations {
                        let Some(r) = records.get(&a.mzid) else { continue };
                        for link in a.element.split(',') {
                            let capacity = r
                                .embedding
                                .links
                                .iter()
                                .find(|l| l.link == link)
                                .map(|l| l.capacity)
                                .unwrap_or(0);
                            table.cables.push(xir::CableAllocation {
                                cable: trunk.clone(),
                                facility: facility.clone(),
                                mzid: a.mzid.clone(),
                                link: link.to_owned(),
                                capacity,
                                revision: 0,
                            });
                        }
                    }
                }
                // Host ports and VLAN ids have no place in Merge's table; they show in each
                // realization's link segments.
                _ => {}
            }
        }
        Ok(table)
    }
}

/// The Alloc service.
pub struct AllocApi(pub Services);

fn add_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

fn remove_present(list: &mut Vec<String>, item: &str, what: &str, pool: &str) -> Result<(), Error> {
    let before = list.len();
    list.retain(|x| x != item);
    if list.len() == before {
        return Err(Error::not_found("pool member", format!("{what} {item} is not in pool {pool}")));
    }
    Ok(())
}

impl AllocApi {
    async fn update(
        &self,
        name: &str,
        change: impl Fn(&mut Pool) -> Result<(), Error> + Send + Sync,
    ) -> Result<Pool, tonic::Status> {
        let service = self.0.realize().map_err(status)?;
        service.update_pool(name, change).await.map_err(status)
    }
}

#[tonic::async_trait]
impl Alloc for AllocApi {
    /// Allocations are made by realizing experiments, which checks every constraint and
    /// commits atomically; a hand-written table would bypass both.
    async fn alloc(&self, _request: Request<pb::AllocationRequest>) -> Reply<pb::AllocationResponse> {
        Err(status(Error::FailedPrecondition(
            "allocations are made by realizing an experiment; hand-written allocation tables are not accepted"
                .to_owned(),
        )))
    }

    async fn free(&self, request: Request<pb::FreeRequest>) -> Reply<pb::FreeResponse> {
        let service = self.0.realize().map_err(status)?;
        let rzid = &request.get_ref().rzid;
        let parts: Vec<&str> = rzid.split('.').collect();
        let [realization, experiment, project] = parts.as_slice() else {
            return Err(status(Error::invalid("rzid", "expected <realization>.<experiment>.<project>")));
        };
        service.relinquish(project, experiment, realization).await.map_err(status)?;
        ok(pb::FreeResponse {})
    }

    async fn fetch(
        &self,
        _request: Request<pb::FetchAllocationTableRequest>,
    ) -> Reply<pb::FetchAllocationTableResponse> {
        let service = self.0.realize().map_err(status)?;
        let table = Table::read(service).await.map_err(status)?;
        let mut resource: HashMap<String, pb::ResourceAllocationList> = HashMap::new();
        for ((facility, host), nodes) in table.nodes {
            let list = resource.entry(host.clone()).or_default();
            for n in nodes {
                list.value.push(xir::ResourceAllocation {
                    resource: host.clone(),
                    facility: facility.clone(),
                    mzid: n.mzid,
                    node: n.placement.node,
                    r#virtual: n.placement.kind == NodeKind::VirtualMachine,
                    ..Default::default()
                });
            }
        }
        let mut cable: HashMap<String, pb::CableAllocationList> = HashMap::new();
        for c in table.cables {
            cable.entry(c.cable.clone()).or_default().value.push(c);
        }
        ok(pb::FetchAllocationTableResponse { table: Some(pb::AllocationTable { resource, cable }) })
    }

    async fn get_pool(&self, request: Request<pb::GetPoolRequest>) -> Reply<pb::GetPoolResponse> {
        let service = self.0.realize().map_err(status)?;
        let pool = service.pool(&request.get_ref().name).await.map_err(status)?;
        ok(pb::GetPoolResponse { pool: Some(pool_to(&pool)) })
    }

    async fn get_pools(&self, _request: Request<pb::GetPoolsRequest>) -> Reply<pb::GetPoolsResponse> {
        let service = self.0.realize().map_err(status)?;
        let pools = service.pools().await.map_err(status)?;
        ok(pb::GetPoolsResponse { pools: pools.iter().map(pool_to).collect() })
    }

    async fn create_pool(&self, request: Request<pb::CreatePoolRequest>) -> Reply<pb::CreatePoolResponse> {
        let service = self.0.realize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let pool = Pool {
            name: r.name,
            description: r.description,
            creator: by,
            projects: r.projects,
            organizations: r.organizations,
            facilities: r.facilities.into_iter().map(|f| (f, PoolResources::default())).collect(),
            priority: r.priority,
            ver: 0,
        };
        service.create_pool(pool).await.map_err(status)?;
        ok(pb::CreatePoolResponse {})
    }

    async fn delete_pool(&self, request: Request<pb::DeletePoolRequest>) -> Reply<pb::DeletePoolResponse> {
        let service = self.0.realize().map_err(status)?;
        service.delete_pool(&request.get_ref().name).await.map_err(status)?;
        ok(pb::DeletePoolResponse {})
    }

    async fn add_project(
        &self,
        request: Request<pb::AddProjectToPoolRequest>,
    ) -> Reply<pb::AddProjectToPoolResponse> {
        let r = request.into_inner();
        self.0.workspace.get_project(&r.project).await.map_err(status)?;
        self.update(&r.name, |p| {
            add_unique(&mut p.projects, &r.project);
            Ok(())
        })
        .await?;
        ok(pb::AddProjectToPoolResponse {})
    }

    async fn remove_project(
        &self,
        request: Request<pb::RemoveProjectFromPoolRequest>,
    ) -> Reply<pb::RemoveProjectFromPoolResponse> {
        let r = request.into_inner();
        self.update(&r.name, |p| remove_present(&mut p.projects, &r.project, "project", &r.name)).await?;
        ok(pb::RemoveProjectFromPoolResponse {})
    }

    async fn add_organization(
        &self,
        request: Request<pb::AddOrganizationToPoolRequest>,
    ) -> Reply<pb::AddOrganizationToPoolResponse> {
        let r = request.into_inner();
        self.0.workspace.get_organization(&r.organization).await.map_err(status)?;
        self.update(&r.name, |p| {
            add_unique(&mut p.organizations, &r.organization);
            Ok(())
        })
        .await?;
        ok(pb::AddOrganizationToPoolResponse {})
    }

    async fn remove_organization(
        &self,
        request: Request<pb::RemoveOrganizationFromPoolRequest>,
    ) -> Reply<pb::RemoveOrganizationFromPoolResponse> {
        let r = request.into_inner();
        self.update(&r.name, |p| {
            remove_present(&mut p.organizations, &r.organization, "organization", &r.name)
        })
        .await?;
        ok(pb::RemoveOrganizationFromPoolResponse {})
    }

    async fn add_facility(
        &self,
        request: Request<pb::AddFacilityToPoolRequest>,
    ) -> Reply<pb::AddFacilityToPoolResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        service.facility(&r.facility).await.map_err(status)?;
        self.update(&r.name, |p| {
            p.facilities.insert(r.facility.clone(), PoolResources { resources: r.resources.clone() });
            Ok(())
        })
        .await?;
        ok(pb::AddFacilityToPoolResponse {})
    }

    async fn remove_facility(
        &self,
        request: Request<pb::RemoveFacilityFromPoolRequest>,
    ) -> Reply<pb::RemoveFacilityFromPoolResponse> {
        let r = request.into_inner();
        self.update(&r.name, |p| match p.facilities.remove(&r.facility) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(
                "pool member",
                format!("facility {} is not in pool {}", r.facility, r.name),
            )),
        })
        .await?;
        ok(pb::RemoveFacilityFromPoolResponse {})
    }

    /// Merge's patch strategies: `replace` sets the list, `expand` adds to it, `subtract`
    /// takes from it, and `remove` drops the facility from the pool.
    async fn update_pool_resources(
        &self,
        request: Request<pb::UpdatePoolResourcesRequest>,
    ) -> Reply<pb::UpdatePoolResourcesResponse> {
        use pb::PatchStrategyStrategy as S;
        let r = request.into_inner();
        let strategy = r.patchstrategy.as_ref().map(|p| p.strategy).unwrap_or(S::Replace as i32);
        let strategy = S::try_from(strategy)
            .map_err(|_| status(Error::invalid("patchstrategy", format!("unknown strategy {strategy}"))))?;
        let pool = self
            .update(&r.pool, |p| {
                let entry = p.facilities.entry(r.facility.clone()).or_default();
                match strategy {
                    S::Replace => entry.resources = r.resources.clone(),
                    S::Expand => r.resources.iter().for_each(|x| add_unique(&mut entry.resources, x)),
                    S::Subtract => entry.resources.retain(|x| !r.resources.contains(x)),
                    S::Remove => {
                        p.facilities.remove(&r.facility);
                    }
                }
                Ok(())
            })
            .await?;
        let resources = pool.facilities.get(&r.facility).map(|f| f.resources.clone()).unwrap_or_default();
        ok(pb::UpdatePoolResourcesResponse { pool: r.pool, facility: r.facility, resources })
    }

    async fn update_pool_priority(
        &self,
        request: Request<pb::UpdatePoolPriorityRequest>,
    ) -> Reply<pb::UpdatePoolPriorityResponse> {
        let r = request.into_inner();
        self.update(&r.pool, |p| {
            p.priority = r.priority;
            Ok(())
        })
        .await?;
        ok(pb::UpdatePoolPriorityResponse {})
    }
}
