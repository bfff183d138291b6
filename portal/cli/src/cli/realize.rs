//! The command-line shapes for realizations, facilities and pools.
//!
//! Realizations are named `<realization>.<experiment>.<project>`, as Merge's `mrg` names them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Subcommand, ValueEnum};

/// A realization named `<realization>.<experiment>.<project>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealizationRef {
    /// The realization's name.
    pub realization: String,
    /// The experiment it realizes.
    pub experiment: String,
    /// The project the experiment belongs to.
    pub project: String,
}

impl FromStr for RealizationRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split('.').collect::<Vec<_>>().as_slice() {
            [realization, experiment, project]
                if [realization, experiment, project].iter().all(|p| !p.is_empty()) =>
            {
                Ok(RealizationRef {
                    realization: (*realization).to_owned(),
                    experiment: (*experiment).to_owned(),
                    project: (*project).to_owned(),
                })
            }
            _ => Err(format!("expected <realization>.<experiment>.<project>, got {s:?}")),
        }
    }
}

impl fmt::Display for RealizationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.realization, self.experiment, self.project)
    }
}

/// How `trellis realize` names the model revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevisionKind {
    /// A revision id (the SHA-256 `trellis push` printed).
    Revision,
    /// A tag given at push time.
    Tag,
    /// The newest revision on a branch.
    Branch,
}

/// How long a realization holds its resources: a duration such as `7d`, `2w3d`, `12h`, or
/// `never` (it does not expire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifetime {
    /// Until relinquished.
    Never,
    /// For this long, in Merge's syntax (`2w3d4h5m6s`); the portal parses it.
    For(String),
}

impl FromStr for Lifetime {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("never") {
            Ok(Lifetime::Never)
        } else if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains(char::is_whitespace) {
            Ok(Lifetime::For(s.to_owned()))
        } else {
            Err(format!("expected a duration such as 7d, 2w3d or 12h, or `never`; got {s:?}"))
        }
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifetime::Never => f.write_str("never"),
            Lifetime::For(d) => f.write_str(d),
        }
    }
}

/// `trellis realize`.
#[derive(Debug, Args)]
pub struct RealizeArgs {
    /// `<realization>.<experiment>.<project>`.
    pub realization: RealizationRef,
    /// How the model is named: revision, tag or branch.
    #[arg(value_enum, ignore_case = true)]
    pub kind: RevisionKind,
    /// The revision id, tag or branch name.
    pub reference: String,
    /// How long to hold the resources (`7d`, `2w`, `12h`, ... or `never`; default: the portal's).
    #[arg(long, short = 'd')]
    pub duration: Option<Lifetime>,
}

/// `trellis update ...`.
#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Change a realization.
    #[command(subcommand)]
    Realization(UpdateRealization),
    /// Change a resource pool (administrators).
    #[command(subcommand)]
    Pool(UpdatePool),
    /// Change when an XDC expires.
    Xdc {
        /// `<xdc>.<project>`.
        name: super::XdcRef,
        /// A duration from now (`7d`, `12h`, ...) or `never`.
        #[arg(long)]
        expires: Lifetime,
    },
}

/// `trellis update realization ...`.
#[derive(Debug, Subcommand)]
pub enum UpdateRealization {
    /// Set how long, from now, the realization keeps its resources.
    Expiration {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
        /// A duration from now (`30d`, `2w`, ...) or `never`.
        duration: Lifetime,
    },
}

/// How `trellis update pool resources` changes a facility's resource list in a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolPatch {
    /// The list becomes exactly the given resources.
    Replace,
    /// The given resources are added.
    Expand,
    /// The given resources are taken out.
    Subtract,
}

/// `trellis update pool ...`.
#[derive(Debug, Subcommand)]
pub enum UpdatePool {
    /// Change which of a facility's resources the pool holds.
    Resources {
        /// Pool name.
        pool: String,
        /// Facility name.
        facility: String,
        /// Resource ids.
        #[arg(required = true)]
        resources: Vec<String>,
        /// How to combine them with the pool's current list.
        #[arg(long, value_enum, ignore_case = true, default_value = "replace")]
        strategy: PoolPatch,
    },
    /// Set the pool's priority (higher is used first).
    Priority {
        /// Pool name.
        pool: String,
        /// The priority.
        priority: i64,
    },
}

/// `trellis new facility`.
#[derive(Debug, Args)]
pub struct NewFacilityArgs {
    /// Facility name.
    pub name: String,
    /// The facility's API address (`host` or `host:port`).
    pub address: String,
    /// The facility's resource model: an XIR `Facility` message in binary protobuf encoding
    /// (as Merge's facility tooling writes `model.pb`). JSON is not accepted.
    pub model: PathBuf,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
}

/// `trellis new pool`.
#[derive(Debug, Args)]
pub struct NewPoolArgs {
    /// Pool name.
    pub name: String,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// A project that may use the pool (repeatable).
    #[arg(long = "project", short = 'p')]
    pub projects: Vec<String>,
    /// An organization whose projects may use the pool (repeatable).
    #[arg(long = "organization", short = 'o')]
    pub organizations: Vec<String>,
    /// A facility whose resources the pool draws on (repeatable).
    #[arg(long = "facility", short = 'f')]
    pub facilities: Vec<String>,
    /// Priority: pools with higher values are used first.
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
}

