//! Resource pools: which projects and organizations may use which facilities' resources.

use std::collections::BTreeMap;

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use crate::cli::{NewPoolArgs, PoolAdd, PoolCommand, PoolPatch, PoolRemove, UpdatePool};
use crate::error::CliError;
use crate::output::{self, pool_json};

/// `trellis new pool`.
pub async fn create(ctx: &Ctx, args: NewPoolArgs) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::CreatePoolRequest {
        name: args.name.clone(),
        description: args.description,
        projects: args.projects,
        facilities: args.facilities,
        organizations: args.organizations,
        priority: args.priority,
    };
    clients.alloc.create_pool(request).await?;
    ctx.done(format!("created pool {}", args.name))
}

/// `facility (n resources), ...`, sorted by facility.
fn facilities_summary(p: &pb::Pool) -> String {
    let facilities: BTreeMap<_, _> = p.facilities.iter().collect();
    facilities
        .into_iter()
        .map(|(f, r)| match r.resources.len() {
            0 => f.clone(),
            n => format!("{f} ({n})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `trellis list pools`.
pub async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mut pools = clients.alloc.get_pools(pb::GetPoolsRequest {}).await?.into_inner().pools;
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    let value = json!({ "pools": pools.iter().map(pool_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = pools
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.description.clone(),
                    p.projects.join(", "),
                    p.organizations.join(", "),
                    facilities_summary(p),
                    p.priority.to_string(),
                ]
            })
            .collect();
        output::table(&["name", "description", "projects", "organizations", "facilities", "priority"], &rows)
    })
}

/// `trellis show pool`.
pub async fn show(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let p = clients.alloc.get_pool(pb::GetPoolRequest { name }).await?.into_inner().pool.unwrap_or_default();
    ctx.emit(json!({ "pool": pool_json(&p) }), || {
        let mut out = output::key_values(&[
            ("name", p.name.clone()),
            ("description", p.description.clone()),
            ("creator", p.creator.clone()),
            ("priority", p.priority.to_string()),
            ("projects", p.projects.join(", ")),
            ("organizations", p.organizations.join(", ")),
        ]);
        if !p.facilities.is_empty() {
            out.push('\n');
            let facilities: BTreeMap<_, _> = p.facilities.iter().collect();
            let rows: Vec<Vec<String>> =
                facilities.into_iter().map(|(f, r)| vec![f.clone(), r.resources.join(", ")]).collect();
            out.push_str(&output::table(&["facility", "resources"], &rows));
        }
        out
    })
}

/// `trellis delete pool`.
pub async fn delete(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    clients.alloc.delete_pool(pb::DeletePoolRequest { name: name.clone() }).await?;
    ctx.done(format!("deleted pool {name}"))
}

/// `trellis pool add|remove ...`.
pub async fn run(ctx: &Ctx, command: PoolCommand) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let alloc = &mut clients.alloc;
    let message = match command {
        PoolCommand::Add(PoolAdd::Project { pool, project }) => {
            alloc
                .add_project(pb::AddProjectToPoolRequest { name: pool.clone(), project: project.clone() })
                .await?;
            format!("added project {project} to pool {pool}")
        }
        PoolCommand::Add(PoolAdd::Organization { pool, organization }) => {
            let request =
                pb::AddOrganizationToPoolRequest { name: pool.clone(), organization: organization.clone() };
            alloc.add_organization(request).await?;
            format!("added organization {organization} to pool {pool}")
        }
        PoolCommand::Add(PoolAdd::Facility { pool, facility, resources }) => {
            let request =
                pb::AddFacilityToPoolRequest { name: pool.clone(), facility: facility.clone(), resources };
            alloc.add_facility(request).await?;
            format!("added facility {facility} to pool {pool}")
        }
        PoolCommand::Remove(PoolRemove::Project { pool, project }) => {
            let request = pb::RemoveProjectFromPoolRequest { name: pool.clone(), project: project.clone() };
            alloc.remove_project(request).await?;
            format!("removed project {project} from pool {pool}")
        }
        PoolCommand::Remove(PoolRemove::Organization { pool, organization }) => {
            let request = pb::RemoveOrganizationFromPoolRequest {
                name: pool.clone(),
                organization: organization.clone(),
            };
            alloc.remove_organization(request).await?;
            format!("removed organization {organization} from pool {pool}")
        }
        PoolCommand::Remove(PoolRemove::Facility { pool, facility }) => {
            let request =
                pb::RemoveFacilityFromPoolRequest { name: pool.clone(), facility: facility.clone() };
            alloc.remove_facility(request).await?;
            format!("removed facility {facility} from pool {pool}")
        }
    };
    ctx.done(message)
}

/// `trellis update pool ...`.
pub async fn update(ctx: &Ctx, command: UpdatePool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    match command {
        UpdatePool::Resources { pool, facility, resources, strategy } => {
            let strategy = match strategy {
                PoolPatch::Replace => pb::PatchStrategyStrategy::Replace,
                PoolPatch::Expand => pb::PatchStrategyStrategy::Expand,
                PoolPatch::Subtract => pb::PatchStrategyStrategy::Subtract,
            };
            let request = pb::UpdatePoolResourcesRequest {
                pool,
                facility,
                resources,
                patchstrategy: Some(pb::PatchStrategy { strategy: strategy as i32 }),
            };
            let r = clients.alloc.update_pool_resources(request).await?.into_inner();
            ctx.emit(json!({ "pool": r.pool, "facility": r.facility, "resources": r.resources }), || {
                format!(
                    "pool {} now holds {} of {}: {}\n",
                    r.pool,
                    r.resources.len(),
                    r.facility,
                    r.resources.join(", ")
                )
            })
        }
        UpdatePool::Priority { pool, priority } => {
            let request = pb::UpdatePoolPriorityRequest { pool: pool.clone(), priority };
            clients.alloc.update_pool_priority(request).await?;
            ctx.done(format!("pool {pool} now has priority {priority}"))
        }
    }
}
