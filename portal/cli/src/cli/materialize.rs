//! The command-line shapes for materializations, their nodes and ingresses.
//!
//! A materialization has its realization's name, `<realization>.<experiment>.<project>`.

use clap::{Args, Subcommand, ValueEnum};

use super::RealizationRef;

/// `trellis materialize`.
#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// `<realization>.<experiment>.<project>`.
    pub name: RealizationRef,
    /// Wait until every node and link is up (or one fails), showing progress.
    #[arg(long)]
    pub sync: bool,
    /// With --sync, give up after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `trellis dematerialize`.
#[derive(Debug, Args)]
pub struct DematerializeArgs {
    /// `<realization>.<experiment>.<project>`.
    pub name: RealizationRef,
    /// Wait until the portal has removed the materialization.
    #[arg(long)]
    pub sync: bool,
    /// With --sync, give up after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u64,
}

/// `trellis nodes ...`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Reboot nodes of a materialization.
    Reboot {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
        /// The nodes to reboot.
        #[arg(required_unless_present = "all")]
        nodes: Vec<String>,
        /// Reboot every node.
        #[arg(long, conflicts_with = "nodes")]
        all: bool,
    },
    /// Write a file describing a materialization's nodes on standard output.
    #[command(subcommand)]
    Generate(GenerateTarget),
}

/// `trellis nodes generate ...`.
#[derive(Debug, Subcommand)]
pub enum GenerateTarget {
    /// An Ansible inventory (INI) reaching every node at its infranet address.
    Inventory {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
    },
    /// /etc/hosts lines naming every node's infranet address.
    Etchosts {
        /// `<realization>.<experiment>.<project>`.
        name: RealizationRef,
    },
}

/// The protocols an ingress forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum IngressProtocol {
    /// HTTP, proxied by URL.
    Http,
    /// HTTPS, proxied by URL.
    Https,
    /// A TCP port on the gateway.
    Tcp,
    /// A UDP port on the gateway.
    Udp,
}

/// `trellis new|delete ingress`.
#[derive(Debug, Args)]
pub struct IngressArgs {
    /// `<realization>.<experiment>.<project>`.
    pub name: RealizationRef,
    /// The node whose port is exposed.
    pub node: String,
    /// The protocol.
    #[arg(value_enum, ignore_case = true)]
    pub protocol: IngressProtocol,
    /// The port on the node.
    #[arg(value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub port: u32,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, DeleteCommand, ListKind, NewCommand, ShowCommand};

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
    fn materialize_and_dematerialize_parse() {
        match parse(&["materialize", "r.e.p", "--sync", "--timeout", "20"]) {
            Command::Materialize(a) => {
                assert_eq!((a.name.to_string(), a.sync, a.timeout), ("r.e.p".to_owned(), true, 20));
            }
            other => panic!("parsed as {other:?}"),
        }
        match parse(&["materialize", "r.e.p"]) {
            Command::Materialize(a) => assert_eq!((a.sync, a.timeout), (false, 300)),
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(parse(&["demat", "r.e.p", "--sync"]), Command::Dematerialize(a) if a.sync));
        usage_error(&["materialize", "e.p"]);
        usage_error(&["materialize", "r.e.p", "--timeout", "soon"]);
    }

    #[test]
    fn show_and_list_materializations_parse() {
        assert!(matches!(
            parse(&["show", "mat", "r.e.p", "-S"]),
            Command::Show(ShowCommand::Materialization { status: true, .. })
        ));
        assert!(matches!(
            parse(&["show", "materialization", "r.e.p"]),
            Command::Show(ShowCommand::Materialization { status: false, .. })
        ));
        let Command::List(list) = parse(&["list", "materializations", "-a"]) else { panic!() };
        assert!(list.all && list.kind == ListKind::Materializations);
        let Command::List(list) = parse(&["list", "ingresses", "r.e.p"]) else { panic!() };
        assert!(matches!(list.kind, ListKind::Ingresses { name } if name.to_string() == "r.e.p"));
        usage_error(&["list", "ingresses"]);
    }

    #[test]
    fn nodes_commands_parse() {
        match parse(&["nodes", "reboot", "r.e.p", "a", "b"]) {
            Command::Nodes(NodesCommand::Reboot { nodes, all, .. }) => {
                assert_eq!((nodes.as_slice(), all), (["a".to_owned(), "b".to_owned()].as_slice(), false));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            parse(&["nodes", "reboot", "r.e.p", "--all"]),
            Command::Nodes(NodesCommand::Reboot { all: true, .. })
        ));
        // Either nodes or --all, not neither and not both.
        usage_error(&["nodes", "reboot", "r.e.p"]);
        usage_error(&["nodes", "reboot", "r.e.p", "a", "--all"]);
        assert!(matches!(
            parse(&["nodes", "gen", "inv", "r.e.p"]),
            Command::Nodes(NodesCommand::Generate(GenerateTarget::Inventory { .. }))
        ));
        assert!(matches!(
            parse(&["nodes", "generate", "etchosts", "r.e.p"]),
            Command::Nodes(NodesCommand::Generate(GenerateTarget::Etchosts { .. }))
        ));
    }

    #[test]
    fn ingress_commands_parse() {
        match parse(&["new", "ingress", "r.e.p", "web", "HTTPS", "8443"]) {
            Command::New(NewCommand::Ingress(a)) => {
                assert_eq!((a.node.as_str(), a.protocol, a.port), ("web", IngressProtocol::Https, 8443));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            parse(&["delete", "ingress", "r.e.p", "a", "udp", "53"]),
            Command::Delete(DeleteCommand::Ingress(IngressArgs { protocol: IngressProtocol::Udp, .. }))
        ));
        usage_error(&["new", "ingress", "r.e.p", "web", "sctp", "80"]);
        usage_error(&["new", "ingress", "r.e.p", "web", "tcp", "0"]);
        usage_error(&["new", "ingress", "r.e.p", "web", "tcp", "70000"]);
    }
}
