//! Server render time of the web portal's pages, in process, against the API calls each page
//! makes (the floor any client pays, the `mergetb` client or a browser app alike).
//!
//! Setup: a real portal on an embedded store with the real model compiler; one user with 100
//! projects (an experiment in each) and a 1,000-node model pushed through the API.
//! Measured: the dashboard, the experiment page and the revision page (with the 1,000-node
//! topology SVG), each as a whole HTTP request through the web router; and the topology SVG
//! alone. Goals (issue 8): page p99 ≤ 50 ms; topology SVG ≤ 200 ms.
//!
//! Run: `cargo run --release -p trellis-web-bench [-- --rounds N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;
use trellis_api::portal::v1 as pb;
use trellis_api_server::{Portal, PortalConfig};
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_model::ModelService;
use trellis_policy::{Policy, PolicyHandle};
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;
use trellis_web::api::{Api, authed};
use trellis_web::{WebConfig, session};

const ADMIN_PASSWORD: &str = "bench-admin-password";
const PASSWORD: &str = "bench-user-password";
const PROJECTS: usize = 100;
const NODES: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("--rounds takes a number")?
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("state.redb"))?);
    let blobs = LocalBlobStore::open(&dir.path().join("blobs"))?;
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    let compiler = Compiler::new(CompilerConfig::new(venv)).map_err(|e| e.to_string());
    let models = ModelService::new(store.clone(), Arc::new(blobs), compiler);
    let config = PortalConfig { models: Some(models), ..Default::default() };
    let portal = Portal::new(store, PolicyHandle::fixed(Policy::builtin()), config).await?;
    portal.workspace().bootstrap_admin(Some(ADMIN_PASSWORD.to_owned())).await?;
    let api = Api::in_process(portal.router());
    let web = trellis_web::router(api.clone(), WebConfig { secure_cookies: false, ..Default::default() });

    let token = populate(&api).await?;
    let cookie = format!("{}={token}", session::DEFAULT_SESSION_COOKIE);
    let revision = latest_revision(&api, &token).await?;

    println!("web portal render times ({rounds} rounds each, in process, release build)");
    println!("user with {PROJECTS} projects; a {NODES}-node experiment model");
    println!("{:<34} {:>9} {:>9} {:>9} {:>12}", "page", "p50 ms", "p99 ms", "goal ms", "p99 / goal");
    let pages = [
        ("dashboard (/)", "/".to_owned(), 50.0),
        ("experiment page", "/projects/p000/experiments/big".to_owned(), 50.0),
        (
            "revision page + 1,000-node SVG",
            format!("/projects/p000/experiments/big/revisions/{revision}"),
            200.0,
        ),
    ];
    for (name, path, goal) in &pages {
        let times = time(rounds, || page(&web, path, &cookie)).await?;
        report(name, &times, *goal);
    }
    let network = revision_network(&api, &token, &revision).await?;
    let times = time(rounds, || async { Ok(trellis_topology::svg(&network).len()) }).await?;
    report("topology SVG alone (1,000 nodes)", &times, 200.0);

    // The floor: the API calls behind the dashboard, without rendering. Interleaved with the
    // page round by round, so both see the same machine load.
    let (mut page_times, mut floor) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let started = Instant::now();
        page(&web, "/", &cookie).await?;
        page_times.push(started.elapsed());
        let started = Instant::now();
        dashboard_calls(&api, &token).await?;
        floor.push(started.elapsed());
    }
    page_times.sort();
    floor.sort();
    println!();
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (page, calls) = (percentile(&page_times, q), percentile(&floor, q));
        println!(
            "dashboard {name}: {page:.2} ms for the page vs {calls:.2} ms for its API calls alone = {:.2}x",
            page / calls
        );
    }
    Ok(())
}

