//! Reading the configuration file and applying it: at start, when its contents change (read
//! every `poll_every`), on SIGHUP and on request. An invalid file is refused with its line and
//! column in the log, and the running configuration stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use trellis_ingress::{ConfigError, Ingress, IngressConfig};

use crate::ControllerError;
use crate::nat::Nat;
use crate::nodes::{Nodes, chain};
use crate::plan::reserved_names;

/// What reloads have done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads that read a new (or, when forced, the same) file and tried to apply it.
    pub attempts: u64,
    /// Those that were applied.
    pub applied: u64,
    /// Why the last attempt failed, with line and column for an invalid file; `None` after a
    /// success.
    pub last_error: Option<String>,
}

/// Applies configuration files, one at a time.
pub(crate) struct Reloader {
    path: Option<PathBuf>,
    ingress: Ingress,
    nodes: Arc<Nodes>,
    state: Mutex<State>,
    status: watch::Sender<ReloadStatus>,
}

struct State {
    /// The contents last tried, so an unchanged file is not applied again.
    last_text: Option<String>,
    nat: Nat,
    stopped: bool,
}

impl Reloader {
    pub(crate) fn new(
        path: Option<PathBuf>,
        ingress: Ingress,
        nodes: Arc<Nodes>,
        text: Option<String>,
        nat: Nat,
    ) -> Reloader {
        let state = State { last_text: text, nat, stopped: false };
        Reloader {
            path,
            ingress,
            nodes,
            state: Mutex::new(state),
            status: watch::Sender::new(ReloadStatus::default()),
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    /// Reads the file and applies it if it changed (or always, when `force`). A missing file is
    /// an error only when forced: the running configuration stays until it is back.
    pub(crate) async fn reload(&self, force: bool) -> Result<(), ControllerError> {
        let Some(path) = &self.path else {
            tracing::debug!("no ingress configuration file to reload");
            return Ok(());
        };
        let mut state = self.state.lock().await;
        if state.stopped {
            return Err(ControllerError::Stopped);
        }
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !force => return Ok(()),
            Err(source) => {
                let err = ControllerError::ReadConfig { path: path.clone(), source };
                self.failed(path, &err);
                return Err(err);
            }
        };
        if !force && state.last_text.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        state.last_text = Some(text.clone());
        let outcome = match parse(Some(path), &text) {
            Ok(config) => match self.nodes.reload(config.clone()) {
                Ok(()) => state.nat.apply(self.ingress.nat().as_ref()).await.map_err(ControllerError::Nat),
                Err(err) => Err(ControllerError::Ingress(err)),
            },
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(path = %path.display(), "ingress configuration reloaded");
                self.status.send_modify(|s| {
                    s.attempts += 1;
                    s.applied += 1;
                    s.last_error = None;
                });
                Ok(())
            }
            Err(err) => {
                self.failed(path, &err);
                Err(err)
            }
        }
    }

    fn failed(&self, path: &Path, err: &ControllerError) {
        let message = chain(err);
        match err {
            ControllerError::Nat(_) => tracing::error!(
                path = %path.display(), error = %message,
                "ingress configuration applied, but not its NAT; the previous NAT stays"
            ),
            _ => tracing::error!(
                path = %path.display(), error = %message,
                "ingress configuration refused; still serving the previous one"
            ),
        }
        self.status.send_modify(|s| {
            s.attempts += 1;
            s.last_error = Some(message);
        });
    }

    /// Brings the NAT in line with what the proxy asks for now, when that changed (a backend
    /// of a `forward: kernel` endpoint passed or failed its health checks).
    pub(crate) async fn follow_nat(&self) {
        let mut state = self.state.lock().await;
        if state.stopped {
            return;
        }
        if let Err(err) = state.nat.follow(self.ingress.nat().as_ref()).await {
            tracing::error!(error = %chain(&err), "could not bring the ingress NAT in line; the previous NAT stays");
        }
    }

