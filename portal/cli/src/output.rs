//! Printing: JSON for `--json`, aligned tables for lists, `key: value` blocks for `show`.
//!
//! prost messages do not implement serde, so this is the one module that turns the messages
//! the CLI prints into JSON, by hand.
//! Field names follow the proto3 JSON mapping (lowerCamelCase), enums are printed by name
//! (`"Active"`, `"Creator"`), timestamps as RFC 3339 and 64-bit integers as plain numbers.
//! Every field is printed, even when it holds its default value, so scripts can rely on keys.
//! Realizations, facilities and pools are in `output/realize.rs`, materializations in
//! `output/materialize.rs`, XDCs and jump hosts in `output/xdc.rs`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::{Map, Value, json};
use trellis_api::portal::v1 as pb;

use crate::error::CliError;

mod materialize;
mod realize;
mod xdc;

pub use materialize::*;
pub use realize::*;
pub use xdc::*;

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &Value) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value).map_err(CliError::Json)?;
    text.push('\n');
    print_text(&text)
}

/// Prints `text` on standard output; a reader that went away (`trellis list users | head`)
/// is not an error.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Stdout(e)),
        _ => Ok(()),
    }
}

/// Formats rows under upper-case `headers`, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.chars().count())));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Formats `key: value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(format!("{label:<width$} {value}").trim_end());
        out.push('\n');
    }
    out
}

/// A protobuf enum value's name, or its number when this client does not know it.
fn name_or_number<E: TryFrom<i32>>(value: i32, name: fn(&E) -> &'static str) -> String {
    E::try_from(value).map_or_else(|_| value.to_string(), |e| name(&e).to_owned())
}

/// The access mode's name (`Public`, `Protected`, `Private`).
pub fn access_mode_name(value: i32) -> String {
    name_or_number::<pb::AccessMode>(value, pb::AccessMode::as_str_name)
}

/// The activation state's name (`Pending`, `Active`, `Frozen`, ...).
pub fn user_state_name(value: i32) -> String {
    name_or_number::<pb::UserState>(value, pb::UserState::as_str_name)
}

/// A member's role name (`Member`, `Maintainer`, `Creator`).
pub fn role_name(value: i32) -> String {
    name_or_number::<pb::member::Role>(value, pb::member::Role::as_str_name)
}

/// A member's state name (`Pending`, `Active`, ...).
pub fn member_state_name(value: i32) -> String {
    name_or_number::<pb::member::State>(value, pb::member::State::as_str_name)
}

