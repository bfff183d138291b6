//! Portal configuration lists: what registration offers (institutions, user categories) and
//! the entity types with their subtypes (project and organization categories).

use trellis_types::{EntityType, Error, UserConfigurations};

use crate::Workspace;
use crate::keys;
use crate::tx::{Tx, load, retrying};

/// How a list update combines with what is stored (Merge's `PatchStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    /// Replace the lists.
    Replace,
    /// Remove the given entries.
    Remove,
    /// Add the given entries (no duplicates).
    Expand,
}

fn patch_list(list: &mut Vec<String>, items: &[String], patch: Patch) {
    match patch {
        Patch::Replace => *list = items.to_vec(),
        Patch::Remove => list.retain(|x| !items.contains(x)),
        Patch::Expand => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
    }
}

impl Workspace {
    /// The registration lists.
    pub async fn user_configurations(&self) -> Result<UserConfigurations, Error> {
        Ok(load::<UserConfigurations>(self.store.as_ref(), keys::USER_CONFIGURATIONS)
            .await?
            .map(|v| v.value)
            .unwrap_or_else(|| self.config.default_user_configurations.clone()))
    }

    /// Changes the registration lists.
    pub async fn update_user_configurations(
        &self,
        institutions: &[String],
        categories: &[String],
        patch: Patch,
    ) -> Result<UserConfigurations, Error> {
        let store = self.store.as_ref();
        retrying("update user configurations", || async move {
            let stored = load::<UserConfigurations>(store, keys::USER_CONFIGURATIONS).await?;
            let (mut value, revision) = match stored {
                Some(v) => (v.value, v.revision),
                None => (self.config.default_user_configurations.clone(), 0),
            };
            patch_list(&mut value.institutions, institutions, patch);
            patch_list(&mut value.categories, categories, patch);
            let mut tx = Tx::new();
            tx.guard(keys::USER_CONFIGURATIONS, revision);
            tx.put(keys::USER_CONFIGURATIONS, &value)?;
            Ok(tx.commit(store).await?.then(|| value.clone()))
        })
        .await
    }

    /// The entity types and their subtypes.
    pub async fn entity_types(&self) -> Result<Vec<EntityType>, Error> {
        Ok(load::<Vec<EntityType>>(self.store.as_ref(), keys::ENTITY_TYPES)
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// Changes the entity types: entries are matched by `etype`, and their subtypes patched.
    pub async fn update_entity_types(
        &self,
        types: &[EntityType],
        patch: Patch,
    ) -> Result<Vec<EntityType>, Error> {
        let store = self.store.as_ref();
        retrying("update entity types", || async move {
            let stored = load::<Vec<EntityType>>(store, keys::ENTITY_TYPES).await?;
            let revision = stored.as_ref().map_or(0, |v| v.revision);
            let mut value = stored.map(|v| v.value).unwrap_or_default();
            if patch == Patch::Replace {
                value = types.to_vec();
            } else {
                for t in types {
                    match value.iter_mut().find(|e| e.etype == t.etype) {
                        Some(existing) => patch_list(&mut existing.subtypes, &t.subtypes, patch),
                        None if patch == Patch::Expand => value.push(t.clone()),
                        None => {}
                    }
                }
                if patch == Patch::Remove {
                    // Removing an entry with no subtypes named removes the type itself.
                    value.retain(|e| !types.iter().any(|t| t.etype == e.etype && t.subtypes.is_empty()));
                }
            }
            let mut tx = Tx::new();
            tx.guard(keys::ENTITY_TYPES, revision);
            tx.put(keys::ENTITY_TYPES, &value)?;
            Ok(tx.commit(store).await?.then(|| value.clone()))
        })
        .await
    }
}
