//! `trellis-compiler` compiles researchers' experiment models (Python files
//! written with the `mergexp` library, ending in `experiment(net)`) to XIR,
//! the protobuf `Network` that the rest of Trellis works on.
//!
//! Models are untrusted code, so each compile runs in a fresh bubblewrap
//! sandbox: no network, a read-only view of `/usr` and the venv only, an
//! unprivileged uid in its own user namespace, and limits on CPU time, wall
//! time, memory, processes (a pids cgroup, which is what really stops a fork
//! bomb) and output size. The `sandbox` module docs give the exact setup.
//!
//! It is not a model service: it does not watch revisions, store results or
//! talk to the portal; it turns source text into bytes or a failure a user
//! can read, and nothing else.
//!
//! Security notes:
//! - Run as root (as Trellis is), bubblewrap maps the sandbox's uid 65534 to
//!   host uid 0. The process has no capabilities and `no_new_privs`, sees only
//!   read-only mounts, and has no procfs (whose `/proc/sys` write checks use
//!   the host uid), but anything that checks the *host* uid without a
//!   capability would treat it as root. Running bubblewrap as an unprivileged
//!   host user would remove that; it needs the venv and its base Python to be
//!   readable by that user (a pyenv install under `/root` is not).
//! - For the same reason `RLIMIT_NPROC` does not bind, so a pids cgroup is
//!   required (see `cgroup`).
//! - Output from the sandbox is untrusted: the model shares the interpreter
//!   with the driver. Node and link counts come from decoding the XIR here.
//!
//! Layout:
//! - [`config`]: [`Limits`], [`CompilerConfig`], [`LimitKind`].
//! - [`error`]: [`CompilerError`] (setup) and [`CompileFailure`] (per compile).
//! - `sandbox`: the bubblewrap command line, spawning, bounded reading, kills.
//! - `cgroup`: per-compile cgroups (pids required; memory and CPU accounting
//!   when present) on cgroup v2 or v1.
//! - `outcome`: pure classification of a finished run.
//! - `host`: start-up checks of bwrap, prlimit, the venv and `mergexp`.
//! - `driver/compile.py`: the Python side, embedded with `include_str!`.

pub mod config;
pub mod error;

mod cgroup;
mod host;
mod outcome;
mod sandbox;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::Semaphore;
use trellis_api::xir;

pub use config::{CompilerConfig, LimitKind, Limits};
pub use error::{CompileFailure, CompilerError};

use crate::cgroup::Cgroups;
use crate::sandbox::{DRIVER, Sandbox};

/// Compiles models in sandboxes. Cheap to clone; clones share the
/// concurrency limit.
#[derive(Debug, Clone)]
pub struct Compiler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sandbox: Sandbox,
    cgroups: Cgroups,
    permits: Semaphore,
    mergexp_version: String,
}

/// A successful compile.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The serialized XIR `Network`, exactly as `mergexp` produced it.
    pub xir: Vec<u8>,
    /// Nodes in the network (counted by decoding `xir`, not by trusting the
    /// sandbox).
    pub nodes: usize,
    /// Links in the network, counted the same way.
    pub links: usize,
    /// Where the time went.
    pub timings: Timings,
    /// The end of what the model printed (at most 16 KiB), lossily decoded.
    pub output: String,
}

/// Time spent in one compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    /// From spawning the sandbox until the driver's first statement ran:
    /// cgroup join, bubblewrap set-up and Python interpreter start-up.
    pub sandbox_start: Duration,
    /// From the driver's first statement until the sandbox exited: importing
    /// `mergexp`, running the model, serializing XIR.
    pub python: Duration,
    /// The whole compile once it had its turn, decoding included.
    pub total: Duration,
}

