//! The host tools the agent drives (`ip`, `tc`, `iptables-restore`, `crun`, `ssh-keygen`),
//! through `trellis-crun`, with a failure (and the tool's own words) as an internal error.

use trellis_types::Error;

pub(crate) fn internal(e: trellis_crun::Error) -> Error {
    Error::Internal(e.to_string())
}

/// Runs `program args`, feeding `stdin` when given; returns its standard output.
pub(crate) async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    trellis_crun::host::run(program, args, stdin).await.map_err(internal)
}

/// Runs `ip -batch -` (inside namespace `netns` when given) over `script`.
pub(crate) async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), Error> {
    trellis_crun::host::ip_batch(netns, script).await.map_err(internal)
}

/// Runs `tc -batch -` inside namespace `netns`.
pub(crate) async fn tc_batch(netns: &str, script: &str) -> Result<(), Error> {
    trellis_crun::host::tc_batch(netns, script).await.map_err(internal)
}
