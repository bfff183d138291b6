//! Experiment development containers (XDCs): the objects users create through the API, the
//! controller that runs them on an [`trellis_xdc_runtime::XdcRuntime`] with volumes from
//! [`trellis_volumes::Volumes`], and the lookups the SSH jump host and the Jupyter web proxy
//! make (which XDC a name means, who has an account in it, where it listens).
//!
//! An XDC belongs to a project. *Shared* XDCs have an account for every active member and
//! mount the project's directory; *personal* ones have only their creator, with every project
//! of theirs mounted. Homes (`/home/<user>`) and project directories (`/project/<project>`)
//! are volumes that outlive XDCs. Store layout: [`keys`].

pub mod controller;
pub mod keys;
mod service;
mod spec;
pub mod types;

pub use controller::{Attacher, ControllerParts};
pub use service::{IMAGES, JumpHostInfo, NewXdc, XdcConfig, XdcService, creator_of};
pub use spec::JUPYTER_PORT;
pub use types::{AttachedNetwork, Attachment, XdcKind, XdcPhase, XdcRecord, XdcStatusRecord, runtime_id};
