//! The XDC controller: makes the runtime run exactly the XDCs the store wants, keeps their
//! accounts and keys in step with the workspace, attaches them to materializations, and records
//! what it observes.
//!
//! Level-triggered: every pass compares all wanted XDCs with everything the runtime holds, so
//! a missed event or a crash only delays convergence. Passes run on every change under the XDC
//! prefix and every `resync` (membership and keys live elsewhere in the store and change
//! without touching XDC records). One controller per runtime: the local runtime manages this
//! host, so `trellisd` runs it beside the runtime, not on every API replica.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_realize::stored::{now_unix, store_error};
use trellis_types::Error;
use trellis_volumes::{VolumeError, VolumeOwner, VolumeRef, Volumes};
use trellis_xdc_runtime::{XdcPhase as RuntimePhase, XdcRuntime, XdcSpec};

use crate::keys;
use crate::service::XdcService;
use crate::types::{AttachedNetwork, Attachment, XdcPhase, XdcRecord, XdcStatusRecord};

/// Connects XDCs to materializations' infranets.
#[async_trait::async_trait]
pub trait Attacher: Send + Sync + 'static {
    /// Puts the XDC running in network namespace `netns` on `attachment`'s infranet (idempotent)
    /// and says what names it should resolve.
    async fn attach(
        &self,
        attachment: &Attachment,
        xdc_id: &str,
        netns: &str,
    ) -> Result<AttachedNetwork, Error>;
    /// Takes it off again; nothing to do when it is not attached.
    async fn detach(&self, mzid: &str, xdc_id: &str, netns: &str) -> Result<(), Error>;
}

/// What the controller drives.
#[derive(Clone)]
pub struct ControllerParts {
    pub runtime: Arc<dyn XdcRuntime>,
    pub volumes: Arc<dyn Volumes>,
    /// `None`: attach requests are recorded but reported as failing.
    pub attacher: Option<Arc<dyn Attacher>>,
    /// Full pass interval besides the passes changes trigger.
    pub resync: Duration,
}

/// Remembers volumes already ensured, so a pass does not repeat backend calls (CephFS: several
/// `ceph` commands each) for every XDC every time.
struct EnsuredVolumes {
    inner: Arc<dyn Volumes>,
    seen: Mutex<HashMap<VolumeRef, (VolumeOwner, std::path::PathBuf, Instant)>>,
}

const VOLUME_RECHECK: Duration = Duration::from_secs(300);

#[async_trait::async_trait]
impl Volumes for EnsuredVolumes {
    async fn ensure(
        &self,
        volume: &VolumeRef,
        owner: VolumeOwner,
    ) -> Result<std::path::PathBuf, VolumeError> {
        if let Ok(seen) = self.seen.lock()
            && let Some((o, path, at)) = seen.get(volume)
            && *o == owner
            && at.elapsed() < VOLUME_RECHECK
            && path.exists()
        {
            return Ok(path.clone());
        }
        let path = self.inner.ensure(volume, owner).await?;
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(volume.clone(), (owner, path.clone(), Instant::now()));
        }
        Ok(path)
    }

    async fn remove(&self, volume: &VolumeRef) -> Result<(), VolumeError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(volume);
        }
        self.inner.remove(volume).await
    }
}

/// How soon a pass follows one that left an XDC starting.
const STARTING_RECHECK: Duration = Duration::from_millis(500);

struct Controller {
    service: XdcService,
    runtime: Arc<dyn XdcRuntime>,
    volumes: EnsuredVolumes,
    attacher: Option<Arc<dyn Attacher>>,
    /// The spec last applied per runtime id: an unchanged spec on a running XDC is not re-applied.
    applied: HashMap<String, XdcSpec>,
}

impl XdcService {
    /// Runs the controller until `cancel` fires.
    pub fn spawn_controller(&self, parts: ControllerParts, cancel: CancellationToken) -> JoinHandle<()> {
        let mut controller = Controller {
            service: self.clone(),
            runtime: parts.runtime,
            volumes: EnsuredVolumes { inner: parts.volumes, seen: Mutex::new(HashMap::new()) },
            attacher: parts.attacher,
            applied: HashMap::new(),
        };
        tokio::spawn(async move { controller.run(parts.resync, cancel).await })
    }
}

