//! Revisions and what is made of them: a revision's topology and the Realize form, a
//! realization with its status tree (extend, relinquish, materialize, dematerialize), the
//! materialization's task tree and ingresses, and the dashboard's tables of both.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;
use trellis_api::xir;

use super::experiments::{ConfirmForm, experiment_path};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::util::{Flash, page, see_other, seg};
use crate::session::{Session, SignedIn};

mod show;
mod tree;

pub use show::{dashboard_materializations, dashboard_realizations};

const REVISION: &str = "/projects/{p}/experiments/{e}/revisions/{rev}";
const REALIZATION: &str = "/projects/{p}/experiments/{e}/realizations/{r}";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(REVISION, get(revision))
        .route(&format!("{REVISION}/realize"), post(realize))
        .route(REALIZATION, get(show::realization))
        .route(&format!("{REALIZATION}/extend"), post(show::extend))
        .route(&format!("{REALIZATION}/relinquish"), post(show::relinquish))
        .route(&format!("{REALIZATION}/materialize"), post(show::materialize))
        .route(&format!("{REALIZATION}/dematerialize"), post(show::dematerialize))
}

/// A realization's page.
pub fn realization_path(project: &str, experiment: &str, realization: &str) -> String {
    format!("{}/realizations/{}", experiment_path(project, experiment), seg(realization))
}

/// The first 12 characters of a revision id, enough to recognize it.
pub fn short(revision: &str) -> String {
    revision.get(..12).unwrap_or(revision).to_owned()
}

/// A point in time (seconds since the epoch) in UTC; `never` when there is none.
pub fn when(seconds: Option<i64>) -> String {
    let Some(seconds) = seconds.filter(|s| *s > 0) else {
        return "never".to_owned();
    };
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// `N node(s), M link(s)` (and LANs) of a network.
pub fn counts(net: &xir::Network) -> String {
    let lans = net.links.iter().filter(|l| l.endpoints.len() > 2).count();
    let links = net.links.len() - lans;
    let mut text = format!("{} node(s), {links} link(s)", net.nodes.len());
    if lans > 0 {
        text.push_str(&format!(", {lans} LAN(s)"));
    }
    text
}

/// The topology drawing for embedding in a page (without an XML declaration, which HTML does
/// not take).
pub fn inline_svg(net: &xir::Network) -> String {
    let svg = trellis_topology::svg(net);
    match (svg.trim_start().starts_with("<?xml"), svg.find("?>")) {
        (true, Some(end)) => svg[end + 2..].trim_start().to_owned(),
        _ => svg,
    }
}

/// The realizations of one experiment the user may see, by name.
pub async fn realizations_of(
    state: &AppState,
    session: &Session,
    project: &str,
    experiment: &str,
) -> Result<Vec<pb::RealizationSummary>, WebError> {
    let mut client = state.api.realize();
    let request = pb::GetRealizationsRequest { filter: pb::FilterMode::ByAll as i32, summary: true };
    let results = match client.get_realizations(authed(&session.token, request)).await {
        Ok(r) => r.into_inner().results,
        // A portal without model support has no realizations.
        Err(s) if s.code() == tonic::Code::FailedPrecondition => return Ok(Vec::new()),
        Err(s) => return Err(s.into()),
    };
    let mut list: Vec<pb::RealizationSummary> = results
        .into_iter()
        .filter_map(|r| r.summary)
        .filter(|s| s.pid == project && s.eid == experiment)
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(list)
}

/// The name of a task status (`Success`, `Pending`, ...).
pub fn status_name(value: i32) -> &'static str {
    pb::task_status::StatusType::try_from(value).map(|s| s.as_str_name()).unwrap_or("Undefined")
}

