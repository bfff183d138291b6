use crate::support::{Backend, client, get, ingress};

const CONFIG: &str = r#"
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  a: { backends: ["{a}"] }
  b: { backends: ["{b}"] }
  c: { backends: ["{c}"], balance: least_conn }
routes:
  - { id: a, host: a.test, pool: a }
  - { id: b-api, host: a.test, path_prefix: /api, pool: b }
  - { id: wild, host: "*.b.test", pool: b }
  - { id: rest, host: "*", pool: c }
  - { id: strip, host: "*", path_prefix: /m1/a/8080/, pool: c, strip_prefix: true }
"#;

#[tokio::test]
async fn routes_by_host_and_path_over_http1_and_http2() {
    let (a, b, c) = (Backend::start("a").await, Backend::start("b").await, Backend::start("c").await);
    let vars = [("a", a.addr.to_string()), ("b", b.addr.to_string()), ("c", c.addr.to_string())];
    let (ingress, cancel) = ingress(CONFIG, &vars).await;
    let addr = ingress.local_addr("web").unwrap();

    for http2 in [false, true] {
        let client = client(addr, http2);
        let cases = [
            ("http://a.test/index.html", "backend=a"),
            ("http://a.test/api/v1", "backend=b"),
            // Routes match the path alone, not the query after it.
            ("http://a.test/api?page=2", "backend=b"),
            ("http://a.test/apix", "backend=a"),
            ("http://x.b.test/", "backend=b"),
            ("http://elsewhere.test/", "backend=c"),
        ];
        for (url, expected) in cases {
            // HTTP/1.1 carries the host in `Host`, HTTP/2 in the :authority the URI gives.
            let host = (!http2).then(|| url.trim_start_matches("http://").split('/').next().unwrap());
            let (status, body) = get(&client, url, host).await;
            assert_eq!(status, 200, "{url} (h2: {http2}): {body}");
            assert!(body.starts_with(expected), "{url} (h2: {http2}): {body}");
            // Backends see HTTP/1.1 (the pools do not ask for HTTP/2) with the client's host.
            assert!(body.contains("version=HTTP/1.1"), "{body}");
            let expected_host = url.trim_start_matches("http://").split('/').next().unwrap();
            assert!(body.contains(&format!("host={expected_host} ")), "{body}");
            assert!(body.contains("xff=127.0.0.1 "), "{body}");
            assert!(body.contains("xfp=http "), "{body}");
            assert!(
                body.contains(&format!("forwarded=for=127.0.0.1;proto=http;host=\"{expected_host}\"")),
                "{body}"
            );
        }
    }
    cancel.cancel();
    ingress.stopped().await;
}

#[tokio::test]
async fn hop_by_hop_headers_and_spoofed_forwarding_do_not_pass() {
    let (a, b, c) = (Backend::start("a").await, Backend::start("b").await, Backend::start("c").await);
    let vars = [("a", a.addr.to_string()), ("b", b.addr.to_string()), ("c", c.addr.to_string())];
    let (ingress, cancel) = ingress(CONFIG, &vars).await;
    let client = client(ingress.local_addr("web").unwrap(), false);
    let request = http::Request::get("http://a.test/")
        .header("host", "a.test")
        .header("connection", "x-secret")
        .header("x-secret", "do not forward")
        .header("x-forwarded-for", "6.6.6.6")
        .body(crate::support::empty())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("connection=-"), "the header named in Connection reached the backend: {body}");
    assert!(body.contains("xff=127.0.0.1 "), "{body}");
    cancel.cancel();
}

#[tokio::test]
async fn unknown_routes_get_404_and_metrics_count_them() {
    let a = Backend::start("a").await;
    let (ingress, cancel) = ingress(
        r#"
admin: { listen: "127.0.0.1:0" }
endpoints:
  - { name: web, listen: "127.0.0.1:0", protocol: http }
pools:
  a: { backends: ["{a}"] }
routes:
  - { id: a, host: a.test, pool: a }
"#,
        &[("a", a.addr.to_string())],
    )
    .await;
    let client = client(ingress.local_addr("web").unwrap(), false);
    assert_eq!(get(&client, "http://a.test/", Some("a.test")).await.0, 200);
    assert_eq!(get(&client, "http://nope.test/", Some("nope.test")).await.0, 404);

    let admin = crate::support::client(ingress.admin_addr().unwrap(), false);
    let (status, metrics) = get(&admin, "http://admin/metrics", None).await;
    assert_eq!(status, 200);
    for line in [
        "ingress_http_responses_total{endpoint=\"web\",code=\"2xx\"} 1",
        "ingress_http_responses_total{endpoint=\"web\",code=\"4xx\"} 1",
        "ingress_errors_total{endpoint=\"web\",reason=\"no_route\"} 1",
        "ingress_http_response_seconds_count{endpoint=\"web\"} 2",
        &format!("ingress_backend_requests_total{{pool=\"a\",backend=\"{}\"}} 1", a.addr),
        &format!("ingress_backend_up{{pool=\"a\",backend=\"{}\"}} 1", a.addr),
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    cancel.cancel();
    ingress.stopped().await;
}

#[tokio::test]
async fn a_stripping_route_forwards_the_rest_of_the_path_over_http1_and_http2() {
    let (a, b, c) = (Backend::start("a").await, Backend::start("b").await, Backend::start("c").await);
    let vars = [("a", a.addr.to_string()), ("b", b.addr.to_string()), ("c", c.addr.to_string())];
    let (ingress, cancel) = ingress(CONFIG, &vars).await;
    let addr = ingress.local_addr("web").unwrap();
    for http2 in [false, true] {
        let client = client(addr, http2);
        let host = (!http2).then_some("n.test");
        let (status, body) = get(&client, "http://n.test/m1/a/8080/lab/tree?token=t", host).await;
        assert_eq!(status, 200, "h2: {http2}: {body}");
        assert!(body.starts_with("backend=c"), "{body}");
        assert!(body.contains(" path=/lab/tree?token=t "), "h2: {http2}: {body}");
        assert!(body.ends_with(" prefix=/m1/a/8080"), "h2: {http2}: {body}");
        let (_, body) = get(&client, "http://n.test/m1/a/8080/", host).await;
        assert!(body.contains(" path=/ "), "h2: {http2}: {body}");
        // Other routes pass paths unchanged and name no prefix.
        let (_, body) = get(&client, "http://n.test/m1/a/8081/x?y", host).await;
        assert!(body.contains(" path=/m1/a/8081/x?y "), "h2: {http2}: {body}");
        assert!(body.ends_with(" prefix=-"), "h2: {http2}: {body}");
    }
    cancel.cancel();
    ingress.stopped().await;
}
