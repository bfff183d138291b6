//! The gate: the policy decision for one caller, one operation and one object.

use std::collections::HashMap;

use trellis_policy::{
    AccessMode as PolicyMode, AccessRequest, Entity, Operation, PolicyHandle, Relations, Role, Scope,
};
use trellis_types::{AccessMode, Error, Experiment, Organization, Project, User, UserState};
use trellis_workspace::Workspace;
use trellis_workspace::access::{
    Subject, experiment_relations, organization_relations, project_relations, user_relations,
};

use super::Caller;

/// The object an operation concerns, as named by the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user account.
    User(String),
    /// A user's identity (credentials).
    Identity(String),
    /// An existing project.
    Project(String),
    /// A project about to be created (in an organization, with an access mode).
    NewProject { organization: Option<String>, mode: AccessMode },
    /// An existing organization.
    Organization(String),
    /// An organization about to be created.
    NewOrganization { mode: AccessMode },
    /// An existing experiment.
    Experiment { project: String, name: String },
    /// An experiment about to be created in a project.
    NewExperiment { project: String, mode: AccessMode },
    /// An existing XDC: the project's mode and relations, plus `User.Self` for its creator.
    Xdc { project: String, name: String },
    /// An XDC about to be created in a project.
    NewXdc { project: String },
    /// Portal-wide objects no user, project or organization owns (facilities, pools): only
    /// `Any.Any` grants and administrators apply.
    Portal,
}

fn mode(m: AccessMode) -> PolicyMode {
    match m {
        AccessMode::Public => PolicyMode::Public,
        AccessMode::Protected => PolicyMode::Protected,
        AccessMode::Private => PolicyMode::Private,
    }
}

/// Whether whoever asks is a portal administrator.
trait Admin {
    fn is_admin(&self) -> bool;
}

impl Admin for Caller {
    fn is_admin(&self) -> bool {
        self.subject.admin
    }
}

/// An account being decided for, with or without a token.
struct Who<'a> {
    subject: &'a Subject,
    user: &'a User,
}

impl Admin for Who<'_> {
    fn is_admin(&self) -> bool {
        self.subject.admin
    }
}

/// Decides with the current policy and the workspace's facts.
#[derive(Clone)]
pub struct Gate {
    workspace: Workspace,
    policy: PolicyHandle,
}

