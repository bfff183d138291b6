use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use trellis_ingress::proxy_protocol;
use trellis_ingress::{EndpointConfig, EndpointProtocol};

use crate::support::ingress;

/// A TCP backend that reads a PROXY v2 header when `expect_header`, then answers one line with
/// the client address it learned and echoes the rest.
async fn backend(name: &'static str, expect_header: bool) -> SocketAddr {
    backend_on("127.0.0.1:0".parse().unwrap(), name, expect_header).await
}

async fn backend_on(addr: SocketAddr, name: &'static str, expect_header: bool) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let mut client = peer.to_string();
                if expect_header {
                    let mut head = vec![0u8; 16];
                    stream.read_exact(&mut head).await.unwrap();
                    let length = 16 + usize::from(u16::from_be_bytes([head[14], head[15]]));
                    head.resize(length, 0);
                    stream.read_exact(&mut head[16..]).await.unwrap();
                    let (header, consumed) = proxy_protocol::decode(&head).unwrap();
                    assert_eq!(consumed, length);
                    client = header.unwrap().source.to_string();
                }
                stream.write_all(format!("{name} sees {client}\n").as_bytes()).await.unwrap();
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    addr
}

async fn session(addr: SocketAddr) -> (String, SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = vec![0u8; 256];
    let mut text = String::new();
    while !text.ends_with("ping") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed early after {text:?}");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    (text, local)
}

#[tokio::test]
async fn forwards_tcp_with_proxy_protocol_and_skips_a_dead_backend() {
    let live = backend("jump", true).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - { name: ssh, listen: "127.0.0.1:0", protocol: tcp, pool: jump, proxy_protocol: true }
pools:
  jump:
    backends: ["{dead}", "{live}"]
    health_check: { type: tcp, interval: 100ms, timeout: 500ms, rise: 1, fall: 1 }
"#,
        &[("dead", dead.to_string()), ("live", live.to_string())],
    )
    .await;
    let addr = ingress.local_addr("ssh").unwrap();
    // Before the health check has spoken, a failed connect moves on to the next backend.
    for _ in 0..6 {
        let (text, local) = session(addr).await;
        assert_eq!(text, format!("jump sees {local}\nping"));
    }
    let metrics = ingress.metrics_text();
    assert!(metrics.contains("ingress_tcp_bytes_total{endpoint=\"ssh\",direction=\"in\"}"), "{metrics}");
    cancel.cancel();
    ingress.stopped().await;
}

#[tokio::test]
async fn node_ingress_endpoints_come_and_go_at_runtime() {
    let target = backend("node", false).await;
    let (ingress, cancel) = ingress("endpoints: []\n", &[]).await;
    let pool = trellis_ingress::PoolConfig {
        backends: vec![target],
        balance: Default::default(),
        http2: false,
        health_check: None,
        ejection: Default::default(),
        tls: None,
    };
    ingress.upsert_pool("mz1/node0/tcp/22", pool).unwrap();
    let endpoint = EndpointConfig {
        name: "mz1/node0/tcp/22".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        protocol: EndpointProtocol::Tcp,
        tls: None,
        pool: Some("mz1/node0/tcp/22".into()),
        proxy_protocol: false,
        max_connections: 100,
        forward: Default::default(),
    };
    let addr = ingress.add_endpoint(endpoint.clone()).unwrap();
    let (text, _) = session(addr).await;
    assert!(text.starts_with("node sees 127.0.0.1:"), "{text}");
    assert!(ingress.add_endpoint(endpoint).is_err(), "a second endpoint with the same name");
    assert!(ingress.remove_pool("mz1/node0/tcp/22").is_err(), "the endpoint still uses the pool");

    assert!(ingress.remove_endpoint("mz1/node0/tcp/22"));
    assert!(ingress.remove_pool("mz1/node0/tcp/22").unwrap());
    // The listener closes shortly after removal.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the removed endpoint still accepts connections");
    cancel.cancel();
}

/// A `forward: kernel` endpoint binds nothing; what the ingress asks of the NAT follows the
/// health of its pool's backends, and a reload can hand the endpoint back to the proxy.
#[tokio::test]
async fn kernel_forwarding_asks_the_nat_for_the_healthy_backends() {
    let one = backend("one", false).await;
    let two_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let two = two_listener.local_addr().unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let yaml = |forward: &str| {
        format!(
            r#"
endpoints:
  - {{ name: ssh, listen: "{listen}", protocol: tcp, pool: jump, forward: {forward} }}
pools:
  jump:
    backends: ["{one}", "{two}"]
    health_check: {{ type: tcp, interval: 50ms, timeout: 500ms, rise: 1, fall: 1 }}
nat:
  mappings: [{{ public: "198.18.0.1:22", anchor: "{listen}" }}]
"#
        )
    };
    let (ingress, cancel) = ingress(&yaml("kernel"), &[]).await;
    assert_eq!(ingress.local_addr("ssh"), Some(listen));
    // Nothing listens there: the address is free for anyone else.
    drop(std::net::TcpListener::bind(listen).expect("a kernel endpoint binds nothing"));

    let backends = |ingress: &trellis_ingress::Ingress| {
        let nat = ingress.nat().expect("the configuration has a nat section");
        assert_eq!(nat.mappings.len(), 1);
        assert_eq!(nat.forwards.len(), 1);
        assert_eq!(nat.forwards[0].listen, listen);
        nat.forwards[0].backends.clone()
    };
    let mut changes = ingress.nat_changes();
    let wait_for = async |changes: &mut tokio::sync::watch::Receiver<u64>, wanted: Vec<SocketAddr>| {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while backends(&ingress) != wanted {
            tokio::time::timeout_at(deadline, changes.changed())
                .await
                .unwrap_or_else(|_| panic!("the NAT never asked for {wanted:?}: {:?}", backends(&ingress)))
                .unwrap();
        }
    };
    // Both count as healthy until checked; the closed one then drops out.
    drop(two_listener);
    wait_for(&mut changes, vec![one]).await;
    // Back when it listens again.
    backend_on(two, "two", false).await;
    wait_for(&mut changes, vec![one, two]).await;

    let one_by_one = EndpointConfig {
        name: "later".into(),
        listen: "127.0.0.1:2299".parse().unwrap(),
        protocol: EndpointProtocol::Tcp,
        tls: None,
        pool: Some("jump".into()),
        proxy_protocol: false,
        max_connections: 10,
        forward: trellis_ingress::Forward::Kernel,
    };
    let refused = ingress.add_endpoint(one_by_one).unwrap_err().to_string();
    assert!(refused.contains("come with a configuration"), "{refused}");
    assert!(ingress.remove_pool("jump").is_err(), "the kernel endpoint still uses the pool");

    // Handed back to the proxy: it binds and forwards; the NAT has no forward left.
    let config = trellis_ingress::IngressConfig::from_yaml(&yaml("proxy")).unwrap();
    ingress.apply(config).unwrap();
    assert!(ingress.nat().unwrap().forwards.is_empty());
    for _ in 0..2 {
        let (text, _) = session(listen).await;
        assert!(text.starts_with("one sees 127.0.0.1:") || text.starts_with("two sees 127.0.0.1:"), "{text}");
    }
    cancel.cancel();
    ingress.stopped().await;
}
