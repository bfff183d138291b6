//! The rule table: for every RPC, who may call it and which policy check applies.
//!
//! Every method of the Identity and Workspace services has a row here; methods of services not
//! built yet are answered `UNIMPLEMENTED` by the layer, naming the method. A test checks that
//! each method in the compiled descriptors is either covered here or knowingly not built.

use std::collections::HashMap;

use prost::Message;
use trellis_api::portal::v1 as pb;
use trellis_policy::{Entity, Operation};
use trellis_types::Error;

use super::gate::Target;
use crate::convert::{access_mode_from, given};

/// Decodes a request message (refusing malformed ones) and names the object it concerns, if
/// the method's check needs one.
pub type TargetFn = fn(&[u8]) -> Result<Option<Target>, Error>;

/// Who may call a method.
#[derive(Clone, Copy)]
pub enum Access {
    /// Anyone, even without a token (registration, login, health, registration lists).
    Public,
    /// Any signed-in caller; the handler narrows further (lists are filtered by the policy, and
    /// membership requests check which side asks).
    SignedIn,
    /// Portal administrators only.
    Admin,
    /// The policy decides `operation` on `entity` for the object the request names.
    Policy(Entity, Operation),
    /// Not built yet; the layer answers `UNIMPLEMENTED` naming the method and what brings it.
    NotBuilt(&'static str),
}

/// One method's rule.
#[derive(Clone, Copy)]
pub struct Rule {
    pub access: Access,
    /// Decodes the request; every request is decoded once here, so a malformed one is refused
    /// the same way whatever its method.
    pub target: TargetFn,
    /// Whether accounts still waiting for activation may call it (they may look at and manage
    /// their own account, nothing else).
    pub while_pending: bool,
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Error> {
    M::decode(bytes).map_err(|e| Error::invalid("request", format!("malformed request message: {e}")))
}

fn mode_of(field: &str, value: i32) -> Result<trellis_types::AccessMode, Error> {
    access_mode_from(field, value)
}

/// A policy check of `$op` on `$entity`, naming the target from the decoded request.
macro_rules! policy {
    ($entity:ident, $op:ident, $msg:ty, |$r:ident| $target:expr) => {
        (Access::Policy(Entity::$entity, Operation::$op), |bytes| {
            let $r: $msg = decode(bytes)?;
            Ok(Some($target))
        })
    };
}

/// An access rule without a target object; the request is still decoded to refuse malformed ones.
macro_rules! open {
    ($access:ident, $msg:ty) => {
        (Access::$access, |bytes| {
            decode::<$msg>(bytes)?;
            Ok(None)
        })
    };
}

/// The table, keyed by gRPC path.
pub fn rules() -> HashMap<&'static str, Rule> {
    use Access::*;
    let active = |(access, target): (Access, TargetFn)| Rule { access, target, while_pending: false };
    let pending_ok = |(access, target): (Access, TargetFn)| Rule { access, target, while_pending: true };
    let not_built = |why| Rule { access: NotBuilt(why), target: |_| Ok(None), while_pending: false };
    const IMAGES: &str = "disk images";
    const REASONS: &str = "action-reason templates";
    const STORAGE: &str = "facility block storage pools";
    const HARBOR: &str = "facility harbors";

