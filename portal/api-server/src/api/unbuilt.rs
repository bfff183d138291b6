//! Services whose RPCs other issues bring. They are registered so every Merge path is routed;
//! the authorization layer answers each of their methods with `UNIMPLEMENTED` naming it before
//! a request could reach these empty implementations (whose generated defaults say the same).

use trellis_api::portal::v1 as pb;

/// Placeholder for services not built yet.
pub struct Unbuilt;

impl pb::artifact_server::Artifact for Unbuilt {}
impl pb::communications_server::Communications for Unbuilt {}
impl pb::deploy_server::Deploy for Unbuilt {}
impl pb::key_value_server::KeyValue for Unbuilt {}
impl pb::mergefs_server::Mergefs for Unbuilt {}
impl pb::wireguard_server::Wireguard for Unbuilt {}
impl pb::xdc_server::Xdc for Unbuilt {}
