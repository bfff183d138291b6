//! Node ingress records in the embedded store become routes, and go away with them.

use trellis_ingress_controller::{IngressConfig, IngressProtocol, NODE_HTTPS_ENDPOINT};
use trellis_store::{Op, StoreExt as _, Txn};

use crate::support::*;

#[tokio::test]
async fn tcp_http_and_udp_routes_follow_the_store() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_store(dir.path());
    let ca_dir = dir.path().join("ca");
    let config = IngressConfig::from_yaml(&yaml(
        "endpoints:\n  - name: {endpoint}\n    listen: 127.0.0.1:0\n    protocol: https\n    tls:\n      dev_ca: { names: [localhost], write_ca_to: {ca} }\n",
        &[("endpoint", NODE_HTTPS_ENDPOINT.to_owned()), ("ca", ca_dir.display().to_string())],
    ))
    .unwrap();
    let (running, cancel) = start(options(store.clone(), Some(config))).await;
    let https = running.local_addr(NODE_HTTPS_ENDPOINT).unwrap();
    let client = https_client(&ca_dir, https);

    // tcp: the gateway port forwards to the node's port.
    let ssh = line_echo("ssh").await;
    let tcp = node_route(IngressProtocol::Tcp, "a", ssh.port(), free_port());
    let revision = write_route(store.as_ref(), &tcp).await;
    patiently("the tcp route", running.synced(revision)).await.unwrap();
    let gateway = running.node_addr(&tcp).unwrap();
    assert_eq!(gateway.port() as u32, tcp.gateway_port);
    assert_eq!(ask_once(gateway, "hello").await.as_deref(), Some("ssh:hello"));

    // http: the URL's path on the HTTPS endpoint reaches the node's web server, which sees
    // its own path and is told the prefix.
    let web = http_backend("web-a").await;
    let http = node_route(IngressProtocol::Http, "a", web.port(), 443);
    let revision = write_route(store.as_ref(), &http).await;
    patiently("the http route", running.synced(revision)).await.unwrap();
    let base = format!("https://localhost:{}/{}/a/{}/", https.port(), http.mzid, web.port());
    let (status, body) = get(&client, &format!("{base}lab/index.html")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("web-a path=/lab/index.html prefix=/{}/a/{}", http.mzid, web.port()).as_str())
    );
    let (status, _) = get(&client, &format!("https://localhost:{}/{}/a/1/", https.port(), http.mzid)).await;
    assert_eq!(status, 404, "another port of the node has no route");

    // udp: datagrams both ways.
    let dns = udp_echo("dns").await;
    let udp = node_route(IngressProtocol::Udp, "b", dns.port(), free_port());
    let revision = write_route(store.as_ref(), &udp).await;
    patiently("the udp route", running.synced(revision)).await.unwrap();
    let udp_gateway = running.node_addr(&udp).unwrap();
    assert_eq!(udp_ask(udp_gateway, "query").await, "dns:query");
    assert_eq!(served(&running).len(), 3);

    // Deleting the records (as DeleteIngress does) takes the routes away.
    let revision = delete_route(store.as_ref(), &tcp).await;
    patiently("the tcp route to go", running.synced(revision)).await.unwrap();
    assert!(running.node_addr(&tcp).is_none());
    // The listener closes once its accept loop has seen the stop.
    until("the tcp gateway port to close", || std::net::TcpStream::connect(gateway).is_err()).await;
    let revision = delete_route(store.as_ref(), &http).await;
    patiently("the http route to go", running.synced(revision)).await.unwrap();
    let (status, _) = get(&client, &format!("{base}lab/index.html")).await;
    assert_eq!(status, 404);
    let revision = delete_route(store.as_ref(), &udp).await;
    patiently("the udp route to go", running.synced(revision)).await.unwrap();
    until("the udp gateway port to close", || std::net::UdpSocket::bind(udp_gateway).is_ok()).await;
    assert!(served(&running).is_empty());
    assert!(failed(&running).is_empty());

    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
}

#[tokio::test]
async fn existing_records_unservable_ones_and_unreadable_ones() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let store = embedded_store(dir.path());
    let ssh = line_echo("ssh").await;

    // Written before the controller starts: served from the first listing.
    let early = node_route(IngressProtocol::Tcp, "a", ssh.port(), free_port());
    write_route(store.as_ref(), &early).await;
    // Its gateway port is taken by someone else: reported, and served once the port is free.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blocked = node_route(IngressProtocol::Tcp, "b", ssh.port(), squatter.local_addr().unwrap().port());
    write_route(store.as_ref(), &blocked).await;
    // An http route without the HTTPS endpoint in the configuration waits for it.
    let web = node_route(IngressProtocol::Http, "c", 80, 443);
    write_route(store.as_ref(), &web).await;
    // Garbage under the prefix, and a record under a key that is not its own, are ignored.
    store.put("/trellis/ingress/routes/x/y/tcp/1", b"not json".to_vec()).await.unwrap();
    let elsewhere = node_route(IngressProtocol::Tcp, "d", ssh.port(), free_port());
    let wrong_key = format!("{}x", route_key(&elsewhere));
    let revision = store
        .txn(Txn {
            compares: vec![],
            success: vec![trellis_realize::stored::put(&wrong_key, &elsewhere).unwrap()],
        })
        .await
        .unwrap()
        .revision;

    let (running, cancel) = start(options(store.clone(), Some(IngressConfig::default()))).await;
    patiently("the first listing", running.synced(revision)).await.unwrap();
    assert_eq!(ask_once(running.node_addr(&early).unwrap(), "early").await.as_deref(), Some("ssh:early"));
    let failed_now = failed(&running);
    assert_eq!(failed_now.len(), 2, "{failed_now:?}");
    assert!(failed_now[&route_key(&blocked)].contains("could not listen"), "{failed_now:?}");
    assert!(failed_now[&route_key(&web)].contains("no endpoint"), "{failed_now:?}");
    assert_eq!(served(&running).len(), 1);

    drop(squatter);
    until("the blocked route to be retried", || running.node_addr(&blocked).is_some()).await;
    assert_eq!(ask_once(running.node_addr(&blocked).unwrap(), "late").await.as_deref(), Some("ssh:late"));

    // Deleting a record that could not be served clears its failure.
    let revision = store
        .txn(Txn { compares: vec![], success: vec![Op::Delete { key: route_key(&web) }] })
        .await
        .unwrap()
        .revision;
    patiently("the delete", running.synced(revision)).await.unwrap();
    assert!(failed(&running).is_empty(), "{:?}", failed(&running));

    cancel.cancel();
    patiently("the controller to stop", running.stopped()).await;
}
