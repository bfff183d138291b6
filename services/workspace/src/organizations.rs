//! Organizations: groups of users and projects whose maintainers approve their own members.
//!
//! Membership follows Merge's two-sided flow: whoever asks puts the membership in
//! `MemberRequested` (asked by the member side) or `EntityRequested` (asked by the organization),
//! and the other side confirms it to `Active`. Someone who is both sides at once joins directly.

use trellis_types::{
    AccessMode, Error, Member, MemberRole, MemberState, Organization, Project, User, UserState, validate_name,
};

use crate::keys;
use crate::tx::{Tx, Versioned, load, load_all, load_required, retrying};
use crate::{Workspace, now_unix};

/// An organization to create.
#[derive(Debug, Clone, Default)]
pub struct NewOrganization {
    pub name: String,
    pub description: String,
    pub access_mode: AccessMode,
    pub category: String,
    pub subcategory: String,
}

/// Changes to an organization; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct OrganizationUpdate {
    pub description: Option<String>,
    pub access_mode: Option<AccessMode>,
    pub state: Option<UserState>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
}

/// What joins an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipKind {
    /// A user, by username.
    User,
    /// A project, by project name.
    Project,
}

impl Workspace {
    /// Creates an organization with `creator` as its Creator. Organizations created by an
    /// administrator are active at once; others wait for an administrator to activate them.
    pub async fn create_organization(
        &self,
        creator: &str,
        creator_is_admin: bool,
        new: NewOrganization,
    ) -> Result<Organization, Error> {
        validate_name("organization", &new.name)?;
        let (store, new) = (self.store.as_ref(), &new);
        retrying("create organization", || async move {
            if load::<Organization>(store, &keys::organization(&new.name)).await?.is_some() {
                return Err(Error::already_exists("organization", &new.name));
            }
            let mut user = load_required::<User>(store, &keys::user(creator), "user", creator).await?;
            let next: Option<Versioned<u32>> = load(store, keys::NEXT_ID).await?;
            let oid = next.as_ref().map_or(self.config.first_uid, |n| n.value);
            let org = Organization {
                name: new.name.clone(),
                description: new.description.clone(),
                oid,
                members: [(creator.to_owned(), Member::active(MemberRole::Creator))].into(),
                state: if creator_is_admin { UserState::Active } else { UserState::Pending },
                access_mode: new.access_mode,
                category: new.category.clone(),
                subcategory: new.subcategory.clone(),
                created: now_unix(),
                ..Default::default()
            };
            user.value.organizations.insert(new.name.clone(), Member::active(MemberRole::Creator));
            let mut tx = Tx::new();
            tx.create(&keys::organization(&new.name), &org)?;
            tx.update(&keys::user(creator), &user)?;
            tx.guard(keys::NEXT_ID, next.as_ref().map_or(0, |n| n.revision));
            tx.put(keys::NEXT_ID, &(oid + 1))?;
            Ok(tx.commit(store).await?.then(|| org.clone()))
        })
        .await
    }

    /// Reads an organization.
    pub async fn get_organization(&self, name: &str) -> Result<Organization, Error> {
        Ok(load_required::<Organization>(
            self.store.as_ref(),
            &keys::organization(name),
            "organization",
            name,
        )
        .await?
        .value)
    }

    /// Reads an organization if it exists.
    pub async fn find_organization(&self, name: &str) -> Result<Option<Organization>, Error> {
        Ok(load::<Organization>(self.store.as_ref(), &keys::organization(name)).await?.map(|v| v.value))
    }

