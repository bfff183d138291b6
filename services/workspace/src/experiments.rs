//! Experiments: named, versioned network models inside a project.

use trellis_types::{AccessMode, Error, Experiment, Project, User, validate_name};

use crate::keys;
use crate::tx::{Tx, load, load_all, load_required, retrying};
use crate::{Workspace, now_unix};

/// An experiment to create.
#[derive(Debug, Clone, Default)]
pub struct NewExperiment {
    pub name: String,
    pub project: String,
    pub description: String,
    pub access_mode: AccessMode,
}

/// Changes to an experiment; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ExperimentUpdate {
    pub description: Option<String>,
    pub access_mode: Option<AccessMode>,
    pub creator: Option<String>,
    pub maintainers: Option<Vec<String>>,
}

fn dotted(experiment: &str, project: &str) -> String {
    format!("{experiment}.{project}")
}

impl Workspace {
    /// Creates an experiment in a project, with `creator` as creator and first maintainer.
    pub async fn create_experiment(&self, creator: &str, new: NewExperiment) -> Result<Experiment, Error> {
        validate_name("experiment", &new.name)?;
        validate_name("project", &new.project)?;
        let (store, new) = (self.store.as_ref(), &new);
        retrying("create experiment", || async move {
            let project =
                load_required::<Project>(store, &keys::project(&new.project), "project", &new.project)
                    .await?;
            if load::<Experiment>(store, &keys::experiment(&new.project, &new.name)).await?.is_some() {
                return Err(Error::already_exists("experiment", dotted(&new.name, &new.project)));
            }
            let user = load_required::<User>(store, &keys::user(creator), "user", creator).await?;
            let experiment = Experiment {
                name: new.name.clone(),
                project: new.project.clone(),
                description: new.description.clone(),
                access_mode: new.access_mode,
                creator: creator.to_owned(),
                maintainers: vec![creator.to_owned()],
                created: now_unix(),
            };
            // Guard (not rewrite) the project and creator: experiments in one project are created
            // concurrently without conflicting, yet never outlive a project or user deleted
            // meanwhile.
            let mut tx = Tx::new();
            tx.create(&keys::experiment(&new.project, &new.name), &experiment)?;
            tx.guard(&keys::project(&new.project), project.revision);
            tx.guard(&keys::user(creator), user.revision);
            Ok(tx.commit(store).await?.then(|| experiment.clone()))
        })
        .await
    }

    /// Reads an experiment.
    pub async fn get_experiment(&self, project: &str, name: &str) -> Result<Experiment, Error> {
        Ok(load_required::<Experiment>(
            self.store.as_ref(),
            &keys::experiment(project, name),
            "experiment",
            &dotted(name, project),
        )
        .await?
        .value)
    }

    /// Reads an experiment if it exists.
    pub async fn find_experiment(&self, project: &str, name: &str) -> Result<Option<Experiment>, Error> {
        Ok(load::<Experiment>(self.store.as_ref(), &keys::experiment(project, name)).await?.map(|v| v.value))
    }

    /// Reads every experiment.
    pub async fn list_experiments(&self) -> Result<Vec<Experiment>, Error> {
        Ok(load_all::<Experiment>(self.store.as_ref(), keys::EXPERIMENTS)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Applies `update` to an experiment. A new creator or maintainers must be project members.
    pub async fn update_experiment(
        &self,
        project: &str,
        name: &str,
        update: ExperimentUpdate,
    ) -> Result<Experiment, Error> {
        let (store, update) = (self.store.as_ref(), &update);
        retrying("update experiment", || async move {
            let key = keys::experiment(project, name);
            let mut experiment =
                load_required::<Experiment>(store, &key, "experiment", &dotted(name, project)).await?;
            let p = load_required::<Project>(store, &keys::project(project), "project", project).await?;
            let people = update.creator.iter().chain(update.maintainers.iter().flatten());
            if let Some(outsider) = people.into_iter().find(|u| p.value.active_role(u).is_none()) {
                return Err(Error::invalid(
                    "maintainers",
                    format!("{outsider} is not an active member of project {project}"),
                ));
            }
            let e = &mut experiment.value;
            if let Some(d) = &update.description {
                e.description.clone_from(d);
            }
            if let Some(m) = update.access_mode {
                e.access_mode = m;
            }
            if let Some(c) = &update.creator {
                e.creator.clone_from(c);
            }
            if let Some(m) = &update.maintainers {
                e.maintainers.clone_from(m);
            }
            let mut tx = Tx::new();
            tx.guard(&keys::project(project), p.revision);
            tx.update(&key, &experiment)?;
            Ok(tx.commit(store).await?.then(|| experiment.value.clone()))
        })
        .await
    }

    /// Deletes an experiment, together with `also` (other services' records of it, such as its
    /// model revisions) in the same transaction.
    pub async fn delete_experiment(
        &self,
        project: &str,
        name: &str,
        also: &[trellis_store::Op],
    ) -> Result<(), Error> {
        let store = self.store.as_ref();
        retrying("delete experiment", || async move {
            let key = keys::experiment(project, name);
            let experiment =
                load_required::<Experiment>(store, &key, "experiment", &dotted(name, project)).await?;
            let mut tx = Tx::new();
            tx.guard(&key, experiment.revision);
            tx.delete(&key);
            for op in also {
                tx.op(op.clone());
            }
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }
}
