//! XDCs: the signed-in user's experiment development containers with their state, the Jupyter
//! link and the `ssh -J` line to paste (what `trellis xdc ssh` runs); create, attach, detach
//! and delete them.
//!
//! Which XDCs are listed is the API's answer to ListXDCs (everything the caller may read),
//! narrowed like `trellis list xdcs` without `--all`: the caller's own and their projects'.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::*;
use serde::Deserialize;
use tonic::Code;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{Page, badge, csrf_field};
use crate::pages::util::{Flash, see_other, seg, viewer};
use crate::session::{Session, SignedIn};

mod detail;
mod ssh;

use ssh::{jump_spec, ssh_command, ssh_name};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/xdcs", get(list_page).post(create))
        .route("/xdcs/{project}/{name}", get(detail::detail_page))
        .route("/xdcs/{project}/{name}/attach", post(detail::attach))
        .route("/xdcs/{project}/{name}/detach", post(detail::detach))
        .route("/xdcs/{project}/{name}/delete", post(detail::delete))
}

/// `<xdc>.<project>` split in two.
fn split_full_name(full: &str) -> (String, String) {
    match full.split_once('.') {
        Some((name, project)) => (name.to_owned(), project.to_owned()),
        None => (full.to_owned(), String::new()),
    }
}

fn status_type(tree: Option<&pb::TaskTree>) -> Option<pb::task_status::StatusType> {
    let value = tree?.task.as_ref()?.status_value;
    pb::task_status::StatusType::try_from(value).ok()
}

fn in_progress(s: Option<pb::task_status::StatusType>) -> bool {
    use pb::task_status::StatusType::*;
    matches!(s, Some(Pending | Processing))
}

/// The XDC's own state (the root of GetXDC's task tree) as a badge word.
fn xdc_state(tree: Option<&pb::TaskTree>) -> &'static str {
    use pb::task_status::StatusType::*;
    match status_type(tree) {
        Some(Success) => "Running",
        Some(Pending | Processing) => "Starting",
        Some(Error) => "Error",
        Some(other) => other.as_str_name(),
        None => "Unknown",
    }
}

/// The attachment's state (the task tree's one subtask), when an attachment is wanted.
fn attach_state(tree: Option<&pb::TaskTree>) -> Option<&'static str> {
    use pb::task_status::StatusType::*;
    let child = tree?.subtasks.first()?;
    Some(match status_type(Some(child)) {
        Some(Success) => "Attached",
        Some(Pending | Processing) => "Attaching",
        Some(Error) => "Attach error",
        Some(other) => other.as_str_name(),
        None => "Unknown",
    })
}

fn task_message(tree: Option<&pb::TaskTree>) -> String {
    tree.and_then(|t| t.task.as_ref())
        .and_then(|t| t.message.as_ref())
        .map(|m| m.message.clone())
        .unwrap_or_default()
}

/// One XDC as the pages show it.
struct Row {
    info: pb::XdcInfo,
    name: String,
    project: String,
    status: Option<pb::TaskTree>,
}

impl Row {
    fn key(&self) -> String {
        format!("{}-{}", self.name, self.project)
    }

    fn href(&self) -> String {
        format!("/xdcs/{}/{}", seg(&self.project), seg(&self.name))
    }

    fn jupyter(&self) -> String {
        self.info.urls.first().map(|u| u.url.clone()).unwrap_or_else(|| self.info.url.clone())
    }

    fn busy(&self) -> bool {
        let tree = self.status.as_ref();
        in_progress(status_type(tree)) || in_progress(status_type(tree.and_then(|t| t.subtasks.first())))
    }
}

async fn status_of(
    state: &AppState,
    session: &Session,
    project: &str,
    name: &str,
) -> Result<pb::GetXdcResponse, WebError> {
    let request = pb::GetXdcRequest { project: project.to_owned(), xdc: name.to_owned(), status_ms: 0 };
    let mut client = state.api.xdc();
    Ok(client.get_xdc(authed(&session.token, request)).await?.into_inner())
}

