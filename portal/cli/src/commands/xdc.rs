//! XDCs, named `<xdc>.<project>`: create, list, show, delete, change expiry, attach to and
//! detach from materializations, and the portal's jump hosts and images.
//! Reaching them over SSH is in `xdc_ssh.rs`.

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::realizations::duration;
use super::{Ctx, whoami};
use crate::cli::{Lifetime, NewXdcArgs, RealizationRef, XdcKind, XdcRef};
use crate::client::Clients;
use crate::error::CliError;
use crate::output::{
    image_json, images_table, jump_json, jumps_table, status_tree_text, task_tree_json, xdc_json, xdc_text,
    xdcs_table,
};

fn get_request(name: &XdcRef) -> pb::GetXdcRequest {
    pb::GetXdcRequest { project: name.project.clone(), xdc: name.xdc.clone(), status_ms: 0 }
}

/// The XDC as the portal describes it, with its status.
pub async fn get(clients: &mut Clients, name: &XdcRef) -> Result<pb::GetXdcResponse, CliError> {
    Ok(clients.xdc.get_xdc(get_request(name)).await?.into_inner())
}

/// `trellis new xdc`.
pub async fn create(ctx: &Ctx, args: NewXdcArgs) -> Result<(), CliError> {
    let name = args.name;
    let mut clients = ctx.connect().await?;
    let kind = match args.kind {
        XdcKind::Shared => pb::XdcType::Shared,
        XdcKind::Personal => pb::XdcType::Personal,
    };
    let request = pb::CreateXdcRequest {
        project: name.project.clone(),
        xdc: name.xdc.clone(),
        image: args.image.unwrap_or_default(),
        // 0 asks for the portal's defaults.
        memlimit: args.memory.unwrap_or(0),
        cpulimit: args.cpu.unwrap_or(0),
        r#type: kind as i32,
        duration: args.expires.as_ref().map(duration),
        ingress: None,
    };
    clients.xdc.create_xdc(request).await?;
    // The answer is empty; the SSH name and URLs the portal chose are worth showing, but the
    // XDC exists whether or not this second call works.
    let created = get(&mut clients, &name).await.ok().and_then(|r| r.xdc);
    let value = json!({ "xdc": created.as_ref().map(xdc_json) });
    ctx.emit(value, || {
        let mut out = format!("created XDC {name}");
        if let Some(x) = &created {
            out.push_str(&format!("; reach it with `trellis xdc ssh {name}` (ssh name {})", x.fqdn));
            if let Some(u) = x.urls.first() {
                out.push_str(&format!(" or at {}", u.url));
            }
        }
        out.push('\n');
        out
    })
}

/// The project part of `<xdc>.<project>`.
fn project_of(x: &pb::XdcInfo) -> &str {
    x.name.split_once('.').map_or("", |(_, p)| p)
}

/// `trellis list xdcs`: without `--all` (or a project), only the XDCs of your projects and
/// those you created; the portal itself returns everything you may read.
pub async fn list(ctx: &Ctx, all: bool, project: Option<String>) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mine_only = !all && project.is_none();
    let request = pb::ListXdCsRequest { project: project.unwrap_or_default() };
    let mut xdcs = clients.xdc.list_xd_cs(request).await?.into_inner().xd_cs;
    if mine_only {
        let me = whoami(&mut clients).await?;
        let request = pb::GetUserRequest { username: me.clone(), status_ms: 0 };
        let user = clients.workspace.get_user(request).await?.into_inner().user.unwrap_or_default();
        xdcs.retain(|x| x.creator == me || user.projects.contains_key(project_of(x)));
    }
    xdcs.sort_by(|a, b| a.name.cmp(&b.name));
    let value = json!({ "xdcs": xdcs.iter().map(xdc_json).collect::<Vec<_>>() });
    ctx.emit(value, || xdcs_table(&xdcs))
}

/// `trellis show xdc`.
pub async fn show(ctx: &Ctx, name: XdcRef, with_status: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let response = get(&mut clients, &name).await?;
    let x = response.xdc.unwrap_or_default();
    let tree = response.status.unwrap_or_default();
    let value = json!({ "xdc": xdc_json(&x), "status": task_tree_json(&tree) });
    ctx.emit(value, || {
        let mut out = xdc_text(&x, Some(&tree));
        if with_status {
            out.push('\n');
            out.push_str(&status_tree_text(&tree));
        }
        out
    })
}

/// `trellis delete xdc`.
pub async fn delete(ctx: &Ctx, name: XdcRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::DeleteXdcRequest { project: name.project.clone(), xdc: name.xdc.clone() };
    clients.xdc.delete_xdc(request).await?;
    ctx.done(format!("deleted XDC {name}"))
}

/// `trellis update xdc --expires`.
pub async fn update_expiry(ctx: &Ctx, name: XdcRef, lifetime: Lifetime) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::UpdateXdcRequest {
        xdc: name.xdc.clone(),
        project: name.project.clone(),
        expires: Some(duration(&lifetime)),
    };
    clients.xdc.update_xdc(request).await?;
    let x = get(&mut clients, &name).await?.xdc.unwrap_or_default();
    let when = crate::output::expires(x.expires.as_ref());
    ctx.emit(json!({ "expires": crate::output::timestamp_json(x.expires.as_ref()) }), || {
        format!("{name} now expires {when}\n")
    })
}

/// `trellis xdc attach`.
pub async fn attach(ctx: &Ctx, name: XdcRef, mzid: RealizationRef, force: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::AttachXdcRequest {
        xdc: name.xdc.clone(),
        project: name.project.clone(),
        experiment: mzid.experiment.clone(),
        realization: mzid.realization.clone(),
        realization_project: mzid.project.clone(),
        force,
    };
    clients.xdc.attach_xdc(request).await?;
    ctx.done(format!("attaching {name} to {mzid}; follow it with `trellis show xdc {name} -S`"))
}

/// `trellis xdc detach`.
pub async fn detach(ctx: &Ctx, name: XdcRef) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::DetachXdcRequest {
        xdc: name.xdc.clone(),
        project: name.project.clone(),
        experiment: String::new(),
        realization: String::new(),
    };
    clients.xdc.detach_xdc(request).await?;
    ctx.done(format!("detaching {name}"))
}

/// The portal's jump hosts.
pub async fn jump_hosts(clients: &mut Clients) -> Result<Vec<pb::SshJump>, CliError> {
    Ok(clients.xdc.get_xdc_jump_hosts(pb::GetXdcJumpHostsRequest {}).await?.into_inner().jump_hosts)
}

/// `trellis xdc jumphosts`.
pub async fn list_jump_hosts(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let jumps = jump_hosts(&mut clients).await?;
    let value = json!({ "jumpHosts": jumps.iter().map(jump_json).collect::<Vec<_>>() });
    ctx.emit(value, || jumps_table(&jumps))
}

/// `trellis xdc images`.
pub async fn list_images(ctx: &Ctx) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let images = clients.xdc.list_xdc_images(pb::ListXdcImagesRequest {}).await?.into_inner().images;
    let value = json!({ "images": images.iter().map(image_json).collect::<Vec<_>>() });
    ctx.emit(value, || images_table(&images))
}
