//! trellis-policy: the declarative access policy that gates every Trellis call.
//!
//! Administrators write one YAML file in MergeTB's shape: entity → access mode → operation → list
//! of `Scope.Role` grants, any one of which suffices (see `policy/policy.yml`, the shipped
//! default, for the language and its comments). This crate parses and validates that file,
//! answers [`AccessRequest`]s with a [`Decision`] that carries a human reason, and keeps the
//! policy in force in a [`PolicyHandle`] that reloads the file on change or `SIGHUP`.
//!
//! ```no_run
//! use trellis_policy::{AccessMode, AccessRequest, Entity, Operation, Policy, Relations, Role, Scope};
//!
//! let policy = Policy::builtin();
//! let held = Relations::new().with(Scope::Project, Role::Member);
//! let decision = policy.decide(&AccessRequest {
//!     entity: Entity::Experiment,
//!     mode: AccessMode::Private,
//!     operation: Operation::Read,
//!     admin: false,
//!     relations: &held,
//! });
//! assert!(!decision.allowed);
//! println!("{}", decision.reason());
//! ```
//!
//! What this crate is not: it does not know who the caller is or what they hold. The API server
//! authenticates the caller and computes their [`Relations`] to the object (project and
//! organization membership, experiment maintainership, `User.Self`); this crate only applies the
//! rules. It has no dependency on tonic, axum or the store.
//!
//! # Semantics
//! - Administrators are allowed everything.
//! - `Any.Any` matches every authenticated caller.
//! - Roles are ordered `Creator ≥ Maintainer ≥ Member`: a grant of `Project.Member` is satisfied
//!   by `Project.Maintainer` or `Project.Creator`. `Scope.Any` matches any role held in that
//!   scope. `User.Self` matches a caller holding `User.Self` (the caller is the user concerned).
//! - A missing or empty grant list means administrators only. An entity missing from the file is
//!   administrators-only too, with a warning ([`Policy::warnings`]).
//! - Unknown keys, entities, modes, operations, scopes and roles are errors with a line and
//!   column ([`PolicyError::position`]): a typo in a policy is a security bug.
//!
//! # Layout
//! - `names`: the vocabularies ([`Entity`], [`AccessMode`], [`Operation`], [`Scope`], [`Role`]).
//! - `grant`: [`Grant`] (`Scope.Role`) and the caller's [`Relations`].
//! - `parse`: YAML → rule table, with positions for every error.
//! - `policy`: [`Policy`], [`AccessRequest`], [`Decision`].
//! - `watch`: [`PolicyHandle`], the hot-reloaded policy in force.
//! - `error`: [`PolicyError`].

mod error;
mod grant;
mod names;
mod parse;
mod policy;
mod watch;

pub use error::{PolicyError, Position};
pub use grant::{Grant, GrantError, Relations};
pub use names::{AccessMode, Entity, Operation, Role, Scope, UnknownName};
pub use policy::{AccessRequest, BUILTIN_POLICY_YAML, Decision, Policy};
pub use watch::{PolicyHandle, ReloadOutcome, ReloadStatus, WatchOptions};
