//! Portal administration: every account with Activate / Freeze, the access policy in force,
//! facilities, resource pools and the portal's health.
//!
//! The page opens with the administrators-only identity list, so anyone else gets the API's
//! own refusal (403, with its reason) rather than a decision made here. A pasted policy can be
//! checked with the portal's own parser (pure: nothing is installed; the file on the portal
//! host stays the one source, hot-reloaded).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{Page, badge, csrf_field};
use crate::pages::util::{Flash, access_mode_name, see_other, seg, user_state_name, viewer};
use crate::session::{Session, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin_page))
        .route("/admin/users/{username}/activate", post(activate))
        .route("/admin/users/{username}/freeze", post(freeze))
        .route("/admin/policy/check", post(check_policy))
}

/// A pasted policy and what the parser said about it.
pub struct PolicyCheck {
    text: String,
    /// The warnings of a valid policy, or why it is not valid (with line and column).
    outcome: Result<Vec<String>, String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    policy: String,
}

async fn check_policy(
    State(state): State<AppState>,
    Posted { session, form }: Posted<PolicyForm>,
) -> Result<Response, WebError> {
    let outcome = match trellis_policy::Policy::parse(&form.policy) {
        Ok(policy) => Ok(policy.warnings().to_vec()),
        Err(e) => Err(e.to_string()),
    };
    // The page itself (and so the check) is only shown to those the API lets list identities.
    render(&state, &session, None, None, Some(PolicyCheck { text: form.policy, outcome })).await
}

fn policy_check_view(csrf: String, check: Option<PolicyCheck>, current: &str) -> impl IntoView + use<> {
    let (text, outcome) = match check {
        Some(PolicyCheck { text, outcome }) => (text, Some(outcome)),
        None => (current.to_owned(), None),
    };
    let outcome = outcome.map(|outcome| match outcome {
        Ok(warnings) if warnings.is_empty() => {
            view! { <div class="banner notice" id="policy-check-result">"Valid: the policy parses and every grant is known."</div> }.into_any()
        }
        Ok(warnings) => {
            let items = warnings.into_iter().map(|w| view! { <li>{w}</li> }).collect_view();
            view! { <div class="banner notice" id="policy-check-result">"Valid, with warnings:" <ul>{items}</ul></div> }.into_any()
        }
        Err(reason) => {
            view! { <div class="banner error" id="policy-check-result"><strong>"Not valid: "</strong>{reason}</div> }.into_any()
        }
    });
    view! {
        <form method="post" action="/admin/policy/check" class="card" id="policy-check-form">
            {csrf_field(csrf)}
            <label for="policy-text">"Check a policy (nothing is installed)"</label>
            {outcome}
            <textarea id="policy-text" name="policy" rows="16">{text}</textarea>
            <p><button type="submit" id="check-policy">"Check"</button></p>
        </form>
    }
}

async fn admin_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(flash): Query<Flash>,
) -> Result<Response, WebError> {
    render(&state, &session, flash.notice, None, None).await
}

/// A section's content, or the API's reason it cannot be shown (a portal without experiment
/// support has no facilities or pools; the rest of the page still works).
fn or_reason<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, String> {
    result.map(tonic::Response::into_inner).map_err(|status| WebError::from(status).to_string())
}

fn reason_view(id: &'static str, reason: String) -> AnyView {
    view! { <p class="field-error" id=id>{reason}</p> }.into_any()
}

