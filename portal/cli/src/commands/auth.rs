//! `register`, `login`, `logout` and `whoami`.

use std::io::Read;

use serde_json::json;
use tonic::Code;
use trellis_api::portal::v1 as pb;

use super::{Ctx, whoami as ask_whoami, xdc_ssh};
use crate::cli::{LoginArgs, RegisterArgs};
use crate::client;
use crate::config::ENV_PASSWORD;
use crate::error::CliError;

/// Where a password comes from, in order: standard input when asked, `TRELLIS_PASSWORD`,
/// then a prompt on the terminal without echo (typed twice when `confirm`).
fn read_password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(CliError::Password)?;
        // Only the line ending `echo` or a here-string adds; other whitespace is the password's.
        let text = text.strip_suffix('\n').unwrap_or(&text);
        text.strip_suffix('\r').unwrap_or(text).to_owned()
    } else if let Some(p) = std::env::var(ENV_PASSWORD).ok().filter(|p| !p.is_empty()) {
        p
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(CliError::Password)?;
        if confirm {
            let second = rpassword::prompt_password("Confirm password: ").map_err(CliError::Password)?;
            if first != second {
                return Err(CliError::PasswordMismatch);
            }
        }
        first
    };
    if password.is_empty() {
        return Err(CliError::EmptyPassword);
    }
    Ok(password)
}

/// `trellis register`.
pub async fn register(ctx: &Ctx, args: RegisterArgs) -> Result<(), CliError> {
    let password = read_password(args.password_stdin, true)?;
    // A logged-in administrator's token goes along: the portal then activates the account.
    let mut clients = ctx.connect().await?;
    let request = pb::RegisterRequest {
        username: args.username.clone(),
        email: args.email,
        password,
        admin: args.admin,
        traits: Default::default(),
        institution: args.institution,
        category: args.category,
        country: args.country,
        usstate: args.usstate,
        name: args.name,
    };
    clients.identity.register(request).await?;
    ctx.done(format!("registered {}", args.username))
}

/// `trellis login`: stores the server, token and username in the configuration file, then
/// (unless `--no-ssh`) installs the user's SSH key and certificate as `mrg login` does.
///
/// The login stands even when installing the SSH files fails: the command then fails with
/// the reason, and the token stays stored. A portal that issues no SSH credentials at all
/// (`Unimplemented`) is not an error.
pub async fn login(ctx: Ctx, args: LoginArgs) -> Result<(), CliError> {
    let password = read_password(args.password_stdin, false)?;
    let mut clients = ctx.connect_anonymous().await?;
    let request = pb::LoginRequest { username: args.username.clone(), password };
    let token = clients.identity.login(request).await?.into_inner().token;
    let mut config = ctx.config.clone();
    config.server = Some(ctx.server.clone());
    config.token = Some(token);
    config.username = Some(args.username.clone());
    // Kept as an absolute path: later commands may run from another directory.
    config.ca_cert = match &ctx.ca_cert {
        Some(path) => Some(
            std::path::absolute(path).map_err(|source| CliError::ReadFile { path: path.clone(), source })?,
        ),
        None => None,
    };
    config.save(&ctx.config_path)?;
    let mut ssh = None;
    if !args.no_ssh {
        let installed = async {
            let mut clients =
                client::connect(&ctx.server, ctx.ca_cert.as_deref(), config.token.as_deref()).await?;
            xdc_ssh::install_for_login(&mut clients, &args.username, args.ssh.ssh_dir.as_deref()).await
        }
        .await;
        match installed {
            Ok(done) => ssh = Some(done),
            Err(CliError::Rpc(status)) if status.code() == Code::Unimplemented => {
                eprintln!("note: {} issues no SSH certificates; none installed", ctx.server);
            }
            Err(e) => return Err(CliError::SshInstall(Box::new(e))),
        }
    }
    let value = json!({
        "username": args.username,
        "server": ctx.server,
        "ssh": ssh.as_ref().map(|(value, _)| value.clone()),
    });
    ctx.emit(value, || {
        let mut out = format!("logged in to {} as {}\n", ctx.server, args.username);
        if let Some((_, text)) = &ssh {
            out.push_str(text);
        }
        out
    })
}

/// `trellis logout`: revokes the token on the portal, then forgets it.
///
/// The token is forgotten even if the portal cannot be told, but the command then fails so the
/// user knows the token may still be valid until it expires.
pub async fn logout(ctx: Ctx) -> Result<(), CliError> {
    let Some(_) = ctx.token() else {
        return Err(CliError::NotLoggedIn);
    };
    let username = ctx.config.username.clone().unwrap_or_default();
    let revoked = async {
        let mut clients = ctx.connect().await?;
        clients.identity.logout(pb::LogoutRequest { username: username.clone() }).await?;
        Ok::<_, CliError>(())
    }
    .await;
    let mut config = ctx.config.clone();
    config.token = None;
    config.username = None;
    config.save(&ctx.config_path)?;
    match revoked {
        Ok(()) => {}
        // An expired or already revoked token is as logged out as it gets.
        Err(CliError::Rpc(status)) if status.code() == Code::Unauthenticated => {}
        Err(e) => return Err(e),
    }
    ctx.done(format!("logged out {username}"))
}

/// `trellis whoami`.
pub async fn whoami(ctx: &Ctx, show_token: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let username = ask_whoami(&mut clients).await?;
    let token = ctx.token().filter(|_| show_token).unwrap_or_default();
    let mut value = json!({ "username": username });
    if show_token {
        value["token"] = json!(token);
    }
    ctx.emit(value, || if show_token { format!("{username}\n{token}\n") } else { format!("{username}\n") })
}
