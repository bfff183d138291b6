//! The signed-in user's account: profile, SSH public keys, the portal-issued key pair and
//! certificate (the files `trellis login` installs) as downloads, and the password.
//!
//! Downloads ask the Cred service for the signed-in user's own credentials; the API decides
//! who may have them (only that user, and administrators), never this page.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use leptos::prelude::*;
use serde::Deserialize;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::authed;
use crate::error::WebError;
use crate::forms::Posted;
use crate::layout::{Page, badge, csrf_field};
use crate::pages::util::{Flash, access_mode_name, see_other, user_state_name, viewer};
use crate::session::{Session, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/keys", post(add_key))
        .route("/account/keys/delete", post(delete_key))
        .route("/account/password", post(change_password))
        .route("/account/ssh/{file}", get(download))
}

/// The files of `trellis login`, by the names it gives them in ~/.ssh.
const PRIVATE_KEY: &str = "merge_key";
const PUBLIC_KEY: &str = "merge_key.pub";
const CERTIFICATE: &str = "merge_key-cert.pub";
const KNOWN_HOSTS: &str = "trellis_known_hosts";

#[derive(Debug, Default, Clone, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    key: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct DeleteKeyForm {
    #[serde(default)]
    fingerprint: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// What a re-rendered account page keeps from the form that failed.
#[derive(Default)]
struct Kept {
    key: String,
}

async fn account_page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(flash): Query<Flash>,
) -> Result<Response, WebError> {
    render(&state, &session, flash.notice, &Kept::default(), None).await
}

fn field_error(error: Option<&WebError>, field: &str) -> Option<impl IntoView + use<>> {
    error.and_then(|e| e.field(field)).map(|m| view! { <div class="field-error">{m.to_owned()}</div> })
}

async fn render(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
    kept: &Kept,
    error: Option<&WebError>,
) -> Result<Response, WebError> {
    let user = viewer(state, session).await?;
    let mut client = state.api.workspace();
    let request = pb::GetUserPublicKeysRequest { user: session.username.clone() };
    let keys = client.get_user_public_keys(authed(&session.token, request)).await?.into_inner().keys;

    let profile = vec![
        ("Username", user.username.clone()),
        ("Name", user.name.clone()),
        ("Email", user.email.clone()),
        ("Institution", user.institution.clone()),
        ("Category", user.category.clone()),
        ("Country", user.country.clone()),
        ("Visibility", access_mode_name(user.access_mode).to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> })
    .collect_view();
    let account_state = user_state_name(user.state);
    let admin = user.admin.then(|| view! { " " <span class="badge">"administrator"</span> });
    let empty =
        keys.is_empty().then(|| view! { <p class="muted" id="no-keys">"No SSH public keys yet."</p> });
    let key_rows = keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let fingerprint = k.fingerprint.clone();
            view! {
                <tr id=format!("key-{i}")>
                    <td><code>{k.fingerprint}</code></td>
                    <td><code class="key">{k.key}</code></td>
                    <td>
                        <form method="post" action="/account/keys/delete" class="inline">
                            {csrf_field(session.csrf())}
                            <input type="hidden" name="fingerprint" value=fingerprint/>
                            <button type="submit" class="secondary" id=format!("delete-key-{i}")>"Remove"</button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let key_text = kept.key.clone();
    let page = Page::new("Account").session(session).admin(user.admin).notice(notice).error(error);
    let html = page.render(view! {
        <section id="profile">
            <h2>"Profile"</h2>
            <table id="profile-table">
                <tbody>
                    {profile}
                    <tr><th>"State"</th><td><span id="account-state">{badge(account_state)}</span>{admin}</td></tr>
                </tbody>
            </table>
        </section>
        <section id="ssh-keys">
            <h2>"SSH public keys"</h2>
            <p class="muted">"Keys you add here let you log in with your own key as well as the portal-issued one."</p>
            <table id="keys-table">
                <thead><tr><th>"Fingerprint"</th><th>"Key"</th><th></th></tr></thead>
                <tbody>{key_rows}</tbody>
            </table>
            {empty}
            <form method="post" action="/account/keys" class="card" id="add-key-form">
                {csrf_field(session.csrf())}
                <label for="add-key-text">"Public key (one line, as in ~/.ssh/id_ed25519.pub)"</label>
                <textarea id="add-key-text" name="key" rows="3" required>{key_text}</textarea>
                {field_error(error, "key")}
                <p><button type="submit" id="add-key">"Add key"</button></p>
            </form>
        </section>
        <section id="portal-credentials" class="card">
            <h2>"Portal-issued SSH credentials"</h2>
            <p>
                "The key pair and a day-long certificate for the XDC jump host, the files "
                <code>"trellis login"</code>
                " installs. Save them in ~/.ssh under these names:"
            </p>
            <ul>
                <li><a id="download-merge-key" href="/account/ssh/merge_key" download="merge_key">"merge_key"</a>" (private key; chmod 600)"</li>
                <li><a id="download-merge-key-pub" href="/account/ssh/merge_key.pub" download="merge_key.pub">"merge_key.pub"</a></li>
                <li><a id="download-merge-key-cert" href="/account/ssh/merge_key-cert.pub" download="merge_key-cert.pub">"merge_key-cert.pub"</a>" (certificate; download a fresh one when it expires)"</li>
                <li><a id="download-known-hosts" href="/account/ssh/trellis_known_hosts" download="trellis_known_hosts">"trellis_known_hosts"</a>" (trusts the portal's host certificates; use with "<code>"-o UserKnownHostsFile=~/.ssh/trellis_known_hosts"</code>")"</li>
            </ul>
        </section>
        <form method="post" action="/account/password" class="card" id="password-form">
            <h2>"Change password"</h2>
            {csrf_field(session.csrf())}
            <label for="new-password">"New password"</label>
            <input type="password" id="new-password" name="password" autocomplete="new-password" required/>
            {field_error(error, "password")}
            <label for="confirm-password">"New password again"</label>
            <input type="password" id="confirm-password" name="confirm" autocomplete="new-password" required/>
            <p><button type="submit" id="change-password">"Change password"</button></p>
        </form>
    });
    Ok(match error {
        Some(e) => (e.http_status(), html).into_response(),
        None => html.into_response(),
    })
}

async fn add_key(
    State(state): State<AppState>,
    Posted { session, form }: Posted<KeyForm>,
) -> Result<Response, WebError> {
    let key = form.key.trim().to_owned();
    let request = pb::AddUserPublicKeyRequest { user: session.username.clone(), key };
    let mut client = state.api.workspace();
    match client.add_user_public_key(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other("/account", "Added the SSH key.").into_response()),
        Err(status) => {
            render(&state, &session, None, &Kept { key: form.key }, Some(&WebError::from(status))).await
        }
    }
}

