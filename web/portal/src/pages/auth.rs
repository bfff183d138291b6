//! Registration, login and logout.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::header::SET_COOKIE;
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::{anonymous, authed};
use crate::error::WebError;
use crate::forms::{AnonymousPost, Posted};
use crate::layout::{Page, csrf_field};
use crate::pages::util::see_other;
use crate::session::{self, MaybeSignedIn, PRE_SESSION_COOKIE, set_cookie};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/register", get(register_page).post(register))
        .route("/logout", post(logout))
}

/// The login page, coming back to `next` afterwards.
pub fn login_url(next: Option<&str>) -> String {
    match next.filter(|n| safe_next(n) && *n != "/") {
        Some(next) => {
            format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>())
        }
        None => "/login".to_owned(),
    }
}

/// Only paths on this portal: never `//host` or `https://...`, which would make the login
/// page an open redirect.
fn safe_next(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.contains("://")
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// The pre-session value for this response's forms: the browser's, or a new one it is sent.
fn pre_session(headers: &http::HeaderMap) -> (String, Option<String>) {
    match session::cookie(headers, PRE_SESSION_COOKIE).filter(|v| v.len() >= 16) {
        Some(existing) => (existing.to_owned(), None),
        None => {
            let fresh = session::new_pre_session();
            (fresh.clone(), Some(fresh))
        }
    }
}

fn with_pre_session(state: &AppState, html: Html<String>, fresh: Option<String>) -> Response {
    match fresh {
        Some(value) => {
            let cookie = set_cookie(PRE_SESSION_COOKIE, &value, state.config.secure_cookies, 3600);
            ([(SET_COOKIE, cookie)], html).into_response()
        }
        None => html.into_response(),
    }
}

async fn login_page(
    State(state): State<AppState>,
    MaybeSignedIn(session): MaybeSignedIn,
    Query(query): Query<LoginQuery>,
    headers: http::HeaderMap,
) -> Response {
    if session.is_some() && query.notice.is_none() {
        return Redirect::to("/").into_response();
    }
    let (csrf, fresh) = pre_session(&headers);
    let form = LoginForm { next: query.next.unwrap_or_default(), ..Default::default() };
    with_pre_session(&state, render_login(csrf, &form, query.notice, None), fresh)
}

fn render_login(
    csrf: String,
    form: &LoginForm,
    notice: Option<String>,
    error: Option<&WebError>,
) -> Html<String> {
    let (username, next) = (form.username.clone(), form.next.clone());
    Page::new("Log in").notice(notice).error(error).render(view! {
        <form method="post" action="/login" class="card" id="login-form">
            {csrf_field(csrf)}
            <input type="hidden" name="next" value=next/>
            <label for="username">"Username"</label>
            <input type="text" id="username" name="username" value=username autocomplete="username" required/>
            <label for="password">"Password"</label>
            <input type="password" id="password" name="password" autocomplete="current-password" required/>
            <p><button type="submit" id="login">"Log in"</button></p>
        </form>
        <p class="muted">"No account yet? " <a href="/register">"Register"</a></p>
    })
}

async fn login(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    AnonymousPost { form }: AnonymousPost<LoginForm>,
) -> Response {
    let request =
        pb::LoginRequest { username: form.username.trim().to_owned(), password: form.password.clone() };
    match state.api.identity().login(anonymous(request)).await {
        Ok(response) => {
            let token = response.into_inner().token;
            let lifetime = state.config.session_lifetime.as_secs();
            let cookie =
                set_cookie(&state.config.session_cookie, &token, state.config.secure_cookies, lifetime);
            let next = if safe_next(&form.next) { form.next.as_str() } else { "/" };
            ([(SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        Err(status) => {
            let error = WebError::from(status);
            let (csrf, fresh) = pre_session(&headers);
            let form = LoginForm { password: String::new(), ..form };
            let html = render_login(csrf, &form, None, Some(&error));
            let mut response = with_pre_session(&state, html, fresh);
            *response.status_mut() = error.http_status();
            response
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    institution: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    usstate: String,
}

async fn register_page(
    State(state): State<AppState>,
    headers: http::HeaderMap,
) -> Result<Response, WebError> {
    let (csrf, fresh) = pre_session(&headers);
    let choices = choices(&state).await?;
    Ok(with_pre_session(&state, render_register(csrf, &RegisterForm::default(), &choices, None), fresh))
}

async fn choices(state: &AppState) -> Result<pb::GetUserConfigurationsResponse, WebError> {
    let request = anonymous(pb::GetUserConfigurationsRequest {});
    Ok(state.api.workspace().get_user_configurations(request).await?.into_inner())
}

fn options(values: Vec<(String, String)>, selected: &str) -> impl IntoView + use<> {
    let selected = selected.to_owned();
    values
        .into_iter()
        .map(|(value, label)| {
            let is_selected = value == selected;
            view! { <option value=value selected=is_selected>{label}</option> }
        })
        .collect_view()
}

fn render_register(
    csrf: String,
    form: &RegisterForm,
    choices: &pb::GetUserConfigurationsResponse,
    error: Option<&WebError>,
) -> Html<String> {
    let field_error = |field: &str| {
        error.and_then(|e| e.field(field)).map(|m| view! { <div class="field-error">{m.to_owned()}</div> })
    };
    let institutions = choices.institutions.iter().map(|i| (i.clone(), i.clone())).collect();
    let categories = choices.categories.iter().map(|c| (c.clone(), c.clone())).collect();
    let countries = choices.countries.iter().map(|c| (c.name.clone(), c.name.clone())).collect();
    let states = choices.usstates.iter().map(|s| (s.name.clone(), s.name.clone())).collect::<Vec<_>>();
    let f = RegisterForm { password: String::new(), ..form.clone() };
    Page::new("Register").error(error).render(view! {
        <form method="post" action="/register" class="card" id="register-form">
            {csrf_field(csrf)}
            <label for="username">"Username"</label>
            <input type="text" id="username" name="username" value=f.username.clone() required/>
            {field_error("username")}
            <label for="name">"Full name"</label>
            <input type="text" id="name" name="name" value=f.name.clone() required/>
            <label for="email">"Email"</label>
            <input type="email" id="email" name="email" value=f.email.clone() required/>
            {field_error("email")}
            <label for="password">"Password"</label>
            <input type="password" id="password" name="password" autocomplete="new-password" required/>
            {field_error("password")}
            <label for="institution">"Institution"</label>
            <select id="institution" name="institution">{options(institutions, &f.institution)}</select>
            {field_error("institution")}
            <label for="category">"Category"</label>
            <select id="category" name="category">{options(categories, &f.category)}</select>
            {field_error("category")}
            <label for="country">"Country"</label>
            <select id="country" name="country">{options(countries, &f.country)}</select>
            {field_error("country")}
            <label for="usstate">"US state (United States only)"</label>
            <select id="usstate" name="usstate">
                <option value="">"—"</option>
                {options(states, &f.usstate)}
            </select>
            <p><button type="submit" id="register">"Register"</button></p>
        </form>
    })
}

async fn register(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    AnonymousPost { form }: AnonymousPost<RegisterForm>,
) -> Result<Response, WebError> {
    let request = pb::RegisterRequest {
        username: form.username.trim().to_owned(),
        email: form.email.trim().to_owned(),
        password: form.password.clone(),
        institution: form.institution.clone(),
        category: form.category.clone(),
        country: form.country.clone(),
        usstate: form.usstate.clone(),
        name: form.name.trim().to_owned(),
        ..Default::default()
    };
    match state.api.identity().register(anonymous(request)).await {
        Ok(_) => {
            let notice = format!(
                "Registered {}. An administrator must activate the account before it can be used; \
                 you can log in now to see its state.",
                form.username.trim()
            );
            Ok(see_other("/login", &notice).into_response())
        }
        Err(status) => {
            let error = WebError::from(status);
            let (csrf, fresh) = pre_session(&headers);
            let choices = choices(&state).await?;
            let form = RegisterForm { password: String::new(), ..form };
            let mut response =
                with_pre_session(&state, render_register(csrf, &form, &choices, Some(&error)), fresh);
            *response.status_mut() = error.http_status();
            Ok(response)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {}

async fn logout(State(state): State<AppState>, Posted { session, .. }: Posted<LogoutForm>) -> Response {
    let request = pb::LogoutRequest { username: session.username.clone() };
    // The cookie goes whatever the API says: a token it no longer accepts is as good as gone.
    if let Err(status) = state.api.identity().logout(authed(&session.token, request)).await {
        tracing::debug!(user = %session.username, %status, "logout: the token was already unusable");
    }
    let cookie = set_cookie(&state.config.session_cookie, "", state.config.secure_cookies, 0);
    ([(SET_COOKIE, cookie)], see_other("/login", "Logged out.")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_stay_on_this_portal() {
        assert!(safe_next("/projects/p"));
        assert!(!safe_next("//evil.example/"));
        assert!(!safe_next("/\\evil.example"));
        assert!(!safe_next("https://evil.example/"));
        assert_eq!(login_url(Some("https://evil.example/")), "/login");
        assert_eq!(login_url(Some("/xdcs?x=1")), "/login?next=%2Fxdcs%3Fx%3D1");
    }
}
