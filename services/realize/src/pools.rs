//! Pools: which resources which projects and organizations may realize on.

use trellis_embed::Testbed;
use trellis_store::{Compare, Op, Txn};
use trellis_types::{Error, validate_name};

use crate::keys;
use crate::service::RealizeService;
use crate::stored::{Versioned, commit, load, load_all, put, retrying};
use crate::types::Pool;

/// The pool that applies to projects no other pool names.
pub const DEFAULT_POOL: &str = "default";

/// The pools that govern `project`: those naming it or one of its organizations; failing
/// that, the `default` pool. Empty means no pool applies and every resource is open.
pub fn applicable<'a>(
    pools: &'a [Versioned<Pool>],
    project: &str,
    organizations: &[String],
) -> Vec<&'a Versioned<Pool>> {
    let named: Vec<&Versioned<Pool>> = pools
        .iter()
        .filter(|p| {
            p.value.projects.iter().any(|x| x == project)
                || p.value.organizations.iter().any(|o| organizations.contains(o))
        })
        .collect();
    if !named.is_empty() {
        return named;
    }
    pools.iter().filter(|p| p.value.name == DEFAULT_POOL).collect()
}

/// Which hosts of `testbed` a realization may use: active ones, on facilities not being
/// changed, and (when pools apply) held by one of `pools`.
pub fn eligible_hosts(testbed: &Testbed, pools: &[&Versioned<Pool>], closed: &[String]) -> Vec<bool> {
    testbed
        .hosts
        .iter()
        .map(|host| {
            host.active
                && !closed.contains(&host.facility)
                && (pools.is_empty()
                    || pools.iter().any(|pool| {
                        pool.value
                            .facilities
                            .get(&host.facility)
                            .is_some_and(|r| r.resources.is_empty() || r.resources.contains(&host.name))
                    }))
        })
        .collect()
}

impl RealizeService {
    pub async fn create_pool(&self, mut pool: Pool) -> Result<(), Error> {
        validate_name("pool", &pool.name)?;
        pool.ver = 1;
        let key = keys::pool(&pool.name);
        let txn = Txn {
            compares: vec![Compare::ModRevision { key: key.clone(), revision: 0 }],
            success: vec![put(&key, &pool)?],
        };
        if commit(self.store.as_ref(), txn).await? {
            Ok(())
        } else {
            Err(Error::already_exists("pool", pool.name))
        }
    }

    pub async fn pool(&self, name: &str) -> Result<Pool, Error> {
        Ok(self.pool_record(name).await?.value)
    }

    async fn pool_record(&self, name: &str) -> Result<Versioned<Pool>, Error> {
        load(self.store.as_ref(), &keys::pool(name)).await?.ok_or_else(|| Error::not_found("pool", name))
    }

    pub async fn pools(&self) -> Result<Vec<Pool>, Error> {
        Ok(load_all(self.store.as_ref(), keys::POOLS).await?.into_iter().map(|p| p.value).collect())
    }

    pub async fn delete_pool(&self, name: &str) -> Result<(), Error> {
        let key = keys::pool(name);
        let txn =
            Txn { compares: vec![Compare::Exists { key: key.clone() }], success: vec![Op::Delete { key }] };
        if commit(self.store.as_ref(), txn).await? { Ok(()) } else { Err(Error::not_found("pool", name)) }
    }

    /// Applies `change` to the pool in a compare-and-swap loop (add/remove projects,
    /// organizations, facilities; set resources; priority).
    pub async fn update_pool(
        &self,
        name: &str,
        change: impl Fn(&mut Pool) -> Result<(), Error> + Send + Sync,
    ) -> Result<Pool, Error> {
        let change = &change;
        retrying(&format!("updating pool {name}"), || async move {
            let read = self.pool_record(name).await?;
            let mut pool = read.value.clone();
            change(&mut pool)?;
            // The name is the key; a change cannot move the pool.
            pool.name = read.value.name.clone();
            pool.ver = read.value.ver + 1;
            let key = keys::pool(name);
            let txn = Txn {
                compares: vec![Compare::ModRevision { key: key.clone(), revision: read.revision }],
                success: vec![put(&key, &pool)?],
            };
            Ok(commit(self.store.as_ref(), txn).await?.then_some(pool))
        })
        .await
    }
}
