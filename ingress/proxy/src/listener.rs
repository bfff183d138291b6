//! The accept loop shared by all endpoints. The handler is read from an `ArcSwap` for each
//! accepted connection, so a reload can change an endpoint's routes, certificates or pool
//! without closing its socket; connections already open keep the handler they started with.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::HttpEndpoint;
use crate::io::accept_backoff;
use crate::tcp::TcpEndpoint;

/// What an endpoint does with a connection.
pub(crate) enum Handler {
    Http(Arc<HttpEndpoint>),
    Tcp(Arc<TcpEndpoint>),
}

/// Accepts until `stop` fires, serving connections while `limit` gives permits (an
/// endpoint's listeners, one per serving thread, share one limit).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    handler: Arc<ArcSwap<Handler>>,
    limit: Arc<Semaphore>,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
) {
    let mut failures = 0;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_backoff(&err, &mut failures).await;
                    continue;
                }
            },
        };
        failures = 0;
        // At the limit the accepted connection waits here for a permit, and the clients after
        // it wait in the kernel's backlog; none is dropped. The permit is taken after
        // accepting, not before: a listener idle with a permit in hand would starve its
        // siblings, whose clients the kernel may have queued.
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stop, hard_stop) = (stop.clone(), hard_stop.clone());
        match &**handler.load() {
            Handler::Http(endpoint) => {
                let endpoint = endpoint.clone();
                tracker.spawn(async move {
                    endpoint.connection(stream, peer, stop, hard_stop).await;
                    drop(permit);
                });
            }
            Handler::Tcp(endpoint) => {
                let endpoint = endpoint.clone();
                tracker.spawn(async move {
                    endpoint.connection(stream, peer, hard_stop).await;
                    drop(permit);
                });
            }
        }
    }
}