async fn render(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
    error: Option<&WebError>,
    check: Option<PolicyCheck>,
) -> Result<Response, WebError> {
    let me = viewer(state, session).await?;
    let page = Page::new("Administration").session(session).admin(me.admin).notice(notice);
    let token = &session.token;
    let mut identity = state.api.identity();
    let identities = match identity.list_identities(authed(token, pb::ListIdentityRequest {})).await {
        Ok(r) => r.into_inner().identities,
        Err(status) => {
            // A refused action keeps its own reason; otherwise the page itself was refused.
            let denied = WebError::from(status);
            let shown = error.unwrap_or(&denied);
            let html =
                page.error(Some(shown)).render(view! { <p><a href="/">"Back to the dashboard"</a></p> });
            return Ok((shown.http_status(), html).into_response());
        }
    };
    let (mut users_client, mut policy_client, mut health_client) =
        (state.api.workspace(), state.api.workspace(), state.api.workspace());
    let (mut commission, mut alloc) = (state.api.commission(), state.api.alloc());
    let (users, policy, health, facilities, pools) = tokio::join!(
        users_client.get_users(authed(token, pb::GetUsersRequest { filter: pb::FilterMode::ByAll as i32 })),
        policy_client.get_policy(authed(token, pb::GetPolicyRequest {})),
        health_client.health(authed(token, pb::HealthRequest {})),
        commission.get_facilities(authed(token, pb::GetFacilitiesRequest {})),
        alloc.get_pools(authed(token, pb::GetPoolsRequest {})),
    );
    let mut users = users?.into_inner().users;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let email_of = |username: &str| {
        identities.iter().find(|i| i.username == username).map(|i| i.email.clone()).unwrap_or_default()
    };
    let user_rows = users
        .into_iter()
        .map(|u| {
            let email = if u.email.is_empty() { email_of(&u.username) } else { u.email.clone() };
            let user_state = user_state_name(u.state);
            let base = format!("/admin/users/{}", seg(&u.username));
            let admin = u.admin.then(|| view! { <span class="badge">"admin"</span> });
            let (active, frozen) = (user_state == "Active", user_state == "Frozen");
            let csrf = session.csrf();
            let (row_id, activate_id, freeze_id) =
                (format!("user-{}", u.username), format!("activate-{}", u.username), format!("freeze-{}", u.username));
            view! {
                <tr id=row_id>
                    <td>{u.username}</td>
                    <td>{u.name}</td>
                    <td>{email}</td>
                    <td>{u.institution}</td>
                    <td>{badge(user_state)} " " {admin}</td>
                    <td>
                        <form method="post" action=format!("{base}/activate") class="inline">
                            {csrf_field(csrf.clone())}
                            <button type="submit" id=activate_id disabled=active>"Activate"</button>
                        </form>
                        " "
                        <form method="post" action=format!("{base}/freeze") class="inline">
                            {csrf_field(csrf)}
                            <button type="submit" class="danger" id=freeze_id disabled=frozen>"Freeze"</button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let policy = match or_reason(policy) {
        Ok(p) => {
            let checker = policy_check_view(session.csrf(), check, &p.policy);
            view! { <pre id="policy">{p.policy}</pre> {checker} }.into_any()
        }
        Err(reason) => reason_view("policy", reason),
    };
    let health = match or_reason(health) {
        Ok(h) => view! { <span id="health">{badge(if h.status == "OK" { "Ready".to_owned() } else { h.status.clone() })} " " <code>{h.status}</code></span> }.into_any(),
        Err(reason) => reason_view("health", reason),
    };
    let facilities = match or_reason(facilities) {
        Ok(f) => facilities_table(f.facilities).into_any(),
        Err(reason) => reason_view("facilities-table", reason),
    };
    let pools = match or_reason(pools) {
        Ok(p) => pools_table(p.pools).into_any(),
        Err(reason) => reason_view("pools-table", reason),
    };
    let html = page.error(error).render(view! {
        <p>"Portal health: " {health}</p>
        <section id="users">
            <h2>"Users"</h2>
            <table id="users-table">
                <thead><tr><th>"Username"</th><th>"Name"</th><th>"Email"</th><th>"Institution"</th><th>"State"</th><th></th></tr></thead>
                <tbody>{user_rows}</tbody>
            </table>
        </section>
        <section id="facilities">
            <h2>"Facilities"</h2>
            {facilities}
        </section>
        <section id="pools">
            <h2>"Resource pools"</h2>
            {pools}
        </section>
        <section id="access-policy">
            <h2>"Access policy in force"</h2>
            <p class="muted">
                "The portal reloads its policy file when it changes (or on SIGHUP) and keeps the previous "
                "policy if the new one does not parse. Check an edited policy below before installing it."
            </p>
            {policy}
        </section>
    });
    Ok(match error {
        Some(e) => (e.http_status(), html).into_response(),
        None => html.into_response(),
    })
}

fn facilities_table(mut facilities: Vec<pb::Facility>) -> impl IntoView {
    facilities.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = facilities
        .into_iter()
        .map(|f| {
            let mode = access_mode_name(f.access_mode);
            let id = format!("facility-{}", f.name);
            view! {
                <tr id=id>
                    <td>{f.name}</td>
                    <td>{f.address}</td>
                    <td>{f.description}</td>
                    <td>{mode}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="facilities-table">
            <thead><tr><th>"Name"</th><th>"Address"</th><th>"Description"</th><th>"Access"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

fn pools_table(mut pools: Vec<pb::Pool>) -> impl IntoView {
    pools.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.name.cmp(&b.name)));
    let rows = pools
        .into_iter()
        .map(|p| {
            let mut facilities: Vec<String> = p.facilities.keys().cloned().collect();
            facilities.sort();
            let id = format!("pool-{}", p.name);
            view! {
                <tr id=id>
                    <td>{p.name}</td>
                    <td>{p.description}</td>
                    <td>{p.priority}</td>
                    <td>{facilities.join(", ")}</td>
                    <td>{p.projects.join(", ")}</td>
                    <td>{p.organizations.join(", ")}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table id="pools-table">
            <thead><tr>
                <th>"Name"</th><th>"Description"</th><th>"Priority"</th><th>"Facilities"</th>
                <th>"Projects"</th><th>"Organizations"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

async fn activate(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Posted { session, .. }: Posted<NoFields>,
) -> Result<Response, WebError> {
    let request = pb::ActivateUserRequest { username: username.clone(), action_reason: String::new() };
    let mut client = state.api.workspace();
    match client.activate_user(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other("/admin", &format!("Activated {username}.")).into_response()),
        Err(status) => render(&state, &session, None, Some(&WebError::from(status)), None).await,
    }
}

async fn freeze(
    State(state): State<AppState>,
    Path(username): Path<String>,
    Posted { session, .. }: Posted<NoFields>,
) -> Result<Response, WebError> {
    let request = pb::FreezeUserRequest { username: username.clone() };
    let mut client = state.api.workspace();
    match client.freeze_user(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other("/admin", &format!("Froze {username}.")).into_response()),
        Err(status) => render(&state, &session, None, Some(&WebError::from(status)), None).await,
    }
}
