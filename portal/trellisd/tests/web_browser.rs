//! The web portal in a real browser: headless Chromium walks a researcher's whole journey
//! against a real `trellisd up` (register → an admin activates → login → project →
//! experiment → model → topology → realize → materialize → XDC → Jupyter → logout), saving a
//! screenshot of every step under `target/web-screenshots/`, then checks that a second user
//! sees none of the first user's private objects.

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::{Driver, Screenshots, body_text, click, fill_and_submit, wait_for_element_text, wait_for_text};
use common::Daemon;
use fantoccini::{Client, Locator};

const ADMIN_PASSWORD: &str = "browser-admin-pw-1";
const PASSWORD: &str = "correct horse battery";
const XDC_BRIDGE: &str = "trxweb0";

const MODEL: &str = "from mergexp import *
net = Network('duo', addressing == ipv4, routing == static)
a, b = [net.node(n) for n in ['a', 'b']]
net.connect([a, b], capacity == mbps(100), latency == ms(5))
experiment(net)
";

/// XDC and experiment-node containers outlive `trellisd` by design (a restart adopts them):
/// the test removes the ones its portal started (bundles under its data directory), their
/// network namespaces, the materialization's switch namespace and bridge, and the XDC bridge.
struct ContainerCleanup(PathBuf);

impl Drop for ContainerCleanup {
    fn drop(&mut self) {
        let listed = std::process::Command::new("crun").args(["list", "--format", "json"]).output();
        let containers: Vec<serde_json::Value> =
            listed.ok().and_then(|out| serde_json::from_slice(&out.stdout).ok()).unwrap_or_default();
        for container in containers {
            let (id, bundle) =
                (container["id"].as_str().unwrap_or(""), container["bundle"].as_str().unwrap_or(""));
            if !(id.starts_with("trx-") || id.starts_with("tr-")) || !Path::new(bundle).starts_with(&self.0) {
                continue;
            }
            let _ = std::process::Command::new("crun").args(["delete", "--force", id]).output();
            let _ = std::process::Command::new("ip").args(["netns", "delete", id]).output();
            // Node containers are `tr-<materialization hash>-<node hash>`; the hash also names
            // the materialization's switch namespace and bridge (facility/agent/src/naming.rs).
            if let Some(hash) = id.strip_prefix("tr-").and_then(|rest| rest.split('-').next()) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", &format!("tr-{hash}-sw")])
                    .output();
                let _ =
                    std::process::Command::new("ip").args(["link", "delete", &format!("t{hash}br")]).output();
            }
        }
        let _ = std::process::Command::new("ip").args(["link", "delete", XDC_BRIDGE]).output();
    }
}

async fn log_in(browser: &Client, base: &str, username: &str, password: &str) {
    browser.goto(&format!("{base}/login")).await.unwrap();
    fill_and_submit(browser, &[("username", username), ("password", password)], "login").await;
    let who = browser.find(Locator::Id("whoami")).await.expect("signed in: the navigation names the user");
    assert_eq!(who.text().await.unwrap(), username);
}

async fn register(browser: &Client, base: &str, username: &str) {
    browser.goto(&format!("{base}/register")).await.unwrap();
    let email = format!("{username}@example.org");
    let fields = [
        ("username", username),
        ("name", "Ada Researcher"),
        ("email", email.as_str()),
        ("password", PASSWORD),
    ];
    fill_and_submit(browser, &fields, "register").await;
    let text = body_text(browser).await;
    assert!(text.contains(&format!("Registered {username}")), "registration confirmed:\n{text}");
}

async fn activate(admin: &Client, base: &str, username: &str) {
    admin.goto(&format!("{base}/admin")).await.unwrap();
    click(admin, &format!("activate-{username}")).await;
    let row = admin.find(Locator::Id(&format!("user-{username}"))).await.unwrap().text().await.unwrap();
    assert!(row.contains("Active"), "{username} is active after activation: {row}");
}

