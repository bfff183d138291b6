//! Form pieces and page helpers shared by the project and organization pages.

use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::*;
use trellis_api::portal::v1 as pb;

use crate::AppState;
use crate::api::anonymous;
use crate::error::WebError;
use crate::pages::util::page;
use crate::session::Session;

const MODES: [pb::AccessMode; 3] =
    [pb::AccessMode::Public, pb::AccessMode::Protected, pb::AccessMode::Private];
/// Roles a member can be given (a Creator exists once, from creation).
const ROLES: [pb::member::Role; 2] = [pb::member::Role::Member, pb::member::Role::Maintainer];

/// `<option>`s for the access modes, with `selected` chosen.
pub(crate) fn access_mode_options(selected: &str) -> impl IntoView + use<> {
    MODES
        .into_iter()
        .map(|m| {
            let name = m.as_str_name();
            let chosen = name == selected;
            view! { <option value=name selected=chosen>{name}</option> }
        })
        .collect_view()
}

/// `<option>`s for the roles a member may be given, with `selected` chosen.
pub(crate) fn role_options(selected: &str) -> impl IntoView + use<> {
    ROLES
        .into_iter()
        .map(|r| {
            let name = r.as_str_name();
            let chosen = name == selected;
            view! { <option value=name selected=chosen>{name}</option> }
        })
        .collect_view()
}

/// The wire value of an access mode named in a form; `None` when the form left it out.
pub(crate) fn parse_access_mode(text: &str) -> Result<Option<i32>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    pb::AccessMode::from_str_name(text).map(|m| Some(m as i32)).ok_or_else(|| {
        WebError::BadInput(format!("{text:?} is not an access mode (Public, Protected, Private)"))
    })
}

/// The wire value of a role named in a form.
pub(crate) fn parse_role(text: &str) -> Result<i32, WebError> {
    pb::member::Role::from_str_name(text.trim())
        .map(|r| r as i32)
        .ok_or_else(|| WebError::BadInput(format!("{text:?} is not a role (Member, Maintainer)")))
}

/// The API's message for the first of `fields` it named, under the form field.
pub(crate) fn field_error(error: Option<&WebError>, fields: &[&str]) -> Option<impl IntoView + use<>> {
    let message = error.and_then(|e| fields.iter().find_map(|f| e.field(f)))?.to_owned();
    Some(view! { <div class="field-error">{message}</div> })
}

/// A rendered page answering with the status of the error it shows (200 without one).
pub(crate) fn respond(html: Html<String>, error: Option<&WebError>) -> Response {
    let mut response = html.into_response();
    if let Some(error) = error {
        *response.status_mut() = error.http_status();
    }
    response
}

/// A page that could not be built (most often a denial): the error with the navigation around
/// it and its own status, so the policy's reason is shown like any other page.
pub(crate) async fn failure(state: &AppState, session: &Session, title: &str, error: WebError) -> Response {
    if error.is_signed_out() {
        return error.into_response();
    }
    match page(state, session, title).await {
        Ok(page) => {
            let html =
                page.error(Some(&error)).render(view! { <p><a href="/">"Back to the dashboard"</a></p> });
            respond(html, Some(&error))
        }
        Err(e) => e.into_response(),
    }
}

/// The configured project/organization categories (empty when an administrator set none).
pub(crate) async fn entity_types(state: &AppState) -> Result<Vec<pb::EntityType>, WebError> {
    let mut client = state.api.workspace();
    let request = anonymous(pb::GetEntityTypeConfigurationsRequest {});
    Ok(client.get_entity_type_configurations(request).await?.into_inner().types)
}

/// Category and subcategory choices, when the portal has any configured. `prefix` makes the
/// element ids unique per form (`<prefix>-category`, `<prefix>-subcategory`).
pub(crate) fn category_fields(
    types: &[pb::EntityType],
    prefix: &str,
    category: &str,
    subcategory: &str,
) -> Option<impl IntoView + use<>> {
    if types.is_empty() {
        return None;
    }
    let categories = types
        .iter()
        .map(|t| {
            let chosen = t.etype == category;
            view! { <option value=t.etype.clone() selected=chosen>{t.etype.clone()}</option> }
        })
        .collect_view();
    let subcategories = types
        .iter()
        .map(|t| {
            let options = t
                .subtypes
                .iter()
                .map(|s| {
                    let chosen = s == subcategory;
                    view! { <option value=s.clone() selected=chosen>{s.clone()}</option> }
                })
                .collect_view();
            view! { <optgroup label=t.etype.clone()>{options}</optgroup> }
        })
        .collect_view();
    let (category_id, subcategory_id) = (format!("{prefix}-category"), format!("{prefix}-subcategory"));
    Some(view! {
        <label for=category_id.clone()>"Category"</label>
        <select id=category_id name="category"><option value="">"—"</option>{categories}</select>
        <label for=subcategory_id.clone()>"Subcategory"</label>
        <select id=subcategory_id name="subcategory"><option value="">"—"</option>{subcategories}</select>
    })
}

/// The name of an account/activation state.
pub(crate) fn activation_state_name(state: i32) -> &'static str {
    pb::UserState::try_from(state).map(|s| s.as_str_name()).unwrap_or("Unknown")
}

/// Members sorted by name.
pub(crate) fn sorted_members(
    members: &std::collections::HashMap<String, pb::Member>,
) -> Vec<(String, pb::Member)> {
    let mut members: Vec<_> = members.iter().map(|(k, v)| (k.clone(), *v)).collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members
}

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn form_names_map_to_wire_values() {
        assert_eq!(parse_access_mode("Private").ok(), Some(Some(pb::AccessMode::Private as i32)));
        assert_eq!(parse_access_mode(" Public ").ok(), Some(Some(pb::AccessMode::Public as i32)));
        assert_eq!(parse_access_mode("").ok(), Some(None));
        assert!(matches!(parse_access_mode("secret"), Err(WebError::BadInput(_))));
        assert_eq!(parse_role("Maintainer").ok(), Some(pb::member::Role::Maintainer as i32));
        assert!(matches!(parse_role(""), Err(WebError::BadInput(_))));
    }

    #[test]
    fn field_errors_show_the_first_field_the_api_named() {
        let status = tonic::Status::with_error_details(
            tonic::Code::InvalidArgument,
            "bad",
            tonic_types::ErrorDetails::with_bad_request(vec![tonic_types::FieldViolation::new(
                "project",
                "must start with a lowercase letter",
            )]),
        );
        let error = WebError::from(status);
        let html = Owner::new().with(|| field_error(Some(&error), &["name", "project"]).to_html());
        assert!(html.contains("must start with a lowercase letter"), "{html}");
        assert!(field_error(Some(&error), &["description"]).is_none());
        assert!(field_error(None, &["project"]).is_none());
    }
}
