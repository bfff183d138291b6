//! Real backends and clients for the ingress tests: hyper HTTP servers that describe what
//! they received, a WebSocket echo server, a tonic gRPC echo service, and clients that dial
//! the ingress whatever the URI's host says.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trellis_ingress::{Ingress, IngressConfig};

pub type BoxBody = http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// An HTTP/1.1 + HTTP/2 backend that answers `backend=<name>` plus the request's host, path
/// and forwarding headers; `/upload` answers the number of body bytes it read.
pub struct Backend {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    stop: CancellationToken,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        tokio::spawn({
            let (stop, requests, connections) = (stop.clone(), requests.clone(), connections.clone());
            async move {
                loop {
                    let stream = tokio::select! {
                        _ = stop.cancelled() => return,
                        accepted = listener.accept() => accepted.unwrap().0,
                    };
                    let requests = requests.clone();
                    let service = service_fn(move |req: Request<Incoming>| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        describe(name, req)
                    });
                    connections.lock().await.spawn(async move {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Backend { addr, requests, stop, connections }
    }

    /// Kills the backend: the listener closes and every open connection is dropped mid-flight.
    pub async fn kill(&self) {
        self.stop.cancel();
        self.connections.lock().await.abort_all();
    }
}

async fn describe(name: &'static str, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let text = if req.uri().path() == "/upload" {
        let mut body = req.into_body();
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => break,
            }
        }
        format!("backend={name} bytes={total}")
    } else {
        format!(
            "backend={name} version={:?} host={} path={} xff={} xfp={} xfh={} forwarded={} connection={} prefix={}",
            req.version(),
            req.uri().host().map(str::to_owned).unwrap_or_else(|| header("host")),
            req.uri().path_and_query().map_or("/", |p| p.as_str()),
            header("x-forwarded-for"),
            header("x-forwarded-proto"),
            header("x-forwarded-host"),
            header("forwarded"),
            header("x-secret"),
            header("x-forwarded-prefix"),
        )
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A WebSocket server echoing every message.
pub async fn websocket_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_close() {
                        break;
                    }
                    if futures::SinkExt::send(&mut ws, message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Starts an ingress from YAML in which `{name}` placeholders are replaced by addresses.
pub async fn ingress(yaml: &str, vars: &[(&str, String)]) -> (Ingress, CancellationToken) {
    let mut text = yaml.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    let config = IngressConfig::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let cancel = CancellationToken::new();
    let ingress = Ingress::start(config, cancel.clone()).await.unwrap();
    (ingress, cancel)
}

/// An HTTP client that always dials `addr`, whatever host the URI names (so host routing can
/// be tested over HTTP/2, where the host is the URI authority).
pub fn client(addr: SocketAddr, http2: bool) -> Client<impl Connect, BoxBody> {
    let connector = tower::service_fn(move |_uri: http::Uri| {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        })
    });
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2);
    builder.build(connector)
}

pub trait Connect: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static {}
impl<T: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static> Connect for T {}

pub fn empty() -> BoxBody {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

/// GET `url` with `host`; returns status and body text.
pub async fn get(client: &Client<impl Connect, BoxBody>, url: &str, host: Option<&str>) -> (u16, String) {
    let mut request = Request::get(url);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = client.request(request.body(empty()).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = T> + Send>>;
