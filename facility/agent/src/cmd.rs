//! Running the host tools the agent drives (`ip`, `tc`, `iptables-restore`, `crun`,
//! `ssh-keygen`), with their error output kept for the message.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// A host tool failed to start or exited with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{command} failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
}

impl From<CommandError> for trellis_types::Error {
    fn from(e: CommandError) -> Self {
        trellis_types::Error::Internal(e.to_string())
    }
}

/// Runs `program args`, feeding `stdin` when given; returns its standard output.
pub(crate) async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, CommandError> {
    let spawn_error = |source| CommandError::Spawn { program: program.to_owned(), source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await.map_err(spawn_error)?;
        drop(pipe);
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.len() > 2000 {
        stderr.truncate(2000);
        stderr.push('…');
    }
    Err(CommandError::Failed {
        command: format!("{program} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr,
    })
}

/// Runs `ip -batch -` (optionally inside namespace `netns`) over `script`; nothing to do
/// for an empty script.
pub(crate) async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), CommandError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    match netns {
        Some(ns) => run("ip", &["-n", ns, "-batch", "-"], Some(script)).await?,
        None => run("ip", &["-batch", "-"], Some(script)).await?,
    };
    Ok(())
}

/// Runs `tc -batch -` inside namespace `netns`.
pub(crate) async fn tc_batch(netns: &str, script: &str) -> Result<(), CommandError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    run("tc", &["-n", netns, "-batch", "-"], Some(script)).await.map(drop)
}
