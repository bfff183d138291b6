//! [`Policy`]: the parsed rule table, and [`Policy::decide`].

use std::fmt;

use crate::error::PolicyError;
use crate::grant::{Grant, Relations};
use crate::names::{AccessMode, Entity, Operation};
use crate::parse::{Rules, parse_rules};

/// The text of the shipped default policy (`policy/policy.yml`).
pub const BUILTIN_POLICY_YAML: &str = include_str!("../policy.yml");

/// One access question: may this caller do `operation` on an `entity` whose access mode is
/// `mode`?
///
/// The caller is assumed to be authenticated; unauthenticated requests must be refused before
/// the policy is consulted, because `Any.Any` grants every caller that reaches it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The kind of object.
    pub entity: Entity,
    /// The object's access mode (for `create`, the mode it will be created with).
    pub mode: AccessMode,
    /// What the caller wants to do.
    pub operation: Operation,
    /// Whether the caller is a portal administrator; administrators are allowed everything.
    pub admin: bool,
    /// What the caller holds with respect to the object.
    pub relations: &'a Relations,
}

/// The answer to an [`AccessRequest`], with a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policy grant that allowed it, if a grant did (not set for administrators).
    pub matched: Option<Grant>,
    reason: String,
}

impl Decision {
    /// A human sentence naming what was required and what the caller holds, e.g. "reading a
    /// private experiment requires one of Experiment.Maintainer, Project.Creator; you hold
    /// Project.Member". Suitable for a `PermissionDenied` message.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A validated access policy.
///
/// Rules are looked up as entity → access mode → operation → list of grants, any one of which
/// suffices. A missing or empty list means portal administrators only. An entity left out of
/// the document entirely is also administrators-only: that keeps a partial policy safe (nothing
/// is opened by omission), and [`Policy::warnings`] names each such entity so the omission is
/// noticed; it is not an error because a deployment may genuinely not use, say, pools.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Rules,
    warnings: Vec<String>,
    source: String,
}

impl Policy {
    /// Parses and validates a policy document.
    ///
    /// Errors carry the line and column of the problem: YAML syntax, unknown or duplicate keys,
    /// and invalid `Scope.Role` grants. Warnings (entities left out) are logged with `tracing`
    /// and kept in [`Policy::warnings`].
    pub fn parse(yaml: &str) -> Result<Policy, PolicyError> {
        let rules = parse_rules(yaml)?;
        let warnings: Vec<String> = Entity::ALL
            .iter()
            .filter(|e| !rules.contains_key(e))
            .map(|e| format!("the policy has no rules for {e}: only portal administrators may use it"))
            .collect();
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(Policy { rules, warnings, source: yaml.to_owned() })
    }

    /// The shipped default policy ([`BUILTIN_POLICY_YAML`]).
    pub fn builtin() -> Policy {
        Policy::parse(BUILTIN_POLICY_YAML)
            .expect("the shipped policy.yml is valid (checked by the builtin_parses test)")
    }

    /// Decides an access request. Never fails: anything the policy does not grant is denied.
    pub fn decide(&self, req: &AccessRequest<'_>) -> Decision {
        let action = format!("{} a {} {}", req.operation.gerund(), req.mode, req.entity);
        if req.admin {
            return Decision {
                allowed: true,
                matched: None,
                reason: format!("{action} is allowed: you are a portal administrator"),
            };
        }
        if !self.defines(req.entity) {
            return denied(format!(
                "{action} is restricted to portal administrators: the policy has no rules for {}",
                req.entity
            ));
        }
        let grants = self.grants(req.entity, req.mode, req.operation);
        if grants.is_empty() {
            return denied(format!(
                "{action} is restricted to portal administrators; you hold {}",
                req.relations
            ));
        }
        if let Some(&grant) = grants.iter().find(|g| g.allows(req.relations)) {
            let reason = if grant == Grant::ANYONE {
                format!("{action} is allowed by Any.Any (every signed-in user)")
            } else {
                format!("{action} is allowed by {grant}; you hold {}", req.relations)
            };
            return Decision { allowed: true, matched: Some(grant), reason };
        }
        let required = grants.iter().map(Grant::to_string).collect::<Vec<_>>().join(", ");
        let one_of = if grants.len() > 1 { "one of " } else { "" };
        denied(format!("{action} requires {one_of}{required}; you hold {}", req.relations))
    }

    /// The grants for one rule, any one of which suffices; empty means administrators only.
    pub fn grants(&self, entity: Entity, mode: AccessMode, operation: Operation) -> &[Grant] {
        self.rules.get(&entity).and_then(|table| table.get(&(mode, operation))).map_or(&[], Vec::as_slice)
    }

    /// Whether the document has a section for `entity`.
    pub fn defines(&self, entity: Entity) -> bool {
        self.rules.contains_key(&entity)
    }

    /// Non-fatal findings from parsing, one sentence each (entities left out).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The document this policy was parsed from, comments included.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The policy as YAML, for `GetPolicy`: the source text as the administrator wrote it, so
    /// comments survive; it parses back to the same rules.
    pub fn to_yaml(&self) -> String {
        self.source.clone()
    }
}

fn denied(reason: String) -> Decision {
    Decision { allowed: false, matched: None, reason }
}
