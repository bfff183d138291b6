//! Running the host tools the local runtime drives (`ip`, `crun`), keeping their error
//! output for the message.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::RuntimeError;

/// Runs `program args`, feeding `stdin` when given; returns its standard output.
pub(crate) async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, RuntimeError> {
    let spawn_error = |e: std::io::Error| RuntimeError::Failed(format!("cannot run {program}: {e}"));
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
        stderr.push_str("...");
    }
    Err(RuntimeError::Failed(format!("{program} {} failed ({}): {stderr}", args.join(" "), output.status)))
}

/// Runs `ip -batch -` (inside namespace `netns` when given) over `script`.
pub(crate) async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), RuntimeError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    match netns {
        Some(ns) => run("ip", &["-n", ns, "-batch", "-"], Some(script)).await?,
        None => run("ip", &["-batch", "-"], Some(script)).await?,
    };
    Ok(())
}
