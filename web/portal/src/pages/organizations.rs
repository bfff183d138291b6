//! Organizations: the list, creating one, asking to join, and an organization's page with its
//! members, projects, settings and deletion.
//!
//! Membership is two-sided, as in Merge: whoever asks (`RequestOrganizationMembership`) leaves
//! it `MemberRequested` (the user or project asked) or `EntityRequested` (the organization
//! invited), and the other side confirms it (`ConfirmOrganizationMembership`). The API decides
//! which side the caller is on and whether they may act; the pages only offer the buttons.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use super::projects::{
    ListQuery, access_mode_options, activation_state_name, category_fields, entity_types, failure,
    field_error, parse_access_mode, respond, role_options, sorted_members,
};
mod members;

use members::{
    add_member, add_project, approve_member, approve_project, change_role, member_row, project_row,
    remove_member, remove_project,
};

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::util::{Flash, access_mode_name, member_state_name, page, role_name, see_other, seg};
use crate::session::{Session, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/organizations", get(list_page).post(create))
        // Not a valid organization name (it has a dash), so it never hides one's page.
        .route("/organizations/join-request", post(join))
        .route("/organizations/{org}", get(org_page))
        .route("/organizations/{org}/settings", post(update))
        .route("/organizations/{org}/delete", post(delete))
        .route("/organizations/{org}/members", post(add_member))
        .route("/organizations/{org}/members/{user}/role", post(change_role))
        .route("/organizations/{org}/members/{user}/approve", post(approve_member))
        .route("/organizations/{org}/members/{user}/remove", post(remove_member))
        .route("/organizations/{org}/projects", post(add_project))
        .route("/organizations/{org}/projects/{project}/approve", post(approve_project))
        .route("/organizations/{org}/projects/{project}/remove", post(remove_project))
}

fn org_path(org: &str) -> String {
    format!("/organizations/{}", seg(org))
}

/// What a membership's state means for the people involved.
pub(super) fn membership_notice(id: &str, org: &str, member: Option<pb::Member>) -> String {
    let state = member.map(|m| m.state).unwrap_or_default();
    match pb::member::State::try_from(state) {
        Ok(pb::member::State::Active) => format!("{id} is now an active member of {org}."),
        Ok(pb::member::State::MemberRequested) => {
            format!("Asked for {id} to join {org}; a maintainer of {org} must approve it.")
        }
        Ok(pb::member::State::EntityRequested) => {
            format!("Invited {id} to join {org}; the membership waits for {id}'s side to accept.")
        }
        _ => format!("The membership of {id} in {org} is {}.", member_state_name(state)),
    }
}

// === the list, creating and joining ===

#[derive(Debug, Default, Clone, Deserialize)]
pub struct NewOrgForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    access_mode: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    subcategory: String,
    #[serde(default)]
    filter: String,
}

async fn list_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<ListQuery>,
) -> Response {
    let (notice, filter) = query.parts();
    let form = NewOrgForm { filter, ..Default::default() };
    render_list(&state, &session, &form, "", notice, None).await
}

async fn render_list(
    state: &AppState,
    session: &Session,
    form: &NewOrgForm,
    join_name: &str,
    notice: Option<String>,
    error: Option<WebError>,
) -> Response {
    match list_view(state, session, form, join_name, notice, error.as_ref()).await {
        Ok(html) => respond(html, error.as_ref()),
        Err(e) => failure(state, session, "Organizations", e).await,
    }
}

