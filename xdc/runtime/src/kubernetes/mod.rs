//! The Kubernetes runtime: each XDC as a Pod and a Service in the `xdc` namespace, with its
//! managed files in a ConfigMap, its SSH host identity and Jupyter token in a Secret, its
//! volumes as CephFS PersistentVolumeClaims (`home-<user>`, `project-<project>`, see
//! [`crate::VolumeRef::claim_name`]), scheduled onto XDC nodes by a toleration for
//! `trellis.dev/xdc=true:NoSchedule` and the node selector `trellis.dev/role=xdc`.
//!
//! Rendering only: [`render`] (or [`KubernetesRuntime::render`]) produces the objects, which
//! an operator applies with `kubectl apply -f -` ([`RenderedXdc::to_yaml`]). This crate has no
//! Kubernetes client yet, so the [`crate::XdcRuntime`] methods answer
//! [`crate::RuntimeError::Unavailable`] (after checking the spec, so bad specs still get
//! their real error).

mod render;

pub use render::{
    FINGERPRINT_ANNOTATION, NODE_ROLE_LABEL, RenderedXdc, TAINT_KEY, XDC_LABEL, config_map_name, render,
    secret_name,
};

use crate::{RuntimeError, XdcRuntime, XdcSpec, XdcStatus};

/// Where and how XDC Pods run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The namespace of every XDC object (`xdc`).
    pub namespace: String,
    /// An image with OpenSSH's sshd, util-linux's setpriv and (for Jupyter) notebook 6.
    pub image: String,
    pub image_pull_policy: String,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            namespace: "xdc".into(),
            image: "trellis/xdc:bookworm".into(),
            image_pull_policy: "IfNotPresent".into(),
        }
    }
}

/// Renders XDCs as Kubernetes objects; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct KubernetesRuntime {
    config: KubernetesConfig,
}

const NO_CLIENT: &str = "the Kubernetes runtime only renders objects (KubernetesRuntime::render); \
                         it has no cluster client to apply them";

impl KubernetesRuntime {
    pub fn new(config: KubernetesConfig) -> KubernetesRuntime {
        KubernetesRuntime { config }
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// The objects for `spec`.
    pub fn render(&self, spec: &XdcSpec) -> Result<RenderedXdc, RuntimeError> {
        render(&self.config, spec)
    }
}

#[async_trait::async_trait]
impl XdcRuntime for KubernetesRuntime {
    async fn apply(&self, spec: &XdcSpec) -> Result<XdcStatus, RuntimeError> {
        self.render(spec)?;
        Err(RuntimeError::Unavailable(NO_CLIENT.into()))
    }

    async fn status(&self, _id: &str) -> Result<Option<XdcStatus>, RuntimeError> {
        Err(RuntimeError::Unavailable(NO_CLIENT.into()))
    }

    async fn remove(&self, _id: &str) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unavailable(NO_CLIENT.into()))
    }

    async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        Err(RuntimeError::Unavailable(NO_CLIENT.into()))
    }
}
