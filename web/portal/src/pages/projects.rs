//! Projects: the user's list (or every project they may see), creating one, and a project's
//! page with its experiments, settings, deletion and members.
//!
//! Membership mirrors the CLI: members are added active with a role; a membership left
//! waiting (`MemberRequested`/`EntityRequested`) is approved by rewriting it as `Active` with
//! the same role (`UpdateProjectMember`). Who may do any of this is the API's decision.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

mod members;
mod widgets;

pub(crate) use widgets::{
    access_mode_options, activation_state_name, category_fields, entity_types, failure, field_error,
    parse_access_mode, parse_role, respond, role_options, sorted_members,
};

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::util::{Flash, access_mode_name, member_state_name, page, role_name, see_other, seg};
use crate::session::{Session, SignedIn};
use members::{add_member, approve_member, change_role, member_row, remove_member};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_page).post(create))
        .route("/projects/{project}", get(project_page))
        .route("/projects/{project}/settings", post(update))
        .route("/projects/{project}/delete", post(delete))
        .route("/projects/{project}/members", post(add_member))
        .route("/projects/{project}/members/{user}/role", post(change_role))
        .route("/projects/{project}/members/{user}/approve", post(approve_member))
        .route("/projects/{project}/members/{user}/remove", post(remove_member))
}

// === the list and the create form ===

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    filter: String,
}

impl ListQuery {
    /// The notice to show and the list wanted (`all`, or the user's own).
    pub(crate) fn parts(self) -> (Option<String>, String) {
        (self.notice, self.filter)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct NewProjectForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    access_mode: String,
    #[serde(default)]
    organization: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    subcategory: String,
    /// The list the form was on (`all` or mine), to come back to it after an error.
    #[serde(default)]
    filter: String,
}

async fn list_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<ListQuery>,
) -> Response {
    let form = NewProjectForm { filter: query.filter, ..Default::default() };
    render_list(&state, &session, &form, query.notice, None).await
}

async fn render_list(
    state: &AppState,
    session: &Session,
    form: &NewProjectForm,
    notice: Option<String>,
    error: Option<WebError>,
) -> Response {
    match list_view(state, session, form, notice, error.as_ref()).await {
        Ok(html) => respond(html, error.as_ref()),
        Err(e) => failure(state, session, "Projects", e).await,
    }
}

async fn list_view(
    state: &AppState,
    session: &Session,
    form: &NewProjectForm,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let all = form.filter == "all";
    let filter = if all { pb::FilterMode::ByAll } else { pb::FilterMode::ByUser } as i32;
    let token = &session.token;
    let (mut projects_client, mut orgs_client) = (state.api.workspace(), state.api.workspace());
    let (projects, orgs, types) = tokio::join!(
        projects_client.get_projects(authed(token, pb::GetProjectsRequest { filter })),
        orgs_client.get_organizations(authed(
            token,
            pb::GetOrganizationsRequest { filter: pb::FilterMode::ByUser as i32 }
        )),
        entity_types(state),
    );
    let mut projects = projects?.into_inner().projects;
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    // Projects may join organizations their creator belongs to; the API checks that too.
    let mut orgs: Vec<String> = orgs?
        .into_inner()
        .organizations
        .into_iter()
        .filter(|o| {
            o.members.get(&session.username).is_some_and(|m| m.state == pb::member::State::Active as i32)
        })
        .map(|o| o.name)
        .collect();
    orgs.sort();
    let types = types?;

    let me = session.username.clone();
    let rows = projects
        .into_iter()
        .map(|p| {
            let href = format!("/projects/{}", seg(&p.name));
            let row_id = format!("project-{}", p.name);
            let role = p.members.get(&me).map(|m| role_name(m.role)).unwrap_or("—");
            let org = (!p.organization.is_empty()).then(|| {
                let href = format!("/organizations/{}", seg(&p.organization));
                view! { <a href=href>{p.organization.clone()}</a> }
            });
            let (members, experiments) = (p.members.len(), p.experiments.len());
            view! {
                <tr id=row_id>
                    <td><a href=href>{p.name}</a></td>
                    <td>{p.description}</td>
                    <td>{badge(access_mode_name(p.access_mode))}</td>
                    <td>{org}</td>
                    <td>{members}</td>
                    <td>{experiments}</td>
                    <td>{role}</td>
                </tr>
            }
        })
        .collect_view();
    let org_options = orgs
        .into_iter()
        .map(|o| {
            let chosen = o == form.organization;
            view! { <option value=o.clone() selected=chosen>{o.clone()}</option> }
        })
        .collect_view();
    let mode = if form.access_mode.is_empty() { "Public" } else { form.access_mode.as_str() };
    let f = form.clone();
    let heading = if all { "All projects you can see" } else { "Your projects" };
    let page = page(state, session, "Projects").await?.notice(notice).error(error);
    Ok(page.render(view! {
        <p>
            <a href="/projects" id="filter-mine">"Mine"</a>
            " · "
            <a href="/projects?filter=all" id="filter-all">"All I can see"</a>
        </p>
        <h2>{heading}</h2>
        <table id="projects-table">
            <thead>
                <tr>
                    <th>"Name"</th><th>"Description"</th><th>"Access"</th><th>"Organization"</th>
                    <th>"Members"</th><th>"Experiments"</th><th>"Your role"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <h2>"New project"</h2>
        <form method="post" action="/projects" class="card" id="new-project-form">
            {csrf_field(session.csrf())}
            <input type="hidden" name="filter" value=f.filter.clone()/>
            <label for="new-project-name">"Name"</label>
            <input type="text" id="new-project-name" name="name" value=f.name.clone() required/>
            {field_error(error, &["project", "name", "project.name"])}
            <label for="new-project-description">"Description"</label>
            <textarea id="new-project-description" name="description" rows="3">{f.description.clone()}</textarea>
            <label for="new-project-access">"Access"</label>
            <select id="new-project-access" name="access_mode">{access_mode_options(mode)}</select>
            {field_error(error, &["project.access_mode", "access_mode"])}
            <label for="new-project-organization">"Organization (optional)"</label>
            <select id="new-project-organization" name="organization">
                <option value="">"—"</option>
                {org_options}
            </select>
            {field_error(error, &["organization", "project.organization"])}
            {category_fields(&types, "new-project", &f.category, &f.subcategory)}
            <p><button type="submit" id="create-project">"Create project"</button></p>
        </form>
    }))
}

