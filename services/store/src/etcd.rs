//! The etcd backend: the [`Store`] trait on an etcd v3 cluster through `etcd-client`.
//!
//! Mapping: [`Compare::ModRevision`] is etcd's `MOD` compare (etcd compares a missing key as
//! revision 0), [`Compare::Exists`] is `VERSION > 0`, and [`Op`]s become the success branch of
//! one etcd transaction. Watches use `start_revision` with a prefix range; a compacted start
//! revision ends the stream with [`StoreError::Compacted`]. Leases are etcd leases (whole
//! seconds, at least one; etcd may round a short TTL up to its minimum).
//!
//! Retries: reads and lease renewals are retried on `Unavailable` with a short backoff, because
//! repeating them cannot change anything. Writes are not: a transaction that timed out may have
//! been applied, and only the caller (with its compare) can decide what to do. A watch whose
//! connection drops re-subscribes from the next revision it has not delivered, so it neither
//! repeats nor skips events.
//!
//! Works with etcd 3.4 (no 3.5-only calls such as range streams).

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    PutOptions, TxnOp, WatchOptions,
};
use futures::StreamExt;

use crate::{
    Compare, EventKind, KeyValue, LeaseId, Op, Range, Revision, Store, StoreError, Txn, TxnOutcome,
    WatchEvent, WatchStream,
};

