//! The CA against both real stores: one CA and one key pair per user also when replicas race,
//! certificates that validate against the CA key (and only against it), and input checks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};
use trellis_credentials::{CA_KEY, SshCa, SshCaConfig, user_key_key};
use trellis_store::embedded::EmbeddedStore;
use trellis_store::etcd::EtcdStore;
use trellis_store::{Store, StoreExt};
use trellis_testkit::etcd::EtcdServer;
use trellis_types::Error;

fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("s.redb")).unwrap());
    (dir, store)
}

async fn etcd_replicas(server: &EtcdServer, count: usize) -> Vec<Arc<dyn Store>> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..count {
        stores.push(Arc::new(EtcdStore::connect(&[server.endpoint()]).await.unwrap()));
    }
    stores
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn fingerprint_of(openssh_public: &str) -> ssh_key::Fingerprint {
    PublicKey::from_openssh(openssh_public).unwrap().fingerprint(HashAlg::Sha256)
}

async fn open_all(stores: &[Arc<dyn Store>]) -> Vec<SshCa> {
    let handles: Vec<_> = stores
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { SshCa::open(s, SshCaConfig::default()).await.unwrap() })
        })
        .collect();
    let mut cas = Vec::new();
    for handle in handles {
        cas.push(handle.await.unwrap());
    }
    cas
}

