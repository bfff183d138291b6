//! The one place a Trellis error becomes a gRPC status.
//!
//! Merge clients print `google.rpc.BadRequest` field violations named `title`, `detail`,
//! `instance`, `evidence`, `type` and `timestamp`; every error carries at least `title` and
//! `detail`, and invalid-argument errors add one violation per offending field.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use trellis_types::Error;

/// Converts a service error into the status sent to the client.
pub fn to_status(err: &Error) -> Status {
    let code = match err {
        Error::InvalidArgument { .. } => Code::InvalidArgument,
        Error::NotFound { .. } => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Aborted(_) => Code::Aborted,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    if matches!(err, Error::Internal(_)) {
        // Internal errors are logged once, here, with their context; clients get the same text.
        tracing::error!(error = %err, "internal error");
    }
    let message = err.to_string();
    let mut violations =
        vec![FieldViolation::new("title", err.title()), FieldViolation::new("detail", message.clone())];
    if let Error::InvalidArgument { violations: fields } = err {
        violations.extend(fields.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone())));
    }
    Status::with_error_details(code, message, ErrorDetails::with_bad_request(violations))
}

/// Shorthand for handlers: `result.map_err(status)?`.
pub fn status(err: Error) -> Status {
    to_status(&err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_title_detail_and_fields() {
        let st = to_status(&Error::invalid("username", "must start with a lowercase letter"));
        assert_eq!(st.code(), Code::InvalidArgument);
        let details = st.get_error_details();
        let bad = details.bad_request().expect("BadRequest details");
        let fields: Vec<_> = bad.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["title", "detail", "username"]);
        assert!(bad.field_violations[1].description.contains("lowercase"));
    }

    #[test]
    fn codes_map_exactly() {
        assert_eq!(to_status(&Error::not_found("project", "p")).code(), Code::NotFound);
        assert_eq!(to_status(&Error::already_exists("project", "p")).code(), Code::AlreadyExists);
        assert_eq!(to_status(&Error::PermissionDenied("no".into())).code(), Code::PermissionDenied);
        assert_eq!(to_status(&Error::Unauthenticated("no".into())).code(), Code::Unauthenticated);
        assert_eq!(to_status(&Error::FailedPrecondition("no".into())).code(), Code::FailedPrecondition);
    }
}
