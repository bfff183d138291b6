//! User accounts: registration, activation, freezing, updates and deletion.

use trellis_identity::IdentityRecord;
use trellis_identity::records::{identity_key, load_identity};
use trellis_types::{AccessMode, Error, Member, MemberRole, Project, User, UserState, validate_name};

use crate::keys;
use crate::tx::{Tx, Versioned, load, load_all, load_required, retrying};
use crate::{Workspace, now_unix};

/// The administrator account created on first start.
pub const ADMIN_USERNAME: &str = "admin";

/// What a person gives when registering.
#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    pub username: String,
    pub email: String,
    pub password: String,
    pub name: String,
    pub institution: String,
    pub category: String,
    pub country: String,
    pub usstate: String,
    /// Make the account a portal administrator (only admins may ask for this).
    pub admin: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub state: Option<UserState>,
    pub access_mode: Option<AccessMode>,
    pub toggle_admin: bool,
    pub institution: Option<String>,
    pub category: Option<String>,
    pub country: Option<String>,
    pub email: Option<String>,
    pub usstate: Option<String>,
}

fn validate_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if ok { Ok(()) } else { Err(Error::invalid("email", format!("{email:?} is not an email address"))) }
}

impl Workspace {
    /// Registers a new account: identity, user and the user's personal project, in one
    /// transaction. The user waits in `Pending` until activated unless `activate` is set.
    pub async fn register(&self, input: RegisterInput, activate: bool) -> Result<User, Error> {
        let mut violations = Vec::new();
        if let Err(Error::InvalidArgument { violations: v }) = validate_name("username", &input.username) {
            violations.extend(v);
        }
        if let Err(Error::InvalidArgument { violations: v }) = validate_email(&input.email) {
            violations.extend(v);
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument { violations });
        }
        // argon2 is deliberately slow: hash once, outside the retry loop and off the async workers.
        let identity = {
            let (username, email, password, admin) =
                (input.username.clone(), input.email.clone(), input.password.clone(), input.admin);
            tokio::task::spawn_blocking(move || IdentityRecord::new(&username, &email, &password, admin))
                .await
                .map_err(|e| Error::Internal(format!("password hashing panicked: {e}")))??
        };
        let (store, input, identity) = (self.store.as_ref(), &input, &identity);
        retrying("register", || async move {
            if load_identity(store, &input.username).await?.is_some()
                || store.get(&keys::user(&input.username)).await.map_err(crate::tx::store_error)?.is_some()
            {
                return Err(Error::already_exists("user", &input.username));
            }
            if store.get(&keys::project(&input.username)).await.map_err(crate::tx::store_error)?.is_some() {
                return Err(Error::invalid(
                    "username",
                    format!("{} is already the name of a project; choose another username", input.username),
                ));
            }
            let next: Option<Versioned<u32>> = load(store, keys::NEXT_ID).await?;
            let uid = next.as_ref().map_or(self.config.first_uid, |n| n.value);
            let now = now_unix();
            let state = if activate { UserState::Active } else { UserState::Pending };
            let user = User {
                username: input.username.clone(),
                name: input.name.clone(),
                email: input.email.clone(),
                state,
                access_mode: AccessMode::Protected,
                uid,
                gid: uid,
                admin: input.admin,
                institution: input.institution.clone(),
                category: input.category.clone(),
                country: input.country.clone(),
                usstate: input.usstate.clone(),
                created: now,
                projects: [(input.username.clone(), Member::active(MemberRole::Creator))].into(),
                organizations: Default::default(),
                experiments: vec![],
            };
            let personal = Project {
                name: input.username.clone(),
                description: format!("personal project of {}", input.username),
                access_mode: AccessMode::Private,
                gid: uid + 1,
                members: [(input.username.clone(), Member::active(MemberRole::Creator))].into(),
                state,
                created: now,
                personal: true,
                ..Default::default()
            };
            let mut tx = Tx::new();
            let (compare, op) = identity.create_ops()?;
            tx.compare(compare).op(op);
            tx.create(&keys::user(&user.username), &user)?;
            tx.create(&keys::project(&personal.name), &personal)?;
            tx.guard(keys::NEXT_ID, next.as_ref().map_or(0, |n| n.revision));
            tx.put(keys::NEXT_ID, &(uid + 2))?;
            Ok(tx.commit(store).await?.then_some(user.clone()))
        })
        .await
    }

    /// Creates the `admin` account on first start. Returns the generated password when none was
    /// given, so the caller can print it once; returns `None` when the account already exists.
    pub async fn bootstrap_admin(&self, password: Option<String>) -> Result<Option<String>, Error> {
        if self.store.get(&keys::user(ADMIN_USERNAME)).await.map_err(crate::tx::store_error)?.is_some() {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = password.unwrap_or_else(generate_password);
        let input = RegisterInput {
            username: ADMIN_USERNAME.to_owned(),
            email: "admin@localhost.localdomain".to_owned(),
            password: password.clone(),
            name: "Portal administrator".to_owned(),
            admin: true,
            ..Default::default()
        };
        match self.register(input, true).await {
            Ok(_) => Ok(Some(password).filter(|_| generated)),
            // Another replica bootstrapped at the same moment. Which check it loses depends on
            // timing (the user, or its personal project "admin", taken first), so ask again.
            Err(e) => {
                if self
                    .store
                    .get(&keys::user(ADMIN_USERNAME))
                    .await
                    .map_err(crate::tx::store_error)?
                    .is_some()
                {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Reads a user's account record (its `experiments` left empty: deriving them reads every
    /// experiment, which authorization checks must not pay for).
    pub async fn get_user(&self, username: &str) -> Result<User, Error> {
        Ok(load_required::<User>(self.store.as_ref(), &keys::user(username), "user", username).await?.value)
    }

    /// Reads a user with the experiments they maintain (what `GetUser` answers).
    pub async fn user_with_experiments(&self, username: &str) -> Result<User, Error> {
        let mut user = self.get_user(username).await?;
        let mut maintained = self.maintained_experiments().await?;
        user.experiments = maintained.remove(username).unwrap_or_default();
        Ok(user)
    }

    /// Reads a user's account record if it exists, without the derived list of experiments
    /// (the cheap read authentication needs on every call).
    pub async fn find_user(&self, username: &str) -> Result<Option<User>, Error> {
        Ok(load::<User>(self.store.as_ref(), &keys::user(username)).await?.map(|v| v.value))
    }

    /// Reads every user, with the experiments they maintain.
    pub async fn list_users(&self) -> Result<Vec<User>, Error> {
        let mut maintained = self.maintained_experiments().await?;
        Ok(load_all::<User>(self.store.as_ref(), keys::USERS)
            .await?
            .into_iter()
            .map(|v| {
                let mut user = v.value;
                user.experiments = maintained.remove(&user.username).unwrap_or_default();
                user
            })
            .collect())
    }

    /// `experiment.project` names by maintainer.
    async fn maintained_experiments(&self) -> Result<std::collections::HashMap<String, Vec<String>>, Error> {
        let mut by_user: std::collections::HashMap<String, Vec<String>> = Default::default();
        for e in load_all::<trellis_types::Experiment>(self.store.as_ref(), keys::EXPERIMENTS).await? {
            for m in &e.value.maintainers {
                by_user.entry(m.clone()).or_default().push(format!("{}.{}", e.value.name, e.value.project));
            }
        }
        Ok(by_user)
    }

    /// Sets a user's state (and their personal project's) to `state`.
    pub async fn set_user_state(&self, username: &str, state: UserState) -> Result<User, Error> {
        self.update_user(username, UserUpdate { state: Some(state), ..Default::default() }).await
    }

    /// Applies `update` to a user.
    pub async fn update_user(&self, username: &str, update: UserUpdate) -> Result<User, Error> {
        if let Some(email) = &update.email {
            validate_email(email)?;
        }
        if update.state == Some(UserState::NotSet) {
            return Err(Error::invalid("state", "NotSet is not a state a user can be put in"));
        }
        let (store, update) = (self.store.as_ref(), &update);
        retrying("update user", || async move {
            let mut user = load_required::<User>(store, &keys::user(username), "user", username).await?;
            let u = &mut user.value;
            let set = |field: &mut String, value: &Option<String>| {
                if let Some(v) = value {
                    field.clone_from(v);
                }
            };
            set(&mut u.name, &update.name);
            set(&mut u.institution, &update.institution);
            set(&mut u.category, &update.category);
            set(&mut u.country, &update.country);
            set(&mut u.email, &update.email);
            set(&mut u.usstate, &update.usstate);
            if let Some(mode) = update.access_mode {
                u.access_mode = mode;
            }
            if update.toggle_admin {
                u.admin = !u.admin;
            }
            let mut tx = Tx::new();
            if let Some(state) = update.state {
                u.state = state;
                // The personal project follows its owner's state.
                if let Some(mut personal) = load::<Project>(store, &keys::project(username)).await?
                    && personal.value.personal
                {
                    personal.value.state = state;
                    tx.update(&keys::project(username), &personal)?;
                }
            }
            if update.toggle_admin || update.email.is_some() {
                // The identity keeps its own copy of the admin flag and address for login.
                if let Some((mut identity, rev)) = load_identity(store, username).await? {
                    identity.admin = u.admin;
                    identity.email.clone_from(&u.email);
                    let (compare, op) = identity.update_ops(rev)?;
                    tx.compare(compare).op(op);
                }
            }
            tx.update(&keys::user(username), &user)?;
            Ok(tx.commit(store).await?.then(|| user.value.clone()))
        })
        .await
    }

    /// Changes a user's password.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), Error> {
        let hash = {
            let password = password.to_owned();
            tokio::task::spawn_blocking(move || trellis_identity::password::hash_password(&password))
                .await
                .map_err(|e| Error::Internal(format!("password hashing panicked: {e}")))??
        };
        let (store, hash) = (self.store.as_ref(), &hash);
        retrying("set password", || async move {
            let Some((mut identity, rev)) = load_identity(store, username).await? else {
                return Err(Error::not_found("identity", username));
            };
            identity.password_hash.clone_from(hash);
            let (compare, op) = identity.update_ops(rev)?;
            let mut tx = Tx::new();
            tx.compare(compare).op(op);
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }

    /// Deletes a user with their identity, keys, personal project and memberships.
    ///
    /// Refused while the user created a shared project or organization (hand it over first) or
    /// their personal project still holds experiments: deleting those silently would lose work.
    pub async fn delete_user(&self, username: &str) -> Result<(), Error> {
        let store = self.store.as_ref();
        retrying("delete user", || async move {
            let user = load_required::<User>(store, &keys::user(username), "user", username).await?;
            let mut tx = Tx::new();
            tx.guard(&keys::user(username), user.revision);
            for (name, member) in &user.value.projects {
                let Some(mut project) = load::<Project>(store, &keys::project(name)).await? else { continue };
                if project.value.personal && project.value.name == username {
                    let experiments =
                        load_all::<trellis_types::Experiment>(store, &keys::project_experiments(name)).await?;
                    if !experiments.is_empty() {
                        let names: Vec<_> = experiments.iter().map(|e| e.value.name.as_str()).collect();
                        return Err(Error::FailedPrecondition(format!(
                            "{username}'s personal project still has experiments ({}); delete them first",
                            names.join(", ")
                        )));
                    }
                    tx.guard(&keys::project(name), project.revision);
                    tx.delete(&keys::project(name));
                    tx.delete_prefix(&keys::project_experiments(name));
                } else if member.role == MemberRole::Creator {
                    return Err(Error::FailedPrecondition(format!(
                        "{username} created project {name}; delete it or make another member its creator first"
                    )));
                } else {
                    project.value.members.remove(username);
                    tx.update(&keys::project(name), &project)?;
                }
            }
            for (name, member) in &user.value.organizations {
                let Some(mut org) =
                    load::<trellis_types::Organization>(store, &keys::organization(name)).await?
                else {
                    continue;
                };
                if member.role == MemberRole::Creator {
                    return Err(Error::FailedPrecondition(format!(
                        "{username} created organization {name}; delete it or hand it over first"
                    )));
                }
                org.value.members.remove(username);
                tx.update(&keys::organization(name), &org)?;
            }
            tx.delete(&keys::user(username));
            tx.delete(&identity_key(username));
            tx.delete_prefix(&keys::user_pubkeys(username));
            Ok(tx.commit(store).await?.then_some(()))
        })
        .await
    }
}

/// A random password for the bootstrap administrator: 122 random bits from the OS RNG, as 32
/// hex characters (easy to copy from a terminal, no shell-special characters).
fn generate_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
