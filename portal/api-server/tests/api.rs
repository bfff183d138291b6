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
    admin.activate_user(pb::ActivateUserRequest { username: "alice".into(), ..Default::default() }).await.unwrap();
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
    let err = ws.get_revision(pb::GetRevisionRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("portal.v1.Workspace/GetRevision"), "{}", err.message());
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
