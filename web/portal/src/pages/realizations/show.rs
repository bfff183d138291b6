//! A realization's page and its actions, and the dashboard's realization and materialization
//! tables.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use super::tree::{materialization_tree, realization_tree};
use super::{ConfirmForm, duration_of, realization_path, short, status_name, still_changing, when};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::experiments::experiment_path;
use crate::pages::util::{Flash, page, see_other, seg};
use crate::session::{Session, SignedIn};

type Names = (String, String, String);

/// The response, or `None` when the API says there is no such thing.
fn found<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<Option<T>, WebError> {
    match result {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        Err(status) => Err(status.into()),
    }
}

pub async fn realization(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(names): Path<Names>,
    Query(flash): Query<Flash>,
) -> Result<Html<String>, WebError> {
    render(&state, &session, &names, "", flash.notice, None).await
}

async fn render(
    state: &AppState,
    session: &Session,
    (project, experiment, name): &Names,
    extend_to: &str,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let token = &session.token;
    let (mut realize, mut status, mut details) =
        (state.api.realize(), state.api.materialize(), state.api.materialize());
    let (p, e, r) = (project.clone(), experiment.clone(), name.clone());
    let get = pb::GetRealizationRequest {
        project: p.clone(),
        experiment: e.clone(),
        realization: r.clone(),
        status_ms: 0,
    };
    let tasks = pb::GetMaterializationStatusRequest {
        project: p.clone(),
        experiment: e.clone(),
        realization: r.clone(),
    };
    let mat = pb::GetMaterializationRequest {
        project: p,
        experiment: e,
        realization: r,
        status_ms: 0,
        include_materialization_data: false,
        include_ingresses: true,
    };
    let (response, tasks, mat) = tokio::join!(
        realize.get_realization(authed(token, get)),
        status.get_materialization_status(authed(token, tasks)),
        details.get_materialization(authed(token, mat)),
    );
    let response = response?.into_inner();
    let forest = found(tasks)?.and_then(|t| t.status);
    let mat = found(mat)?;
    let result = response.result.unwrap_or_default();
    let r = result.realization.unwrap_or_default();
    let diagnostics = result.diagnostics.map(|d| d.value).unwrap_or_default();
    let realization_status = response.status.as_ref().map_or(0, |t| t.highest_status);

    // Reload while something is still changing: a realization being relinquished, or a
    // materialization coming up or going down.
    let busy = !r.complete || forest.as_ref().is_some_and(|f| still_changing(f.highest_status));
    let refresh = busy.then(|| u32::try_from(state.config.refresh_interval.as_secs().max(1)).unwrap_or(2));

    let path = realization_path(project, experiment, name);
    let revision_href = format!("{}/revisions/{}", experiment_path(project, experiment), seg(&r.xhash));
    let tree = realization_tree(&r, realization_status, &diagnostics);
    let materialization = match &forest {
        Some(forest) => {
            let action = format!("{path}/dematerialize");
            let state_text = status_name(forest.highest_status);
            view! {
                <p id="materialization-state">"Materialization: " {badge(state_text)}</p>
                {materialization_tree(forest)}
                <form method="post" action=action class="inline" id="dematerialize-form">
                    {csrf_field(session.csrf())}
                    <button type="submit" class="secondary" id="dematerialize">"Dematerialize"</button>
                </form>
            }
            .into_any()
        }
        None => {
            let action = format!("{path}/materialize");
            view! {
                <p id="materialization-state" class="muted">"Not materialized."</p>
                <form method="post" action=action class="inline" id="materialize-form">
                    {csrf_field(session.csrf())}
                    <button type="submit" id="materialize">"Materialize"</button>
                </form>
            }
            .into_any()
        }
    };
    let ingresses = mat.and_then(|m| m.ingresses).map(|i| i.ingresses).unwrap_or_default();
    let ingresses = (!ingresses.is_empty()).then(|| {
        let rows = ingresses
            .into_iter()
            .map(|i| {
                view! {
                    <tr>
                        <td>{i.protocol}</td>
                        <td>{i.hostname}</td>
                        <td>{i.hostport}</td>
                        <td><code>{i.ingress}</code></td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <h2>"Ingresses"</h2>
            <table id="ingresses-table">
                <thead><tr><th>"Protocol"</th><th>"Node"</th><th>"Port"</th><th>"Reachable at"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        }
    });
    let extend_error = error.and_then(|e| e.field("duration")).map(str::to_owned);
    let (extend_action, relinquish_action) = (format!("{path}/extend"), format!("{path}/relinquish"));
    let extend_to = extend_to.to_owned();
    let title = format!("Realization {name}.{experiment}.{project}");
    let page = page(state, session, title).await?.notice(notice).error(error).refresh_every(refresh);
    Ok(page.render(view! {
        <section class="card" id="realization-details">
            <p>
                "Revision " <a href=revision_href><code>{short(&r.xhash)}</code></a>
                " · created by " {r.creator.clone()} " " {when(r.created.as_ref().map(|t| t.seconds))}
                " · expires " <span id="realization-expires">{when(r.expires.as_ref().map(|t| t.seconds))}</span>
                " · " {badge(if r.complete { "Complete" } else { "Relinquishing" })}
            </p>
            <p>{format!("{} node(s), {} link(s)", r.nodes.len(), r.links.len())}</p>
        </section>
        {tree}
        <h2>"Materialization"</h2>
        {materialization}
        {ingresses}
        <h2>"Lifetime"</h2>
        <form method="post" action=extend_action class="card" id="extend-form">
            {csrf_field(session.csrf())}
            <label for="extend-duration">"New duration from now (for example 2w, 3d12h, or never)"</label>
            <input type="text" id="extend-duration" name="duration" value=extend_to required/>
            {extend_error.map(|m| view! { <div class="field-error">{m}</div> })}
            <p><button type="submit" id="extend">"Extend"</button></p>
        </form>
        <form method="post" action=relinquish_action class="card" id="relinquish-form">
            {csrf_field(session.csrf())}
            <label><input type="checkbox" id="relinquish-confirm" name="confirm" value="yes" required/>
                " Free this realization's resources (its materialization is torn down first)"</label>
            <p><button type="submit" class="danger" id="relinquish">"Relinquish"</button></p>
        </form>
    }))
}

/// Re-renders the realization page with the API's refusal.
async fn refused(
    state: &AppState,
    session: &Session,
    names: &Names,
    extend_to: &str,
    err: WebError,
) -> Result<Response, WebError> {
    let html = render(state, session, names, extend_to, None, Some(&err)).await?;
    Ok((err.http_status(), html).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ExtendForm {
    #[serde(default)]
    duration: String,
}

pub async fn extend(
    State(state): State<AppState>,
    Path(names): Path<Names>,
    Posted { session, form }: Posted<ExtendForm>,
) -> Result<Response, WebError> {
    let (project, experiment, realization) = names.clone();
    let Some(duration) = duration_of(&form.duration) else {
        let err = WebError::BadInput("say how long the realization should last, e.g. 7d".to_owned());
        return refused(&state, &session, &names, &form.duration, err).await;
    };
    let request = pb::UpdateRealizationRequest { project, experiment, realization, duration: Some(duration) };
    let mut client = state.api.realize();
    match client.update_realization(authed(&session.token, request)).await {
        Ok(r) => {
            let expires = when(r.into_inner().expires.map(|t| t.seconds));
            let path = realization_path(&names.0, &names.1, &names.2);
            Ok(see_other(&path, &format!("The realization now expires {expires}")).into_response())
        }
        Err(status) => refused(&state, &session, &names, &form.duration, status.into()).await,
    }
}

pub async fn relinquish(
    State(state): State<AppState>,
    Path(names): Path<Names>,
    Posted { session, form }: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    if form.confirm != "yes" {
        let err = WebError::BadInput("tick the box to confirm relinquishing".to_owned());
        return refused(&state, &session, &names, "", err).await;
    }
    let (project, experiment, realization) = names.clone();
    let request = pb::RelinquishRequest { project, experiment, realization };
    let mut client = state.api.realize();
    match client.relinquish(authed(&session.token, request)).await {
        Ok(_) => {
            let notice = format!("Relinquished {}.{}.{}", names.2, names.1, names.0);
            Ok(see_other(&experiment_path(&names.0, &names.1), &notice).into_response())
        }
        Err(status) => refused(&state, &session, &names, "", status.into()).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct EmptyForm {}

pub async fn materialize(
    State(state): State<AppState>,
    Path(names): Path<Names>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Result<Response, WebError> {
    let (project, experiment, realization) = names.clone();
    let request = pb::MaterializeRequest { project, experiment, realization, ver: 0 };
    let mut client = state.api.materialize();
    match client.materialize(authed(&session.token, request)).await {
        Ok(_) => {
            let path = realization_path(&names.0, &names.1, &names.2);
            Ok(see_other(&path, "Materializing: this page follows it until it is up").into_response())
        }
        Err(status) => refused(&state, &session, &names, "", status.into()).await,
    }
}

pub async fn dematerialize(
    State(state): State<AppState>,
    Path(names): Path<Names>,
    Posted { session, .. }: Posted<EmptyForm>,
) -> Result<Response, WebError> {
    let (project, experiment, realization) = names.clone();
    let request = pb::DematerializeRequest { project, experiment, realization };
    let mut client = state.api.materialize();
    match client.dematerialize(authed(&session.token, request)).await {
        Ok(_) => {
            let path = realization_path(&names.0, &names.1, &names.2);
            Ok(see_other(&path, "Dematerializing").into_response())
        }
        Err(status) => refused(&state, &session, &names, "", status.into()).await,
    }
}

/// A dashboard section on a portal that cannot do this (started without model support): the
/// API's reason instead of a table, and the rest of the dashboard still shows.
fn unavailable(id: &'static str, heading: &'static str, why: &str) -> AnyView {
    let (table, why) = (format!("{id}-table"), why.to_owned());
    view! {
        <section id=id>
            <h2>{heading}</h2>
            <p class="muted">{why}</p>
            <table id=table><tbody></tbody></table>
        </section>
    }
    .into_any()
}

/// The dashboard's realizations table (the signed-in user's).
pub async fn dashboard_realizations(state: &AppState, session: &Session) -> Result<AnyView, WebError> {
    let mut client = state.api.realize();
    let request = pb::GetRealizationsRequest { filter: pb::FilterMode::ByUser as i32, summary: true };
    let results = match client.get_realizations(authed(&session.token, request)).await {
        Ok(r) => r.into_inner().results,
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            return Ok(unavailable("realizations", "Realizations", s.message()));
        }
        Err(s) => return Err(s.into()),
    };
    let mut list: Vec<pb::RealizationSummary> = results.into_iter().filter_map(|r| r.summary).collect();
    list.sort_by(|a, b| (&a.pid, &a.eid, &a.id).cmp(&(&b.pid, &b.eid, &b.id)));
    let rows = list
        .into_iter()
        .map(|s| {
            let href = realization_path(&s.pid, &s.eid, &s.id);
            let experiment_href = experiment_path(&s.pid, &s.eid);
            let id = format!("realization-{}-{}-{}", s.id, s.eid, s.pid);
            let status = if s.complete { "Complete" } else { "Incomplete" };
            view! {
                <tr id=id>
                    <td><a href=href>{format!("{}.{}.{}", s.id, s.eid, s.pid)}</a></td>
                    <td><a href=experiment_href>{format!("{}.{}", s.eid, s.pid)}</a></td>
                    <td><code>{short(&s.xhash)}</code></td>
                    <td>{s.num_nodes}</td>
                    <td>{s.num_links}</td>
                    <td>{when(s.expires.as_ref().map(|t| t.seconds))}</td>
                    <td>{badge(status)}</td>
                </tr>
            }
        })
        .collect_view();
    Ok(view! {
        <section id="realizations">
            <h2>"Realizations"</h2>
            <table id="realizations-table">
                <thead><tr><th>"Realization"</th><th>"Experiment"</th><th>"Revision"</th><th>"Nodes"</th><th>"Links"</th><th>"Expires"</th><th>"Status"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
    .into_any())
}

/// The dashboard's materializations table (the signed-in user's).
pub async fn dashboard_materializations(state: &AppState, session: &Session) -> Result<AnyView, WebError> {
    let mut client = state.api.materialize();
    let request = pb::GetMaterializationsRequest {
        filter: pb::FilterMode::ByUser as i32,
        include_status: true,
        ..Default::default()
    };
    let response = match client.get_materializations(authed(&session.token, request)).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            return Ok(unavailable("materializations", "Materializations", s.message()));
        }
        Err(s) => return Err(s.into()),
    };
    // The portal answers the summaries and their statuses in the same order.
    let mut list: Vec<(pb::MaterializationSummary, i32)> = response
        .summaries
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, response.task_summaries.get(i).map_or(0, |t| t.highest_status)))
        .collect();
    list.sort_by(|(a, _), (b, _)| (&a.pid, &a.eid, &a.rid).cmp(&(&b.pid, &b.eid, &b.rid)));
    let rows = list
        .into_iter()
        .map(|(s, status)| {
            let href = realization_path(&s.pid, &s.eid, &s.rid);
            let id = format!("materialization-{}-{}-{}", s.rid, s.eid, s.pid);
            view! {
                <tr id=id>
                    <td><a href=href>{format!("{}.{}.{}", s.rid, s.eid, s.pid)}</a></td>
                    <td>{s.num_metal}</td>
                    <td>{s.num_virtual}</td>
                    <td>{s.num_links}</td>
                    <td>{badge(status_name(status))}</td>
                </tr>
            }
        })
        .collect_view();
    Ok(view! {
        <section id="materializations">
            <h2>"Materializations"</h2>
            <table id="materializations-table">
                <thead><tr><th>"Materialization"</th><th>"Metal"</th><th>"VMs"</th><th>"Links"</th><th>"Status"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
    .into_any())
}
