//! Turning what a sandbox run left behind into XIR bytes or a
//! [`CompileFailure`]. Pure functions, so every branch is unit-tested.
//!
//! Everything read from the sandbox is untrusted: the model runs in the same
//! interpreter as the driver and can write anything to the result channel.
//! This module only parses it, within the caps the reader already applied.

use serde::Deserialize;

use crate::cgroup::Usage;
use crate::config::{LimitKind, Limits};
use crate::error::CompileFailure;

/// Why the host stopped a sandbox early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Killed {
    /// The wall-clock limit passed.
    Wall,
    /// The result or console stream exceeded the output limit.
    Output,
}

/// What one sandbox run left behind.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Exit code of the outer bubblewrap (it reports a signal that killed the
    /// model as 128 + signal). `None` when bubblewrap itself was killed.
    pub(crate) exit_code: Option<i32>,
    /// Everything read from the result channel (capped).
    pub(crate) result: Vec<u8>,
    /// The end of what the model printed (capped), for error messages.
    pub(crate) console_tail: String,
    /// Set when the host stopped the run.
    pub(crate) killed: Option<Killed>,
    /// Kernel accounting from the run's cgroup.
    pub(crate) usage: Usage,
}

/// The JSON line the driver writes after the start byte.
#[derive(Debug, Deserialize)]
struct Header {
    status: String,
    #[serde(default)]
    xir_len: u64,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    traceback: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// The start byte the driver writes before anything else.
pub(crate) const READY: u8 = b'R';
/// Longest header accepted; the driver clips its texts well below this.
const MAX_HEADER: usize = 256 * 1024;
/// bwrap reports a model killed by signal N as exit code 128 + N.
const SIGNAL_BASE: i32 = 128;
const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
/// The `/bin/sh` wrapper exits with this when it cannot join the cgroup.
pub(crate) const JOIN_FAILED: i32 = 125;

/// Decides what a run produced: the serialized XIR, or why there is none.
pub(crate) fn classify(run: &Run, limits: &Limits) -> Result<Vec<u8>, CompileFailure> {
    match run.killed {
        Some(Killed::Output) => return Err(limit(LimitKind::Output, limits)),
        Some(Killed::Wall) => return Err(limit(LimitKind::Wall, limits)),
        None => {}
    }
    let started = run.result.first() == Some(&READY);
    let header = if started { parse(&run.result[1..]) } else { None };
    if run.usage.oom_kills > 0 {
        return Err(limit(LimitKind::Memory, limits));
    }
    if let Some(Ok((h, _))) = &header
        && h.status == "error"
        && h.kind.as_deref() == Some("MemoryError")
    {
        return Err(limit(LimitKind::Memory, limits));
    }
    if run.usage.pids_max_hits > 0 {
        return Err(limit(LimitKind::Processes, limits));
    }
    let cpu_exhausted = run.usage.cpu.is_some_and(|used| used >= limits.cpu);
    let signal = run.exit_code.filter(|c| *c > SIGNAL_BASE).map(|c| c - SIGNAL_BASE);
    match header {
        Some(Ok((h, payload))) => from_header(h, payload, limits),
        Some(Err(detail)) => Err(model(format!(
            "the compiler's output was malformed ({detail}); the model may have written to it"
        ))),
        None if signal == Some(SIGXCPU) || (signal == Some(SIGKILL) && cpu_exhausted) => {
            Err(limit(LimitKind::Cpu, limits))
        }
        None if !started => Err(CompileFailure::Sandbox(match run.exit_code {
            Some(JOIN_FAILED) => format!("could not join the compile's cgroup: {}", run.console_tail.trim()),
            code => format!("the sandbox did not start (exit {}): {}", show(code), run.console_tail.trim()),
        })),
        None => Err(match signal {
            Some(sig) => model(format!("the model was killed by signal {sig}")),
            None => {
                model(format!("the model exited before it finished (exit status {})", show(run.exit_code)))
            }
        }),
    }
}

/// The failure for hitting `kind`, with the configured limit in the message.
pub(crate) fn limit(kind: LimitKind, limits: &Limits) -> CompileFailure {
    let message = match kind {
        LimitKind::Cpu => format!("the model used more than {} s of CPU time", cpu_secs(limits)),
        LimitKind::Wall => {
            format!("the model ran longer than the {} s time limit", limits.wall.as_secs_f64())
        }
        LimitKind::Memory => {
            format!("the model used more than {} MiB of memory", limits.memory_bytes / (1024 * 1024))
        }
        LimitKind::Processes => format!("the model tried to run more than {} processes", limits.processes),
        LimitKind::Output => format!("the model wrote more than {} bytes of output", limits.output_bytes),
        LimitKind::Source => format!("the model is larger than the {} byte limit", limits.source_bytes),
    };
    CompileFailure::Limit { limit: kind, message }
}

/// `RLIMIT_CPU` counts whole seconds; this is what the sandbox is given.
pub(crate) fn cpu_secs(limits: &Limits) -> u64 {
    (limits.cpu.as_secs() + u64::from(limits.cpu.subsec_nanos() > 0)).max(1)
}

fn from_header(h: Header, payload: &[u8], limits: &Limits) -> Result<Vec<u8>, CompileFailure> {
    match h.status.as_str() {
        "ok" => Ok(payload.to_vec()),
        "no_experiment" => Err(CompileFailure::NoExperiment),
        "limit" if h.limit.as_deref() == Some("cpu") => Err(limit(LimitKind::Cpu, limits)),
        "error" => {
            let kind = h.kind.unwrap_or_else(|| "Exception".into());
            let message = match h.message.filter(|m| !m.is_empty()) {
                Some(m) => format!("{kind}: {m}"),
                None => kind,
            };
            Err(CompileFailure::Model { message, line: h.line, traceback: h.traceback.unwrap_or_default() })
        }
        other => Err(model(format!("the compiler reported an unknown status {other:?}"))),
    }
}

/// Splits `R`-stripped result bytes into header and payload.
fn parse(bytes: &[u8]) -> Option<Result<(Header, &[u8]), String>> {
    if bytes.is_empty() {
        return None;
    }
    let Some(newline) = bytes.iter().take(MAX_HEADER).position(|b| *b == b'\n') else {
        return Some(Err("no header line".into()));
    };
    let header: Header = match serde_json::from_slice(&bytes[..newline]) {
        Ok(h) => h,
        Err(e) => return Some(Err(format!("bad header: {e}"))),
    };
    let payload = &bytes[newline + 1..];
    if payload.len() as u64 != header.xir_len {
        return Some(Err(format!("expected {} XIR bytes, got {}", header.xir_len, payload.len())));
    }
    Some(Ok((header, payload)))
}

fn model(message: String) -> CompileFailure {
    CompileFailure::Model { message, line: None, traceback: String::new() }
}

fn show(code: Option<i32>) -> String {
    code.map_or_else(|| "unknown".to_string(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(result: &[u8], exit_code: Option<i32>) -> Run {
        Run { exit_code, result: result.to_vec(), ..Run::default() }
    }

    fn limits() -> Limits {
        Limits { cpu: Duration::from_secs(2), ..Limits::default() }
    }

    #[test]
    fn ok_returns_payload() {
        let r = run(b"R{\"status\":\"ok\",\"xir_len\":3}\nabc", Some(0));
        assert_eq!(classify(&r, &limits()).unwrap(), b"abc");
    }

    #[test]
    fn payload_length_must_match() {
        let r = run(b"R{\"status\":\"ok\",\"xir_len\":4}\nabc", Some(0));
        let err = classify(&r, &limits()).unwrap_err();
        assert!(err.to_string().contains("expected 4 XIR bytes, got 3"), "{err}");
    }

    #[test]
    fn model_error_keeps_line_and_traceback() {
        let r = run(
            b"R{\"status\":\"error\",\"type\":\"NameError\",\"message\":\"name 'x' is not defined\",\"line\":4,\"traceback\":\"tb\",\"xir_len\":0}\n",
            Some(0),
        );
        let err = classify(&r, &limits()).unwrap_err();
        assert_eq!(
            err,
            CompileFailure::Model {
                message: "NameError: name 'x' is not defined".into(),
                line: Some(4),
                traceback: "tb".into()
            }
        );
        assert_eq!(err.to_string(), "model.py line 4: NameError: name 'x' is not defined");
    }

    #[test]
    fn memory_error_is_a_memory_limit() {
        let r = run(b"R{\"status\":\"error\",\"type\":\"MemoryError\",\"xir_len\":0}\n", Some(0));
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Memory));
    }

    #[test]
    fn kernel_counters_win_over_the_model_story() {
        let mut r = run(b"R{\"status\":\"error\",\"type\":\"BlockingIOError\",\"xir_len\":0}\n", Some(0));
        r.usage.pids_max_hits = 5;
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Processes));
        r.usage.oom_kills = 1;
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Memory));
        r.killed = Some(Killed::Wall);
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Wall));
    }

    #[test]
    fn cpu_by_signal_or_accounting() {
        let r = run(b"R", Some(128 + 24));
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Cpu));
        let mut r = run(b"R", Some(128 + 9));
        assert!(classify(&r, &limits()).unwrap_err().limit().is_none());
        r.usage.cpu = Some(Duration::from_millis(2500));
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Cpu));
        let r = run(b"R{\"status\":\"limit\",\"limit\":\"cpu\"}\n", Some(0));
        assert_eq!(classify(&r, &limits()).unwrap_err().limit(), Some(LimitKind::Cpu));
    }

    #[test]
    fn no_start_byte_is_our_failure() {
        let mut r = run(b"", Some(1));
        r.console_tail = "bwrap: something\n".into();
        let err = classify(&r, &limits()).unwrap_err();
        assert_eq!(
            err,
            CompileFailure::Sandbox("the sandbox did not start (exit 1): bwrap: something".into())
        );
    }

    #[test]
    fn early_exit_and_garbage_blame_the_model() {
        let err = classify(&run(b"R", Some(3)), &limits()).unwrap_err();
        assert!(matches!(err, CompileFailure::Model { .. }), "{err:?}");
        assert!(err.to_string().contains("exit status 3"));
        let err = classify(&run(b"Rnot json\n", Some(0)), &limits()).unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
    }

    #[test]
    fn no_experiment() {
        let r = run(b"R{\"status\":\"no_experiment\",\"xir_len\":0}\n", Some(0));
        assert_eq!(classify(&r, &limits()).unwrap_err(), CompileFailure::NoExperiment);
    }

    #[test]
    fn cpu_seconds_round_up() {
        let mut l = limits();
        assert_eq!(cpu_secs(&l), 2);
        l.cpu = Duration::from_millis(1500);
        assert_eq!(cpu_secs(&l), 2);
        l.cpu = Duration::ZERO;
        assert_eq!(cpu_secs(&l), 1);
    }
}
