//! The proxy in front of a real Jupyter notebook server (Debian's notebook 6.4): kernels over
//! the WebSocket channels API, membership, and the browser's sign-in.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use http::StatusCode;
use rand::Rng;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

/// A Jupyter server started for one test, stopped (with its kernels) when dropped.
struct Jupyter {
    child: Child,
    addr: std::net::SocketAddr,
    token: String,
    dir: tempfile::TempDir,
}

impl Jupyter {
    async fn start() -> Jupyter {
        let dir = tempfile::tempdir().unwrap();
        let notebooks = dir.path().join("notebooks");
        std::fs::create_dir(&notebooks).unwrap();
        std::fs::write(notebooks.join("hello.ipynb"), NOTEBOOK).unwrap();
        let token: String =
            rand::rng().sample_iter(rand::distr::Alphanumeric).take(32).map(char::from).collect();
        let addr = closed_port();
        let program = ["/usr/bin/jupyter-notebook", "jupyter-notebook"]
            .into_iter()
            .find(|p| Path::new(p).exists() || which(p))
            .expect("jupyter-notebook is not installed: run scripts/setup.sh (Debian jupyter-notebook)");
        let log = std::fs::File::create(dir.path().join("jupyter.log")).unwrap();
        let child = Command::new(program)
            .args([
                "--ip=127.0.0.1",
                &format!("--port={}", addr.port()),
                "--port-retries=0",
                "--NotebookApp.base_url=/proj/x0/",
                &format!("--NotebookApp.token={token}"),
                "--no-browser",
                "--allow-root",
                &format!("--notebook-dir={}", notebooks.display()),
            ])
            // Everything Jupyter and IPython write stays in the test's directory.
            .env("JUPYTER_CONFIG_DIR", dir.path().join("config"))
            .env("JUPYTER_DATA_DIR", dir.path().join("data"))
            .env("JUPYTER_RUNTIME_DIR", dir.path().join("runtime"))
            .env("IPYTHONDIR", dir.path().join("ipython"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut jupyter = Jupyter { child, addr, token, dir };
        jupyter.wait_ready().await;
        jupyter
    }

    async fn wait_ready(&mut self) {
        let url = format!("http://{}/proj/x0/api/status", self.addr);
        let auth = format!("token {}", self.token);
        // Bounded: Jupyter starts in a few seconds; two minutes covers a loaded CI machine.
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("jupyter-notebook exited ({status}): {}", self.log());
            }
            if try_get(&url, &auth).await == Some(StatusCode::OK) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("jupyter-notebook did not start: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("jupyter.log")).unwrap_or_default()
    }

    fn backend(&self) -> trellis_xdc_proxy::Backend {
        backend_at(self.addr, &self.token)
    }
}

impl Drop for Jupyter {
    fn drop(&mut self) {
        // SIGTERM lets Jupyter shut its kernels down; SIGKILL only if it does not go.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn try_get(url: &str, auth: &str) -> Option<StatusCode> {
    use http_body_util::Empty;
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let request = http::Request::get(url).header("authorization", auth).body(Empty::new()).unwrap();
    client.request(request).await.ok().map(|r| r.status())
}

const NOTEBOOK: &str = r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#;

#[tokio::test]
async fn member_runs_code_in_a_kernel_over_the_websocket() {
    let jupyter = Jupyter::start().await;
    let proxy = start_proxy(jupyter.backend()).await;
    let alice = format!("Bearer {ALICE_TOKEN}");
    let json = ("content-type", "application/json");

    let started = send(
        "POST",
        &proxy.url("/proj/x0/api/kernels"),
        &[("authorization", &alice), json],
        r#"{"name":"python3"}"#,
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let kernel: serde_json::Value = serde_json::from_str(&started.body).unwrap();
    let id = kernel["id"].as_str().unwrap().to_owned();

    let url = format!("ws://{}/proj/x0/api/kernels/{id}/channels?session_id=test-session", proxy.addr);
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert("authorization", alice.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let msg_id = "execute-1-plus-1";
    let execute = serde_json::json!({
        "header": {"msg_id": msg_id, "username": "alice", "session": "test-session",
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": "1+1", "silent": false, "store_history": true, "user_expressions": {},
                    "allow_stdin": false, "stop_on_error": true},
    });
    socket.send(Message::text(execute.to_string())).await.unwrap();
    // A hang guard, not a timing assertion: the kernel answers in well under a second.
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(message) = socket.next().await {
            let Message::Text(text) = message.unwrap() else { continue };
            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
            if message["msg_type"] == "execute_result" && message["parent_header"]["msg_id"] == msg_id {
                return message["content"]["data"]["text/plain"].as_str().unwrap().to_owned();
            }
        }
        panic!("the kernel channel closed without an execute_result");
    })
    .await
    .expect("no execute_result from the kernel");
    assert_eq!(result, "2");
    socket.close(None).await.unwrap();

    // Not a member: no kernels, no channels; and nobody gets anything without signing in.
    let bob = format!("Bearer {BOB_TOKEN}");
    let refused =
        send("POST", &proxy.url("/proj/x0/api/kernels"), &[("authorization", &bob), json], "{}").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("bob is not a member of project proj"), "{}", refused.body);
    let mut as_bob = url.as_str().into_client_request().unwrap();
    as_bob.headers_mut().insert("authorization", bob.parse().unwrap());
    match tokio_tungstenite::connect_async(as_bob).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), StatusCode::FORBIDDEN),
        other => panic!("bob's WebSocket was not refused: {:?}", other.map(|(_, r)| r.status())),
    }
    let anonymous =
        send("GET", &proxy.url("/proj/x0/api/kernels"), &[("accept", "application/json")], "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let kernels = send("GET", &proxy.url("/proj/x0/api/kernels"), &[("authorization", &alice)], "").await;
    assert!(kernels.body.contains(&id), "{}", kernels.body);
    let deleted =
        send("DELETE", &proxy.url(&format!("/proj/x0/api/kernels/{id}")), &[("authorization", &alice)], "")
            .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    proxy.stop().await;
}

