//! The command line, as clap derive types.
//!
//! Commands follow Merge's `mrg`: a verb (`new`, `list`, `show`, `delete`, ...) then a noun.
//! Experiments are named `<experiment>.<project>` and realizations
//! `<realization>.<experiment>.<project>`, as everywhere in Merge.
//! Any unique prefix of a subcommand is accepted (`trellis li proj` is `trellis list projects`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod materialize;
mod realize;
mod xdc;

pub use materialize::{
    DematerializeArgs, GenerateTarget, IngressArgs, IngressProtocol, MaterializeArgs, NodesCommand,
};
pub use realize::{
    Lifetime, NewFacilityArgs, NewPoolArgs, PoolAdd, PoolCommand, PoolPatch, PoolRemove, RealizationRef,
    RealizeArgs, ResourcesTarget, RevisionKind, UpdateCommand, UpdatePool, UpdateRealization,
};
pub use xdc::{
    NewXdcArgs, ScpArgs, ScpDirection, SshArgs, SshDirArg, SshOptions, XdcCommand, XdcKind, XdcRef,
};

/// Command-line client for Trellis and other MergeTB-compatible portals.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, infer_subcommands = true, args_override_self = true)]
pub struct Cli {
    /// Portal API address, `host:port` or `http(s)://host:port` (default: the logged-in server,
    /// else 127.0.0.1:7080).
    #[arg(long, short = 's', global = true, env = "TRELLIS_SERVER")]
    pub server: Option<String>,
    /// Print responses as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Configuration file (default: $XDG_CONFIG_HOME/trellis/config.yml).
    #[arg(long, global = true, env = "TRELLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// PEM file of extra certificate authorities to trust for `https://` servers.
    #[arg(long, global = true, env = "TRELLIS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account (an administrator's registration starts active).
    Register(RegisterArgs),
    /// Log in, remember the server and token, and install your SSH key and certificate.
    Login(LoginArgs),
    /// Log out: revoke the token on the portal and forget it.
    Logout,
    /// Show who the portal thinks you are.
    Whoami {
        /// Print the access token too.
        #[arg(short = 't', long)]
        token: bool,
    },
    /// Create a project, experiment, organization, membership, facility, pool, ingress or XDC.
    #[command(subcommand)]
    New(NewCommand),
    /// List projects, experiments, organizations, users, realizations, facilities, pools, ...
    List(ListArgs),
    /// Show one project, experiment, organization, user, realization, facility, pool, materialization
    /// or XDC.
    #[command(subcommand)]
    Show(ShowCommand),
    /// Change a realization's or XDC's expiration, or a pool's resources.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Delete a project, experiment, organization, membership, facility, pool, ingress or XDC.
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Manage SSH public keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Activate an account or facility resources (administrators).
    #[command(subcommand)]
    Activate(ActivateTarget),
    /// Take facility resources out of service: new realizations will not use them
    /// (administrators).
    #[command(subcommand)]
    Deactivate(DeactivateTarget),
    /// Freeze an account (administrators).
    #[command(subcommand)]
    Freeze(UserTarget),
    /// Reserve resources for an experiment revision.
    Realize(RealizeArgs),
    /// Release a realization's resources.
    Relinquish {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
    },
    /// Change a resource pool's projects, organizations or facilities (administrators).
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Bring a realization up on its facilities: boot its nodes, build its links.
    Materialize(MaterializeArgs),
    /// Tear a materialization down (its realization keeps the resources).
    Dematerialize(DematerializeArgs),
    /// Reboot a materialization's nodes, or generate files describing them.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Attach, detach and reach XDCs (experiment development containers).
    #[command(subcommand)]
    Xdc(XdcCommand),
    /// Compile a model (model.py) on the portal and report its problems; stores nothing.
    Compile {
        /// The model file.
        file: std::path::PathBuf,
    },
    /// Push a model as a new revision of an experiment.
    Push {
        /// The model file.
        file: std::path::PathBuf,
        /// `<experiment>.<project>`.
        experiment: ExperimentRef,
        /// Tag the revision.
        #[arg(long)]
        tag: Option<String>,
        /// Branch to push to.
        #[arg(long, default_value = "master")]
        branch: String,
    },
}

