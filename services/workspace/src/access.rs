//! The facts the policy needs: which roles a caller holds with respect to an object.
//!
//! Pure functions over objects already read, so list filtering costs no extra store reads.

use trellis_policy::{Relations, Role, Scope};
use trellis_types::{Experiment, MemberRole, MemberState, Organization, Project, User, UserState};

/// The caller of an operation, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub username: String,
    pub admin: bool,
}

fn role(r: MemberRole) -> Role {
    match r {
        MemberRole::Member => Role::Member,
        MemberRole::Maintainer => Role::Maintainer,
        MemberRole::Creator => Role::Creator,
    }
}

/// Relations to a project: the caller's project role, and their role in the project's
/// organization when the project is an active member of it.
pub fn project_relations(subject: &Subject, project: &Project, org: Option<&Organization>) -> Relations {
    let mut relations = Relations::new();
    if let Some(r) = project.active_role(&subject.username) {
        relations = relations.with(Scope::Project, role(r));
    }
    // Only an approved organization that the project has actually joined (both sides agreed)
    // extends its maintainers' reach to the project.
    let joined = project.org_membership.is_some_and(|m| m.is_active());
    if let Some(org) = org.filter(|o| {
        joined && o.state == UserState::Active && project.organization.as_deref() == Some(o.name.as_str())
    }) && let Some(r) = org.active_role(&subject.username)
    {
        relations = relations.with(Scope::Organization, role(r));
    }
    relations
}

/// Relations to an experiment: project relations plus experiment creator/maintainer.
pub fn experiment_relations(
    subject: &Subject,
    experiment: &Experiment,
    project: &Project,
    org: Option<&Organization>,
) -> Relations {
    let mut relations = project_relations(subject, project, org);
    if experiment.creator == subject.username {
        relations = relations.with(Scope::Experiment, Role::Creator);
    }
    if experiment.maintainers.contains(&subject.username) {
        relations = relations.with(Scope::Experiment, Role::Maintainer);
    }
    relations
}

/// Relations to an organization: the caller's role in it.
///
/// Unlike the reach into projects and users, this holds for pending organizations too, so their
/// creators can manage them while they wait for approval.
pub fn organization_relations(subject: &Subject, org: &Organization) -> Relations {
    match org.active_role(&subject.username) {
        Some(r) => Relations::new().with(Scope::Organization, role(r)),
        None => Relations::new(),
    }
}

