//! Running host tools, with their error output kept for the message.

use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::Error;

/// The most of a tool's error output a message carries.
const MAX_STDERR: usize = 2000;

/// Runs `program args`, feeding `stdin` when given; returns its standard output.
pub async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let spawn_error = |source| Error::Spawn { program: program.to_owned(), source };
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
    if stderr.len() > MAX_STDERR {
        let mut cut = MAX_STDERR;
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        stderr.truncate(cut);
        stderr.push('…');
    }
    Err(Error::Failed {
        command: format!("{program} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr,
    })
}

/// Runs `ip -batch -` (inside namespace `netns` when given) over `script`; nothing to do for
/// an empty script.
pub async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), Error> {
    if script.trim().is_empty() {
        return Ok(());
    }
    match netns {
        Some(ns) => run("ip", &["-n", ns, "-batch", "-"], Some(script)).await?,
        None => run("ip", &["-batch", "-"], Some(script)).await?,
    };
    Ok(())
}

/// Runs `tc -batch -` inside namespace `netns`; nothing to do for an empty script.
pub async fn tc_batch(netns: &str, script: &str) -> Result<(), Error> {
    if script.trim().is_empty() {
        return Ok(());
    }
    run("tc", &["-n", netns, "-batch", "-"], Some(script)).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_comes_back_and_a_failure_carries_the_tool_s_words() {
        assert_eq!(run("cat", &[], Some("fed on stdin")).await.ok().as_deref(), Some("fed on stdin"));
        let failed = run("sh", &["-c", "echo 'it broke' >&2; exit 3"], None).await;
        let Err(Error::Failed { command, status, stderr }) = failed else { panic!("{failed:?}") };
        assert_eq!(command, "sh -c echo 'it broke' >&2; exit 3");
        assert!(status.contains('3'), "{status}");
        assert_eq!(stderr, "it broke");
        let missing = run("no-such-tool-trellis", &[], None).await;
        assert!(matches!(missing, Err(Error::Spawn { .. })), "{missing:?}");
    }

    #[tokio::test]
    async fn long_error_output_is_cut_on_a_character_boundary() {
        // 1999 ASCII bytes then two-byte characters: the limit falls inside one.
        let script = format!("printf '{}' >&2; printf 'é%.0s' $(seq 100) >&2; exit 1", "x".repeat(1999));
        let Err(Error::Failed { stderr, .. }) = run("sh", &["-c", &script], None).await else { panic!() };
        assert!(stderr.ends_with("x…"), "{}", &stderr[1990..]);
    }
}
