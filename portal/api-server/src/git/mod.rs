//! A git repository per experiment over smart HTTP: `/git/<project>/<experiment>`.
//!
//! Requests are authenticated here (the gRPC layer lets non-gRPC requests through): HTTP Basic
//! with the login token as the username (the password is ignored), as Merge does, or
//! `Authorization: Bearer`. Without credentials the answer is 401 with a `Basic` challenge so git
//! prompts. Fetching (`git-upload-pack`) needs Experiment Read and pushing (`git-receive-pack`,
//! including its ref advertisement) Experiment Update, decided by the same [`Gate`] as the RPCs;
//! a refusal is a 403 carrying the policy's reason.
//!
//! Repositories are bare, under the configured root as `<project>/<experiment>.git`, created on
//! first access to an existing experiment, and served by Debian's `git http-backend` through a
//! small CGI bridge ([`cgi`]).
//!
//! **`master` never holds a model that does not compile.** Every repository has a pre-receive
//! hook ([`hook`]); when a push changes `model.py` on `master`, the hook hands the new source to
//! the portal, which compiles it and records it as a revision with
//! [`ModelService::push`] *before* git moves the reference. A refused model refuses the whole
//! push, and the pusher sees why as `remote:` lines. (If git then fails to move the reference,
//! for example because a concurrent push won, the revision is recorded although the repository's
//! `master` did not move; the next push to `master` corrects the model service's branch.)

mod cgi;
mod hook;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use http::StatusCode;
use tokio_util::sync::CancellationToken;
use trellis_model::ModelService;
use trellis_policy::{Entity, Operation};
use trellis_types::{Error, UserState};

use crate::authz::gate::Target;
use crate::authz::layer::Authorizer;
use crate::authz::{Caller, Gate};

/// Everything the git routes need.
#[derive(Clone)]
pub struct GitState {
    /// Where repositories live; `None` turns the routes into 404s.
    pub root: Option<PathBuf>,
    pub authorizer: Arc<Authorizer>,
    pub gate: Gate,
    pub models: Option<ModelService>,
}

/// The `/git/...` routes.
pub fn router(state: GitState) -> Router {
    Router::new().route("/git/{*path}", any(serve)).with_state(Arc::new(state))
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut body = message.into();
    body.push('\n');
    (status, body).into_response()
}

fn challenge(message: &str) -> Response {
    let mut response = text(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"Trellis\""));
    response
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
        Error::Unauthenticated(_) => return challenge(&error.to_string()),
        Error::InvalidArgument { .. } | Error::FailedPrecondition(_) => StatusCode::BAD_REQUEST,
        Error::Unavailable(_) | Error::Aborted(_) | Error::ResourceExhausted(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::AlreadyExists { .. } => StatusCode::CONFLICT,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    text(status, error.to_string())
}

/// The token in `Authorization`: Basic (token as username) or Bearer.
fn token(request: &Request) -> Option<String> {
    let value = request.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let token = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':').map_or(decoded.clone(), |(user, _)| user.to_owned())
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_owned()
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

/// Read for fetches, Update for pushes (the receive-pack advertisement included).
fn operation(rest: &str, query: Option<&str>) -> Option<Operation> {
    let service = query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("service="));
    match (rest, service) {
        ("info/refs", Some("git-upload-pack")) | ("git-upload-pack", _) | ("HEAD", _) => {
            Some(Operation::Read)
        }
        ("info/refs", Some("git-receive-pack")) | ("git-receive-pack", _) => Some(Operation::Update),
        // Only the smart protocol is served.
        _ => None,
    }
}

/// Project and experiment names become path components: refuse anything that could escape.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn serve(
    State(state): State<Arc<GitState>>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    let Some(root) = state.root.clone() else {
        return text(StatusCode::NOT_FOUND, "git repositories are not enabled on this portal");
    };
    let mut parts = path.splitn(3, '/');
    let (Some(project), Some(experiment), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return text(StatusCode::NOT_FOUND, "a git repository URL is /git/<project>/<experiment>");
    };
    let (project, rest) = (project.to_owned(), rest.to_owned());
    let experiment = experiment.strip_suffix(".git").unwrap_or(experiment).to_owned();
    if !safe_name(&project) || !safe_name(&experiment) {
        return text(StatusCode::NOT_FOUND, "no such repository");
    }
    let Some(operation) = operation(&rest, request.uri().query()) else {
        return text(StatusCode::NOT_FOUND, "only git's smart HTTP protocol is served");
    };
    let Some(token) = token(&request) else {
        return challenge("log in: use your Trellis token as the username");
    };
    let caller = match state.authorizer.authenticate(&token).await {
        Ok(caller) => caller,
        Err(e) => return error_response(&e),
    };
    if let Err(e) = admit(&state.gate, &caller, operation, &project, &experiment).await {
        return error_response(&e);
    }
    let repo = root.join(&project).join(format!("{experiment}.git"));
    if let Err(e) = ensure_repository(&repo).await {
        tracing::error!(repo = %repo.display(), error = %e, "creating git repository");
        return error_response(&e);
    }

    let mut invocation = cgi::Invocation {
        project_root: root.clone(),
        path_info: format!("/{project}/{experiment}.git/{rest}"),
        remote_user: caller.username().to_owned(),
        env: Vec::new(),
        guard: Box::new(()),
    };
    if rest == "git-receive-pack" {
        let dir = match HookDir::create(&root).await {
            Ok(dir) => dir,
            Err(e) => return error_response(&e),
        };
        let cancel = CancellationToken::new();
        let context = hook::PushContext {
            models: state.models.clone(),
            project: project.clone(),
            experiment: experiment.clone(),
            username: caller.username().to_owned(),
        };
        tokio::spawn(hook::watch(dir.0.clone(), context, cancel.clone()));
        invocation.env.push(("TRELLIS_HOOK_DIR".to_owned(), dir.0.display().to_string()));
        invocation.guard = Box::new((dir, cancel.drop_guard()));
    }
    match cgi::run(invocation, request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "git http-backend");
            text(StatusCode::BAD_GATEWAY, e.to_string())
        }
    }
}

