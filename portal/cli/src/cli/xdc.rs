//! The command-line shapes for XDCs (experiment development containers) and reaching them
//! over SSH.
//!
//! An XDC is named `<xdc>.<project>`, as in Merge; over SSH it is `<xdc>-<project>` through
//! the portal's jump host.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Subcommand, ValueEnum};

use super::{Lifetime, RealizationRef};

/// An XDC named `<xdc>.<project>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdcRef {
    /// The XDC's name.
    pub xdc: String,
    /// The project it belongs to.
    pub project: String,
}

impl FromStr for XdcRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('.') {
            Some((xdc, project)) if !xdc.is_empty() && !project.is_empty() && !project.contains('.') => {
                Ok(XdcRef { xdc: xdc.to_owned(), project: project.to_owned() })
            }
            _ => Err(format!("expected <xdc>.<project>, got {s:?}")),
        }
    }
}

impl fmt::Display for XdcRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.xdc, self.project)
    }
}

/// A jump host given on the command line: `host:port`, `host` (port 22) or `[v6addr]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpAddr {
    /// Host name or address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for JumpAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected host:port or [address]:port, got {s:?}");
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match s.rsplit_once(':') {
                Some((_, _)) if s.matches(':').count() > 1 => (s, None),
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@' || c == ',') {
            return Err(bad());
        }
        let port = match port {
            None => 22,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        };
        Ok(JumpAddr { host: host.to_owned(), port })
    }
}

/// Shared or personal, as Merge's `XDCType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum XdcKind {
    /// One per project, with an account for every member.
    Shared,
    /// For you alone, with all your projects mounted.
    Personal,
}

/// `trellis new xdc`.
#[derive(Debug, Args)]
pub struct NewXdcArgs {
    /// `<xdc>.<project>`.
    pub name: XdcRef,
    /// Shared by the project's members, or personal.
    #[arg(long = "type", short = 't', value_enum, ignore_case = true, default_value = "shared")]
    pub kind: XdcKind,
    /// Image (see `trellis xdc images`; default: the portal's).
    #[arg(long, short = 'i')]
    pub image: Option<String>,
    /// CPU cores (default: the portal's).
    #[arg(long, value_name = "CORES", value_parser = clap::value_parser!(i32).range(1..))]
    pub cpu: Option<i32>,
    /// Memory in GiB (default: the portal's).
    #[arg(long, value_name = "GIB", value_parser = clap::value_parser!(i32).range(1..))]
    pub memory: Option<i32>,
    /// Delete the XDC after this long (`7d`, `12h`, ...; default: never).
    #[arg(long)]
    pub expires: Option<Lifetime>,
}

/// Where the SSH key, certificate and configuration live.
#[derive(Debug, Clone, Default, Args)]
pub struct SshDirArg {
    /// Directory for the SSH key, certificate, known hosts and config (default: ~/.ssh).
    #[arg(long, env = "TRELLIS_SSH_DIR", value_name = "DIR")]
    pub ssh_dir: Option<PathBuf>,
}

/// How `trellis xdc ssh|scp` reach the XDC.
#[derive(Debug, Clone, Args)]
pub struct SshOptions {
    /// Go on from the XDC to this node of the attached materialization.
    #[arg(short = 'x', long, value_name = "NODE")]
    pub node: Option<String>,
    /// Use this jump host (`host:port`) instead of the one the portal names.
    #[arg(long, value_name = "HOST:PORT")]
    pub jump: Option<JumpAddr>,
    /// Print the command instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the key and certificate are.
    #[command(flatten)]
    pub dir: SshDirArg,
}

/// `trellis xdc ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// `<xdc>.<project>`.
    pub name: XdcRef,
    /// How to get there.
    #[command(flatten)]
    pub options: SshOptions,
    /// Forward a local port: `lport:host:rport` (repeatable), as `ssh -L`.
    #[arg(short = 'L', value_name = "LPORT:HOST:RPORT")]
    pub forward: Vec<String>,
    /// A command to run instead of a login shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Which way `trellis xdc scp` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScpDirection {
    /// Local files to the XDC (or node).
    Upload,
    /// Files on the XDC (or node) to here.
    Download,
}

/// `trellis xdc scp`.
#[derive(Debug, Args)]
pub struct ScpArgs {
    /// `upload` (local → XDC) or `download` (XDC → local).
    #[arg(value_enum, ignore_case = true)]
    pub direction: ScpDirection,
    /// `<xdc>.<project>`.
    pub name: XdcRef,
    /// Sources, then the destination; remote paths are on the XDC (or node).
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<String>,
    /// Copy directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// How to get there.
    #[command(flatten)]
    pub options: SshOptions,
}

/// `trellis xdc ...`.
#[derive(Debug, Subcommand)]
pub enum XdcCommand {
    /// Connect an XDC to a materialization's infranet.
    Attach {
        /// `<xdc>.<project>`.
        name: XdcRef,
        /// `<realization>.<experiment>.<project>`.
        materialization: RealizationRef,
        /// Detach it from another materialization first.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Disconnect an XDC from its materialization.
    Detach {
        /// `<xdc>.<project>`.
        name: XdcRef,
    },
    /// Log in to an XDC (or a node beyond it) with ssh through the portal's jump host.
    Ssh(SshArgs),
    /// Copy files to or from an XDC (or a node beyond it) with scp.
    Scp(ScpArgs),
    /// List the portal's SSH jump hosts.
    #[command(alias = "jump")]
    Jumphosts,
    /// List the images XDCs can run.
    Images,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, DeleteCommand, ListKind, NewCommand, ShowCommand, UpdateCommand};