/// How many keys one page of a prefix read asks for.
const PAGE_SIZE: i64 = 500;
/// How many times a read is tried before its `Unavailable` error is returned.
const READ_ATTEMPTS: u32 = 6;
/// How long a dropped watch keeps trying to re-subscribe before giving up.
const WATCH_RECONNECT_FOR: Duration = Duration::from_secs(15);
/// The largest response a client accepts (etcd's own request limit is 1.5 MiB per value).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A [`Store`] backed by an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (for example `http://127.0.0.1:2379`).
    pub async fn connect(endpoints: &[String]) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options)).await.map_err(map_err)?;
        Ok(Self { client })
    }

    /// Compacts etcd's history up to `revision`; a watch from before it then fails with
    /// [`StoreError::Compacted`].
    pub async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let options = etcd_client::CompactionOptions::new().with_physical();
        self.client.kv_client().compact(revision, Some(options)).await.map_err(map_err)?;
        Ok(())
    }

    /// Runs an idempotent call, retrying while etcd is unavailable.
    async fn retry<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match call(self.client.clone()).await {
                Err(StoreError::Unavailable { message }) if attempt < READ_ATTEMPTS => {
                    tracing::debug!(attempt, %message, "etcd unavailable; retrying read");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.retry(|client| async move {
            let resp = client.kv_client().get(key, None).await.map_err(map_err)?;
            resp.kvs().first().map(convert_kv).transpose()
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<Range, StoreError> {
        let (start, end) = prefix_range(prefix);
        self.retry(|client| {
            let (start, end) = (start.clone(), end.clone());
            async move {
                let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
                let mut kvs = Vec::new();
                let mut key = start;
                // Later pages are read at the first page's revision so the whole range is one
                // consistent snapshot.
                let mut revision = 0;
                loop {
                    let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE_SIZE);
                    if revision > 0 {
                        options = options.with_revision(revision);
                    }
                    let resp = kv.get(key.clone(), Some(options)).await.map_err(map_err)?;
                    if revision == 0 {
                        revision = resp.header().map_or(0, |header| header.revision());
                    }
                    for item in resp.kvs() {
                        kvs.push(convert_kv(item)?);
                    }
                    match resp.kvs().last() {
                        Some(last) if resp.more() => {
                            key = last.key().to_vec();
                            key.push(0);
                        }
                        _ => break,
                    }
                }
                Ok(Range { kvs, revision })
            }
        })
        .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let lease = txn.success.iter().find_map(|op| match op {
            Op::Put { lease, .. } => *lease,
            _ => None,
        });
        let compares: Vec<EtcdCompare> = txn
            .compares
            .iter()
            .map(|compare| match compare {
                Compare::ModRevision { key, revision } => {
                    EtcdCompare::mod_revision(key.as_str(), CompareOp::Equal, *revision)
                }
                Compare::Exists { key } => EtcdCompare::version(key.as_str(), CompareOp::Greater, 0),
            })
            .collect();
        let ops: Vec<TxnOp> = txn
            .success
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    let options = lease.map(|lease| PutOptions::new().with_lease(lease));
                    TxnOp::put(key, value, options)
                }
                Op::Delete { key } => TxnOp::delete(key, None),
                Op::DeletePrefix { prefix } => {
                    let (start, end) = prefix_range(&prefix);
                    TxnOp::delete(start, Some(DeleteOptions::new().with_range(end)))
                }
            })
            .collect();
        let request = etcd_client::Txn::new().when(compares).and_then(ops);
        let resp = match self.client.kv_client().txn(request).await {
            Ok(resp) => resp,
            Err(err) if is_lease_not_found(&err) => {
                return Err(StoreError::LeaseNotFound(lease.unwrap_or(0)));
            }
            Err(err) => return Err(map_err(err)),
        };
        Ok(TxnOutcome {
            succeeded: resp.succeeded(),
            revision: resp.header().map_or(0, |header| header.revision()),
        })
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<WatchStream, StoreError> {
        // Pin "from now" to a concrete revision so a reconnect knows where to resume.
        let next_revision =
            if from_revision <= 0 { self.current_revision().await? + 1 } else { from_revision };
        let mut watcher = EtcdWatcher {
            client: self.client.clone(),
            prefix: prefix.to_owned(),
            next_revision,
            stream: None,
            pending: VecDeque::new(),
            done: false,
        };
        watcher.subscribe().await?;
        Ok(futures::stream::unfold(watcher, |mut watcher| async move {
            let item = watcher.next().await?;
            Some((item, watcher))
        })
        .boxed())
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = i64::try_from(ttl.as_millis().div_ceil(1000)).unwrap_or(i64::MAX).max(1);
        let resp = self.client.lease_client().grant(seconds, None).await.map_err(map_err)?;
        if !resp.error().is_empty() {
            return Err(StoreError::Internal { message: format!("etcd lease grant: {}", resp.error()) });
        }
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.retry(|client| async move {
            // One request on a keep-alive stream; the client returns once etcd has answered it.
            match client.lease_client().keep_alive(lease).await {
                Ok(_) => Ok(()),
                Err(err) if is_lease_not_found(&err) => Err(StoreError::LeaseNotFound(lease)),
                Err(err) => Err(map_err(err)),
            }
        })
        .await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        match self.client.lease_client().revoke(lease).await {
            Ok(_) => Ok(()),
            Err(err) if is_lease_not_found(&err) => Err(StoreError::LeaseNotFound(lease)),
            Err(err) => Err(map_err(err)),
        }
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.retry(|client| async move {
            let options = GetOptions::new().with_count_only();
            let resp = client.kv_client().get("\0", Some(options)).await.map_err(map_err)?;
            resp.header()
                .map(|header| header.revision())
                .ok_or_else(|| StoreError::Internal { message: "etcd response without a header".to_owned() })
        })
        .await
    }
}

/// One logical watch, which may span several etcd watch streams after reconnects.
struct EtcdWatcher {
    client: Client,
    prefix: String,
    /// The first revision not yet delivered; a reconnect starts here.
    next_revision: Revision,
    stream: Option<etcd_client::WatchStream>,
    pending: VecDeque<WatchEvent>,
    done: bool,
}

/// What ended an etcd watch stream.
enum Interrupted {
    /// The connection failed; a new stream may succeed.
    Retry(StoreError),
    /// The watch cannot continue.
    Fatal(StoreError),
}

