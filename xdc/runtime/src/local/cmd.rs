//! The host tools the local runtime drives (`ip`, `crun`), through `trellis-crun`.

use crate::RuntimeError;

impl From<trellis_crun::Error> for RuntimeError {
    fn from(e: trellis_crun::Error) -> Self {
        match e {
            trellis_crun::Error::UnsupportedHost(message) => RuntimeError::Unavailable(message),
            other => RuntimeError::Failed(other.to_string()),
        }
    }
}

/// Runs `program args`, feeding `stdin` when given; returns its standard output.
pub(crate) async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, RuntimeError> {
    Ok(trellis_crun::host::run(program, args, stdin).await?)
}

/// Runs `ip -batch -` (inside namespace `netns` when given) over `script`.
pub(crate) async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), RuntimeError> {
    Ok(trellis_crun::host::ip_batch(netns, script).await?)
}