/// Replicas opening at once end with one CA, and first calls for a user's keys racing on
/// different replicas end with one key pair.
async fn replicas_agree(stores: Vec<Arc<dyn Store>>) {
    let cas = open_all(&stores).await;
    let user_ca = cas[0].public_key_openssh().unwrap();
    let host_ca = cas[0].host_public_key_openssh().unwrap();
    assert!(user_ca.starts_with("ssh-ed25519 "), "{user_ca}");
    assert_ne!(user_ca, host_ca, "user and host CA are separate keys");
    for ca in &cas {
        assert_eq!(ca.public_key_openssh().unwrap(), user_ca);
        assert_eq!(ca.host_public_key_openssh().unwrap(), host_ca);
    }
    let reopened = SshCa::open(stores[0].clone(), SshCaConfig::default()).await.unwrap();
    assert_eq!(reopened.public_key_openssh().unwrap(), user_ca);

    let handles: Vec<_> = cas
        .iter()
        .map(|ca| {
            let ca = ca.clone();
            tokio::spawn(async move { ca.user_keys("alice").await.unwrap() })
        })
        .collect();
    let mut pairs = Vec::new();
    for handle in handles {
        pairs.push(handle.await.unwrap());
    }
    assert!(pairs.iter().all(|p| *p == pairs[0]), "every replica returns the pair that won the race");

    // A certificate issued by one replica validates against another replica's CA key.
    let cert = cas[1].user_certificate("alice", &[], None).await.unwrap();
    let parsed = Certificate::from_openssh(&cert.openssh).unwrap();
    parsed.validate([&fingerprint_of(&cas[0].public_key_openssh().unwrap())]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_replicas_agree_on_one_ca_and_one_user_key() {
    let (_dir, store) = embedded();
    replicas_agree(vec![store; 8]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_replicas_agree_on_one_ca_and_one_user_key() {
    let server = EtcdServer::start().await.unwrap();
    replicas_agree(etcd_replicas(&server, 2).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serials_are_unique_and_increasing_across_etcd_replicas() {
    let server = EtcdServer::start().await.unwrap();
    let cas = open_all(&etcd_replicas(&server, 4).await).await;
    let mut handles = Vec::new();
    for i in 0..40 {
        let ca = cas[i % cas.len()].clone();
        handles
            .push(tokio::spawn(async move { ca.user_certificate("bob", &[], None).await.unwrap().serial }));
    }
    let mut serials = Vec::new();
    for handle in handles {
        serials.push(handle.await.unwrap());
    }
    let distinct: HashSet<u64> = serials.iter().copied().collect();
    assert_eq!(distinct.len(), serials.len(), "serials repeat: {serials:?}");
    let next = cas[0].user_certificate("bob", &[], None).await.unwrap().serial;
    assert!(serials.iter().all(|s| *s < next), "a later certificate has a larger serial");
}

#[tokio::test]
async fn user_certificate_carries_what_sshd_checks() {
    let (_dir, store) = embedded();
    let ca = SshCa::open(store, SshCaConfig::default()).await.unwrap();
    let keys = ca.user_keys("alice").await.unwrap();
    let private = PrivateKey::from_openssh(&keys.private_openssh).unwrap();
    assert_eq!(private.public_key().to_openssh().unwrap(), keys.public_openssh, "the pair belongs together");

    let before = now();
    let issued = ca.user_certificate("alice", &["root".to_owned(), "alice".to_owned()], None).await.unwrap();
    let after = now();
    let cert = Certificate::from_openssh(&issued.openssh).unwrap();

    cert.validate([&fingerprint_of(&ca.public_key_openssh().unwrap())]).unwrap();
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.public_key(), private.public_key().key_data(), "certifies the user's own key");
    assert_eq!(cert.valid_principals(), ["alice", "root"], "the username first, duplicates dropped");
    assert_eq!(issued.principals, ["alice", "root"]);
    assert_eq!(cert.serial(), issued.serial);
    assert_eq!(cert.key_id(), format!("trellis:alice:{}", issued.serial));
    assert!(cert.critical_options().is_empty());
    let extensions: Vec<&str> = cert.extensions().keys().map(String::as_str).collect();
    assert_eq!(extensions, ["permit-agent-forwarding", "permit-port-forwarding", "permit-pty"]);
    assert!(cert.valid_after() >= before - 300 && cert.valid_after() <= after - 300);
    assert!(cert.valid_before() >= before + 86_400 && cert.valid_before() <= after + 86_400);
    assert_eq!((cert.valid_after(), cert.valid_before()), (issued.valid_after, issued.valid_before));

    // Outside its window, or judged against any other key, it does not validate.
    let fp = fingerprint_of(&ca.public_key_openssh().unwrap());
    assert!(cert.validate_at(cert.valid_before(), [&fp]).is_err());
    assert!(cert.validate_at(cert.valid_after() - 1, [&fp]).is_err());
    assert!(cert.validate([&fingerprint_of(&ca.host_public_key_openssh().unwrap())]).is_err());
    assert!(cert.validate([&fingerprint_of(&keys.public_openssh)]).is_err());

    // Serials increase from one certificate to the next.
    let second = ca.user_certificate("alice", &[], Some(Duration::from_secs(600))).await.unwrap();
    assert!(second.serial > issued.serial);
    assert_eq!(second.valid_before - second.valid_after, 600 + 300);
}

#[tokio::test]
async fn signs_a_key_the_user_brings() {
    let (_dir, store) = embedded();
    let ca = SshCa::open(store.clone(), SshCaConfig::default()).await.unwrap();
    let own = PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let line = format!("{} carol@laptop\n", own.public_key().to_openssh().unwrap());
    let issued = ca.sign_user_key("carol", &line, &[], None).await.unwrap();
    let cert = Certificate::from_openssh(&issued.openssh).unwrap();
    assert_eq!(cert.public_key(), own.public_key().key_data());
    assert_eq!(cert.valid_principals(), ["carol"]);
    assert!(store.get(&user_key_key("carol")).await.unwrap().is_none(), "no key pair made for carol");
}

#[tokio::test]
async fn host_certificate_is_signed_by_the_host_ca() {
    let (_dir, store) = embedded();
    let ca = SshCa::open(store, SshCaConfig::default()).await.unwrap();
    let host = PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519).unwrap();
    let names = vec!["xdc1.proj".to_owned(), "10.0.0.7".to_owned()];
    let issued = ca.host_certificate(&host.public_key().to_openssh().unwrap(), &names, None).await.unwrap();
    let cert = Certificate::from_openssh(&issued.openssh).unwrap();
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.valid_principals(), names.as_slice());
    assert!(cert.extensions().is_empty());
    assert_eq!(cert.key_id(), format!("trellis-host:xdc1.proj:{}", issued.serial));
    cert.validate([&fingerprint_of(&ca.host_public_key_openssh().unwrap())]).unwrap();
    assert!(cert.validate([&fingerprint_of(&ca.public_key_openssh().unwrap())]).is_err());
    assert!(cert.valid_before() - cert.valid_after() == 365 * 86_400 + 300);
}

#[tokio::test]
async fn delete_user_removes_the_key_pair() {
    let (_dir, store) = embedded();
    let ca = SshCa::open(store.clone(), SshCaConfig::default()).await.unwrap();
    let first = ca.user_keys("dave").await.unwrap();
    let other = ca.user_keys("davey").await.unwrap();
    assert_eq!(ca.user_keys("dave").await.unwrap(), first, "generated once");
    ca.delete_user("dave").await.unwrap();
    assert!(store.get(&user_key_key("dave")).await.unwrap().is_none());
    assert_eq!(ca.user_keys("davey").await.unwrap(), other, "a user whose name extends it keeps theirs");
    ca.delete_user("dave").await.unwrap();
    let fresh = ca.user_keys("dave").await.unwrap();
    assert_ne!(fresh.public_openssh, first.public_openssh, "a new account gets a new pair");
}

#[tokio::test]
async fn refuses_bad_requests_with_the_field_at_fault() {
    let (_dir, store) = embedded();
    let config = SshCaConfig { max_user_cert_validity: Duration::from_secs(3600), ..SshCaConfig::default() };
    let ca = SshCa::open(store, config).await.unwrap();
    let field = |err: Error| match err {
        Error::InvalidArgument { violations } => violations[0].field.clone(),
        other => panic!("expected invalid argument, got {other:?}"),
    };
    assert_eq!(field(ca.user_keys("../etc").await.unwrap_err()), "username");
    assert_eq!(
        field(ca.user_certificate("alice", &["a,b".to_owned()], None).await.unwrap_err()),
        "principals"
    );
    let too_many: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    assert_eq!(field(ca.user_certificate("alice", &too_many, None).await.unwrap_err()), "principals");
    // The default validity (24 h) exceeds this CA's maximum, so the caller must ask for less.
    assert_eq!(field(ca.user_certificate("alice", &[], None).await.unwrap_err()), "validity");
    assert_eq!(field(ca.user_certificate("alice", &[], Some(Duration::ZERO)).await.unwrap_err()), "validity");
    ca.user_certificate("alice", &[], Some(Duration::from_secs(3600))).await.unwrap();
    assert_eq!(
        field(ca.sign_user_key("alice", "ssh-ed25519 AAAA", &[], None).await.unwrap_err()),
        "public_key"
    );
    let key = ca.user_keys("alice").await.unwrap().public_openssh;
    assert_eq!(field(ca.host_certificate(&key, &[], None).await.unwrap_err()), "hostnames");
    assert_eq!(
        field(ca.host_certificate("nonsense", &["h".to_owned()], None).await.unwrap_err()),
        "host_public_key"
    );
}

#[tokio::test]
async fn a_corrupt_stored_ca_is_an_error_not_a_new_ca() {
    let (_dir, store) = embedded();
    store.put(CA_KEY, br#"{"user_ca":"x","host_ca":"y","created":0}"#.to_vec()).await.unwrap();
    let err = SshCa::open(store.clone(), SshCaConfig::default()).await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_eq!(
        store.get(CA_KEY).await.unwrap().unwrap().value,
        br#"{"user_ca":"x","host_ca":"y","created":0}"#
    );
}
