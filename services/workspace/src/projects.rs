//! Projects and their members.

use trellis_types::{
    AccessMode, Error, Experiment, Member, MemberRole, MemberState, Organization, Project, User, UserState,
    validate_name,
};

use crate::keys;
use crate::tx::{Tx, Versioned, load, load_all, load_required, retrying, store_error};
use crate::{Workspace, now_unix};

/// A project to create.
#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub name: String,
    pub description: String,
    pub access_mode: AccessMode,
    pub organization: Option<String>,
    pub category: String,
    pub subcategory: String,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub description: Option<String>,
    pub access_mode: Option<AccessMode>,
    pub state: Option<UserState>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
}

impl Workspace {
    /// Creates a project with `creator` as its Creator.
    pub async fn create_project(&self, creator: &str, new: NewProject) -> Result<Project, Error> {
        validate_name("project", &new.name)?;
        let (store, new) = (self.store.as_ref(), &new);
        retrying("create project", || async move {
            if load::<Project>(store, &keys::project(&new.name)).await?.is_some() {
                return Err(Error::already_exists("project", &new.name));
            }
            if store.get(&keys::user(&new.name)).await.map_err(store_error)?.is_some() {
                return Err(Error::invalid(
                    "project",
                    format!("{} is a username (reserved for that user's personal project)", new.name),
                ));
            }
            let mut user = load_required::<User>(store, &keys::user(creator), "user", creator).await?;
            let next: Option<Versioned<u32>> = load(store, keys::NEXT_ID).await?;
            let gid = next.as_ref().map_or(self.config.first_uid, |n| n.value);
            let mut tx = Tx::new();
            let mut project = Project {
                name: new.name.clone(),
                description: new.description.clone(),
                access_mode: new.access_mode,
                gid,
                members: [(creator.to_owned(), Member::active(MemberRole::Creator))].into(),
                category: new.category.clone(),
                subcategory: new.subcategory.clone(),
                state: UserState::Active,
                created: now_unix(),
                ..Default::default()
            };
            if let Some(org_name) = new.organization.as_deref().filter(|o| !o.is_empty()) {
                let mut org = load_required::<Organization>(
                    store,
                    &keys::organization(org_name),
                    "organization",
                    org_name,
                )
                .await?;
                let Some(role) = org.value.active_role(creator) else {
                    return Err(Error::PermissionDenied(format!(
                        "{creator} is not an active member of organization {org_name}"
                    )));
                };
                // A maintainer's project joins at once; a plain member's waits for a maintainer.
                let state = if role >= MemberRole::Maintainer {
                    MemberState::Active
                } else {
                    MemberState::MemberRequested
                };
                let membership = Member { role: MemberRole::Member, state };
                org.value.projects.insert(new.name.clone(), membership);
                project.organization = Some(org_name.to_owned());
                project.org_membership = Some(membership);
                tx.update(&keys::organization(org_name), &org)?;
            }
            user.value.projects.insert(new.name.clone(), Member::active(MemberRole::Creator));
            tx.create(&keys::project(&new.name), &project)?;
            tx.update(&keys::user(creator), &user)?;
            tx.guard(keys::NEXT_ID, next.as_ref().map_or(0, |n| n.revision));
            tx.put(keys::NEXT_ID, &(gid + 1))?;
            Ok(tx.commit(store).await?.then(|| project.clone()))
        })
        .await
    }

    /// Reads a project's record (its `experiments` left empty: deriving them reads every
    /// experiment of the project, which authorization checks must not pay for).
    pub async fn get_project(&self, name: &str) -> Result<Project, Error> {
        Ok(load_required::<Project>(self.store.as_ref(), &keys::project(name), "project", name).await?.value)
    }

    /// Reads a project with its experiment names (what `GetProject` answers).
    pub async fn project_with_experiments(&self, name: &str) -> Result<Project, Error> {
        let mut project = self.get_project(name).await?;
        project.experiments = self.experiment_names(name).await?;
        Ok(project)
    }

    /// Reads a project's record if it exists (`experiments` left empty, as [`Self::get_project`]).
    pub async fn find_project(&self, name: &str) -> Result<Option<Project>, Error> {
        Ok(load::<Project>(self.store.as_ref(), &keys::project(name)).await?.map(|v| v.value))
    }

    /// Reads every project, with their experiment names.
    pub async fn list_projects(&self) -> Result<Vec<Project>, Error> {
        let mut by_project: std::collections::HashMap<String, Vec<String>> = Default::default();
        for e in load_all::<Experiment>(self.store.as_ref(), keys::EXPERIMENTS).await? {
            by_project.entry(e.value.project).or_default().push(e.value.name);
        }
        Ok(load_all::<Project>(self.store.as_ref(), keys::PROJECTS)
            .await?
            .into_iter()
            .map(|v| {
                let mut project = v.value;
                project.experiments = by_project.remove(&project.name).unwrap_or_default();
                project
            })
            .collect())
    }

    /// Names of a project's experiments (derived from their keys, never stored in the project).
    async fn experiment_names(&self, project: &str) -> Result<Vec<String>, Error> {
        Ok(load_all::<Experiment>(self.store.as_ref(), &keys::project_experiments(project))
            .await?
            .into_iter()
            .map(|e| e.value.name)
            .collect())
    }