/// Relations to another user: `User.Self` for oneself; the caller's role in any organization the
/// user belongs to or has asked to join (organization maintainers approve their users); the
/// caller's role in any project both share.
///
/// An organization only counts when the user agreed to it (an active membership, or one the
/// user requested): an invitation the user has not accepted gives the organization nothing.
/// `approved` says whether an organization is approved; unapproved ones count for nothing.
pub fn user_relations(
    subject: &Subject,
    caller: Option<&User>,
    target: &User,
    approved: &dyn Fn(&str) -> bool,
) -> Relations {
    let mut relations = Relations::new();
    if subject.username == target.username {
        relations = relations.with(Scope::User, Role::Self_);
    }
    if let Some(caller) = caller {
        let consented = |m: &&trellis_types::Member| {
            matches!(m.state, MemberState::Active | MemberState::MemberRequested)
        };
        for (org, _) in target.organizations.iter().filter(|(o, m)| consented(m) && approved(o)) {
            if let Some(m) = caller.organizations.get(org).filter(|m| m.is_active()) {
                relations = relations.with(Scope::Organization, role(m.role));
            }
        }
        for (project, theirs) in target.projects.iter() {
            if theirs.is_active()
                && let Some(m) = caller.projects.get(project).filter(|m| m.is_active())
            {
                relations = relations.with(Scope::Project, role(m.role));
            }
        }
    }
    relations
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_policy::Grant;
    use trellis_types::{Member, MemberState};

    fn subject(name: &str) -> Subject {
        Subject { username: name.to_owned(), admin: false }
    }

    #[test]
    fn project_roles_and_org_maintainers() {
        let mut project = Project { name: "p".into(), organization: Some("o".into()), ..Default::default() };
        project.members.insert("alice".into(), Member::active(MemberRole::Maintainer));
        project
            .members
            .insert("bob".into(), Member { role: MemberRole::Member, state: MemberState::Pending });
        let mut org = Organization { name: "o".into(), ..Default::default() };
        org.members.insert("carol".into(), Member::active(MemberRole::Maintainer));

        let alice = project_relations(&subject("alice"), &project, Some(&org));
        assert!(alice.contains(Grant::new(Scope::Project, Role::Maintainer)));
        // A pending membership grants nothing.
        assert!(project_relations(&subject("bob"), &project, Some(&org)).is_empty());
        // The org's maintainer has access only once the project has joined the org.
        assert!(project_relations(&subject("carol"), &project, Some(&org)).is_empty());
        project.org_membership = Some(Member::active(MemberRole::Member));
        // ... and only once the organization is approved.
        assert!(project_relations(&subject("carol"), &project, Some(&org)).is_empty());
        org.state = trellis_types::UserState::Active;
        let carol = project_relations(&subject("carol"), &project, Some(&org));
        assert!(carol.contains(Grant::new(Scope::Organization, Role::Maintainer)));
    }

    #[test]
    fn experiment_creator_and_maintainers() {
        let project = Project { name: "p".into(), ..Default::default() };
        let exp = Experiment {
            name: "e".into(),
            project: "p".into(),
            creator: "alice".into(),
            maintainers: vec!["alice".into(), "dave".into()],
            ..Default::default()
        };
        let alice = experiment_relations(&subject("alice"), &exp, &project, None);
        assert!(alice.contains(Grant::new(Scope::Experiment, Role::Creator)));
        let dave = experiment_relations(&subject("dave"), &exp, &project, None);
        assert!(dave.contains(Grant::new(Scope::Experiment, Role::Maintainer)));
        assert!(!dave.contains(Grant::new(Scope::Experiment, Role::Creator)));
    }

    #[test]
    fn users_see_self_and_shared_scopes() {
        let mut alice = User { username: "alice".into(), ..Default::default() };
        let mut bob = User { username: "bob".into(), ..Default::default() };
        assert!(
            user_relations(&subject("alice"), Some(&alice), &alice, &|_| true)
                .contains(Grant::new(Scope::User, Role::Self_))
        );
        assert!(user_relations(&subject("alice"), Some(&alice), &bob, &|_| true).is_empty());
        alice.projects.insert("p".into(), Member::active(MemberRole::Creator));
        bob.projects.insert("p".into(), Member::active(MemberRole::Member));
        let rel = user_relations(&subject("alice"), Some(&alice), &bob, &|_| true);
        assert!(rel.contains(Grant::new(Scope::Project, Role::Creator)));
    }

    #[test]
    fn organizations_reach_only_users_who_agreed() {
        let mut carol = User { username: "carol".into(), ..Default::default() };
        carol.organizations.insert("o".into(), Member::active(MemberRole::Maintainer));
        let mut dave = User { username: "dave".into(), ..Default::default() };
        let org_maintainer = Grant::new(Scope::Organization, Role::Maintainer);
        // Invited by the organization but not accepted: no reach.
        dave.organizations
            .insert("o".into(), Member { role: MemberRole::Member, state: MemberState::EntityRequested });
        assert!(!user_relations(&subject("carol"), Some(&carol), &dave, &|_| true).contains(org_maintainer));
        // Asked to join: the maintainers may now admit them.
        dave.organizations
            .insert("o".into(), Member { role: MemberRole::Member, state: MemberState::MemberRequested });
        assert!(user_relations(&subject("carol"), Some(&carol), &dave, &|_| true).contains(org_maintainer));
        // ... but not while the organization itself is unapproved.
        assert!(!user_relations(&subject("carol"), Some(&carol), &dave, &|_| false).contains(org_maintainer));
    }
}
