//! Following node ingress records in the store: list, then watch from the listed revision;
//! after any watch error (compaction included) or a failed list, wait a little and list
//! again, so a missed event can only delay a change, never lose it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trellis_materialize::keys;
use trellis_store::{EventKind, KeyValue, Revision, Store, WatchEvent};

use crate::NodeRoute;
use crate::nodes::Nodes;

/// Pause after the first failure; doubled after each further one.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Lists and watches until `cancel` fires. `synced` is raised to each store revision whose
/// changes the ingress has taken in.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    nodes: Arc<Nodes>,
    synced: watch::Sender<Revision>,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        if failures > 0 {
            let pause = RETRY_MIN.saturating_mul(1 << (failures - 1).min(10)).min(RETRY_MAX);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let listed = tokio::select! {
            _ = cancel.cancelled() => return,
            listed = store.range(keys::INGRESS_ROUTES) => listed,
        };
        let range = match listed {
            Ok(range) => range,
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, failures, "cannot list node ingress routes; retrying");
                continue;
            }
        };
        let records: BTreeMap<String, NodeRoute> =
            range.kvs.iter().filter_map(|kv| Some((kv.key.clone(), decode(kv)?))).collect();
        tracing::debug!(records = records.len(), revision = range.revision, "listed node ingress routes");
        nodes.replace_all(records);
        synced.send_if_modified(|seen| raise(seen, range.revision));

        let watched = tokio::select! {
            _ = cancel.cancelled() => return,
            watched = store.watch(keys::INGRESS_ROUTES, range.revision + 1) => watched,
        };
        let mut events = match watched {
            Ok(events) => events,
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, failures, "cannot watch node ingress routes; listing again");
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return,
                next = events.next() => next,
            };
            let mut revision = match next {
                Some(Ok(event)) => {
                    // Only a watch that delivers counts as recovered: one failing at once
                    // every time must still back off.
                    failures = 0;
                    apply(&nodes, &event)
                }
                Some(Err(err)) => {
                    failures += 1;
                    tracing::warn!(error = %err, "node ingress watch failed; listing again");
                    break;
                }
                None => {
                    failures += 1;
                    tracing::warn!("node ingress watch ended; listing again");
                    break;
                }
            };
            // Events of one transaction arrive together; a revision counts as taken in only
            // once all of them are.
            let mut failed = false;
            while let Some(next) = events.next().now_or_never() {
                match next {
                    Some(Ok(event)) => revision = revision.max(apply(&nodes, &event)),
                    _ => {
                        failed = true;
                        break;
                    }
                }
            }
            synced.send_if_modified(|seen| raise(seen, revision));
            if failed {
                failures += 1;
                tracing::warn!("node ingress watch failed; listing again");
                break;
            }
        }
    }
}

fn raise(seen: &mut Revision, revision: Revision) -> bool {
    if revision > *seen {
        *seen = revision;
        true
    } else {
        false
    }
}

/// Applies one event; returns its revision.
fn apply(nodes: &Nodes, event: &WatchEvent) -> Revision {
    let kv = &event.kv;
    match event.kind {
        EventKind::Put => match decode(kv) {
            Some(route) => nodes.put(&kv.key, route),
            // A record that cannot be read is served as if it were gone.
            None => nodes.delete(&kv.key),
        },
        EventKind::Delete => nodes.delete(&kv.key),
    }
    kv.mod_revision
}

/// A record as the materialize service writes it, stored under its own key.
fn decode(kv: &KeyValue) -> Option<NodeRoute> {
    let route: NodeRoute = match serde_json::from_slice(&kv.value) {
        Ok(route) => route,
        Err(err) => {
            tracing::warn!(key = %kv.key, error = %err, "ignoring an unreadable node ingress record");
            return None;
        }
    };
    let own_key = keys::ingress_route(&route.mzid, &route.node, route.protocol.as_str(), route.port);
    if own_key != kv.key {
        tracing::warn!(key = %kv.key, %own_key, "ignoring a node ingress record stored under another key");
        return None;
    }
    Some(route)
}
