//! Workspace RPCs about projects, their members and experiments.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_types::{Error, UserState};
use trellis_workspace::experiments::{ExperimentUpdate, NewExperiment};
use trellis_workspace::projects::{NewProject, ProjectUpdate};

use super::workspace::WorkspaceApi;
use super::{Reply, ok};
use crate::authz::{Caller, caller};
use crate::convert::{
    access_mode_from, experiment_to, given, member_from, member_to, project_to, user_state_from,
};
use crate::status::status;

/// The creator named in a create request must be the caller, unless an administrator acts for
/// someone else.
fn acting_as(caller: &Caller, named: &str) -> Result<String, Error> {
    if named.is_empty() || named == caller.username() {
        Ok(caller.username().to_owned())
    } else if caller.is_admin() {
        Ok(named.to_owned())
    } else {
        Err(Error::PermissionDenied(format!(
            "you are {}; only administrators may create objects for {named}",
            caller.username()
        )))
    }
}

impl WorkspaceApi {
    pub(crate) async fn get_projects(
        &self,
        request: Request<pb::GetProjectsRequest>,
    ) -> Reply<pb::GetProjectsResponse> {
        let caller = caller(&request).map_err(status)?;
        let by_all = request.get_ref().filter == pb::FilterMode::ByAll as i32;
        let projects = self.0.workspace.list_projects().await.map_err(status)?;
        let mut projects = self.0.gate.visible_projects(caller, projects).await.map_err(status)?;
        if !by_all {
            projects.retain(|p| p.members.contains_key(caller.username()));
        }
        ok(pb::GetProjectsResponse { projects: projects.iter().map(project_to).collect() })
    }

    pub(crate) async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Reply<pb::GetProjectResponse> {
        let project =
            self.0.workspace.project_with_experiments(&request.get_ref().name).await.map_err(status)?;
        ok(pb::GetProjectResponse { project: Some(project_to(&project)), status: None })
    }

    pub(crate) async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Reply<pb::CreateProjectResponse> {
        let creator =
            acting_as(caller(&request).map_err(status)?, &request.get_ref().user).map_err(status)?;
        let p = request.into_inner().project.ok_or_else(|| status(Error::invalid("project", "missing")))?;
        let new = NewProject {
            name: p.name,
            description: p.description,
            access_mode: access_mode_from("project.access_mode", p.access_mode).map_err(status)?,
            organization: given(&p.organization),
            category: p.category,
            subcategory: p.subcategory,
        };
        self.0.workspace.create_project(&creator, new).await.map_err(status)?;
        ok(pb::CreateProjectResponse {})
    }

