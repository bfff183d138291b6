//! Shared by the integration tests: a policy with fixed accounts, the proxy on a free port,
//! a small HTTP client, and a recording fake upstream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use trellis_xdc_proxy::{Backend, Denial, XdcProxy, XdcProxyConfig, XdcWebPolicy};

pub const DOMAIN: &str = "xdc.example.net";
pub const COOKIE: &str = "trellis_xdc_session";
pub const ALICE_TOKEN: &str = "portal-token-alice.s3cr3t";
pub const BOB_TOKEN: &str = "portal-token-bob.s3cr3t";
pub const ALICE_PASSWORD: &str = "correct horse";

/// alice is a member of `proj`, bob is not; `proj` has one XDC, `x0`.
pub struct TestPolicy {
    pub backend: Backend,
}

#[async_trait::async_trait]
impl XdcWebPolicy for TestPolicy {
    async fn authenticate(&self, token: &str) -> Option<String> {
        match token {
            ALICE_TOKEN => Some("alice".into()),
            BOB_TOKEN => Some("bob".into()),
            _ => None,
        }
    }

    async fn login(&self, username: &str, password: &str) -> Result<String, String> {
        match (username, password) {
            ("alice", ALICE_PASSWORD) => Ok(ALICE_TOKEN.into()),
            ("bob", "bob's password") => Ok(BOB_TOKEN.into()),
            _ => Err("wrong username or password".into()),
        }
    }

    async fn resolve(&self, user: &str, project: &str, xdc: &str) -> Result<Backend, Denial> {
        if (project, xdc) != ("proj", "x0") {
            return Err(Denial::NotFound(format!("project {project} has no XDC {xdc}")));
        }
        match user {
            "alice" => Ok(self.backend.clone()),
            _ => Err(Denial::Forbidden(format!("{user} is not a member of project {project}"))),
        }
    }
}

pub struct RunningProxy {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The proxy on 127.0.0.1 with the test policy in front of `backend`, plain HTTP.
pub async fn start_proxy(backend: Backend) -> RunningProxy {
    let mut config = XdcProxyConfig::new(DOMAIN);
    config.secure_cookie = false;
    let proxy = XdcProxy::new(config, Arc::new(TestPolicy { backend })).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move { proxy.serve(listener, shutdown).await.unwrap() });
    RunningProxy { addr, stop, task: Some(task) }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
}

/// Sends one request and reads the whole answer. `headers` are added as given.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    send_on(&client(), method, url, headers, body).await
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A client that keeps connections alive between requests.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send_on(
    client: &TestClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status: parts.status, headers: parts.headers, body }
}

/// A backend that answers 200 to everything, remembers each request's headers, and tries to
/// plant cookies the proxy must not pass on.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn fake_upstream() -> FakeUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(String, HeaderMap)>>> = Arc::default();
    let stop = CancellationToken::new();
    let connections: Arc<AtomicUsize> = Arc::default();
    let (record, cancelled, accepted) = (seen.clone(), stop.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted.unwrap(),
                _ = cancelled.cancelled() => return,
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let record = record.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let path = req.uri().to_string();
                        record.lock().unwrap().push((path, req.headers().clone()));
                        let response = Response::builder()
                            .header("set-cookie", "_xsrf=2|abc; Path=/proj/x0/")
                            .header("set-cookie", format!("{COOKIE}=planted; Path=/"))
                            .header("set-cookie", "username-127-0-0-1-1=\"2|jupyter\"; HttpOnly")
                            .body(Full::new(Bytes::from_static(b"upstream ok")))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    FakeUpstream { addr, seen, connections, stop }
}

pub fn backend_at(addr: SocketAddr, jupyter_token: &str) -> Backend {
    Backend { addr, jupyter_token: jupyter_token.into(), base_path: "/proj/x0/".into() }
}

/// A loopback address nothing listens on: bound, then released.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
