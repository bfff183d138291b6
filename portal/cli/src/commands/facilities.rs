//! Facilities (commissioning, listing, resources in and out of service) and what is allocated
//! on their resources.

use std::path::Path;

use prost::Message;
use serde_json::json;
use trellis_api::portal::v1 as pb;
use trellis_api::xir;

use super::Ctx;
use crate::cli::{NewFacilityArgs, ResourcesTarget};
use crate::error::CliError;
use crate::output::{self, ResourceSummary, access_mode_name, facility_json, facility_model_json};

/// Reads a facility model: an XIR `Facility` in binary protobuf encoding.
fn read_model(path: &Path) -> Result<xir::Facility, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::ReadFile { path: path.to_owned(), source })?;
    // Some JSON happens to decode as protobuf garbage; say plainly that JSON is not read.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Err(CliError::JsonFacilityModel { path: path.to_owned() });
    }
    xir::Facility::decode(bytes.as_slice())
        .map_err(|source| CliError::BadFacilityModel { path: path.to_owned(), source })
}

/// `trellis new facility`.
pub async fn create(ctx: &Ctx, args: NewFacilityArgs) -> Result<(), CliError> {
    let model = read_model(&args.model)?;
    let resources = model.resources.len();
    let mut clients = ctx.connect().await?;
    let facility = pb::Facility {
        name: args.name.clone(),
        address: args.address,
        description: args.description,
        ..Default::default()
    };
    let request = pb::RegisterFacilityRequest { facility: Some(facility), model: Some(model) };
    clients.commission.register_facility(request).await?;
    ctx.done(format!("registered facility {} ({resources} resource(s))", args.name))
}

/// `trellis list facilities`.
pub async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mut facilities =
        clients.commission.get_facilities(pb::GetFacilitiesRequest {}).await?.into_inner().facilities;
    facilities.sort_by(|a, b| a.name.cmp(&b.name));
    let value = json!({ "facilities": facilities.iter().map(facility_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = facilities
            .iter()
            .map(|f| vec![f.name.clone(), f.address.clone(), f.description.clone()])
            .collect();
        output::table(&["name", "address", "description"], &rows)
    })
}

/// `trellis show facility`.
pub async fn show(ctx: &Ctx, name: String, with_model: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetFacilityRequest { name, with_model, with_images: false };
    let response = clients.commission.get_facility(request).await?.into_inner();
    let f = response.facility.unwrap_or_default();
    let value = json!({
        "facility": facility_json(&f),
        "model": response.model.as_ref().map(facility_model_json),
    });
    ctx.emit(value, || {
        let mut out = output::key_values(&[
            ("name", f.name.clone()),
            ("address", f.address.clone()),
            ("description", f.description.clone()),
            ("mode", access_mode_name(f.access_mode)),
        ]);
        if let Some(model) = &response.model {
            out.push('\n');
            let rows: Vec<Vec<String>> =
                model.resources.iter().map(|r| ResourceSummary::of(r).row()).collect();
            out.push_str(&output::table(&ResourceSummary::HEADERS, &rows));
        }
        out
    })
}

/// `trellis delete facility`.
pub async fn delete(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    clients.commission.delete_facility(pb::DeleteFacilityRequest { name: name.clone() }).await?;
    ctx.done(format!("deleted facility {name}"))
}

/// `trellis activate resources` and `trellis deactivate resources`.
pub async fn set_active(ctx: &Ctx, target: ResourcesTarget, active: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let ResourcesTarget { facility, resources } = target;
    let count = resources.len();
    if active {
        let request = pb::ActivateResourcesRequest { facility: facility.clone(), resources };
        clients.commission.activate_resources(request).await?;
    } else {
        let request = pb::DeactivateResourcesRequest { facility: facility.clone(), resources };
        clients.commission.deactivate_resources(request).await?;
    }
    let verb = if active { "activated" } else { "deactivated" };
    ctx.done(format!("{verb} {count} resource(s) of facility {facility}"))
}

/// `trellis list resources`: every facility resource, with how many allocations it carries.
pub async fn resources(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mut resources =
        clients.realize.get_resources(pb::GetResourcesRequest {}).await?.into_inner().resources;
    let key = |r: &pb::Resource| {
        r.resource.as_ref().map(|x| (x.facility.clone(), x.id.clone())).unwrap_or_default()
    };
    resources.sort_by_key(key);
    let value = json!({
        "resources": resources
            .iter()
            .map(|r| {
                let x = r.resource.clone().unwrap_or_default();
                let allocated: Vec<_> = r
                    .allocated
                    .iter()
                    .map(|a| json!({
                        "rid": a.rid, "eid": a.eid, "pid": a.pid, "node": a.node, "virt": a.virt,
                        "coresUsed": a.cores_used, "memoryUsed": a.memory_used,
                    }))
                    .collect();
                json!({ "facility": x.facility, "resource": ResourceSummary::of(&x).json(), "allocated": allocated })
            })
            .collect::<Vec<_>>(),
    });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = resources
            .iter()
            .map(|r| {
                let x = r.resource.clone().unwrap_or_default();
                let mut row = vec![x.facility.clone()];
                row.extend(ResourceSummary::of(&x).row());
                row.push(r.allocated.len().to_string());
                row
            })
            .collect();
        let mut headers = vec!["facility"];
        headers.extend(ResourceSummary::HEADERS);
        headers.push("allocations");
        output::table(&headers, &rows)
    })
}

/// `trellis list allocations`: the allocation table (administrators).
pub async fn allocations(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let table = clients.alloc.fetch(pb::FetchAllocationTableRequest {}).await?.into_inner().table;
    let table = table.unwrap_or_default();
    let mut rows: Vec<(String, xir::ResourceAllocation)> = table
        .resource
        .into_iter()
        .flat_map(|(key, list)| list.value.into_iter().map(move |a| (key.clone(), a)))
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1.mzid, &a.1.node).cmp(&(&b.0, &b.1.mzid, &b.1.node)));
    let value = json!({
        "allocations": rows
            .iter()
            .map(|(key, a)| json!({
                "key": key, "resource": a.resource, "facility": a.facility, "mzid": a.mzid,
                "node": a.node, "virtual": a.r#virtual,
            }))
            .collect::<Vec<_>>(),
    });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(key, a)| {
                let kind = if a.r#virtual { "VM" } else { "exclusive" };
                vec![key.clone(), a.mzid.clone(), a.node.clone(), kind.to_owned()]
            })
            .collect();
        output::table(&["resource", "realization", "node", "kind"], &rows)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_models_are_binary_protobuf() {
        let dir = tempfile::tempdir().unwrap();
        let model = xir::Facility {
            id: "lab".into(),
            resources: vec![xir::Resource { id: "h1".into(), ..Default::default() }],
            ..Default::default()
        };
        let pb = dir.path().join("model.pb");
        std::fs::write(&pb, model.encode_to_vec()).unwrap();
        assert_eq!(read_model(&pb).unwrap(), model);

        let json = dir.path().join("model.json");
        std::fs::write(&json, " {\"id\": \"lab\"}").unwrap();
        assert!(matches!(read_model(&json), Err(CliError::JsonFacilityModel { .. })));
        let junk = dir.path().join("junk");
        std::fs::write(&junk, [0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(read_model(&junk), Err(CliError::BadFacilityModel { .. })));
        assert!(matches!(read_model(&dir.path().join("missing")), Err(CliError::ReadFile { .. })));
    }
}