/// Active accounts only, then the policy.
async fn admit(
    gate: &Gate,
    caller: &Caller,
    operation: Operation,
    project: &str,
    experiment: &str,
) -> Result<(), Error> {
    match caller.state {
        UserState::Active => {}
        UserState::Frozen => {
            return Err(Error::PermissionDenied(format!(
                "account {} is frozen; contact a portal administrator",
                caller.username()
            )));
        }
        UserState::Pending | UserState::NotSet => {
            return Err(Error::PermissionDenied(format!(
                "account {} is waiting for activation",
                caller.username()
            )));
        }
    }
    let target = Target::Experiment { project: project.to_owned(), name: experiment.to_owned() };
    gate.check(caller, Entity::Experiment, operation, &target).await
}

/// Creates the bare repository with its hook if it is missing. Built in a scratch directory and
/// renamed into place, so concurrent first accesses never see half a repository.
async fn ensure_repository(repo: &Path) -> Result<(), Error> {
    let io = |what: &str, e: std::io::Error| Error::Internal(format!("{what} {}: {e}", repo.display()));
    if tokio::fs::try_exists(repo.join("HEAD")).await.map_err(|e| io("checking", e))? {
        return Ok(());
    }
    let parent = repo.parent().ok_or_else(|| Error::Internal("repository path has no parent".to_owned()))?;
    tokio::fs::create_dir_all(parent).await.map_err(|e| io("creating the parent of", e))?;
    let scratch = parent.join(format!(".init-{}", unique()));
    let result = async {
        git(&["init", "--bare", "--quiet", "--initial-branch=master"], &scratch, true).await?;
        git(&["config", "http.receivepack", "true"], &scratch, false).await?;
        let hook = scratch.join("hooks").join("pre-receive");
        tokio::fs::write(&hook, hook::PRE_RECEIVE).await.map_err(|e| io("writing the hook of", e))?;
        set_executable(&hook).await.map_err(|e| io("making the hook executable in", e))?;
        match tokio::fs::rename(&scratch, repo).await {
            Ok(()) => Ok(()),
            // Someone else created it first.
            Err(_) if repo.join("HEAD").exists() => Ok(()),
            Err(e) => Err(io("moving into place", e)),
        }
    }
    .await;
    if tokio::fs::try_exists(&scratch).await.unwrap_or(false) {
        let _ = tokio::fs::remove_dir_all(&scratch).await;
    }
    result
}

async fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).await
}

/// Runs git on `repo` (`init` names the directory to create).
async fn git(args: &[&str], repo: &Path, init: bool) -> Result<(), Error> {
    let mut command = tokio::process::Command::new("git");
    if init {
        command.args(args).arg(repo);
    } else {
        command.arg("--git-dir").arg(repo).args(args);
    }
    let output = command
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .await
        .map_err(|e| Error::Internal(format!("running git: {e}")))?;
    if !output.status.success() {
        return Err(Error::Internal(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A per-push directory for the hook hand-shake; removed when the response ends.
struct HookDir(PathBuf);

impl HookDir {
    async fn create(root: &Path) -> Result<HookDir, Error> {
        let dir = root.join(".hooks").join(unique());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))?;
        Ok(HookDir(dir))
    }
}

impl Drop for HookDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_need_update_and_fetches_read() {
        assert_eq!(operation("info/refs", Some("service=git-upload-pack")), Some(Operation::Read));
        assert_eq!(operation("git-upload-pack", None), Some(Operation::Read));
        assert_eq!(operation("info/refs", Some("service=git-receive-pack")), Some(Operation::Update));
        assert_eq!(operation("git-receive-pack", None), Some(Operation::Update));
        assert_eq!(operation("objects/info/packs", None), None);
        assert_eq!(operation("info/refs", None), None);
    }

    #[test]
    fn names_cannot_escape_the_root() {
        assert!(safe_name("exp-1.v2"));
        assert!(!safe_name(".."));
        assert!(!safe_name("a/b"));
        assert!(!safe_name(""));
    }
}
