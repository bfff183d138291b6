//! Helpers every page module uses.

use axum::response::Redirect;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::layout::Page;
use crate::session::Session;

/// `?notice=...`: the banner a redirect after a successful form asks for.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub notice: Option<String>,
}

/// The signed-in user's account. Asking the API for it is also what proves the session
/// still holds: an expired or revoked token ends here with a redirect to the login page.
pub async fn viewer(state: &AppState, session: &Session) -> Result<pb::User, WebError> {
    let request = pb::GetUserRequest { username: session.username.clone(), status_ms: 0 };
    let response = state.api.workspace().get_user(authed(&session.token, request)).await?;
    response.into_inner().user.ok_or_else(|| WebError::NotFound(format!("user {}", session.username)))
}

/// A page for the signed-in user, with the navigation their account allows.
pub async fn page(state: &AppState, session: &Session, title: impl Into<String>) -> Result<Page, WebError> {
    let user = viewer(state, session).await?;
    Ok(Page::new(title).session(session).admin(user.admin))
}

/// 303 to `path`, with a notice banner shown there.
pub fn see_other(path: &str, notice: &str) -> Redirect {
    if notice.is_empty() {
        return Redirect::to(path);
    }
    let separator = if path.contains('?') { '&' } else { '?' };
    let notice: String = form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{path}{separator}notice={notice}"))
}

/// A path segment for use in a link (names are validated by the API, but links must not
/// depend on that).
pub fn seg(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The name of a membership role.
pub fn role_name(role: i32) -> &'static str {
    pb::member::Role::try_from(role).map(|r| r.as_str_name()).unwrap_or("Unknown")
}

/// The name of a membership state.
pub fn member_state_name(state: i32) -> &'static str {
    pb::member::State::try_from(state).map(|s| s.as_str_name()).unwrap_or("Unknown")
}

/// The name of a user account's state.
pub fn user_state_name(state: i32) -> &'static str {
    pb::UserState::try_from(state).map(|s| s.as_str_name()).unwrap_or("Unknown")
}

/// The name of an access mode.
pub fn access_mode_name(mode: i32) -> &'static str {
    pb::AccessMode::try_from(mode).map(|m| m.as_str_name()).unwrap_or("Unknown")
}
