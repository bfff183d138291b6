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

/// Accepts until `stop` fires, holding at most `max_connections` connections open.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    handler: Arc<ArcSwap<Handler>>,
    max_connections: usize,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    let mut failures = 0;
    loop {
        // The permit is taken before accepting, so at the limit new clients wait in the
        // kernel's backlog instead of being accepted and dropped.
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
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
