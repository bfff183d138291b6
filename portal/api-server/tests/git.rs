//! The per-experiment git repositories, driven by the real git client.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use common::TestPortal;
use trellis_api::portal::v1 as pb;
use trellis_api_server::PortalConfig;
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_model::ModelService;
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;

const HELLO: &str = "from mergexp import *\nnet = Network('hello')\na, b = [net.node(n) for n in ['a','b']]\nnet.connect([a, b])\nexperiment(net)\n";
const BROKEN: &str = "from mergexp import *\nnet = Network('broken'\n";

fn git(home: &Path, dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "git failed: {text}");
    text
}

fn failed(output: Output) -> String {
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "git unexpectedly succeeded: {text}");
    text
}

async fn portal(dir: &Path, git: bool) -> (TestPortal, ModelService) {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("models.redb")).unwrap());
    let blobs = LocalBlobStore::open(&dir.join("blobs")).unwrap();
    let compiler = Compiler::new(CompilerConfig::new("/work/main/.venv")).map_err(|e| e.to_string());
    let models = ModelService::new(store, Arc::new(blobs), compiler);
    let config = PortalConfig {
        models: Some(models.clone()),
        git_root: git.then(|| dir.join("git")),
        ..Default::default()
    };
    (TestPortal::start_with(config).await, models)
}

/// alice owns private project `p` with private experiment `e`; bob is active but no member.
async fn setup(portal: &TestPortal) -> (String, String) {
    portal.user("alice", true).await;
    portal.user("bob", true).await;
    let (mut ws, _) = portal.as_user("alice").await;
    ws.create_project(pb::CreateProjectRequest {
        user: "alice".into(),
        project: Some(pb::Project {
            name: "p".into(),
            access_mode: pb::AccessMode::Private as i32,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    ws.create_experiment(pb::CreateExperimentRequest {
        experiment: Some(pb::Experiment {
            name: "e".into(),
            project: "p".into(),
            access_mode: pb::AccessMode::Private as i32,
            creator: "alice".into(),
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    (portal.login("alice", common::PASSWORD).await, portal.login("bob", common::PASSWORD).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn push_records_compiling_models_and_refuses_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (portal, models) = portal(dir.path(), true).await;
    let (alice, _) = setup(&portal).await;
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = format!("http://{alice}@{}/git/p/e", portal.addr);
    let clone = work.path().join("e");

    let (h, w) = (home.path().to_owned(), work.path().to_owned());
    let out = tokio::task::spawn_blocking(move || git(&h, &w, &["clone", &url, "e"])).await.unwrap();
    ok(out);
    assert!(dir.path().join("git/p/e.git/HEAD").exists());

    std::fs::write(clone.join("model.py"), HELLO).unwrap();
    let run = |args: Vec<&'static str>| {
        let (h, c) = (home.path().to_owned(), clone.clone());
        tokio::task::spawn_blocking(move || git(&h, &c, &args))
    };
    ok(run(vec!["checkout", "-q", "-b", "master"]).await.unwrap());
    ok(run(vec!["add", "model.py"]).await.unwrap());
    ok(run(vec!["commit", "-q", "-m", "hello"]).await.unwrap());
    let pushed = ok(run(vec!["push", "origin", "master"]).await.unwrap());
    assert!(pushed.contains("model.py compiled"), "{pushed}");
    let (revision, _) = models.revision("p", "e", "master").await.unwrap();
    assert_eq!(revision.source, HELLO);
    assert_eq!(revision.pushed_by, "alice");
    let good = ok(run(vec!["rev-parse", "HEAD"]).await.unwrap());

    // A model that does not compile: the push is refused and master stays on the good commit.
    std::fs::write(clone.join("model.py"), BROKEN).unwrap();
    ok(run(vec!["commit", "-q", "-am", "broken"]).await.unwrap());
    let refused = failed(run(vec!["push", "origin", "master"]).await.unwrap());
    assert!(refused.contains("model.py was refused"), "{refused}");
    let remote = ok(run(vec!["ls-remote", "origin", "refs/heads/master"]).await.unwrap());
    assert!(remote.starts_with(good.trim()), "master moved: {remote} vs {good}");
    let (revisions, _) = models.revisions("p", "e").await.unwrap();
    assert_eq!(revisions.len(), 1, "a broken model was recorded");
    assert_eq!(models.revision("p", "e", "master").await.unwrap().0.source, HELLO);

    // A commit that leaves model.py alone needs no compile.
    ok(run(vec!["reset", "-q", "--hard", "HEAD~1"]).await.unwrap());
    std::fs::write(clone.join("README"), "notes\n").unwrap();
    ok(run(vec!["add", "README"]).await.unwrap());
    ok(run(vec!["commit", "-q", "-m", "notes"]).await.unwrap());
    let pushed = ok(run(vec!["push", "origin", "master"]).await.unwrap());
    assert!(!pushed.contains("compiled"), "{pushed}");
    // Each push's hand-shake directory is gone once its response ended.
    let hooks = dir.path().join("git/.hooks");
    for _ in 0..50 {
        if std::fs::read_dir(&hooks).unwrap().count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_dir(&hooks).unwrap().count(), 0, "hook directories were left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn outsiders_and_anonymous_callers_are_turned_away() {
    let dir = tempfile::tempdir().unwrap();
    let (portal, _) = portal(dir.path(), true).await;
    let (_, bob) = setup(&portal).await;
    let http = reqwest::Client::new();
    let refs = |who: Option<&str>, service: &str| {
        let mut request = http.get(format!("http://{}/git/p/e/info/refs?service={service}", portal.addr));
        if let Some(token) = who {
            request = request.basic_auth(token, Some("ignored"));
        }
        request.send()
    };

    let anonymous = refs(None, "git-upload-pack").await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"Trellis\"");
    assert_eq!(refs(Some("not-a-token"), "git-upload-pack").await.unwrap().status(), 401);

    let denied = refs(Some(&bob), "git-upload-pack").await.unwrap();
    assert_eq!(denied.status(), 403);
    assert!(!denied.text().await.unwrap().trim().is_empty());
    assert!(!dir.path().join("git/p/e.git").exists(), "a refused caller created the repository");

    // The real client with bob's token as the username.
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://{bob}:x@{}/git/p/e", portal.addr);
    let (h, w) = (home.path().to_owned(), home.path().to_owned());
    let out = tokio::task::spawn_blocking(move || git(&h, &w, &["clone", &url, "e"])).await.unwrap();
    let text = failed(out);
    assert!(text.contains("403"), "{text}");

    // Unknown experiments are 404s, and so is every /git route when repositories are off.
    let alice = portal.login("alice", common::PASSWORD).await;
    let missing = http
        .get(format!("http://{}/git/p/nope/info/refs?service=git-upload-pack", portal.addr))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let off_dir = tempfile::tempdir().unwrap();
    let (off, _) = self::portal(off_dir.path(), false).await;
    let off = http.get(format!("http://{}/git/p/e/info/refs", off.addr)).send().await.unwrap();
    assert_eq!(off.status(), 404);
    assert!(off.text().await.unwrap().contains("not enabled"));
}
