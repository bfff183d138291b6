//! `Cred`: a user's SSH key pair and certificates, only for themselves (and administrators).

mod common;

use common::*;
use tonic::Code;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::cred_client::CredClient;

async fn cred(
    portal: &TestPortal,
    token: String,
) -> CredClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    let ch = Channel::from_shared(format!("http://{}", portal.addr)).unwrap().connect().await.unwrap();
    CredClient::with_interceptor(ch, Bearer(Some(token)))
}

#[tokio::test]
async fn users_get_their_own_keys_and_certificates_only() {
    let portal = TestPortal::start().await;
    portal.user("alice", true).await;
    portal.user("bob", true).await;
    let mut alice = cred(&portal, portal.login("alice", PASSWORD).await).await;
    let mut bob = cred(&portal, portal.login("bob", PASSWORD).await).await;
    let mut admin = cred(&portal, portal.login("admin", ADMIN_PASSWORD).await).await;

    let keys = alice
        .get_user_ssh_keys(pb::GetUserSshKeysRequest { username: "alice".into() })
        .await
        .unwrap()
        .into_inner()
        .keys
        .unwrap();
    assert!(keys.public.starts_with("ssh-ed25519 "), "{}", keys.public);
    assert!(keys.private.contains("BEGIN OPENSSH PRIVATE KEY"));
    // The same pair every time: it is generated once.
    let again =
        alice.get_user_ssh_keys(pb::GetUserSshKeysRequest { username: "alice".into() }).await.unwrap();
    assert_eq!(again.into_inner().keys.unwrap().public, keys.public);

    let cert = alice
        .get_user_ssh_cert(pb::GetUserSshCertRequest { username: "alice".into() })
        .await
        .unwrap()
        .into_inner()
        .cert
        .unwrap();
    assert!(cert.cert.starts_with("ssh-ed25519-cert-v01@openssh.com "), "{}", cert.cert);
    assert!(cert.ca_host_pub_key.starts_with("ssh-ed25519 "), "{}", cert.ca_host_pub_key);

    let denied =
        bob.get_user_ssh_keys(pb::GetUserSshKeysRequest { username: "alice".into() }).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied =
        bob.get_user_ssh_cert(pb::GetUserSshCertRequest { username: "alice".into() }).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    admin.get_user_ssh_cert(pb::GetUserSshCertRequest { username: "alice".into() }).await.unwrap();
    let missing =
        admin.get_user_ssh_keys(pb::GetUserSshKeysRequest { username: "nobody".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
}