/// The XDCs listed for `user`: theirs and their projects' unless `all`, each with its status.
async fn load(state: &AppState, session: &Session, user: &pb::User, all: bool) -> Result<Vec<Row>, WebError> {
    let mut client = state.api.xdc();
    let listed =
        client.list_xd_cs(authed(&session.token, pb::ListXdCsRequest::default())).await?.into_inner().xd_cs;
    let mut rows = Vec::new();
    for info in listed {
        let (name, project) = split_full_name(&info.name);
        if !all && info.creator != user.username && !user.projects.contains_key(&project) {
            continue;
        }
        let status = match status_of(state, session, &project, &name).await {
            Ok(response) => response.status,
            // Deleted since it was listed.
            Err(WebError::Api { code: Code::NotFound, .. }) => continue,
            Err(e) => return Err(e),
        };
        rows.push(Row { info, name, project, status });
    }
    rows.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    Ok(rows)
}

/// The portal's first jump host as `-J` takes it; `None` when the portal names none.
async fn jump(state: &AppState, session: &Session, user: &str) -> Result<Option<String>, WebError> {
    let mut client = state.api.xdc();
    match client.get_xdc_jump_hosts(authed(&session.token, pb::GetXdcJumpHostsRequest {})).await {
        Ok(r) => Ok(r.into_inner().jump_hosts.first().map(|j| jump_spec(user, j))),
        Err(status) if status.code() == Code::Unimplemented => Ok(None),
        Err(status) => Err(status.into()),
    }
}

fn ssh_cell(row: &Row, user: &str, jump: Option<&str>) -> AnyView {
    let id = format!("ssh-command-{}", row.key());
    match jump {
        Some(jump) => {
            let command = ssh_command(user, jump, &ssh_name(&row.info, &row.name, &row.project));
            view! { <code id=id>{command}</code> }.into_any()
        }
        None => view! { <span class="muted" id=id>"the portal names no SSH jump host"</span> }.into_any(),
    }
}

fn jupyter_link(row: &Row) -> AnyView {
    let url = row.jupyter();
    if url.is_empty() {
        return view! { <span class="muted">"—"</span> }.into_any();
    }
    let id = format!("open-jupyter-{}", row.key());
    view! { <a id=id href=url target="_blank" rel="noopener">"Open Jupyter"</a> }.into_any()
}

fn state_cell(row: &Row) -> impl IntoView + use<> {
    let tree = row.status.as_ref();
    let message = task_message(tree);
    let message = (!message.is_empty()).then(|| view! { <div class="muted">{message}</div> });
    view! { {badge(xdc_state(tree))} {message} }
}

fn attached_cell(row: &Row) -> impl IntoView + use<> {
    let mzid = row.info.materialization.clone();
    let state = attach_state(row.status.as_ref()).map(badge);
    (!mzid.is_empty()).then(|| view! { <code>{mzid}</code> " " {state} })
}

fn type_name(kind: i32) -> &'static str {
    pb::XdcType::try_from(kind).map(|k| k.as_str_name()).unwrap_or("unknown")
}

/// The dashboard's XDC table (the signed-in user's).
pub async fn dashboard_xdcs(state: &AppState, session: &Session) -> Result<AnyView, WebError> {
    let user = viewer(state, session).await?;
    let rows = load(state, session, &user, false).await?;
    let empty = rows.is_empty().then(|| view! { <p class="muted">"No XDCs yet."</p> });
    let body = rows
        .into_iter()
        .map(|row| {
            let (href, name, project) = (row.href(), row.name.clone(), row.project.clone());
            view! {
                <tr>
                    <td><a href=href>{name}</a></td>
                    <td>{project}</td>
                    <td>{state_cell(&row)}</td>
                    <td>{attached_cell(&row)}</td>
                    <td>{jupyter_link(&row)}</td>
                </tr>
            }
        })
        .collect_view();
    Ok(view! {
        <section id="xdcs">
            <h2>"XDCs " <a class="muted" href="/xdcs">"(manage)"</a></h2>
            <table id="dashboard-xdcs">
                <thead><tr><th>"Name"</th><th>"Project"</th><th>"State"</th><th>"Attached to"</th><th>"Jupyter"</th></tr></thead>
                <tbody>{body}</tbody>
            </table>
            {empty}
        </section>
    }
    .into_any())
}

