//! An organization's members and projects: the table rows and the invite, re-role,
//! approve/accept and remove forms.

use axum::extract::{Path, State};
use axum::response::Response;
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use super::{OrgInput, membership_notice, outcome};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::projects::{parse_role, role_options};
use crate::pages::util::{member_state_name, role_name, seg};
use crate::session::Session;

/// One row of the members table: change role, approve (or accept, for one's own
/// invitation), remove (or leave).
pub(super) fn member_row(
    base: &str,
    csrf: &str,
    me: &str,
    user: &str,
    m: pb::Member,
) -> impl IntoView + use<> {
    let action = |what: &str| format!("{base}/members/{}/{what}", seg(user));
    let role = role_name(m.role);
    let creator = m.role == pb::member::Role::Creator as i32;
    let waiting = m.state != pb::member::State::Active as i32;
    let change_role = (!creator).then(|| {
        view! {
            <form method="post" action=action("role") class="inline" id=format!("member-role-form-{user}")>
                {csrf_field(csrf.to_owned())}
                <select name="role" id=format!("member-role-{user}")>{role_options(role)}</select>
                " "
                <button type="submit" class="secondary" id=format!("member-role-set-{user}")>"Set role"</button>
            </form>
        }
    });
    let approve = waiting.then(|| {
        let label = if user == me { "Accept" } else { "Approve" };
        view! {
            <form method="post" action=action("approve") class="inline">
                {csrf_field(csrf.to_owned())}
                " "<button type="submit" id=format!("approve-member-{user}")>{label}</button>
            </form>
        }
    });
    let remove = (!creator).then(|| {
        let label = if user == me { "Leave" } else { "Remove" };
        view! {
            <form method="post" action=action("remove") class="inline">
                {csrf_field(csrf.to_owned())}
                " "<button type="submit" class="danger" id=format!("remove-member-{user}")>{label}</button>
            </form>
        }
    });
    view! {
        <tr id=format!("member-{user}")>
            <td>{user.to_owned()}</td>
            <td>{badge(role)}</td>
            <td>{badge(member_state_name(m.state))}</td>
            <td>{change_role}{approve}{remove}</td>
        </tr>
    }
}

/// One row of the projects table: approve a waiting membership, remove.
pub(super) fn project_row(base: &str, csrf: &str, project: &str, m: pb::Member) -> impl IntoView + use<> {
    let action = |what: &str| format!("{base}/projects/{}/{what}", seg(project));
    let approve = (m.state != pb::member::State::Active as i32).then(|| {
        view! {
            <form method="post" action=action("approve") class="inline">
                {csrf_field(csrf.to_owned())}
                <button type="submit" id=format!("approve-project-{project}")>"Approve"</button>
            </form>
        }
    });
    view! {
        <tr id=format!("org-project-{project}")>
            <td><a href=format!("/projects/{}", seg(project))>{project.to_owned()}</a></td>
            <td>{badge(member_state_name(m.state))}</td>
            <td>
                {approve}
                <form method="post" action=action("remove") class="inline">
                    {csrf_field(csrf.to_owned())}
                    " "<button type="submit" class="danger" id=format!("remove-project-{project}")>"Remove"</button>
                </form>
            </td>
        </tr>
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn add_member(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Posted { session, form }: Posted<MemberForm>,
) -> Response {
    let username = form.username.trim().to_owned();
    let result = async {
        let request = pb::RequestOrganizationMembershipRequest {
            organization: org.clone(),
            id: username.clone(),
            kind: pb::MembershipType::UserMember as i32,
            member: Some(pb::Member { role: parse_role(&form.role)?, state: 0 }),
        };
        let reply =
            state.api.workspace().request_organization_membership(authed(&session.token, request)).await?;
        Ok(membership_notice(&username, &org, reply.into_inner().member))
    }
    .await;
    let input = OrgInput { member_username: form.username, member_role: form.role, ..Default::default() };
    outcome(&state, &session, &org, result, input).await
}

#[derive(Debug, Default, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub(super) async fn change_role(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    Posted { session, form }: Posted<RoleForm>,
) -> Response {
    let result = async {
        let role = parse_role(&form.role)?;
        let mut client = state.api.workspace();
        let request = pb::GetOrganizationMemberRequest { organization: org.clone(), username: user.clone() };
        let current =
            client.get_organization_member(authed(&session.token, request)).await?.into_inner().member;
        // The state stays as it is; only the role changes.
        let member = pb::Member { role, state: current.map(|m| m.state).unwrap_or_default() };
        let request = pb::UpdateOrganizationMemberRequest {
            organization: org.clone(),
            username: user.clone(),
            member: Some(member),
        };
        client.update_organization_member(authed(&session.token, request)).await?;
        Ok(format!("{user} is now {} of {org}.", form.role.trim()))
    }
    .await;
    outcome(&state, &session, &org, result, OrgInput::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct EmptyForm {}

async fn confirm(
    state: &AppState,
    session: &Session,
    org: &str,
    id: &str,
    kind: pb::MembershipType,
) -> Result<String, WebError> {
    let request = pb::ConfirmOrganizationMembershipRequest {
        organization: org.to_owned(),
        id: id.to_owned(),
        kind: kind as i32,
    };
    let reply =
        state.api.workspace().confirm_organization_membership(authed(&session.token, request)).await?;
    Ok(membership_notice(id, org, reply.into_inner().member))
}

pub(super) async fn approve_member(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let result = confirm(&state, &session, &org, &user, pb::MembershipType::UserMember).await;
    outcome(&state, &session, &org, result, OrgInput::default()).await
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let request = pb::DeleteOrganizationMemberRequest { organization: org.clone(), username: user.clone() };
    let result = match state.api.workspace().delete_organization_member(authed(&session.token, request)).await
    {
        Ok(_) => Ok(format!("{user} is no longer a member of {org}.")),
        Err(status) => Err(status.into()),
    };
    outcome(&state, &session, &org, result, OrgInput::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct ProjectForm {
    #[serde(default)]
    project: String,
}

pub(super) async fn add_project(
    State(state): State<AppState>,
    Path(org): Path<String>,
    Posted { session, form }: Posted<ProjectForm>,
) -> Response {
    let project = form.project.trim().to_owned();
    let request = pb::RequestOrganizationMembershipRequest {
        organization: org.clone(),
        id: project.clone(),
        kind: pb::MembershipType::ProjectMember as i32,
        member: Some(pb::Member { role: pb::member::Role::Member as i32, state: 0 }),
    };
    let result =
        match state.api.workspace().request_organization_membership(authed(&session.token, request)).await {
            Ok(reply) => {
                Ok(membership_notice(&format!("project {project}"), &org, reply.into_inner().member))
            }
            Err(status) => Err(status.into()),
        };
    outcome(&state, &session, &org, result, OrgInput { project: form.project, ..Default::default() }).await
}

pub(super) async fn approve_project(
    State(state): State<AppState>,
    Path((org, project)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let result = confirm(&state, &session, &org, &project, pb::MembershipType::ProjectMember).await;
    outcome(&state, &session, &org, result, OrgInput::default()).await
}

pub(super) async fn remove_project(
    State(state): State<AppState>,
    Path((org, project)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let request =
        pb::DeleteOrganizationProjectRequest { organization: org.clone(), project: project.clone() };
    let result =
        match state.api.workspace().delete_organization_project(authed(&session.token, request)).await {
            Ok(_) => Ok(format!("Project {project} is no longer part of {org}.")),
            Err(status) => Err(status.into()),
        };
    outcome(&state, &session, &org, result, OrgInput::default()).await
}
