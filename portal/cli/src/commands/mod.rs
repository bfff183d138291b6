//! Running a parsed command: one file per noun, and the context they share.

mod auth;
mod experiments;
mod facilities;
mod keys;
mod materializations;
mod models;
mod organizations;
mod pools;
mod projects;
mod realizations;
mod users;
mod xdc;
mod xdc_ssh;

use std::path::PathBuf;

use crate::cli::{
    ActivateTarget, Cli, Command, DeactivateTarget, DeleteCommand, DeleteMember, ListKind, NewCommand,
    NewMember, ShowCommand, UpdateCommand, UpdateRealization, UserTarget, XdcCommand,
};
use crate::client::{self, Clients};
use crate::config::{self, Config};
use crate::error::CliError;
use crate::output;

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Register(args) => auth::register(&ctx, args).await,
        Command::Compile { file } => models::compile(&ctx, &file).await,
        Command::Push { file, experiment, tag, branch } => {
            models::push(&ctx, &file, experiment, tag.unwrap_or_default(), branch).await
        }
        Command::Login(args) => auth::login(ctx, args).await,
        Command::Logout => auth::logout(ctx).await,
        Command::Whoami { token } => auth::whoami(&ctx, token).await,
        Command::New(new) => match new {
            NewCommand::Project { name, description, mode, org } => {
                projects::create(&ctx, name, description, mode, org).await
            }
            NewCommand::Experiment { name, description, mode } => {
                experiments::create(&ctx, name, description, mode).await
            }
            NewCommand::Organization { name, description, mode } => {
                organizations::create(&ctx, name, description, mode).await
            }
            NewCommand::Member(NewMember::Project { project, user, role }) => {
                projects::add_member(&ctx, project, user, role).await
            }
            NewCommand::Facility(args) => facilities::create(&ctx, args).await,
            NewCommand::Pool(args) => pools::create(&ctx, args).await,
            NewCommand::Ingress(args) => materializations::new_ingress(&ctx, args).await,
            NewCommand::Xdc(args) => xdc::create(&ctx, args).await,
        },
        Command::List(args) => match args.kind {
            ListKind::Projects => projects::list(&ctx, args.all).await,
            ListKind::Experiments => experiments::list(&ctx, args.all).await,
            ListKind::Organizations => organizations::list(&ctx, args.all).await,
            ListKind::Users => users::list(&ctx, args.all).await,
            ListKind::Realizations => realizations::list(&ctx, args.all).await,
            ListKind::Facilities => facilities::list(&ctx).await,
            ListKind::Pools => pools::list(&ctx).await,
            ListKind::Resources => facilities::resources(&ctx).await,
            ListKind::Allocations => facilities::allocations(&ctx).await,
            ListKind::Materializations => materializations::list(&ctx, args.all).await,
            ListKind::Ingresses { name } => materializations::list_ingresses(&ctx, name).await,
            ListKind::Xdcs { project } => xdc::list(&ctx, args.all, project).await,
        },
        Command::Show(show) => match show {
            ShowCommand::Project { name } => projects::show(&ctx, name).await,
            ShowCommand::Experiment { name, models } => experiments::show(&ctx, name, models).await,
            ShowCommand::Organization { name } => organizations::show(&ctx, name).await,
            ShowCommand::User { name } => users::show(&ctx, name).await,
            ShowCommand::Realization { name } => realizations::show(&ctx, name).await,
            ShowCommand::Facility { name, model } => facilities::show(&ctx, name, model).await,
            ShowCommand::Pool { name } => pools::show(&ctx, name).await,
            ShowCommand::Materialization { name, status } => materializations::show(&ctx, name, status).await,
            ShowCommand::Xdc { name, status } => xdc::show(&ctx, name, status).await,
        },
        Command::Update(update) => match update {
            UpdateCommand::Realization(UpdateRealization::Expiration { name, duration }) => {
                realizations::update_expiration(&ctx, name, duration).await
            }
            UpdateCommand::Pool(command) => pools::update(&ctx, command).await,
            UpdateCommand::Xdc { name, expires } => xdc::update_expiry(&ctx, name, expires).await,
        },
        Command::Delete(delete) => match delete {
            DeleteCommand::Project { name } => projects::delete(&ctx, name).await,
            DeleteCommand::Experiment { name } => experiments::delete(&ctx, name).await,
            DeleteCommand::Organization { name } => organizations::delete(&ctx, name).await,
            DeleteCommand::Member(DeleteMember::Project { project, user }) => {
                projects::remove_member(&ctx, project, user).await
            }
            DeleteCommand::Facility { name } => facilities::delete(&ctx, name).await,
            DeleteCommand::Pool { name } => pools::delete(&ctx, name).await,
            DeleteCommand::Ingress(args) => materializations::delete_ingress(&ctx, args).await,
            DeleteCommand::Xdc { name } => xdc::delete(&ctx, name).await,
        },
        Command::Keys(keys) => keys::run(&ctx, keys).await,
        Command::Activate(ActivateTarget::User { name }) => users::activate(&ctx, name).await,
        Command::Activate(ActivateTarget::Resources(target)) => {
            facilities::set_active(&ctx, target, true).await
        }
        Command::Deactivate(DeactivateTarget::Resources(target)) => {
            facilities::set_active(&ctx, target, false).await
        }
        Command::Freeze(UserTarget::User { name }) => users::freeze(&ctx, name).await,
        Command::Realize(args) => realizations::realize(&ctx, args).await,
        Command::Relinquish { name } => realizations::relinquish(&ctx, name).await,
        Command::Pool(command) => pools::run(&ctx, command).await,
        Command::Materialize(args) => materializations::materialize(&ctx, args).await,
        Command::Dematerialize(args) => materializations::dematerialize(&ctx, args).await,
        Command::Nodes(command) => materializations::nodes(&ctx, command).await,
        Command::Xdc(command) => match command {
            XdcCommand::Attach { name, materialization, force } => {
                xdc::attach(&ctx, name, materialization, force).await
            }
            XdcCommand::Detach { name } => xdc::detach(&ctx, name).await,
            XdcCommand::Ssh(args) => xdc_ssh::ssh(&ctx, args).await,
            XdcCommand::Scp(args) => xdc_ssh::scp(&ctx, args).await,
            XdcCommand::Jumphosts => xdc::list_jump_hosts(&ctx).await,
            XdcCommand::Images => xdc::list_images(&ctx).await,
        },
    }
}

