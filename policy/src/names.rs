//! The closed vocabularies of the policy language: entities, access modes, operations, scopes and
//! roles.
//!
//! Each is a plain `Copy` enum with the exact spelling used in `policy.yml` (`as_str`, `Display`,
//! `FromStr`). Parsing is case-sensitive on purpose: the policy file is the only place these names
//! are written, and accepting `project.member` beside `Project.Member` would only hide typos.

use std::fmt;
use std::str::FromStr;

/// A name that is not part of one of the policy vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?} (expected one of {expected})")]
pub struct UnknownName {
    /// Which vocabulary was searched ("entity", "role", ...).
    pub kind: &'static str,
    /// The name that was given.
    pub name: String,
    /// The accepted names, comma separated, for the message.
    pub expected: String,
}

/// Declares a vocabulary enum with its policy spelling, `ALL`, `Display` and `FromStr`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in `policy.yml`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownName {
                        kind: $kind,
                        name: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

vocabulary! {
    /// A kind of object the policy governs; the top-level keys of `policy.yml`.
    Entity, "entity" {
        /// A user account (workspace user, not the login identity).
        User => "user",
        /// A project: the unit of membership that owns experiments and XDCs.
        Project => "project",
        /// An organization: a group of projects and users with its own maintainers.
        Organization => "organization",
        /// An experiment (its model revisions and metadata).
        Experiment => "experiment",
        /// A realization: resources reserved for an experiment revision.
        Realization => "realization",
        /// A materialization: a realization brought up on facilities.
        Materialization => "materialization",
        /// An experiment development container.
        Xdc => "xdc",
        /// A commissioned facility.
        Facility => "facility",
        /// A resource pool.
        Pool => "pool",
        /// A login identity (credentials), separate from the user account.
        Identity => "identity",
    }
}

vocabulary! {
    /// The access mode of the object being accessed (`Public`, `Protected`, `Private` in the API).
    AccessMode, "access mode" {
        /// Visible to everyone.
        Public => "public",
        /// Visible to members.
        Protected => "protected",
        /// Visible to maintainers and creators.
        Private => "private",
    }
}

vocabulary! {
    /// What the caller wants to do with the object.
    Operation, "operation" {
        /// Create the object.
        Create => "create",
        /// Read (get or list) the object.
        Read => "read",
        /// Change the object, including its memberships.
        Update => "update",
        /// Delete the object.
        Delete => "delete",
    }
}

vocabulary! {
    /// The left half of a grant: what a role is held on.
    Scope, "scope" {
        /// Any scope; `Any.Any` matches every authenticated caller.
        Any => "Any",
        /// The user concerned by the request; only `User.Self` is meaningful.
        User => "User",
        /// The project the object belongs to.
        Project => "Project",
        /// The organization the object's project (or user) belongs to.
        Organization => "Organization",
        /// The experiment the object belongs to.
        Experiment => "Experiment",
    }
}

vocabulary! {
    /// The right half of a grant: the role held in a scope.
    ///
    /// `Member`, `Maintainer` and `Creator` are ordered: a higher role satisfies a grant asking for
    /// a lower one (see [`Role::rank`]). `Self_` and `Any` stand outside that order.
    Role, "role" {
        /// Any role held in the scope (in a grant); never held by a caller.
        Any => "Any",
        /// Written `Self` in YAML: the caller is the user concerned. Only meaningful as `User.Self`.
        Self_ => "Self",
        /// Has access but cannot manage membership.
        Member => "Member",
        /// Usually has the same privileges as the creator.
        Maintainer => "Maintainer",
        /// Has full privileges.
        Creator => "Creator",
    }
}

impl Operation {
    /// The gerund used in decision reasons ("reading a private experiment ...").
    pub const fn gerund(self) -> &'static str {
        match self {
            Operation::Create => "creating",
            Operation::Read => "reading",
            Operation::Update => "updating",
            Operation::Delete => "deleting",
        }
    }
}

impl Role {
    /// The position of the role in the Member < Maintainer < Creator order, or `None` for
    /// `Any` and `Self`, which are matched by identity instead.
    pub const fn rank(self) -> Option<u8> {
        match self {
            Role::Member => Some(1),
            Role::Maintainer => Some(2),
            Role::Creator => Some(3),
            Role::Any | Role::Self_ => None,
        }
    }

    /// Whether holding `self` satisfies a grant that asks for `required`.
    pub fn satisfies(self, required: Role) -> bool {
        match required {
            Role::Any => true,
            Role::Self_ => self == Role::Self_,
            _ => match (self.rank(), required.rank()) {
                (Some(held), Some(needed)) => held >= needed,
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Entity::ALL {
            assert_eq!(e.as_str().parse::<Entity>().unwrap(), *e);
        }
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>().unwrap(), *r);
        }
        assert_eq!("Self".parse::<Role>().unwrap(), Role::Self_);
    }

    #[test]
    fn unknown_names_list_the_alternatives() {
        let err = "Owner".parse::<Role>().unwrap_err();
        assert_eq!(err.kind, "role");
        assert!(err.to_string().contains("Member, Maintainer, Creator"), "{err}");
        assert!("member".parse::<Role>().is_err(), "case matters");
    }

    #[test]
    fn role_order() {
        assert!(Role::Creator.satisfies(Role::Member));
        assert!(Role::Creator.satisfies(Role::Maintainer));
        assert!(Role::Maintainer.satisfies(Role::Member));
        assert!(Role::Member.satisfies(Role::Member));
        assert!(!Role::Member.satisfies(Role::Maintainer));
        assert!(!Role::Maintainer.satisfies(Role::Creator));
        assert!(!Role::Creator.satisfies(Role::Self_));
        assert!(Role::Self_.satisfies(Role::Self_));
        assert!(!Role::Self_.satisfies(Role::Member));
        assert!(Role::Member.satisfies(Role::Any));
        assert!(Role::Self_.satisfies(Role::Any));
    }
}