impl EtcdWatcher {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let result = match self.stream.as_mut() {
                Some(stream) => match stream.message().await {
                    Ok(Some(resp)) => self.accept(&resp),
                    Ok(None) => Err(Interrupted::Retry(StoreError::Unavailable {
                        message: "etcd closed the watch stream".to_owned(),
                    })),
                    Err(err) => Err(classify(err)),
                },
                None => Err(Interrupted::Retry(StoreError::Unavailable {
                    message: "watch not subscribed".to_owned(),
                })),
            };
            let err = match result {
                Ok(()) => continue,
                Err(Interrupted::Fatal(err)) => err,
                Err(Interrupted::Retry(err)) => {
                    tracing::debug!(error = %err, from = self.next_revision, "etcd watch dropped; re-subscribing");
                    self.stream = None;
                    match self.reconnect().await {
                        Ok(()) => continue,
                        Err(err) => err,
                    }
                }
            };
            self.done = true;
            self.stream = None;
            return Some(Err(err));
        }
    }

    /// Opens an etcd watch from `next_revision` and waits for etcd to confirm it.
    async fn subscribe(&mut self) -> Result<(), StoreError> {
        let (start, end) = prefix_range(&self.prefix);
        let options = WatchOptions::new().with_range(end).with_start_revision(self.next_revision);
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .watch(start, Some(options))
            .await
            .map_err(map_err)?;
        match stream.message().await {
            Ok(Some(resp)) => {
                self.stream = Some(stream);
                self.accept(&resp).map_err(|(Interrupted::Retry(err) | Interrupted::Fatal(err))| err)
            }
            Ok(None) => Err(StoreError::Unavailable { message: "etcd closed the watch stream".into() }),
            Err(err) => Err(map_err(err)),
        }
    }

    /// Re-subscribes with backoff while etcd is unavailable.
    async fn reconnect(&mut self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + WATCH_RECONNECT_FOR;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.subscribe().await {
                Ok(()) => return Ok(()),
                Err(StoreError::Unavailable { message }) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%message, "etcd watch re-subscribe failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Queues a response's events, skipping any revision already delivered.
    fn accept(&mut self, resp: &etcd_client::WatchResponse) -> Result<(), Interrupted> {
        if resp.compact_revision() != 0 {
            return Err(Interrupted::Fatal(StoreError::Compacted {
                requested: self.next_revision,
                compacted: resp.compact_revision(),
            }));
        }
        if resp.canceled() {
            return Err(Interrupted::Fatal(StoreError::Unavailable {
                message: format!("etcd cancelled the watch: {}", resp.cancel_reason()),
            }));
        }
        let mut last = None;
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let kind = match event.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            let kv = convert_kv(kv).map_err(Interrupted::Fatal)?;
            if kv.mod_revision < self.next_revision {
                continue;
            }
            last = Some(kv.mod_revision);
            self.pending.push_back(WatchEvent { kind, kv });
        }
        if let Some(last) = last {
            self.next_revision = last + 1;
        }
        Ok(())
    }
}

/// The etcd key range `[start, end)` covering every key under `prefix`.
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), end);
        }
    }
    // An empty prefix (or one of only 0xff bytes) means "every key from here on": etcd spells
    // that as an end key of "\0".
    let start = if prefix.is_empty() { vec![0] } else { prefix.as_bytes().to_vec() };
    (start, vec![0])
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
    let key = String::from_utf8(kv.key().to_vec())
        .map_err(|err| StoreError::Internal { message: format!("etcd key is not UTF-8: {err}") })?;
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: (kv.lease() != 0).then_some(kv.lease()),
    })
}

fn is_lease_not_found(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            i32::from(status.code()) == grpc::NOT_FOUND && status.message().contains("lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(message) => message.contains("lease not found"),
        _ => false,
    }
}

fn classify(err: etcd_client::Error) -> Interrupted {
    match map_err(err) {
        err @ StoreError::Unavailable { .. } => Interrupted::Retry(err),
        err => Interrupted::Fatal(err),
    }
}

/// gRPC status codes (fixed by the gRPC spec), named here so this crate need not depend on tonic.
mod grpc {
    pub(super) const CANCELLED: i32 = 1;
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const ABORTED: i32 = 10;
    pub(super) const UNAVAILABLE: i32 = 14;
}

fn map_err(err: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => match i32::from(status.code()) {
            grpc::UNAVAILABLE
            | grpc::DEADLINE_EXCEEDED
            | grpc::CANCELLED
            | grpc::RESOURCE_EXHAUSTED
            | grpc::ABORTED
            | grpc::UNKNOWN => StoreError::Unavailable { message: format!("etcd: {status}") },
            _ => StoreError::Internal { message: format!("etcd: {status}") },
        },
        E::TransportError(_) | E::IoError(_) | E::EndpointError(_) | E::WatchError(_) => {
            StoreError::Unavailable { message: format!("etcd: {err}") }
        }
        other => StoreError::Internal { message: format!("etcd: {other}") },
    }
}
