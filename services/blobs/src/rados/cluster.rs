//! The librados connection and the thread that owns it.
//!
//! The `ceph` crate's cluster handle (`Rados`) is not `Send`, while its pool handle (`IoCtx`) is
//! `Send + Sync` but is only valid while the cluster handle lives. So a small thread connects,
//! hands the `IoCtx` out, and keeps the `Rados` until the [`Cluster`] is dropped; dropping it
//! destroys the `IoCtx` first, then tells the thread to shut the connection down.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ceph::ceph::{IoCtx, Rados, connect_to_ceph};
use ceph::error::RadosError;

use super::errno_kind;
use crate::BlobError;

/// An open pool. Field order matters: `ioctx` must drop before `keeper` shuts the cluster down.
pub(super) struct Cluster {
    pub(super) ioctx: IoCtx,
    _keeper: Keeper,
}

struct Keeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which drops `Rados` (rados_shutdown).
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("rados connection thread panicked while shutting down");
        }
    }
}

/// Connects as `user` with the cluster described by `conf`, creating `pool` if it is missing.
pub(super) fn connect(conf: &Path, user: &str, pool: &str) -> Result<Cluster, BlobError> {
    let fail = |op: &'static str| {
        let (conf, user, pool) = (conf.to_owned(), user.to_owned(), pool.to_owned());
        move |source: RadosError| BlobError::Connect { op, conf, user, pool, source: Box::new(source) }
    };
    let conf_str = conf
        .to_str()
        .ok_or_else(|| RadosError::Error("the ceph.conf path is not UTF-8".to_owned()))
        .map_err(fail("read conf"))?
        .to_owned();
    // librados wants the bare id ("admin"), not the entity name ("client.admin").
    let user_id = user.strip_prefix("client.").unwrap_or(user).to_owned();
    let pool_name = pool.to_owned();

    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<IoCtx, (&'static str, RadosError)>>(1);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rados-conn".to_owned())
        .spawn(move || {
            let rados = match open(&conf_str, &user_id, &pool_name) {
                Ok((rados, ioctx)) => {
                    if ready_tx.send(Ok(ioctx)).is_err() {
                        return;
                    }
                    rados
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Returns once the sender is dropped, i.e. when the Cluster is.
            let _ = stop_rx.recv();
            drop(rados);
        })
        .map_err(BlobError::io("spawn the rados connection thread for", conf))?;
    let keeper = Keeper { stop: Some(stop_tx), thread: Some(thread) };
    match ready_rx.recv() {
        Ok(Ok(ioctx)) => Ok(Cluster { ioctx, _keeper: keeper }),
        Ok(Err((op, source))) => Err(fail(op)(source)),
        Err(_) => Err(fail("connect")(RadosError::Error("the rados connection thread died".to_owned()))),
    }
}

fn open(conf: &str, user: &str, pool: &str) -> Result<(Rados, IoCtx), (&'static str, RadosError)> {
    let rados = connect_to_ceph(user, conf).map_err(|e| ("connect", e))?;
    if rados.rados_lookup_pool(pool).map_err(|e| ("look up pool", e))?.is_none() {
        match rados.rados_create_pool(pool) {
            Ok(()) => {
                tracing::info!(pool, "created RADOS pool for blobs");
                enable_application(&rados, pool);
            }
            // Another client created it meanwhile.
            Err(e) if errno_kind(&e) == Some(std::io::ErrorKind::AlreadyExists) => {}
            Err(e) => return Err(("create pool", e)),
        }
    }
    let ioctx = rados.get_rados_ioctx(pool).map_err(|e| ("open pool", e))?;
    Ok((rados, ioctx))
}

/// Tags a new pool with an application, as Ceph expects (else HEALTH_WARN POOL_APP_NOT_ENABLED).
/// Best effort: a user allowed to create pools but not to run this only gets the warning.
fn enable_application(rados: &Rados, pool: &str) {
    let cmd = serde_json::json!({
        "prefix": "osd pool application enable",
        "pool": pool,
        "app": "trellis",
    });
    if let Err(e) = rados.ceph_mon_command_without_data(&cmd) {
        tracing::warn!(pool, error = %e, "cannot enable the 'trellis' application on the blob pool");
    }
}
