//! The SSH half of `trellis login` (installing the portal-issued key and certificate) and
//! `trellis xdc ssh|scp`, which replace themselves with the system's `ssh` or `scp` so that
//! the terminal, signals and exit status are ssh's own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use serde_json::{Value, json};
use tonic::Code;
use trellis_api::portal::v1 as pb;

use super::xdc::{get, jump_hosts};
use super::{Ctx, whoami};
use crate::cli::{ScpArgs, ScpDirection, SshArgs, SshOptions, XdcRef};
use crate::client::Clients;
use crate::error::CliError;
use crate::ssh::{self, Credentials, Jump, Route, SshFiles};

/// Ports of jump hosts that do not name one: Merge's jump host listens on 2022.
const MERGE_JUMP_PORT: u16 = 2022;

fn jump_from(user: &str, j: &pb::SshJump) -> Jump {
    let port = u16::try_from(j.port).ok().filter(|p| *p != 0).unwrap_or(MERGE_JUMP_PORT);
    let host = if j.fqdn.is_empty() { j.name.clone() } else { j.fqdn.clone() };
    Jump { user: user.to_owned(), host, port }
}

async fn certificate(clients: &mut Clients, username: &str) -> Result<pb::SshCert, CliError> {
    let request = pb::GetUserSshCertRequest { username: username.to_owned() };
    Ok(clients.cred.get_user_ssh_cert(request).await?.into_inner().cert.unwrap_or_default())
}

/// Fetches `username`'s key pair and a fresh certificate and installs them with the
/// `mergejump` block (when the portal names a jump host); returns what to report.
///
/// A portal without the XDC service (it answers `Unimplemented`) just gets no `mergejump`.
pub async fn install_for_login(
    clients: &mut Clients,
    username: &str,
    dir: Option<&Path>,
) -> Result<(Value, String), CliError> {
    let files = SshFiles::locate(dir)?;
    let request = pb::GetUserSshKeysRequest { username: username.to_owned() };
    let keys = clients.cred.get_user_ssh_keys(request).await?.into_inner().keys.unwrap_or_default();
    let cert = certificate(clients, username).await?;
    let jump = match jump_hosts(clients).await {
        Ok(jumps) => jumps.first().map(|j| jump_from(username, j)),
        Err(CliError::Rpc(status)) if status.code() == Code::Unimplemented => None,
        Err(e) => return Err(e),
    };
    let creds = Credentials {
        private_key: keys.private,
        public_key: keys.public,
        certificate: cert.cert,
        host_ca: cert.ca_host_pub_key,
    };
    let installed = ssh::install(&files, &creds, jump.as_ref())?;
    let value = json!({
        "dir": files.dir,
        "key": files.key(),
        "certificate": files.certificate(),
        "knownHosts": installed.host_ca.then(|| files.known_hosts()),
        "config": installed.jump_block.then(|| files.user_config()),
        "jumpHost": jump.as_ref().map(ToString::to_string),
    });
    let mut text = format!("installed the SSH key and certificate in {}", files.dir.display());
    match &jump {
        Some(j) => text.push_str(&format!(
            "; `Host {}` in {} reaches {}:{}",
            ssh::JUMP_ALIAS,
            files.user_config().display(),
            j.host,
            j.port
        )),
        None => text.push_str("; the portal names no jump host"),
    }
    text.push('\n');
    Ok((value, text))
}

/// Renews the certificate before connecting (they last a day; a login may be older).
/// Failing to renew is not fatal: the installed one may still be valid.
async fn renew_certificate(clients: &mut Clients, username: &str, files: &SshFiles) {
    let renewed = async {
        let cert = certificate(clients, username).await?;
        if cert.cert.trim().is_empty() {
            return Err(CliError::EmptyCredentials);
        }
        ssh::write_atomic(&files.certificate(), &format!("{}\n", cert.cert.trim()), 0o644)
    }
    .await;
    if let Err(e) = renewed {
        eprintln!(
            "warning: cannot renew the SSH certificate ({e}); trying {}",
            files.certificate().display()
        );
    }
}

/// Where to go and with which files: asks the portal for the XDC's SSH name, the user and
/// (unless `--jump`) the jump host.
async fn route(ctx: &Ctx, name: &XdcRef, options: &SshOptions) -> Result<(SshFiles, Route), CliError> {
    let files = SshFiles::locate(options.dir.ssh_dir.as_deref())?;
    files.check_installed()?;
    let mut clients = ctx.connect().await?;
    let user = whoami(&mut clients).await?;
    let xdc = get(&mut clients, name).await?.xdc.unwrap_or_default();
    let target = if xdc.fqdn.is_empty() { format!("{}-{}", name.xdc, name.project) } else { xdc.fqdn };
    let jump = match &options.jump {
        Some(j) => Jump { user: user.clone(), host: j.host.clone(), port: j.port },
        None => jump_hosts(&mut clients)
            .await?
            .first()
            .map(|j| jump_from(&user, j))
            .ok_or(CliError::NoJumpHost)?,
    };
    if !options.dry_run {
        renew_certificate(&mut clients, &user, &files).await;
    }
    Ok((files, Route { jump, xdc: target, node: options.node.clone() }))
}

/// Prints the command (`--dry-run`) or becomes it.
fn run(ctx: &Ctx, program: &str, args: Vec<OsString>, dry_run: bool) -> Result<(), CliError> {
    if dry_run {
        let mut argv = vec![OsString::from(program)];
        argv.extend(args);
        let value = json!({
            "command": argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        });
        return ctx.emit(value, || format!("{}\n", ssh::shell_line(&argv)));
    }
    // exec only returns on failure.
    let source = std::process::Command::new(program).args(args).exec();
    Err(CliError::Exec { program: program.to_owned(), source })
}

/// `trellis xdc ssh`.
pub async fn ssh(ctx: &Ctx, args: SshArgs) -> Result<(), CliError> {
    let (files, route) = route(ctx, &args.name, &args.options).await?;
    run(ctx, "ssh", route.ssh_args(&files, &args.forward, &args.command), args.options.dry_run)
}

/// `trellis xdc scp`.
pub async fn scp(ctx: &Ctx, args: ScpArgs) -> Result<(), CliError> {
    let (files, route) = route(ctx, &args.name, &args.options).await?;
    // clap requires at least two paths.
    let (sources, destination) = args.paths.split_at(args.paths.len().saturating_sub(1));
    let destination = destination.first().map(String::as_str).unwrap_or_default();
    let upload = args.direction == ScpDirection::Upload;
    run(
        ctx,
        "scp",
        route.scp_args(&files, upload, args.recursive, sources, destination),
        args.options.dry_run,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hosts_default_to_merge_port_and_name() {
        let j = pb::SshJump { name: "jump".into(), fqdn: "jump.example.net".into(), port: 2202, ver: 0 };
        assert_eq!(jump_from("alice", &j).to_string(), "alice@jump.example.net:2202");
        let bare = pb::SshJump { name: "jump.example.net".into(), fqdn: String::new(), port: 0, ver: 0 };
        assert_eq!(jump_from("bob", &bare).to_string(), "bob@jump.example.net:2022");
    }
}
