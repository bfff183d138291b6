//! The policy file is live: a valid edit takes effect without a restart, an invalid one is
//! rejected and the policy in force stays.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, authed};
use tonic::Code;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;

/// Polls `check` until it returns true; the file watcher polls about once a second.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn policy_edits_apply_live_and_bad_ones_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.yml");
    let policy_arg = policy_path.to_str().unwrap();
    let daemon =
        Daemon::start(&["up", "--policy", policy_arg], &dir.path().join("data"), "policy-admin-pw").await;
    let original = std::fs::read_to_string(&policy_path).expect("first start writes the built-in policy");

    let channel = daemon.channel().await;
    let mut id = IdentityClient::new(channel.clone());
    id.register(pb::RegisterRequest {
        username: "alice".into(),
        email: "alice@example.org".into(),
        password: "alice-password".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = id
        .login(pb::LoginRequest { username: "admin".into(), password: "policy-admin-pw".into() })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut ws = WorkspaceClient::new(channel.clone());
    ws.activate_user(authed(
        pb::ActivateUserRequest { username: "alice".into(), ..Default::default() },
        &admin,
    ))
    .await
    .unwrap();
    let alice = id
        .login(pb::LoginRequest { username: "alice".into(), password: "alice-password".into() })
        .await
        .unwrap()
        .into_inner()
        .token;
    let create = |name: &str| {
        authed(
            pb::CreateProjectRequest {
                user: "alice".into(),
                project: Some(pb::Project { name: name.into(), ..Default::default() }),
            },
            &alice,
        )
    };
    ws.create_project(create("before")).await.unwrap();

    // Only administrators may create public projects from now on.
    let restricted = original.replacen("create: [Any.Any]", "create: []", 1);
    assert_ne!(restricted, original, "the built-in policy lets anyone create public projects");
    std::fs::write(&policy_path, &restricted).unwrap();
    let mut attempt = 0;
    eventually("the stricter policy takes effect", async || {
        attempt += 1;
        match ws.create_project(create(&format!("try{attempt}"))).await {
            Err(e) => e.code() == Code::PermissionDenied,
            Ok(_) => false,
        }
    })
    .await;

    // A broken file is rejected: the stricter policy stays in force and is what GetPolicy shows.
    std::fs::write(&policy_path, "project:\n  public: [not, a, mapping\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = ws.create_project(create("after")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let shown = ws.get_policy(authed(pb::GetPolicyRequest {}, &alice)).await.unwrap().into_inner().policy;
    assert_eq!(shown, restricted);
}
