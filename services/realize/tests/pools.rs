//! Pools over both stores: CRUD, and how they decide where a project's realizations may land.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{Backend, NodeSpec, Shape, facility, hosts_of, network, record};
use trellis_realize::{Duration, Pool, PoolResources, RealizeService};
use trellis_types::Error;

fn pool(name: &str, projects: &[&str], organizations: &[&str], facilities: &[(&str, &[&str])]) -> Pool {
    Pool {
        name: name.to_owned(),
        description: String::new(),
        creator: "ops".to_owned(),
        projects: projects.iter().map(|s| s.to_string()).collect(),
        organizations: organizations.iter().map(|s| s.to_string()).collect(),
        facilities: facilities
            .iter()
            .map(|(f, r)| {
                (f.to_string(), PoolResources { resources: r.iter().map(|s| s.to_string()).collect() })
            })
            .collect::<BTreeMap<_, _>>(),
        priority: 0,
        ver: 0,
    }
}

async fn crud(backend: Backend) {
    let service = backend.service();
    service.create_pool(pool("research", &["p1"], &[], &[("alpha", &[])])).await.unwrap();
    let again = service.create_pool(pool("research", &[], &[], &[])).await.unwrap_err();
    assert!(matches!(again, Error::AlreadyExists { kind: "pool", .. }), "{again:?}");
    let bad = service.create_pool(pool("Not Valid", &[], &[], &[])).await.unwrap_err();
    assert!(matches!(bad, Error::InvalidArgument { .. }), "{bad:?}");
    service.create_pool(pool("default", &[], &[], &[])).await.unwrap();

    let got = service.pool("research").await.unwrap();
    assert_eq!((got.projects.as_slice(), got.ver), (&["p1".to_string()][..], 1));
    let names: Vec<String> = service.pools().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["default", "research"]);

    let updated = service
        .update_pool("research", |p| {
            p.projects.push("p2".into());
            p.facilities.entry("beta".into()).or_default().resources.push("h1".into());
            p.priority = 5;
            // Renaming is not a thing a change can do.
            p.name = "elsewhere".into();
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(updated.name, "research");
    assert_eq!(updated.ver, 2);
    assert_eq!(service.pool("research").await.unwrap(), updated);
    assert!(matches!(service.pool("elsewhere").await.unwrap_err(), Error::NotFound { .. }));

    let refused =
        service.update_pool("research", |_| Err(Error::invalid("projects", "no"))).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidArgument { .. }), "{refused:?}");
    assert_eq!(service.pool("research").await.unwrap().ver, 2, "a refused change writes nothing");
    assert!(matches!(service.update_pool("nope", |_| Ok(())).await.unwrap_err(), Error::NotFound { .. }));

    service.delete_pool("research").await.unwrap();
    assert!(matches!(service.delete_pool("research").await.unwrap_err(), Error::NotFound { .. }));
    assert_eq!(service.pools().await.unwrap().len(), 1);
}
on_both_stores!(crud);

async fn realize_nodes(
    service: &RealizeService,
    project: &str,
    name: &str,
    nodes: usize,
    orgs: &[&str],
) -> Result<Vec<String>, Error> {
    let orgs: Vec<String> = orgs.iter().map(|s| s.to_string()).collect();
    let net = network("x", &vec![NodeSpec::metal(); nodes], &[]);
    let r = service.realize_network(project, "e", name, "rev", &net, Duration::Never, "u", &orgs).await?;
    let mut hosts = hosts_of(&r);
    hosts.sort();
    Ok(hosts)
}

async fn pools_decide_eligibility(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();

    // No pools at all: everything is open.
    assert_eq!(realize_nodes(&service, "p0", "r", 8, &[]).await.unwrap().len(), 8);
    service.relinquish("p0", "e", "r").await.unwrap();

    // A project's own pool confines it.
    service
        .create_pool(pool("small", &["p1"], &[], &[("alpha", &["r0n0", "r0n1"]), ("unknown", &[])]))
        .await
        .unwrap();
    assert_eq!(realize_nodes(&service, "p1", "a", 2, &[]).await.unwrap(), ["r0n0", "r0n1"]);
    let full = realize_nodes(&service, "p1", "b", 1, &[]).await.unwrap_err();
    assert!(matches!(full, Error::FailedPrecondition(_)), "{full:?}");
    service.relinquish("p1", "e", "a").await.unwrap();

    // Projects no pool names use the default pool once it exists ...
    service.create_pool(pool("default", &[], &[], &[("alpha", &["r1n3"])])).await.unwrap();
    assert_eq!(realize_nodes(&service, "p2", "a", 1, &[]).await.unwrap(), ["r1n3"]);
    assert!(realize_nodes(&service, "p2", "b", 1, &[]).await.is_err());
    // ... but not the projects a pool does name.
    assert_eq!(realize_nodes(&service, "p1", "c", 2, &[]).await.unwrap(), ["r0n0", "r0n1"]);

    // An organization's pool applies to its projects; an empty resource list means the whole
    // facility; several applicable pools add up.
    service.create_pool(pool("acme", &[], &["acme"], &[("alpha", &[])])).await.unwrap();
    assert_eq!(realize_nodes(&service, "p3", "a", 5, &["acme"]).await.unwrap().len(), 5);
    assert!(realize_nodes(&service, "p3", "b", 1, &["acme"]).await.is_err(), "8 hosts, 8 taken");
    service.relinquish("p3", "e", "a").await.unwrap();
    service
        .update_pool("small", |p| {
            p.organizations.push("acme".into());
            Ok(())
        })
        .await
        .unwrap();
    service.relinquish("p1", "e", "c").await.unwrap();
    assert_eq!(realize_nodes(&service, "p1", "d", 7, &["acme"]).await.unwrap().len(), 7);

    // Deleting the default pool reopens everything to unnamed projects.
    service.relinquish("p1", "e", "d").await.unwrap();
    service.relinquish("p2", "e", "a").await.unwrap();
    service.delete_pool("default").await.unwrap();
    assert_eq!(realize_nodes(&service, "p2", "z", 8, &[]).await.unwrap().len(), 8);
}
on_both_stores!(pools_decide_eligibility);
