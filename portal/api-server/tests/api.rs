//! End-to-end behaviour of the API through real gRPC clients.

mod common;

use common::TestPortal;
use tonic::Code;
use trellis_api::portal::v1 as pb;

#[tokio::test]
async fn register_activate_login_and_create() {
    let portal = TestPortal::start().await;
    portal.user("alice", false).await;
    // A pending account can log in and look at itself, nothing more.
    let (mut ws, _) = portal.as_user("alice").await;
    let me = ws.whoami(pb::WhoamiRequest {}).await.unwrap().into_inner();
    assert_eq!(me.whoami, "alice");
    let denied = ws
        .create_project(pb::CreateProjectRequest {
            user: "alice".into(),
            project: Some(pb::Project { name: "p1".into(), ..Default::default() }),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("activation"), "{}", denied.message());

    let (mut admin, _) = portal.admin().await;
    admin
        .activate_user(pb::ActivateUserRequest { username: "alice".into(), ..Default::default() })
        .await
        .unwrap();
    ws.create_project(pb::CreateProjectRequest {
        user: "alice".into(),
        project: Some(pb::Project { name: "p1".into(), description: "first".into(), ..Default::default() }),
    })
    .await
    .unwrap();
    let project = ws
        .get_project(pb::GetProjectRequest { name: "p1".into(), status_ms: 0 })
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(project.description, "first");
    assert_eq!(project.members["alice"].role, pb::member::Role::Creator as i32);
    let user = ws
        .get_user(pb::GetUserRequest { username: "alice".into(), status_ms: 0 })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(user.projects.contains_key("p1") && user.projects.contains_key("alice"));
}

#[tokio::test]
async fn errors_carry_codes_and_merge_style_details() {
    use tonic_types::StatusExt;
    let portal = TestPortal::start().await;
    let (_, mut id) = portal.clients(None).await;
    let bad = id
        .register(pb::RegisterRequest {
            username: "Bad-Name".into(),
            email: "nope".into(),
            password: "password-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let details = bad.get_error_details();
    let fields: Vec<_> =
        details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["title", "detail", "username", "email"]);

    let (mut ws, _) = portal.clients(None).await;
    let unauth = ws.get_projects(pb::GetProjectsRequest::default()).await.unwrap_err();
    assert_eq!(unauth.code(), Code::Unauthenticated);
    assert_eq!(unauth.message(), "no access token provided");

    let (mut admin, _) = portal.admin().await;
    let missing =
        admin.get_project(pb::GetProjectRequest { name: "ghost".into(), status_ms: 0 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let dup = admin
        .create_project(pb::CreateProjectRequest {
            user: "admin".into(),
            project: Some(pb::Project { name: "admin".into(), ..Default::default() }),
        })
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists, "{dup:?}");
}

#[tokio::test]
async fn unbuilt_rpcs_name_themselves() {
    let portal = TestPortal::start().await;
    let (mut ws, _) = portal.admin().await;
    let err = ws.get_images(pb::GetImagesRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("portal.v1.Workspace/GetImages"), "{}", err.message());
    // A whole service that is not built yet names the method too.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", portal.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut wireguard = trellis_api::portal::v1::wireguard_client::WireguardClient::new(channel);
    let err = wireguard.get_wg_enclave(pb::GetWgEnclaveRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("portal.v1.Wireguard/GetWgEnclave"), "{}", err.message());
}

#[tokio::test]
async fn failed_transactions_leave_nothing_behind() {
    let portal = TestPortal::start().await;
    let before = portal.store.range("/trellis/").await.unwrap().kvs;
    let (_, mut id) = portal.clients(None).await;
    // The username collides with the admin's personal project: registration must write nothing.
    let err = id
        .register(pb::RegisterRequest {
            username: "admin".into(),
            email: "x@example.org".into(),
            password: "password-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let after = portal.store.range("/trellis/").await.unwrap().kvs;
    assert_eq!(before, after);
}

/// Sends raw bytes as the body of a unary gRPC call and returns the grpc-status code.
async fn raw_grpc(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (i32, String) {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response =
        sender.send_request(request.body(Full::new(bytes::Bytes::from(body))).unwrap()).await.unwrap();
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let pick = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    (pick("grpc-status").parse().unwrap_or(-1), pick("grpc-message"))
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[tokio::test]
async fn oversized_and_malformed_requests_are_refused_cleanly() {
    let portal = TestPortal::start().await;
    let token = portal.login("admin", common::ADMIN_PASSWORD).await;
    let (mut ws, _) = portal.admin().await;

    // 5 MiB of key: over the 4 MiB limit, refused before any work, and nothing is stored.
    let huge = ws
        .add_user_public_key(pb::AddUserPublicKeyRequest { user: "admin".into(), key: "x".repeat(5 << 20) })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::ResourceExhausted, "{huge:?}");
    assert!(
        ws.get_user_public_keys(pb::GetUserPublicKeysRequest { user: "admin".into() })
            .await
            .unwrap()
            .into_inner()
            .keys
            .is_empty()
    );

    // Garbage protobuf is INVALID_ARGUMENT whatever the method's access rule.
    for path in
        ["/portal.v1.Workspace/GetProject", "/portal.v1.Workspace/Whoami", "/portal.v1.Identity/Login"]
    {
        let (code, message) = raw_grpc(portal.addr, path, Some(&token), frame(&[0x0a, 0x09, b'x'])).await;
        assert_eq!(code, Code::InvalidArgument as i32, "{path}: {message}");
    }
    // A frame whose length prefix lies, and a compressed frame we cannot read.
    let mut lying = frame(b"");
    lying[4] = 9;
    let (code, _) = raw_grpc(portal.addr, "/portal.v1.Workspace/Whoami", Some(&token), lying).await;
    assert_eq!(code, Code::InvalidArgument as i32);
    let mut compressed = frame(b"");
    compressed[0] = 1;
    let (code, _) = raw_grpc(portal.addr, "/portal.v1.Workspace/Whoami", Some(&token), compressed).await;
    assert_eq!(code, Code::Unimplemented as i32);

    // The portal keeps serving.
    assert_eq!(ws.whoami(pb::WhoamiRequest {}).await.unwrap().into_inner().whoami, "admin");
}