/// `trellis pool ...`: a pool's projects, organizations and facilities.
#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add a project, organization or facility to a pool.
    #[command(subcommand)]
    Add(PoolAdd),
    /// Remove a project, organization or facility from a pool.
    #[command(subcommand)]
    Remove(PoolRemove),
}

/// `trellis pool add ...`.
#[derive(Debug, Subcommand)]
pub enum PoolAdd {
    /// Let a project use the pool.
    Project {
        /// Pool name.
        pool: String,
        /// Project name.
        project: String,
    },
    /// Let an organization's projects use the pool.
    Organization {
        /// Pool name.
        pool: String,
        /// Organization name.
        organization: String,
    },
    /// Draw on a facility's resources.
    Facility {
        /// Pool name.
        pool: String,
        /// Facility name.
        facility: String,
        /// Only these resources (default: none yet; see `trellis update pool resources`).
        resources: Vec<String>,
    },
}

/// `trellis pool remove ...`.
#[derive(Debug, Subcommand)]
pub enum PoolRemove {
    /// Stop a project using the pool.
    Project {
        /// Pool name.
        pool: String,
        /// Project name.
        project: String,
    },
    /// Stop an organization's projects using the pool.
    Organization {
        /// Pool name.
        pool: String,
        /// Organization name.
        organization: String,
    },
    /// Stop drawing on a facility.
    Facility {
        /// Pool name.
        pool: String,
        /// Facility name.
        facility: String,
    },
}

/// `trellis activate|deactivate resources`.
#[derive(Debug, Args)]
pub struct ResourcesTarget {
    /// Facility name.
    pub facility: String,
    /// Resource ids in the facility's model.
    #[arg(required = true)]
    pub resources: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{ActivateTarget, Cli, Command, DeactivateTarget, NewCommand};

    #[test]
    fn realization_commands_parse() {
        let cli =
            Cli::try_parse_from(["trellis", "realize", "r.e.p", "tag", "v1", "--duration", "never"]).unwrap();
        match cli.command {
            Command::Realize(args) => {
                assert_eq!(args.realization.to_string(), "r.e.p");
                assert_eq!((args.kind, args.reference.as_str()), (RevisionKind::Tag, "v1"));
                assert_eq!(args.duration, Some(Lifetime::Never));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["trellis", "up", "real", "exp", "r.e.p", "30d"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Update(UpdateCommand::Realization(UpdateRealization::Expiration { duration: Lifetime::For(d), .. }))
                if d == "30d"
        ));
        // Usage errors: a realization needs three parts, and the reference kind is checked.
        for bad in [
            vec!["trellis", "realize", "e.p", "branch", "master"],
            vec!["trellis", "realize", "r.e.p", "commit", "abc"],
            vec!["trellis", "realize", "r.e.p", "branch", "master", "-d", "forever"],
        ] {
            assert_eq!(Cli::try_parse_from(&bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn facility_and_pool_commands_parse() {
        let cli = Cli::try_parse_from([
            "trellis",
            "new",
            "pool",
            "p1",
            "-p",
            "a",
            "-p",
            "b",
            "--facility",
            "local",
        ])
        .unwrap();
        match cli.command {
            Command::New(NewCommand::Pool(args)) => {
                assert_eq!(args.projects, ["a", "b"]);
                assert_eq!(args.facilities, ["local"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["trellis", "pool", "add", "facility", "p1", "local", "h1", "h2"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Pool(PoolCommand::Add(PoolAdd::Facility { resources, .. })) if resources == ["h1", "h2"]
        ));
        let cli = Cli::try_parse_from(["trellis", "deactivate", "resources", "local", "h1"]).unwrap();
        assert!(matches!(cli.command, Command::Deactivate(DeactivateTarget::Resources(_))));
        let cli = Cli::try_parse_from(["trellis", "activate", "user", "bob"]).unwrap();
        assert!(matches!(cli.command, Command::Activate(ActivateTarget::User { .. })));
        // Resources must be named.
        assert!(Cli::try_parse_from(["trellis", "activate", "resources", "local"]).is_err());
    }

    #[test]
    fn realization_refs_need_exactly_two_dots() {
        let r: RealizationRef = "rlz.exp.proj".parse().unwrap();
        assert_eq!(
            (r.realization.as_str(), r.experiment.as_str(), r.project.as_str()),
            ("rlz", "exp", "proj")
        );
        assert_eq!(r.to_string(), "rlz.exp.proj");
        for bad in ["exp.proj", "a.b.c.d", ".b.c", "a..c", "a.b.", ""] {
            assert!(bad.parse::<RealizationRef>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lifetimes_are_never_or_a_duration() {
        assert_eq!("never".parse::<Lifetime>().unwrap(), Lifetime::Never);
        assert_eq!("Never".parse::<Lifetime>().unwrap(), Lifetime::Never);
        assert_eq!("2w3d".parse::<Lifetime>().unwrap(), Lifetime::For("2w3d".into()));
        for bad in ["", "forever", "d7", "7 d"] {
            assert!(bad.parse::<Lifetime>().is_err(), "{bad:?} accepted");
        }
    }
}
