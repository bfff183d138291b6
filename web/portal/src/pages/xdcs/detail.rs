//! One XDC: its details and SSH lines, and the attach, detach and delete forms.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use super::ssh::{node_command, ssh_name, utc};
use super::{
    Row, attached_cell, field_error, jump, jupyter_link, ssh_cell, ssh_setup, state_cell, status_of,
    type_name, with_status,
};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{Page, csrf_field};
use crate::pages::util::{Flash, see_other, seg, viewer};
use crate::session::{Session, SignedIn};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AttachForm {
    /// `<realization>.<experiment>.<project>` from the list of materializations.
    #[serde(default)]
    mzid: String,
    #[serde(default)]
    realization_project: String,
    #[serde(default)]
    experiment: String,
    #[serde(default)]
    realization: String,
    #[serde(default)]
    force: String,
}

impl AttachForm {
    /// (project, experiment, realization): the text fields when filled in, else the chosen
    /// materialization.
    fn target(&self, xdc_project: &str) -> (String, String, String) {
        let (experiment, realization) = (self.experiment.trim(), self.realization.trim());
        if experiment.is_empty() && realization.is_empty() {
            let mut parts = self.mzid.trim().splitn(3, '.');
            let (r, e, p) = (parts.next(), parts.next(), parts.next());
            return (
                p.unwrap_or_default().to_owned(),
                e.unwrap_or_default().to_owned(),
                r.unwrap_or_default().to_owned(),
            );
        }
        let project = self.realization_project.trim();
        let project = if project.is_empty() { xdc_project } else { project };
        (project.to_owned(), experiment.to_owned(), realization.to_owned())
    }
}

pub(super) async fn detail_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((project, name)): Path<(String, String)>,
    Query(flash): Query<Flash>,
) -> Result<Response, WebError> {
    render_detail(&state, &session, &project, &name, flash.notice, &AttachForm::default(), None).await
}

/// Materializations the caller may attach to, for the select; a portal without experiment
/// support has none, and the text fields still work.
async fn materializations(state: &AppState, session: &Session) -> Vec<String> {
    let request =
        pb::GetMaterializationsRequestV2 { filter: pb::FilterMode::ByUser as i32, ..Default::default() };
    let mut client = state.api.materialize();
    match client.get_materializations_v2(authed(&session.token, request)).await {
        Ok(r) => {
            r.into_inner().materializations.iter().map(|m| format!("{}.{}.{}", m.rid, m.eid, m.pid)).collect()
        }
        Err(status) => {
            tracing::debug!(%status, "no materializations to offer for attaching");
            Vec::new()
        }
    }
}

/// The detail page again after a refused detach or delete (no attach input to keep).
async fn refused(
    state: &AppState,
    session: &Session,
    project: &str,
    name: &str,
    error: &WebError,
) -> Result<Response, WebError> {
    render_detail(state, session, project, name, None, &AttachForm::default(), Some(error)).await
}

