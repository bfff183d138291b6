//! SIGHUP reloads the policy file.
//!
//! This is its own test binary, so the signal goes to a process that contains only this test.
//! `watch_file_with` installs tokio's SIGHUP handler before it returns, so sending the signal
//! afterwards cannot hit the default action (terminating the process). The signal is sent with
//! `kill(1)` to this process's own PID only.

use std::time::Duration;

use trellis_policy::{PolicyHandle, WatchOptions};

const FIRST: &str = "experiment:\n  public:\n    read: [Any.Any]\n";
const SECOND: &str = "experiment:\n  public:\n    read: [Project.Member]\n";
const INVALID: &str = "experiment:\n  public:\n    read: [Any.Any\n  private: {}\n";

fn sighup_self() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn sighup_reloads_and_invalid_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yml");
    std::fs::write(&path, FIRST).unwrap();
    // Polling off: only the signal can cause a reload.
    let options = WatchOptions { poll_interval: None, reload_on_sighup: true };
    let (handle, task) = PolicyHandle::watch_file_with(path.clone(), options).await.unwrap();

    let mut changes = handle.subscribe();
    std::fs::write(&path, SECOND).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(handle.current().source(), FIRST, "no reload without a signal");
    sighup_self();
    tokio::time::timeout(Duration::from_secs(10), changes.changed()).await.expect("SIGHUP reload").unwrap();
    assert_eq!(handle.current().source(), SECOND);
    assert_eq!(handle.reload_status().applied, 1);

    std::fs::write(&path, INVALID).unwrap();
    sighup_self();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.reload_status().rejected == 0 {
        assert!(tokio::time::Instant::now() < deadline, "SIGHUP reload of invalid file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = handle.reload_status().last_error.unwrap();
    assert!(last.starts_with("line 4 column 10: "), "{last}");
    assert_eq!(handle.current().source(), SECOND);

    drop(handle);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("watcher stops").unwrap();
}
