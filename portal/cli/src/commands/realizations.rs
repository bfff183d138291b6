//! Realizations, named `<realization>.<experiment>.<project>`: realize, list, show, extend,
//! relinquish.

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use super::projects::filter;
use crate::cli::{Lifetime, RealizationRef, RealizeArgs, RevisionKind};
use crate::error::CliError;
use crate::output::{
    self, diagnostic_json, diagnostic_text, expires, links_table, nodes_table, realization_json,
    realization_summary_json, task_tree_json, task_tree_text,
};

/// Merge's `Duration` for a lifetime.
pub(super) fn duration(lifetime: &Lifetime) -> pb::Duration {
    match lifetime {
        Lifetime::Never => pb::Duration { when: pb::DurationCode::Never as i32, duration: String::new() },
        Lifetime::For(d) => pb::Duration { when: pb::DurationCode::Given as i32, duration: d.clone() },
    }
}

/// The first 12 characters of a revision id, enough to recognize it.
fn short_revision(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}

/// What a realization holds, as `show` and `realize` print it.
fn realization_text(r: &pb::Realization) -> String {
    let mut out = nodes_table(r);
    if !r.links.is_empty() {
        out.push('\n');
        out.push_str(&links_table(r));
    }
    out
}

/// `trellis realize`.
pub async fn realize(ctx: &Ctx, args: RealizeArgs) -> Result<(), CliError> {
    let name = args.realization;
    let mut request = pb::RealizeRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        duration: args.duration.as_ref().map(duration),
        ..Default::default()
    };
    match args.kind {
        RevisionKind::Revision => request.revision = args.reference,
        RevisionKind::Tag => request.tag = args.reference,
        RevisionKind::Branch => request.branch = args.reference,
    }
    let mut clients = ctx.connect().await?;
    let response = match clients.realize.realize(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            return Err(CliError::RealizeFailed { realization: name.to_string(), status: Box::new(status) });
        }
    };
    // Merge may answer a failed realization with an OK status and a failure code.
    if response.code != pb::RealizeResponseCode::Ok as i32 {
        let code = pb::RealizeResponseCode::try_from(response.code)
            .map_or_else(|_| response.code.to_string(), |c| c.as_str_name().to_owned());
        let details = response.diagnostics.iter().map(|d| format!("\n  {}", diagnostic_text(d))).collect();
        return Err(CliError::NotRealized { realization: name.to_string(), code, details });
    }
    let r = response.realization.unwrap_or_default();
    let value = json!({
        "realization": realization_json(&r),
        "diagnostics": response.diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
    });
    ctx.emit(value, || {
        let mut out = format!(
            "realized {name} (revision {}): {} node(s), {} link(s), expires {}\n\n",
            short_revision(&r.xhash),
            r.nodes.len(),
            r.links.len(),
            expires(r.expires.as_ref()),
        );
        out.push_str(&realization_text(&r));
        for d in &response.diagnostics {
            out.push_str(&format!("{}\n", diagnostic_text(d)));
        }
        out
    })
}

/// A realization's summary, from the portal's or (when it sent only the realization) made up
/// from the realization itself.
fn summary_of(result: &pb::RealizationResult) -> pb::RealizationSummary {
    if let Some(summary) = &result.summary {
        return summary.clone();
    }
    let r = result.realization.clone().unwrap_or_default();
    pb::RealizationSummary {
        complete: r.complete,
        id: r.id,
        eid: r.eid,
        pid: r.pid,
        xhash: r.xhash,
        creator: r.creator,
        ver: r.ver,
        created: r.created,
        expires: r.expires,
        num_nodes: i32::try_from(r.nodes.len()).unwrap_or(i32::MAX),
        num_links: i32::try_from(r.links.len()).unwrap_or(i32::MAX),
    }
}

fn completeness(complete: bool) -> String {
    if complete { "Complete".to_owned() } else { "Incomplete".to_owned() }
}

