//! Errors: [`CompilerError`] when setting up, [`CompileFailure`] per compile.

use std::path::PathBuf;

use crate::config::LimitKind;

/// [`crate::Compiler::new`] could not set up a working compiler.
#[derive(Debug, thiserror::Error)]
pub enum CompilerError {
    /// A required program is missing or does not run.
    #[error("{what} at {path} is not usable: {detail}")]
    Tool {
        /// Which tool (`bubblewrap`, `prlimit`, `python`).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The venv's Python runs but cannot import `mergexp`, or is not the venv.
    #[error("the venv {venv} is not usable: {detail}")]
    Venv {
        /// The configured venv.
        venv: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// No writable pids cgroup: without one a fork bomb is not contained,
    /// because `RLIMIT_NPROC` does not bind the root-mapped sandbox user.
    #[error("cgroup setup failed: {detail}")]
    Cgroup {
        /// What went wrong.
        detail: String,
    },
    /// A configuration value is out of range.
    #[error("invalid compiler configuration: {0}")]
    Config(String),
}

/// Why one compile produced no XIR. `Display` is the message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileFailure {
    /// The model itself failed: a syntax error or an exception.
    #[error("{}", model_message(.message, *.line))]
    Model {
        /// The final exception line, e.g. `NameError: name 'x' is not defined`.
        message: String,
        /// The line in `model.py` where it happened, if known.
        line: Option<u32>,
        /// The traceback, trimmed to frames in `model.py` plus the exception.
        traceback: String,
    },
    /// The model hit a resource limit and was stopped.
    #[error("{message}")]
    Limit {
        /// Which limit.
        limit: LimitKind,
        /// What happened, for the user.
        message: String,
    },
    /// The model ran to the end without calling `experiment(net)`.
    #[error("the model did not call experiment(net), so there is no network to compile")]
    NoExperiment,
    /// The sandbox itself failed; not the model's fault.
    #[error("the model compiler failed: {0}")]
    Sandbox(String),
}

fn model_message(message: &str, line: Option<u32>) -> String {
    match line {
        Some(line) => format!("model.py line {line}: {message}"),
        None => format!("model.py: {message}"),
    }
}

impl CompileFailure {
    /// The limit that was hit, if this is a [`CompileFailure::Limit`].
    pub fn limit(&self) -> Option<LimitKind> {
        match self {
            CompileFailure::Limit { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}