/// Whether a task in this state may still change on its own (so the page should reload).
pub fn still_changing(value: i32) -> bool {
    use pb::task_status::StatusType as S;
    !matches!(S::try_from(value), Ok(S::Success | S::Error))
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct RealizeForm {
    #[serde(default)]
    name: String,
    /// Merge's duration text (`7d`, `2w3d4h`), or `never`; empty means the portal's default.
    #[serde(default)]
    duration: String,
}

/// Merge's `Duration` for what a form says.
pub fn duration_of(text: &str) -> Option<pb::Duration> {
    match text.trim() {
        "" => None,
        t if t.eq_ignore_ascii_case("never") => {
            Some(pb::Duration { when: pb::DurationCode::Never as i32, duration: String::new() })
        }
        t => Some(pb::Duration { when: pb::DurationCode::Given as i32, duration: t.to_owned() }),
    }
}

async fn revision(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((project, experiment, rev)): Path<(String, String, String)>,
    Query(flash): Query<Flash>,
) -> Result<Html<String>, WebError> {
    let form = RealizeForm::default();
    render_revision(&state, &session, [&project, &experiment, &rev], &form, flash.notice, None).await
}

async fn render_revision(
    state: &AppState,
    session: &Session,
    [project, experiment, rev]: [&str; 3],
    form: &RealizeForm,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let mut client = state.api.workspace();
    let request = pb::GetRevisionRequest {
        project: project.to_owned(),
        experiment: experiment.to_owned(),
        revision: rev.to_owned(),
        encoding: pb::GetRevisionRequestEncoding::None as i32,
    };
    let (response, realizations) = tokio::join!(
        client.get_revision(authed(&session.token, request)),
        realizations_of(state, session, project, experiment),
    );
    let response = response?.into_inner();
    let net = response.model.and_then(|m| m.model).unwrap_or_default();
    let realized = realizations?
        .into_iter()
        .filter(|r| !rev.is_empty() && r.xhash.starts_with(rev))
        .map(|r| {
            let href = realization_path(project, experiment, &r.id);
            view! { <li><a href=href>{r.id}</a> " " {badge(if r.complete { "Complete" } else { "Incomplete" })}</li> }
        })
        .collect_view();
    let action = format!("{}/revisions/{}/realize", experiment_path(project, experiment), seg(rev));
    let back = experiment_path(project, experiment);
    let name_error = error.and_then(|e| e.field("realization").or(e.field("name"))).map(str::to_owned);
    let duration_error =
        error.and_then(|e| e.field("duration").or(e.field("duration.when"))).map(str::to_owned);
    let (name, duration) = (form.name.clone(), form.duration.clone());
    let (svg, counts, summary, source) =
        (inline_svg(&net), counts(&net), xir_summary(&net), response.model_file);
    let title = format!("Revision {} of {experiment}.{project}", short(rev));
    let page = page(state, session, title).await?.notice(notice).error(error);
    Ok(page.render(view! {
        <p><a href=back>"Back to the experiment"</a> " · " <code id="revision-id">{rev.to_owned()}</code></p>
        <p id="revision-counts"><strong>{counts}</strong></p>
        <div id="topology" class="topology" inner_html=svg></div>
        <form method="post" action=action class="card" id="realize-form">
            {csrf_field(session.csrf())}
            <h2>"Realize"</h2>
            <label for="realization-name">"Realization name"</label>
            <input type="text" id="realization-name" name="name" value=name required/>
            {name_error.map(|m| view! { <div class="field-error">{m}</div> })}
            <label for="realization-duration">"Duration (for example 7d, 2w3d4h, or never; empty: 7d)"</label>
            <input type="text" id="realization-duration" name="duration" value=duration placeholder="7d"/>
            {duration_error.map(|m| view! { <div class="field-error">{m}</div> })}
            <p><button type="submit" id="realize">"Realize"</button></p>
        </form>
        <h2>"Realizations of this revision"</h2>
        <ul id="revision-realizations">{realized}</ul>
        {summary}
        <details id="revision-source"><summary>"model.py"</summary><pre>{source}</pre></details>
    }))
}

/// The XIR in two tables: nodes with their constraints, links with their endpoints. The
/// constraints read as in the topology's hover titles, in mergexp's units.
fn xir_summary(net: &xir::Network) -> impl IntoView + use<> {
    let nodes = net
        .nodes
        .iter()
        .map(|n| {
            let wants = trellis_topology::node_constraints(n).join(", ");
            view! { <tr><td>{n.id.clone()}</td><td>{n.sockets.len()}</td><td>{wants}</td></tr> }
        })
        .collect_view();
    let links = net
        .links
        .iter()
        .map(|l| {
            let ends: Vec<String> =
                l.endpoints.iter().filter_map(|e| e.socket.as_ref()).map(|s| s.element.clone()).collect();
            let wants = trellis_topology::link_constraints(l).join(", ");
            view! { <tr><td>{l.id.clone()}</td><td>{ends.join(" — ")}</td><td>{wants}</td></tr> }
        })
        .collect_view();
    view! {
        <section id="xir-summary">
            <h2>"Model summary" <span class="muted">{format!(" network {}", net.id)}</span></h2>
            <div class="grid">
                <table id="xir-nodes">
                    <thead><tr><th>"Node"</th><th>"Sockets"</th><th>"Constraints"</th></tr></thead>
                    <tbody>{nodes}</tbody>
                </table>
                <table id="xir-links">
                    <thead><tr><th>"Link"</th><th>"Endpoints"</th><th>"Constraints"</th></tr></thead>
                    <tbody>{links}</tbody>
                </table>
            </div>
        </section>
    }
}

/// `cores ≥ 4`; empty when the constraint has no operator.
async fn realize(
    State(state): State<AppState>,
    Path((project, experiment, rev)): Path<(String, String, String)>,
    Posted { session, form }: Posted<RealizeForm>,
) -> Result<Response, WebError> {
    let name = form.name.trim().to_owned();
    let request = pb::RealizeRequest {
        project: project.clone(),
        experiment: experiment.clone(),
        realization: name.clone(),
        revision: rev.clone(),
        duration: duration_of(&form.duration),
        ..Default::default()
    };
    let mut client = state.api.realize();
    let err = match client.realize(authed(&session.token, request)).await {
        // Merge may answer a failed realization with an OK status and a failure code.
        Ok(r) if r.get_ref().code != pb::RealizeResponseCode::Ok as i32 => {
            let r = r.into_inner();
            let code = pb::RealizeResponseCode::try_from(r.code).map_or("failed", |c| c.as_str_name());
            let details: Vec<String> = r.diagnostics.iter().map(|d| d.message.clone()).collect();
            WebError::BadInput(format!("{name} was not realized ({code}): {}", details.join("; ")))
        }
        Ok(_) => {
            let path = realization_path(&project, &experiment, &name);
            return Ok(see_other(&path, &format!("Realized {name}.{experiment}.{project}")).into_response());
        }
        Err(status) => WebError::from(status),
    };
    let html =
        render_revision(&state, &session, [&project, &experiment, &rev], &form, None, Some(&err)).await?;
    Ok((err.http_status(), html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(when(Some(0)), "never");
        assert_eq!(when(None), "never");
        assert_eq!(when(Some(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(when(Some(1_763_829_000)), "2025-11-22 16:30 UTC");
    }

    #[test]
    fn durations_follow_merge() {
        assert!(duration_of("  ").is_none());
        assert_eq!(duration_of("never").map(|d| d.when), Some(pb::DurationCode::Never as i32));
        let given = duration_of(" 2w3d ").unwrap();
        assert_eq!((given.when, given.duration.as_str()), (pb::DurationCode::Given as i32, "2w3d"));
    }

    #[test]
    fn statuses_say_when_to_reload() {
        assert!(still_changing(pb::task_status::StatusType::Pending as i32));
        assert!(!still_changing(pb::task_status::StatusType::Success as i32));
        assert!(!still_changing(pb::task_status::StatusType::Error as i32));
        assert_eq!(status_name(99), "Undefined");
    }

    #[test]
    fn counts_tell_lans_from_links() {
        let end = |n: &str| xir::Endpoint {
            socket: Some(xir::Ref { element: n.into(), ..Default::default() }),
            ..Default::default()
        };
        let net = xir::Network {
            nodes: vec![xir::Node::default(); 3],
            links: vec![
                xir::Link { endpoints: vec![end("a"), end("b")], ..Default::default() },
                xir::Link { endpoints: vec![end("a"), end("b"), end("c")], ..Default::default() },
            ],
            ..Default::default()
        };
        assert_eq!(counts(&net), "3 node(s), 1 link(s), 1 LAN(s)");
    }
}
