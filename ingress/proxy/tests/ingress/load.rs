use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use http_body_util::BodyExt as _;
use tokio_util::sync::CancellationToken;
use trellis_ingress::{IngressConfig, RouteConfig};

use crate::support::{Backend, BoxBody, Connect, client, empty, ingress};

/// Counts of a load run.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs `workers` clients sending GETs back to back over kept-alive connections until `stop`.
fn load(
    client: hyper_util::client::legacy::Client<impl Connect, BoxBody>,
    workers: usize,
    stop: CancellationToken,
) -> (Arc<Tally>, tokio::task::JoinSet<()>) {
    let tally = Arc::new(Tally::default());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (client, tally, stop) = (client.clone(), tally.clone(), stop.clone());
        set.spawn(async move {
            while !stop.is_cancelled() {
                let request =
                    http::Request::get("http://svc.test/").header("host", "svc.test").body(empty()).unwrap();
                let ok = match client.request(request).await {
                    Ok(response) if response.status() == 200 => response.into_body().collect().await.is_ok(),
                    Ok(response) => {
                        eprintln!("status {}", response.status());
                        false
                    }
                    Err(err) => {
                        eprintln!("request error: {err:?}");
                        false
                    }
                };
                if ok { &tally.ok } else { &tally.failed }.fetch_add(1, Relaxed);
            }
        });
    }
    (tally, set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_load_fails_no_request() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (ingress, cancel) = ingress(
        r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  svc:
    backends: ["{a}", "{b}"]
    ejection: { consecutive_failures: 2, cooldown: 60s }
routes:
  - { id: svc, host: "*", pool: svc }
"#,
        &[("a", a.addr.to_string()), ("b", b.addr.to_string())],
    )
    .await;
    let stop = CancellationToken::new();
    let (tally, mut workers) = load(client(ingress.local_addr("web").unwrap(), false), 8, stop.clone());
    while tally.ok.load(Relaxed) < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.kill().await;
    let served_by_b = b.requests.load(Relaxed);
    let ok_at_kill = tally.ok.load(Relaxed);
    while tally.ok.load(Relaxed) < ok_at_kill + 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    while workers.join_next().await.is_some() {}

    assert!(served_by_b > 0, "b never served before it was killed");
    assert_eq!(tally.failed.load(Relaxed), 0, "requests failed although a healthy backend remained");
    let metrics = ingress.metrics_text();
    let ejected = format!("ingress_backend_ejections_total{{pool=\"svc\",backend=\"{}\"}} ", b.addr);
    let ejections: u64 = metrics.lines().find_map(|l| l.strip_prefix(&ejected)).unwrap().parse().unwrap();
    // Concurrent failures may cross the threshold more than once before the first ejection
    // is visible to every request.
    assert!(ejections >= 1, "b was not ejected:\n{metrics}");
    let down = format!("ingress_backend_up{{pool=\"svc\",backend=\"{}\"}} 0", b.addr);
    assert!(metrics.contains(&down), "{metrics}");
    cancel.cancel();
}

/// Runs `workers` clients, each on one HTTP/1.1 connection of its own that it never replaces,
/// sending GETs back to back until `stop`. A connection the ingress closes or resets therefore
/// shows up as failed requests (hyper's pooled client would silently open a new one).
fn load_on_dedicated_connections(
    addr: std::net::SocketAddr,
    workers: usize,
    stop: CancellationToken,
) -> (Arc<Tally>, tokio::task::JoinSet<()>) {
    let tally = Arc::new(Tally::default());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (tally, stop) = (tally.clone(), stop.clone());
        set.spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, BoxBody>(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            let connection = tokio::spawn(connection);
            while !stop.is_cancelled() {
                let ok = match sender.ready().await {
                    Err(err) => {
                        eprintln!("connection lost: {err:?}");
                        false
                    }
                    Ok(()) => {
                        let request =
                            http::Request::get("/").header("host", "svc.test").body(empty()).unwrap();
                        match sender.send_request(request).await {
                            Ok(response) if response.status() == 200 => {
                                response.into_body().collect().await.is_ok()
                            }
                            Ok(response) => {
                                eprintln!("status {}", response.status());
                                false
                            }
                            Err(err) => {
                                eprintln!("request error: {err:?}");
                                false
                            }
                        }
                    }
                };
                if ok { &tally.ok } else { &tally.failed }.fetch_add(1, Relaxed);
                if !ok {
                    break;
                }
            }
            drop(sender);
            let _ = connection.await;
        });
    }
    (tally, set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_reloads_under_load_reset_no_connection() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let yaml = r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  one: { backends: ["{a}"] }
  two: { backends: ["{b}"] }
routes:
  - { id: svc, host: "*", pool: one }
"#;
    let vars = [("a", a.addr.to_string()), ("b", b.addr.to_string())];
    let (ingress, cancel) = ingress(yaml, &vars).await;
    let addr = ingress.local_addr("web").unwrap();
    let workers_count = 8;
    let stop = CancellationToken::new();
    let (tally, mut workers) = load_on_dedicated_connections(addr, workers_count, stop.clone());

    let mut full = yaml.replace("{a}", &vars[0].1).replace("{b}", &vars[1].1);
    full = full.replace("\"127.0.0.1:0\"", &format!("\"{addr}\""));
    let config = IngressConfig::from_yaml(&full).unwrap();
    let mut served_before_round = Vec::new();
    for round in 0..200 {
        let pool = if round % 2 == 0 { "two" } else { "one" };
        if round % 10 == 9 {
            // A whole-configuration reload (same listener address: the socket is kept).
            let mut next = config.clone();
            next.routes[0].pool = pool.into();
            ingress.apply(next).unwrap();
        } else {
            let route = RouteConfig {
                id: "svc".into(),
                host: "*".into(),
                path_prefix: "/".into(),
                pool: pool.into(),
                endpoints: vec![],
                strip_prefix: false,
            };
            ingress.upsert_route(route).unwrap();
        }
        served_before_round.push(tally.ok.load(Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let the last configuration serve a little too, so a reset caused by the final reload
    // would still be seen.
    let ok_at_last_reload = tally.ok.load(Relaxed);
    while tally.ok.load(Relaxed) < ok_at_last_reload + 100 && tally.failed.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    while workers.join_next().await.is_some() {}

    assert_eq!(tally.failed.load(Relaxed), 0, "a client connection was closed or reset by a reload");
    assert!(a.requests.load(Relaxed) > 0 && b.requests.load(Relaxed) > 0, "both pools served");
    let reloads_with_traffic = served_before_round.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(reloads_with_traffic > 100, "only {reloads_with_traffic} of 200 reloads happened under load");
    let metrics = ingress.metrics_text();
    let opened: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ingress_connections_total{endpoint=\"web\",protocol=\"http\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(opened, workers_count as u64, "the ingress saw other connections than the clients' own");
    cancel.cancel();
}
