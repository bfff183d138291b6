//! The Kubernetes runtime's rendering: golden files (set UPDATE_GOLDEN=1 to rewrite them)
//! and the properties the objects must have whatever their exact text.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::PodSpec;
use trellis_xdc_runtime::kubernetes::{KubernetesConfig, KubernetesRuntime, RenderedXdc, XDC_LABEL};
use trellis_xdc_runtime::{
    JupyterSpec, RuntimeError, VolumeRef, XdcGroup, XdcMount, XdcRuntime, XdcSpec, XdcUser,
};

const HOST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
-----END OPENSSH PRIVATE KEY-----";

fn user(name: &str, id: u32) -> XdcUser {
    XdcUser {
        name: name.into(),
        uid: id,
        gid: id,
        authorized_keys: vec![format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name} {name}@laptop")],
        identity: None,
    }
}

/// A shared project XDC: two members, their homes, the project volume, Jupyter, limits,
/// an attached experiment's hosts.
fn shared_spec() -> XdcSpec {
    XdcSpec {
        id: "x0-proj".into(),
        users: vec![user("alice", 2001), user("bob", 2002)],
        groups: vec![XdcGroup {
            name: "proj".into(),
            gid: 3001,
            members: vec!["alice".into(), "bob".into()],
        }],
        mounts: vec![
            XdcMount { volume: VolumeRef::Home("alice".into()), host_path: "/ignored/alice".into() },
            XdcMount { volume: VolumeRef::Home("bob".into()), host_path: "/ignored/bob".into() },
            XdcMount { volume: VolumeRef::Project("proj".into()), host_path: "/ignored/proj".into() },
        ],
        user_ca_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIca trellis-user-ca".into(),
        host_private_key: HOST_KEY.into(),
        host_certificate: "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ x0-proj".into(),
        jupyter: Some(JupyterSpec {
            user: "alice".into(),
            base_url: "/x0-proj/".into(),
            token: "0123456789abcdef0123".into(),
            port: 8888,
        }),
        cpu_millis: 2000,
        memory_bytes: 4 << 30,
        hosts: vec![
            ("a.infra".into(), "172.30.0.10".parse().unwrap()),
            ("a".into(), "172.30.0.10".parse().unwrap()),
            ("b.infra".into(), "172.30.0.11".parse().unwrap()),
        ],
        search: vec!["infra.r1.e1.proj".into()],
    }
}

/// A personal XDC: one user, no Jupyter, no limits, not attached.
fn personal_spec() -> XdcSpec {
    XdcSpec {
        id: "mine-alice".into(),
        users: vec![user("alice", 2001)],
        groups: vec![],
        mounts: vec![XdcMount { volume: VolumeRef::Home("alice".into()), host_path: "/ignored".into() }],
        user_ca_public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIca trellis-user-ca".into(),
        host_private_key: HOST_KEY.into(),
        host_certificate: String::new(),
        jupyter: None,
        cpu_millis: 0,
        memory_bytes: 0,
        hosts: vec![],
        search: vec![],
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{} differs from the rendering (UPDATE_GOLDEN=1 rewrites it):\n{actual}",
        path.display()
    );
}

fn render(spec: &XdcSpec) -> RenderedXdc {
    KubernetesRuntime::new(KubernetesConfig::default()).render(spec).unwrap()
}

fn pod_spec(rendered: &RenderedXdc) -> &PodSpec {
    rendered.pod.spec.as_ref().unwrap()
}

#[test]
fn rendering_matches_the_golden_files() {
    let shared = render(&shared_spec());
    golden("shared-xdc.yaml", &shared.to_yaml().unwrap());
    golden("shared-xdc.json", &(serde_json::to_string_pretty(&shared).unwrap() + "\n"));
    golden("personal-xdc.yaml", &render(&personal_spec()).to_yaml().unwrap());
}

#[test]
fn the_yaml_parses_back_into_the_same_objects() {
    let shared = render(&shared_spec());
    let yaml = shared.to_yaml().unwrap();
    let docs: Vec<&str> = yaml.split("---\n").filter(|d| !d.trim().is_empty()).collect();
    assert_eq!(docs.len(), 4);
    let pod: k8s_openapi::api::core::v1::Pod = serde_saphyr::from_str(docs[3]).unwrap();
    assert_eq!(pod, shared.pod);
    let secret: k8s_openapi::api::core::v1::Secret = serde_saphyr::from_str(docs[1]).unwrap();
    assert_eq!(secret, shared.secret);
}