/// `trellis register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The new account's username.
    pub username: String,
    /// Email address.
    #[arg(long)]
    pub email: String,
    /// Full name.
    #[arg(long)]
    pub name: String,
    /// Institution.
    #[arg(long, default_value = "")]
    pub institution: String,
    /// Category (for example "Graduate student").
    #[arg(long, default_value = "")]
    pub category: String,
    /// Country.
    #[arg(long, default_value = "")]
    pub country: String,
    /// US state, for users in the United States.
    #[arg(long, default_value = "")]
    pub usstate: String,
    /// Make the account an administrator (administrators only).
    #[arg(long)]
    pub admin: bool,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `trellis login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username.
    pub username: String,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// Do not install the SSH key, certificate and `mergejump` configuration.
    #[arg(long, alias = "nokeys")]
    pub no_ssh: bool,
    /// Where to install them.
    #[command(flatten)]
    pub ssh: SshDirArg,
}

/// Access modes, as Merge names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum Mode {
    /// Visible to everyone.
    Public,
    /// Visible to portal users.
    Protected,
    /// Visible to members only.
    Private,
}

/// Roles a member may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum Role {
    /// An ordinary member.
    Member,
    /// A member who may manage the object.
    Maintainer,
}

/// `trellis new ...`.
#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// Create a project.
    Project {
        /// Project name.
        name: String,
        /// Description.
        #[arg(default_value = "")]
        description: String,
        /// Access mode.
        #[arg(long, short = 'm', value_enum, ignore_case = true, default_value = "public")]
        mode: Mode,
        /// Organization the project belongs to.
        #[arg(long, short = 'o')]
        org: Option<String>,
    },
    /// Create an experiment.
    Experiment {
        /// `<experiment>.<project>`.
        name: ExperimentRef,
        /// Description.
        #[arg(default_value = "")]
        description: String,
        /// Access mode.
        #[arg(long, short = 'm', value_enum, ignore_case = true, default_value = "public")]
        mode: Mode,
    },
    /// Create an organization.
    Organization {
        /// Organization name.
        name: String,
        /// Description.
        #[arg(default_value = "")]
        description: String,
        /// Access mode.
        #[arg(long, short = 'm', value_enum, ignore_case = true, default_value = "public")]
        mode: Mode,
    },
    /// Add a member.
    #[command(subcommand)]
    Member(NewMember),
    /// Commission a facility with its resource model (administrators).
    Facility(NewFacilityArgs),
    /// Create a resource pool (administrators).
    Pool(NewPoolArgs),
    /// Expose a node's port through the portal's ingress.
    Ingress(IngressArgs),
    /// Create an XDC (experiment development container).
    Xdc(NewXdcArgs),
}

/// `trellis new member ...`.
#[derive(Debug, Subcommand)]
pub enum NewMember {
    /// Add a user to a project.
    Project {
        /// Project name.
        project: String,
        /// Username to add.
        user: String,
        /// Role in the project.
        #[arg(long, short = 'r', value_enum, ignore_case = true, default_value = "Member")]
        role: Role,
    },
}

/// `trellis list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[command(subcommand)]
    pub kind: ListKind,
    /// Everything you may see, not only what you belong to.
    #[arg(long, short = 'a', global = true)]
    pub all: bool,
}

/// What `trellis list` lists.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ListKind {
    /// Projects.
    #[command(alias = "project")]
    Projects,
    /// Experiments.
    #[command(alias = "experiment")]
    Experiments,
    /// Organizations.
    #[command(alias = "organization")]
    Organizations,
    /// Users.
    #[command(alias = "user")]
    Users,
    /// Realizations.
    #[command(alias = "realization")]
    Realizations,
    /// Facilities.
    #[command(alias = "facility")]
    Facilities,
    /// Resource pools.
    #[command(alias = "pool")]
    Pools,
    /// Every facility resource and what is allocated on it.
    #[command(alias = "resource")]
    Resources,
    /// The allocation table: which realization holds what (administrators).
    #[command(alias = "allocation")]
    Allocations,
    /// Materializations.
    #[command(alias = "materialization")]
    Materializations,
    /// The ingresses of a materialization.
    #[command(alias = "ingress")]
    Ingresses {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
    },
    /// XDCs (experiment development containers).
    #[command(alias = "xdc")]
    Xdcs {
        /// Only this project's XDCs.
        #[arg(long, short = 'p')]
        project: Option<String>,
    },
}

/// `trellis show ...`.
#[derive(Debug, Subcommand)]
pub enum ShowCommand {
    /// Show a project.
    Project {
        /// Project name.
        name: String,
    },
    /// Show an experiment.
    Experiment {
        /// `<experiment>.<project>`.
        name: ExperimentRef,
        /// List its model revisions too.
        #[arg(short = 'm', long)]
        models: bool,
    },
    /// Show an organization.
    Organization {
        /// Organization name.
        name: String,
    },
    /// Show a user.
    User {
        /// Username.
        name: String,
    },
    /// Show a realization: its nodes on their hosts, its links, its status.
    Realization {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
    },
    /// Show a facility.
    Facility {
        /// Facility name.
        name: String,
        /// Summarize its resource model too.
        #[arg(short = 'm', long)]
        model: bool,
    },
    /// Show a resource pool.
    Pool {
        /// Pool name.
        name: String,
    },
    /// Show a materialization: its nodes, their infranet addresses, its ingresses.
    #[command(alias = "mat")]
    Materialization {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
        /// Draw the status of every task too.
        #[arg(short = 'S', long)]
        status: bool,
    },
    /// Show an XDC: its SSH name, Jupyter URLs, attachment and status.
    Xdc {
        /// `<xdc>.<project>`.
        name: XdcRef,
        /// Draw its status tree too.
        #[arg(short = 'S', long)]
        status: bool,
    },
}

