//! [`PolicyHandle`]: the policy in force, shared through a `tokio::sync::watch` channel and
//! optionally kept in step with a file.
//!
//! # Reload flow
//! - [`PolicyHandle::watch_file`] reads and validates the file (an invalid file is an error: the
//!   server must not start on a policy it cannot read), then spawns one task.
//! - The task reloads when the file's fingerprint (length, mtime, inode) changes, on `SIGHUP`, and
//!   on [`PolicyHandle::reload_now`]. A changed fingerprint is only acted on once it has been
//!   seen unchanged for one more poll, so a file caught half-written is not loaded.
//! - A new file that fails to parse is rejected: logged at ERROR with its line and column,
//!   counted in [`ReloadStatus::rejected`], and the previous policy stays in force.
//! - The task ends when every handle has been dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::PolicyError;
use crate::policy::Policy;

/// How a file-backed [`PolicyHandle`] notices changes.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How often to check the file's fingerprint; `None` disables polling, leaving `SIGHUP` and
    /// [`PolicyHandle::reload_now`].
    pub poll_interval: Option<Duration>,
    /// Whether `SIGHUP` triggers a reload.
    pub reload_on_sighup: bool,
}

impl Default for WatchOptions {
    /// Poll every second and reload on `SIGHUP`.
    fn default() -> Self {
        WatchOptions { poll_interval: Some(Duration::from_secs(1)), reload_on_sighup: true }
    }
}

/// Counters describing the reloads of a file-backed handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads that replaced the policy in force.
    pub applied: u64,
    /// Reloads refused because the file was unreadable or invalid.
    pub rejected: u64,
    /// The message of the most recent rejection (with line and column when it has them).
    pub last_error: Option<String>,
}

/// What a successful reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file differed from the policy in force and replaced it.
    Applied,
    /// The file has the same text as the policy in force; nothing changed.
    Unchanged,
}

type ReloadReply = oneshot::Sender<Result<ReloadOutcome, PolicyError>>;

/// The policy in force. Cheap to clone; every clone sees reloads.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    current: watch::Receiver<Arc<Policy>>,
    status: Arc<Mutex<ReloadStatus>>,
    /// Asks the watcher task to reload; `None` for a fixed policy.
    reload: Option<mpsc::Sender<ReloadReply>>,
}

impl PolicyHandle {
    /// A handle that always answers with `policy` (tests, or a server started without a file).
    pub fn fixed(policy: Policy) -> PolicyHandle {
        // The sender is dropped at once; a watch receiver keeps returning the last value.
        let (_, current) = watch::channel(Arc::new(policy));
        PolicyHandle { current, status: Arc::default(), reload: None }
    }

    /// Loads the policy file (an error if it cannot be read or is invalid), then spawns a task
    /// that reloads it on change and on `SIGHUP`, with [`WatchOptions::default`].
    ///
    /// The task stops when every clone of the returned handle has been dropped.
    pub async fn watch_file(path: PathBuf) -> Result<(PolicyHandle, JoinHandle<()>), PolicyError> {
        PolicyHandle::watch_file_with(path, WatchOptions::default()).await
    }

    /// [`PolicyHandle::watch_file`] with explicit options.
    pub async fn watch_file_with(
        path: PathBuf,
        options: WatchOptions,
    ) -> Result<(PolicyHandle, JoinHandle<()>), PolicyError> {
        let seen = fingerprint(&path).await;
        let text = read(&path).await?;
        let policy = Policy::parse(&text)?;
        tracing::info!(path = %path.display(), "policy loaded");

        // Registered before returning, so a SIGHUP sent once this function returns is caught by
        // tokio's handler rather than the default action (terminating the process).
        let sighup = if options.reload_on_sighup {
            match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP; policy reloads by polling only");
                    None
                }
            }
        } else {
            None
        };
        let poll = options.poll_interval.map(|period| {
            let mut poll = tokio::time::interval(period);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            poll
        });

        let (tx, current) = watch::channel(Arc::new(policy));
        let (reload_tx, reload_rx) = mpsc::channel(8);
        let status = Arc::new(Mutex::new(ReloadStatus::default()));
        let watcher = Watcher { path, tx, status: status.clone(), seen, pending: None };
        let task = tokio::spawn(watcher.run(reload_rx, sighup, poll));
        let handle = PolicyHandle { current, status, reload: Some(reload_tx) };
        Ok((handle, task))
    }

    /// The policy in force now. Hold the `Arc` for one request so the request sees one policy.
    pub fn current(&self) -> Arc<Policy> {
        self.current.borrow().clone()
    }

    /// A receiver that is notified when the policy changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.current.clone()
    }

    /// Reloads the file now and waits for the result; the same path `SIGHUP` takes.
    ///
    /// An invalid file is returned as the error (and counted and logged as a rejected reload);
    /// the previous policy stays in force.
    pub async fn reload_now(&self) -> Result<ReloadOutcome, PolicyError> {
        let reload = self.reload.as_ref().ok_or(PolicyError::NotWatching)?;
        let (reply, answer) = oneshot::channel();
        reload.send(reply).await.map_err(|_| PolicyError::WatcherStopped)?;
        answer.await.map_err(|_| PolicyError::WatcherStopped)?
    }

    /// A snapshot of the reload counters (all zero for a fixed policy).
    pub fn reload_status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }
}

