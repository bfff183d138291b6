//! Experiments: the user's list, creating one, and an experiment's page with its revisions and
//! the model editor (check, push, and errors pointing at the line of the source they name).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use leptos::prelude::*;
use prost::Message;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use trellis_api::portal::v1 as pb;
use trellis_api::xir;

use super::realizations::{realizations_of, short, when};
use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{badge, csrf_field};
use crate::pages::util::{Flash, access_mode_name, page, see_other, seg};
use crate::session::{Session, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments", get(list))
        // GET is the new-experiment page (a path no experiment name can shadow), POST creates.
        .route("/projects/{p}/experiments", get(new_page).post(create))
        .route("/projects/{p}/experiments/{e}", get(show))
        .route("/projects/{p}/experiments/{e}/model", post(model))
        .route("/projects/{p}/experiments/{e}/delete", post(delete))
}

/// The experiment's page.
pub fn experiment_path(project: &str, experiment: &str) -> String {
    format!("/projects/{}/experiments/{}", seg(project), seg(experiment))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    notice: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let filter = if query.all { pb::FilterMode::ByAll } else { pb::FilterMode::ByUser } as i32;
    let mut client = state.api.workspace();
    let request = authed(&session.token, pb::GetExperimentsRequest { filter });
    let mut experiments = client.get_experiments(request).await?.into_inner().experiments;
    experiments.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    let rows = experiments
        .into_iter()
        .map(|e| {
            let href = experiment_path(&e.project, &e.name);
            let project_href = format!("/projects/{}", seg(&e.project));
            let id = format!("experiment-{}-{}", e.project, e.name);
            let mode = access_mode_name(e.access_mode);
            view! {
                <tr id=id>
                    <td><a href=href>{e.name}</a></td>
                    <td><a href=project_href>{e.project}</a></td>
                    <td>{e.description}</td>
                    <td>{mode}</td>
                    <td>{e.creator}</td>
                </tr>
            }
        })
        .collect_view();
    let toggle = if query.all {
        view! { <a href="/experiments" id="show-mine">"Show only my projects' experiments"</a> }.into_any()
    } else {
        view! { <a href="/experiments?all=true" id="show-all">"Show every experiment I may see"</a> }
            .into_any()
    };
    let page = page(&state, &session, "Experiments").await?.notice(query.notice);
    Ok(page.render(view! {
        <p class="muted">{toggle} " · New experiments are created from a project's page."</p>
        <table id="experiments-table">
            <thead><tr><th>"Name"</th><th>"Project"</th><th>"Description"</th><th>"Access"</th><th>"Creator"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }))
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct NewExperimentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// `Public` (the default, as for `trellis new experiment`), `Protected` or `Private`.
    #[serde(default)]
    access_mode: String,
}

async fn new_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(project): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Html<String>, WebError> {
    render_new(&state, &session, &project, &NewExperimentForm::default(), flash.notice, None).await
}