/// `trellis delete ...`.
#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Delete a project.
    Project {
        /// Project name.
        name: String,
    },
    /// Delete an experiment.
    Experiment {
        /// `<experiment>.<project>`.
        name: ExperimentRef,
    },
    /// Delete an organization.
    Organization {
        /// Organization name.
        name: String,
    },
    /// Remove a member.
    #[command(subcommand)]
    Member(DeleteMember),
    /// Decommission a facility (administrators).
    Facility {
        /// Facility name.
        name: String,
    },
    /// Delete a resource pool (administrators).
    Pool {
        /// Pool name.
        name: String,
    },
    /// Stop exposing a node's port.
    Ingress(IngressArgs),
    /// Delete an XDC (its home and project directories stay).
    Xdc {
        /// `<xdc>.<project>`.
        name: XdcRef,
    },
}

/// `trellis delete member ...`.
#[derive(Debug, Subcommand)]
pub enum DeleteMember {
    /// Remove a user from a project.
    Project {
        /// Project name.
        project: String,
        /// Username to remove.
        user: String,
    },
}

/// `trellis keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add an SSH public key (an OpenSSH `.pub` file).
    Add {
        /// The public key file.
        file: PathBuf,
        /// Whose keys (administrators; default: you).
        #[arg(long, short = 'u')]
        user: Option<String>,
    },
    /// List SSH public keys.
    List {
        /// Whose keys (default: you).
        #[arg(long, short = 'u')]
        user: Option<String>,
    },
    /// Delete an SSH public key by its SHA256 fingerprint.
    Delete {
        /// The fingerprint, as `trellis keys list` shows it.
        fingerprint: String,
        /// Whose keys (administrators; default: you).
        #[arg(long, short = 'u')]
        user: Option<String>,
    },
}

/// The only noun `freeze` takes.
#[derive(Debug, Subcommand)]
pub enum UserTarget {
    /// A user account.
    User {
        /// Username.
        name: String,
    },
}

/// What `activate` takes.
#[derive(Debug, Subcommand)]
pub enum ActivateTarget {
    /// A user account.
    User {
        /// Username.
        name: String,
    },
    /// Resources of a facility, back in service.
    Resources(ResourcesTarget),
}

/// What `deactivate` takes.
#[derive(Debug, Subcommand)]
pub enum DeactivateTarget {
    /// Resources of a facility, out of service.
    Resources(ResourcesTarget),
}

/// An experiment named `<experiment>.<project>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentRef {
    /// The experiment's name.
    pub experiment: String,
    /// The project it belongs to.
    pub project: String,
}

impl FromStr for ExperimentRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('.') {
            Some((experiment, project))
                if !experiment.is_empty() && !project.is_empty() && !project.contains('.') =>
            {
                Ok(ExperimentRef { experiment: experiment.to_owned(), project: project.to_owned() })
            }
            _ => Err(format!("expected <experiment>.<project>, got {s:?}")),
        }
    }
}

impl fmt::Display for ExperimentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.experiment, self.project)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn experiment_refs_need_exactly_one_dot() {
        let r: ExperimentRef = "exp.proj".parse().unwrap();
        assert_eq!((r.experiment.as_str(), r.project.as_str()), ("exp", "proj"));
        assert_eq!(r.to_string(), "exp.proj");
        for bad in ["exp", ".proj", "exp.", "a.b.c", ""] {
            assert!(bad.parse::<ExperimentRef>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unique_prefixes_select_subcommands() {
        let cli = Cli::try_parse_from(["trellis", "li", "proj", "--all"]).unwrap();
        assert!(matches!(cli.command, Command::List(ListArgs { kind: ListKind::Projects, all: true })));
        let cli =
            Cli::try_parse_from(["trellis", "new", "mem", "pro", "p1", "bob", "-r", "maintainer"]).unwrap();
        match cli.command {
            Command::New(NewCommand::Member(NewMember::Project { project, user, role })) => {
                assert_eq!((project.as_str(), user.as_str(), role), ("p1", "bob", Role::Maintainer));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn ambiguous_or_bad_input_is_a_usage_error() {
        // The experiment reference and the mode are checked while parsing.
        let err = Cli::try_parse_from(["trellis", "new", "experiment", "noproject"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["trellis", "new", "project", "p", "--mode", "secret"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
