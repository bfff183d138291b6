//! What can go wrong serving a page, and how each case reaches the browser.

use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use tonic::Code;
use tonic_types::StatusExt;

/// An error serving a page. API refusals keep the API's own words: the policy's reason for a
/// denial, the field a validation failure names.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No session: the browser goes to the login page and comes back afterwards.
    #[error("please log in")]
    SignedOut { next: Option<String> },
    /// The API refused or failed the call.
    #[error("{message}")]
    Api { code: Code, message: String, fields: Vec<FieldError> },
    #[error("{0}")]
    Csrf(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
}

/// A validation failure tied to one form field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub description: String,
}

impl From<tonic::Status> for WebError {
    fn from(status: tonic::Status) -> Self {
        let fields = status
            .get_error_details()
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    // The API's first two violations repeat the title and detail for the
                    // mergetb client; the rest name real fields.
                    .filter(|v| v.field != "title" && v.field != "detail")
                    .map(|v| FieldError { field: v.field.clone(), description: v.description.clone() })
                    .collect()
            })
            .unwrap_or_default();
        WebError::Api { code: status.code(), message: status.message().to_owned(), fields }
    }
}

impl WebError {
    /// The HTTP status a page showing this error answers with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            WebError::SignedOut { .. } => StatusCode::SEE_OTHER,
            WebError::Csrf(_) => StatusCode::FORBIDDEN,
            WebError::BadInput(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Api { code, .. } => match code {
                Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
                Code::NotFound => StatusCode::NOT_FOUND,
                Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
                Code::PermissionDenied => StatusCode::FORBIDDEN,
                Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
                Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// A heading for the error banner.
    pub fn title(&self) -> &'static str {
        match self {
            WebError::SignedOut { .. } => "Please log in",
            WebError::Csrf(_) => "Form refused",
            WebError::BadInput(_) => "Invalid input",
            WebError::NotFound(_) => "Not found",
            WebError::Api { code, .. } => match code {
                Code::InvalidArgument | Code::OutOfRange => "Invalid input",
                Code::NotFound => "Not found",
                Code::AlreadyExists => "Already exists",
                Code::PermissionDenied => "Denied",
                Code::Unauthenticated => "Please log in",
                Code::FailedPrecondition | Code::Aborted => "Not possible now",
                Code::Unavailable => "Unavailable",
                Code::Unimplemented => "Not supported",
                _ => "Error",
            },
        }
    }

    /// The message for `field`, when the API named it.
    pub fn field(&self, field: &str) -> Option<&str> {
        match self {
            WebError::Api { fields, .. } => {
                fields.iter().find(|f| f.field == field).map(|f| f.description.as_str())
            }
            _ => None,
        }
    }

    /// Whether the session is gone (expired, revoked, or the account no longer valid).
    pub fn is_signed_out(&self) -> bool {
        matches!(self, WebError::SignedOut { .. } | WebError::Api { code: Code::Unauthenticated, .. })
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignedOut { next } = &self {
            return Redirect::to(&crate::pages::auth::login_url(next.as_deref())).into_response();
        }
        if self.is_signed_out() {
            return Redirect::to(&crate::pages::auth::login_url(None)).into_response();
        }
        let status = self.http_status();
        (status, crate::layout::error_page(&self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_field_violations_are_kept_without_the_title_and_detail() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "name: must start with a lowercase letter",
            tonic_types::ErrorDetails::with_bad_request(vec![
                tonic_types::FieldViolation::new("title", "Invalid argument"),
                tonic_types::FieldViolation::new("detail", "..."),
                tonic_types::FieldViolation::new("name", "must start with a lowercase letter"),
            ]),
        );
        let err = WebError::from(status);
        assert_eq!(err.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.field("name"), Some("must start with a lowercase letter"));
        assert_eq!(err.field("title"), None);
        assert_eq!(err.title(), "Invalid input");
    }

    #[test]
    fn denials_keep_the_policy_reason() {
        let err = WebError::from(tonic::Status::permission_denied("requires Project.Member on project p"));
        assert_eq!(err.http_status(), StatusCode::FORBIDDEN);
        assert_eq!(err.title(), "Denied");
        assert!(err.to_string().contains("Project.Member"));
    }
}
