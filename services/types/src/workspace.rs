//! Workspace objects: users, projects, organizations, experiments and their memberships.
//!
//! Field meanings follow Merge's `portal.v1` messages so the edge converts them one to one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who may see an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum AccessMode {
    /// Anyone signed in may read it.
    #[default]
    Public,
    /// Members of the enclosing scope may read it.
    Protected,
    /// Only maintainers and creators may read it.
    Private,
}

/// The lifecycle state of a user, project or organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum UserState {
    /// Not given (only meaningful in updates).
    NotSet,
    /// Waiting for activation by an administrator or organization maintainer.
    #[default]
    Pending,
    /// Frozen: every call is refused.
    Frozen,
    /// Active: calls are governed by the policy.
    Active,
}

/// A member's role in a project or organization, in increasing order of privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum MemberRole {
    /// May use the project's resources.
    #[default]
    Member,
    /// May also manage membership and settings.
    Maintainer,
    /// Created the project; full privileges.
    Creator,
}

/// Where a membership stands in Merge's two-sided approval flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MemberState {
    /// Neither side has confirmed yet.
    #[default]
    Pending,
    /// Both sides agreed.
    Active,
    /// The member asked to join; a maintainer must confirm.
    MemberRequested,
    /// A maintainer invited the member; the member must confirm.
    EntityRequested,
}

/// A membership: role plus approval state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Member {
    /// The member's role.
    pub role: MemberRole,
    /// The approval state.
    pub state: MemberState,
}

impl Member {
    /// An active membership with `role`.
    pub fn active(role: MemberRole) -> Self {
        Member { role, state: MemberState::Active }
    }

    /// Whether the membership grants access now.
    pub fn is_active(&self) -> bool {
        self.state == MemberState::Active
    }
}

/// A portal user account (the identity with its credentials is kept separately).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub name: String,
    pub email: String,
    pub state: UserState,
    pub access_mode: AccessMode,
    /// Unix uid used inside XDCs and experiment nodes; unique across the portal.
    pub uid: u32,
    /// Unix gid of the user's personal group.
    pub gid: u32,
    pub admin: bool,
    pub institution: String,
    pub category: String,
    pub country: String,
    pub usstate: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Projects the user belongs to, by project name.
    pub projects: BTreeMap<String, Member>,
    /// Organizations the user belongs to, by organization name.
    pub organizations: BTreeMap<String, Member>,
    /// Experiments the user maintains, as `experiment.project`. Derived from the experiments
    /// on read, never stored: keeping a copy here made every experiment creation rewrite the
    /// user record, and concurrent creations conflict.
    #[serde(skip)]
    pub experiments: Vec<String>,
}

/// An SSH public key registered by a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `SHA256:<base64>` fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The key in OpenSSH one-line format.
    pub key: String,
}

/// A project: the unit of membership, experiments and resources.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    pub description: String,
    pub access_mode: AccessMode,
    /// Unix gid of the project group.
    pub gid: u32,
    pub members: BTreeMap<String, Member>,
    /// Experiment names in this project. Derived from the experiment keys on read, never stored
    /// (so creating experiments never rewrites, and never conflicts on, the project record).
    #[serde(skip)]
    pub experiments: Vec<String>,
    /// The organization the project belongs to, if any.
    pub organization: Option<String>,
    /// The project's membership in that organization.
    pub org_membership: Option<Member>,
    pub category: String,
    pub subcategory: String,
    pub state: UserState,
    pub created: i64,
    /// True for the personal project every user gets, named after the user.
    pub personal: bool,
}

impl Project {
    /// The active role `username` holds in the project, if any.
    pub fn active_role(&self, username: &str) -> Option<MemberRole> {
        self.members.get(username).filter(|m| m.is_active()).map(|m| m.role)
    }
}

/// An organization: a group of users and projects with delegated user approval.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Organization {
    pub name: String,
    pub description: String,
    pub oid: u32,
    pub members: BTreeMap<String, Member>,
    pub projects: BTreeMap<String, Member>,
    pub state: UserState,
    pub access_mode: AccessMode,
    pub category: String,
    pub subcategory: String,
    pub created: i64,
}

impl Organization {
    /// The active role `username` holds in the organization, if any.
    pub fn active_role(&self, username: &str) -> Option<MemberRole> {
        self.members.get(username).filter(|m| m.is_active()).map(|m| m.role)
    }
}

/// An experiment: a named, versioned network model inside a project.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Experiment {
    pub name: String,
    pub project: String,
    pub description: String,
    pub access_mode: AccessMode,
    pub creator: String,
    pub maintainers: Vec<String>,
    pub created: i64,
}

/// Lists offered at registration (institutions, user categories, countries).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserConfigurations {
    pub institutions: Vec<String>,
    pub categories: Vec<String>,
}

/// An entity type with its subtypes (project and organization categories).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EntityType {
    pub etype: String,
    pub subtypes: Vec<String>,
}
