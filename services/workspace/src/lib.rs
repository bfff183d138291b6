//! The workspace service: users, SSH public keys, projects, organizations, experiments and the
//! portal's registration lists, kept in the state store.
//!
//! Every mutation is an optimistic transaction: read the objects involved with their revisions,
//! compute the new versions, and commit with compare-and-swap on every revision read; on a
//! conflict, start over (see [`tx`]). Objects that mirror each other (a project's member map and
//! each member's project map) are therefore always written together and never disagree.
//!
//! What this crate is not: it does not authenticate or authorize. Callers (the API server) check
//! the policy first; [`access`] only computes the facts the policy needs (the caller's relations
//! to an object).
//!
//! Layout: [`keys`] (store key layout), [`tx`] (transactions and retries), [`users`],
//! [`pubkeys`], [`projects`], [`organizations`], [`experiments`], [`config`], [`access`].

pub mod access;
pub mod config;
pub mod experiments;
pub mod keys;
pub mod organizations;
pub mod projects;
pub mod pubkeys;
pub mod tx;
pub mod users;

use std::sync::Arc;

use trellis_store::Store;
use trellis_types::UserConfigurations;

pub use users::RegisterInput;

/// Settings of the workspace service.
#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    /// Registration lists served before any administrator changes them.
    pub default_user_configurations: UserConfigurations,
    /// First uid/gid handed out; below it are system accounts.
    pub first_uid: u32,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            default_user_configurations: UserConfigurations {
                institutions: vec!["Other".to_owned()],
                categories: vec![
                    "Graduate student".to_owned(),
                    "Undergraduate student".to_owned(),
                    "Faculty".to_owned(),
                    "Researcher".to_owned(),
                    "Industry".to_owned(),
                    "Other".to_owned(),
                ],
            },
            first_uid: 10_000,
        }
    }
}

/// The workspace service. Cheap to clone; every clone shares the store.
#[derive(Clone)]
pub struct Workspace {
    store: Arc<dyn Store>,
    config: Arc<WorkspaceConfig>,
}

impl Workspace {
    /// A workspace service over `store`.
    pub fn new(store: Arc<dyn Store>, config: WorkspaceConfig) -> Workspace {
        Workspace { store, config: Arc::new(config) }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
