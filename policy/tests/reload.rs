//! The file-backed policy: changes picked up, invalid changes rejected, the watcher stops.
//!
//! SIGHUP has its own test binary (`tests/sighup.rs`) so the signal only reaches a process whose
//! handler is known to be installed.

use std::path::Path;
use std::time::Duration;

use trellis_policy::{
    AccessMode, AccessRequest, Entity, Operation, Policy, PolicyError, PolicyHandle, Relations,
    ReloadOutcome, WatchOptions,
};

const OPEN: &str = "experiment:\n  public:\n    read: [Any.Any]\n";
const CLOSED: &str = "experiment:\n  public:\n    read: [Project.Member]\n";
const CLOSED_AGAIN: &str = "# closed again\nexperiment:\n  public:\n    read: []\n";
const INVALID: &str = "experiment:\n  public:\n    read: [Project.Owner]\n";

/// Whether an authenticated caller with no relations may read a public experiment.
fn anyone_may_read(handle: &PolicyHandle) -> bool {
    handle
        .current()
        .decide(&AccessRequest {
            entity: Entity::Experiment,
            mode: AccessMode::Public,
            operation: Operation::Read,
            admin: false,
            relations: &Relations::new(),
        })
        .allowed
}

fn fast_poll() -> WatchOptions {
    WatchOptions { poll_interval: Some(Duration::from_millis(50)), reload_on_sighup: false }
}

fn no_poll() -> WatchOptions {
    WatchOptions { poll_interval: None, reload_on_sighup: false }
}

/// Waits up to 10 s for `cond`.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn polling_picks_up_valid_change_and_rejects_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    write(&path, OPEN);
    let (handle, task) = PolicyHandle::watch_file_with(path.clone(), fast_poll()).await.unwrap();
    assert!(anyone_may_read(&handle));
    let clone = handle.clone();

    // A valid change is picked up, and every clone sees it.
    let mut changes = handle.subscribe();
    write(&path, CLOSED);
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("change picked up")
        .unwrap();
    assert!(!anyone_may_read(&clone));
    assert_eq!(handle.current().source(), CLOSED);
    assert_eq!(handle.reload_status().applied, 1);

    // An invalid change is rejected once, with its position, and the old policy keeps answering.
    write(&path, INVALID);
    eventually("rejection", || handle.reload_status().rejected == 1).await;
    let status = handle.reload_status();
    let last = status.last_error.unwrap();
    assert!(last.starts_with("line 3 column 12: unknown role \"Owner\""), "{last}");
    assert_eq!(handle.current().source(), CLOSED);
    assert!(!anyone_may_read(&handle));
    // Not retried (and re-logged) on every poll while the file stays the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.reload_status().rejected, 1);
    assert_eq!(handle.reload_status().applied, 1);

    // Fixing the file applies it.
    write(&path, OPEN);
    eventually("the fix", || anyone_may_read(&handle)).await;
    assert_eq!(handle.reload_status().applied, 2);

    drop((handle, clone));
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("watcher stops once every handle is dropped")
        .unwrap();
}

#[tokio::test]
async fn deleted_file_keeps_policy_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    write(&path, OPEN);
    let (handle, _task) = PolicyHandle::watch_file_with(path.clone(), fast_poll()).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(anyone_may_read(&handle));
    assert_eq!(handle.reload_status().rejected, 0);
    // Replaced the way deployment tools do it: write elsewhere, rename into place.
    let staged = dir.path().join("policy.yml.new");
    write(&staged, CLOSED);
    std::fs::rename(&staged, &path).unwrap();
    eventually("the new file", || !anyone_may_read(&handle)).await;
}

#[tokio::test]
async fn reload_now_applies_reports_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    write(&path, OPEN);
    let (handle, _task) = PolicyHandle::watch_file_with(path.clone(), no_poll()).await.unwrap();

    // Without polling, nothing happens until asked.
    write(&path, CLOSED);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(anyone_may_read(&handle));
    assert_eq!(handle.reload_now().await.unwrap(), ReloadOutcome::Applied);
    assert!(!anyone_may_read(&handle));
    assert_eq!(handle.reload_now().await.unwrap(), ReloadOutcome::Unchanged);

    write(&path, INVALID);
    let e = handle.reload_now().await.unwrap_err();
    assert!(matches!(e, PolicyError::Grant { .. }), "{e:?}");
    assert_eq!(e.position().map(|p| (p.line, p.column)), Some((3, 12)));
    assert_eq!(handle.current().source(), CLOSED);
    assert_eq!(handle.reload_status().rejected, 1);

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(handle.reload_now().await, Err(PolicyError::Read { .. })));
    assert_eq!(handle.reload_status().rejected, 2);
    assert_eq!(handle.current().source(), CLOSED);

    write(&path, CLOSED_AGAIN);
    assert_eq!(handle.reload_now().await.unwrap(), ReloadOutcome::Applied);
    assert_eq!(handle.reload_status().applied, 2);
}

#[tokio::test]
async fn invalid_or_missing_file_fails_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    let e = PolicyHandle::watch_file(path.clone()).await.unwrap_err();
    assert!(matches!(e, PolicyError::Read { .. }), "{e:?}");
    write(&path, INVALID);
    let e = PolicyHandle::watch_file(path).await.unwrap_err();
    assert_eq!(e.position().map(|p| (p.line, p.column)), Some((3, 12)));
}

#[tokio::test]
async fn aborted_watcher_reports_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    write(&path, OPEN);
    let (handle, task) = PolicyHandle::watch_file_with(path, no_poll()).await.unwrap();
    task.abort();
    let _ = task.await;
    assert!(matches!(handle.reload_now().await, Err(PolicyError::WatcherStopped)));
    // The last policy keeps answering.
    assert!(anyone_may_read(&handle));
}

#[tokio::test]
async fn fixed_handle() {
    let handle = PolicyHandle::fixed(Policy::parse(OPEN).unwrap());
    assert!(anyone_may_read(&handle.clone()));
    assert!(matches!(handle.reload_now().await, Err(PolicyError::NotWatching)));
    assert_eq!(handle.reload_status(), Default::default());
}
