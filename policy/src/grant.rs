//! `Scope.Role` grants, as written in the policy, and the [`Relations`] a caller holds.

use std::fmt;
use std::str::FromStr;

use crate::names::{Role, Scope, UnknownName};

/// One `Scope.Role` pair, e.g. `Project.Member`.
///
/// In the policy it is a requirement; in [`Relations`] it is something the caller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// What the role is held on.
    pub scope: Scope,
    /// The role held.
    pub role: Role,
}

/// Why a `Scope.Role` string is not a valid grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No dot, or more than one.
    #[error("grant {text:?} must have the form Scope.Role, e.g. Project.Member")]
    Shape {
        /// The grant as written.
        text: String,
    },
    /// The scope half is not a known scope.
    #[error("{name} in grant {text:?}")]
    UnknownScope {
        /// The grant as written.
        text: String,
        /// The unknown scope and the accepted ones.
        name: UnknownName,
    },
    /// The role half is not a known role.
    #[error("{name} in grant {text:?}")]
    UnknownRole {
        /// The grant as written.
        text: String,
        /// The unknown role and the accepted ones.
        name: UnknownName,
    },
    /// `Self` used with a scope other than `User`, or `User` with a role other than `Self`.
    #[error("grant {text:?}: the role Self and the scope User only go together, as User.Self")]
    SelfOutsideUser {
        /// The grant as written.
        text: String,
    },
}

impl Grant {
    /// `Any.Any`: every authenticated caller.
    pub const ANYONE: Grant = Grant::new(Scope::Any, Role::Any);

    /// A grant of `role` in `scope`.
    pub const fn new(scope: Scope, role: Role) -> Grant {
        Grant { scope, role }
    }

    /// Whether a caller holding `held` satisfies this grant.
    ///
    /// The scope must match (or this grant's scope is `Any`) and the held role must satisfy the
    /// required one under [`Role::satisfies`]. `Any.Any` is handled by [`Grant::allows`], since
    /// it needs no held relation at all.
    pub fn satisfied_by(self, held: Grant) -> bool {
        (self.scope == Scope::Any || self.scope == held.scope) && held.role.satisfies(self.role)
    }

    /// Whether a caller with `relations` satisfies this grant.
    pub fn allows(self, relations: &Relations) -> bool {
        self == Grant::ANYONE || relations.iter().any(|held| self.satisfied_by(held))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.scope, self.role)
    }
}

impl FromStr for Grant {
    type Err = GrantError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || GrantError::Shape { text: text.to_owned() };
        let (scope, role) = text.split_once('.').ok_or_else(shape)?;
        if role.contains('.') {
            return Err(shape());
        }
        let scope = scope
            .parse::<Scope>()
            .map_err(|name| GrantError::UnknownScope { text: text.to_owned(), name })?;
        let role =
            role.parse::<Role>().map_err(|name| GrantError::UnknownRole { text: text.to_owned(), name })?;
        // Self names the user concerned, so it only makes sense in the User scope, and the User
        // scope has no other role; rejecting the other pairs keeps "Project.Self" from silently
        // matching nobody.
        if (scope == Scope::User) != (role == Role::Self_) {
            return Err(GrantError::SelfOutsideUser { text: text.to_owned() });
        }
        Ok(Grant { scope, role })
    }
}

/// What the caller holds with respect to the object being accessed, e.g. `Project.Member` and
/// `Experiment.Creator`.
///
/// The caller of this crate computes it (from project, organization and experiment membership,
/// and `User.Self` when the caller is the user concerned). Use concrete scopes and the roles
/// `Self`, `Member`, `Maintainer`, `Creator`; a held `Any` only satisfies grants asking for
/// `Scope.Any`.
///
/// Stored as a bit set, so it is `Copy` and cheap to build per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Relations {
    bits: u32,
}

impl Relations {
    /// No relations: the caller is authenticated but holds no role on the object.
    pub const fn new() -> Relations {
        Relations { bits: 0 }
    }

    /// These relations plus `role` in `scope`.
    #[must_use]
    pub const fn with(mut self, scope: Scope, role: Role) -> Relations {
        self.bits |= Self::bit(Grant::new(scope, role));
        self
    }

    /// Adds `grant` to the relations.
    pub fn insert(&mut self, grant: Grant) {
        self.bits |= Self::bit(grant);
    }

