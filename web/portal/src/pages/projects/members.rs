//! A project's members: the table rows and the add, re-role, approve and remove forms.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use super::widgets::{parse_role, role_options};
use super::{ProjectInput, render_project};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::util::{member_state_name, role_name, see_other, seg};
use crate::session::Session;

/// One row of the members table with its forms: change role, approve, remove.
pub(super) fn member_row(base: &str, csrf: &str, user: &str, m: pb::Member) -> impl IntoView + use<> {
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
        view! {
            <form method="post" action=action("approve") class="inline">
                {csrf_field(csrf.to_owned())}
                " "<button type="submit" id=format!("approve-member-{user}")>"Approve"</button>
            </form>
        }
    });
    let remove = (!creator).then(|| {
        view! {
            <form method="post" action=action("remove") class="inline">
                {csrf_field(csrf.to_owned())}
                " "<button type="submit" class="danger" id=format!("remove-member-{user}")>"Remove"</button>
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

#[derive(Debug, Default, Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

pub(super) async fn add_member(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted { session, form }: Posted<MemberForm>,
) -> Response {
    let username = form.username.trim().to_owned();
    let result = async {
        let member = pb::Member { role: parse_role(&form.role)?, state: pb::member::State::Active as i32 };
        let request = pb::AddProjectMemberRequest {
            project: name.clone(),
            username: username.clone(),
            member: Some(member),
        };
        state.api.workspace().add_project_member(authed(&session.token, request)).await?;
        Ok::<_, WebError>(())
    }
    .await;
    match result {
        Ok(()) => {
            let notice = format!("Added {username} to project {name} as {}.", form.role.trim());
            see_other(&format!("/projects/{}", seg(&name)), &notice).into_response()
        }
        Err(error) => {
            let input =
                ProjectInput { member_username: form.username, member_role: form.role, ..Default::default() };
            render_project(&state, &session, &name, input, None, Some(error)).await
        }
    }
}

/// Rewrites `user`'s membership with `change` applied to what the API has now.
async fn rewrite_member(
    state: &AppState,
    session: &Session,
    project: &str,
    user: &str,
    change: impl FnOnce(&mut pb::Member),
) -> Result<(), WebError> {
    let mut client = state.api.workspace();
    let request = pb::GetProjectMemberRequest { project: project.to_owned(), member: user.to_owned() };
    let mut member = client
        .get_project_member(authed(&session.token, request))
        .await?
        .into_inner()
        .member
        .ok_or_else(|| WebError::NotFound(format!("{user} in project {project}")))?;
    change(&mut member);
    let request = pb::UpdateProjectMemberRequest {
        project: project.to_owned(),
        username: user.to_owned(),
        member: Some(member),
    };
    client.update_project_member(authed(&session.token, request)).await?;
    Ok(())
}

/// After a member action: back to the project with `notice`, or the page with the error.
async fn member_outcome(
    state: &AppState,
    session: &Session,
    project: &str,
    result: Result<(), WebError>,
    notice: String,
) -> Response {
    match result {
        Ok(()) => see_other(&format!("/projects/{}", seg(project)), &notice).into_response(),
        Err(error) => {
            render_project(state, session, project, ProjectInput::default(), None, Some(error)).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub(super) async fn change_role(
    State(state): State<AppState>,
    Path((project, user)): Path<(String, String)>,
    Posted { session, form }: Posted<RoleForm>,
) -> Response {
    let result = match parse_role(&form.role) {
        Ok(role) => rewrite_member(&state, &session, &project, &user, |m| m.role = role).await,
        Err(e) => Err(e),
    };
    let notice = format!("{user} is now {} of project {project}.", form.role.trim());
    member_outcome(&state, &session, &project, result, notice).await
}

#[derive(Debug, Default, Deserialize)]
pub struct EmptyForm {}

pub(super) async fn approve_member(
    State(state): State<AppState>,
    Path((project, user)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let active = pb::member::State::Active as i32;
    let result = rewrite_member(&state, &session, &project, &user, |m| m.state = active).await;
    let notice = format!("Approved {user}'s membership of project {project}.");
    member_outcome(&state, &session, &project, result, notice).await
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    Path((project, user)): Path<(String, String)>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Response {
    let request = pb::DeleteProjectMemberRequest { project: project.clone(), member: user.clone() };
    let result = state.api.workspace().delete_project_member(authed(&session.token, request)).await;
    let notice = format!("Removed {user} from project {project}.");
    member_outcome(&state, &session, &project, result.map(drop).map_err(WebError::from), notice).await
}