/// `trellis list realizations`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetRealizationsRequest { filter: filter(all), summary: true };
    let results = clients.realize.get_realizations(request).await?.into_inner().results;
    let mut summaries: Vec<pb::RealizationSummary> = results.iter().map(summary_of).collect();
    summaries.sort_by(|a, b| (&a.pid, &a.eid, &a.id).cmp(&(&b.pid, &b.eid, &b.id)));
    let value = json!({ "realizations": summaries.iter().map(realization_summary_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = summaries
            .iter()
            .map(|s| {
                vec![
                    format!("{}.{}.{}", s.id, s.eid, s.pid),
                    s.num_nodes.to_string(),
                    s.num_links.to_string(),
                    expires(s.expires.as_ref()),
                    completeness(s.complete),
                ]
            })
            .collect();
        output::table(&["realization", "nodes", "links", "expires", "status"], &rows)
    })
}

/// `trellis show realization`.
pub async fn show(ctx: &Ctx, name: RealizationRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetRealizationRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        status_ms: 0,
    };
    let response = clients.realize.get_realization(request).await?.into_inner();
    let result = response.result.unwrap_or_default();
    let r = result.realization.clone().unwrap_or_default();
    let diagnostics = result.diagnostics.as_ref().map(|d| d.value.as_slice()).unwrap_or_default();
    let value = json!({
        "realization": realization_json(&r),
        "diagnostics": diagnostics.iter().map(diagnostic_json).collect::<Vec<_>>(),
        "summary": result.summary.as_ref().map(realization_summary_json),
        "status": response.status.as_ref().map(task_tree_json),
    });
    ctx.emit(value, || {
        let mut out = output::key_values(&[
            ("realization", name.to_string()),
            ("revision", r.xhash.clone()),
            ("creator", r.creator.clone()),
            ("created", output::timestamp(r.created.as_ref())),
            ("expires", expires(r.expires.as_ref())),
            ("status", completeness(r.complete)),
        ]);
        out.push('\n');
        out.push_str(&realization_text(&r));
        if !diagnostics.is_empty() {
            out.push_str("\ndiagnostics:\n");
            diagnostics.iter().for_each(|d| out.push_str(&format!("  {}\n", diagnostic_text(d))));
        }
        if let Some(tree) = &response.status {
            out.push_str("\ntasks:\n");
            out.push_str(&task_tree_text(tree));
        }
        out
    })
}

/// `trellis update realization expiration`.
pub async fn update_expiration(ctx: &Ctx, name: RealizationRef, lifetime: Lifetime) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::UpdateRealizationRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        duration: Some(duration(&lifetime)),
    };
    let response = clients.realize.update_realization(request).await?.into_inner();
    let when = expires(response.expires.as_ref());
    ctx.emit(json!({ "expires": output::timestamp_json(response.expires.as_ref()) }), || {
        format!("{name} now expires {when}\n")
    })
}

/// `trellis relinquish`.
pub async fn relinquish(ctx: &Ctx, name: RealizationRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::RelinquishRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
    };
    clients.realize.relinquish(request).await?;
    ctx.done(format!("relinquished {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_become_merge_durations() {
        assert_eq!(duration(&Lifetime::Never).when, pb::DurationCode::Never as i32);
        let given = duration(&Lifetime::For("30d".into()));
        assert_eq!((given.when, given.duration.as_str()), (pb::DurationCode::Given as i32, "30d"));
    }

    #[test]
    fn summaries_are_made_up_when_missing() {
        let result = pb::RealizationResult {
            realization: Some(pb::Realization {
                id: "r".into(),
                nodes: [("a".to_owned(), pb::NodeRealization::default())].into(),
                ..Default::default()
            }),
            diagnostics: None,
            summary: None,
        };
        let s = summary_of(&result);
        assert_eq!((s.id.as_str(), s.num_nodes, s.num_links), ("r", 1, 0));
        assert_eq!(short_revision("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_revision("abc"), "abc");
    }
}