    /// Whether exactly `grant` is held (no role ordering applied).
    pub const fn contains(&self, grant: Grant) -> bool {
        self.bits & Self::bit(grant) != 0
    }

    /// Whether nothing is held.
    pub const fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The held grants, ordered by scope then role.
    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        Scope::ALL.iter().flat_map(move |&scope| {
            Role::ALL.iter().map(move |&role| Grant::new(scope, role)).filter(|g| self.contains(*g))
        })
    }

    const fn bit(grant: Grant) -> u32 {
        // 5 scopes x 5 roles = 25 bits; the casts read the enum discriminants.
        1 << (grant.scope as u32 * Role::ALL.len() as u32 + grant.role as u32)
    }
}

impl FromIterator<Grant> for Relations {
    fn from_iter<I: IntoIterator<Item = Grant>>(iter: I) -> Self {
        let mut relations = Relations::new();
        for grant in iter {
            relations.insert(grant);
        }
        relations
    }
}

impl fmt::Display for Relations {
    /// `Project.Member, Experiment.Creator`, or `no role` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no role");
        }
        for (i, grant) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{grant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let g: Grant = "Project.Member".parse().unwrap();
        assert_eq!(g, Grant::new(Scope::Project, Role::Member));
        assert_eq!(g.to_string(), "Project.Member");
        assert_eq!("User.Self".parse::<Grant>().unwrap().to_string(), "User.Self");
        assert_eq!("Any.Any".parse::<Grant>().unwrap(), Grant::ANYONE);
    }

    #[test]
    fn parse_errors() {
        assert!(matches!("ProjectMember".parse::<Grant>(), Err(GrantError::Shape { .. })));
        assert!(matches!("Project.Member.X".parse::<Grant>(), Err(GrantError::Shape { .. })));
        assert!(matches!("Projet.Member".parse::<Grant>(), Err(GrantError::UnknownScope { .. })));
        let err = "Project.Owner".parse::<Grant>().unwrap_err();
        assert!(matches!(err, GrantError::UnknownRole { .. }));
        assert!(err.to_string().contains(r#"unknown role "Owner""#), "{err}");
        assert!(matches!("Project.Self".parse::<Grant>(), Err(GrantError::SelfOutsideUser { .. })));
        assert!(matches!("User.Member".parse::<Grant>(), Err(GrantError::SelfOutsideUser { .. })));
    }

    #[test]
    fn relations_set() {
        let r = Relations::new()
            .with(Scope::Experiment, Role::Creator)
            .with(Scope::Project, Role::Member)
            .with(Scope::Project, Role::Member);
        assert_eq!(r.iter().count(), 2);
        assert_eq!(r.to_string(), "Project.Member, Experiment.Creator");
        assert_eq!(Relations::new().to_string(), "no role");
        let collected: Relations = r.iter().collect();
        assert_eq!(collected, r);
        // Every (scope, role) pair gets its own bit.
        let all: Relations =
            Scope::ALL.iter().flat_map(|&s| Role::ALL.iter().map(move |&r| Grant::new(s, r))).collect();
        assert_eq!(all.iter().count(), Scope::ALL.len() * Role::ALL.len());
    }

    #[test]
    fn matching() {
        let member = Relations::new().with(Scope::Project, Role::Member);
        let creator = Relations::new().with(Scope::Project, Role::Creator);
        let needs_maintainer = Grant::new(Scope::Project, Role::Maintainer);
        assert!(!needs_maintainer.allows(&member));
        assert!(needs_maintainer.allows(&creator));
        // Scope must match.
        let org_creator = Relations::new().with(Scope::Organization, Role::Creator);
        assert!(!needs_maintainer.allows(&org_creator));
        // Scope.Any accepts any held role in that scope, including Member.
        assert!(Grant::new(Scope::Project, Role::Any).allows(&member));
        assert!(!Grant::new(Scope::Project, Role::Any).allows(&org_creator));
        // Any.Member accepts Member or better in any scope.
        assert!(Grant::new(Scope::Any, Role::Member).allows(&org_creator));
        // Any.Any needs nothing held.
        assert!(Grant::ANYONE.allows(&Relations::new()));
        // User.Self only by User.Self.
        let me = Relations::new().with(Scope::User, Role::Self_);
        let user_self = Grant::new(Scope::User, Role::Self_);
        assert!(user_self.allows(&me));
        assert!(!user_self.allows(&creator));
    }
}
