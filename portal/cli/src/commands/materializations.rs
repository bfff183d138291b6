//! Materializations, named like their realizations (`<realization>.<experiment>.<project>`):
//! materialize (optionally waiting with a progress line), dematerialize, list, show, reboot
//! nodes, generate inventories and hosts files, and ingresses.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use trellis_api::portal::v1 as pb;
use trellis_api::xir;

use super::Ctx;
use super::projects::filter;
use crate::cli::{
    DematerializeArgs, GenerateTarget, IngressArgs, IngressProtocol, MaterializeArgs, NodesCommand,
    RealizationRef,
};
use crate::client::Clients;
use crate::error::CliError;
use crate::output::{
    self, MatNode, Progress, etchosts, failing_tasks, ingress_json, ingresses_table, inventory, mat_nodes,
    mat_nodes_table, materialization_json, materialization_summary_json, status_tree_text, task_status_name,
    task_summary_json, task_tree_json,
};

/// How often `--sync` asks the portal.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often a plain (not terminal) progress line is repeated when nothing changes.
const PLAIN_REPEAT: Duration = Duration::from_secs(10);

fn get_request(name: &RealizationRef, data: bool, ingresses: bool) -> pb::GetMaterializationRequest {
    pb::GetMaterializationRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        status_ms: 0,
        include_materialization_data: data,
        include_ingresses: ingresses,
    }
}

fn protocol(p: IngressProtocol) -> xir::Protocol {
    match p {
        IngressProtocol::Http => xir::Protocol::Http,
        IngressProtocol::Https => xir::Protocol::Https,
        IngressProtocol::Tcp => xir::Protocol::Tcp,
        IngressProtocol::Udp => xir::Protocol::Udp,
    }
}

fn node_names(m: Option<&pb::Materialization>) -> HashSet<String> {
    m.map(|m| mat_nodes(m).into_iter().map(|n| n.name).collect()).unwrap_or_default()
}

/// Shows progress while `--sync` waits: one line rewritten in place on a terminal, otherwise
/// a line whenever it changes (and every [`PLAIN_REPEAT`] regardless), nothing in `--json` mode.
struct Ticker {
    enabled: bool,
    terminal: bool,
    start: Instant,
    /// The newest line, for the timeout message.
    last_line: String,
    /// The line last printed in plain mode, and when.
    printed: String,
    last_print: Option<Instant>,
    /// Whether a terminal line is drawn and not yet ended.
    drawn: bool,
}

impl Ticker {
    fn new(ctx: &Ctx) -> Ticker {
        Ticker {
            enabled: !ctx.json,
            terminal: std::io::stdout().is_terminal(),
            start: Instant::now(),
            last_line: String::new(),
            printed: String::new(),
            last_print: None,
            drawn: false,
        }
    }

    fn show(&mut self, line: &str) {
        self.last_line = line.to_owned();
        if !self.enabled {
            return;
        }
        let elapsed = self.start.elapsed().as_secs();
        let mut out = std::io::stdout().lock();
        // Progress is a courtesy: a closed or full stdout must not fail the command.
        if self.terminal {
            let _ = write!(out, "\r\x1b[2K[{elapsed:>3}s] {line}");
            self.drawn = true;
        } else {
            let due = self.last_print.is_none_or(|t| t.elapsed() >= PLAIN_REPEAT);
            if line != self.printed || due {
                let _ = writeln!(out, "[{elapsed:>3}s] {line}");
                self.last_print = Some(Instant::now());
                self.printed = line.to_owned();
            }
        }
        let _ = out.flush();
    }

    /// Ends the rewritten line so what follows starts on its own.
    fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stdout().lock());
            self.drawn = false;
        }
    }

    /// `: <last progress line>`, or empty when there was none.
    fn last(&self) -> String {
        if self.last_line.is_empty() { String::new() } else { format!(": {}", self.last_line) }
    }
}