    /// Shows what the NAT's rules counted in the proxy's metrics (when anything forwards).
    pub(crate) async fn count_nat(&self) {
        let mut state = self.state.lock().await;
        if state.stopped || !state.nat.has_forwards() {
            return;
        }
        match state.nat.translated().await {
            Ok(translated) => self.ingress.record_nat_translations(&translated),
            Err(err) => tracing::debug!(error = %chain(&err), "could not read the ingress NAT's counters"),
        }
    }

    /// Removes the NAT and refuses further reloads.
    pub(crate) async fn shutdown(&self) {
        let mut state = self.state.lock().await;
        state.stopped = true;
        if let Err(err) = state.nat.remove().await {
            tracing::error!(error = %chain(&err), "could not remove the ingress NAT");
        }
    }
}

/// Parses and checks a configuration file's contents.
pub(crate) fn parse(path: Option<&Path>, text: &str) -> Result<IngressConfig, ControllerError> {
    let invalid = |source| ControllerError::InvalidConfig { path: path.map(Path::to_owned), source };
    let config = IngressConfig::from_yaml(text).map_err(invalid)?;
    if let Some(message) = reserved_names(&config) {
        return Err(invalid(ConfigError { position: None, message }));
    }
    Ok(config)
}

/// The configuration to start with, and the file's contents when it came from the file.
pub(crate) async fn initial(
    path: Option<&Path>,
    default: Option<&IngressConfig>,
) -> Result<(IngressConfig, Option<String>), ControllerError> {
    if let Some(path) = path {
        match tokio::fs::read_to_string(path).await {
            Ok(text) => return Ok((parse(Some(path), &text)?, Some(text))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && default.is_some() => {
                tracing::info!(path = %path.display(), "no ingress configuration file yet; serving the default");
            }
            Err(source) => return Err(ControllerError::ReadConfig { path: path.to_owned(), source }),
        }
    }
    let config = default.cloned().ok_or(ControllerError::NoConfig)?;
    config.validate().map_err(|source| ControllerError::InvalidConfig { path: None, source })?;
    if let Some(message) = reserved_names(&config) {
        let source = ConfigError { position: None, message };
        return Err(ControllerError::InvalidConfig { path: None, source });
    }
    Ok((config, None))
}

/// Reads the file every `every` and applies it when it changed.
pub(crate) async fn poll(reloader: Arc<Reloader>, every: Duration, cancel: CancellationToken) {
    // Failures are logged and recorded in the status by the reloader.
    periodically(every, cancel, || async {
        let _ = reloader.reload(false).await;
    })
    .await;
}

/// Runs `tick` every `every` (the first time at once) until `cancel` fires; a slow tick delays
/// the next instead of bunching them up.
async fn periodically<F: Future<Output = ()>>(
    every: Duration,
    cancel: CancellationToken,
    mut tick: impl FnMut() -> F,
) {
    // `interval` refuses a zero period.
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tick().await;
    }
}

/// Follows the proxy's NAT wishes: its `forward: kernel` backends come and go with health.
pub(crate) async fn follow_nat(
    reloader: Arc<Reloader>,
    mut changes: watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        reloader.follow_nat().await;
    }
}

/// Reads the NAT's counters every `every` for the metrics of `forward: kernel` endpoints.
pub(crate) async fn count_nat(reloader: Arc<Reloader>, every: Duration, cancel: CancellationToken) {
    periodically(every, cancel, || reloader.count_nat()).await;
}

/// Reloads on every SIGHUP, whether or not the file changed.
pub(crate) async fn on_sighup(
    reloader: Arc<Reloader>,
    mut hangups: tokio::signal::unix::Signal,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            received = hangups.recv() => if received.is_none() { return },
        }
        tracing::info!("SIGHUP: reloading the ingress configuration");
        let _ = reloader.reload(true).await;
    }
}
