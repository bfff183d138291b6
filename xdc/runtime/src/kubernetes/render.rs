//! Rendering one XDC as Kubernetes objects: a Pod, a Service selecting it, a ConfigMap with
//! the managed files and a Secret with the SSH host identity and the Jupyter token.
//!
//! The ConfigMap and Secret are mounted as whole directories (never `subPath`, which kubelet
//! does not update), so changed accounts and keys reach a running Pod; the init script links
//! `/etc/passwd`, `/etc/group` and `/etc/shadow` to them. Extra hosts become `hostAliases`
//! and search domains `dnsConfig`, because kubelet owns `/etc/hosts` and `/etc/resolv.conf`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HostAlias, KeyToPath, PersistentVolumeClaimVolumeSource, Pod, PodDNSConfig, PodSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, Service,
    ServicePort, ServiceSpec, TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::KubernetesConfig;
use crate::files::{self, KUBERNETES};
use crate::validate::dns_label;
use crate::{RuntimeError, XdcSpec};

/// Label every XDC object carries with the XDC id; the Service selects its Pod by it.
pub const XDC_LABEL: &str = "trellis.dev/xdc";
/// Annotation on the Pod: a hash of what needs a new Pod when it changes (volumes, limits,
/// Jupyter); accounts and keys reach a running Pod through its ConfigMap.
pub const FINGERPRINT_ANNOTATION: &str = "trellis.dev/restart-fingerprint";
/// XDC nodes carry the taint `trellis.dev/xdc=true:NoSchedule` and the label
/// `trellis.dev/role=xdc`.
pub const TAINT_KEY: &str = "trellis.dev/xdc";
pub const NODE_ROLE_LABEL: &str = "trellis.dev/role";

const FILES_DIR: &str = "/etc/trellis";
const SECRET_DIR: &str = "/etc/trellis-secret";

/// What sshd and Jupyter need (Kubernetes names, without `CAP_`).
const CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// One XDC's objects, ready for `kubectl apply` (see [`RenderedXdc::to_yaml`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedXdc {
    pub pod: Pod,
    pub service: Service,
    /// The managed files: accounts, sshd configuration, authorized keys, user CA, init.
    pub config: ConfigMap,
    /// The SSH host key and certificate, and the Jupyter token.
    pub secret: Secret,
}

impl RenderedXdc {
    /// The objects as one multi-document YAML stream, in the order they can be created:
    /// ConfigMap, Secret, Service, Pod.
    pub fn to_yaml(&self) -> Result<String, RuntimeError> {
        let docs = [yaml(&self.config)?, yaml(&self.secret)?, yaml(&self.service)?, yaml(&self.pod)?];
        Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
    }
}

fn yaml<T: Serialize>(object: &T) -> Result<String, RuntimeError> {
    serde_saphyr::to_string(object).map_err(|e| RuntimeError::Failed(format!("rendering YAML: {e}")))
}

fn invalid(message: String) -> RuntimeError {
    RuntimeError::InvalidSpec(message)
}

fn meta(name: &str, config: &KubernetesConfig, id: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(config.namespace.clone()),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "xdc".to_owned()),
            ("app.kubernetes.io/managed-by".to_owned(), "trellis".to_owned()),
            (XDC_LABEL.to_owned(), id.to_owned()),
        ])),
        ..ObjectMeta::default()
    }
}

/// The names of the ConfigMap and Secret of XDC `id`.
pub fn config_map_name(id: &str) -> String {
    format!("{id}-files")
}

pub fn secret_name(id: &str) -> String {
    format!("{id}-ssh")
}