    /// Reads every organization.
    pub async fn list_organizations(&self) -> Result<Vec<Organization>, Error> {
        Ok(load_all::<Organization>(self.store.as_ref(), keys::ORGANIZATIONS)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Applies `update` to an organization.
    pub async fn update_organization(
        &self,
        name: &str,
        update: OrganizationUpdate,
    ) -> Result<Organization, Error> {
        if update.state == Some(UserState::NotSet) {
            return Err(Error::invalid("state", "NotSet is not a state an organization can be put in"));
        }
        let (store, update) = (self.store.as_ref(), &update);
        retrying("update organization", || async move {
            let mut org =
                load_required::<Organization>(store, &keys::organization(name), "organization", name).await?;
            let o = &mut org.value;
            if let Some(d) = &update.description {
                o.description.clone_from(d);
            }
            if let Some(m) = update.access_mode {
                o.access_mode = m;
            }
            if let Some(s) = update.state {
                o.state = s;
            }
            if let Some(c) = &update.category {
                o.category.clone_from(c);
            }
            if let Some(c) = &update.subcategory {
                o.subcategory.clone_from(c);
            }
            let mut tx = Tx::new();
            tx.update(&keys::organization(name), &org)?;
            Ok(tx.commit(store).await?.then(|| org.value.clone()))
        })
        .await
    }

    /// Deletes an organization, detaching its members and projects.
    pub async fn delete_organization(&self, name: &str) -> Result<(), Error> {
        let store = self.store.as_ref();
        retrying("delete organization", || async move {
            let org =
                load_required::<Organization>(store, &keys::organization(name), "organization", name).await?;
            let mut tx = Tx::new();
            tx.guard(&keys::organization(name), org.revision);
            tx.delete(&keys::organization(name));
            for member in org.value.members.keys() {
                if let Some(mut user) = load::<User>(store, &keys::user(member)).await? {
                    user.value.organizations.remove(name);
                    tx.update(&keys::user(member), &user)?;
                }
            }
            for project in org.value.projects.keys() {
                if let Some(mut p) = load::<Project>(store, &keys::project(project)).await? {
                    p.value.organization = None;
                    p.value.org_membership = None;
                    tx.update(&keys::project(project), &p)?;
                }
            }
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }

    /// Asks for `id` (a user or project) to join `org` on behalf of `caller`; returns the new
    /// membership.
    pub async fn request_organization_membership(
        &self,
        org: &str,
        kind: MembershipKind,
        id: &str,
        role: MemberRole,
        caller: &str,
    ) -> Result<Member, Error> {
        if role == MemberRole::Creator {
            return Err(Error::invalid("member.role", "an organization has exactly one Creator"));
        }
        let store = self.store.as_ref();
        retrying("request organization membership", || async move {
            let mut o = load_required::<Organization>(store, &keys::organization(org), "organization", org).await?;
            let existing = match kind {
                MembershipKind::User => o.value.members.get(id),
                MembershipKind::Project => o.value.projects.get(id),
            };
            if existing.is_some() {
                return Err(Error::already_exists("membership", format!("{id} in organization {org}")));
            }
            let org_side = o.value.active_role(caller).is_some_and(|r| r >= MemberRole::Maintainer);
            let mut tx = Tx::new();
            let member_side = match kind {
                MembershipKind::User => caller == id,
                MembershipKind::Project => {
                    let p = load_required::<Project>(store, &keys::project(id), "project", id).await?;
                    p.value.active_role(caller).is_some_and(|r| r >= MemberRole::Maintainer)
                }
            };
            let state = match (member_side, org_side) {
                (true, true) => MemberState::Active,
                (true, false) => MemberState::MemberRequested,
                (false, true) => MemberState::EntityRequested,
                (false, false) => {
                    return Err(Error::PermissionDenied(format!(
                        "only {id}'s own side or a maintainer of organization {org} may ask for this membership"
                    )));
                }
            };
            let member = Member { role, state };
            self.stage_org_membership(&mut tx, &mut o, kind, id, Some(member)).await?;
            tx.update(&keys::organization(org), &o)?;
            Ok(tx.commit(store).await?.then_some(member))
        })
        .await
    }

    /// Confirms a requested membership from the side that did not ask.
    pub async fn confirm_organization_membership(
        &self,
        org: &str,
        kind: MembershipKind,
        id: &str,
        caller: &str,
        caller_is_admin: bool,
    ) -> Result<Member, Error> {
        let store = self.store.as_ref();
        retrying("confirm organization membership", || async move {
            let mut o =
                load_required::<Organization>(store, &keys::organization(org), "organization", org).await?;
            let existing = match kind {
                MembershipKind::User => o.value.members.get(id).copied(),
                MembershipKind::Project => o.value.projects.get(id).copied(),
            }
            .ok_or_else(|| Error::not_found("membership request", format!("{id} in organization {org}")))?;
            let org_side =
                caller_is_admin || o.value.active_role(caller).is_some_and(|r| r >= MemberRole::Maintainer);
            let member_side = match kind {
                MembershipKind::User => caller == id,
                MembershipKind::Project => {
                    load::<Project>(store, &keys::project(id)).await?.is_some_and(|p| {
                        p.value.active_role(caller).is_some_and(|r| r >= MemberRole::Maintainer)
                    })
                }
            };
            let allowed = match existing.state {
                MemberState::Active => return Ok(Some(existing)),
                MemberState::MemberRequested => org_side,
                MemberState::EntityRequested => member_side,
                MemberState::Pending => org_side || member_side,
            };
            if !allowed {
                return Err(Error::PermissionDenied(format!(
                    "the membership of {id} in {org} waits for the other side's confirmation"
                )));
            }
            let member = Member { role: existing.role, state: MemberState::Active };
            let mut tx = Tx::new();
            self.stage_org_membership(&mut tx, &mut o, kind, id, Some(member)).await?;
            tx.update(&keys::organization(org), &o)?;
            Ok(tx.commit(store).await?.then_some(member))
        })
        .await
    }

    /// Sets (or with `None` removes) a membership on the organization's side; the policy has
    /// already allowed `caller` to update the organization. Returns what was stored.
    ///
    /// The organization side alone cannot make someone a member: unless the member side agrees
    /// (the user themselves, a maintainer of the project, or an administrator), a new
    /// membership is only an invitation (`EntityRequested`) until the member confirms it. A
    /// membership the member had asked for becomes active, and an active one keeps its state
    /// while its role changes.
    pub async fn set_organization_membership(
        &self,
        org: &str,
        kind: MembershipKind,
        id: &str,
        member: Option<Member>,
        caller: &str,
        caller_is_admin: bool,
    ) -> Result<Option<Member>, Error> {
        let store = self.store.as_ref();
        retrying("set organization membership", || async move {
            let mut o =
                load_required::<Organization>(store, &keys::organization(org), "organization", org).await?;
            let existing = match kind {
                MembershipKind::User => o.value.members.get(id).copied(),
                MembershipKind::Project => o.value.projects.get(id).copied(),
            };
            if existing.is_some_and(|m| m.role == MemberRole::Creator) {
                return Err(Error::FailedPrecondition(format!(
                    "{id} created organization {org}; that role stays"
                )));
            }
            if member.is_some_and(|m| m.role == MemberRole::Creator) {
                return Err(Error::invalid("member.role", "an organization has exactly one Creator"));
            }
            let stored = match member {
                None => None,
                Some(wanted) => {
                    let member_side = caller_is_admin
                        || match kind {
                            MembershipKind::User => caller == id,
                            MembershipKind::Project => {
                                load::<Project>(store, &keys::project(id)).await?.is_some_and(|p| {
                                    p.value.active_role(caller).is_some_and(|r| r >= MemberRole::Maintainer)
                                })
                            }
                        };
                    let state = if member_side {
                        wanted.state
                    } else {
                        match existing.map(|m| m.state) {
                            Some(MemberState::Active | MemberState::MemberRequested) => MemberState::Active,
                            _ => MemberState::EntityRequested,
                        }
                    };
                    Some(Member { role: wanted.role, state })
                }
            };
            let mut tx = Tx::new();
            self.stage_org_membership(&mut tx, &mut o, kind, id, stored).await?;
            tx.update(&keys::organization(org), &o)?;
            Ok(tx.commit(store).await?.then_some(stored))
        })
        .await
    }

    /// Records a membership change in the organization and in the member's own record.
    async fn stage_org_membership(
        &self,
        tx: &mut Tx,
        org: &mut Versioned<Organization>,
        kind: MembershipKind,
        id: &str,
        member: Option<Member>,
    ) -> Result<(), Error> {
        let store = self.store.as_ref();
        let name = org.value.name.clone();
        match kind {
            MembershipKind::User => {
                let mut user = load_required::<User>(store, &keys::user(id), "user", id).await?;
                match member {
                    Some(m) => {
                        org.value.members.insert(id.to_owned(), m);
                        user.value.organizations.insert(name, m);
                    }
                    None => {
                        org.value.members.remove(id);
                        user.value.organizations.remove(&name);
                    }
                }
                tx.update(&keys::user(id), &user)?;
            }
            MembershipKind::Project => {
                let mut project = load_required::<Project>(store, &keys::project(id), "project", id).await?;
                if member.is_some()
                    && let Some(other) = project.value.organization.as_deref().filter(|o| *o != name)
                {
                    return Err(Error::FailedPrecondition(format!(
                        "project {id} already belongs to organization {other}"
                    )));
                }
                match member {
                    Some(m) => {
                        org.value.projects.insert(id.to_owned(), m);
                        project.value.organization = Some(name);
                        project.value.org_membership = Some(m);
                    }
                    None => {
                        org.value.projects.remove(id);
                        project.value.organization = None;
                        project.value.org_membership = None;
                    }
                }
                tx.update(&keys::project(id), &project)?;
            }
        }
        Ok(())
    }
}