#[test]
fn pods_go_to_xdc_nodes_with_claims_and_limits_and_no_host_paths() {
    let rendered = render(&shared_spec());
    let spec = pod_spec(&rendered);
    assert_eq!(rendered.pod.metadata.namespace.as_deref(), Some("xdc"));
    assert_eq!(spec.hostname.as_deref(), Some("x0-proj"));
    let tolerations = spec.tolerations.as_ref().unwrap();
    assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("trellis.dev/xdc")
        && t.value.as_deref() == Some("true")
        && t.effect.as_deref() == Some("NoSchedule")));
    assert_eq!(spec.node_selector.as_ref().unwrap().get("trellis.dev/role").map(String::as_str), Some("xdc"));

    let volumes = spec.volumes.as_ref().unwrap();
    assert!(volumes.iter().all(|v| v.host_path.is_none()), "an XDC must not see the node's files");
    let mut claims: Vec<&str> = volumes
        .iter()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    claims.sort();
    assert_eq!(claims, ["home-alice", "home-bob", "project-proj"]);
    let container = &spec.containers[0];
    let mounts: Vec<(&str, &str)> = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    for expected in
        [("home-alice", "/home/alice"), ("home-bob", "/home/bob"), ("project-proj", "/project/proj")]
    {
        assert!(mounts.contains(&expected), "{mounts:?}");
    }
    assert!(container.volume_mounts.as_ref().unwrap().iter().all(|m| m.sub_path.is_none()));

    let limits = container.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "2000m");
    assert_eq!(limits["memory"].0, (4u64 << 30).to_string());
    assert_eq!(spec.automount_service_account_token, Some(false));
    let caps = container.security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(!caps.add.as_ref().unwrap().iter().any(|c| c == "SYS_ADMIN" || c == "NET_ADMIN"));

    let aliases = spec.host_aliases.as_ref().unwrap();
    let a = aliases.iter().find(|h| h.ip == "172.30.0.10").unwrap();
    assert_eq!(a.hostnames.as_deref(), Some(&["a.infra".to_owned(), "a".to_owned()][..]));
    assert_eq!(
        spec.dns_config.as_ref().unwrap().searches.as_deref(),
        Some(&["infra.r1.e1.proj".to_owned()][..])
    );
}

#[test]
fn the_service_selects_the_pod_and_secrets_stay_in_the_secret() {
    let rendered = render(&shared_spec());
    let service = rendered.service.spec.as_ref().unwrap();
    let labels = rendered.pod.metadata.labels.as_ref().unwrap();
    for (key, value) in service.selector.as_ref().unwrap() {
        assert_eq!(labels.get(key), Some(value));
    }
    assert_eq!(labels.get(XDC_LABEL).map(String::as_str), Some("x0-proj"));
    let ports: Vec<i32> = service.ports.as_ref().unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [22, 8888]);

    let token = "0123456789abcdef0123";
    let config = serde_json::to_string(&rendered.config).unwrap();
    let pod = serde_json::to_string(&rendered.pod).unwrap();
    assert!(!config.contains(token) && !pod.contains(token), "the Jupyter token leaked out of the Secret");
    assert!(!config.contains("PRIVATE KEY") && !pod.contains("PRIVATE KEY"));
    let secret = rendered.secret.data.as_ref().unwrap();
    assert_eq!(secret["jupyter-token"].0, token.as_bytes());
    assert!(
        String::from_utf8_lossy(&secret["ssh_host_key"].0).starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
    );

    let files = rendered.config.data.as_ref().unwrap();
    assert!(files["sshd_config"].contains("AuthorizedKeysFile /etc/trellis/authorized_keys.%u\n"));
    assert!(files["sshd_config"].contains("TrustedUserCAKeys /etc/trellis/trusted_user_ca_keys\n"));
    assert!(files["authorized_keys.bob"].contains("bob@laptop"));
    assert!(files["group"].contains("proj:x:3001:alice,bob\n"));
    // An account change alters only the ConfigMap, not the Pod: no restart needed.
    let mut changed = shared_spec();
    changed.users[1].authorized_keys = vec!["ssh-ed25519 AAAAnew bob@new".into()];
    let again = render(&changed);
    assert_eq!(again.pod, rendered.pod);
    assert_ne!(again.config, rendered.config);
    let mut bigger = shared_spec();
    bigger.memory_bytes *= 2;
    assert_ne!(render(&bigger).pod.metadata.annotations, rendered.pod.metadata.annotations);
}

#[tokio::test]
async fn the_runtime_renders_only_and_says_so() {
    let runtime = KubernetesRuntime::default();
    match runtime.apply(&shared_spec()).await {
        Err(RuntimeError::Unavailable(message)) => assert!(message.contains("render"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(runtime.list().await, Err(RuntimeError::Unavailable(_))));
    let mut bad = shared_spec();
    bad.id = "9lives".into();
    assert!(matches!(runtime.apply(&bad).await, Err(RuntimeError::InvalidSpec(_))));
    let mut clash = personal_spec();
    clash.users.push(user("a_b", 2003));
    clash.users.push(user("a-b", 2004));
    clash.mounts.push(XdcMount { volume: VolumeRef::Home("a_b".into()), host_path: "/x".into() });
    clash.mounts.push(XdcMount { volume: VolumeRef::Home("a-b".into()), host_path: "/y".into() });
    assert!(matches!(runtime.render(&clash), Err(RuntimeError::InvalidSpec(_))));
}
