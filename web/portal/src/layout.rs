//! The page shell every page renders into: head, navigation, banners, and the style sheet.

use axum::response::Html;
use leptos::prelude::*;

use crate::error::WebError;
use crate::session::Session;

/// The style sheet, served at [`STYLE_PATH`].
pub const STYLE: &str = include_str!("portal.css");
pub const STYLE_PATH: &str = "/static/portal.css";

/// One page under construction: title, who is looking, banners, and whether it refreshes
/// itself while work is in progress.
pub struct Page {
    title: String,
    user: Option<(String, String)>,
    admin: bool,
    notice: Option<String>,
    error: Option<(String, String)>,
    refresh_secs: Option<u32>,
}

impl Page {
    pub fn new(title: impl Into<String>) -> Page {
        Page { title: title.into(), user: None, admin: false, notice: None, error: None, refresh_secs: None }
    }

    /// Shows the signed-in user and the navigation (with the logout form's CSRF token).
    pub fn session(mut self, session: &Session) -> Page {
        self.user = Some((session.username.clone(), session.csrf()));
        self
    }

    /// Shows the Admin entry in the navigation.
    pub fn admin(mut self, admin: bool) -> Page {
        self.admin = admin;
        self
    }

    /// A green banner saying what just happened.
    pub fn notice(mut self, notice: Option<String>) -> Page {
        self.notice = notice.filter(|n| !n.is_empty());
        self
    }

    /// A red banner with the API's own words.
    pub fn error(mut self, error: Option<&WebError>) -> Page {
        self.error = error.map(|e| (e.title().to_owned(), e.to_string()));
        self
    }

    /// Reloads the page every `secs` while something it shows is still changing.
    pub fn refresh_every(mut self, secs: Option<u32>) -> Page {
        self.refresh_secs = secs;
        self
    }

    pub fn render(self, body: impl IntoView + 'static) -> Html<String> {
        let Page { title, user, admin, notice, error, refresh_secs } = self;
        let refresh =
            refresh_secs.map(|secs| view! { <meta http-equiv="refresh" content=secs.to_string()/> });
        let nav = user.map(|(username, csrf)| {
            let admin_link = admin.then(|| view! { <a href="/admin">"Admin"</a> });
            view! {
                <nav>
                    <a class="brand" href="/">"Trellis"</a>
                    <a href="/">"Dashboard"</a>
                    <a href="/projects">"Projects"</a>
                    <a href="/organizations">"Organizations"</a>
                    <a href="/experiments">"Experiments"</a>
                    <a href="/xdcs">"XDCs"</a>
                    <a href="/account">"Account"</a>
                    {admin_link}
                    <span class="spacer"></span>
                    <span class="who" id="whoami">{username}</span>
                    <form method="post" action="/logout" class="inline">
                        <input type="hidden" name="csrf" value=csrf/>
                        <button type="submit" id="logout">"Log out"</button>
                    </form>
                </nav>
            }
        });
        let anonymous_nav = nav.is_none().then(|| {
            view! {
                <nav>
                    <a class="brand" href="/">"Trellis"</a>
                    <span class="spacer"></span>
                    <a href="/login">"Log in"</a>
                    <a href="/register">"Register"</a>
                </nav>
            }
        });
        let notice = notice.map(|n| view! { <div class="banner notice" role="status">{n}</div> });
        let error = error.map(|(heading, message)| {
            view! { <div class="banner error" role="alert"><strong>{heading}": "</strong>{message}</div> }
        });
        let progress = refresh_secs.map(|_| {
            view! { <div class="progress" aria-label="work in progress"><div class="bar"></div></div> }
        });
        let html = Owner::new().with(|| {
            view! {
                <html lang="en">
                    <head>
                        <meta charset="utf-8"/>
                        <meta name="viewport" content="width=device-width, initial-scale=1"/>
                        {refresh}
                        <title>{format!("{title} · Trellis")}</title>
                        <link rel="stylesheet" href=STYLE_PATH/>
                    </head>
                    <body>
                        {nav}
                        {anonymous_nav}
                        {progress}
                        <main>
                            <h1>{title}</h1>
                            {notice}
                            {error}
                            {body}
                        </main>
                    </body>
                </html>
            }
            .to_html()
        });
        Html(format!("<!DOCTYPE html>{html}"))
    }
}

/// The page for an error no handler rendered itself.
pub fn error_page(error: &WebError) -> Html<String> {
    Page::new(error.title())
        .error(Some(error))
        .render(view! { <p><a href="/">"Back to the dashboard"</a></p> })
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(csrf: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=csrf/> }
}

/// A state badge (`Active`, `Pending`, `Error`, ...), coloured by how it is going.
pub fn badge(state: impl Into<String>) -> impl IntoView {
    let state = state.into();
    let class = match state.to_ascii_lowercase().as_str() {
        "active" | "success" | "ready" | "running" | "complete" | "materialized" | "realized" => "badge ok",
        "pending" | "unknown" | "starting" | "creating" | "in progress" | "progress" => "badge busy",
        "" => "badge",
        _ if state.to_ascii_lowercase().contains("error") || state.to_ascii_lowercase().contains("fail") => {
            "badge bad"
        }
        _ => "badge",
    };
    view! { <span class=class>{state}</span> }
}