// === impl Watcher ===

/// What identifies a version of the file without reading it. `None` when it cannot be stat'ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// The state owned by the reload task.
struct Watcher {
    path: PathBuf,
    tx: watch::Sender<Arc<Policy>>,
    status: Arc<Mutex<ReloadStatus>>,
    /// The fingerprint of the file when it was last read (or found missing).
    seen: Option<Fingerprint>,
    /// A new fingerprint seen by the last poll, waiting for one more poll to confirm it.
    pending: Option<Option<Fingerprint>>,
}

impl Watcher {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<ReloadReply>,
        mut sighup: Option<Signal>,
        mut poll: Option<Interval>,
    ) {
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(reply) => {
                        let result = self.reload("request").await;
                        // The requester may have given up waiting; the reload stands regardless.
                        let _ = reply.send(result);
                    }
                    // Every handle is gone: nobody can read the policy any more.
                    None => break,
                },
                () = next_signal(&mut sighup) => {
                    // Errors are logged and counted inside reload.
                    let _ = self.reload("SIGHUP").await;
                }
                () = next_tick(&mut poll) => self.poll().await,
            }
        }
        tracing::debug!(path = %self.path.display(), "policy watcher stopped");
    }

    async fn poll(&mut self) {
        let now = fingerprint(&self.path).await;
        if now == self.seen {
            self.pending = None;
            return;
        }
        if self.pending != Some(now) {
            // Wait one more poll: editors and `cp` write in several steps, and a half-written
            // file may still be valid YAML with rules missing.
            self.pending = Some(now);
            return;
        }
        if now.is_none() {
            // Typically a rename in progress; keep the current policy and wait for the file.
            tracing::warn!(path = %self.path.display(), "policy file disappeared; keeping the current policy");
            self.seen = None;
            self.pending = None;
            return;
        }
        // Errors are logged and counted inside reload.
        let _ = self.reload("file change").await;
    }

    async fn reload(&mut self, trigger: &str) -> Result<ReloadOutcome, PolicyError> {
        // Fingerprint before reading: if the file changes in between, the next poll sees a
        // difference and reads it again, rather than missing the change.
        self.seen = fingerprint(&self.path).await;
        self.pending = None;
        let parsed = match read(&self.path).await {
            Ok(text) => Policy::parse(&text),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(policy) => {
                if policy.source() == self.tx.borrow().source() {
                    return Ok(ReloadOutcome::Unchanged);
                }
                self.tx.send_replace(Arc::new(policy));
                lock(&self.status).applied += 1;
                tracing::info!(path = %self.path.display(), trigger, "policy reloaded");
                Ok(ReloadOutcome::Applied)
            }
            Err(error) => {
                {
                    let mut status = lock(&self.status);
                    status.rejected += 1;
                    status.last_error = Some(error.to_string());
                }
                let position = error.position();
                tracing::error!(
                    path = %self.path.display(),
                    trigger,
                    line = position.map(|p| p.line),
                    column = position.map(|p| p.column),
                    error = %error,
                    "policy reload rejected; the previous policy stays in force"
                );
                Err(error)
            }
        }
    }
}

async fn next_signal(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                // The signal driver is gone (runtime shutting down); stop selecting on it.
                *signal = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn next_tick(poll: &mut Option<Interval>) {
    match poll {
        Some(p) => {
            p.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Fingerprint { len: meta.len(), modified: meta.modified().ok(), inode: meta.ino() })
}

async fn read(path: &Path) -> Result<String, PolicyError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| PolicyError::Read { path: path.to_owned(), source })
}

/// Locks the status, recovering from poisoning: the counters stay meaningful even if a holder
/// panicked mid-update, and a policy server must not go down over a counter.
fn lock(status: &Mutex<ReloadStatus>) -> std::sync::MutexGuard<'_, ReloadStatus> {
    status.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
