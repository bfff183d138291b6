//! Conversions between domain types and Merge's wire messages. Only this crate knows both.

pub mod materialize;
pub mod realize;

use std::collections::HashMap;

use trellis_api::portal::v1 as pb;
use trellis_types::{
    AccessMode, Error, Experiment, Member, MemberRole, MemberState, Organization, Project, PublicKey, User,
    UserState,
};

pub(crate) fn timestamp(unix: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: unix, nanos: 0 })
}

/// Wire access mode → domain. Unknown numbers are refused rather than guessed.
pub fn access_mode_from(field: &str, value: i32) -> Result<AccessMode, Error> {
    match pb::AccessMode::try_from(value) {
        Ok(pb::AccessMode::Public) => Ok(AccessMode::Public),
        Ok(pb::AccessMode::Protected) => Ok(AccessMode::Protected),
        Ok(pb::AccessMode::Private) => Ok(AccessMode::Private),
        Err(_) => {
            Err(Error::invalid(field, format!("{value} is not an access mode (Public, Protected, Private)")))
        }
    }
}

/// Domain access mode → wire.
pub fn access_mode_to(mode: AccessMode) -> i32 {
    (match mode {
        AccessMode::Public => pb::AccessMode::Public,
        AccessMode::Protected => pb::AccessMode::Protected,
        AccessMode::Private => pb::AccessMode::Private,
    }) as i32
}

/// Wire user state → domain.
pub fn user_state_from(field: &str, value: i32) -> Result<UserState, Error> {
    match pb::UserState::try_from(value) {
        Ok(pb::UserState::NotSet) => Ok(UserState::NotSet),
        Ok(pb::UserState::Pending) => Ok(UserState::Pending),
        Ok(pb::UserState::Frozen) => Ok(UserState::Frozen),
        Ok(pb::UserState::Active) => Ok(UserState::Active),
        Err(_) => Err(Error::invalid(field, format!("{value} is not a state (Pending, Frozen, Active)"))),
    }
}

/// Domain user state → wire.
pub fn user_state_to(state: UserState) -> i32 {
    (match state {
        UserState::NotSet => pb::UserState::NotSet,
        UserState::Pending => pb::UserState::Pending,
        UserState::Frozen => pb::UserState::Frozen,
        UserState::Active => pb::UserState::Active,
    }) as i32
}

/// Wire member → domain.
pub fn member_from(field: &str, m: &pb::Member) -> Result<Member, Error> {
    let role = match pb::member::Role::try_from(m.role) {
        Ok(pb::member::Role::Member) => MemberRole::Member,
        Ok(pb::member::Role::Maintainer) => MemberRole::Maintainer,
        Ok(pb::member::Role::Creator) => MemberRole::Creator,
        Err(_) => {
            return Err(Error::invalid(
                field,
                format!("{} is not a role (Member, Maintainer, Creator)", m.role),
            ));
        }
    };
    let state = match pb::member::State::try_from(m.state) {
        Ok(pb::member::State::Pending) => MemberState::Pending,
        Ok(pb::member::State::Active) => MemberState::Active,
        Ok(pb::member::State::MemberRequested) => MemberState::MemberRequested,
        Ok(pb::member::State::EntityRequested) => MemberState::EntityRequested,
        Err(_) => return Err(Error::invalid(field, format!("{} is not a membership state", m.state))),
    };
    Ok(Member { role, state })
}

/// Domain member → wire.
pub fn member_to(m: &Member) -> pb::Member {
    let role = match m.role {
        MemberRole::Member => pb::member::Role::Member,
        MemberRole::Maintainer => pb::member::Role::Maintainer,
        MemberRole::Creator => pb::member::Role::Creator,
    };
    let state = match m.state {
        MemberState::Pending => pb::member::State::Pending,
        MemberState::Active => pb::member::State::Active,
        MemberState::MemberRequested => pb::member::State::MemberRequested,
        MemberState::EntityRequested => pb::member::State::EntityRequested,
    };
    pb::Member { role: role as i32, state: state as i32 }
}

fn members_to<'a>(
    members: impl IntoIterator<Item = (&'a String, &'a Member)>,
) -> HashMap<String, pb::Member> {
    members.into_iter().map(|(k, v)| (k.clone(), member_to(v))).collect()
}

/// Domain user → wire.
pub fn user_to(u: &User) -> pb::User {
    pb::User {
        username: u.username.clone(),
        name: u.name.clone(),
        state: user_state_to(u.state),
        access_mode: access_mode_to(u.access_mode),
        uid: u.uid,
        gid: u.gid,
        projects: members_to(&u.projects),
        experiments: u.experiments.clone(),
        organizations: members_to(&u.organizations),
        admin: u.admin,
        institution: u.institution.clone(),
        category: u.category.clone(),
        email: u.email.clone(),
        country: u.country.clone(),
        usstate: u.usstate.clone(),
        created: timestamp(u.created),
        ..Default::default()
    }
}

/// Domain project → wire.
pub fn project_to(p: &Project) -> pb::Project {
    pb::Project {
        name: p.name.clone(),
        description: p.description.clone(),
        members: members_to(&p.members),
        experiments: p.experiments.clone(),
        access_mode: access_mode_to(p.access_mode),
        gid: p.gid,
        organization: p.organization.clone().unwrap_or_default(),
        org_membership: p.org_membership.as_ref().map(member_to),
        category: p.category.clone(),
        subcategory: p.subcategory.clone(),
        created: timestamp(p.created),
        state: user_state_to(p.state),
        ..Default::default()
    }
}

/// Domain organization → wire.
pub fn organization_to(o: &Organization) -> pb::Organization {
    pb::Organization {
        name: o.name.clone(),
        description: o.description.clone(),
        oid: o.oid,
        members: members_to(&o.members),
        projects: members_to(&o.projects),
        state: user_state_to(o.state),
        access_mode: access_mode_to(o.access_mode),
        category: o.category.clone(),
        subcategory: o.subcategory.clone(),
        created: timestamp(o.created),
        ..Default::default()
    }
}

/// Domain experiment → wire. `repository` is where the experiment's git repository will be
/// served (the models issue serves it).
pub fn experiment_to(e: &Experiment) -> pb::Experiment {
    pb::Experiment {
        name: e.name.clone(),
        project: e.project.clone(),
        description: e.description.clone(),
        access_mode: access_mode_to(e.access_mode),
        repository: format!("/git/{}/{}", e.project, e.name),
        creator: e.creator.clone(),
        maintainers: e.maintainers.clone(),
        created: timestamp(e.created),
        ..Default::default()
    }
}

/// Domain public key → wire.
pub fn public_key_to(k: &PublicKey) -> pb::PublicKey {
    pb::PublicKey { fingerprint: k.fingerprint.clone(), key: k.key.clone() }
}

/// An optional string field: Merge sends `""` for "not given".
pub fn given(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
