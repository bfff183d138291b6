//! The dashboard: everything the signed-in user has, with its state.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use leptos::prelude::*;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::layout::Page;
use crate::pages::util::{Flash, access_mode_name, seg, user_state_name, viewer};
use crate::session::MaybeSignedIn;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

async fn dashboard(
    State(state): State<AppState>,
    MaybeSignedIn(session): MaybeSignedIn,
    Query(flash): Query<Flash>,
) -> Result<Response, WebError> {
    let Some(session) = session else {
        return Ok(Redirect::to("/login").into_response());
    };
    Ok(render(&state, &session, flash).await?.into_response())
}

/// The dashboard page (also what the render benchmark measures).
pub async fn render(
    state: &AppState,
    session: &crate::session::Session,
    flash: Flash,
) -> Result<Html<String>, WebError> {
    let user = viewer(state, session).await?;
    let token = &session.token;
    let mine = pb::FilterMode::ByUser as i32;
    let (mut projects_client, mut experiments_client) = (state.api.workspace(), state.api.workspace());
    let (projects, experiments, realizations, materializations, xdcs) = tokio::join!(
        projects_client.get_projects(authed(token, pb::GetProjectsRequest { filter: mine })),
        experiments_client.get_experiments(authed(token, pb::GetExperimentsRequest { filter: mine })),
        super::realizations::dashboard_realizations(state, session),
        super::realizations::dashboard_materializations(state, session),
        super::xdcs::dashboard_xdcs(state, session),
    );
    let mut projects = projects?.into_inner().projects;
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut experiments = experiments?.into_inner().experiments;
    experiments.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));

    let account_state = user_state_name(user.state);
    let pending = (account_state != "Active").then(|| {
        view! {
            <div class="banner error" role="alert" id="account-state">
                "Your account is " <strong>{account_state}</strong>
                ". An administrator must activate it before you can create projects or experiments."
            </div>
        }
    });
    let project_rows = projects
        .into_iter()
        .map(|p| {
            let href = format!("/projects/{}", seg(&p.name));
            let members = p.members.len();
            let experiments = p.experiments.len();
            let mode = access_mode_name(p.access_mode);
            view! {
                <tr>
                    <td><a href=href>{p.name}</a></td>
                    <td>{p.description}</td>
                    <td>{members}</td>
                    <td>{experiments}</td>
                    <td>{mode}</td>
                </tr>
            }
        })
        .collect_view();
    let experiment_rows = experiments
        .into_iter()
        .map(|e| {
            let href = format!("/projects/{}/experiments/{}", seg(&e.project), seg(&e.name));
            let revisions = e.models.len();
            view! {
                <tr>
                    <td><a href=href>{e.name}</a></td>
                    <td>{e.project}</td>
                    <td>{e.description}</td>
                    <td>{revisions}</td>
                </tr>
            }
        })
        .collect_view();
    let page = Page::new("Dashboard").session(session).admin(user.admin).notice(flash.notice);
    Ok(page.render(view! {
        {pending}
        <section id="projects">
            <h2>"Projects " <a class="muted" href="/projects">"(manage)"</a></h2>
            <table>
                <thead><tr><th>"Name"</th><th>"Description"</th><th>"Members"</th><th>"Experiments"</th><th>"Access"</th></tr></thead>
                <tbody>{project_rows}</tbody>
            </table>
        </section>
        <section id="experiments">
            <h2>"Experiments"</h2>
            <table>
                <thead><tr><th>"Name"</th><th>"Project"</th><th>"Description"</th><th>"Revisions"</th></tr></thead>
                <tbody>{experiment_rows}</tbody>
            </table>
        </section>
        {realizations?}
        {materializations?}
        {xdcs?}
    }))
}
