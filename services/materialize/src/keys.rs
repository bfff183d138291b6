//! Where materialization and ingress records live in the state store.
//!
//! ```text
//! /trellis/materialize/materializations/<proj>/<exp>/<rlz>  MaterializationRecord (JSON): the
//!                                                          wanted state, written by the API
//! /trellis/materialize/status/<proj>/<exp>/<rlz>           StatusRecord (JSON): what the
//!                                                          facilities last reported, written by
//!                                                          the controller holding the lock
//! /trellis/materialize/locks/<proj>/<exp>/<rlz>            id of the controller driving it,
//!                                                          attached to that controller's lease
//! /trellis/ingress/routes/<mzid>/<node>/<proto>/<port>     IngressRoute (JSON)
//! /trellis/ingress/gateway-ports/<proto>/<port>            key of the route holding that
//!                                                          gateway port (tcp and udp)
//! ```
//!
//! A materialization's status, lock and ingress routes are removed in the same transaction as
//! its wanted record, once every facility has torn it down.

/// Everything the materialize service keeps.
pub const ROOT: &str = "/trellis/materialize/";
/// Prefix of wanted materializations.
pub const MATERIALIZATIONS: &str = "/trellis/materialize/materializations/";
/// Prefix of observed status.
pub const STATUS: &str = "/trellis/materialize/status/";
/// Prefix of controller locks.
pub const LOCKS: &str = "/trellis/materialize/locks/";
/// Prefix of ingress routes.
pub const INGRESS_ROUTES: &str = "/trellis/ingress/routes/";
/// Prefix of gateway port claims.
pub const GATEWAY_PORTS: &str = "/trellis/ingress/gateway-ports/";

/// The `<proj>/<exp>/<rlz>` part shared by a materialization's keys.
fn path(project: &str, experiment: &str, realization: &str) -> String {
    format!("{project}/{experiment}/{realization}")
}

pub fn materialization(project: &str, experiment: &str, realization: &str) -> String {
    format!("{MATERIALIZATIONS}{}", path(project, experiment, realization))
}

pub fn status(project: &str, experiment: &str, realization: &str) -> String {
    format!("{STATUS}{}", path(project, experiment, realization))
}

pub fn lock(project: &str, experiment: &str, realization: &str) -> String {
    format!("{LOCKS}{}", path(project, experiment, realization))
}

/// The `<proj>/<exp>/<rlz>` a materialization, status or lock key names.
pub fn parse(key: &str) -> Option<(String, String, String)> {
    let rest = [MATERIALIZATIONS, STATUS, LOCKS].iter().find_map(|p| key.strip_prefix(p))?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(e), Some(r), None) if !p.is_empty() && !e.is_empty() && !r.is_empty() => {
            Some((p.to_owned(), e.to_owned(), r.to_owned()))
        }
        _ => None,
    }
}

/// Prefix of one materialization's ingress routes.
pub fn ingress_routes(mzid: &str) -> String {
    format!("{INGRESS_ROUTES}{mzid}/")
}

pub fn ingress_route(mzid: &str, node: &str, protocol: &str, port: u32) -> String {
    format!("{INGRESS_ROUTES}{mzid}/{node}/{protocol}/{port}")
}

pub fn gateway_ports(protocol: &str) -> String {
    format!("{GATEWAY_PORTS}{protocol}/")
}

pub fn gateway_port(protocol: &str, port: u32) -> String {
    format!("{GATEWAY_PORTS}{protocol}/{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_materialization() {
        let want = Some(("p".to_owned(), "e".to_owned(), "r".to_owned()));
        for key in [materialization("p", "e", "r"), status("p", "e", "r"), lock("p", "e", "r")] {
            assert!(key.starts_with(ROOT));
            assert_eq!(parse(&key), want, "{key}");
        }
        for bad in
            [MATERIALIZATIONS.to_owned(), format!("{STATUS}p/e"), format!("{LOCKS}p/e/r/x"), "/x".into()]
        {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        assert!(ingress_route("r.e.p", "n", "tcp", 22).starts_with(&ingress_routes("r.e.p")));
        // One materialization's prefix never covers another's whose id extends it.
        assert!(!ingress_route("r.e.pp", "n", "tcp", 22).starts_with(&ingress_routes("r.e.p")));
    }
}