/// What every command needs: where the configuration lives, which server, and how to print.
pub struct Ctx {
    /// Print JSON instead of tables.
    pub json: bool,
    /// The configuration file.
    pub config_path: PathBuf,
    /// Its contents when the command started.
    pub config: Config,
    /// The portal, as a URI (`http://host:port`).
    pub server: String,
    /// Extra certificate authorities for `https://` servers (`--ca-cert`, else the one stored
    /// at login for this server).
    pub ca_cert: Option<PathBuf>,
}

impl Ctx {
    fn new(cli: &Cli) -> Result<Ctx, CliError> {
        let config_path = match &cli.config {
            Some(path) => path.clone(),
            None => config::default_path()?,
        };
        let config = Config::load(&config_path)?;
        let server = cli.server.as_deref().or(config.server.as_deref()).unwrap_or(config::DEFAULT_SERVER);
        let server = client::server_uri(server)?;
        let mut ctx = Ctx { json: cli.json, config_path, config, server, ca_cert: cli.ca_cert.clone() };
        if ctx.ca_cert.is_none() && ctx.is_logged_in_server() {
            ctx.ca_cert = ctx.config.ca_cert.clone();
        }
        Ok(ctx)
    }

    /// Whether the server is the one the configuration file's login is for.
    fn is_logged_in_server(&self) -> bool {
        let stored = self.config.server.as_deref().and_then(|s| client::server_uri(s).ok());
        stored.as_deref() == Some(self.server.as_str())
    }

    /// The stored token, but only for the server it was issued by: a token must never be
    /// sent to a different portal just because `--server` pointed elsewhere.
    pub fn token(&self) -> Option<&str> {
        if self.is_logged_in_server() { self.config.token.as_deref() } else { None }
    }

    /// Connects, sending the stored token when there is one.
    ///
    /// Without a token the portal itself answers that none was provided, so commands do not
    /// second-guess which calls need a login.
    pub async fn connect(&self) -> Result<Clients, CliError> {
        client::connect(&self.server, self.ca_cert.as_deref(), self.token()).await
    }

    /// Connects without credentials (for `login`).
    pub async fn connect_anonymous(&self) -> Result<Clients, CliError> {
        client::connect(&self.server, self.ca_cert.as_deref(), None).await
    }

    /// Prints `value` as JSON in `--json` mode, else prints `human`.
    pub fn emit(&self, value: serde_json::Value, human: impl FnOnce() -> String) -> Result<(), CliError> {
        if self.json { output::print_json(&value) } else { output::print_text(&human()) }
    }

    /// Reports a change that returns nothing: `{}` in `--json` mode, else `message`.
    pub fn done(&self, message: impl Into<String>) -> Result<(), CliError> {
        let message = message.into();
        self.emit(serde_json::json!({}), || format!("{message}\n"))
    }
}

/// The caller's username, asked of the portal (the token is the authority, not the file).
pub async fn whoami(clients: &mut Clients) -> Result<String, CliError> {
    let reply = clients.workspace.whoami(trellis_api::portal::v1::WhoamiRequest {}).await?;
    Ok(reply.into_inner().whoami)
}