async fn list_view(
    state: &AppState,
    session: &Session,
    form: &NewOrgForm,
    join_name: &str,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let all = form.filter == "all";
    let filter = if all { pb::FilterMode::ByAll } else { pb::FilterMode::ByUser } as i32;
    let mut client = state.api.workspace();
    let request = authed(&session.token, pb::GetOrganizationsRequest { filter });
    let (orgs, types) = tokio::join!(client.get_organizations(request), entity_types(state));
    let mut orgs = orgs?.into_inner().organizations;
    orgs.sort_by(|a, b| a.name.cmp(&b.name));
    let types = types?;
    let csrf = session.csrf();
    let me = session.username.clone();
    let rows = orgs
        .into_iter()
        .map(|o| {
            let mine = o.members.get(&me).copied();
            let membership = match mine {
                Some(m) => view! { {badge(role_name(m.role))}" "{badge(member_state_name(m.state))} }.into_any(),
                None => view! {
                    <form method="post" action="/organizations/join-request" class="inline">
                        {csrf_field(csrf.clone())}
                        <input type="hidden" name="organization" value=o.name.clone()/>
                        <button type="submit" class="secondary" id=format!("join-{}", o.name)>"Ask to join"</button>
                    </form>
                }
                .into_any(),
            };
            view! {
                <tr id=format!("org-{}", o.name)>
                    <td><a href=org_path(&o.name)>{o.name.clone()}</a></td>
                    <td>{o.description}</td>
                    <td>{badge(activation_state_name(o.state))}</td>
                    <td>{badge(access_mode_name(o.access_mode))}</td>
                    <td>{o.members.len()}</td>
                    <td>{o.projects.len()}</td>
                    <td>{membership}</td>
                </tr>
            }
        })
        .collect_view();
    let mode = if form.access_mode.is_empty() { "Public" } else { form.access_mode.as_str() };
    let f = form.clone();
    let heading = if all { "All organizations you can see" } else { "Your organizations" };
    let join_name = join_name.to_owned();
    let page = page(state, session, "Organizations").await?.notice(notice).error(error);
    Ok(page.render(view! {
        <p>
            <a href="/organizations" id="filter-mine">"Mine"</a>
            " · "
            <a href="/organizations?filter=all" id="filter-all">"All I can see"</a>
        </p>
        <h2>{heading}</h2>
        <table id="orgs-table">
            <thead>
                <tr>
                    <th>"Name"</th><th>"Description"</th><th>"State"</th><th>"Access"</th>
                    <th>"Members"</th><th>"Projects"</th><th>"You"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <div class="grid">
            <form method="post" action="/organizations" class="card" id="new-org-form">
                <h2>"New organization"</h2>
                {csrf_field(csrf.clone())}
                <input type="hidden" name="filter" value=f.filter.clone()/>
                <label for="new-org-name">"Name"</label>
                <input type="text" id="new-org-name" name="name" value=f.name.clone() required/>
                {field_error(error, &["organization", "name", "organization.name"])}
                <label for="new-org-description">"Description"</label>
                <textarea id="new-org-description" name="description" rows="3">{f.description.clone()}</textarea>
                <label for="new-org-access">"Access"</label>
                <select id="new-org-access" name="access_mode">{access_mode_options(mode)}</select>
                {field_error(error, &["organization.access_mode", "access_mode"])}
                {category_fields(&types, "new-org", &f.category, &f.subcategory)}
                <p class="muted">"Organizations you create wait for an administrator to activate them."</p>
                <p><button type="submit" id="create-org">"Create organization"</button></p>
            </form>
            <form method="post" action="/organizations/join-request" class="card" id="join-org-form">
                <h2>"Join an organization"</h2>
                {csrf_field(csrf)}
                <label for="join-org-name">"Organization"</label>
                <input type="text" id="join-org-name" name="organization" value=join_name required/>
                <p class="muted">"A maintainer of the organization approves the request."</p>
                <p><button type="submit" id="join-org">"Ask to join"</button></p>
            </form>
        </div>
    }))
}

async fn create(State(state): State<AppState>, Posted { session, form }: Posted<NewOrgForm>) -> Response {
    let result = async {
        let organization = pb::Organization {
            name: form.name.trim().to_owned(),
            description: form.description.clone(),
            access_mode: parse_access_mode(&form.access_mode)?.unwrap_or(pb::AccessMode::Public as i32),
            category: form.category.clone(),
            subcategory: form.subcategory.clone(),
            ..Default::default()
        };
        let request = pb::CreateOrganizationRequest { user: String::new(), organization: Some(organization) };
        state.api.workspace().create_organization(authed(&session.token, request)).await?;
        Ok::<_, WebError>(())
    }
    .await;
    match result {
        Ok(()) => {
            let name = form.name.trim();
            see_other(&org_path(name), &format!("Created organization {name}.")).into_response()
        }
        Err(error) => render_list(&state, &session, &form, "", None, Some(error)).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    organization: String,
}

async fn join(State(state): State<AppState>, Posted { session, form }: Posted<JoinForm>) -> Response {
    let org = form.organization.trim().to_owned();
    let request = pb::RequestOrganizationMembershipRequest {
        organization: org.clone(),
        id: session.username.clone(),
        kind: pb::MembershipType::UserMember as i32,
        member: Some(pb::Member { role: pb::member::Role::Member as i32, state: 0 }),
    };
    match state.api.workspace().request_organization_membership(authed(&session.token, request)).await {
        Ok(reply) => {
            let notice = membership_notice(&session.username, &org, reply.into_inner().member);
            see_other("/organizations", &notice).into_response()
        }
        Err(status) => {
            render_list(&state, &session, &NewOrgForm::default(), &org, None, Some(status.into())).await
        }
    }
}

// === one organization ===

/// What the user typed into the organization page's forms, kept when it is shown again with
/// an error.
#[derive(Debug, Default)]
pub(super) struct OrgInput {
    pub(super) description: Option<String>,
    pub(super) access_mode: Option<String>,
    pub(super) member_username: String,
    pub(super) member_role: String,
    pub(super) project: String,
}

async fn org_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(org): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    render_org(&state, &session, &org, OrgInput::default(), flash.notice, None).await
}

