//! The proxy against a recording fake upstream: what reaches Jupyter, redirects, the login
//! form's checks, cross-origin refusal and an unreachable backend.

mod common;

use common::*;
use http::StatusCode;

const JUPYTER_TOKEN: &str = "jupyter-only-token-4f2a";

#[tokio::test]
async fn upstream_never_sees_the_portal_credentials() {
    let upstream = fake_upstream().await;
    let proxy = start_proxy(backend_at(upstream.addr, JUPYTER_TOKEN)).await;
    let cookie = format!("_xsrf=1; {COOKIE}={ALICE_TOKEN}; theme=dark");
    let spoofed = [("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "6.6.6.6"), ("forwarded", "for=6.6.6.6")];

    let bearer = format!("Bearer {ALICE_TOKEN}");
    let mut headers = vec![("authorization", bearer.as_str()), ("cookie", cookie.as_str())];
    headers.extend(spoofed);
    let by_bearer = send("GET", &proxy.url("/proj/x0/api/status?x=1"), &headers, "").await;
    assert_eq!(by_bearer.status, StatusCode::OK, "{}", by_bearer.body);
    assert_eq!(by_bearer.body, "upstream ok");
    // Jupyter may set its `_xsrf` cookie; not its login cookie, and never the portal's.
    let set_cookies: Vec<_> =
        by_bearer.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(set_cookies, ["_xsrf=2|abc; Path=/proj/x0/"]);

    let mut headers = vec![("cookie", cookie.as_str())];
    headers.extend(spoofed);
    let by_cookie = send("POST", &proxy.url("/proj/x0/api/contents"), &headers, "{}").await;
    assert_eq!(by_cookie.status, StatusCode::OK, "{}", by_cookie.body);

    let seen = upstream.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "/proj/x0/api/status?x=1", "the path is forwarded unchanged");
    for (_, headers) in &seen {
        for (name, value) in headers {
            let value = value.to_str().unwrap();
            assert!(!value.contains(ALICE_TOKEN), "the portal token reached Jupyter in {name}: {value}");
        }
        assert_eq!(headers["authorization"], format!("token {JUPYTER_TOKEN}"));
        assert_eq!(headers["cookie"], "_xsrf=1; theme=dark");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], proxy.addr.to_string());
        assert_eq!(headers["host"], upstream.addr.to_string());
        assert!(!headers.contains_key("x-real-ip") && !headers.contains_key("forwarded"));
    }
    proxy.stop().await;
}

