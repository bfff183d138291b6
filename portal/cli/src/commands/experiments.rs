//! Experiments, named `<experiment>.<project>`.

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use super::projects::{access_mode, filter};
use crate::cli::{ExperimentRef, Mode};
use crate::error::CliError;
use crate::output::{self, access_mode_name, experiment_json};

/// `trellis new experiment`.
pub async fn create(ctx: &Ctx, name: ExperimentRef, description: String, mode: Mode) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let experiment = pb::Experiment {
        name: name.experiment.clone(),
        project: name.project.clone(),
        description,
        access_mode: access_mode(mode),
        ..Default::default()
    };
    clients.workspace.create_experiment(pb::CreateExperimentRequest { experiment: Some(experiment) }).await?;
    ctx.done(format!("created experiment {name}"))
}

/// `trellis list experiments`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetExperimentsRequest { filter: filter(all) };
    let mut experiments = clients.workspace.get_experiments(request).await?.into_inner().experiments;
    experiments.sort_by(|a, b| (&a.project, &a.name).cmp(&(&b.project, &b.name)));
    let value = json!({ "experiments": experiments.iter().map(experiment_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = experiments
            .iter()
            .map(|e| {
                vec![
                    format!("{}.{}", e.name, e.project),
                    e.description.clone(),
                    access_mode_name(e.access_mode),
                    e.creator.clone(),
                ]
            })
            .collect();
        output::table(&["name", "description", "mode", "creator"], &rows)
    })
}

/// `trellis show experiment`.
pub async fn show(ctx: &Ctx, name: ExperimentRef, models: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetExperimentRequest {
        project: name.project,
        experiment: name.experiment,
        with_models: models,
        status_ms: 0,
    };
    let response = clients.workspace.get_experiment(request).await?.into_inner();
    let e = response.experiment.unwrap_or_default();
    let mut revisions: Vec<String> = response.models.keys().cloned().collect();
    revisions.sort();
    ctx.emit(json!({ "experiment": experiment_json(&e), "revisions": revisions }), || {
        output::key_values(&[
            ("name", format!("{}.{}", e.name, e.project)),
            ("description", e.description.clone()),
            ("mode", access_mode_name(e.access_mode)),
            ("creator", e.creator.clone()),
            ("maintainers", e.maintainers.join(", ")),
            ("repository", e.repository.clone()),
            ("revisions", revisions.join(", ")),
            ("created", output::timestamp(e.created.as_ref())),
        ])
    })
}

/// `trellis delete experiment`.
pub async fn delete(ctx: &Ctx, name: ExperimentRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request =
        pb::DeleteExperimentRequest { project: name.project.clone(), experiment: name.experiment.clone() };
    clients.workspace.delete_experiment(request).await?;
    ctx.done(format!("deleted experiment {name}"))
}