async fn create(State(state): State<AppState>, Posted { session, form }: Posted<NewProjectForm>) -> Response {
    let result = async {
        let project = pb::Project {
            name: form.name.trim().to_owned(),
            description: form.description.clone(),
            // Public unless chosen, as with the CLI.
            access_mode: parse_access_mode(&form.access_mode)?.unwrap_or(pb::AccessMode::Public as i32),
            organization: form.organization.trim().to_owned(),
            category: form.category.clone(),
            subcategory: form.subcategory.clone(),
            ..Default::default()
        };
        // An empty `user` is the caller, as with the CLI.
        let request = pb::CreateProjectRequest { user: String::new(), project: Some(project) };
        state.api.workspace().create_project(authed(&session.token, request)).await?;
        Ok::<_, WebError>(())
    }
    .await;
    match result {
        Ok(()) => {
            let name = form.name.trim();
            see_other(&format!("/projects/{}", seg(name)), &format!("Created project {name}."))
                .into_response()
        }
        Err(error) => render_list(&state, &session, &form, None, Some(error)).await,
    }
}

// === one project ===

/// What the user typed into the project page's forms, kept when the page is shown again
/// with an error.
#[derive(Debug, Default)]
pub(super) struct ProjectInput {
    pub(super) description: Option<String>,
    pub(super) access_mode: Option<String>,
    pub(super) member_username: String,
    pub(super) member_role: String,
}

async fn project_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    render_project(&state, &session, &name, ProjectInput::default(), flash.notice, None).await
}

pub(super) async fn render_project(
    state: &AppState,
    session: &Session,
    name: &str,
    input: ProjectInput,
    notice: Option<String>,
    error: Option<WebError>,
) -> Response {
    match project_view(state, session, name, input, notice, error.as_ref()).await {
        Ok(html) => respond(html, error.as_ref()),
        Err(e) => failure(state, session, &format!("Project {name}"), e).await,
    }
}