fn fingerprint(spec: &XdcSpec) -> String {
    let mut mounts: Vec<(String, String)> =
        spec.mounts.iter().map(|m| (m.volume.target(), m.volume.claim_name())).collect();
    mounts.sort();
    let text = serde_json::json!({
        "mounts": mounts,
        "cpu_millis": spec.cpu_millis,
        "memory_bytes": spec.memory_bytes,
        "jupyter": spec.jupyter,
    })
    .to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn config_map(spec: &XdcSpec, config: &KubernetesConfig) -> ConfigMap {
    let mut data = BTreeMap::from([
        ("passwd".to_owned(), files::passwd(spec, "/bin/bash")),
        ("group".to_owned(), files::group(spec)),
        ("shadow".to_owned(), files::shadow(spec)),
        ("nsswitch.conf".to_owned(), files::NSSWITCH.to_owned()),
        ("sshd_config".to_owned(), files::sshd_config(spec, &KUBERNETES)),
        ("trusted_user_ca_keys".to_owned(), files::trusted_user_ca_keys(spec)),
        ("init".to_owned(), files::init_script(spec, &KUBERNETES)),
    ]);
    for user in &spec.users {
        data.insert(format!("authorized_keys.{}", user.name), files::authorized_keys(user));
    }
    ConfigMap {
        metadata: meta(&config_map_name(&spec.id), config, &spec.id),
        data: Some(data),
        ..ConfigMap::default()
    }
}

fn secret(spec: &XdcSpec, config: &KubernetesConfig) -> Secret {
    let mut data = BTreeMap::from([
        ("ssh_host_key".to_owned(), ByteString(files::host_key(spec).into_bytes())),
        ("ssh_host_key-cert.pub".to_owned(), ByteString(files::host_certificate(spec).into_bytes())),
    ]);
    if let Some(jupyter) = &spec.jupyter {
        data.insert("jupyter-token".to_owned(), ByteString(jupyter.token.clone().into_bytes()));
    }
    Secret {
        metadata: meta(&secret_name(&spec.id), config, &spec.id),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn service(spec: &XdcSpec, config: &KubernetesConfig) -> Service {
    let mut ports = vec![ServicePort {
        name: Some("ssh".to_owned()),
        port: 22,
        target_port: Some(IntOrString::Int(22)),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }];
    if let Some(jupyter) = &spec.jupyter {
        ports.push(ServicePort {
            name: Some("jupyter".to_owned()),
            port: i32::from(jupyter.port),
            target_port: Some(IntOrString::Int(i32::from(jupyter.port))),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        });
    }
    Service {
        metadata: meta(&spec.id, config, &spec.id),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(BTreeMap::from([(XDC_LABEL.to_owned(), spec.id.clone())])),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn container(spec: &XdcSpec, config: &KubernetesConfig) -> Container {
    let mut ports = vec![ContainerPort {
        name: Some("ssh".to_owned()),
        container_port: 22,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }];
    let mut env = Vec::new();
    if let Some(jupyter) = &spec.jupyter {
        ports.push(ContainerPort {
            name: Some("jupyter".to_owned()),
            container_port: i32::from(jupyter.port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        });
        env.push(EnvVar {
            name: "JUPYTER_TOKEN".to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret_name(&spec.id),
                    key: "jupyter-token".to_owned(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    let mut limits = BTreeMap::new();
    if spec.cpu_millis > 0 {
        limits.insert("cpu".to_owned(), Quantity(format!("{}m", spec.cpu_millis)));
    }
    if spec.memory_bytes > 0 {
        limits.insert("memory".to_owned(), Quantity(spec.memory_bytes.to_string()));
    }
    let mut mounts = vec![
        VolumeMount {
            name: "trellis-files".to_owned(),
            mount_path: FILES_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "trellis-ssh".to_owned(),
            mount_path: SECRET_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    for mount in &spec.mounts {
        mounts.push(VolumeMount {
            name: mount.volume.claim_name(),
            mount_path: mount.volume.target(),
            ..VolumeMount::default()
        });
    }
    Container {
        name: "xdc".to_owned(),
        image: Some(config.image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        command: Some(vec!["/bin/sh".to_owned(), format!("{FILES_DIR}/init")]),
        ports: Some(ports),
        env: (!env.is_empty()).then_some(env),
        // Requests equal limits: the XDC gets what it is promised (Guaranteed QoS when both set).
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits.clone()),
            requests: Some(limits),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(mounts),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(22), ..TCPSocketAction::default() }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        security_context: Some(SecurityContext {
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: Some(CAPABILITIES.iter().map(|c| (*c).to_owned()).collect()),
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn pod(spec: &XdcSpec, config: &KubernetesConfig) -> Pod {
    let mut volumes = vec![
        Volume {
            name: "trellis-files".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&spec.id),
                default_mode: Some(0o644),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "trellis-ssh".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(&spec.id)),
                default_mode: Some(0o400),
                // The token reaches Jupyter through the environment only.
                items: Some(
                    ["ssh_host_key", "ssh_host_key-cert.pub"]
                        .iter()
                        .map(|k| KeyToPath { key: (*k).to_owned(), path: (*k).to_owned(), mode: None })
                        .collect(),
                ),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    for mount in &spec.mounts {
        volumes.push(Volume {
            name: mount.volume.claim_name(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: mount.volume.claim_name(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
    }
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, address) in &spec.hosts {
        aliases.entry(address.to_string()).or_default().push(name.clone());
    }
    let host_aliases: Vec<HostAlias> =
        aliases.into_iter().map(|(ip, hostnames)| HostAlias { ip, hostnames: Some(hostnames) }).collect();
    let mut metadata = meta(&spec.id, config, &spec.id);
    metadata.annotations = Some(BTreeMap::from([(FINGERPRINT_ANNOTATION.to_owned(), fingerprint(spec))]));
    Pod {
        metadata,
        spec: Some(PodSpec {
            hostname: Some(spec.id.clone()),
            containers: vec![container(spec, config)],
            volumes: Some(volumes),
            node_selector: Some(BTreeMap::from([(NODE_ROLE_LABEL.to_owned(), "xdc".to_owned())])),
            tolerations: Some(vec![Toleration {
                key: Some(TAINT_KEY.to_owned()),
                operator: Some("Equal".to_owned()),
                value: Some("true".to_owned()),
                effect: Some("NoSchedule".to_owned()),
                ..Toleration::default()
            }]),
            host_aliases: (!host_aliases.is_empty()).then_some(host_aliases),
            dns_config: (!spec.search.is_empty())
                .then(|| PodDNSConfig { searches: Some(spec.search.clone()), ..PodDNSConfig::default() }),
            // Users of the XDC get no Kubernetes credentials and no other services' addresses.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Always".to_owned()),
            termination_grace_period_seconds: Some(10),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Renders `spec` for the cluster described by `config`; no cluster is needed.
pub fn render(config: &KubernetesConfig, spec: &XdcSpec) -> Result<RenderedXdc, RuntimeError> {
    spec.validate()?;
    if !spec.id.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid(format!(
            "id {:?} must start with a letter to name a Kubernetes Service",
            spec.id
        )));
    }
    let mut claims = std::collections::HashSet::new();
    for mount in &spec.mounts {
        let claim = mount.volume.claim_name();
        if !dns_label(&claim) || !claims.insert(claim.clone()) {
            return Err(invalid(format!(
                "volume {:?} gives the unusable or duplicate claim name {claim:?}",
                mount.volume
            )));
        }
    }
    Ok(RenderedXdc {
        pod: pod(spec, config),
        service: service(spec, config),
        config: config_map(spec, config),
        secret: secret(spec, config),
    })
}
