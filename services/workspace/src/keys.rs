//! Where workspace objects live in the state store. Values are JSON.

/// Prefix of user records.
pub const USERS: &str = "/trellis/ws/users/";
/// Prefix of project records.
pub const PROJECTS: &str = "/trellis/ws/projects/";
/// Prefix of organization records.
pub const ORGANIZATIONS: &str = "/trellis/ws/organizations/";
/// Prefix of experiment records (`<project>/<experiment>`).
pub const EXPERIMENTS: &str = "/trellis/ws/experiments/";
/// Prefix of SSH public keys (`<user>/<fingerprint>`).
pub const PUBKEYS: &str = "/trellis/ws/pubkeys/";
/// The next free uid/gid.
pub const NEXT_ID: &str = "/trellis/ws/ids/next";
/// Registration lists.
pub const USER_CONFIGURATIONS: &str = "/trellis/ws/config/user";
/// Entity type lists.
pub const ENTITY_TYPES: &str = "/trellis/ws/config/entity-types";

/// Key of a user.
pub fn user(name: &str) -> String {
    format!("{USERS}{name}")
}

/// Key of a project.
pub fn project(name: &str) -> String {
    format!("{PROJECTS}{name}")
}

/// Key of an organization.
pub fn organization(name: &str) -> String {
    format!("{ORGANIZATIONS}{name}")
}

/// Key of an experiment.
pub fn experiment(project: &str, name: &str) -> String {
    format!("{EXPERIMENTS}{project}/{name}")
}

/// Prefix of one project's experiments.
pub fn project_experiments(project: &str) -> String {
    format!("{EXPERIMENTS}{project}/")
}

/// Prefix of one user's public keys.
pub fn user_pubkeys(user: &str) -> String {
    format!("{PUBKEYS}{user}/")
}

/// Key of one public key.
pub fn pubkey(user: &str, fingerprint: &str) -> String {
    format!("{PUBKEYS}{user}/{fingerprint}")
}
