//! `trellisd serve launch`: the web portal on its own address, calling a separate API process
//! over gRPC, with the same sessions, forms and refusals as in `up`.

mod common;

use common::Daemon;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const ADMIN_PASSWORD: &str = "launch-admin-password";

fn client() -> reqwest::Client {
    // Redirects are checked by hand: they carry the session cookie.
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `name=value` of the cookie a response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The CSRF field's value in a page's first form.
fn csrf_field(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_portal_runs_on_its_own_against_a_remote_api() {
    let dir = tempfile::tempdir().unwrap();
    let api = Daemon::start(&["serve", "api"], &dir.path().join("api"), ADMIN_PASSWORD).await;
    let api_url = format!("http://{}", api.addr);
    let launch = Daemon::start(
        &["serve", "launch", "--api-url", &api_url],
        &dir.path().join("launch"),
        ADMIN_PASSWORD,
    )
    .await;
    let base = format!("http://{}", launch.addr);
    let http = client();

    // The registration page lists the API's own choices.
    let register = http.get(format!("{base}/register")).send().await.unwrap();
    assert_eq!(register.status(), StatusCode::OK);
    assert!(register.text().await.unwrap().contains("id=\"register-form\""));

    // A wrong password gets the API's refusal; the right one a session cookie.
    let login_page = http.get(format!("{base}/login")).send().await.unwrap();
    let pre_session = set_cookie(&login_page, "trellis_presession").expect("a pre-session cookie");
    let csrf = csrf_field(&login_page.text().await.unwrap());
    let attempt = |password: &'static str| {
        http.post(format!("{base}/login"))
            .header(COOKIE, &pre_session)
            .form(&[("csrf", csrf.as_str()), ("username", "admin"), ("password", password), ("next", "")])
            .send()
    };
    let refused = attempt("not-the-password").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("role=\"alert\""), "the API's reason is shown");
    let accepted = attempt(ADMIN_PASSWORD).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(accepted.headers()[LOCATION], "/");
    let session = set_cookie(&accepted, "trellis_session").expect("a session cookie");

    let dashboard = http.get(format!("{base}/")).header(COOKIE, &session).send().await.unwrap();
    assert_eq!(dashboard.status(), StatusCode::OK);
    let html = dashboard.text().await.unwrap();
    assert!(
        html.contains("id=\"whoami\" class=\"who\">admin</span>"),
        "signed in as admin through the remote API:\n{html}"
    );
    assert!(html.contains("href=\"/admin\""), "the API says admin is an administrator");

    // Without the API, pages say so instead of failing silently.
    drop(api);
    let unavailable = http.get(format!("{base}/")).header(COOKIE, &session).send().await.unwrap();
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(unavailable.text().await.unwrap().contains("cannot reach the portal API"));
}