async fn log_out(browser: &Client, base: &str) {
    click(browser, "logout").await;
    let text = body_text(browser).await;
    assert!(text.contains("Logged out"), "{text}");
    // The session is gone: the dashboard sends the browser back to the login page.
    browser.goto(&format!("{base}/")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().starts_with("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_walks_from_registration_to_jupyter_and_others_see_nothing_private() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let _cleanup = ContainerCleanup(dir.path().to_owned());
    let daemon = Daemon::start(
        &["up", "--xdc-bridge", XDC_BRIDGE, "--xdc-subnet", "10.253.0.0/24"],
        &state_dir,
        ADMIN_PASSWORD,
    )
    .await;
    let base = format!("http://{}", daemon.addr);
    let driver = Driver::start(&dir.path().join("chromedriver.log"));
    let alice = driver.session().await;
    let admin = driver.session().await;
    let mut shots = Screenshots::new("researcher");

    // Register; an administrator activates the account.
    register(&alice, &base, "alice").await;
    shots.take(&alice, "registered").await;
    log_in(&admin, &base, "admin", ADMIN_PASSWORD).await;
    activate(&admin, &base, "alice").await;
    shots.take(&admin, "admin-activated").await;

    // Log in; create a private project and an experiment in it.
    log_in(&alice, &base, "alice", PASSWORD).await;
    shots.take(&alice, "dashboard").await;
    alice.goto(&format!("{base}/projects")).await.unwrap();
    browser::select(&alice, "new-project-access", "Private").await;
    fill_and_submit(
        &alice,
        &[("new-project-name", "lab"), ("new-project-description", "the lab")],
        "create-project",
    )
    .await;
    shots.take(&alice, "project-created").await;
    alice.goto(&format!("{base}/projects/lab")).await.unwrap();
    fill_and_submit(
        &alice,
        &[("new-experiment-name", "duo"), ("new-experiment-description", "two nodes")],
        "create-experiment",
    )
    .await;
    shots.take(&alice, "experiment-created").await;

    // Push a model through the editor; its revision draws a two-node topology.
    alice.goto(&format!("{base}/projects/lab/experiments/duo")).await.unwrap();
    fill_and_submit(&alice, &[("model-source", MODEL)], "push-model").await;
    shots.take(&alice, "model-pushed").await;
    alice.goto(&format!("{base}/projects/lab/experiments/duo")).await.unwrap();
    let revision = alice.find(Locator::Css("#revisions-table tbody a")).await.expect("a revision is listed");
    let before = alice.find(Locator::Css("html")).await.unwrap();
    revision.click().await.unwrap();
    browser::wait_until_stale(&before).await;
    let nodes = alice.find_all(Locator::Css("#topology svg .node")).await.unwrap();
    assert_eq!(nodes.len(), 2, "the topology draws nodes a and b");
    shots.take(&alice, "topology").await;

    // Realize, then materialize; the pages refresh until the work is done.
    fill_and_submit(&alice, &[("realization-name", "r1")], "realize").await;
    let realization_url = alice.current_url().await.unwrap().to_string();
    shots.take(&alice, "realizing").await;
    wait_for_text(&alice, &realization_url, &["Materialize"], Duration::from_secs(120)).await;
    click(&alice, "materialize").await;
    shots.take(&alice, "materializing").await;
    let busy = ["Processing", "Pending", "Error", "Failed"];
    let minute = Duration::from_secs(60);
    wait_for_element_text(&alice, &realization_url, "materialization-status", "Success", &busy, 3 * minute)
        .await;
    shots.take(&alice, "materialized").await;

    // An XDC; Jupyter opens through the proxy with the portal's own session.
    alice.goto(&format!("{base}/xdcs")).await.unwrap();
    browser::select(&alice, "new-xdc-project", "lab").await;
    fill_and_submit(&alice, &[("new-xdc-name", "dev")], "create-xdc").await;
    shots.take(&alice, "xdc-created").await;
    let ssh = alice.find(Locator::Id("ssh-command-dev-lab")).await.unwrap().text().await.unwrap();
    assert!(
        ssh.contains("ssh") && ssh.contains("-J") && ssh.contains("dev-lab"),
        "the ssh -J command: {ssh}"
    );
    wait_for_text(&alice, &format!("{base}/xdcs"), &["Running", "Active", "Ready"], Duration::from_secs(120))
        .await;
    let jupyter = alice.find(Locator::Id("open-jupyter-dev-lab")).await.unwrap();
    let href = jupyter.attr("href").await.unwrap().expect("the Jupyter link has a target");
    alice.goto(&href).await.unwrap();
    let title = wait_for_jupyter(&alice, &href).await;
    shots.take(&alice, "jupyter").await;
    assert!(title.contains("Jupyter") || title.contains("Home"), "Jupyter's own page: {title}");

    // Done for the day: dematerialize and relinquish through the same pages.
    alice.goto(&realization_url).await.unwrap();
    click(&alice, "dematerialize").await;
    browser::wait_for_element(&alice, &realization_url, "materialize", Duration::from_secs(120)).await;
    shots.take(&alice, "dematerialized").await;
    browser::tick(&alice, "relinquish-confirm").await;
    click(&alice, "relinquish").await;
    shots.take(&alice, "relinquished").await;

    alice.goto(&base).await.unwrap();
    log_out(&alice, &base).await;
    shots.take(&alice, "logged-out").await;

    // A second user sees none of it.
    let bob = driver.session().await;
    register(&bob, &base, "bob").await;
    activate(&admin, &base, "bob").await;
    log_in(&bob, &base, "bob", PASSWORD).await;
    let dashboard = body_text(&bob).await;
    assert!(!dashboard.contains("lab") && !dashboard.contains("duo"), "bob's dashboard:\n{dashboard}");
    bob.goto(&format!("{base}/projects/lab")).await.unwrap();
    let denied = body_text(&bob).await;
    assert!(denied.contains("Denied") || denied.contains("Not found"), "bob on alice's project:\n{denied}");
    shots.take(&bob, "other-user-denied").await;
    bob.goto(&format!("{base}/xdcs")).await.unwrap();
    assert!(!body_text(&bob).await.contains("dev-lab"), "bob does not see alice's XDC");

    for session in [alice, admin, bob] {
        session.close().await.unwrap();
    }
    eprintln!("screenshots: {}", shots.dir().display());
}

/// Jupyter's page title once its tree view loaded (it may take a moment after the XDC starts).
async fn wait_for_jupyter(browser: &Client, href: &str) -> String {
    for _ in 0..60 {
        let title = browser.title().await.unwrap_or_default();
        if title.contains("Jupyter") || title.contains("Home") {
            return title;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.goto(href).await.unwrap();
    }
    browser.title().await.unwrap_or_default()
}
