//! `portal.v1.Workspace`: users, projects, organizations, experiments and portal settings.
//!
//! The handlers live in `workspace_users.rs`, `workspace_projects.rs` and `workspace_orgs.rs`;
//! this file holds the trait implementation tonic needs (one block, so it only forwards) and the
//! portal-wide calls.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::workspace_server::Workspace;
use trellis_types::{EntityType, Error, UserState};
use trellis_workspace::config::Patch;

use super::{Reply, Services, ok};
use crate::authz::caller;
use crate::status::status;

/// The Workspace service.
pub struct WorkspaceApi(pub Services);

fn patch_from(p: Option<pb::PatchStrategy>) -> Result<Patch, Error> {
    let value = p.map_or(0, |p| p.strategy);
    match pb::PatchStrategyStrategy::try_from(value) {
        Ok(pb::PatchStrategyStrategy::Replace) => Ok(Patch::Replace),
        Ok(pb::PatchStrategyStrategy::Remove) | Ok(pb::PatchStrategyStrategy::Subtract) => Ok(Patch::Remove),
        Ok(pb::PatchStrategyStrategy::Expand) => Ok(Patch::Expand),
        Err(_) => Err(Error::invalid("patchstrategy", format!("{value} is not a patch strategy"))),
    }
}

#[tonic::async_trait]
impl Workspace for WorkspaceApi {
    async fn get_users(&self, request: Request<pb::GetUsersRequest>) -> Reply<pb::GetUsersResponse> {
        WorkspaceApi::get_users(self, request).await
    }
    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        WorkspaceApi::get_user(self, request).await
    }
    async fn init_user(&self, request: Request<pb::InitUserRequest>) -> Reply<pb::InitUserResponse> {
        WorkspaceApi::init_user(self, request).await
    }
    async fn activate_user(
        &self,
        request: Request<pb::ActivateUserRequest>,
    ) -> Reply<pb::ActivateUserResponse> {
        WorkspaceApi::activate_user(self, request).await
    }
    async fn freeze_user(&self, request: Request<pb::FreezeUserRequest>) -> Reply<pb::FreezeUserResponse> {
        WorkspaceApi::freeze_user(self, request).await
    }
    async fn decline_user(&self, request: Request<pb::DeclineUserRequest>) -> Reply<pb::DeclineUserResponse> {
        WorkspaceApi::decline_user(self, request).await
    }
    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::UpdateUserResponse> {
        WorkspaceApi::update_user(self, request).await
    }
    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<pb::DeleteUserResponse> {
        WorkspaceApi::delete_user(self, request).await
    }
    async fn get_user_public_keys(
        &self,
        request: Request<pb::GetUserPublicKeysRequest>,
    ) -> Reply<pb::GetUserPublicKeysResponse> {
        WorkspaceApi::get_user_public_keys(self, request).await
    }
    async fn add_user_public_key(
        &self,
        request: Request<pb::AddUserPublicKeyRequest>,
    ) -> Reply<pb::AddUserPublicKeyResponse> {
        WorkspaceApi::add_user_public_key(self, request).await
    }
    async fn delete_user_public_key(
        &self,
        request: Request<pb::DeleteUserPublicKeyRequest>,
    ) -> Reply<pb::DeleteUserPublicKeyResponse> {
        WorkspaceApi::delete_user_public_key(self, request).await
    }
    async fn delete_user_public_keys(
        &self,
        request: Request<pb::DeleteUserPublicKeysRequest>,
    ) -> Reply<pb::DeleteUserPublicKeysResponse> {
        WorkspaceApi::delete_user_public_keys(self, request).await
    }
    async fn get_projects(&self, request: Request<pb::GetProjectsRequest>) -> Reply<pb::GetProjectsResponse> {
        WorkspaceApi::get_projects(self, request).await
    }
    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Reply<pb::GetProjectResponse> {
        WorkspaceApi::get_project(self, request).await
    }
    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Reply<pb::CreateProjectResponse> {
        WorkspaceApi::create_project(self, request).await
    }
    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Reply<pb::UpdateProjectResponse> {
        WorkspaceApi::update_project(self, request).await
    }
    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Reply<pb::DeleteProjectResponse> {
        WorkspaceApi::delete_project(self, request).await
    }
    async fn get_project_members(
        &self,
        request: Request<pb::GetProjectMembersRequest>,
    ) -> Reply<pb::GetProjectMembersResponse> {
        WorkspaceApi::get_project_members(self, request).await
    }
    async fn get_project_member(
        &self,
        request: Request<pb::GetProjectMemberRequest>,
    ) -> Reply<pb::GetProjectMemberResponse> {
        WorkspaceApi::get_project_member(self, request).await
    }
    async fn add_project_member(
        &self,
        request: Request<pb::AddProjectMemberRequest>,
    ) -> Reply<pb::AddProjectMemberResponse> {
        WorkspaceApi::add_project_member(self, request).await
    }
    async fn update_project_member(
        &self,
        request: Request<pb::UpdateProjectMemberRequest>,
    ) -> Reply<pb::UpdateProjectMemberResponse> {
        WorkspaceApi::update_project_member(self, request).await
    }
    async fn delete_project_member(
        &self,
        request: Request<pb::DeleteProjectMemberRequest>,
    ) -> Reply<pb::DeleteProjectMemberResponse> {
        WorkspaceApi::delete_project_member(self, request).await
    }
    async fn get_project_experiments(
        &self,
        request: Request<pb::GetProjectExperimentsRequest>,
    ) -> Reply<pb::GetProjectExperimentsResponse> {
        WorkspaceApi::get_project_experiments(self, request).await
    }
    async fn get_experiments(
        &self,
        request: Request<pb::GetExperimentsRequest>,
    ) -> Reply<pb::GetExperimentsResponse> {
        WorkspaceApi::get_experiments(self, request).await
    }
    async fn get_experiment(
        &self,
        request: Request<pb::GetExperimentRequest>,
    ) -> Reply<pb::GetExperimentResponse> {
        WorkspaceApi::get_experiment(self, request).await
    }
    async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Reply<pb::CreateExperimentResponse> {
        WorkspaceApi::create_experiment(self, request).await
    }
    async fn update_experiment(
        &self,
        request: Request<pb::UpdateExperimentRequest>,
    ) -> Reply<pb::UpdateExperimentResponse> {
        WorkspaceApi::update_experiment(self, request).await
    }
    async fn delete_experiment(
        &self,
        request: Request<pb::DeleteExperimentRequest>,
    ) -> Reply<pb::DeleteExperimentResponse> {
        WorkspaceApi::delete_experiment(self, request).await
    }
    async fn get_organizations(
        &self,
        request: Request<pb::GetOrganizationsRequest>,
    ) -> Reply<pb::GetOrganizationsResponse> {
        WorkspaceApi::get_organizations(self, request).await
    }
    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Reply<pb::GetOrganizationResponse> {
        WorkspaceApi::get_organization(self, request).await
    }
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Reply<pb::CreateOrganizationResponse> {
        WorkspaceApi::create_organization(self, request).await
    }
    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Reply<pb::UpdateOrganizationResponse> {
        WorkspaceApi::update_organization(self, request).await
    }
    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Reply<pb::DeleteOrganizationResponse> {
        WorkspaceApi::delete_organization(self, request).await
    }
    async fn request_organization_membership(
        &self,
        request: Request<pb::RequestOrganizationMembershipRequest>,
    ) -> Reply<pb::RequestOrganizationMembershipResponse> {
        WorkspaceApi::request_organization_membership(self, request).await
    }
    async fn confirm_organization_membership(
        &self,
        request: Request<pb::ConfirmOrganizationMembershipRequest>,
    ) -> Reply<pb::ConfirmOrganizationMembershipResponse> {
        WorkspaceApi::confirm_organization_membership(self, request).await
    }
    async fn get_organization_member(
        &self,
        request: Request<pb::GetOrganizationMemberRequest>,
    ) -> Reply<pb::GetOrganizationMemberResponse> {
        WorkspaceApi::get_organization_member(self, request).await
    }
    async fn get_organization_members(
        &self,
        request: Request<pb::GetOrganizationMembersRequest>,
    ) -> Reply<pb::GetOrganizationMembersResponse> {
        WorkspaceApi::get_organization_members(self, request).await
    }
    async fn update_organization_member(
        &self,
        request: Request<pb::UpdateOrganizationMemberRequest>,
    ) -> Reply<pb::UpdateOrganizationMemberResponse> {
        WorkspaceApi::update_organization_member(self, request).await
    }
    async fn delete_organization_member(
        &self,
        request: Request<pb::DeleteOrganizationMemberRequest>,
    ) -> Reply<pb::DeleteOrganizationMemberResponse> {
        WorkspaceApi::delete_organization_member(self, request).await
    }
    async fn get_organization_project(
        &self,
        request: Request<pb::GetOrganizationProjectRequest>,
    ) -> Reply<pb::GetOrganizationProjectResponse> {
        WorkspaceApi::get_organization_project(self, request).await
    }
    async fn get_organization_projects(
        &self,
        request: Request<pb::GetOrganizationProjectsRequest>,
    ) -> Reply<pb::GetOrganizationProjectsResponse> {
        WorkspaceApi::get_organization_projects(self, request).await
    }
    async fn add_organization_project(
        &self,
        request: Request<pb::AddOrganizationProjectRequest>,
    ) -> Reply<pb::AddOrganizationProjectResponse> {
        WorkspaceApi::add_organization_project(self, request).await
    }
    async fn update_organization_project(
        &self,
        request: Request<pb::UpdateOrganizationProjectRequest>,
    ) -> Reply<pb::UpdateOrganizationProjectResponse> {
        WorkspaceApi::update_organization_project(self, request).await
    }
    async fn delete_organization_project(
        &self,
        request: Request<pb::DeleteOrganizationProjectRequest>,
    ) -> Reply<pb::DeleteOrganizationProjectResponse> {
        WorkspaceApi::delete_organization_project(self, request).await
    }

    async fn get_revision(&self, request: Request<pb::GetRevisionRequest>) -> Reply<pb::GetRevisionResponse> {
        WorkspaceApi::get_revision(self, request).await
    }

    // === state changes reserved to administrators (checked by the rule table) ===

    async fn activate_project(
        &self,
        request: Request<pb::ActivateProjectRequest>,
    ) -> Reply<pb::ActivateProjectResponse> {
        self.set_project_state(&request.get_ref().project, UserState::Active).await?;
        ok(pb::ActivateProjectResponse {})
    }

    async fn freeze_project(
        &self,
        request: Request<pb::FreezeProjectRequest>,
    ) -> Reply<pb::FreezeProjectResponse> {
        self.set_project_state(&request.get_ref().project, UserState::Frozen).await?;
        ok(pb::FreezeProjectResponse {})
    }

    async fn decline_project(
        &self,
        request: Request<pb::DeclineProjectRequest>,
    ) -> Reply<pb::DeclineProjectResponse> {
        let name = &request.get_ref().project;
        let project = self.0.workspace.get_project(name).await.map_err(status)?;
        if project.state != UserState::Pending {
            return Err(status(Error::FailedPrecondition(format!(
                "only pending projects can be declined; {name} is {:?}",
                project.state
            ))));
        }
        self.0.workspace.delete_project(name).await.map_err(status)?;
        ok(pb::DeclineProjectResponse {})
    }

    async fn activate_organization(
        &self,
        request: Request<pb::ActivateOrganizationRequest>,
    ) -> Reply<pb::ActivateOrganizationResponse> {
        self.set_organization_state(&request.get_ref().organization, UserState::Active).await?;
        ok(pb::ActivateOrganizationResponse {})
    }

    async fn freeze_organization(
        &self,
        request: Request<pb::FreezeOrganizationRequest>,
    ) -> Reply<pb::FreezeOrganizationResponse> {
        self.set_organization_state(&request.get_ref().organization, UserState::Frozen).await?;
        ok(pb::FreezeOrganizationResponse {})
    }

    async fn decline_organization(
        &self,
        request: Request<pb::DeclineOrganizationRequest>,
    ) -> Reply<pb::DeclineOrganizationResponse> {
        let name = &request.get_ref().organization;
        let org = self.0.workspace.get_organization(name).await.map_err(status)?;
        if org.state != UserState::Pending {
            return Err(status(Error::FailedPrecondition(format!(
                "only pending organizations can be declined; {name} is {:?}",
                org.state
            ))));
        }
        self.0.workspace.delete_organization(name).await.map_err(status)?;
        ok(pb::DeclineOrganizationResponse {})
    }

    // === portal ===

    async fn whoami(&self, request: Request<pb::WhoamiRequest>) -> Reply<pb::WhoamiResponse> {
        let caller = caller(&request).map_err(status)?;
        ok(pb::WhoamiResponse { whoami: caller.username().to_owned() })
    }

    async fn health(&self, _request: Request<pb::HealthRequest>) -> Reply<pb::HealthResponse> {
        // Healthy means the store answers: a read that touches it.
        let status_text = match self.0.workspace.store().current_revision().await {
            Ok(_) => "OK".to_owned(),
            Err(e) => format!("degraded: state store: {e}"),
        };
        ok(pb::HealthResponse { status: status_text })
    }

    async fn get_policy(&self, _request: Request<pb::GetPolicyRequest>) -> Reply<pb::GetPolicyResponse> {
        ok(pb::GetPolicyResponse { policy: self.0.gate.policy().current().to_yaml() })
    }

    async fn get_user_configurations(
        &self,
        _request: Request<pb::GetUserConfigurationsRequest>,
    ) -> Reply<pb::GetUserConfigurationsResponse> {
        let config = self.0.workspace.user_configurations().await.map_err(status)?;
        ok(pb::GetUserConfigurationsResponse {
            institutions: config.institutions,
            categories: config.categories,
            ..Default::default()
        })
    }

    async fn update_user_configurations(
        &self,
        request: Request<pb::UpdateUserConfigurationsRequest>,
    ) -> Reply<pb::UpdateUserConfigurationsResponse> {
        let r = request.into_inner();
        let patch = patch_from(r.patchstrategy).map_err(status)?;
        self.0
            .workspace
            .update_user_configurations(&r.institutions, &r.categories, patch)
            .await
            .map_err(status)?;
        ok(pb::UpdateUserConfigurationsResponse {})
    }

    async fn get_entity_type_configurations(
        &self,
        _request: Request<pb::GetEntityTypeConfigurationsRequest>,
    ) -> Reply<pb::GetEntityTypeConfigurationsResponse> {
        let types = self.0.workspace.entity_types().await.map_err(status)?;
        ok(pb::GetEntityTypeConfigurationsResponse {
            types: types
                .into_iter()
                .map(|t| pb::EntityType { etype: t.etype, subtypes: t.subtypes })
                .collect(),
        })
    }

    async fn update_entity_type_configurations(
        &self,
        request: Request<pb::UpdateEntityTypeConfigurationsRequest>,
    ) -> Reply<pb::UpdateEntityTypeConfigurationsResponse> {
        let r = request.into_inner();
        let patch = patch_from(r.patchstrategy).map_err(status)?;
        let types: Vec<EntityType> =
            r.types.into_iter().map(|t| EntityType { etype: t.etype, subtypes: t.subtypes }).collect();
        self.0.workspace.update_entity_types(&types, patch).await.map_err(status)?;
        ok(pb::UpdateEntityTypeConfigurationsResponse {})
    }
}