async fn render_new(
    state: &AppState,
    session: &Session,
    project: &str,
    form: &NewExperimentForm,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Result<Html<String>, WebError> {
    let action = format!("/projects/{}/experiments", seg(project));
    let back = format!("/projects/{}", seg(project));
    let name_error = error.and_then(|e| e.field("name").or(e.field("experiment.name"))).map(str::to_owned);
    let (name, description, mode) = (form.name.clone(), form.description.clone(), form.access_mode.clone());
    let options = ["Public", "Protected", "Private"]
        .into_iter()
        .map(|m| view! { <option value=m selected=mode == m>{m}</option> })
        .collect_view();
    let page = page(state, session, format!("New experiment in {project}")).await?;
    Ok(page.notice(notice).error(error).render(view! {
        <form method="post" action=action class="card" id="new-experiment-form">
            {csrf_field(session.csrf())}
            <label for="new-experiment-name">"Name"</label>
            <input type="text" id="new-experiment-name" name="name" value=name required/>
            {name_error.map(|m| view! { <div class="field-error">{m}</div> })}
            <label for="new-experiment-description">"Description"</label>
            <input type="text" id="new-experiment-description" name="description" value=description/>
            <label for="new-experiment-access">"Access"</label>
            <select id="new-experiment-access" name="access_mode">{options}</select>
            <p><button type="submit" id="create-experiment">"Create experiment"</button></p>
        </form>
        <p><a href=back>"Back to the project"</a></p>
    }))
}

async fn create(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Posted { session, form }: Posted<NewExperimentForm>,
) -> Result<Response, WebError> {
    let access_mode =
        pb::AccessMode::from_str_name(form.access_mode.trim()).unwrap_or(pb::AccessMode::Public);
    let experiment = pb::Experiment {
        name: form.name.trim().to_owned(),
        project: project.clone(),
        description: form.description.trim().to_owned(),
        access_mode: access_mode as i32,
        ..Default::default()
    };
    let mut client = state.api.workspace();
    let request = authed(&session.token, pb::CreateExperimentRequest { experiment: Some(experiment) });
    match client.create_experiment(request).await {
        Ok(_) => {
            let path = experiment_path(&project, form.name.trim());
            Ok(see_other(&path, &format!("Created experiment {}.{project}", form.name.trim()))
                .into_response())
        }
        Err(status) => {
            let err = WebError::from(status);
            let html = render_new(&state, &session, &project, &form, None, Some(&err)).await?;
            Ok((err.http_status(), html).into_response())
        }
    }
}

/// What the model editor shows besides the source: the outcome of the last check or push.
#[derive(Debug, Default)]
struct Editor {
    source: String,
    tag: String,
    /// The model's problems, one line each (`model: model.py line 3: SyntaxError: ...`).
    errors: Vec<String>,
    /// The traceback trimmed to the user's file, when the compiler sent one.
    evidence: String,
    /// The network of a model that checked out, for a preview.
    preview: Option<xir::Network>,
}

async fn show(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path((project, experiment)): Path<(String, String)>,
    Query(flash): Query<Flash>,
) -> Result<Html<String>, WebError> {
    render_experiment(&state, &session, &project, &experiment, flash.notice, None, None).await
}

/// A revision's id: the SHA-256 of its source, as the model service names them.
fn revision_id(source: &str) -> String {
    Sha256::digest(source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn render_experiment(
    state: &AppState,
    session: &Session,
    project: &str,
    experiment: &str,
    notice: Option<String>,
    error: Option<&WebError>,
    editor: Option<Editor>,
) -> Result<Html<String>, WebError> {
    let token = &session.token;
    let (mut ws, mut revisions) = (state.api.workspace(), state.api.workspace());
    let get = pb::GetExperimentRequest {
        project: project.to_owned(),
        experiment: experiment.to_owned(),
        with_models: true,
        status_ms: 0,
    };
    let head = pb::GetRevisionRequest {
        project: project.to_owned(),
        experiment: experiment.to_owned(),
        revision: "master".to_owned(),
        encoding: pb::GetRevisionRequestEncoding::None as i32,
    };
    let (response, head, realizations) = tokio::join!(
        ws.get_experiment(authed(token, get)),
        revisions.get_revision(authed(token, head)),
        realizations_of(state, session, project, experiment),
    );
    let response = response?.into_inner();
    let e = response.experiment.unwrap_or_default();
    // An experiment without revisions has no `master` yet, and a portal without model support
    // has none at all (Check and Push then say so); anything else is a real failure.
    let head_source = match head {
        Ok(r) => Some(r.into_inner().model_file),
        Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::FailedPrecondition) => None,
        Err(status) => return Err(status.into()),
    };
    let head_id = head_source.as_deref().map(revision_id);
    let realizations = realizations?;

    // Newest first: by compile time where the portal reports it, else `master` first.
    let mut rows: Vec<(String, bool, Option<i64>)> = response
        .models
        .iter()
        .map(|(id, m)| {
            let detail = e.models.get(id);
            let compiled = m.compiled || detail.is_some_and(|d| d.compiled);
            (id.clone(), compiled, detail.and_then(|d| d.compile_time.as_ref()).map(|t| t.seconds))
        })
        .collect();
    rows.sort_by(|a, b| {
        let head = |id: &str| Some(id) == head_id.as_deref();
        (b.2, head(&b.0)).cmp(&(a.2, head(&a.0))).then_with(|| a.0.cmp(&b.0))
    });
    let path = experiment_path(project, experiment);
    let revision_rows = rows
        .into_iter()
        .map(|(id, compiled, at)| {
            let href = format!("{path}/revisions/{}", seg(&id));
            let row_id = format!("revision-{id}");
            let is_head = Some(id.as_str()) == head_id.as_deref();
            let used: Vec<String> =
                realizations.iter().filter(|r| r.xhash == id).map(|r| r.id.clone()).collect();
            view! {
                <tr id=row_id>
                    <td><a href=href><code>{short(&id)}</code></a></td>
                    <td>{badge(if compiled { "Compiled" } else { "Not compiled" })}</td>
                    <td>{is_head.then_some("master")}</td>
                    <td>{at.map(|s| when(Some(s)))}</td>
                    <td>{used.join(", ")}</td>
                </tr>
            }
        })
        .collect_view();
    let realization_rows = realizations
        .iter()
        .map(|r| {
            let href = format!("{path}/realizations/{}", seg(&r.id));
            let status = if r.complete { "Complete" } else { "Incomplete" };
            view! {
                <tr>
                    <td><a href=href>{r.id.clone()}</a></td>
                    <td><code>{short(&r.xhash)}</code></td>
                    <td>{r.num_nodes}</td>
                    <td>{r.num_links}</td>
                    <td>{when(r.expires.as_ref().map(|t| t.seconds))}</td>
                    <td>{badge(status)}</td>
                </tr>
            }
        })
        .collect_view();

    let editor =
        editor.unwrap_or_else(|| Editor { source: head_source.unwrap_or_default(), ..Default::default() });
    let editor_view = editor_view(session, &path, editor);
    let delete_action = format!("{path}/delete");
    let (description, mode, creator, repository) =
        (e.description.clone(), access_mode_name(e.access_mode), e.creator.clone(), e.repository.clone());
    let project_href = format!("/projects/{}", seg(project));
    let title = format!("Experiment {experiment}.{project}");
    let page = page(state, session, title).await?.notice(notice).error(error);
    Ok(page.render(view! {
        <section class="card" id="experiment-details">
            <p id="experiment-description">{description}</p>
            <p class="muted">
                "Project " <a href=project_href>{project.to_owned()}</a>
                " · access " {mode} " · created by " {creator} " · git " <code>{repository}</code>
            </p>
        </section>
        <h2>"Revisions"</h2>
        <table id="revisions-table">
            <thead><tr><th>"Revision"</th><th>"Compile status"</th><th>"Branch"</th><th>"Pushed"</th><th>"Realizations"</th></tr></thead>
            <tbody>{revision_rows}</tbody>
        </table>
        <h2>"Realizations"</h2>
        <table id="experiment-realizations">
            <thead><tr><th>"Name"</th><th>"Revision"</th><th>"Nodes"</th><th>"Links"</th><th>"Expires"</th><th>"Status"</th></tr></thead>
            <tbody>{realization_rows}</tbody>
        </table>
        {editor_view}
        <h2>"Delete"</h2>
        <form method="post" action=delete_action class="card" id="delete-experiment-form">
            {csrf_field(session.csrf())}
            <label><input type="checkbox" id="delete-experiment-confirm" name="confirm" value="yes" required/>
                " Delete this experiment and all its revisions"</label>
            <p><button type="submit" class="danger" id="delete-experiment">"Delete experiment"</button></p>
        </form>
    }))
}

fn editor_view(session: &Session, path: &str, editor: Editor) -> impl IntoView + use<> {
    let Editor { source, tag, errors, evidence, preview } = editor;
    let action = format!("{path}/model");
    let bad_line = errors.iter().find_map(|e| error_line(e)).or_else(|| last_traceback_line(&evidence));
    let has_errors = !errors.is_empty();
    let listing = has_errors.then(|| source_listing(&source, bad_line));
    let error_items = errors
        .iter()
        .map(|e| {
            let link = error_line(e).map(|n| {
                let href = format!("#L{n}");
                view! { <a href=href>{format!("line {n}")}</a> " " }
            });
            view! { <li>{link}{e.clone()}</li> }
        })
        .collect_view();
    let errors_view = has_errors.then(|| {
        let evidence =
            (!evidence.is_empty()).then(|| view! { <pre class="traceback">{evidence.clone()}</pre> });
        view! {
            <div class="banner error" id="compile-errors" role="alert">
                <strong>"The model has errors:"</strong>
                <ul>{error_items}</ul>
                {evidence}
            </div>
        }
    });
    let preview = preview.map(|net| {
        let svg = super::realizations::inline_svg(&net);
        let counts = super::realizations::counts(&net);
        view! {
            <section id="model-preview">
                <p id="model-counts">{counts}</p>
                <div id="topology" class="topology" inner_html=svg></div>
            </section>
        }
    });
    view! {
        <h2>"Model"</h2>
        {errors_view}
        {listing}
        {preview}
        <form method="post" action=action enctype="multipart/form-data" class="card" id="model-form">
            {csrf_field(session.csrf())}
            <label for="model-source">"model.py"</label>
            <textarea id="model-source" name="model" rows="18" spellcheck="false">{textarea_text(&source)}</textarea>
            <label for="model-file">"or upload a file (replaces the text above)"</label>
            <input type="file" id="model-file" name="file" accept=".py,text/x-python,text/plain"/>
            <label for="model-tag">"Tag (optional, when pushing)"</label>
            <input type="text" id="model-tag" name="tag" value=tag/>
            <p>
                <button type="submit" class="secondary" id="check-model" name="action" value="check">"Check"</button>
                " "
                <button type="submit" id="push-model" name="action" value="push">"Push"</button>
            </p>
        </form>
    }
}

/// HTML parsers drop a newline right after `<textarea>`; one is added so a source that starts
/// with a blank line comes back unchanged (and keeps its revision id).
fn textarea_text(source: &str) -> String {
    format!("\n{source}")
}

/// The source with line numbers, the line an error names highlighted and anchored `#L<n>`.
fn source_listing(source: &str, bad: Option<u32>) -> impl IntoView + use<> {
    let lines = source
        .lines()
        .enumerate()
        .map(|(i, text)| {
            let n = i as u32 + 1;
            let class = if Some(n) == bad { "source-line bad" } else { "source-line" };
            // Block spans need content to keep an empty line's height.
            let text = if text.is_empty() { " ".to_owned() } else { text.to_owned() };
            view! {
                <span class=class id=format!("L{n}") style="display:block">
                    <a class="muted" href=format!("#L{n}")>{format!("{n:>4}  ")}</a>{text}
                </span>
            }
        })
        .collect_view();
    view! { <pre class="source" id="model-listing">{lines}</pre> }
}

/// The line of `model.py` an error message names (`... model.py line 3: ...`).
fn error_line(message: &str) -> Option<u32> {
    let rest = &message[message.find("model.py line ")? + "model.py line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

/// The innermost `File "model.py", line N` of a traceback.
fn last_traceback_line(traceback: &str) -> Option<u32> {
    let (_, rest) = traceback.rsplit_once("\"model.py\", line ")?;
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

#[derive(Debug, Default, Deserialize)]
pub struct ModelForm {
    #[serde(default)]
    model: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    tag: String,
    /// `check` or `push`: which button was pressed.
    #[serde(default)]
    action: String,
}

async fn model(
    State(state): State<AppState>,
    Path((project, experiment)): Path<(String, String)>,
    Posted { session, form }: Posted<ModelForm>,
) -> Result<Response, WebError> {
    // An uploaded file wins over the text area; browsers send an empty part when none is chosen.
    let source = if form.file.trim().is_empty() { form.model } else { form.file };
    // Browsers send text areas with CRLF line ends; the revision id hashes the source as written.
    let source = source.replace("\r\n", "\n");
    let mut editor = Editor { source: source.clone(), tag: form.tag.trim().to_owned(), ..Default::default() };
    let token = &session.token;
    let mut client = state.api.model();
    if form.action == "push" {
        let request = pb::PushRequest {
            model: source,
            branch: String::new(),
            experiment: experiment.clone(),
            project: project.clone(),
            tag: editor.tag.clone(),
        };
        return match client.push(authed(token, request)).await {
            Ok(response) => {
                let revision = response.into_inner().revision;
                let path = format!("{}/revisions/{}", experiment_path(&project, &experiment), seg(&revision));
                Ok(see_other(&path, &format!("Pushed revision {}", short(&revision))).into_response())
            }
            Err(status) => {
                let err = WebError::from(status);
                if let WebError::Api { code: tonic::Code::InvalidArgument, fields, .. } = &err {
                    for f in fields {
                        if f.field == "evidence" {
                            editor.evidence = f.description.clone();
                        } else {
                            editor.errors.push(format!("{}: {}", f.field, f.description));
                        }
                    }
                }
                // The model's own errors show in the editor; a banner would repeat them.
                let banner = editor.errors.is_empty().then_some(&err);
                let html =
                    render_experiment(&state, &session, &project, &experiment, None, banner, Some(editor))
                        .await?;
                Ok((err.http_status(), html).into_response())
            }
        };
    }
    let response = client.compile(authed(token, pb::CompileRequest { model: source })).await;
    let (notice, status) = match response {
        Ok(r) => {
            let r = r.into_inner();
            if r.success {
                let network =
                    STANDARD.decode(&r.network).ok().and_then(|b| xir::Network::decode(b.as_slice()).ok());
                let counts = network.as_ref().map(super::realizations::counts).unwrap_or_default();
                editor.preview = network;
                (Some(format!("The model compiles: {counts}")), http::StatusCode::OK)
            } else {
                for e in r.errors {
                    match e.strip_prefix("evidence: ") {
                        Some(traceback) => editor.evidence = traceback.to_owned(),
                        None => editor.errors.push(e),
                    }
                }
                (None, http::StatusCode::UNPROCESSABLE_ENTITY)
            }
        }
        Err(status) => {
            let err = WebError::from(status);
            let html =
                render_experiment(&state, &session, &project, &experiment, None, Some(&err), Some(editor))
                    .await?;
            return Ok((err.http_status(), html).into_response());
        }
    };
    let html = render_experiment(&state, &session, &project, &experiment, notice, None, Some(editor)).await?;
    Ok((status, html).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    pub confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Path((project, experiment)): Path<(String, String)>,
    Posted { session, form }: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    if form.confirm != "yes" {
        let err = WebError::BadInput("tick the box to confirm the deletion".to_owned());
        let html = render_experiment(&state, &session, &project, &experiment, None, Some(&err), None).await?;
        return Ok((err.http_status(), html).into_response());
    }
    let mut client = state.api.workspace();
    let request = pb::DeleteExperimentRequest { project: project.clone(), experiment: experiment.clone() };
    match client.delete_experiment(authed(&session.token, request)).await {
        Ok(_) => {
            Ok(see_other("/experiments", &format!("Deleted experiment {experiment}.{project}"))
                .into_response())
        }
        Err(status) => {
            let err = WebError::from(status);
            let html =
                render_experiment(&state, &session, &project, &experiment, None, Some(&err), None).await?;
            Ok((err.http_status(), html).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_read_from_messages_and_tracebacks() {
        assert_eq!(error_line("model: model.py line 3: SyntaxError: invalid syntax"), Some(3));
        assert_eq!(error_line("model: model.py: the model did not call experiment(net)"), None);
        assert_eq!(error_line("model.py line 0: x"), None);
        let tb = "Traceback:\n  File \"model.py\", line 7, in <module>\n  File \"model.py\", line 5, in build\nNameError";
        assert_eq!(last_traceback_line(tb), Some(5));
        assert_eq!(last_traceback_line("no frames"), None);
    }

    #[test]
    fn the_failing_line_is_highlighted_and_anchored() {
        let html = Owner::new().with(|| source_listing("a = 1\n\nb = (\n", Some(3)).to_html());
        let tag = |id: &str| {
            let at = html.find(&format!("id=\"{id}\"")).unwrap();
            let start = html[..at].rfind('<').unwrap();
            html[start..at + html[at..].find('>').unwrap()].to_owned()
        };
        assert!(tag("L3").contains(r#"class="source-line bad""#), "{html}");
        assert!(tag("L1").contains(r#"class="source-line""#), "{html}");
        assert_eq!(html.matches("source-line bad").count(), 1);
        assert!(html.contains("b = ("));
    }

    #[test]
    fn revision_ids_are_the_sha256_of_the_source() {
        assert_eq!(revision_id(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
