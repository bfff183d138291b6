//! Workspace RPCs about organizations and their memberships.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_types::{Error, UserState};
use trellis_workspace::organizations::{MembershipKind, NewOrganization, OrganizationUpdate};

use super::workspace::WorkspaceApi;
use super::{Reply, ok};
use crate::authz::caller;
use crate::convert::{access_mode_from, given, member_from, member_to, organization_to, user_state_from};
use crate::status::status;

fn kind_from(value: i32) -> Result<MembershipKind, Error> {
    match pb::MembershipType::try_from(value) {
        Ok(pb::MembershipType::UserMember) => Ok(MembershipKind::User),
        Ok(pb::MembershipType::ProjectMember) => Ok(MembershipKind::Project),
        Err(_) => Err(Error::invalid(
            "kind",
            format!("{value} is not a membership kind (UserMember, ProjectMember)"),
        )),
    }
}

impl WorkspaceApi {
    /// Sets or removes a membership on the organization's side, as the request's caller.
    async fn set_membership<T>(
        &self,
        request: &Request<T>,
        org: &str,
        kind: MembershipKind,
        id: &str,
        member: Option<trellis_types::Member>,
    ) -> Result<Option<trellis_types::Member>, tonic::Status> {
        let who = caller(request).map_err(status)?;
        self.0
            .workspace
            .set_organization_membership(org, kind, id, member, who.username(), who.is_admin())
            .await
            .map_err(status)
    }

    pub(crate) async fn get_organizations(
        &self,
        request: Request<pb::GetOrganizationsRequest>,
    ) -> Reply<pb::GetOrganizationsResponse> {
        let caller = caller(&request).map_err(status)?;
        let by_all = request.get_ref().filter == pb::FilterMode::ByAll as i32;
        let orgs = self.0.workspace.list_organizations().await.map_err(status)?;
        let mut orgs = self.0.gate.visible_organizations(caller, orgs);
        if !by_all {
            orgs.retain(|o| o.members.contains_key(caller.username()));
        }
        ok(pb::GetOrganizationsResponse { organizations: orgs.iter().map(organization_to).collect() })
    }

    pub(crate) async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Reply<pb::GetOrganizationResponse> {
        let org = self.0.workspace.get_organization(&request.get_ref().name).await.map_err(status)?;
        ok(pb::GetOrganizationResponse { organization: Some(organization_to(&org)), status: None })
    }

    pub(crate) async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Reply<pb::CreateOrganizationResponse> {
        let caller = caller(&request).map_err(status)?.clone();
        let r = request.into_inner();
        if !r.user.is_empty() && r.user != caller.username() && !caller.is_admin() {
            return Err(status(Error::PermissionDenied(format!(
                "you are {}; only administrators may create organizations for {}",
                caller.username(),
                r.user
            ))));
        }
        let creator = given(&r.user).unwrap_or_else(|| caller.username().to_owned());
        let o = r.organization.ok_or_else(|| status(Error::invalid("organization", "missing")))?;
        let new = NewOrganization {
            name: o.name,
            description: o.description,
            access_mode: access_mode_from("organization.access_mode", o.access_mode).map_err(status)?,
            category: o.category,
            subcategory: o.subcategory,
        };
        self.0.workspace.create_organization(&creator, caller.is_admin(), new).await.map_err(status)?;
        ok(pb::CreateOrganizationResponse {})
    }

    pub(crate) async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Reply<pb::UpdateOrganizationResponse> {
        let caller = caller(&request).map_err(status)?.clone();
        let r = request.into_inner();
        let state = match &r.state {
            Some(s) => {
                Some(user_state_from("state", s.value).map_err(status)?).filter(|s| *s != UserState::NotSet)
            }
            None => None,
        };
        if state.is_some() && !caller.is_admin() {
            return Err(status(Error::PermissionDenied(
                "only portal administrators change an organization's state".to_owned(),
            )));
        }
        let update = OrganizationUpdate {
            description: r.description.map(|d| d.value),
            access_mode: match &r.access_mode {
                Some(m) => Some(access_mode_from("access_mode", m.value).map_err(status)?),
                None => None,
            },
            state,
            category: given(&r.category),
            subcategory: given(&r.subcategory),
        };
        let ws = &self.0.workspace;
        ws.update_organization(&r.name, update).await.map_err(status)?;
        for (kind, changes) in [(MembershipKind::User, r.members), (MembershipKind::Project, r.projects)] {
            let Some(changes) = changes else { continue };
            for (id, m) in &changes.set {
                let member = member_from("members.set", m).map_err(status)?;
                ws.set_organization_membership(
                    &r.name,
                    kind,
                    id,
                    Some(member),
                    caller.username(),
                    caller.is_admin(),
                )
                .await
                .map_err(status)?;
            }
            for id in &changes.remove {
                ws.set_organization_membership(&r.name, kind, id, None, caller.username(), caller.is_admin())
                    .await
                    .map_err(status)?;
            }
        }
        ok(pb::UpdateOrganizationResponse {})
    }

    pub(crate) async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Reply<pb::DeleteOrganizationResponse> {
        self.0.workspace.delete_organization(&request.get_ref().name).await.map_err(status)?;
        ok(pb::DeleteOrganizationResponse {})
    }

    pub(crate) async fn set_organization_state(
        &self,
        org: &str,
        state: UserState,
    ) -> Result<(), tonic::Status> {
        let update = OrganizationUpdate { state: Some(state), ..Default::default() };
        self.0.workspace.update_organization(org, update).await.map_err(status)?;
        Ok(())
    }