impl Gate {
    /// A gate over `workspace` governed by `policy`.
    pub fn new(workspace: Workspace, policy: PolicyHandle) -> Gate {
        Gate { workspace, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    fn decide(
        &self,
        caller: &impl Admin,
        entity: Entity,
        access_mode: AccessMode,
        operation: Operation,
        relations: &Relations,
    ) -> Result<(), Error> {
        let policy = self.policy.current();
        let decision = policy.decide(&AccessRequest {
            entity,
            mode: mode(access_mode),
            operation,
            admin: caller.is_admin(),
            relations,
        });
        if decision.allowed { Ok(()) } else { Err(Error::PermissionDenied(decision.reason().to_owned())) }
    }

    /// Allows `operation` on `target` for `caller`, or says why not.
    pub async fn check(
        &self,
        caller: &Caller,
        entity: Entity,
        operation: Operation,
        target: &Target,
    ) -> Result<(), Error> {
        self.check_account(&caller.user, entity, operation, target).await
    }

    /// The same decision for an account that did not come with an API token (an SSH login at
    /// the jump host, a session at the XDC web proxy). The account's state is the caller's to
    /// check.
    pub async fn check_account(
        &self,
        account: &User,
        entity: Entity,
        operation: Operation,
        target: &Target,
    ) -> Result<(), Error> {
        let ws = &self.workspace;
        let subject = &Subject { username: account.username.clone(), admin: account.admin };
        let caller = Who { subject, user: account };
        let caller = &caller;
        let (access_mode, relations) = match target {
            Target::User(name) => {
                let user = ws.get_user(name).await?;
                // Only organizations both belong to can relate them: read just those, not all.
                let mut approved_orgs = Vec::new();
                for name in user.organizations.keys().filter(|o| caller.user.organizations.contains_key(*o)) {
                    if ws.find_organization(name).await?.is_some_and(|o| o.state == UserState::Active) {
                        approved_orgs.push(name.clone());
                    }
                }
                let approved = |o: &str| approved_orgs.iter().any(|a| a == o);
                (user.access_mode, user_relations(subject, Some(caller.user), &user, &approved))
            }
            Target::Identity(name) => {
                ws.get_user(name).await?;
                let relations = if *name == subject.username {
                    Relations::new().with(Scope::User, Role::Self_)
                } else {
                    Relations::new()
                };
                (AccessMode::Private, relations)
            }
            Target::Project(name) => {
                let project = ws.get_project(name).await?;
                Self::usable(caller, &project)?;
                let org = self.organization_of(&project).await?;
                (project.access_mode, project_relations(subject, &project, org.as_ref()))
            }
            Target::NewProject { organization, mode } => {
                let relations = match organization {
                    Some(org) => organization_relations(subject, &ws.get_organization(org).await?),
                    None => Relations::new(),
                };
                (*mode, relations)
            }
            Target::Organization(name) => {
                let org = ws.get_organization(name).await?;
                (org.access_mode, organization_relations(subject, &org))
            }
            Target::NewOrganization { mode } => (*mode, Relations::new()),
            Target::Experiment { project, name } => {
                let experiment = ws.get_experiment(project, name).await?;
                let project = ws.get_project(project).await?;
                Self::usable(caller, &project)?;
                let org = self.organization_of(&project).await?;
                (experiment.access_mode, experiment_relations(subject, &experiment, &project, org.as_ref()))
            }
            Target::NewExperiment { project, mode } => {
                let project = ws.get_project(project).await?;
                Self::usable(caller, &project)?;
                let org = self.organization_of(&project).await?;
                (*mode, project_relations(subject, &project, org.as_ref()))
            }
            Target::Xdc { project, name } => {
                let creator = trellis_xdc::creator_of(ws.store().as_ref(), project, name)
                    .await?
                    .ok_or_else(|| Error::not_found("xdc", format!("{name}.{project}")))?;
                let project = ws.get_project(project).await?;
                Self::usable(caller, &project)?;
                let org = self.organization_of(&project).await?;
                let mut relations = project_relations(subject, &project, org.as_ref());
                if creator == subject.username {
                    relations = relations.with(Scope::User, Role::Self_);
                }
                (project.access_mode, relations)
            }
            Target::NewXdc { project } => {
                let project = ws.get_project(project).await?;
                Self::usable(caller, &project)?;
                let org = self.organization_of(&project).await?;
                (project.access_mode, project_relations(subject, &project, org.as_ref()))
            }
            Target::Portal => (AccessMode::Public, Relations::new()),
        };
        self.decide(caller, entity, access_mode, operation, &relations)
    }

    /// Frozen projects are closed to everyone but administrators, whatever the policy says.
    fn usable(caller: &impl Admin, project: &Project) -> Result<(), Error> {
        if project.state == UserState::Frozen && !caller.is_admin() {
            return Err(Error::PermissionDenied(format!(
                "project {} is frozen; contact a portal administrator",
                project.name
            )));
        }
        Ok(())
    }

    async fn organization_of(&self, project: &Project) -> Result<Option<Organization>, Error> {
        match &project.organization {
            Some(org) => self.workspace.find_organization(org).await,
            None => Ok(None),
        }
    }

    /// The users `caller` may read.
    pub async fn visible_users(&self, caller: &Caller, users: Vec<User>) -> Result<Vec<User>, Error> {
        let orgs = self.organizations_by_name().await?;
        let approved = |o: &str| orgs.get(o).is_some_and(|o| o.state == UserState::Active);
        Ok(users
            .into_iter()
            .filter(|u| {
                let relations = user_relations(&caller.subject, Some(&caller.user), u, &approved);
                self.decide(caller, Entity::User, u.access_mode, Operation::Read, &relations).is_ok()
            })
            .collect())
    }

    /// The organizations `caller` may read.
    pub fn visible_organizations(&self, caller: &Caller, orgs: Vec<Organization>) -> Vec<Organization> {
        orgs.into_iter()
            .filter(|o| {
                let relations = organization_relations(&caller.subject, o);
                self.decide(caller, Entity::Organization, o.access_mode, Operation::Read, &relations).is_ok()
            })
            .collect()
    }

    /// The projects `caller` may read.
    pub async fn visible_projects(
        &self,
        caller: &Caller,
        projects: Vec<Project>,
    ) -> Result<Vec<Project>, Error> {
        let orgs = self.organizations_by_name().await?;
        Ok(projects
            .into_iter()
            .filter(|p| {
                let org = p.organization.as_ref().and_then(|o| orgs.get(o));
                let relations = project_relations(&caller.subject, p, org);
                self.decide(caller, Entity::Project, p.access_mode, Operation::Read, &relations).is_ok()
            })
            .collect())
    }

    /// The experiments `caller` may read.
    pub async fn visible_experiments(
        &self,
        caller: &Caller,
        experiments: Vec<Experiment>,
    ) -> Result<Vec<Experiment>, Error> {
        let orgs = self.organizations_by_name().await?;
        let mut projects: HashMap<String, Option<Project>> = HashMap::new();
        let mut visible = Vec::with_capacity(experiments.len());
        for e in experiments {
            if !projects.contains_key(&e.project) {
                let p = self.workspace.find_project(&e.project).await?;
                projects.insert(e.project.clone(), p);
            }
            let Some(Some(project)) = projects.get(&e.project) else { continue };
            let org = project.organization.as_ref().and_then(|o| orgs.get(o));
            let relations = experiment_relations(&caller.subject, &e, project, org);
            if self.decide(caller, Entity::Experiment, e.access_mode, Operation::Read, &relations).is_ok() {
                visible.push(e);
            }
        }
        Ok(visible)
    }

    async fn organizations_by_name(&self) -> Result<HashMap<String, Organization>, Error> {
        Ok(self.workspace.list_organizations().await?.into_iter().map(|o| (o.name.clone(), o)).collect())
    }
}