/// Polls until every task succeeds (the answer), one fails, or `timeout` passes.
async fn wait_until_up(
    ctx: &Ctx,
    clients: &mut Clients,
    name: &RealizationRef,
    timeout: u64,
) -> Result<pb::GetMaterializationResponse, CliError> {
    use pb::task_status::StatusType;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut ticker = Ticker::new(ctx);
    loop {
        let response = clients.materialize.get_materialization(get_request(name, true, false)).await?;
        let response = response.into_inner();
        let tree = response.task_status.clone().unwrap_or_default();
        ticker.show(&Progress::of(&tree, &node_names(response.materialization.as_ref())).line());
        match StatusType::try_from(tree.highest_status) {
            Ok(StatusType::Success) => {
                ticker.finish();
                return Ok(response);
            }
            Ok(StatusType::Error) => {
                ticker.finish();
                let details = failing_tasks(&tree).iter().map(|t| format!("\n  {t}")).collect();
                return Err(CliError::MaterializationFailed { mzid: name.to_string(), details });
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            ticker.finish();
            let what = format!("{name} to materialize");
            return Err(CliError::Timeout { what, seconds: timeout, last: ticker.last() });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// `trellis materialize`.
pub async fn materialize(ctx: &Ctx, args: MaterializeArgs) -> Result<(), CliError> {
    let name = args.name;
    let mut clients = ctx.connect().await?;
    let request = pb::MaterializeRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        ver: 0,
    };
    let response = clients.materialize.materialize(request).await?.into_inner();
    let m = response.materialization.unwrap_or_default();
    if !args.sync {
        let nodes = mat_nodes(&m);
        let value = json!({ "materialization": materialization_json(&m) });
        return ctx.emit(value, || {
            let metal = nodes.iter().filter(|n| n.metal).count();
            format!(
                "materializing {name}: {} node(s) ({metal} metal, {} VM(s)); \
                 follow it with `trellis show mat {name} -S` or wait with --sync\n",
                nodes.len(),
                nodes.len() - metal,
            )
        });
    }
    let done = wait_until_up(ctx, &mut clients, &name, args.timeout).await?;
    let m = done.materialization.unwrap_or(m);
    let tree = done.task_status.unwrap_or_default();
    let nodes = mat_nodes(&m);
    let value = json!({ "materialization": materialization_json(&m), "status": task_tree_json(&tree) });
    ctx.emit(value, || {
        let progress = Progress::of(&tree, &nodes.iter().map(|n| n.name.clone()).collect());
        format!("materialized {name}: {}\n\n{}", progress.line(), mat_nodes_table(&nodes))
    })
}

/// `trellis dematerialize`.
pub async fn dematerialize(ctx: &Ctx, args: DematerializeArgs) -> Result<(), CliError> {
    let name = args.name;
    let mut clients = ctx.connect().await?;
    let request = pb::DematerializeRequest {
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
    };
    clients.materialize.dematerialize(request).await?;
    if !args.sync {
        return ctx.done(format!("dematerializing {name}"));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut ticker = Ticker::new(ctx);
    loop {
        match clients.materialize.get_materialization(get_request(&name, true, false)).await {
            Err(status) if status.code() == tonic::Code::NotFound => break,
            Err(status) => return Err(status.into()),
            Ok(response) => {
                let response = response.into_inner();
                let tree = response.task_status.unwrap_or_default();
                let progress = Progress::of(&tree, &node_names(response.materialization.as_ref()));
                ticker.show(&format!("tearing down: {}", progress.line()));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            ticker.finish();
            let what = format!("{name} to be dematerialized");
            return Err(CliError::Timeout { what, seconds: args.timeout, last: ticker.last() });
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
    ticker.finish();
    ctx.done(format!("dematerialized {name}"))
}

/// `trellis list materializations`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request =
        pb::GetMaterializationsRequest { filter: filter(all), include_status: true, ..Default::default() };
    let response = clients.materialize.get_materializations(request).await?.into_inner();
    // The portal answers the summaries and their statuses in the same order.
    let mut rows: Vec<(&pb::MaterializationSummary, Option<&pb::TaskSummary>)> =
        response.summaries.iter().enumerate().map(|(i, s)| (s, response.task_summaries.get(i))).collect();
    rows.sort_by(|(a, _), (b, _)| (&a.pid, &a.eid, &a.rid).cmp(&(&b.pid, &b.eid, &b.rid)));
    let status =
        |t: Option<&pb::TaskSummary>| t.map_or_else(String::new, |t| task_status_name(t.highest_status));
    let value = json!({
        "materializations": rows
            .iter()
            .map(|(s, t)| {
                let mut v = materialization_summary_json(s);
                v["status"] = t.map_or(serde_json::Value::Null, task_summary_json);
                v
            })
            .collect::<Vec<_>>(),
    });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(s, t)| {
                vec![
                    format!("{}.{}.{}", s.rid, s.eid, s.pid),
                    s.num_metal.to_string(),
                    s.num_virtual.to_string(),
                    s.num_links.to_string(),
                    status(*t),
                ]
            })
            .collect();
        output::table(&["materialization", "metal", "vms", "links", "status"], &rows)
    })
}

/// `trellis show materialization`.
pub async fn show(ctx: &Ctx, name: RealizationRef, with_status: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let response = clients.materialize.get_materialization(get_request(&name, true, true)).await?;
    let response = response.into_inner();
    let m = response.materialization.clone().unwrap_or_default();
    let nodes = mat_nodes(&m);
    let ingresses = response.ingresses.as_ref().map(|i| i.ingresses.as_slice()).unwrap_or_default();
    let tree = response.task_status.clone().unwrap_or_default();
    let value = json!({
        "materialization": materialization_json(&m),
        "nodes": nodes.iter().map(MatNode::json).collect::<Vec<_>>(),
        "ingresses": ingresses.iter().map(ingress_json).collect::<Vec<_>>(),
        "summary": response.summary.as_ref().map(materialization_summary_json),
        "taskSummary": response.task_summary.as_ref().map(task_summary_json),
        "status": task_tree_json(&tree),
    });
    ctx.emit(value, || {
        let progress = Progress::of(&tree, &nodes.iter().map(|n| n.name.clone()).collect());
        let mut out = output::key_values(&[
            ("materialization", name.to_string()),
            ("created", output::timestamp(m.created.as_ref())),
            ("status", task_status_name(tree.highest_status)),
            ("progress", progress.line()),
        ]);
        out.push('\n');
        out.push_str(&mat_nodes_table(&nodes));
        if !ingresses.is_empty() {
            out.push('\n');
            out.push_str(&ingresses_table(ingresses));
        }
        if with_status {
            out.push('\n');
            out.push_str(&status_tree_text(&tree));
        }
        out
    })
}

/// `trellis nodes ...`.
pub async fn nodes(ctx: &Ctx, command: NodesCommand) -> Result<(), CliError> {
    match command {
        NodesCommand::Reboot { name, nodes, all } => reboot(ctx, name, nodes, all).await,
        NodesCommand::Generate(GenerateTarget::Inventory { name }) => {
            generate(ctx, name, |_, nodes| inventory(nodes)).await
        }
        NodesCommand::Generate(GenerateTarget::Etchosts { name }) => {
            generate(ctx, name, |name, nodes| etchosts(&name.to_string(), nodes)).await
        }
    }
}

async fn reboot(ctx: &Ctx, name: RealizationRef, nodes: Vec<String>, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let which = if all { "every node".to_owned() } else { nodes.join(", ") };
    let request = pb::RebootMaterializationRequest {
        mode: pb::RebootMaterializationMode::Reboot as i32,
        project: name.project.clone(),
        experiment: name.experiment.clone(),
        realization: name.realization.clone(),
        hostnames: nodes,
        all_nodes: all,
        ver: 0,
    };
    clients.materialize.reboot_materialization(request).await?;
    ctx.done(format!("rebooting {which} of {name}"))
}

/// Prints a file made from the nodes (`--json`: the nodes themselves).
async fn generate(
    ctx: &Ctx,
    name: RealizationRef,
    render: impl FnOnce(&RealizationRef, &[MatNode]) -> String,
) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let response = clients.materialize.get_materialization(get_request(&name, true, false)).await?;
    let nodes = mat_nodes(&response.into_inner().materialization.unwrap_or_default());
    let value = json!({ "nodes": nodes.iter().map(MatNode::json).collect::<Vec<_>>() });
    ctx.emit(value, || render(&name, &nodes))
}

/// `trellis new ingress`.
pub async fn new_ingress(ctx: &Ctx, args: IngressArgs) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::NewIngressRequest {
        project: args.name.project.clone(),
        experiment: args.name.experiment.clone(),
        realization: args.name.realization.clone(),
        protocol: protocol(args.protocol) as i32,
        host: args.node.clone(),
        port: args.port,
    };
    clients.materialize.new_ingress(request).await?;
    // The answer is empty; the route the portal made is in the materialization's list.
    let response = clients.materialize.get_materialization(get_request(&args.name, false, true)).await?;
    let wanted = protocol(args.protocol).as_str_name();
    let created = response.into_inner().ingresses.unwrap_or_default().ingresses.into_iter().find(|i| {
        i.hostname == args.node && i.hostport == args.port && i.protocol.eq_ignore_ascii_case(wanted)
    });
    let value = json!({ "ingress": created.as_ref().map(ingress_json) });
    ctx.emit(value, || match &created {
        Some(i) => format!("{} port {} of {} is reachable at {}\n", wanted, args.port, args.node, i.ingress),
        None => format!("created the {wanted} ingress to {}:{} of {}\n", args.node, args.port, args.name),
    })
}

/// `trellis delete ingress`.
pub async fn delete_ingress(ctx: &Ctx, args: IngressArgs) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let wanted = protocol(args.protocol);
    let request = pb::DeleteIngressRequest {
        project: args.name.project.clone(),
        experiment: args.name.experiment.clone(),
        realization: args.name.realization.clone(),
        protocol: wanted as i32,
        host: args.node.clone(),
        port: args.port,
    };
    clients.materialize.delete_ingress(request).await?;
    ctx.done(format!(
        "deleted the {} ingress to {}:{} of {}",
        wanted.as_str_name(),
        args.node,
        args.port,
        args.name
    ))
}

/// `trellis list ingresses`.
pub async fn list_ingresses(ctx: &Ctx, name: RealizationRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let response = clients.materialize.get_materialization(get_request(&name, false, true)).await?;
    let ingresses = response.into_inner().ingresses.unwrap_or_default().ingresses;
    let value = json!({ "ingresses": ingresses.iter().map(ingress_json).collect::<Vec<_>>() });
    ctx.emit(value, || ingresses_table(&ingresses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_map_to_xir() {
        assert_eq!(protocol(IngressProtocol::Http).as_str_name(), "http");
        assert_eq!(protocol(IngressProtocol::Https).as_str_name(), "https");
        assert_eq!(protocol(IngressProtocol::Tcp) as i32, xir::Protocol::Tcp as i32);
        assert_eq!(protocol(IngressProtocol::Udp) as i32, xir::Protocol::Udp as i32);
    }
}
