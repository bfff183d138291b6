//! Real backends, a real store, and records written the way the materialize service writes
//! them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use trellis_ingress_controller::{
    ControllerOptions, IngressConfig, IngressController, IngressProtocol, NodeIngressOptions, NodeRoute,
    RunningIngress,
};
use trellis_materialize::{keys, mzid};
use trellis_store::embedded::EmbeddedStore;
use trellis_store::{Compare, Op, Revision, Store, Txn};

/// How long any one wait may take before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Fails the test when `future` does not finish within [`PATIENCE`].
pub async fn patiently<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up waiting for {what}"),
    }
}

/// Polls `check` until it holds (within [`PATIENCE`]).
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    patiently(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

pub fn embedded_store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(&dir.join("state.redb")).unwrap())
}

/// A port nothing listens on right now (for gateway ports, which the materialize service
/// picks from its range).
pub fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    // Both protocols, since a test may use the port for either.
    drop(std::net::UdpSocket::bind(("127.0.0.1", port)));
    port
}

/// A node route as `MaterializeService::new_ingress` builds it, for node `node` at 127.0.0.1.
pub fn node_route(protocol: IngressProtocol, node: &str, port: u16, gateway_port: u16) -> NodeRoute {
    let id = mzid("proj", "exp", "rlz");
    let url = match protocol {
        IngressProtocol::Http | IngressProtocol::Https => format!("https://localhost/{id}/{node}/{port}/"),
        other => format!("{}://localhost:{gateway_port}", other.as_str()),
    };
    NodeRoute {
        mzid: id,
        protocol,
        node: node.to_owned(),
        port: u32::from(port),
        node_addr: "127.0.0.1".to_owned(),
        gateway: "localhost".to_owned(),
        gateway_port: u32::from(gateway_port),
        url,
        creator: "mona".to_owned(),
        created: 1_700_000_000,
    }
}

pub fn route_key(route: &NodeRoute) -> String {
    keys::ingress_route(&route.mzid, &route.node, route.protocol.as_str(), route.port)
}

/// Writes a route the way `new_ingress` commits it: the record and its gateway port claim in
/// one transaction. Returns the revision.
pub async fn write_route(store: &dyn Store, route: &NodeRoute) -> Revision {
    let key = route_key(route);
    let mut txn = Txn {
        compares: vec![Compare::ModRevision { key: key.clone(), revision: 0 }],
        success: vec![trellis_realize::stored::put(&key, route).unwrap()],
    };
    if let Some(port_key) = route.gateway_port_key() {
        txn.compares.push(Compare::ModRevision { key: port_key.clone(), revision: 0 });
        txn.success.push(Op::Put { key: port_key, value: key.into_bytes(), lease: None });
    }
    let outcome = store.txn(txn).await.unwrap();
    assert!(outcome.succeeded, "the route or its gateway port already exists");
    outcome.revision
}

/// Deletes a route the way `delete_ingress` does. Returns the revision.
pub async fn delete_route(store: &dyn Store, route: &NodeRoute) -> Revision {
    let mut txn = Txn { compares: vec![], success: vec![Op::Delete { key: route_key(route) }] };
    if let Some(port_key) = route.gateway_port_key() {
        txn.success.push(Op::Delete { key: port_key });
    }
    let outcome = store.txn(txn).await.unwrap();
    assert!(outcome.succeeded);
    outcome.revision
}

/// Options for a test: the given configuration, gateway ports on 127.0.0.1, quick retries.
pub fn options(store: Arc<dyn Store>, config: Option<IngressConfig>) -> ControllerOptions {
    let mut options = ControllerOptions::new(store);
    options.config = config;
    options.poll_every = None;
    options.reload_on_sighup = false;
    options.node_ingress =
        NodeIngressOptions { retry_every: Duration::from_millis(200), ..Default::default() };
    options
}

pub async fn start(options: ControllerOptions) -> (RunningIngress, CancellationToken) {
    let cancel = CancellationToken::new();
    let running = IngressController::start(options, cancel.clone()).await.unwrap();
    (running, cancel)
}

/// Parses YAML with `{name}` placeholders replaced.
pub fn yaml(text: &str, vars: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

/// A TCP server answering each line with `<name>:<line>`.
pub async fn line_echo(name: &'static str) -> SocketAddr {
    line_echo_on("127.0.0.1:0".parse().unwrap(), name).await
}

pub async fn line_echo_on(addr: SocketAddr, name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write.write_all(format!("{name}:{line}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A client connection to a line echo.
pub struct LineClient {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<LineClient> {
        let stream = TcpStream::connect(addr).await?;
        let (read, write) = stream.into_split();
        Ok(LineClient { lines: BufReader::new(read).lines(), write })
    }

    /// Sends a line and returns the answer (`None` when the connection closed).
    pub async fn ask(&mut self, line: &str) -> Option<String> {
        self.write.write_all(format!("{line}\n").as_bytes()).await.ok()?;
        patiently("an echo", self.lines.next_line()).await.ok().flatten()
    }
}

/// One question on a fresh connection; `None` when the connection is refused or closed.
pub async fn ask_once(addr: SocketAddr, line: &str) -> Option<String> {
    LineClient::connect(addr).await.ok()?.ask(line).await
}

/// An HTTP/1.1 server answering `<name> path=<path>`, plus ` prefix=<X-Forwarded-Prefix>` when
/// the request carries one.
pub async fn http_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let mut text = format!("{name} path={}", req.uri().path());
                    if let Some(prefix) =
                        req.headers().get("x-forwarded-prefix").and_then(|v| v.to_str().ok())
                    {
                        text.push_str(&format!(" prefix={prefix}"));
                    }
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A UDP server answering each datagram with `<name>:<datagram>`.
pub async fn udp_echo(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
            let mut answer = format!("{name}:").into_bytes();
            answer.extend_from_slice(&buffer[..n]);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

/// Sends a datagram to `to` and returns the answer.
pub async fn udp_ask(to: SocketAddr, text: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(text.as_bytes(), to).await.unwrap();
    let mut buffer = vec![0u8; 2048];
    let (n, _) = patiently("a udp answer", socket.recv_from(&mut buffer)).await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// An HTTPS client trusting the development CA in `ca_dir`, dialling `addr` for `localhost`.
pub fn https_client(ca_dir: &Path, addr: SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(ca_dir.join("ca.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

/// GET `url`: status and body.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = patiently("an HTTP answer", client.get(url).send()).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Served node route ids, sorted.
pub fn served(running: &RunningIngress) -> Vec<String> {
    let mut served = running.node_status().served;
    served.sort();
    served
}

/// Failed records by key.
pub fn failed(running: &RunningIngress) -> BTreeMap<String, String> {
    running.node_status().failed.into_iter().collect()
}
