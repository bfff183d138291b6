//! Where the realize service keeps its objects in the state store.
//!
//! ```text
//! /trellis/realize/facilities/<name>                 FacilityRecord (JSON)
//! /trellis/realize/facility-models/<name>            xir::Facility (protobuf)
//! /trellis/realize/facility-changes/<name>           FacilityChange (JSON): a model change or
//!                                                    deletion in progress
//! /trellis/realize/pools/<name>                      Pool (JSON)
//! /trellis/realize/alloc/host/<fac>/<host>           Vec<Allocation> (JSON), one key per
//! /trellis/realize/alloc/port/<fac>/<host>/<port>      resource, so realizations conflict
//! /trellis/realize/alloc/trunk/<fac>/<trunk>           exactly when they share one
//! /trellis/realize/alloc/vlan/<fac>/<vid>
//! /trellis/realize/realizations/<proj>/<exp>/<name>  RealizationRecord (JSON)
//! /trellis/realize/infranet/<block>                  mzid holding that /24 of 10.0.0.0/8
//! ```
//!
//! A facility's record and model are always written in the same transaction, so the record's
//! revision identifies the model too.

use trellis_embed::ResourceKey;

/// Everything the realize service keeps.
pub const ROOT: &str = "/trellis/realize/";

/// Prefix of facility records.
pub const FACILITIES: &str = "/trellis/realize/facilities/";
/// Prefix of facility models.
pub const FACILITY_MODELS: &str = "/trellis/realize/facility-models/";
/// Prefix of in-progress facility changes.
pub const FACILITY_CHANGES: &str = "/trellis/realize/facility-changes/";
/// A prefix covering records, models and changes, so one range reads them as one snapshot.
pub const FACILITY_STATE: &str = "/trellis/realize/facilit";
/// Prefix of pools.
pub const POOLS: &str = "/trellis/realize/pools/";
/// Prefix of the allocation table.
pub const ALLOC: &str = "/trellis/realize/alloc/";
/// Prefix of realizations.
pub const REALIZATIONS: &str = "/trellis/realize/realizations/";
/// Prefix of infranet subnet blocks.
pub const INFRANET: &str = "/trellis/realize/infranet/";

pub fn facility(name: &str) -> String {
    format!("{FACILITIES}{name}")
}

pub fn facility_model(name: &str) -> String {
    format!("{FACILITY_MODELS}{name}")
}

pub fn facility_change(name: &str) -> String {
    format!("{FACILITY_CHANGES}{name}")
}

pub fn pool(name: &str) -> String {
    format!("{POOLS}{name}")
}

pub fn realization(project: &str, experiment: &str, name: &str) -> String {
    format!("{REALIZATIONS}{project}/{experiment}/{name}")
}

pub fn infranet(block: u32) -> String {
    format!("{INFRANET}{block}")
}

/// The store key of a resource's allocations.
pub fn alloc(key: &ResourceKey) -> String {
    format!("{ALLOC}{}", resource_path(key))
}

/// A resource key as a path, like `host/<facility>/<host>`. Names from facility models may
/// contain `/` (switch-style port names), so each segment is escaped.
pub fn resource_path(key: &ResourceKey) -> String {
    match key {
        ResourceKey::Host { facility, host } => format!("host/{}/{}", escape(facility), escape(host)),
        ResourceKey::Port { facility, host, port } => {
            format!("port/{}/{}/{}", escape(facility), escape(host), escape(port))
        }
        ResourceKey::Trunk { facility, trunk } => format!("trunk/{}/{}", escape(facility), escape(trunk)),
        ResourceKey::Vlan { facility, vid } => format!("vlan/{}/{vid}", escape(facility)),
    }
}

/// The resource a store key (or a path from [`resource_path`]) names; `None` if it names none.
pub fn parse_resource(key: &str) -> Option<ResourceKey> {
    let path = key.strip_prefix(ALLOC).unwrap_or(key);
    let parts: Vec<String> = path.split('/').map(unescape).collect::<Option<_>>()?;
    match parts.as_slice() {
        [kind, facility, host] if kind == "host" => {
            Some(ResourceKey::Host { facility: facility.clone(), host: host.clone() })
        }
        [kind, facility, host, port] if kind == "port" => {
            Some(ResourceKey::Port { facility: facility.clone(), host: host.clone(), port: port.clone() })
        }
        [kind, facility, trunk] if kind == "trunk" => {
            Some(ResourceKey::Trunk { facility: facility.clone(), trunk: trunk.clone() })
        }
        [kind, facility, vid] if kind == "vlan" => {
            Some(ResourceKey::Vlan { facility: facility.clone(), vid: vid.parse().ok()? })
        }
        _ => None,
    }
}

/// The facility a resource belongs to.
pub fn resource_facility(key: &ResourceKey) -> &str {
    match key {
        ResourceKey::Host { facility, .. }
        | ResourceKey::Port { facility, .. }
        | ResourceKey::Trunk { facility, .. }
        | ResourceKey::Vlan { facility, .. } => facility,
    }
}

fn escape(segment: &str) -> String {
    segment.replace('%', "%25").replace('/', "%2F")
}

fn unescape(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut rest = segment;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("%25") => out.push('%'),
            Some("%2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_keys_round_trip_through_store_keys() {
        let keys = [
            ResourceKey::Host { facility: "f".into(), host: "n0".into() },
            ResourceKey::Port { facility: "f".into(), host: "n0".into(), port: "Ethernet1/1%x".into() },
            ResourceKey::Trunk { facility: "f".into(), trunk: "leaf0~spine0".into() },
            ResourceKey::Vlan { facility: "f".into(), vid: 4095 },
        ];
        for key in keys {
            let stored = alloc(&key);
            assert!(stored.starts_with(ALLOC));
            assert_eq!(
                stored.matches('/').count(),
                ALLOC.matches('/').count() + resource_path(&key).matches('/').count()
            );
            assert_eq!(parse_resource(&stored), Some(key.clone()), "{stored}");
        }
        assert_eq!(
            alloc(&ResourceKey::Port { facility: "f".into(), host: "h".into(), port: "a/b".into() }),
            format!("{ALLOC}port/f/h/a%2Fb")
        );
    }

    #[test]
    fn malformed_paths_name_no_resource() {
        for bad in ["host/f", "port/f/h", "vlan/f/x", "disk/f/h", "host/f/h%2", "host/f/a%41"] {
            assert_eq!(parse_resource(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_facility_state_prefix_covers_records_models_and_changes_only() {
        for prefix in [FACILITIES, FACILITY_MODELS, FACILITY_CHANGES] {
            assert!(prefix.starts_with(FACILITY_STATE));
        }
        for other in [POOLS, ALLOC, REALIZATIONS, INFRANET] {
            assert!(!other.starts_with(FACILITY_STATE));
            assert!(other.starts_with(ROOT));
        }
    }
}