    let table: Vec<(&'static str, Rule)> = vec![
        // === Identity ===
        ("/portal.v1.Identity/Register", pending_ok(open!(Public, pb::RegisterRequest))),
        ("/portal.v1.Identity/Login", pending_ok(open!(Public, pb::LoginRequest))),
        ("/portal.v1.Identity/Logout", pending_ok(open!(SignedIn, pb::LogoutRequest))),
        (
            "/portal.v1.Identity/GetIdentity",
            pending_ok(policy!(Identity, Read, pb::GetIdentityRequest, |r| Target::Identity(r.username))),
        ),
        ("/portal.v1.Identity/ListIdentities", active(open!(Admin, pb::ListIdentityRequest))),
        (
            "/portal.v1.Identity/Unregister",
            pending_ok(policy!(Identity, Delete, pb::UnregisterRequest, |r| Target::Identity(r.username))),
        ),
        (
            "/portal.v1.Identity/UpdateIdentity",
            pending_ok(policy!(Identity, Update, pb::UpdateIdentityRequest, |r| Target::Identity(
                r.username
            ))),
        ),
        // === Workspace: users ===
        ("/portal.v1.Workspace/GetUsers", active(open!(SignedIn, pb::GetUsersRequest))),
        (
            "/portal.v1.Workspace/GetUser",
            pending_ok(policy!(User, Read, pb::GetUserRequest, |r| Target::User(r.username))),
        ),
        (
            "/portal.v1.Workspace/InitUser",
            pending_ok(policy!(User, Update, pb::InitUserRequest, |r| Target::User(r.username))),
        ),
        // Admitting, freezing or declining a user is "creating" them in the policy's terms:
        // administrators and the maintainers of an organization the user belongs to or asked to join.
        (
            "/portal.v1.Workspace/ActivateUser",
            active(policy!(User, Create, pb::ActivateUserRequest, |r| Target::User(r.username))),
        ),
        (
            "/portal.v1.Workspace/FreezeUser",
            active(policy!(User, Create, pb::FreezeUserRequest, |r| Target::User(r.username))),
        ),
        (
            "/portal.v1.Workspace/DeclineUser",
            active(policy!(User, Create, pb::DeclineUserRequest, |r| Target::User(r.username))),
        ),
        (
            "/portal.v1.Workspace/UpdateUser",
            pending_ok(policy!(User, Update, pb::UpdateUserRequest, |r| Target::User(r.username))),
        ),
        (
            "/portal.v1.Workspace/DeleteUser",
            pending_ok(policy!(User, Delete, pb::DeleteUserRequest, |r| Target::User(r.user))),
        ),
        (
            "/portal.v1.Workspace/GetUserPublicKeys",
            pending_ok(policy!(User, Update, pb::GetUserPublicKeysRequest, |r| Target::User(r.user))),
        ),
        (
            "/portal.v1.Workspace/AddUserPublicKey",
            pending_ok(policy!(User, Update, pb::AddUserPublicKeyRequest, |r| Target::User(r.user))),
        ),
        (
            "/portal.v1.Workspace/DeleteUserPublicKey",
            pending_ok(policy!(User, Update, pb::DeleteUserPublicKeyRequest, |r| Target::User(r.user))),
        ),
        (
            "/portal.v1.Workspace/DeleteUserPublicKeys",
            pending_ok(policy!(User, Update, pb::DeleteUserPublicKeysRequest, |r| Target::User(r.user))),
        ),
        // === Workspace: projects ===
        ("/portal.v1.Workspace/GetProjects", active(open!(SignedIn, pb::GetProjectsRequest))),
        (
            "/portal.v1.Workspace/GetProject",
            active(policy!(Project, Read, pb::GetProjectRequest, |r| Target::Project(r.name))),
        ),
        (
            "/portal.v1.Workspace/CreateProject",
            active(policy!(Project, Create, pb::CreateProjectRequest, |r| {
                let p = r.project.unwrap_or_default();
                Target::NewProject {
                    organization: given(&p.organization),
                    mode: mode_of("project.access_mode", p.access_mode)?,
                }
            })),
        ),
        (
            "/portal.v1.Workspace/UpdateProject",
            active(policy!(Project, Update, pb::UpdateProjectRequest, |r| Target::Project(r.name))),
        ),
        (
            "/portal.v1.Workspace/DeleteProject",
            active(policy!(Project, Delete, pb::DeleteProjectRequest, |r| Target::Project(r.name))),
        ),
        ("/portal.v1.Workspace/ActivateProject", active(open!(Admin, pb::ActivateProjectRequest))),
        ("/portal.v1.Workspace/FreezeProject", active(open!(Admin, pb::FreezeProjectRequest))),
        ("/portal.v1.Workspace/DeclineProject", active(open!(Admin, pb::DeclineProjectRequest))),
        (
            "/portal.v1.Workspace/GetProjectMembers",
            active(policy!(Project, Read, pb::GetProjectMembersRequest, |r| Target::Project(r.name))),
        ),
        (
            "/portal.v1.Workspace/GetProjectMember",
            active(policy!(Project, Read, pb::GetProjectMemberRequest, |r| Target::Project(r.project))),
        ),
        (
            "/portal.v1.Workspace/AddProjectMember",
            active(policy!(Project, Update, pb::AddProjectMemberRequest, |r| Target::Project(r.project))),
        ),
        (
            "/portal.v1.Workspace/UpdateProjectMember",
            active(policy!(Project, Update, pb::UpdateProjectMemberRequest, |r| Target::Project(r.project))),
        ),
        (
            "/portal.v1.Workspace/DeleteProjectMember",
            active(policy!(Project, Update, pb::DeleteProjectMemberRequest, |r| Target::Project(r.project))),
        ),
        (
            "/portal.v1.Workspace/GetProjectExperiments",
            active(policy!(Project, Read, pb::GetProjectExperimentsRequest, |r| Target::Project(r.project))),
        ),
        // === Workspace: organizations ===
        ("/portal.v1.Workspace/GetOrganizations", active(open!(SignedIn, pb::GetOrganizationsRequest))),
        (
            "/portal.v1.Workspace/GetOrganization",
            active(policy!(Organization, Read, pb::GetOrganizationRequest, |r| Target::Organization(r.name))),
        ),
        (
            "/portal.v1.Workspace/CreateOrganization",
            active(policy!(Organization, Create, pb::CreateOrganizationRequest, |r| {
                let o = r.organization.unwrap_or_default();
                Target::NewOrganization { mode: mode_of("organization.access_mode", o.access_mode)? }
            })),
        ),
        (
            "/portal.v1.Workspace/UpdateOrganization",
            active(policy!(Organization, Update, pb::UpdateOrganizationRequest, |r| Target::Organization(
                r.name
            ))),
        ),
        (
            "/portal.v1.Workspace/DeleteOrganization",
            active(policy!(Organization, Delete, pb::DeleteOrganizationRequest, |r| Target::Organization(
                r.name
            ))),
        ),
        ("/portal.v1.Workspace/ActivateOrganization", active(open!(Admin, pb::ActivateOrganizationRequest))),
        ("/portal.v1.Workspace/FreezeOrganization", active(open!(Admin, pb::FreezeOrganizationRequest))),
        ("/portal.v1.Workspace/DeclineOrganization", active(open!(Admin, pb::DeclineOrganizationRequest))),
        // Which side asks or confirms is domain logic (the workspace checks it); any signed-in
        // caller may try.
        (
            "/portal.v1.Workspace/RequestOrganizationMembership",
            pending_ok(open!(SignedIn, pb::RequestOrganizationMembershipRequest)),
        ),
        (
            "/portal.v1.Workspace/ConfirmOrganizationMembership",
            pending_ok(open!(SignedIn, pb::ConfirmOrganizationMembershipRequest)),
        ),
        (
            "/portal.v1.Workspace/GetOrganizationMember",
            active(policy!(Organization, Read, pb::GetOrganizationMemberRequest, |r| Target::Organization(
                r.organization
            ))),
        ),
        (
            "/portal.v1.Workspace/GetOrganizationMembers",
            active(policy!(Organization, Read, pb::GetOrganizationMembersRequest, |r| Target::Organization(
                r.organization
            ))),
        ),
        (
            "/portal.v1.Workspace/UpdateOrganizationMember",
            active(policy!(Organization, Update, pb::UpdateOrganizationMemberRequest, |r| {
                Target::Organization(r.organization)
            })),
        ),
        (
            "/portal.v1.Workspace/DeleteOrganizationMember",
            active(policy!(Organization, Update, pb::DeleteOrganizationMemberRequest, |r| {
                Target::Organization(r.organization)
            })),
        ),
        (
            "/portal.v1.Workspace/GetOrganizationProject",
            active(policy!(Organization, Read, pb::GetOrganizationProjectRequest, |r| Target::Organization(
                r.organization
            ))),
        ),
        (
            "/portal.v1.Workspace/GetOrganizationProjects",
            active(policy!(
                Organization,
                Read,
                pb::GetOrganizationProjectsRequest,
                |r| Target::Organization(r.name)
            )),
        ),
        (
            "/portal.v1.Workspace/AddOrganizationProject",
            active(policy!(Organization, Update, pb::AddOrganizationProjectRequest, |r| {
                Target::Organization(r.organization)
            })),
        ),
        (
            "/portal.v1.Workspace/UpdateOrganizationProject",
            active(policy!(Organization, Update, pb::UpdateOrganizationProjectRequest, |r| {
                Target::Organization(r.organization)
            })),
        ),
        (
            "/portal.v1.Workspace/DeleteOrganizationProject",
            active(policy!(Organization, Update, pb::DeleteOrganizationProjectRequest, |r| {
                Target::Organization(r.organization)
            })),
        ),
        // === Workspace: experiments ===
        ("/portal.v1.Workspace/GetExperiments", active(open!(SignedIn, pb::GetExperimentsRequest))),
        (
            "/portal.v1.Workspace/GetExperiment",
            active(policy!(Experiment, Read, pb::GetExperimentRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Workspace/CreateExperiment",
            active(policy!(Experiment, Create, pb::CreateExperimentRequest, |r| {
                let e = r.experiment.unwrap_or_default();
                Target::NewExperiment {
                    mode: mode_of("experiment.access_mode", e.access_mode)?,
                    project: e.project,
                }
            })),
        ),
        (
            "/portal.v1.Workspace/UpdateExperiment",
            active(policy!(Experiment, Update, pb::UpdateExperimentRequest, |r| Target::Experiment {
                project: r.project,
                name: r.name
            })),
        ),
        (
            "/portal.v1.Workspace/DeleteExperiment",
            active(policy!(Experiment, Delete, pb::DeleteExperimentRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Workspace/GetRevision",
            active(policy!(Experiment, Read, pb::GetRevisionRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        // === Model ===
        // Compiling stores nothing: any active user may try a model.
        ("/portal.v1.Model/Compile", active(open!(SignedIn, pb::CompileRequest))),
        // Pushing a revision changes the experiment.
        (
            "/portal.v1.Model/Push",
            active(policy!(Experiment, Update, pb::PushRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        // === Workspace: portal ===
        ("/portal.v1.Workspace/Whoami", pending_ok(open!(SignedIn, pb::WhoamiRequest))),
        ("/portal.v1.Workspace/Health", pending_ok(open!(Public, pb::HealthRequest))),
        ("/portal.v1.Workspace/GetPolicy", pending_ok(open!(SignedIn, pb::GetPolicyRequest))),
        (
            "/portal.v1.Workspace/GetUserConfigurations",
            pending_ok(open!(Public, pb::GetUserConfigurationsRequest)),
        ),
        (
            "/portal.v1.Workspace/UpdateUserConfigurations",
            active(open!(Admin, pb::UpdateUserConfigurationsRequest)),
        ),
        (
            "/portal.v1.Workspace/GetEntityTypeConfigurations",
            pending_ok(open!(Public, pb::GetEntityTypeConfigurationsRequest)),
        ),
        (
            "/portal.v1.Workspace/UpdateEntityTypeConfigurations",
            active(open!(Admin, pb::UpdateEntityTypeConfigurationsRequest)),
        ),
        // === Realize ===
        // A realization's access mode and relations are its experiment's.
        (
            "/portal.v1.Realize/Realize",
            active(policy!(Realization, Create, pb::RealizeRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Realize/GetRealization",
            active(policy!(Realization, Read, pb::GetRealizationRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        // Filtered by the same policy in the handler.
        ("/portal.v1.Realize/GetRealizations", active(open!(SignedIn, pb::GetRealizationsRequest))),
        (
            "/portal.v1.Realize/UpdateRealization",
            active(policy!(Realization, Update, pb::UpdateRealizationRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Realize/Relinquish",
            active(policy!(Realization, Delete, pb::RelinquishRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Realize/GetResources",
            active(policy!(Facility, Read, pb::GetResourcesRequest, |_r| Target::Portal)),
        ),
        // === Materialize: a materialization has its experiment's mode and relations ===
        (
            "/portal.v1.Materialize/Materialize",
            active(policy!(Materialization, Create, pb::MaterializeRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Materialize/Dematerialize",
            active(policy!(Materialization, Delete, pb::DematerializeRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Materialize/GetMaterialization",
            active(policy!(Materialization, Read, pb::GetMaterializationRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Materialize/GetMaterializationV2",
            active(policy!(Materialization, Read, pb::GetMaterializationRequestV2, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Materialize/GetMaterializationStatus",
            active(policy!(Materialization, Read, pb::GetMaterializationStatusRequest, |r| {
                Target::Experiment { project: r.project, name: r.experiment }
            })),
        ),
        (
            "/portal.v1.Materialize/RebootMaterialization",
            active(policy!(Materialization, Update, pb::RebootMaterializationRequest, |r| {
                Target::Experiment { project: r.project, name: r.experiment }
            })),
        ),
        (
            "/portal.v1.Materialize/NewIngress",
            active(policy!(Materialization, Update, pb::NewIngressRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        (
            "/portal.v1.Materialize/DeleteIngress",
            active(policy!(Materialization, Update, pb::DeleteIngressRequest, |r| Target::Experiment {
                project: r.project,
                name: r.experiment
            })),
        ),
        // Filtered by the same policy in the handler.
        (
            "/portal.v1.Materialize/GetMaterializations",
            active(open!(SignedIn, pb::GetMaterializationsRequest)),
        ),
        (
            "/portal.v1.Materialize/GetMaterializationsV2",
            active(open!(SignedIn, pb::GetMaterializationsRequestV2)),
        ),
        // === Cred: a user's SSH credentials are part of their identity ===
        (
            "/portal.v1.Cred/GetUserSSHKeys",
            active(policy!(Identity, Read, pb::GetUserSshKeysRequest, |r| Target::Identity(r.username))),
        ),
        (
            "/portal.v1.Cred/GetUserSSHCert",
            active(policy!(Identity, Read, pb::GetUserSshCertRequest, |r| Target::Identity(r.username))),
        ),
        // === Commission ===
        (
            "/portal.v1.Commission/RegisterFacility",
            active(policy!(Facility, Create, pb::RegisterFacilityRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/GetFacilities",
            active(policy!(Facility, Read, pb::GetFacilitiesRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/GetFacility",
            active(policy!(Facility, Read, pb::GetFacilityRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/UpdateFacility",
            active(policy!(Facility, Update, pb::UpdateFacilityRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/DeleteFacility",
            active(policy!(Facility, Delete, pb::DeleteFacilityRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/ActivateResources",
            active(policy!(Facility, Update, pb::ActivateResourcesRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Commission/DeactivateResources",
            active(policy!(Facility, Update, pb::DeactivateResourcesRequest, |_r| Target::Portal)),
        ),
        ("/portal.v1.Commission/ListBlockPools", not_built(STORAGE)),
        ("/portal.v1.Commission/InitializeHarbor", not_built(HARBOR)),
        ("/portal.v1.Commission/DeinitializeHarbor", not_built(HARBOR)),
        // === Alloc: pools and the allocation table ===
        ("/portal.v1.Alloc/GetPool", active(policy!(Pool, Read, pb::GetPoolRequest, |_r| Target::Portal))),
        ("/portal.v1.Alloc/GetPools", active(policy!(Pool, Read, pb::GetPoolsRequest, |_r| Target::Portal))),
        (
            "/portal.v1.Alloc/CreatePool",
            active(policy!(Pool, Create, pb::CreatePoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/DeletePool",
            active(policy!(Pool, Delete, pb::DeletePoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/AddProject",
            active(policy!(Pool, Update, pb::AddProjectToPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/RemoveProject",
            active(policy!(Pool, Update, pb::RemoveProjectFromPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/AddOrganization",
            active(policy!(Pool, Update, pb::AddOrganizationToPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/RemoveOrganization",
            active(policy!(Pool, Update, pb::RemoveOrganizationFromPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/AddFacility",
            active(policy!(Pool, Update, pb::AddFacilityToPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/RemoveFacility",
            active(policy!(Pool, Update, pb::RemoveFacilityFromPoolRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/UpdatePoolResources",
            active(policy!(Pool, Update, pb::UpdatePoolResourcesRequest, |_r| Target::Portal)),
        ),
        (
            "/portal.v1.Alloc/UpdatePoolPriority",
            active(policy!(Pool, Update, pb::UpdatePoolPriorityRequest, |_r| Target::Portal)),
        ),
        // The raw allocation table is operator territory.
        ("/portal.v1.Alloc/Fetch", active(open!(Admin, pb::FetchAllocationTableRequest))),
        ("/portal.v1.Alloc/Free", active(open!(Admin, pb::FreeRequest))),
        ("/portal.v1.Alloc/Alloc", active(open!(Admin, pb::AllocationRequest))),
        // === XDC: an XDC has its project's mode and relations (User.Self = its creator) ===
        (
            "/portal.v1.XDC/CreateXDC",
            active(policy!(Xdc, Create, pb::CreateXdcRequest, |r| Target::NewXdc { project: r.project })),
        ),
        (
            "/portal.v1.XDC/GetXDC",
            active(policy!(Xdc, Read, pb::GetXdcRequest, |r| Target::Xdc {
                project: r.project,
                name: r.xdc
            })),
        ),
        (
            "/portal.v1.XDC/DeleteXDC",
            active(policy!(Xdc, Delete, pb::DeleteXdcRequest, |r| Target::Xdc {
                project: r.project,
                name: r.xdc
            })),
        ),
        (
            "/portal.v1.XDC/UpdateXDC",
            active(policy!(Xdc, Update, pb::UpdateXdcRequest, |r| Target::Xdc {
                project: r.project,
                name: r.xdc
            })),
        ),
        // The handler also checks that the caller may use the materialization (a second object).
        (
            "/portal.v1.XDC/AttachXDC",
            active(policy!(Xdc, Update, pb::AttachXdcRequest, |r| Target::Xdc {
                project: r.project,
                name: r.xdc
            })),
        ),
        (
            "/portal.v1.XDC/DetachXDC",
            active(policy!(Xdc, Update, pb::DetachXdcRequest, |r| Target::Xdc {
                project: r.project,
                name: r.xdc
            })),
        ),
        // Filtered by the same policy in the handler.
        ("/portal.v1.XDC/ListXDCs", active(open!(SignedIn, pb::ListXdCsRequest))),
        ("/portal.v1.XDC/ListXDCImages", active(open!(SignedIn, pb::ListXdcImagesRequest))),
        ("/portal.v1.XDC/GetXDCJumpHosts", active(open!(SignedIn, pb::GetXdcJumpHostsRequest))),
        ("/portal.v1.Workspace/CreateImage", not_built(IMAGES)),
        ("/portal.v1.Workspace/DeleteImage", not_built(IMAGES)),
        ("/portal.v1.Workspace/GetImage", not_built(IMAGES)),
        ("/portal.v1.Workspace/GetImages", not_built(IMAGES)),
        ("/portal.v1.Workspace/UpdateImage", not_built(IMAGES)),
        ("/portal.v1.Workspace/GetActionReason", not_built(REASONS)),
        ("/portal.v1.Workspace/ListActionReasons", not_built(REASONS)),
    ];
    table.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_and_workspace_method_has_a_rule() {
        let rules = rules();
        let missing: Vec<_> = trellis_api::ALL_METHODS
            .iter()
            .filter(|m| {
                [
                    "portal.v1.Identity",
                    "portal.v1.Workspace",
                    "portal.v1.Model",
                    "portal.v1.Realize",
                    "portal.v1.Commission",
                    "portal.v1.Alloc",
                    "portal.v1.Cred",
                    "portal.v1.Materialize",
                    "portal.v1.XDC",
                ]
                .contains(&m.service)
            })
            .filter(|m| !rules.contains_key(m.path))
            .map(|m| m.path)
            .collect();
        assert!(missing.is_empty(), "methods without a rule: {missing:?}");
        let known: Vec<_> = trellis_api::ALL_METHODS.iter().map(|m| m.path).collect();
        let stray: Vec<_> = rules.keys().filter(|p| !known.contains(p)).collect();
        assert!(stray.is_empty(), "rules for methods that do not exist: {stray:?}");
    }

    #[test]
    fn policy_rules_refuse_malformed_requests() {
        let rules = rules();
        let rule = rules["/portal.v1.Workspace/GetProject"];
        assert!(matches!(rule.access, Access::Policy(Entity::Project, Operation::Read)));
        assert!(matches!((rule.target)(&[0xff, 0xff, 0xff]), Err(Error::InvalidArgument { .. })));
        let ok = pb::GetProjectRequest { name: "p".into(), status_ms: 0 }.encode_to_vec();
        assert_eq!((rule.target)(&ok).unwrap(), Some(Target::Project("p".into())));
        // Rules without a target object still refuse malformed requests.
        let whoami = rules["/portal.v1.Workspace/Whoami"];
        assert!(matches!((whoami.target)(&[0x0a, 0x05, b'a']), Err(Error::InvalidArgument { .. })));
    }
}
