//! Reloading the configuration file: on change and on SIGHUP, live, keeping open connections
//! and node routes; invalid files refused with their line and column.

use std::path::Path;
use std::time::Duration;

use trellis_ingress_controller::{ControllerError, IngressConfig, IngressProtocol};

use crate::support::*;

const CONFIG: &str = "endpoints:\n  - { name: svc, listen: \"127.0.0.1:0\", protocol: tcp, pool: {pool} }\npools:\n  a: { backends: [\"{a}\"] }\n  b: { backends: [\"{b}\"] }\n";

/// Replaces the file in one step, so a poll never reads half of it.
fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[tokio::test]
async fn a_changed_file_is_applied_live_and_an_invalid_one_refused() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_store(dir.path());
    let (a, b) = (line_echo("A").await, line_echo("B").await);
    let vars = |pool: &str| [("pool", pool.to_owned()), ("a", a.to_string()), ("b", b.to_string())];
    let path = dir.path().join("ingress.yml");
    write_atomically(&path, &yaml(CONFIG, &vars("a")));
    let mut options = options(store.clone(), None);
    options.config_path = Some(path.clone());
    options.poll_every = Some(Duration::from_millis(50));
    let (running, cancel) = start(options).await;
    let svc = running.local_addr("svc").unwrap();

    // A node route and an open connection, both to survive the reloads.
    let node = line_echo("node").await;
    let route = node_route(IngressProtocol::Tcp, "a", node.port(), free_port());
    let revision = write_route(store.as_ref(), &route).await;
    patiently("the node route", running.synced(revision)).await.unwrap();
    let mut open = LineClient::connect(svc).await.unwrap();
    assert_eq!(open.ask("first").await.as_deref(), Some("A:first"));

    let mut status = running.reload_status();
    write_atomically(&path, &yaml(CONFIG, &vars("b")));
    patiently("the reload", status.wait_for(|s| s.applied == 1)).await.unwrap();
    assert_eq!(running.local_addr("svc"), Some(svc), "the endpoint kept its socket");
    assert_eq!(ask_once(svc, "new").await.as_deref(), Some("B:new"));
    assert_eq!(open.ask("open").await.as_deref(), Some("A:open"), "the open connection stays");
    let gateway = running.node_addr(&route).unwrap();
    assert_eq!(ask_once(gateway, "node").await.as_deref(), Some("node:node"));

    // An unknown key on line 4: refused, with its place, and the running configuration stays.
    let invalid = yaml(CONFIG, &vars("a")).replace("a: { backends:", "a: { balanse: round_robin, backends:");
    write_atomically(&path, &invalid);
    patiently("the refusal", status.wait_for(|s| s.attempts == 2)).await.unwrap();
    let error = status.borrow().last_error.clone().unwrap();
    assert!(error.contains("line 4") && error.contains("balanse"), "{error}");
    assert_eq!(status.borrow().applied, 1);
    assert_eq!(ask_once(svc, "kept").await.as_deref(), Some("B:kept"));

    // A name kept for node ingress is refused too.
    write_atomically(
        &path,
        &yaml(CONFIG, &vars("b")).replace("  b: {", "  node/b: {").replace("pool: b", "pool: node/b"),
    );
    patiently("the second refusal", status.wait_for(|s| s.attempts == 3)).await.unwrap();
    assert!(status.borrow().last_error.as_deref().unwrap().contains("kept for node ingress"));

    // Fixed: applied, and the node route is still there.
    write_atomically(&path, &yaml(CONFIG, &vars("a")));
    patiently("the fixed reload", status.wait_for(|s| s.applied == 2)).await.unwrap();
    assert_eq!(status.borrow().last_error, None);
    assert_eq!(ask_once(svc, "back").await.as_deref(), Some("A:back"));
    assert_eq!(ask_once(gateway, "node").await.as_deref(), Some("node:node"));
    assert_eq!(open.ask("last").await.as_deref(), Some("A:last"));

    // A TCP session is not cut on shutdown before the grace period; close it first.
    drop(open);
    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
}

#[tokio::test]
async fn sighup_reloads_and_the_default_serves_until_the_file_exists() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_store(dir.path());
    let (a, b) = (line_echo("A").await, line_echo("B").await);
    let vars = |pool: &str| [("pool", pool.to_owned()), ("a", a.to_string()), ("b", b.to_string())];
    let path = dir.path().join("ingress.yml");
    let mut options = options(store, Some(IngressConfig::from_yaml(&yaml(CONFIG, &vars("a"))).unwrap()));
    options.config_path = Some(path.clone());
    options.reload_on_sighup = true;
    let (running, cancel) = start(options).await;
    let svc = running.local_addr("svc").unwrap();
    assert_eq!(ask_once(svc, "default").await.as_deref(), Some("A:default"));

    // No polling: the new file is read on SIGHUP. Same listen address as the running endpoint,
    // so the socket stays.
    let mut status = running.reload_status();
    let listen = format!("listen: \"{svc}\"");
    write_atomically(&path, &yaml(CONFIG, &vars("b")).replace("listen: \"127.0.0.1:0\"", &listen));
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    patiently("the reload on SIGHUP", status.wait_for(|s| s.applied >= 1)).await.unwrap();
    assert_eq!(ask_once(svc, "file").await.as_deref(), Some("B:file"));

    // A reload on request reports an invalid file with its place.
    write_atomically(
        &path,
        "endpoints:\n  - { name: svc, listen: \"127.0.0.1:0\", protocol: tcp, pool: nope }\n",
    );
    let err = running.reload().await.unwrap_err();
    assert!(matches!(err, ControllerError::InvalidConfig { .. }), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.starts_with("line 2, column 5: "), "{source}");
    assert_eq!(ask_once(svc, "kept").await.as_deref(), Some("B:kept"));

    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
}
