//! Projects and their members.

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use crate::cli::{Mode, Role};
use crate::error::CliError;
use crate::output::{self, access_mode_name, members_summary, project_json, user_state_name};

/// The wire value of an access mode.
pub fn access_mode(mode: Mode) -> i32 {
    match mode {
        Mode::Public => pb::AccessMode::Public as i32,
        Mode::Protected => pb::AccessMode::Protected as i32,
        Mode::Private => pb::AccessMode::Private as i32,
    }
}

/// The list filter: what I belong to, or everything I may see.
pub fn filter(all: bool) -> i32 {
    if all { pb::FilterMode::ByAll as i32 } else { pb::FilterMode::ByUser as i32 }
}

/// `trellis new project`.
pub async fn create(
    ctx: &Ctx,
    name: String,
    description: String,
    mode: Mode,
    org: Option<String>,
) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let project = pb::Project {
        name: name.clone(),
        description,
        access_mode: access_mode(mode),
        organization: org.unwrap_or_default(),
        ..Default::default()
    };
    // An empty `user` means "the caller"; the portal fills it in from the token.
    let request = pb::CreateProjectRequest { user: String::new(), project: Some(project) };
    clients.workspace.create_project(request).await?;
    ctx.done(format!("created project {name}"))
}

/// `trellis new member project`.
pub async fn add_member(ctx: &Ctx, project: String, user: String, role: Role) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let role = match role {
        Role::Member => pb::member::Role::Member,
        Role::Maintainer => pb::member::Role::Maintainer,
    };
    let member = pb::Member { role: role as i32, state: pb::member::State::Active as i32 };
    let request = pb::AddProjectMemberRequest {
        project: project.clone(),
        username: user.clone(),
        member: Some(member),
    };
    clients.workspace.add_project_member(request).await?;
    ctx.done(format!("added {user} to project {project} as {}", role.as_str_name()))
}

/// `trellis list projects`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mut projects = clients
        .workspace
        .get_projects(pb::GetProjectsRequest { filter: filter(all) })
        .await?
        .into_inner()
        .projects;
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    let value = json!({ "projects": projects.iter().map(project_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = projects
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.description.clone(),
                    access_mode_name(p.access_mode),
                    members_summary(&p.members),
                ]
            })
            .collect();
        output::table(&["name", "description", "mode", "members"], &rows)
    })
}

/// `trellis show project`.
pub async fn show(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let reply =
        clients.workspace.get_project(pb::GetProjectRequest { name, status_ms: 0 }).await?.into_inner();
    let project = reply.project.unwrap_or_default();
    ctx.emit(json!({ "project": project_json(&project) }), || {
        let mut experiments = project.experiments.clone();
        experiments.sort();
        output::key_values(&[
            ("name", project.name.clone()),
            ("description", project.description.clone()),
            ("mode", access_mode_name(project.access_mode)),
            ("state", user_state_name(project.state)),
            ("organization", project.organization.clone()),
            ("members", members_summary(&project.members)),
            ("experiments", experiments.join(", ")),
            ("category", project.category.clone()),
            ("gid", project.gid.to_string()),
            ("created", output::timestamp(project.created.as_ref())),
        ])
    })
}

/// `trellis delete project`.
pub async fn delete(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    clients
        .workspace
        .delete_project(pb::DeleteProjectRequest { user: String::new(), name: name.clone() })
        .await?;
    ctx.done(format!("deleted project {name}"))
}

/// `trellis delete member project`.
pub async fn remove_member(ctx: &Ctx, project: String, user: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::DeleteProjectMemberRequest { project: project.clone(), member: user.clone() };
    clients.workspace.delete_project_member(request).await?;
    ctx.done(format!("removed {user} from project {project}"))
}