    fn parse(args: &[&str]) -> Command {
        let mut full = vec!["trellis"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).unwrap_or_else(|e| panic!("{args:?}: {e}")).command
    }

    fn usage_error(args: &[&str]) {
        let mut full = vec!["trellis"];
        full.extend_from_slice(args);
        assert_eq!(Cli::try_parse_from(&full).unwrap_err().exit_code(), 2, "{args:?} accepted");
    }

    #[test]
    fn xdc_refs_need_exactly_one_dot() {
        let r: XdcRef = "x0.proj".parse().unwrap();
        assert_eq!((r.xdc.as_str(), r.project.as_str(), r.to_string()), ("x0", "proj", "x0.proj".into()));
        for bad in ["x0", ".p", "x0.", "a.b.c", ""] {
            assert!(bad.parse::<XdcRef>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn jump_addresses_parse() {
        let j = |s: &str| s.parse::<JumpAddr>().map(|j| (j.host, j.port));
        assert_eq!(j("jump.example.net:2022"), Ok(("jump.example.net".into(), 2022)));
        assert_eq!(j("localhost"), Ok(("localhost".into(), 22)));
        assert_eq!(j("[::1]:2202"), Ok(("::1".into(), 2202)));
        assert_eq!(j("[::1]"), Ok(("::1".into(), 22)));
        assert_eq!(j("::1"), Ok(("::1".into(), 22)));
        for bad in ["", ":22", "h:0", "h:x", "h:70000", "[::1]x", "u@h:22", "a,b:1", "a b"] {
            assert!(bad.parse::<JumpAddr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn crud_commands_parse() {
        match parse(&[
            "new", "xdc", "x0.p", "--type", "personal", "--cpu", "2", "--memory", "8", "-i", "default",
        ]) {
            Command::New(NewCommand::Xdc(a)) => {
                assert_eq!(a.name.to_string(), "x0.p");
                assert_eq!(
                    (a.kind, a.cpu, a.memory, a.image.as_deref()),
                    (XdcKind::Personal, Some(2), Some(8), Some("default"))
                );
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            matches!(parse(&["new", "xdc", "x0.p"]), Command::New(NewCommand::Xdc(a)) if a.kind == XdcKind::Shared)
        );
        usage_error(&["new", "xdc", "x0"]);
        usage_error(&["new", "xdc", "x0.p", "--cpu", "0"]);
        usage_error(&["new", "xdc", "x0.p", "--type", "private"]);
        let Command::List(list) = parse(&["list", "xdcs", "-a"]) else { panic!() };
        assert!(list.all && matches!(list.kind, ListKind::Xdcs { project: None }));
        let Command::List(list) = parse(&["list", "xdc", "-p", "p1"]) else { panic!() };
        assert!(matches!(list.kind, ListKind::Xdcs { project: Some(p) } if p == "p1"));
        assert!(matches!(
            parse(&["show", "xdc", "x0.p", "-S"]),
            Command::Show(ShowCommand::Xdc { status: true, .. })
        ));
        assert!(matches!(parse(&["delete", "xdc", "x0.p"]), Command::Delete(DeleteCommand::Xdc { .. })));
        assert!(matches!(
            parse(&["update", "xdc", "x0.p", "--expires", "never"]),
            Command::Update(UpdateCommand::Xdc { expires: Lifetime::Never, .. })
        ));
        usage_error(&["update", "xdc", "x0.p"]);
    }

    #[test]
    fn xdc_subcommands_parse() {
        match parse(&["xdc", "attach", "x0.p", "r.e.p", "--force"]) {
            Command::Xdc(XdcCommand::Attach { name, materialization, force }) => {
                assert_eq!(
                    (name.to_string(), materialization.to_string(), force),
                    ("x0.p".into(), "r.e.p".into(), true)
                );
            }
            other => panic!("parsed as {other:?}"),
        }
        usage_error(&["xdc", "attach", "x0.p", "e.p"]);
        assert!(matches!(parse(&["xdc", "det", "x0.p"]), Command::Xdc(XdcCommand::Detach { .. })));
        assert!(matches!(parse(&["xdc", "jumphosts"]), Command::Xdc(XdcCommand::Jumphosts)));
        match parse(&[
            "xdc",
            "ssh",
            "x0.p",
            "-x",
            "a",
            "-L",
            "8888:localhost:8888",
            "--jump",
            "h:2202",
            "--dry-run",
            "--",
            "ls",
            "-l",
        ]) {
            Command::Xdc(XdcCommand::Ssh(a)) => {
                assert_eq!(a.options.node.as_deref(), Some("a"));
                assert_eq!(a.options.jump, Some(JumpAddr { host: "h".into(), port: 2202 }));
                assert!(a.options.dry_run);
                assert_eq!(a.forward, ["8888:localhost:8888"]);
                assert_eq!(a.command, ["ls", "-l"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse(&["xdc", "scp", "upload", "x0.p", "a.txt", "b.txt", "dir/", "-r"]) {
            Command::Xdc(XdcCommand::Scp(a)) => {
                assert_eq!((a.direction, a.recursive, a.paths.len()), (ScpDirection::Upload, true, 3));
            }
            other => panic!("parsed as {other:?}"),
        }
        usage_error(&["xdc", "scp", "upload", "x0.p", "only-one"]);
        usage_error(&["xdc", "scp", "sideways", "x0.p", "a", "b"]);
    }
}