async fn render_detail(
    state: &AppState,
    session: &Session,
    project: &str,
    name: &str,
    notice: Option<String>,
    form: &AttachForm,
    error: Option<&WebError>,
) -> Result<Response, WebError> {
    let user = viewer(state, session).await?;
    let page = Page::new(format!("XDC {name}.{project}")).session(session).admin(user.admin).notice(notice);
    let response = match status_of(state, session, project, name).await {
        Ok(r) => r,
        // The XDC is gone or hidden: the page says so in the API's words, keeping the navigation.
        Err(e) => {
            let html = page.error(Some(&e)).render(view! { <p><a href="/xdcs">"Back to XDCs"</a></p> });
            return Ok((e.http_status(), html).into_response());
        }
    };
    let row = Row {
        info: response.xdc.unwrap_or_default(),
        name: name.to_owned(),
        project: project.to_owned(),
        status: response.status,
    };
    let jump = jump(state, session, &user.username).await?;
    let mzids = materializations(state, session).await;
    let refresh =
        row.busy().then(|| u32::try_from(state.config.refresh_interval.as_secs().max(1)).unwrap_or(2));
    let xdc_host = ssh_name(&row.info, name, project);
    let username = user.username.clone();
    let node_help = jump.as_deref().map(|jump| {
        let through = node_command(&username, jump, &xdc_host, "<node>");
        view! {
            <h3>"An experiment node"</h3>
            <p>"From inside the XDC, once it is attached to a materialization:"</p>
            <pre id="ssh-node-inside">"ssh <node>"</pre>
            <p>"Or from your machine, through the jump host and the XDC in one go:"</p>
            <pre id="ssh-node-command">{through}</pre>
        }
    });
    let info = &row.info;
    let facts = vec![
        ("Type", type_name(info.r#type).to_owned()),
        ("Creator", info.creator.clone()),
        ("Image", info.image.clone()),
        ("CPU", format!("{} core(s)", info.cpulimit)),
        ("Memory", format!("{} GiB", info.memlimit)),
        ("SSH name", xdc_host.clone()),
        ("Expires", info.expires.map(|t| utc(t.seconds)).unwrap_or_else(|| "never".to_owned())),
    ]
    .into_iter()
    .map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> })
    .collect_view();
    let attached = !info.materialization.is_empty();
    let path = row.href();
    let f = form.clone();
    let mz_options = mzids
        .into_iter()
        .map(|m| {
            let (selected, value) = (m == f.mzid, m.clone());
            view! { <option value=value selected=selected>{m}</option> }
        })
        .collect_view();
    let detach_form = attached.then(|| {
        view! {
            <form method="post" action=format!("{path}/detach") class="inline" id="detach-form">
                {csrf_field(session.csrf())}
                <button type="submit" class="secondary" id="detach">"Detach"</button>
            </form>
        }
    });
    let attach_project =
        if f.realization_project.is_empty() { project.to_owned() } else { f.realization_project.clone() };
    let html = page.error(error).refresh_every(refresh).render(view! {
        <table id="xdc-details">
            <tbody>
                <tr><th>"State"</th><td>{state_cell(&row)}</td></tr>
                <tr><th>"Attached to"</th><td>{attached_cell(&row)} " " {detach_form}</td></tr>
                <tr><th>"Jupyter"</th><td>{jupyter_link(&row)}</td></tr>
                {facts}
            </tbody>
        </table>
        <section class="card" id="ssh">
            <h2>"SSH"</h2>
            <h3>"The XDC"</h3>
            <pre>{ssh_cell(&row, &username, jump.as_deref())}</pre>
            {node_help}
        </section>
        {ssh_setup()}
        <form method="post" action=format!("{path}/attach") class="card" id="attach-form">
            <h2>"Attach to a materialization"</h2>
            {csrf_field(session.csrf())}
            <label for="attach-mzid">"Materialization"</label>
            <select id="attach-mzid" name="mzid">
                <option value="">"— or name it below —"</option>
                {mz_options}
            </select>
            <label for="attach-project">"Project"</label>
            <input type="text" id="attach-project" name="realization_project" value=attach_project/>
            {field_error(error, "realization_project")}
            <label for="attach-experiment">"Experiment"</label>
            <input type="text" id="attach-experiment" name="experiment" value=f.experiment.clone()/>
            {field_error(error, "experiment")}
            <label for="attach-realization">"Realization"</label>
            <input type="text" id="attach-realization" name="realization" value=f.realization.clone()/>
            {field_error(error, "realization")}
            <label><input type="checkbox" id="attach-force" name="force" value="yes" checked=!f.force.is_empty()/>
                " Replace the current attachment"</label>
            <p><button type="submit" id="attach">"Attach"</button></p>
        </form>
        <form method="post" action=format!("{path}/delete") class="card" id="delete-xdc-form">
            <h2>"Delete"</h2>
            {csrf_field(session.csrf())}
            <label><input type="checkbox" id="confirm-delete" name="confirm" value="yes" required/>
                {format!(" Delete {name}.{project} and everything in its home directory")}</label>
            <p><button type="submit" class="danger" id="delete-xdc">"Delete XDC"</button></p>
        </form>
    });
    Ok(with_status(html, error))
}

pub(super) async fn attach(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Posted { session, form }: Posted<AttachForm>,
) -> Result<Response, WebError> {
    let (realization_project, experiment, realization) = form.target(&project);
    let request = pb::AttachXdcRequest {
        xdc: name.clone(),
        project: project.clone(),
        experiment: experiment.clone(),
        realization: realization.clone(),
        realization_project: realization_project.clone(),
        force: !form.force.is_empty(),
    };
    let mut client = state.api.xdc();
    match client.attach_xdc(authed(&session.token, request)).await {
        Ok(_) => {
            let notice =
                format!("Attaching {name}.{project} to {realization}.{experiment}.{realization_project}.");
            Ok(see_other(&format!("/xdcs/{}/{}", seg(&project), seg(&name)), &notice).into_response())
        }
        Err(status) => {
            render_detail(&state, &session, &project, &name, None, &form, Some(&WebError::from(status))).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DetachForm {}

pub(super) async fn detach(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Posted { session, .. }: Posted<DetachForm>,
) -> Result<Response, WebError> {
    let request = pb::DetachXdcRequest { xdc: name.clone(), project: project.clone(), ..Default::default() };
    let mut client = state.api.xdc();
    match client.detach_xdc(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other(
            &format!("/xdcs/{}/{}", seg(&project), seg(&name)),
            &format!("Detaching {name}.{project}."),
        )
        .into_response()),
        Err(status) => refused(&state, &session, &project, &name, &WebError::from(status)).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Posted { session, form }: Posted<DeleteForm>,
) -> Result<Response, WebError> {
    if form.confirm != "yes" {
        let error = WebError::BadInput(format!("tick the box to confirm deleting {name}.{project}"));
        return refused(&state, &session, &project, &name, &error).await;
    }
    let request = pb::DeleteXdcRequest { xdc: name.clone(), project: project.clone() };
    let mut client = state.api.xdc();
    match client.delete_xdc(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other("/xdcs", &format!("Deleted XDC {name}.{project}.")).into_response()),
        Err(status) => refused(&state, &session, &project, &name, &WebError::from(status)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_targets_come_from_the_fields_or_the_chosen_materialization() {
        let chosen = AttachForm { mzid: "r.e.p".into(), ..Default::default() };
        assert_eq!(chosen.target("lab"), ("p".into(), "e".into(), "r".into()));
        let typed = AttachForm {
            mzid: "r.e.p".into(),
            experiment: "e2".into(),
            realization: "r2".into(),
            ..Default::default()
        };
        assert_eq!(typed.target("lab"), ("lab".into(), "e2".into(), "r2".into()));
    }
}
