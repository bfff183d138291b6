//! User accounts: listing, showing, activating and freezing.

use std::collections::BTreeMap;

use serde_json::json;
use trellis_api::portal::v1 as pb;

use super::Ctx;
use super::projects::filter;
use crate::error::CliError;
use crate::output::{self, access_mode_name, members_summary, user_json, user_state_name};

/// `trellis list users`.
pub async fn list(ctx: &Ctx, all: bool) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let mut users =
        clients.workspace.get_users(pb::GetUsersRequest { filter: filter(all) }).await?.into_inner().users;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let value = json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() });
    ctx.emit(value, || {
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                vec![
                    u.username.clone(),
                    u.name.clone(),
                    user_state_name(u.state),
                    access_mode_name(u.access_mode),
                    if u.admin { "yes".to_owned() } else { String::new() },
                    u.email.clone(),
                ]
            })
            .collect();
        output::table(&["username", "name", "state", "mode", "admin", "email"], &rows)
    })
}

/// `trellis show user`.
pub async fn show(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::GetUserRequest { username: name, status_ms: 0 };
    let u = clients.workspace.get_user(request).await?.into_inner().user.unwrap_or_default();
    ctx.emit(json!({ "user": user_json(&u) }), || {
        let mut experiments = u.experiments.clone();
        experiments.sort();
        let facilities: BTreeMap<_, _> = u.facilities.iter().collect();
        output::key_values(&[
            ("username", u.username.clone()),
            ("name", u.name.clone()),
            ("email", u.email.clone()),
            ("state", user_state_name(u.state)),
            ("mode", access_mode_name(u.access_mode)),
            ("admin", u.admin.to_string()),
            ("projects", members_summary(&u.projects)),
            ("organizations", members_summary(&u.organizations)),
            ("experiments", experiments.join(", ")),
            ("facilities", facilities.into_keys().cloned().collect::<Vec<_>>().join(", ")),
            ("institution", u.institution.clone()),
            ("category", u.category.clone()),
            ("country", u.country.clone()),
            ("usstate", u.usstate.clone()),
            ("uid", u.uid.to_string()),
            ("gid", u.gid.to_string()),
            ("created", output::timestamp(u.created.as_ref())),
        ])
    })
}

/// `trellis activate user`.
pub async fn activate(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    let request = pb::ActivateUserRequest { username: name.clone(), action_reason: String::new() };
    clients.workspace.activate_user(request).await?;
    ctx.done(format!("activated user {name}"))
}

/// `trellis freeze user`.
pub async fn freeze(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let mut clients = ctx.connect().await?;
    clients.workspace.freeze_user(pb::FreezeUserRequest { username: name.clone() }).await?;
    ctx.done(format!("froze user {name}"))
}
