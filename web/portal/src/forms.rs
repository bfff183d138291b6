//! Posted forms: the body decoded into a struct, after the origin and CSRF checks.
//!
//! Both URL-encoded and multipart bodies are accepted (the model page uploads a file), so
//! handlers only ever see the typed form.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::HasConfig;
use crate::error::WebError;
use crate::session::{self, PRE_SESSION_COOKIE, Session, SignedIn};

/// Forms are small; the largest is a model's source.
const MAX_FORM_BYTES: usize = 4 << 20;

/// A form posted by a signed-in user.
pub struct Posted<T> {
    pub session: Session,
    pub form: T,
}

/// A form posted without a session (login, registration), checked against the pre-session
/// cookie its page set.
pub struct AnonymousPost<T> {
    pub form: T,
}

impl<S, T> FromRequest<S> for Posted<T>
where
    S: Send + Sync + HasConfig,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        session::check_origin(&parts.headers)?;
        let SignedIn(session) = SignedIn::from_request_parts(&mut parts, state).await?;
        let fields = read_fields(Request::from_parts(parts, body)).await?;
        let csrf = field(&fields, "csrf");
        if !csrf.is_some_and(|c| session::same_secret(c, &session.csrf())) {
            return Err(stale_form());
        }
        Ok(Posted { session, form: decode(&fields)? })
    }
}

impl<S, T> FromRequest<S> for AnonymousPost<T>
where
    S: Send + Sync + HasConfig,
    T: DeserializeOwned,
{
    type Rejection = WebError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        session::check_origin(request.headers())?;
        let expected = session::cookie(request.headers(), PRE_SESSION_COOKIE).map(str::to_owned);
        let fields = read_fields(request).await?;
        let csrf = field(&fields, "csrf");
        match (csrf, expected) {
            (Some(sent), Some(expected)) if !expected.is_empty() && session::same_secret(sent, &expected) => {
            }
            _ => return Err(stale_form()),
        }
        Ok(AnonymousPost { form: decode(&fields)? })
    }
}

fn stale_form() -> WebError {
    WebError::Csrf(
        "the form's security token does not match this session (it may be from an older page); \
         reload the page and send it again"
            .to_owned(),
    )
}

fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

/// The body's fields as name/value pairs, whatever the encoding.
async fn read_fields(request: Request) -> Result<Vec<(String, String)>, WebError> {
    let multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| WebError::BadInput(format!("unreadable upload: {e}")))?;
        let mut fields = Vec::new();
        let mut total = 0;
        while let Some(part) =
            form.next_field().await.map_err(|e| WebError::BadInput(format!("unreadable upload: {e}")))?
        {
            let name = part.name().unwrap_or_default().to_owned();
            let bytes =
                part.bytes().await.map_err(|e| WebError::BadInput(format!("unreadable upload: {e}")))?;
            total += bytes.len();
            if total > MAX_FORM_BYTES {
                return Err(too_large());
            }
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| WebError::BadInput(format!("the uploaded {name} is not UTF-8 text")))?;
            fields.push((name, text));
        }
        return Ok(fields);
    }
    let bytes: Bytes =
        axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await.map_err(|_| too_large())?;
    Ok(form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

fn too_large() -> WebError {
    WebError::BadInput(format!("the form is larger than {} MiB", MAX_FORM_BYTES >> 20))
}

/// Decodes the pairs into `T` the way `axum::Form` would (numbers and booleans from text).
fn decode<T: DeserializeOwned>(fields: &[(String, String)]) -> Result<T, WebError> {
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    serde_urlencoded::from_str(&encoded)
        .map_err(|e| WebError::BadInput(format!("the form is incomplete: {e}")))
}
