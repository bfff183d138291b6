//! What a realization reads before embedding: the facilities (with a cached resource graph),
//! pools, the allocation table and the infranet blocks in use, each with the revisions its
//! commit compares.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::Mutex;
use trellis_embed::{Claim, Occupancy, ResourceKey, Testbed};
use trellis_store::{KeyValue, Store};
use trellis_types::Error;

use crate::commission::{FacilityChange, decode_model};
use crate::infranet;
use crate::keys;
use crate::stored::{Versioned, decode, load_all, now_unix, store_error};
use crate::types::{Allocation, FacilityRecord, Pool};

/// Identifies the facility models (and activations) a testbed was built from: every facility
/// with its record's revision, which moves whenever its model does.
type Fingerprint = Vec<(String, i64)>;

/// The last testbed built, shared by every realization on this replica.
pub type TestbedCache = Arc<Mutex<Option<(Fingerprint, Arc<Testbed>)>>>;

pub struct FacilityState {
    pub records: BTreeMap<String, Versioned<FacilityRecord>>,
    /// Change markers by facility (with their revisions, 0 when absent).
    pub changes: HashMap<String, Versioned<FacilityChange>>,
    pub testbed: Arc<Testbed>,
}

impl FacilityState {
    /// Facilities a change is under way on: realizations leave them alone.
    pub fn closed(&self) -> Vec<String> {
        let now = now_unix();
        self.changes.iter().filter(|(_, c)| c.value.is_live(now)).map(|(f, _)| f.clone()).collect()
    }

    pub fn change_revision(&self, facility: &str) -> i64 {
        self.changes.get(facility).map_or(0, |c| c.revision)
    }
}

fn fingerprint(records: &BTreeMap<String, Versioned<FacilityRecord>>) -> Fingerprint {
    records.iter().map(|(name, r)| (name.clone(), r.revision)).collect()
}

fn by_name(records: Vec<Versioned<FacilityRecord>>) -> BTreeMap<String, Versioned<FacilityRecord>> {
    records.into_iter().map(|r| (r.value.name.clone(), r)).collect()
}

/// Reads the facilities, reusing the cached testbed when no facility changed since it was built.
pub async fn facilities(store: &dyn Store, cache: &TestbedCache) -> Result<FacilityState, Error> {
    let records = by_name(load_all(store, keys::FACILITIES).await?);
    let print = fingerprint(&records);
    let mut cached = cache.lock().await;
    if let Some((built_from, testbed)) = cached.as_ref()
        && *built_from == print
    {
        let testbed = testbed.clone();
        drop(cached);
        let markers = store.range(keys::FACILITY_CHANGES).await.map_err(store_error)?;
        let changes = changes_by_facility(&markers.kvs)?;
        return Ok(FacilityState { records, changes, testbed });
    }
    // One range over records, models and markers: a consistent snapshot to build from. The
    // lock stays held so concurrent realizations wait for this build instead of repeating it.
    let snapshot = store.range(keys::FACILITY_STATE).await.map_err(store_error)?;
    let mut records = Vec::new();
    let mut models = Vec::new();
    for kv in &snapshot.kvs {
        if kv.key.starts_with(keys::FACILITIES) {
            records.push(decode::<FacilityRecord>(kv)?);
        } else if let Some(name) = kv.key.strip_prefix(keys::FACILITY_MODELS) {
            models.push((name.to_owned(), kv.value.clone()));
        }
    }
    let records = by_name(records);
    let print = fingerprint(&records);
    let deactivated: HashMap<String, HashSet<String>> = records
        .iter()
        .map(|(name, r)| (name.clone(), r.value.deactivated.iter().cloned().collect()))
        .collect();
    let testbed = tokio::task::spawn_blocking(move || build(models, &deactivated))
        .await
        .map_err(|e| Error::Internal(format!("building the testbed: {e}")))??;
    let testbed = Arc::new(testbed);
    *cached = Some((print, testbed.clone()));
    Ok(FacilityState { records, changes: changes_by_facility(&snapshot.kvs)?, testbed })
}

/// Change markers among `kvs`, by facility.
fn changes_by_facility(kvs: &[KeyValue]) -> Result<HashMap<String, Versioned<FacilityChange>>, Error> {
    kvs.iter()
        .filter_map(|kv| kv.key.strip_prefix(keys::FACILITY_CHANGES).map(|name| (name, kv)))
        .map(|(name, kv)| Ok((name.to_owned(), decode::<FacilityChange>(kv)?)))
        .collect()
}

fn build(
    models: Vec<(String, Vec<u8>)>,
    deactivated: &HashMap<String, HashSet<String>>,
) -> Result<Testbed, Error> {
    let models =
        models.iter().map(|(name, bytes)| decode_model(name, bytes)).collect::<Result<Vec<_>, _>>()?;
    let mut testbed = Testbed::from_facilities(&models)
        .map_err(|e| Error::Internal(format!("the commissioned facilities do not form a testbed: {e}")))?;
    for host in &mut testbed.hosts {
        if deactivated.get(&host.facility).is_some_and(|d| d.contains(&host.name)) {
            host.active = false;
        }
    }
    Ok(testbed)
}

/// The allocation table as read: each key's allocations and revision, and the usage they add up to.
pub struct Allocations {
    pub entries: HashMap<ResourceKey, Versioned<Vec<Allocation>>>,
    pub occupancy: Occupancy,
}

impl Allocations {
    pub fn revision(&self, key: &ResourceKey) -> i64 {
        self.entries.get(key).map_or(0, |e| e.revision)
    }
}

pub async fn allocations(store: &dyn Store) -> Result<Allocations, Error> {
    let range = store.range(keys::ALLOC).await.map_err(store_error)?;
    let mut entries = HashMap::with_capacity(range.kvs.len());
    let mut occupancy = Occupancy::new();
    for kv in &range.kvs {
        let Some(key) = keys::parse_resource(&kv.key) else {
            tracing::warn!(key = %kv.key, "ignoring an allocation key that names no resource");
            continue;
        };
        let allocations: Versioned<Vec<Allocation>> = decode(kv)?;
        for allocation in &allocations.value {
            occupancy.add(&Claim { key: key.clone(), usage: allocation.usage });
        }
        entries.insert(key, allocations);
    }
    Ok(Allocations { entries, occupancy })
}

/// Infranet blocks in use.
pub async fn infranet_blocks(store: &dyn Store) -> Result<HashSet<u32>, Error> {
    let range = store.range(keys::INFRANET).await.map_err(store_error)?;
    Ok(range.kvs.iter().filter_map(|kv| infranet::parse_block_key(&kv.key)).collect())
}

pub async fn pools(store: &dyn Store) -> Result<Vec<Versioned<Pool>>, Error> {
    load_all(store, keys::POOLS).await
}
