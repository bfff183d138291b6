//! The one error type every service returns; the API server maps it to a gRPC status in one place.

/// A single problem with a request, in the shape Merge clients print (`title` / `detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field or object at fault (`username`, `project`, ...).
    pub field: String,
    /// What is wrong with it, as a sentence for a person.
    pub description: String,
}

impl Violation {
    /// A violation of `field` described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Why a request failed. Variants follow gRPC status codes so the mapping at the edge is exact.
///
/// The `Display` text is the message a user sees; internal context (store errors, I/O paths)
/// goes only into `Internal`/`Unavailable` messages and the logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; each violation names a field.
    #[error("{}", summarize(.violations))]
    InvalidArgument { violations: Vec<Violation> },
    /// The object does not exist (or the caller may not know it exists).
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    /// An object of that kind and name already exists.
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// The object is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// No valid credentials were presented.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but the policy denies the operation.
    #[error("{0}")]
    PermissionDenied(String),
    /// A limit was hit (request size, quota).
    #[error("{0}")]
    ResourceExhausted(String),
    /// Concurrent writers kept conflicting; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// A dependency (the state store) is unreachable; the caller may retry.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summarize(violations: &[Violation]) -> String {
    match violations {
        [] => "invalid request".to_owned(),
        [one] => format!("{}: {}", one.field, one.description),
        many => many.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "),
    }
}

impl Error {
    /// An invalid-argument error with one violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument { violations: vec![Violation::new(field, description)] }
    }

    /// A not-found error for an object of `kind` called `name`.
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into() }
    }

    /// An already-exists error for an object of `kind` called `name`.
    pub fn already_exists(kind: &'static str, name: impl Into<String>) -> Self {
        Error::AlreadyExists { kind, name: name.into() }
    }

    /// A short title for the error, as Merge's `title` field violation carries.
    pub fn title(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "Invalid argument",
            Error::NotFound { .. } => "Not found",
            Error::AlreadyExists { .. } => "Already exists",
            Error::FailedPrecondition(_) => "Failed precondition",
            Error::Unauthenticated(_) => "Unauthenticated",
            Error::PermissionDenied(_) => "Permission denied",
            Error::ResourceExhausted(_) => "Resource exhausted",
            Error::Aborted(_) => "Aborted",
            Error::Unavailable(_) => "Unavailable",
            Error::Internal(_) => "Internal error",
        }
    }
}
