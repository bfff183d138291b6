//! Configuration: where the tools live and how much a model may use.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Resource limits applied to every compile.
///
/// `memory_bytes` is the address-space limit of each sandboxed process
/// (`RLIMIT_AS`) and, when a memory cgroup is available, also caps the whole
/// sandbox (plus its tmpfs mounts and the bwrap helpers) so forked processes
/// cannot multiply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of the model process (`RLIMIT_CPU`; whole seconds, rounded up).
    pub cpu: Duration,
    /// Wall-clock time from spawning the sandbox until the result is read.
    pub wall: Duration,
    /// Address space per process, and the memory cgroup budget.
    pub memory_bytes: u64,
    /// Processes and threads the model may have at once, its interpreter
    /// included (pids cgroup; the two bubblewrap helpers are added on top).
    pub processes: u32,
    /// Bytes the sandbox may write: caps the XIR and, separately, everything
    /// the model prints.
    pub output_bytes: u64,
    /// Largest model source accepted, in bytes.
    pub source_bytes: usize,
    /// Size of each of the sandbox's two tmpfs mounts (`/tmp` and `/compile`),
    /// and the largest file the model may write (`RLIMIT_FSIZE`).
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    /// Generous enough for a 10,000-node model on a small machine.
    fn default() -> Self {
        Limits {
            cpu: Duration::from_secs(20),
            wall: Duration::from_secs(60),
            memory_bytes: 1024 * 1024 * 1024,
            processes: 32,
            output_bytes: 64 * 1024 * 1024,
            source_bytes: 1024 * 1024,
            tmpfs_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Which limit a model hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// CPU time ([`Limits::cpu`]).
    Cpu,
    /// Wall-clock time ([`Limits::wall`]).
    Wall,
    /// Memory ([`Limits::memory_bytes`]).
    Memory,
    /// Process count ([`Limits::processes`]).
    Processes,
    /// Output size ([`Limits::output_bytes`]).
    Output,
    /// Source size ([`Limits::source_bytes`]).
    Source,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Cpu => "CPU time",
            LimitKind::Wall => "wall-clock time",
            LimitKind::Memory => "memory",
            LimitKind::Processes => "process count",
            LimitKind::Output => "output size",
            LimitKind::Source => "source size",
        })
    }
}

/// Everything [`crate::Compiler::new`] needs.
#[derive(Debug, Clone)]
pub struct CompilerConfig {
    /// The venv's Python interpreter (for example `<venv>/bin/python`).
    pub python: PathBuf,
    /// The venv holding `mergexp`; mounted read-only into the sandbox.
    pub venv: PathBuf,
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// util-linux `prlimit`, which sets the rlimits (the workspace forbids
    /// `unsafe`, so no `pre_exec`).
    pub prlimit: PathBuf,
    /// Per-compile limits.
    pub limits: Limits,
    /// Name of the directory created in each cgroup hierarchy to hold one
    /// child cgroup per running compile.
    pub cgroup_name: String,
    /// Compiles allowed to run at once; further calls wait their turn (the
    /// wall-clock limit starts once a compile's turn comes).
    pub max_concurrent: usize,
}

impl CompilerConfig {
    /// A configuration for the venv at `venv`, with the Debian tool paths and
    /// default limits.
    pub fn new(venv: impl Into<PathBuf>) -> CompilerConfig {
        let venv = venv.into();
        CompilerConfig {
            python: venv.join("bin").join("python"),
            venv,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            prlimit: PathBuf::from("/usr/bin/prlimit"),
            limits: Limits::default(),
            cgroup_name: "trellis-compiler".to_string(),
            max_concurrent: 4,
        }
    }
}
