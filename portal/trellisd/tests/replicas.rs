//! Two `trellisd serve api` processes on one etcd behave as one portal: a write through either
//! is visible through the other at once, and a token from one is accepted by the other.

mod common;

use std::net::SocketAddr;

use common::{Daemon, authed};
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::identity_client::IdentityClient;
use trellis_api::portal::v1::workspace_client::WorkspaceClient;
use trellis_testkit::etcd::EtcdServer;

const ADMIN_PASSWORD: &str = "replica-admin-pw";

/// A `trellisd serve api` replica with its own data directory (for its policy file).
struct Replica {
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

async fn start_replica(etcd: &str) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&["serve", "api", "--etcd", etcd], dir.path(), ADMIN_PASSWORD).await;
    Replica { daemon, _dir: dir }
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

async fn login(addr: SocketAddr, username: &str, password: &str) -> String {
    IdentityClient::new(channel(addr).await)
        .login(pb::LoginRequest { username: username.into(), password: password.into() })
        .await
        .unwrap()
        .into_inner()
        .token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_replicas_share_one_etcd() {
    let etcd = EtcdServer::start().await.unwrap();
    // Both start at once: they race to create the signing key and the admin; one of each wins.
    let endpoint = etcd.endpoint();
    let (a, b) = tokio::join!(start_replica(&endpoint), start_replica(&endpoint));
    let (a, b) = (&a.daemon, &b.daemon);

    // Register on A, activate as admin on B, log in on A, use the token on B.
    IdentityClient::new(channel(a.addr).await)
        .register(pb::RegisterRequest {
            username: "alice".into(),
            email: "alice@example.org".into(),
            password: "alice-password".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let admin_b = login(b.addr, "admin", ADMIN_PASSWORD).await;
    let mut ws_b = WorkspaceClient::new(channel(b.addr).await);
    ws_b.activate_user(authed(
        pb::ActivateUserRequest { username: "alice".into(), ..Default::default() },
        &admin_b,
    ))
    .await
    .unwrap();

    let alice = login(a.addr, "alice", "alice-password").await;
    let who = ws_b.whoami(authed(pb::WhoamiRequest {}, &alice)).await.unwrap().into_inner();
    assert_eq!(who.whoami, "alice", "B accepts A's token: the signing key is shared through etcd");

    // A write through B is visible through A on the very next call.
    ws_b.create_project(authed(
        pb::CreateProjectRequest {
            user: "alice".into(),
            project: Some(pb::Project { name: "shared".into(), ..Default::default() }),
        },
        &alice,
    ))
    .await
    .unwrap();
    let mut ws_a = WorkspaceClient::new(channel(a.addr).await);
    let project = ws_a
        .get_project(authed(pb::GetProjectRequest { name: "shared".into(), status_ms: 0 }, &alice))
        .await
        .unwrap()
        .into_inner()
        .project
        .unwrap();
    assert_eq!(project.name, "shared");

    // Logging out through A revokes the token on B too.
    IdentityClient::new(channel(a.addr).await)
        .logout(authed(pb::LogoutRequest { username: "alice".into() }, &alice))
        .await
        .unwrap();
    let revoked = ws_b.whoami(authed(pb::WhoamiRequest {}, &alice)).await.unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);

    // Exactly one administrator account exists despite the racing bootstrap.
    let users = ws_a
        .get_users(authed(pb::GetUsersRequest { filter: pb::FilterMode::ByAll as i32 }, &admin_b))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users.iter().filter(|u| u.username == "admin").count(), 1);
    assert_eq!(users.len(), 2);
}