async fn delete_key(
    State(state): State<AppState>,
    Posted { session, form }: Posted<DeleteKeyForm>,
) -> Result<Response, WebError> {
    let request = pb::DeleteUserPublicKeyRequest {
        user: session.username.clone(),
        fingerprint: form.fingerprint.clone(),
    };
    let mut client = state.api.workspace();
    match client.delete_user_public_key(authed(&session.token, request)).await {
        Ok(_) => {
            Ok(see_other("/account", &format!("Removed the SSH key {}.", form.fingerprint)).into_response())
        }
        Err(status) => render(&state, &session, None, &Kept::default(), Some(&WebError::from(status))).await,
    }
}

async fn change_password(
    State(state): State<AppState>,
    Posted { session, form }: Posted<PasswordForm>,
) -> Result<Response, WebError> {
    // Catching a typo is the form's business; whether the password is acceptable is the API's.
    if form.password != form.confirm {
        let error = WebError::BadInput("the two new passwords differ".to_owned());
        return render(&state, &session, None, &Kept::default(), Some(&error)).await;
    }
    let request = pb::UpdateIdentityRequest {
        username: session.username.clone(),
        password: form.password,
        ..Default::default()
    };
    let mut client = state.api.identity();
    match client.update_identity(authed(&session.token, request)).await {
        Ok(_) => Ok(see_other("/account", "Changed your password.").into_response()),
        Err(status) => render(&state, &session, None, &Kept::default(), Some(&WebError::from(status))).await,
    }
}

/// `text` as a file download named `name`. Credentials are never cached anywhere.
fn attachment(name: &str, text: &str) -> Response {
    let body = format!("{}\n", text.trim_end());
    (
        [
            (CONTENT_TYPE, "application/octet-stream".to_owned()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn download(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(file): Path<String>,
) -> Result<Response, WebError> {
    let token = &session.token;
    let username = session.username.clone();
    let mut cred = state.api.cred();
    let (name, text) = match file.as_str() {
        PRIVATE_KEY | PUBLIC_KEY => {
            let request = pb::GetUserSshKeysRequest { username };
            let keys =
                cred.get_user_ssh_keys(authed(token, request)).await?.into_inner().keys.unwrap_or_default();
            if file == PRIVATE_KEY { (PRIVATE_KEY, keys.private) } else { (PUBLIC_KEY, keys.public) }
        }
        CERTIFICATE | KNOWN_HOSTS => {
            let request = pb::GetUserSshCertRequest { username };
            let cert =
                cred.get_user_ssh_cert(authed(token, request)).await?.into_inner().cert.unwrap_or_default();
            if file == CERTIFICATE {
                (CERTIFICATE, cert.cert)
            } else {
                if cert.ca_host_pub_key.trim().is_empty() {
                    return Err(WebError::NotFound(
                        "this portal has no SSH host certificate authority".to_owned(),
                    ));
                }
                (KNOWN_HOSTS, format!("@cert-authority * {}", cert.ca_host_pub_key.trim()))
            }
        }
        other => return Err(WebError::NotFound(format!("no credential file named {other}"))),
    };
    if text.trim().is_empty() {
        return Err(WebError::NotFound(format!("the portal returned no {name}")));
    }
    Ok(attachment(name, &text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_uncached_attachments_ending_in_a_newline() {
        let response = attachment("merge_key.pub", "ssh-ed25519 AAAA x\n\n");
        let header =
            |h| response.headers().get(h).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(header(CONTENT_DISPOSITION), "attachment; filename=\"merge_key.pub\"");
        assert_eq!(header(CACHE_CONTROL), "no-store");
    }
}
