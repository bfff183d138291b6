//! A large upload streams through the proxy without being buffered: the process's resident
//! memory (client, proxy and backend all live here) stays far below the upload's size.
//!
//! In its own test binary so no other test's memory is counted. The size is
//! `TRELLIS_INGRESS_UPLOAD_MIB` (default 256 MiB, to keep CI short; the issue asks for 1 GiB:
//! `TRELLIS_INGRESS_UPLOAD_MIB=1024 cargo test -p trellis-ingress --test upload`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;
use trellis_ingress::{Ingress, IngressConfig};

const DEFAULT_UPLOAD_MIB: u64 = 256;
const CHUNK: usize = 256 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A backend that counts the bytes of `/upload` and answers the total.
async fn counting_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        let mut total = 0u64;
                        while let Some(Ok(frame)) = body.frame().await {
                            total += frame.data_ref().map_or(0, |d| d.len() as u64);
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                            Bytes::from(total.to_string()),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_streams_with_flat_memory() {
    let mib: u64 = std::env::var("TRELLIS_INGRESS_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_UPLOAD_MIB);
    let total = mib * 1024 * 1024;
    let backend = counting_backend().await;
    let config = IngressConfig::from_yaml(&format!(
        "endpoints:\n  - {{ name: web, listen: \"127.0.0.1:0\", protocol: http }}\n\
         pools:\n  up: {{ backends: [\"{backend}\"] }}\n\
         routes:\n  - {{ id: up, host: \"*\", pool: up }}\n"
    ))
    .unwrap();
    let cancel = CancellationToken::new();
    let ingress = Ingress::start(config, cancel.clone()).await.unwrap();
    let addr = ingress.local_addr("web").unwrap();

    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(rss_kib(), Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let chunk = Bytes::from(vec![0x5a; CHUNK]);
    let chunks = total.div_ceil(CHUNK as u64);
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let size = if i + 1 == chunks { (total - i * CHUNK as u64) as usize } else { CHUNK };
        Ok::<_, std::io::Error>(Frame::data(chunk.slice(..size)))
    }));
    let client: Client<_, StreamBody<_>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(format!("http://{addr}/upload"))
        .header("host", "upload.test")
        .body(StreamBody::new(stream))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), total.to_string(), "the backend received every byte");
    sampler.abort();

    let growth_mib = peak.load(Relaxed).saturating_sub(before) / 1024;
    eprintln!("uploaded {mib} MiB; resident memory grew by at most {growth_mib} MiB");
    // Buffering even a quarter of the upload would show; streaming needs a few MiB of buffers.
    assert!(growth_mib < (mib / 4).max(32), "memory grew by {growth_mib} MiB for a {mib} MiB upload");
    cancel.cancel();
    ingress.stopped().await;
}