#[derive(Debug, Default, Deserialize)]
pub struct Scope {
    all: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    expires: String,
}

async fn list_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(flash): Query<Flash>,
    Query(scope): Query<Scope>,
) -> Result<Response, WebError> {
    let all = scope.all.is_some_and(|a| !a.is_empty() && a != "0");
    render_list(&state, &session, flash.notice, all, &CreateForm::default(), None).await
}

fn field_error(error: Option<&WebError>, field: &str) -> Option<impl IntoView + use<>> {
    error.and_then(|e| e.field(field)).map(|m| view! { <div class="field-error">{m.to_owned()}</div> })
}

async fn render_list(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
    all: bool,
    form: &CreateForm,
    error: Option<&WebError>,
) -> Result<Response, WebError> {
    let user = viewer(state, session).await?;
    let rows = load(state, session, &user, all).await?;
    let jump = jump(state, session, &user.username).await?;
    let busy = rows.iter().any(Row::busy);
    let refresh = busy.then(|| u32::try_from(state.config.refresh_interval.as_secs().max(1)).unwrap_or(2));
    let table = rows
        .iter()
        .map(|row| {
            let (id, href, name, project) =
                (format!("xdc-{}", row.key()), row.href(), row.name.clone(), row.project.clone());
            let (kind, creator) = (type_name(row.info.r#type), row.info.creator.clone());
            view! {
                <tr id=id>
                    <td><a href=href>{name}</a></td>
                    <td>{project}</td>
                    <td>{kind}</td>
                    <td>{creator}</td>
                    <td>{state_cell(row)}</td>
                    <td>{attached_cell(row)}</td>
                    <td>{jupyter_link(row)}</td>
                    <td>{ssh_cell(row, &user.username, jump.as_deref())}</td>
                </tr>
            }
        })
        .collect_view();
    let empty = rows.is_empty().then(|| view! { <p class="muted">"No XDCs yet: create one below."</p> });
    let scope_link = if all {
        view! { <a href="/xdcs">"Show only mine and my projects'"</a> }.into_any()
    } else {
        view! { <a href="/xdcs?all=1" id="show-all-xdcs">"Show every XDC I may see"</a> }.into_any()
    };
    let mut projects: Vec<String> = user.projects.keys().cloned().collect();
    projects.sort();
    let selected_project = if form.project.is_empty() { user.username.clone() } else { form.project.clone() };
    let project_options = projects
        .into_iter()
        .map(|p| {
            let (selected, value) = (p == selected_project, p.clone());
            view! { <option value=value selected=selected>{p}</option> }
        })
        .collect_view();
    let personal = form.kind == "personal";
    let f = form.clone();
    let page = Page::new("XDCs")
        .session(session)
        .admin(user.admin)
        .notice(notice)
        .error(error)
        .refresh_every(refresh);
    let html = page.render(view! {
        <p class="muted">
            "Experiment development containers: Jupyter in the browser, SSH through the portal's jump host. "
            {scope_link}
        </p>
        <table id="xdcs-table">
            <thead><tr>
                <th>"Name"</th><th>"Project"</th><th>"Type"</th><th>"Creator"</th><th>"State"</th>
                <th>"Attached to"</th><th>"Jupyter"</th><th>"SSH"</th>
            </tr></thead>
            <tbody>{table}</tbody>
        </table>
        {empty}
        {ssh_setup()}
        <form method="post" action="/xdcs" class="card" id="new-xdc-form">
            <h2>"New XDC"</h2>
            {csrf_field(session.csrf())}
            <label for="new-xdc-name">"Name"</label>
            <input type="text" id="new-xdc-name" name="name" value=f.name required/>
            {field_error(error, "xdc")}
            <label for="new-xdc-project">"Project"</label>
            <select id="new-xdc-project" name="project">{project_options}</select>
            {field_error(error, "project")}
            <label for="new-xdc-type">"Type"</label>
            <select id="new-xdc-type" name="kind">
                <option value="shared" selected=!personal>"shared: every project member may log in"</option>
                <option value="personal" selected=personal>"personal: only you, with all your projects mounted"</option>
            </select>
            {field_error(error, "type")}
            <label for="new-xdc-expires">"Expires after (optional, e.g. 1w2d; empty = never)"</label>
            <input type="text" id="new-xdc-expires" name="expires" value=f.expires/>
            {field_error(error, "duration")}
            <p><button type="submit" id="create-xdc">"Create XDC"</button></p>
        </form>
    });
    Ok(with_status(html, error))
}

/// What a browser-only user needs once before the `ssh -J` lines work.
fn ssh_setup() -> impl IntoView {
    view! {
        <details class="card" id="ssh-setup">
            <summary>"Before the first SSH login"</summary>
            <p>
                "Download your portal key, public key and certificate from "
                <a href="/account">"Account"</a>
                " into ~/.ssh (as merge_key, merge_key.pub and merge_key-cert.pub), then:"
            </p>
            <pre>"chmod 600 ~/.ssh/merge_key\nssh-add ~/.ssh/merge_key"</pre>
            <p class="muted">
                "ssh gives -i only to the last hop, so the jump host gets the key (with its certificate) from "
                "the agent. "
                <code>"trellis login"</code>
                " does all of this, and "
                <code>"trellis xdc ssh <xdc>.<project>"</code>
                " runs the same command."
            </p>
        </details>
    }
}

fn with_status(html: Html<String>, error: Option<&WebError>) -> Response {
    match error {
        Some(e) => (e.http_status(), html).into_response(),
        None => html.into_response(),
    }
}

fn duration(expires: &str) -> Option<pb::Duration> {
    let expires = expires.trim();
    (!expires.is_empty())
        .then(|| pb::Duration { when: pb::DurationCode::Given as i32, duration: expires.to_owned() })
}

async fn create(
    State(state): State<AppState>,
    Posted { session, form }: Posted<CreateForm>,
) -> Result<Response, WebError> {
    let kind = if form.kind == "personal" { pb::XdcType::Personal } else { pb::XdcType::Shared };
    let (name, project) = (form.name.trim().to_owned(), form.project.trim().to_owned());
    let request = pb::CreateXdcRequest {
        project: project.clone(),
        xdc: name.clone(),
        r#type: kind as i32,
        duration: duration(&form.expires),
        // Empty image and 0 limits ask for the portal's defaults.
        ..Default::default()
    };
    let mut client = state.api.xdc();
    match client.create_xdc(authed(&session.token, request)).await {
        Ok(_) => {
            Ok(see_other("/xdcs", &format!("Created XDC {name}.{project}; it is starting.")).into_response())
        }
        Err(status) => render_list(&state, &session, None, false, &form, Some(&WebError::from(status))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_come_from_the_task_tree() {
        use pb::task_status::StatusType;
        let tree = |s: StatusType| pb::TaskTree {
            task: Some(pb::TaskStatus { status_value: s as i32, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(xdc_state(Some(&tree(StatusType::Pending))), "Starting");
        assert_eq!(xdc_state(Some(&tree(StatusType::Success))), "Running");
        assert_eq!(xdc_state(None), "Unknown");
        let mut attaching = tree(StatusType::Success);
        attaching.subtasks.push(tree(StatusType::Pending));
        assert_eq!(attach_state(Some(&attaching)), Some("Attaching"));
        assert_eq!(attach_state(Some(&tree(StatusType::Success))), None);
        let row =
            Row { info: Default::default(), name: "x".into(), project: "p".into(), status: Some(attaching) };
        assert!(row.busy());
    }
}
