//! Models: compile one on the portal, push one as a revision.

use std::path::Path;

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use crate::cli::ExperimentRef;
use crate::error::CliError;

fn read_model(file: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(file).map_err(|source| CliError::ReadFile { path: file.to_owned(), source })
}

/// `trellis compile`: exits non-zero when the model has errors, so scripts can gate on it.
pub async fn compile(ctx: &Ctx, file: &Path) -> Result<(), CliError> {
    let model = read_model(file)?;
    let mut clients = ctx.connect().await?;
    let response = clients.model.compile(pb::CompileRequest { model }).await?.into_inner();
    ctx.emit(json!({ "success": response.success, "errors": response.errors }), || {
        if response.success {
            format!("{}: compiles\n", file.display())
        } else {
            response.errors.iter().map(|e| format!("{e}\n")).collect()
        }
    })?;
    if response.success { Ok(()) } else { Err(CliError::ModelErrors { count: response.errors.len() }) }
}

/// `trellis push`.
pub async fn push(
    ctx: &Ctx,
    file: &Path,
    experiment: ExperimentRef,
    tag: String,
    branch: String,
) -> Result<(), CliError> {
    let model = read_model(file)?;
    let mut clients = ctx.connect().await?;
    let request = pb::PushRequest {
        model,
        branch,
        experiment: experiment.experiment.clone(),
        project: experiment.project.clone(),
        tag,
    };
    let revision = clients.model.push(request).await?.into_inner().revision;
    ctx.emit(json!({ "revision": revision }), || {
        format!("pushed {} to {experiment}: revision {revision}\n", file.display())
    })
}
