//! Organizations.

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use super::projects::{access_mode, filter};
use crate::cli::Mode;
use crate::error::CliError;
use crate::output::{self, access_mode_name, members_summary, organization_json, user_state_name};

/// `trellis new organization`.
pub async fn create(ctx: &Ctx, name: String, description: String, mode: Mode) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let organization = pb::Organization {
        name: name.clone(),
        description,
        access_mode: access_mode(mode),
        ..Default::default()
    };
    // An empty `user` means "the caller"; the portal fills it in from the token.
    let request = pb::CreateOrganizationRequest { user: String::new(), organization: Some(organization) };
    clients.workspace.create_organization(request).await?;
    ctx.done(format!("created organization {name}"))
}

/// `trellis list organizations`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetOrganizationsRequest { filter: filter(all) };
    let mut orgs = clients.workspace.get_organizations(request).await?.into_inner().organizations;
    orgs.sort_by(|a, b| a.name.cmp(&b.name));
    let value = json!({ "organizations": orgs.iter().map(organization_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = orgs
            .iter()
            .map(|o| {
                vec![
                    o.name.clone(),
                    o.description.clone(),
                    user_state_name(o.state),
                    access_mode_name(o.access_mode),
                    members_summary(&o.members),
                ]
            })
            .collect();
        output::table(&["name", "description", "state", "mode", "members"], &rows)
    })
}

/// `trellis show organization`.
pub async fn show(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetOrganizationRequest { name, status_ms: 0 };
    let o = clients.workspace.get_organization(request).await?.into_inner().organization.unwrap_or_default();
    ctx.emit(json!({ "organization": organization_json(&o) }), || {
        output::key_values(&[
            ("name", o.name.clone()),
            ("description", o.description.clone()),
            ("state", user_state_name(o.state)),
            ("mode", access_mode_name(o.access_mode)),
            ("members", members_summary(&o.members)),
            ("projects", members_summary(&o.projects)),
            ("category", o.category.clone()),
            ("created", output::timestamp(o.created.as_ref())),
        ])
    })
}

/// `trellis delete organization`.
pub async fn delete(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::DeleteOrganizationRequest { user: String::new(), name: name.clone() };
    clients.workspace.delete_organization(request).await?;
    ctx.done(format!("deleted organization {name}"))
}