    pub(crate) async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Reply<pb::UpdateProjectResponse> {
        let caller = caller(&request).map_err(status)?.clone();
        let r = request.into_inner();
        if r.organization.as_ref().is_some_and(|m| !m.set.is_empty() || !m.remove.is_empty()) {
            return Err(status(Error::invalid(
                "organization",
                "projects join or leave organizations through the organization membership calls",
            )));
        }
        let state = match &r.state {
            Some(s) => {
                Some(user_state_from("state", s.value).map_err(status)?).filter(|s| *s != UserState::NotSet)
            }
            None => None,
        };
        if state.is_some() && !caller.is_admin() {
            return Err(status(Error::PermissionDenied(
                "only portal administrators change a project's state".to_owned(),
            )));
        }
        let update = ProjectUpdate {
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
        ws.update_project(&r.name, update).await.map_err(status)?;
        if let Some(members) = r.members {
            for (username, m) in &members.set {
                let member = member_from("members.set", m).map_err(status)?;
                let result = match ws.project_member(&r.name, username).await {
                    Ok(_) => ws.update_project_member(&r.name, username, member).await,
                    Err(Error::NotFound { .. }) => ws.add_project_member(&r.name, username, member).await,
                    Err(e) => Err(e),
                };
                result.map_err(status)?;
            }
            for username in &members.remove {
                ws.delete_project_member(&r.name, username).await.map_err(status)?;
            }
        }
        ok(pb::UpdateProjectResponse {})
    }

    pub(crate) async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Reply<pb::DeleteProjectResponse> {
        self.0.workspace.delete_project(&request.get_ref().name).await.map_err(status)?;
        ok(pb::DeleteProjectResponse {})
    }

    pub(crate) async fn set_project_state(
        &self,
        project: &str,
        state: UserState,
    ) -> Result<(), tonic::Status> {
        let update = ProjectUpdate { state: Some(state), ..Default::default() };
        self.0.workspace.update_project(project, update).await.map_err(status)?;
        Ok(())
    }

    pub(crate) async fn get_project_members(
        &self,
        request: Request<pb::GetProjectMembersRequest>,
    ) -> Reply<pb::GetProjectMembersResponse> {
        let project = self.0.workspace.get_project(&request.get_ref().name).await.map_err(status)?;
        ok(pb::GetProjectMembersResponse { members: project.members.values().map(member_to).collect() })
    }

    pub(crate) async fn get_project_member(
        &self,
        request: Request<pb::GetProjectMemberRequest>,
    ) -> Reply<pb::GetProjectMemberResponse> {
        let r = request.get_ref();
        let member = self.0.workspace.project_member(&r.project, &r.member).await.map_err(status)?;
        ok(pb::GetProjectMemberResponse { member: Some(member_to(&member)) })
    }

    pub(crate) async fn add_project_member(
        &self,
        request: Request<pb::AddProjectMemberRequest>,
    ) -> Reply<pb::AddProjectMemberResponse> {
        let r = request.get_ref();
        let member = member_from("member", &r.member.unwrap_or_default()).map_err(status)?;
        self.0.workspace.add_project_member(&r.project, &r.username, member).await.map_err(status)?;
        ok(pb::AddProjectMemberResponse {})
    }

    pub(crate) async fn update_project_member(
        &self,
        request: Request<pb::UpdateProjectMemberRequest>,
    ) -> Reply<pb::UpdateProjectMemberResponse> {
        let r = request.get_ref();
        let member = member_from("member", &r.member.unwrap_or_default()).map_err(status)?;
        self.0.workspace.update_project_member(&r.project, &r.username, member).await.map_err(status)?;
        ok(pb::UpdateProjectMemberResponse {})
    }

    pub(crate) async fn delete_project_member(
        &self,
        request: Request<pb::DeleteProjectMemberRequest>,
    ) -> Reply<pb::DeleteProjectMemberResponse> {
        let r = request.get_ref();
        self.0.workspace.delete_project_member(&r.project, &r.member).await.map_err(status)?;
        ok(pb::DeleteProjectMemberResponse {})
    }

    pub(crate) async fn get_project_experiments(
        &self,
        request: Request<pb::GetProjectExperimentsRequest>,
    ) -> Reply<pb::GetProjectExperimentsResponse> {
        let caller = caller(&request).map_err(status)?;
        let experiments =
            self.0.workspace.project_experiments(&request.get_ref().project).await.map_err(status)?;
        let experiments = self.0.gate.visible_experiments(caller, experiments).await.map_err(status)?;
        ok(pb::GetProjectExperimentsResponse { experiments: experiments.iter().map(experiment_to).collect() })
    }

    // === experiments ===

    pub(crate) async fn get_experiments(
        &self,
        request: Request<pb::GetExperimentsRequest>,
    ) -> Reply<pb::GetExperimentsResponse> {
        let caller = caller(&request).map_err(status)?;
        let by_all = request.get_ref().filter == pb::FilterMode::ByAll as i32;
        let experiments = self.0.workspace.list_experiments().await.map_err(status)?;
        let mut experiments = self.0.gate.visible_experiments(caller, experiments).await.map_err(status)?;
        if !by_all {
            experiments.retain(|e| caller.user.projects.get(&e.project).is_some_and(|m| m.is_active()));
        }
        ok(pb::GetExperimentsResponse { experiments: experiments.iter().map(experiment_to).collect() })
    }

    pub(crate) async fn get_experiment(
        &self,
        request: Request<pb::GetExperimentRequest>,
    ) -> Reply<pb::GetExperimentResponse> {
        let r = request.get_ref();
        let experiment = self.0.workspace.get_experiment(&r.project, &r.experiment).await.map_err(status)?;
        let mut models = std::collections::HashMap::new();
        let mut wire = experiment_to(&experiment);
        if r.with_models
            && let Some(service) = &self.0.models
        {
            let (revisions, _) = service.revisions(&r.project, &r.experiment).await.map_err(status)?;
            // Only revisions that compiled are ever stored; the networks themselves are fetched
            // one at a time with GetRevision. Merge lists each revision's push time in the
            // experiment's own `models` map, which is what orders revisions for clients.
            for revision in revisions {
                let pushed = pb::ExperimentModel {
                    compiled: true,
                    msg: format!("pushed by {}", revision.pushed_by),
                    compile_time: Some(prost_types::Timestamp { seconds: revision.pushed_at, nanos: 0 }),
                    ..Default::default()
                };
                wire.models.insert(revision.id.clone(), pushed);
                models.insert(revision.id, pb::XpNetModel { compiled: true, model: None });
            }
        }
        ok(pb::GetExperimentResponse { experiment: Some(wire), models, status: None })
    }

    pub(crate) async fn create_experiment(
        &self,
        request: Request<pb::CreateExperimentRequest>,
    ) -> Reply<pb::CreateExperimentResponse> {
        let caller = caller(&request).map_err(status)?;
        let e = request
            .get_ref()
            .experiment
            .clone()
            .ok_or_else(|| status(Error::invalid("experiment", "missing")))?;
        let creator = acting_as(caller, &e.creator).map_err(status)?;
        let new = NewExperiment {
            name: e.name,
            project: e.project,
            description: e.description,
            access_mode: access_mode_from("experiment.access_mode", e.access_mode).map_err(status)?,
        };
        self.0.workspace.create_experiment(&creator, new).await.map_err(status)?;
        ok(pb::CreateExperimentResponse {})
    }

    pub(crate) async fn update_experiment(
        &self,
        request: Request<pb::UpdateExperimentRequest>,
    ) -> Reply<pb::UpdateExperimentResponse> {
        let r = request.into_inner();
        let update = ExperimentUpdate {
            description: r.description.map(|d| d.value),
            access_mode: match &r.access_mode {
                Some(m) => Some(access_mode_from("access_mode", m.value).map_err(status)?),
                None => None,
            },
            creator: given(&r.creator),
            maintainers: (!r.maintainers.is_empty()).then_some(r.maintainers),
        };
        self.0.workspace.update_experiment(&r.project, &r.name, update).await.map_err(status)?;
        ok(pb::UpdateExperimentResponse {})
    }

    pub(crate) async fn delete_experiment(
        &self,
        request: Request<pb::DeleteExperimentRequest>,
    ) -> Reply<pb::DeleteExperimentResponse> {
        let r = request.get_ref();
        // The experiment's revisions go in the same transaction; their large compiled models in
        // the blob store are left for blob garbage collection.
        let also = [trellis_model::ModelService::delete_op(&r.project, &r.experiment)];
        self.0.workspace.delete_experiment(&r.project, &r.experiment, &also).await.map_err(status)?;
        ok(pb::DeleteExperimentResponse {})
    }
}