#[tokio::test]
async fn browser_signs_in_and_lists_notebooks() {
    let jupyter = Jupyter::start().await;
    let proxy = start_proxy(jupyter.backend()).await;
    let html = ("accept", "text/html,application/xhtml+xml");

    let first = send("GET", &proxy.url("/proj/x0/tree"), &[html], "").await;
    assert_eq!(first.status, StatusCode::FOUND);
    assert_eq!(first.header("location"), "/_trellis/login?next=%2Fproj%2Fx0%2Ftree");
    let form = send("GET", &proxy.url(first.header("location")), &[html], "").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains(r#"<input type="hidden" name="next" value="/proj/x0/tree">"#),
        "{}",
        form.body
    );

    let urlencoded = ("content-type", "application/x-www-form-urlencoded");
    let wrong = send(
        "POST",
        &proxy.url("/_trellis/login"),
        &[html, urlencoded],
        "username=alice&password=guess&next=%2Fproj%2Fx0%2Ftree",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("wrong username or password") && wrong.body.contains("<form"),
        "{}",
        wrong.body
    );
    assert!(wrong.headers.get("set-cookie").is_none());

    let body = "username=alice&password=correct+horse&next=%2Fproj%2Fx0%2Ftree";
    let signed_in = send("POST", &proxy.url("/_trellis/login"), &[html, urlencoded], body).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.header("location"), "/proj/x0/tree");
    let set_cookie = signed_in.header("set-cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let tree = send("GET", &proxy.url("/proj/x0/tree"), &[html, ("cookie", &cookie)], "").await;
    assert_eq!(tree.status, StatusCode::OK, "{}", tree.body);
    assert!(tree.body.contains("/proj/x0/"), "Jupyter's page links under its base URL");
    assert!(!tree.body.contains(&jupyter.token), "the page gives Jupyter's token away");
    assert!(
        tree.headers.get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with("username-")),
        "Jupyter's login cookie reached the browser"
    );
    let listing = send("GET", &proxy.url("/proj/x0/api/contents"), &[("cookie", &cookie)], "").await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
    let listing: serde_json::Value = serde_json::from_str(&listing.body).unwrap();
    let names: Vec<&str> =
        listing["content"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hello.ipynb"]);

    // The notebook UI's own POSTs carry the cookie and a same-origin `Origin`; Jupyter's XSRF
    // check is satisfied by the token the proxy adds.
    let origin = format!("http://{}", proxy.addr);
    let headers =
        [("cookie", cookie.as_str()), ("origin", origin.as_str()), ("content-type", "application/json")];
    let started = send("POST", &proxy.url("/proj/x0/api/kernels"), &headers, r#"{"name":"python3"}"#).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id =
        serde_json::from_str::<serde_json::Value>(&started.body).unwrap()["id"].as_str().unwrap().to_owned();
    let deleted = send("DELETE", &proxy.url(&format!("/proj/x0/api/kernels/{id}")), &headers, "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);

    let out = send("GET", &proxy.url("/_trellis/logout"), &[("cookie", &cookie)], "").await;
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    proxy.stop().await;
}
