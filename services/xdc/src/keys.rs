//! Where XDC records live in the state store.
//!
//! ```text
//! /trellis/xdc/xdcs/<project>/<xdc>     XdcRecord (JSON): the wanted XDC, written by the API
//! /trellis/xdc/status/<project>/<xdc>   XdcStatusRecord (JSON): what the runtime reported,
//!                                       written by the controller
//! ```
//! Deleting an XDC deletes both records; its volumes are kept (they belong to users and
//! projects, not to XDCs).

/// Everything the XDC service keeps.
pub const ROOT: &str = "/trellis/xdc/";
/// Prefix of wanted XDCs.
pub const XDCS: &str = "/trellis/xdc/xdcs/";
/// Prefix of observed status.
pub const STATUS: &str = "/trellis/xdc/status/";

pub fn xdc(project: &str, name: &str) -> String {
    format!("{XDCS}{project}/{name}")
}

pub fn project_xdcs(project: &str) -> String {
    format!("{XDCS}{project}/")
}

pub fn status(project: &str, name: &str) -> String {
    format!("{STATUS}{project}/{name}")
}