impl Controller {
    async fn run(&mut self, resync: Duration, cancel: CancellationToken) {
        let store = self.service.store.clone();
        let mut watch = None;
        loop {
            if watch.is_none() {
                match store.current_revision().await {
                    Ok(rev) => watch = store.watch(keys::XDCS, rev + 1).await.ok(),
                    Err(e) => tracing::warn!(error = %e, "XDC controller cannot read the store revision"),
                }
            }
            let mut next_pass = resync;
            match self.pass().await {
                // Starting XDCs are looked at again soon, so their status turns Running promptly.
                Ok(true) => next_pass = STARTING_RECHECK,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "XDC controller pass failed"),
            }
            let next_event = async {
                match watch.as_mut() {
                    Some(w) => w.next().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(next_pass) => {}
                event = next_event => {
                    if event.is_none() {
                        watch = None;
                    }
                    // Let a burst of writes (create + status delete) land before the pass.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// One full comparison of wanted and running XDCs; says whether any is still starting.
    async fn pass(&mut self) -> Result<bool, Error> {
        if let Err(e) = self.service.reap_expired().await {
            tracing::warn!(error = %e, "could not delete expired XDCs");
        }
        let wanted = self.service.list(None).await?;
        let wanted_ids: HashSet<String> = wanted.iter().map(XdcRecord::id).collect();
        let running =
            self.runtime.list().await.map_err(|e| Error::Unavailable(format!("XDC runtime: {e}")))?;
        for id in running.iter().filter(|id| !wanted_ids.contains(*id)) {
            self.applied.remove(id);
            match self.runtime.remove(id).await {
                Ok(()) => tracing::info!(xdc = %id, "XDC stopped and removed"),
                Err(e) => tracing::warn!(xdc = %id, error = %e, "could not remove XDC"),
            }
        }
        self.applied.retain(|id, _| wanted_ids.contains(id));
        let mut starting = false;
        for xdc in &wanted {
            let observed = self.reconcile(xdc).await;
            starting |= observed.phase == XdcPhase::Pending;
            self.record(xdc, observed).await?;
        }
        Ok(starting)
    }

    async fn apply(&mut self, spec: XdcSpec) -> Result<trellis_xdc_runtime::XdcStatus, String> {
        let current = self.runtime.status(&spec.id).await.map_err(|e| e.to_string())?;
        if let Some(status) = &current
            && status.phase != RuntimePhase::Failed
            && self.applied.get(&spec.id) == Some(&spec)
        {
            return Ok(status.clone());
        }
        let id = spec.id.clone();
        let status = self.runtime.apply(&spec).await.map_err(|e| e.to_string())?;
        self.applied.insert(id, spec);
        Ok(status)
    }

    /// Brings one XDC to its wanted state and says what it is now.
    async fn reconcile(&mut self, xdc: &XdcRecord) -> XdcStatusRecord {
        let previous = self.service.status(&xdc.project, &xdc.name).await.ok().flatten().unwrap_or_default();
        let mut attached = previous.attached.clone();
        let failed = |message: String, attached: Option<AttachedNetwork>| XdcStatusRecord {
            phase: XdcPhase::Failed,
            address: None,
            message,
            updated: now_unix(),
            attached,
            attach_error: None,
        };
        let wants = |a: &Option<AttachedNetwork>| match (&xdc.attachment, a) {
            (Some(want), Some(have)) => want.mzid == have.mzid,
            (None, None) => true,
            _ => false,
        };
        // Apply with the names it has now; attaching needs the XDC's network namespace first.
        let spec = match self.service.build_spec(xdc, &self.volumes, attached.as_ref()).await {
            Ok(spec) => spec,
            Err(e) => return failed(format!("preparing the XDC: {e}"), attached),
        };
        let mut status = match self.apply(spec).await {
            Ok(status) => status,
            Err(e) => return failed(e, attached),
        };
        let mut attach_error = None;
        if !wants(&attached) {
            match (&status.netns, &self.attacher) {
                (None, _) => {
                    attach_error = Some("the XDC's runtime cannot attach it to experiments".to_owned())
                }
                (Some(_), None) => {
                    attach_error = Some("this portal has no way to attach XDCs to experiments".to_owned())
                }
                (Some(netns), Some(attacher)) => {
                    let mut ok = true;
                    if let Some(old) = &attached {
                        if let Err(e) = attacher.detach(&old.mzid, &xdc.id(), netns).await {
                            attach_error = Some(format!("detaching from {}: {e}", old.mzid));
                            ok = false;
                        } else {
                            tracing::info!(xdc = %xdc.full_name(), mzid = %old.mzid, "XDC detached");
                            attached = None;
                        }
                    }
                    if ok && let Some(want) = &xdc.attachment {
                        match attacher.attach(want, &xdc.id(), netns).await {
                            Ok(network) => {
                                tracing::info!(xdc = %xdc.full_name(), mzid = %want.mzid, address = %network.address, "XDC attached");
                                attached = Some(network);
                            }
                            Err(e) => attach_error = Some(format!("attaching to {}: {e}", want.mzid)),
                        }
                    }
                    // Names follow the attachment.
                    match self.service.build_spec(xdc, &self.volumes, attached.as_ref()).await {
                        Ok(spec) => match self.apply(spec).await {
                            Ok(s) => status = s,
                            Err(e) => return failed(e, attached),
                        },
                        Err(e) => return failed(format!("preparing the XDC: {e}"), attached),
                    }
                }
            }
        }
        XdcStatusRecord {
            phase: match status.phase {
                RuntimePhase::Starting => XdcPhase::Pending,
                RuntimePhase::Running => XdcPhase::Running,
                RuntimePhase::Failed => XdcPhase::Failed,
            },
            address: status.address,
            message: status.message,
            updated: now_unix(),
            attached,
            attach_error,
        }
    }

    /// Writes `observed` unless only its timestamp changed, and only while the XDC still exists.
    async fn record(&self, xdc: &XdcRecord, observed: XdcStatusRecord) -> Result<(), Error> {
        let store = self.service.store.as_ref();
        let key = keys::status(&xdc.project, &xdc.name);
        let previous = self.service.status(&xdc.project, &xdc.name).await?;
        if previous
            .as_ref()
            .is_some_and(|p| XdcStatusRecord { updated: observed.updated, ..p.clone() } == observed)
        {
            return Ok(());
        }
        if observed.phase == XdcPhase::Failed {
            tracing::warn!(xdc = %xdc.full_name(), message = %observed.message, "XDC failed");
        }
        let record_key = keys::xdc(&xdc.project, &xdc.name);
        let value =
            serde_json::to_vec(&observed).map_err(|e| Error::Internal(format!("encoding {key}: {e}")))?;
        // Only while the XDC record exists: a status must not outlive a deletion.
        let txn = trellis_store::Txn {
            compares: vec![trellis_store::Compare::Exists { key: record_key }],
            success: vec![trellis_store::Op::Put { key, value, lease: None }],
        };
        store.txn(txn).await.map_err(store_error)?;
        Ok(())
    }
}
