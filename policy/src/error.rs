//! [`PolicyError`]: why a policy could not be loaded or reloaded.

use std::fmt;
use std::path::PathBuf;

use crate::grant::GrantError;

/// A 1-based line and column in the policy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in characters.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Why a policy was rejected, or why the policy file could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The text is not YAML, or its shape is wrong: unknown entity, access mode or operation
    /// (`deny_unknown_fields`), duplicate key, a scalar where a list belongs.
    #[error("{}{message}", at(.position))]
    Yaml {
        /// Where the parser stopped, when it knows.
        position: Option<Position>,
        /// The parser's message, without position or source excerpt.
        message: String,
    },
    /// A `Scope.Role` grant is not valid, e.g. the unknown role in `Project.Owner`.
    #[error("{position}: {error}")]
    Grant {
        /// Where the grant is written.
        position: Position,
        /// What is wrong with it.
        error: GrantError,
    },
    /// The document defines no entity at all. Almost always a truncated or wrong file; taking it
    /// would lock every non-admin out, so it is refused instead.
    #[error("the policy is empty: it defines rules for no entity")]
    Empty,
    /// The policy file could not be read.
    #[error("cannot read policy file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// `reload_now` on a handle made with [`crate::PolicyHandle::fixed`].
    #[error("this policy is fixed, not loaded from a file, so it cannot be reloaded")]
    NotWatching,
    /// `reload_now` after the watcher task has ended (aborted, or its runtime shut down).
    #[error("the policy file watcher has stopped")]
    WatcherStopped,
}

impl PolicyError {
    /// The line and column the error points at, when it has one.
    pub fn position(&self) -> Option<Position> {
        match self {
            PolicyError::Yaml { position, .. } => *position,
            PolicyError::Grant { position, .. } => Some(*position),
            _ => None,
        }
    }

    /// Builds the `Yaml` variant from a serde-saphyr error, keeping its location but not its
    /// multi-line source excerpt (the position is enough for logs and API errors).
    pub(crate) fn from_yaml(err: &serde_saphyr::Error) -> PolicyError {
        use serde_saphyr::MessageFormatter as _;
        let plain = err.without_snippet();
        let position = plain
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| Position { line: l.line(), column: l.column() });
        let message = serde_saphyr::DefaultMessageFormatter
            .format_message(plain)
            // The formatter's docs ask callers to neutralize control characters before logging.
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        PolicyError::Yaml { position, message }
    }
}

fn at(position: &Option<Position>) -> String {
    position.map(|p| format!("{p}: ")).unwrap_or_default()
}
