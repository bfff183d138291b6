//! Mutual TLS between a real tonic server configured with `server_tls_config` and clients
//! configured with `client_tls_config`: who gets in and who is refused.

use std::net::SocketAddr;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, ClientTlsConfig, Server};
use tonic::{Request, Response, Status};
use trellis_facility_api::v1::facility_client::FacilityClient;
use trellis_facility_api::v1::facility_server::{Facility, FacilityServer};
use trellis_facility_api::v1::*;
use trellis_pki::{IssuedCert, Pki, client_tls_config, server_tls_config};

/// Answers `List` with one fixed id, so a successful call proves the request reached it.
struct Answering;

#[tonic::async_trait]
impl Facility for Answering {
    async fn materialize(
        &self,
        _: Request<MaterializeRequest>,
    ) -> Result<Response<MaterializeResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn dematerialize(
        &self,
        _: Request<DematerializeRequest>,
    ) -> Result<Response<DematerializeResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn reboot(&self, _: Request<RebootRequest>) -> Result<Response<RebootResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn list(&self, _: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        Ok(Response::new(ListResponse { mzids: vec!["reached".into()] }))
    }
}

/// Serves `Answering` on a free loopback port with `server` as its identity and `client_ca` as
/// the only CA it accepts client certificates from.
async fn serve(server: &IssuedCert, client_ca: &str) -> SocketAddr {
    let tls = server_tls_config(&server.cert_pem, &server.key_pem, client_ca).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder().tls_config(tls).unwrap().add_service(FacilityServer::new(Answering));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    addr
}

/// Calls `List`; `Err` carries why the connection or call failed.
async fn call(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Vec<String>, String> {
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| format!("tls config: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let reply =
        FacilityClient::new(channel).list(ListRequest {}).await.map_err(|e| format!("call: {e:?}"))?;
    Ok(reply.into_inner().mzids)
}

/// The failure came from the TLS layer (an alert or a certificate check), not from elsewhere.
fn assert_refused_by_tls(why: &str) {
    eprintln!("refused: {why}");
    let lower = why.to_lowercase();
    assert!(lower.contains("alert") || lower.contains("certificate"), "{why}");
}

struct Setup {
    portal: Pki,
    addr: SocketAddr,
    portal_client: IssuedCert,
}

/// Facility `alpha`'s agent with a certificate from the portal CA, accepting the portal CA.
async fn alpha() -> Setup {
    let portal = Pki::generate_ephemeral("test portal CA").unwrap();
    let server = portal.issue_server_cert("alpha", &["127.0.0.1".to_owned()]).unwrap();
    let addr = serve(&server, portal.ca_pem()).await;
    let portal_client = portal.issue_client_cert("portal").unwrap();
    Setup { portal, addr, portal_client }
}

#[tokio::test]
async fn the_portal_client_is_accepted_by_name_and_by_address() {
    let s = alpha().await;
    let by_name = client_tls_config(s.portal.ca_pem(), &s.portal_client, "alpha").unwrap();
    assert_eq!(call(s.addr, by_name).await.unwrap(), ["reached"]);
    let by_address = client_tls_config(s.portal.ca_pem(), &s.portal_client, "127.0.0.1").unwrap();
    assert_eq!(call(s.addr, by_address).await.unwrap(), ["reached"]);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let s = alpha().await;
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(s.portal.ca_pem()))
        .domain_name("alpha");
    let refused = call(s.addr, anonymous).await.unwrap_err();
    assert_refused_by_tls(&refused);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let s = alpha().await;
    let stranger = Pki::generate_ephemeral("another CA").unwrap();
    let forged = stranger.issue_client_cert("portal").unwrap();
    let tls = client_tls_config(s.portal.ca_pem(), &forged, "alpha").unwrap();
    let refused = call(s.addr, tls).await.unwrap_err();
    assert_refused_by_tls(&refused);
}

#[tokio::test]
async fn a_facility_certificate_cannot_act_as_the_portal() {
    // Signed by the right CA, but issued for serving: another facility holding one must not be
    // able to drive this agent.
    let s = alpha().await;
    let beta = s.portal.issue_server_cert("beta", &[]).unwrap();
    let tls = client_tls_config(s.portal.ca_pem(), &beta, "alpha").unwrap();
    let refused = call(s.addr, tls).await.unwrap_err();
    assert_refused_by_tls(&refused);
}

#[tokio::test]
async fn the_portal_refuses_a_server_with_another_facilitys_name_or_ca() {
    let s = alpha().await;
    let expecting_beta = client_tls_config(s.portal.ca_pem(), &s.portal_client, "beta").unwrap();
    let refused = call(s.addr, expecting_beta).await.unwrap_err();
    assert!(refused.starts_with("connect"), "{refused}");
    assert_refused_by_tls(&refused);

    let stranger = Pki::generate_ephemeral("another CA").unwrap();
    let impostor = stranger.issue_server_cert("alpha", &["127.0.0.1".to_owned()]).unwrap();
    let addr = serve(&impostor, s.portal.ca_pem()).await;
    let tls = client_tls_config(s.portal.ca_pem(), &s.portal_client, "alpha").unwrap();
    let refused = call(addr, tls).await.unwrap_err();
    assert!(refused.starts_with("connect"), "{refused}");
    assert_refused_by_tls(&refused);
}

#[test]
fn malformed_material_is_reported_before_any_connection() {
    let portal = Pki::generate_ephemeral("test portal CA").unwrap();
    let client = portal.issue_client_cert("portal").unwrap();
    let err = client_tls_config("not a certificate", &client, "alpha").unwrap_err();
    assert!(err.to_string().contains("trusted CA certificate"), "{err}");
    let keyless = IssuedCert { key_pem: "garbage".into(), ..client.clone() };
    let err = client_tls_config(portal.ca_pem(), &keyless, "alpha").unwrap_err();
    assert!(err.to_string().contains("client key"), "{err}");
    let err = server_tls_config(&client.cert_pem, &client.key_pem, "").unwrap_err();
    assert!(err.to_string().contains("portal CA"), "{err}");
    let err = portal.issue_server_cert("alpha", &["n\u{e4}me".to_owned()]).unwrap_err();
    assert!(err.to_string().contains("not a DNS name"), "{err}");
}

#[test]
fn issued_certificates_expire_when_they_say() {
    let portal = Pki::generate_ephemeral("test portal CA").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let client = portal.issue_client_cert("portal").unwrap();
    let server = portal.issue_server_cert("alpha", &[]).unwrap();
    let day = 86_400;
    assert!((client.not_after - now - 7 * day).abs() < 60, "{}", client.not_after - now);
    assert!((server.not_after - now - 730 * day).abs() < 60, "{}", server.not_after - now);
    assert_ne!(client.cert_pem, portal.issue_client_cert("portal").unwrap().cert_pem);
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
}