    /// Applies `update` to a project.
    pub async fn update_project(&self, name: &str, update: ProjectUpdate) -> Result<Project, Error> {
        if update.state == Some(UserState::NotSet) {
            return Err(Error::invalid("state", "NotSet is not a state a project can be put in"));
        }
        let (store, update) = (self.store.as_ref(), &update);
        retrying("update project", || async move {
            let mut project = load_required::<Project>(store, &keys::project(name), "project", name).await?;
            let p = &mut project.value;
            if let Some(d) = &update.description {
                p.description.clone_from(d);
            }
            if let Some(m) = update.access_mode {
                p.access_mode = m;
            }
            if let Some(s) = update.state {
                p.state = s;
            }
            if let Some(c) = &update.category {
                p.category.clone_from(c);
            }
            if let Some(c) = &update.subcategory {
                p.subcategory.clone_from(c);
            }
            let mut tx = Tx::new();
            tx.update(&keys::project(name), &project)?;
            Ok(tx.commit(store).await?.then(|| project.value.clone()))
        })
        .await
    }

    /// Deletes a project that holds no experiments, removing it from its members and organization.
    pub async fn delete_project(&self, name: &str) -> Result<(), Error> {
        let store = self.store.as_ref();
        retrying("delete project", || async move {
            let project = load_required::<Project>(store, &keys::project(name), "project", name).await?;
            if project.value.personal {
                return Err(Error::FailedPrecondition(format!(
                    "{name} is a personal project; it goes when its user is deleted"
                )));
            }
            let experiments = load_all::<Experiment>(store, &keys::project_experiments(name)).await?;
            if !experiments.is_empty() {
                let names: Vec<_> = experiments.iter().map(|e| e.value.name.as_str()).collect();
                return Err(Error::FailedPrecondition(format!(
                    "project {name} still has experiments ({}); delete them first",
                    names.join(", ")
                )));
            }
            let mut tx = Tx::new();
            tx.guard(&keys::project(name), project.revision);
            tx.delete(&keys::project(name));
            // An experiment created between the check above and this commit goes with the
            // project rather than being left without one.
            tx.delete_prefix(&keys::project_experiments(name));
            for member in project.value.members.keys() {
                if let Some(mut user) = load::<User>(store, &keys::user(member)).await? {
                    user.value.projects.remove(name);
                    tx.update(&keys::user(member), &user)?;
                }
            }
            if let Some(org_name) = &project.value.organization
                && let Some(mut org) = load::<Organization>(store, &keys::organization(org_name)).await?
            {
                org.value.projects.remove(name);
                tx.update(&keys::organization(org_name), &org)?;
            }
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }

    /// Adds `username` to a project. Only one Creator exists per project, so that role cannot be
    /// granted here.
    pub async fn add_project_member(
        &self,
        project: &str,
        username: &str,
        member: Member,
    ) -> Result<(), Error> {
        if member.role == MemberRole::Creator {
            return Err(Error::invalid(
                "member.role",
                "a project has exactly one Creator; add as Maintainer or Member",
            ));
        }
        self.write_project_member(project, username, "add project member", |existing| match existing {
            Some(_) => Err(Error::already_exists("member", format!("{username} of project {project}"))),
            None => Ok(Some(Member { role: member.role, state: MemberState::Active })),
        })
        .await
    }

    /// Changes a member's role or state.
    pub async fn update_project_member(
        &self,
        project: &str,
        username: &str,
        member: Member,
    ) -> Result<(), Error> {
        self.write_project_member(project, username, "update project member", |existing| match existing {
            None => Err(Error::not_found("member", format!("{username} of project {project}"))),
            Some(m) if m.role == MemberRole::Creator && member.role != MemberRole::Creator => {
                Err(Error::FailedPrecondition(format!(
                    "{username} created project {project}; the Creator role stays"
                )))
            }
            Some(m) if m.role != MemberRole::Creator && member.role == MemberRole::Creator => {
                Err(Error::invalid("member.role", "a project has exactly one Creator; use Maintainer"))
            }
            Some(_) => Ok(Some(member)),
        })
        .await
    }

    /// Removes a member (never the Creator).
    pub async fn delete_project_member(&self, project: &str, username: &str) -> Result<(), Error> {
        self.write_project_member(project, username, "delete project member", |existing| match existing {
            None => Err(Error::not_found("member", format!("{username} of project {project}"))),
            Some(m) if m.role == MemberRole::Creator => Err(Error::FailedPrecondition(format!(
                "{username} created project {project} and cannot be removed from it"
            ))),
            Some(_) => Ok(None),
        })
        .await
    }

    /// Reads one membership.
    pub async fn project_member(&self, project: &str, username: &str) -> Result<Member, Error> {
        let p = self.get_project(project).await?;
        p.members
            .get(username)
            .copied()
            .ok_or_else(|| Error::not_found("member", format!("{username} of project {project}")))
    }

    /// Reads a project's experiments.
    pub async fn project_experiments(&self, project: &str) -> Result<Vec<Experiment>, Error> {
        self.get_project(project).await?;
        Ok(load_all::<Experiment>(self.store.as_ref(), &keys::project_experiments(project))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Rewrites one membership in both the project and the user, atomically. `decide` maps the
    /// current membership to the new one (`None` removes it).
    async fn write_project_member(
        &self,
        project: &str,
        username: &str,
        what: &str,
        decide: impl Fn(Option<&Member>) -> Result<Option<Member>, Error>,
    ) -> Result<(), Error> {
        let (store, decide) = (self.store.as_ref(), &decide);
        retrying(what, || async move {
            let mut p = load_required::<Project>(store, &keys::project(project), "project", project).await?;
            let mut user = load_required::<User>(store, &keys::user(username), "user", username).await?;
            match decide(p.value.members.get(username))? {
                Some(m) => {
                    p.value.members.insert(username.to_owned(), m);
                    user.value.projects.insert(project.to_owned(), m);
                }
                None => {
                    p.value.members.remove(username);
                    user.value.projects.remove(project);
                }
            }
            let mut tx = Tx::new();
            tx.update(&keys::project(project), &p)?;
            tx.update(&keys::user(username), &user)?;
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }
}