async fn project_view(
    state: &AppState,
    session: &Session,
    name: &str,
    input: ProjectInput,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let token = &session.token;
    let mut client = state.api.workspace();
    let request = pb::GetProjectRequest { name: name.to_owned(), status_ms: 0 };
    let project = client
        .get_project(authed(token, request))
        .await?
        .into_inner()
        .project
        .ok_or_else(|| WebError::NotFound(format!("project {name}")))?;
    let request = pb::GetProjectExperimentsRequest { project: name.to_owned() };
    let mut experiments =
        client.get_project_experiments(authed(token, request)).await?.into_inner().experiments;
    experiments.sort_by(|a, b| a.name.cmp(&b.name));

    let base = format!("/projects/{}", seg(&project.name));
    let csrf = session.csrf();
    let organization = if project.organization.is_empty() {
        view! { <span class="muted" id="project-organization">"none"</span> }.into_any()
    } else {
        let href = format!("/organizations/{}", seg(&project.organization));
        let state = project.org_membership.map(|m| member_state_name(m.state)).unwrap_or("Unknown");
        view! { <a href=href id="project-organization">{project.organization.clone()}</a>" "{badge(state)} }
            .into_any()
    };
    let category = [project.category.as_str(), project.subcategory.as_str()]
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let experiment_rows = experiments
        .into_iter()
        .map(|e| {
            let href = format!("{base}/experiments/{}", seg(&e.name));
            let row_id = format!("experiment-{}", e.name);
            view! {
                <tr id=row_id>
                    <td><a href=href>{e.name}</a></td>
                    <td>{e.description}</td>
                    <td>{badge(access_mode_name(e.access_mode))}</td>
                    <td>{e.creator}</td>
                </tr>
            }
        })
        .collect_view();
    let member_rows = sorted_members(&project.members)
        .into_iter()
        .map(|(user, m)| member_row(&base, &csrf, &user, m))
        .collect_view();
    let description = input.description.unwrap_or_else(|| project.description.clone());
    let mode = input.access_mode.unwrap_or_else(|| access_mode_name(project.access_mode).to_owned());
    let role = if input.member_role.is_empty() { "Member".to_owned() } else { input.member_role };
    let username = input.member_username;
    let page = page(state, session, format!("Project {}", project.name)).await?.notice(notice).error(error);
    Ok(page.render(view! {
        <section class="card" id="project-details">
            <p id="project-description">{project.description.clone()}</p>
            <p>"Access: " <span id="project-access">{badge(access_mode_name(project.access_mode))}</span>
               " · State: " {badge(activation_state_name(project.state))}
               " · Organization: " {organization}
            </p>
            <p class="muted">{(!category.is_empty()).then(|| format!("Category: {category} · "))}"gid " {project.gid}</p>
        </section>
        <section id="experiments">
            <h2>"Experiments"</h2>
            <table id="experiments-table">
                <thead><tr><th>"Name"</th><th>"Description"</th><th>"Access"</th><th>"Creator"</th></tr></thead>
                <tbody>{experiment_rows}</tbody>
            </table>
            <form method="post" action=format!("{base}/experiments") class="card" id="new-experiment-form">
                {csrf_field(csrf.clone())}
                <label for="new-experiment-name">"New experiment"</label>
                <input type="text" id="new-experiment-name" name="name" required/>
                <label for="new-experiment-description">"Description"</label>
                <input type="text" id="new-experiment-description" name="description"/>
                <p><button type="submit" id="create-experiment">"Create experiment"</button></p>
            </form>
        </section>
        <section id="members">
            <h2>"Members"</h2>
            <table id="members-table">
                <thead><tr><th>"User"</th><th>"Role"</th><th>"State"</th><th>"Change"</th></tr></thead>
                <tbody>{member_rows}</tbody>
            </table>
            <form method="post" action=format!("{base}/members") class="card" id="add-member-form">
                {csrf_field(csrf.clone())}
                <label for="add-member-username">"Add a member: username"</label>
                <input type="text" id="add-member-username" name="username" value=username required/>
                {field_error(error, &["username", "member"])}
                <label for="add-member-role">"Role"</label>
                <select id="add-member-role" name="role">{role_options(&role)}</select>
                {field_error(error, &["member.role", "role"])}
                <p><button type="submit" id="add-member">"Add member"</button></p>
            </form>
        </section>
        <section id="settings">
            <h2>"Settings"</h2>
            <form method="post" action=format!("{base}/settings") class="card" id="edit-project-form">
                {csrf_field(csrf.clone())}
                <label for="edit-project-description">"Description"</label>
                <textarea id="edit-project-description" name="description" rows="3">{description}</textarea>
                {field_error(error, &["description"])}
                <label for="edit-project-access">"Access"</label>
                <select id="edit-project-access" name="access_mode">{access_mode_options(&mode)}</select>
                {field_error(error, &["access_mode"])}
                <p><button type="submit" id="update-project">"Save"</button></p>
            </form>
            <form method="post" action=format!("{base}/delete") class="card" id="delete-project-form">
                {csrf_field(csrf)}
                <label>
                    <input type="checkbox" id="delete-project-confirm" name="confirm" value="yes"/>
                    " Delete this project (it must have no experiments)"
                </label>
                <p><button type="submit" class="danger" id="delete-project">"Delete project"</button></p>
            </form>
        </section>
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    access_mode: String,
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session, form }: Posted<SettingsForm>,
) -> Response {
    let result = async {
        let request = pb::UpdateProjectRequest {
            name: name.clone(),
            description: Some(pb::DescriptionUpdate { value: form.description.clone() }),
            access_mode: parse_access_mode(&form.access_mode)?.map(|value| pb::AccessModeUpdate { value }),
            ..Default::default()
        };
        state.api.workspace().update_project(authed(&session.token, request)).await?;
        Ok::<_, WebError>(())
    }
    .await;
    match result {
        Ok(()) => {
            see_other(&format!("/projects/{}", seg(&name)), "Saved the project's settings.").into_response()
        }
        Err(error) => {
            let input = ProjectInput {
                description: Some(form.description),
                access_mode: Some(form.access_mode),
                ..Default::default()
            };
            render_project(&state, &session, &name, input, None, Some(error)).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session, form }: Posted<DeleteForm>,
) -> Response {
    let result = async {
        if form.confirm != "yes" {
            return Err(WebError::BadInput(format!(
                "tick the box to confirm that project {name} should be deleted"
            )));
        }
        let request = pb::DeleteProjectRequest { user: String::new(), name: name.clone() };
        state.api.workspace().delete_project(authed(&session.token, request)).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => see_other("/projects", &format!("Deleted project {name}.")).into_response(),
        Err(error) => {
            render_project(&state, &session, &name, ProjectInput::default(), None, Some(error)).await
        }
    }
}
