//! YAML → rule table.
//!
//! The document is first read into `Raw*` structs that mirror the file's shape exactly, with
//! `deny_unknown_fields` at every level: a misspelt entity, mode or operation would otherwise be
//! dropped silently and its rules would never apply, which in a policy is a security bug (the
//! opposite trade-off to ordinary config, where tolerating unknown keys eases upgrades).
//! Grants are read as `Spanned<String>` so that a bad `Scope.Role` can be reported at its own
//! line and column; the parser's own errors (syntax, unknown keys, duplicate keys) carry theirs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{PolicyError, Position};
use crate::grant::Grant;
use crate::names::{AccessMode, Entity, Operation};

/// The parsed rules; an entity the document leaves out has no entry.
pub(crate) type Rules = BTreeMap<Entity, EntityRules>;

/// The grant lists of one entity, indexed by mode then operation; empty means admins only.
pub(crate) type EntityRules = BTreeMap<(AccessMode, Operation), Vec<Grant>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    user: Option<RawEntity>,
    project: Option<RawEntity>,
    organization: Option<RawEntity>,
    experiment: Option<RawEntity>,
    realization: Option<RawEntity>,
    materialization: Option<RawEntity>,
    xdc: Option<RawEntity>,
    facility: Option<RawEntity>,
    pool: Option<RawEntity>,
    identity: Option<RawEntity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    public: Option<RawOperations>,
    protected: Option<RawOperations>,
    private: Option<RawOperations>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperations {
    create: Option<Vec<Spanned<String>>>,
    read: Option<Vec<Spanned<String>>>,
    update: Option<Vec<Spanned<String>>>,
    delete: Option<Vec<Spanned<String>>>,
}

/// Parses `yaml` into rules; entities absent from the document are absent from the map.
pub(crate) fn parse_rules(yaml: &str) -> Result<Rules, PolicyError> {
    let raw: RawPolicy = serde_saphyr::from_str(yaml).map_err(|e| PolicyError::from_yaml(&e))?;
    // Listed by hand rather than with a macro so the Entity ↔ field pairing is visible.
    let entities = [
        (Entity::User, raw.user),
        (Entity::Project, raw.project),
        (Entity::Organization, raw.organization),
        (Entity::Experiment, raw.experiment),
        (Entity::Realization, raw.realization),
        (Entity::Materialization, raw.materialization),
        (Entity::Xdc, raw.xdc),
        (Entity::Facility, raw.facility),
        (Entity::Pool, raw.pool),
        (Entity::Identity, raw.identity),
    ];
    let mut rules = Rules::new();
    for (entity, raw_entity) in entities {
        let Some(raw_entity) = raw_entity else {
            continue;
        };
        let mut table = EntityRules::new();
        let modes = [
            (AccessMode::Public, raw_entity.public),
            (AccessMode::Protected, raw_entity.protected),
            (AccessMode::Private, raw_entity.private),
        ];
        for (mode, ops) in modes {
            let Some(ops) = ops else { continue };
            let ops = [
                (Operation::Create, ops.create),
                (Operation::Read, ops.read),
                (Operation::Update, ops.update),
                (Operation::Delete, ops.delete),
            ];
            for (op, grants) in ops {
                let grants =
                    grants.unwrap_or_default().into_iter().map(parse_grant).collect::<Result<Vec<_>, _>>()?;
                table.insert((mode, op), dedup(grants));
            }
        }
        rules.insert(entity, table);
    }
    if rules.is_empty() {
        return Err(PolicyError::Empty);
    }
    Ok(rules)
}

fn parse_grant(text: Spanned<String>) -> Result<Grant, PolicyError> {
    text.value.parse().map_err(|error| PolicyError::Grant {
        // `referenced` is where the grant is used; for a YAML alias that is the alias, which is
        // the line an admin must look at to understand why this rule is wrong.
        position: Position { line: text.referenced.line(), column: text.referenced.column() },
        error,
    })
}

/// Drops repeated grants while keeping the written order, so reasons list each grant once.
fn dedup(grants: Vec<Grant>) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::with_capacity(grants.len());
    for g in grants {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}