/// Registers and activates `alice`, gives her the projects and the big model; returns her token.
async fn populate(api: &Api) -> anyhow::Result<String> {
    let admin = api
        .identity()
        .login(pb::LoginRequest { username: "admin".into(), password: ADMIN_PASSWORD.into() })
        .await?
        .into_inner()
        .token;
    api.identity()
        .register(pb::RegisterRequest {
            username: "alice".into(),
            email: "alice@example.org".into(),
            password: PASSWORD.into(),
            name: "Alice".into(),
            institution: "Other".into(),
            category: "Researcher".into(),
            country: "US".into(),
            ..Default::default()
        })
        .await?;
    api.workspace()
        .activate_user(authed(
            &admin,
            pb::ActivateUserRequest { username: "alice".into(), ..Default::default() },
        ))
        .await?;
    let token = api
        .identity()
        .login(pb::LoginRequest { username: "alice".into(), password: PASSWORD.into() })
        .await?
        .into_inner()
        .token;
    let mut workspace = api.workspace();
    for i in 0..PROJECTS {
        let name = format!("p{i:03}");
        let project =
            pb::Project { name: name.clone(), description: format!("project {i}"), ..Default::default() };
        workspace
            .create_project(authed(
                &token,
                pb::CreateProjectRequest { user: "alice".into(), project: Some(project) },
            ))
            .await?;
        let experiment = pb::Experiment {
            name: if i == 0 { "big".into() } else { "e".into() },
            project: name.clone(),
            description: "bench".into(),
            ..Default::default()
        };
        workspace
            .create_experiment(authed(&token, pb::CreateExperimentRequest { experiment: Some(experiment) }))
            .await?;
    }
    let started = Instant::now();
    api.model()
        .push(authed(
            &token,
            pb::PushRequest {
                model: big_model(),
                branch: "master".into(),
                experiment: "big".into(),
                project: "p000".into(),
                tag: String::new(),
            },
        ))
        .await
        .context("pushing the 1,000-node model")?;
    println!(
        "setup: {PROJECTS} projects; the {NODES}-node model compiled and pushed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(token)
}

/// 10 LANs of 100 nodes, each with a router, the routers in a ring.
fn big_model() -> String {
    let mut model =
        String::from("from mergexp import *\nnet = Network('big', addressing == ipv4, routing == static)\n");
    model.push_str("routers = [net.node('r%d' % i) for i in range(10)]\n");
    model.push_str(&format!(
        "hosts = [net.node('n%d' % i, image == 'bullseye') for i in range({})]\n",
        NODES - 10
    ));
    model.push_str(&format!("per = {}\n", (NODES - 10) / 10));
    model.push_str("for i in range(10):\n    net.connect([routers[i]] + hosts[i*per:(i+1)*per])\n");
    model.push_str(
        "for i in range(10):\n    net.connect([routers[i], routers[(i+1) % 10]], latency == ms(5))\n",
    );
    model.push_str("experiment(net)\n");
    model
}

async fn latest_revision(api: &Api, token: &str) -> anyhow::Result<String> {
    let experiment = api
        .workspace()
        .get_experiment(authed(
            token,
            pb::GetExperimentRequest {
                experiment: "big".into(),
                project: "p000".into(),
                with_models: true,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .experiment
        .context("experiment")?;
    experiment.models.keys().next().cloned().context("the experiment has no revision")
}

async fn revision_network(
    api: &Api,
    token: &str,
    revision: &str,
) -> anyhow::Result<trellis_api::xir::Network> {
    let response = api
        .workspace()
        .get_revision(authed(
            token,
            pb::GetRevisionRequest {
                project: "p000".into(),
                experiment: "big".into(),
                revision: revision.into(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    let network = response.model.and_then(|m| m.model).context("the revision has no XIR")?;
    if network.nodes.len() != NODES {
        bail!("expected {NODES} nodes, the revision has {}", network.nodes.len());
    }
    Ok(network)
}

/// One whole page request through the web router; fails unless it is a 200.
async fn page(web: &axum::Router, path: &str, cookie: &str) -> anyhow::Result<usize> {
    let request = Request::get(path).header("cookie", cookie).body(Body::empty())?;
    let response = web.clone().oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    if status != StatusCode::OK {
        bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body[..body.len().min(500)]));
    }
    Ok(body.len())
}

/// The calls the dashboard makes, without rendering.
async fn dashboard_calls(api: &Api, token: &str) -> anyhow::Result<usize> {
    let mine = pb::FilterMode::ByUser as i32;
    let (mut ws1, mut ws2, mut ws3) = (api.workspace(), api.workspace(), api.workspace());
    let (mut realize, mut materialize, mut xdc) = (api.realize(), api.materialize(), api.xdc());
    let (user, projects, experiments, realizations, materializations, xdcs) = tokio::join!(
        ws1.get_user(authed(token, pb::GetUserRequest { username: "alice".into(), status_ms: 0 })),
        ws2.get_projects(authed(token, pb::GetProjectsRequest { filter: mine })),
        ws3.get_experiments(authed(token, pb::GetExperimentsRequest { filter: mine })),
        realize.get_realizations(authed(token, pb::GetRealizationsRequest { filter: mine, summary: true })),
        materialize.get_materializations(authed(
            token,
            pb::GetMaterializationsRequest { filter: mine, ..Default::default() }
        )),
        xdc.list_xd_cs(authed(token, pb::ListXdCsRequest { ..Default::default() })),
    );
    user?;
    xdcs?;
    realizations?;
    materializations?;
    Ok(projects?.into_inner().projects.len() + experiments?.into_inner().experiments.len())
}

async fn time<F, Fut>(rounds: usize, mut run: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    for _ in 0..rounds.min(10) {
        run().await?;
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        run().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn report(name: &str, times: &[Duration], goal_ms: f64) {
    let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
    println!("{name:<34} {p50:>9.2} {p99:>9.2} {goal_ms:>9.0} {:>11.2}x", p99 / goal_ms);
}