async fn render_org(
    state: &AppState,
    session: &Session,
    org: &str,
    input: OrgInput,
    notice: Option<String>,
    error: Option<WebError>,
) -> Response {
    match org_view(state, session, org, input, notice, error.as_ref()).await {
        Ok(html) => respond(html, error.as_ref()),
        Err(e) => failure(state, session, &format!("Organization {org}"), e).await,
    }
}

async fn org_view(
    state: &AppState,
    session: &Session,
    name: &str,
    input: OrgInput,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let mut client = state.api.workspace();
    let request = pb::GetOrganizationRequest { name: name.to_owned(), status_ms: 0 };
    let org = client
        .get_organization(authed(&session.token, request))
        .await?
        .into_inner()
        .organization
        .ok_or_else(|| WebError::NotFound(format!("organization {name}")))?;
    let base = org_path(&org.name);
    let csrf = session.csrf();
    let me = session.username.clone();
    let member_rows = sorted_members(&org.members)
        .into_iter()
        .map(|(user, m)| member_row(&base, &csrf, &me, &user, m))
        .collect_view();
    let project_rows = sorted_members(&org.projects)
        .into_iter()
        .map(|(project, m)| project_row(&base, &csrf, &project, m))
        .collect_view();
    let ask = (!org.members.contains_key(&me)).then(|| {
        view! {
            <form method="post" action="/organizations/join-request" class="card" id="request-membership-form">
                {csrf_field(csrf.clone())}
                <input type="hidden" name="organization" value=org.name.clone()/>
                "You are not a member of this organization. "
                <button type="submit" id="request-membership">"Ask to join"</button>
            </form>
        }
    });
    let category = [org.category.as_str(), org.subcategory.as_str()]
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let description = input.description.unwrap_or_else(|| org.description.clone());
    let mode = input.access_mode.unwrap_or_else(|| access_mode_name(org.access_mode).to_owned());
    let role = if input.member_role.is_empty() { "Member".to_owned() } else { input.member_role };
    let (username, project) = (input.member_username, input.project);
    let page = page(state, session, format!("Organization {}", org.name)).await?.notice(notice).error(error);
    Ok(page.render(view! {
        <section class="card" id="org-details">
            <p id="org-description">{org.description.clone()}</p>
            <p>"Access: " {badge(access_mode_name(org.access_mode))}
               " · State: " <span id="org-state">{badge(activation_state_name(org.state))}</span></p>
            <p class="muted">{(!category.is_empty()).then(|| format!("Category: {category}"))}</p>
        </section>
        {ask}
        <section id="members">
            <h2>"Members"</h2>
            <table id="members-table">
                <thead><tr><th>"User"</th><th>"Role"</th><th>"State"</th><th>"Change"</th></tr></thead>
                <tbody>{member_rows}</tbody>
            </table>
            <form method="post" action=format!("{base}/members") class="card" id="add-member-form">
                {csrf_field(csrf.clone())}
                <label for="add-member-username">"Invite a member: username"</label>
                <input type="text" id="add-member-username" name="username" value=username required/>
                {field_error(error, &["id", "username"])}
                <label for="add-member-role">"Role"</label>
                <select id="add-member-role" name="role">{role_options(&role)}</select>
                {field_error(error, &["member.role", "role"])}
                <p class="muted">"The user accepts the invitation from this page."</p>
                <p><button type="submit" id="add-member">"Invite"</button></p>
            </form>
        </section>
        <section id="projects">
            <h2>"Projects"</h2>
            <table id="org-projects-table">
                <thead><tr><th>"Project"</th><th>"State"</th><th>"Change"</th></tr></thead>
                <tbody>{project_rows}</tbody>
            </table>
            <form method="post" action=format!("{base}/projects") class="card" id="add-org-project-form">
                {csrf_field(csrf.clone())}
                <label for="add-org-project-name">"Add a project"</label>
                <input type="text" id="add-org-project-name" name="project" value=project required/>
                {field_error(error, &["id", "project"])}
                <p><button type="submit" id="add-org-project">"Add project"</button></p>
            </form>
        </section>
        <section id="settings">
            <h2>"Settings"</h2>
            <form method="post" action=format!("{base}/settings") class="card" id="edit-org-form">
                {csrf_field(csrf.clone())}
                <label for="edit-org-description">"Description"</label>
                <textarea id="edit-org-description" name="description" rows="3">{description}</textarea>
                <label for="edit-org-access">"Access"</label>
                <select id="edit-org-access" name="access_mode">{access_mode_options(&mode)}</select>
                {field_error(error, &["access_mode"])}
                <p><button type="submit" id="update-org">"Save"</button></p>
            </form>
            <form method="post" action=format!("{base}/delete") class="card" id="delete-org-form">
                {csrf_field(csrf)}
                <label>
                    <input type="checkbox" id="delete-org-confirm" name="confirm" value="yes"/>
                    " Delete this organization (its members and projects leave it)"
                </label>
                <p><button type="submit" class="danger" id="delete-org">"Delete organization"</button></p>
            </form>
        </section>
    }))
}