#[tokio::test]
async fn a_client_connection_reuses_its_upstream_connection() {
    let upstream = fake_upstream().await;
    let proxy = start_proxy(backend_at(upstream.addr, JUPYTER_TOKEN)).await;
    let bearer = format!("Bearer {ALICE_TOKEN}");
    let kept_alive = client();
    for _ in 0..5 {
        let answer =
            send_on(&kept_alive, "GET", &proxy.url("/proj/x0/api/status"), &[("authorization", &bearer)], "")
                .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(upstream.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A second client connection gets an upstream connection of its own.
    send("GET", &proxy.url("/proj/x0/api/status"), &[("authorization", &bearer)], "").await;
    assert_eq!(upstream.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(upstream.seen.lock().unwrap().len(), 6);
    proxy.stop().await;
}

#[tokio::test]
async fn seed_and_host_forms_redirect_to_the_canonical_path() {
    let upstream = fake_upstream().await;
    let proxy = start_proxy(backend_at(upstream.addr, JUPYTER_TOKEN)).await;
    let bearer = format!("Bearer {ALICE_TOKEN}");
    let alice = [("authorization", bearer.as_str())];

    let seed = send("GET", &proxy.url("/proj/exp1/x0/tree/a.ipynb?kernel=1"), &alice, "").await;
    assert_eq!(seed.status, StatusCode::FOUND, "{}", seed.body);
    assert_eq!(seed.header("location"), "/proj/x0/tree/a.ipynb?kernel=1");
    let bare = send("GET", &proxy.url("/proj/exp1/x0"), &alice, "").await;
    assert_eq!((bare.status, bare.header("location")), (StatusCode::FOUND, "/proj/x0/"));
    let neither = send("GET", &proxy.url("/proj/exp1/x9/"), &alice, "").await;
    assert_eq!(neither.status, StatusCode::NOT_FOUND);
    assert!(neither.body.contains("no XDC exp1"), "{}", neither.body);
    let bob = format!("Bearer {BOB_TOKEN}");
    let as_bob = send("GET", &proxy.url("/proj/exp1/x0/"), &[("authorization", bob.as_str())], "").await;
    assert_eq!(as_bob.status, StatusCode::FORBIDDEN, "a non-member learns nothing more from the seed form");

    let host = [("host", "x0-proj.xdc.example.net")];
    let jupyter = send("GET", &proxy.url("/jupyter/tree?a=b"), &host, "").await;
    assert_eq!((jupyter.status, jupyter.header("location")), (StatusCode::FOUND, "/proj/x0/tree?a=b"));
    let root = send("GET", &proxy.url("/jupyter"), &host, "").await;
    assert_eq!((root.status, root.header("location")), (StatusCode::FOUND, "/proj/x0/"));
    let on_host = send("GET", &proxy.url("/proj/x0/api"), &[host[0], alice[0]], "").await;
    assert_eq!((on_host.status, on_host.body.as_str()), (StatusCode::OK, "upstream ok"));
    let other = send("GET", &proxy.url("/proj/x1/api"), &[host[0], alice[0]], "").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "a host-form host serves only its own XDC");
    assert_eq!(upstream.seen.lock().unwrap().len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn login_form_refuses_open_redirects_and_sets_a_scoped_cookie() {
    let upstream = fake_upstream().await;
    let proxy = start_proxy(backend_at(upstream.addr, JUPYTER_TOKEN)).await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for evil in
        ["%2F%2Fevil.example%2F", "https%3A%2F%2Fevil.example%2F", "%2F%5Cevil.example", "evil.example"]
    {
        let body = format!("username=alice&password=correct+horse&next={evil}");
        let answer = send("POST", &proxy.url("/_trellis/login"), &form, &body).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{evil}");
        assert_eq!(answer.header("location"), "/", "next={evil} must not leave the host");
        let page = send("GET", &proxy.url(&format!("/_trellis/login?next={evil}")), &[], "").await;
        assert!(page.body.contains(r#"name="next" value="/""#), "{}", page.body);
    }

    let body = "username=alice&password=correct+horse&next=%2Fproj%2Fx0%2Ftree";
    let on_domain =
        send("POST", &proxy.url("/_trellis/login"), &[form[0], ("host", "x0-proj.xdc.example.net")], body)
            .await;
    assert_eq!(on_domain.header("location"), "/proj/x0/tree");
    assert_eq!(
        on_domain.header("set-cookie"),
        format!("{COOKIE}={ALICE_TOKEN}; Path=/; HttpOnly; SameSite=Lax; Domain=xdc.example.net")
    );

    let cross =
        send("POST", &proxy.url("/_trellis/login"), &[form[0], ("origin", "https://evil.example")], body)
            .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "login CSRF");
    assert!(cross.headers.get("set-cookie").is_none());
    proxy.stop().await;
}

#[tokio::test]
async fn cookie_requests_from_other_origins_are_refused() {
    let upstream = fake_upstream().await;
    let proxy = start_proxy(backend_at(upstream.addr, JUPYTER_TOKEN)).await;
    let cookie = format!("{COOKIE}={ALICE_TOKEN}");
    let host = proxy.addr.to_string();
    let same = format!("http://{host}");
    let url = proxy.url("/proj/x0/api/kernels");
    let evil =
        send("POST", &url, &[("cookie", &cookie), ("origin", "https://x1-evil.xdc.example.net")], "{}").await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    let ok = send("POST", &url, &[("cookie", &cookie), ("origin", &same)], "{}").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // A bearer token is not sent by browsers on their own, so no origin check applies.
    let bearer = format!("Bearer {ALICE_TOKEN}");
    let api =
        send("POST", &url, &[("authorization", &bearer), ("origin", "https://tool.example")], "{}").await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(upstream.seen.lock().unwrap().len(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn denials_and_an_unreachable_jupyter() {
    let proxy = start_proxy(backend_at(closed_port(), JUPYTER_TOKEN)).await;
    let bearer = format!("Bearer {ALICE_TOKEN}");
    let down = send("GET", &proxy.url("/proj/x0/api/status"), &[("authorization", &bearer)], "").await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY, "{}", down.body);

    let unknown = send("GET", &proxy.url("/proj/x7/api/status"), &[("authorization", &bearer)], "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let forged = send("GET", &proxy.url("/proj/x0/"), &[("authorization", "Bearer forged")], "").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(forged.header("www-authenticate").contains("invalid_token"));
    let jupyter_scheme =
        send("GET", &proxy.url("/proj/x0/"), &[("authorization", &format!("token {JUPYTER_TOKEN}"))], "")
            .await;
    assert_eq!(jupyter_scheme.status, StatusCode::UNAUTHORIZED, "Jupyter's own scheme is not a portal login");
    let expired = send(
        "GET",
        &proxy.url("/proj/x0/tree"),
        &[("cookie", &format!("{COOKIE}=expired")), ("accept", "text/html")],
        "",
    )
    .await;
    assert_eq!(expired.status, StatusCode::FOUND);
    assert!(expired.header("set-cookie").contains("Max-Age=0"), "a dead session cookie is cleared");
    assert_eq!(send("GET", &proxy.url("/nothing"), &[], "").await.status, StatusCode::NOT_FOUND);
    proxy.stop().await;
}