/// `alice (Creator), bob (Member)`, sorted by name.
pub fn members_summary(members: &HashMap<String, pb::Member>) -> String {
    let sorted: BTreeMap<_, _> = members.iter().collect();
    sorted
        .into_iter()
        .map(|(name, m)| format!("{name} ({})", role_name(m.role)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A timestamp in RFC 3339, or empty when unset.
pub fn timestamp(t: Option<&prost_types::Timestamp>) -> String {
    t.map(ToString::to_string).unwrap_or_default()
}

/// A timestamp as a JSON string in RFC 3339, or `null` when unset.
pub fn timestamp_json(t: Option<&prost_types::Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_string()))
}

fn members_json(members: &HashMap<String, pb::Member>) -> Value {
    let sorted: BTreeMap<_, _> = members.iter().collect();
    Value::Object(sorted.into_iter().map(|(k, m)| (k.clone(), member_json(m))).collect::<Map<_, _>>())
}

/// `Member` as JSON.
pub fn member_json(m: &pb::Member) -> Value {
    json!({ "role": role_name(m.role), "state": member_state_name(m.state) })
}

/// `Project` as JSON.
pub fn project_json(p: &pb::Project) -> Value {
    json!({
        "name": p.name,
        "description": p.description,
        "members": members_json(&p.members),
        "experiments": p.experiments,
        "accessMode": access_mode_name(p.access_mode),
        "gid": p.gid,
        "ver": p.ver,
        "organization": p.organization,
        "orgMembership": p.org_membership.as_ref().map_or(Value::Null, member_json),
        "category": p.category,
        "subcategory": p.subcategory,
        "created": timestamp_json(p.created.as_ref()),
        "state": user_state_name(p.state),
        "pools": p.pools,
    })
}

/// `Experiment` as JSON.
pub fn experiment_json(e: &pb::Experiment) -> Value {
    let models: BTreeMap<_, _> = e.models.iter().collect();
    let models: Map<String, Value> = models
        .into_iter()
        .map(|(rev, m)| {
            let model = json!({ "compiled": m.compiled, "msg": m.msg, "realizations": m.realizations });
            (rev.clone(), model)
        })
        .collect();
    json!({
        "name": e.name,
        "project": e.project,
        "description": e.description,
        "models": models,
        "accessMode": access_mode_name(e.access_mode),
        "repository": e.repository,
        "creator": e.creator,
        "maintainers": e.maintainers,
        "ver": e.ver,
        "created": timestamp_json(e.created.as_ref()),
    })
}

/// `Organization` as JSON.
pub fn organization_json(o: &pb::Organization) -> Value {
    json!({
        "name": o.name,
        "description": o.description,
        "oid": o.oid,
        "members": members_json(&o.members),
        "projects": members_json(&o.projects),
        "state": user_state_name(o.state),
        "accessMode": access_mode_name(o.access_mode),
        "ver": o.ver,
        "category": o.category,
        "subcategory": o.subcategory,
        "created": timestamp_json(o.created.as_ref()),
    })
}

/// `User` as JSON.
pub fn user_json(u: &pb::User) -> Value {
    json!({
        "username": u.username,
        "name": u.name,
        "state": user_state_name(u.state),
        "accessMode": access_mode_name(u.access_mode),
        "uid": u.uid,
        "gid": u.gid,
        "projects": members_json(&u.projects),
        "experiments": u.experiments,
        "organizations": members_json(&u.organizations),
        "facilities": members_json(&u.facilities),
        "admin": u.admin,
        "ver": u.ver,
        "institution": u.institution,
        "category": u.category,
        "email": u.email,
        "country": u.country,
        "usstate": u.usstate,
        "created": timestamp_json(u.created.as_ref()),
        "demoModeExpiration": timestamp_json(u.demo_mode_expiration.as_ref()),
    })
}

/// `PublicKey` as JSON.
pub fn public_key_json(k: &pb::PublicKey) -> Value {
    json!({ "fingerprint": k.fingerprint, "key": k.key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let rows = vec![
            vec!["p1".to_owned(), "first".to_owned(), "Public".to_owned()],
            vec!["project-two".to_owned(), String::new(), "Private".to_owned()],
        ];
        let text = table(&["name", "description", "mode"], &rows);
        assert_eq!(
            text,
            "NAME         DESCRIPTION  MODE\n\
             p1           first        Public\n\
             project-two               Private\n"
        );
        assert_eq!(table(&["name"], &[]), "NAME\n");
    }

    #[test]
    fn key_values_align() {
        let text = key_values(&[("name", "p1".into()), ("description", String::new())]);
        assert_eq!(text, "name:        p1\ndescription:\n");
    }

    #[test]
    fn enums_print_by_name() {
        let mut members = HashMap::new();
        members.insert(
            "zed".to_owned(),
            pb::Member { role: pb::member::Role::Member as i32, state: pb::member::State::Pending as i32 },
        );
        members.insert(
            "alice".to_owned(),
            pb::Member { role: pb::member::Role::Creator as i32, state: pb::member::State::Active as i32 },
        );
        let p = pb::Project {
            name: "p1".into(),
            members,
            access_mode: pb::AccessMode::Private as i32,
            state: pb::UserState::Active as i32,
            created: Some(prost_types::Timestamp { seconds: 0, nanos: 0 }),
            ..Default::default()
        };
        let v = project_json(&p);
        assert_eq!(v["accessMode"], "Private");
        assert_eq!(v["state"], "Active");
        assert_eq!(v["members"]["alice"]["role"], "Creator");
        assert_eq!(v["members"]["zed"]["state"], "Pending");
        assert_eq!(v["created"], "1970-01-01T00:00:00Z");
        assert_eq!(v["orgMembership"], Value::Null);
        assert_eq!(members_summary(&p.members), "alice (Creator), zed (Member)");
        assert_eq!(access_mode_name(42), "42");
    }
}