    pub(crate) async fn request_organization_membership(
        &self,
        request: Request<pb::RequestOrganizationMembershipRequest>,
    ) -> Reply<pb::RequestOrganizationMembershipResponse> {
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let kind = kind_from(r.kind).map_err(status)?;
        let role = member_from("member", &r.member.unwrap_or_default()).map_err(status)?.role;
        let member = self
            .0
            .workspace
            .request_organization_membership(&r.organization, kind, &r.id, role, caller.username())
            .await
            .map_err(status)?;
        ok(pb::RequestOrganizationMembershipResponse { member: Some(member_to(&member)) })
    }

    pub(crate) async fn confirm_organization_membership(
        &self,
        request: Request<pb::ConfirmOrganizationMembershipRequest>,
    ) -> Reply<pb::ConfirmOrganizationMembershipResponse> {
        let caller = caller(&request).map_err(status)?;
        let r = request.get_ref();
        let kind = kind_from(r.kind).map_err(status)?;
        let member = self
            .0
            .workspace
            .confirm_organization_membership(
                &r.organization,
                kind,
                &r.id,
                caller.username(),
                caller.is_admin(),
            )
            .await
            .map_err(status)?;
        ok(pb::ConfirmOrganizationMembershipResponse { member: Some(member_to(&member)) })
    }

    pub(crate) async fn get_organization_member(
        &self,
        request: Request<pb::GetOrganizationMemberRequest>,
    ) -> Reply<pb::GetOrganizationMemberResponse> {
        let r = request.get_ref();
        let org = self.0.workspace.get_organization(&r.organization).await.map_err(status)?;
        let member = org.members.get(&r.username).ok_or_else(|| {
            status(Error::not_found("member", format!("{} of organization {}", r.username, r.organization)))
        })?;
        ok(pb::GetOrganizationMemberResponse { member: Some(member_to(member)) })
    }

    pub(crate) async fn get_organization_members(
        &self,
        request: Request<pb::GetOrganizationMembersRequest>,
    ) -> Reply<pb::GetOrganizationMembersResponse> {
        let org = self.0.workspace.get_organization(&request.get_ref().organization).await.map_err(status)?;
        ok(pb::GetOrganizationMembersResponse { members: org.members.values().map(member_to).collect() })
    }

    pub(crate) async fn update_organization_member(
        &self,
        request: Request<pb::UpdateOrganizationMemberRequest>,
    ) -> Reply<pb::UpdateOrganizationMemberResponse> {
        let r = request.get_ref();
        let ws = &self.0.workspace;
        let org = ws.get_organization(&r.organization).await.map_err(status)?;
        if !org.members.contains_key(&r.username) {
            return Err(status(Error::not_found(
                "member",
                format!("{} of organization {}", r.username, r.organization),
            )));
        }
        let member = member_from("member", &r.member.unwrap_or_default()).map_err(status)?;
        let stored = self
            .set_membership(&request, &r.organization, MembershipKind::User, &r.username, Some(member))
            .await?;
        ok(pb::UpdateOrganizationMemberResponse { member: stored.as_ref().map(member_to) })
    }

    pub(crate) async fn delete_organization_member(
        &self,
        request: Request<pb::DeleteOrganizationMemberRequest>,
    ) -> Reply<pb::DeleteOrganizationMemberResponse> {
        let r = request.get_ref();
        self.set_membership(&request, &r.organization, MembershipKind::User, &r.username, None).await?;
        ok(pb::DeleteOrganizationMemberResponse {})
    }

    pub(crate) async fn get_organization_project(
        &self,
        request: Request<pb::GetOrganizationProjectRequest>,
    ) -> Reply<pb::GetOrganizationProjectResponse> {
        let r = request.get_ref();
        let org = self.0.workspace.get_organization(&r.organization).await.map_err(status)?;
        let member = org.projects.get(&r.project).ok_or_else(|| {
            status(Error::not_found("project", format!("{} in organization {}", r.project, r.organization)))
        })?;
        ok(pb::GetOrganizationProjectResponse { member: Some(member_to(member)) })
    }

    pub(crate) async fn get_organization_projects(
        &self,
        request: Request<pb::GetOrganizationProjectsRequest>,
    ) -> Reply<pb::GetOrganizationProjectsResponse> {
        let org = self.0.workspace.get_organization(&request.get_ref().name).await.map_err(status)?;
        ok(pb::GetOrganizationProjectsResponse { projects: org.projects.values().map(member_to).collect() })
    }

    pub(crate) async fn add_organization_project(
        &self,
        request: Request<pb::AddOrganizationProjectRequest>,
    ) -> Reply<pb::AddOrganizationProjectResponse> {
        let r = request.get_ref();
        let member = member_from("member", &r.member.unwrap_or_default()).map_err(status)?;
        self.set_membership(&request, &r.organization, MembershipKind::Project, &r.project, Some(member))
            .await?;
        ok(pb::AddOrganizationProjectResponse {})
    }

    pub(crate) async fn update_organization_project(
        &self,
        request: Request<pb::UpdateOrganizationProjectRequest>,
    ) -> Reply<pb::UpdateOrganizationProjectResponse> {
        let r = request.get_ref();
        let member = member_from("member", &r.member.unwrap_or_default()).map_err(status)?;
        self.set_membership(&request, &r.organization, MembershipKind::Project, &r.project, Some(member))
            .await?;
        ok(pb::UpdateOrganizationProjectResponse {})
    }

    pub(crate) async fn delete_organization_project(
        &self,
        request: Request<pb::DeleteOrganizationProjectRequest>,
    ) -> Reply<pb::DeleteOrganizationProjectResponse> {
        let r = request.get_ref();
        self.set_membership(&request, &r.organization, MembershipKind::Project, &r.project, None).await?;
        ok(pb::DeleteOrganizationProjectResponse {})
    }
}