impl Compiler {
    /// Checks that bubblewrap, prlimit, the venv's Python and `mergexp` are
    /// present and that a pids cgroup can be created, then returns a compiler.
    ///
    /// This runs a few short host processes and blocks while they do; call it
    /// at start-up or from `spawn_blocking`.
    pub fn new(config: CompilerConfig) -> Result<Compiler, CompilerError> {
        validate(&config)?;
        let host = host::check(&config)?;
        let cgroups = Cgroups::setup(&config.cgroup_name)?;
        tracing::info!(
            bwrap = %host.bwrap_version,
            mergexp = %host.mergexp_version,
            cgroups = %cgroups.describe(),
            "model compiler ready"
        );
        Ok(Compiler {
            inner: Arc::new(Inner {
                sandbox: Sandbox {
                    bwrap: config.bwrap,
                    prlimit: config.prlimit,
                    python: host.python,
                    mounts: host.mounts,
                    limits: config.limits,
                },
                cgroups,
                permits: Semaphore::new(config.max_concurrent),
                mergexp_version: host.mergexp_version,
            }),
        })
    }

    /// Compiles `source` (the contents of `model.py`) to XIR.
    pub async fn compile(&self, source: &str) -> Result<Compiled, CompileFailure> {
        let inner = &*self.inner;
        let limits = &inner.sandbox.limits;
        if source.len() > limits.source_bytes {
            return Err(outcome::limit(LimitKind::Source, limits));
        }
        let _permit =
            inner.permits.acquire().await.map_err(|_| CompileFailure::Sandbox("compiler closed".into()))?;
        let started = Instant::now();
        let finished = inner
            .sandbox
            .run(&inner.cgroups, &["-I", "-B", "-c", DRIVER], source.as_bytes())
            .await
            .map_err(CompileFailure::Sandbox)?;
        let xir_bytes = outcome::classify(&finished.run, limits)?;
        let network = xir::Network::decode(xir_bytes.as_slice()).map_err(|e| CompileFailure::Model {
            message: format!("the network passed to experiment() did not serialize to valid XIR: {e}"),
            line: None,
            traceback: String::new(),
        })?;
        let ready = finished.ready.unwrap_or(finished.spawned);
        Ok(Compiled {
            nodes: network.nodes.len(),
            links: network.links.len(),
            xir: xir_bytes,
            timings: Timings {
                sandbox_start: ready - finished.spawned,
                python: finished.ended - ready,
                total: started.elapsed(),
            },
            output: finished.run.console_tail,
        })
    }

    /// Runs `python -I -c pass` in a sandbox set up exactly as for a compile
    /// and returns how long it took: a health check, and the sandbox's cost
    /// for benchmarks.
    pub async fn check_sandbox(&self) -> Result<Duration, CompileFailure> {
        let inner = &*self.inner;
        let _permit =
            inner.permits.acquire().await.map_err(|_| CompileFailure::Sandbox("compiler closed".into()))?;
        let finished = inner
            .sandbox
            .run(&inner.cgroups, &["-I", "-c", "pass"], b"")
            .await
            .map_err(CompileFailure::Sandbox)?;
        if finished.run.exit_code != Some(0) || finished.run.killed.is_some() {
            return Err(CompileFailure::Sandbox(format!(
                "python -c pass failed in the sandbox (exit {:?}): {}",
                finished.run.exit_code,
                finished.run.console_tail.trim()
            )));
        }
        Ok(finished.ended - finished.spawned)
    }

    /// The `mergexp` version found in the venv.
    pub fn mergexp_version(&self) -> &str {
        &self.inner.mergexp_version
    }

    /// The limits every compile runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.sandbox.limits
    }
}

fn validate(config: &CompilerConfig) -> Result<(), CompilerError> {
    let l = &config.limits;
    let bad = |what: &str| Err(CompilerError::Config(what.to_string()));
    if l.cpu.is_zero() || l.wall.is_zero() {
        return bad("cpu and wall limits must be positive");
    }
    if l.memory_bytes < 64 << 20 {
        return bad("memory_bytes must be at least 64 MiB (Python and mergexp need about 25 MiB)");
    }
    if l.processes == 0 {
        return bad("processes must be at least 1");
    }
    if l.output_bytes == 0 || l.source_bytes == 0 || l.tmpfs_bytes < 1 << 20 {
        return bad("output_bytes and source_bytes must be positive and tmpfs_bytes at least 1 MiB");
    }
    if (l.source_bytes as u64) >= l.tmpfs_bytes {
        return bad("source_bytes must be below tmpfs_bytes (the model is written to the tmpfs)");
    }
    if config.max_concurrent == 0 {
        return bad("max_concurrent must be at least 1");
    }
    Ok(())
}