/// After an action on the organization page: back to it with `notice`, or the page again
/// with the error and what the user typed.
pub(super) async fn outcome(
    state: &AppState,
    session: &Session,
    org: &str,
    result: Result<String, WebError>,
    input: OrgInput,
) -> Response {
    match result {
        Ok(notice) => see_other(&org_path(org), &notice).into_response(),
        Err(error) => render_org(state, session, org, input, None, Some(error)).await,
    }
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
    Path(org): Path<String>,
    Posted { session, form }: Posted<SettingsForm>,
) -> Response {
    let result = async {
        let request = pb::UpdateOrganizationRequest {
            name: org.clone(),
            description: Some(pb::DescriptionUpdate { value: form.description.clone() }),
            access_mode: parse_access_mode(&form.access_mode)?.map(|value| pb::AccessModeUpdate { value }),
            ..Default::default()
        };
        state.api.workspace().update_organization(authed(&session.token, request)).await?;
        Ok("Saved the organization's settings.".to_owned())
    }
    .await;
    let input = OrgInput {
        description: Some(form.description),
        access_mode: Some(form.access_mode),
        ..Default::default()
    };
    outcome(&state, &session, &org, result, input).await
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Posted { session, form }: Posted<DeleteForm>,
) -> Response {
    if form.confirm != "yes" {
        let error =
            WebError::BadInput(format!("tick the box to confirm that organization {org} should be deleted"));
        return render_org(&state, &session, &org, OrgInput::default(), None, Some(error)).await;
    }
    let request = pb::DeleteOrganizationRequest { user: String::new(), name: org.clone() };
    match state.api.workspace().delete_organization(authed(&session.token, request)).await {
        Ok(_) => see_other("/organizations", &format!("Deleted organization {org}.")).into_response(),
        Err(status) => {
            render_org(&state, &session, &org, OrgInput::default(), None, Some(status.into())).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_notices_say_who_acts_next() {
        let member = |state: pb::member::State| Some(pb::Member { role: 0, state: state as i32 });
        assert!(
            membership_notice("bob", "acme", member(pb::member::State::Active)).contains("active member")
        );
        assert!(
            membership_notice("bob", "acme", member(pb::member::State::MemberRequested))
                .contains("maintainer of acme")
        );
        assert!(
            membership_notice("bob", "acme", member(pb::member::State::EntityRequested))
                .contains("bob's side")
        );
        assert!(membership_notice("bob", "acme", None).contains("Pending"));
    }
}
