//! Commissioning facilities over both stores: registration and its validation, updates that
//! must not strand allocations, deletion, activation.

#[macro_use]
mod common;

use common::{Backend, Shape, chain, facility, record};
use trellis_realize::Duration;
use trellis_types::Error;

fn violations(err: Error) -> String {
    match err {
        Error::InvalidArgument { violations } => violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; "),
        other => panic!("expected invalid argument, got {other:?}"),
    }
}

async fn register_get_list_and_validation(backend: Backend) {
    let service = backend.service();
    let model = facility("alpha", &Shape::default());
    service.register_facility(record("alpha"), model.clone()).await.unwrap();

    let (got, got_model) = service.facility("alpha").await.unwrap();
    assert_eq!(got.address, "alpha.example.net:6000");
    assert_eq!(got.ver, 1);
    assert!(got.created > 0);
    assert_eq!(got_model.as_ref(), Some(&model));

    let again = service.register_facility(record("alpha"), model.clone()).await.unwrap_err();
    assert!(matches!(again, Error::AlreadyExists { kind: "facility", .. }), "{again:?}");

    // A model without an id takes the facility's name.
    let mut unnamed = facility("beta", &Shape { racks: 1, ..Shape::default() });
    unnamed.id.clear();
    service.register_facility(record("beta"), unnamed).await.unwrap();
    assert_eq!(service.facility("beta").await.unwrap().1.unwrap().id, "beta");
    let names: Vec<String> = service.facilities().await.unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["alpha", "beta"]);

    let bad_name =
        service.register_facility(record("Bad-Name"), facility("Bad-Name", &Shape::default())).await;
    assert!(violations(bad_name.unwrap_err()).starts_with("facility:"));

    let mismatch = service.register_facility(record("gamma"), facility("delta", &Shape::default())).await;
    assert!(violations(mismatch.unwrap_err()).contains("describes facility \"delta\""));

    // A cable to a resource that does not exist: the testbed cannot be built.
    let mut broken = facility("gamma", &Shape::default());
    broken.cables[0].ends[1].connectors[0].port.as_mut().unwrap().element = "nowhere".into();
    let text = violations(service.register_facility(record("gamma"), broken).await.unwrap_err());
    assert!(text.starts_with("model:") && text.contains("nowhere"), "{text}");

    let mut deactivating_ghosts = record("gamma");
    deactivating_ghosts.deactivated = vec!["r0n0".into(), "ghost".into()];
    let text = violations(
        service
            .register_facility(deactivating_ghosts, facility("gamma", &Shape::default()))
            .await
            .unwrap_err(),
    );
    assert!(text.contains("ghost") && !text.contains("r0n0"), "{text}");
    assert!(matches!(service.facility("gamma").await.unwrap_err(), Error::NotFound { .. }));
}
on_both_stores!(register_get_list_and_validation);

async fn activation(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    let hosts = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    service.set_resources_active("alpha", &hosts(&["r0n1", "r0n0"]), false).await.unwrap();
    let (got, _) = service.facility("alpha").await.unwrap();
    assert_eq!(got.deactivated, ["r0n0", "r0n1"]);
    assert_eq!(got.ver, 2);

    let text = violations(
        service.set_resources_active("alpha", &hosts(&["r0n2", "x1", "x2"]), false).await.unwrap_err(),
    );
    assert!(text.contains("x1, x2") && !text.contains("r0n2"), "{text}");
    assert_eq!(service.facility("alpha").await.unwrap().0.deactivated, ["r0n0", "r0n1"], "nothing changed");

    service.set_resources_active("alpha", &hosts(&["r0n0"]), true).await.unwrap();
    assert_eq!(service.facility("alpha").await.unwrap().0.deactivated, ["r0n1"]);
    let missing = service.set_resources_active("omega", &hosts(&["r0n0"]), true).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound { kind: "facility", .. }), "{missing:?}");
}
on_both_stores!(activation);

async fn deactivated_hosts_are_never_chosen(backend: Backend) {
    let service = backend.service();
    let shape = Shape { racks: 1, hosts_per_rack: 4, ..Shape::default() };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();
    let off: Vec<String> = ["r0n0", "r0n2"].map(String::from).to_vec();
    service.set_resources_active("alpha", &off, false).await.unwrap();

    let r = service
        .realize_network("p", "e", "two", "rev", &chain(2, 0), Duration::Never, "u", &[])
        .await
        .unwrap();
    let mut used = common::hosts_of(&r);
    used.sort();
    assert_eq!(used, ["r0n1", "r0n3"]);
    let third = service
        .realize_network("p", "e", "three", "rev", &chain(1, 0), Duration::Never, "u", &[])
        .await
        .unwrap_err();
    assert!(matches!(third, Error::FailedPrecondition(_)), "{third:?}");

    service.set_resources_active("alpha", &off[..1], true).await.unwrap();
    let r = service
        .realize_network("p", "e", "three", "rev", &chain(1, 0), Duration::Never, "u", &[])
        .await
        .unwrap();
    assert_eq!(common::hosts_of(&r), ["r0n0"]);
}
on_both_stores!(deactivated_hosts_are_never_chosen);

async fn updates_must_keep_allocated_resources(backend: Backend) {
    let service = backend.service();
    let shape = Shape { racks: 2, hosts_per_rack: 2, ..Shape::default() };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();

    service.update_facility("alpha", Some("new:1".into()), None, None).await.unwrap();
    let (got, _) = service.facility("alpha").await.unwrap();
    assert_eq!(
        (got.address.as_str(), got.description.as_str(), got.ver),
        ("new:1", "test facility alpha", 2)
    );

    // Hold every host of the facility, with links across racks (ports, trunks, VLANs).
    let r = service
        .realize_network("p", "e", "all", "rev", &chain(4, common::GBPS), Duration::Never, "u", &[])
        .await
        .unwrap();
    assert_eq!(r.node_hosts.len(), 4);

    // A model with one rack fewer drops hosts r1n*, their ports and trunk1.
    let smaller = facility("alpha", &Shape { racks: 1, ..shape.clone() });
    let Error::FailedPrecondition(text) = service
        .update_facility("alpha", None, Some("smaller".into()), Some(smaller.clone()))
        .await
        .unwrap_err()
    else {
        panic!("expected failed precondition")
    };
    assert!(text.contains("host/alpha/r1n0") && text.contains("host/alpha/r1n1"), "{text}");
    assert!(text.contains("port/alpha/r1n0/eth"), "{text}");
    assert!(text.contains("all.e.p"), "{text}");
    assert!(!text.contains("r0n0"), "{text}");
    let (unchanged, model) = service.facility("alpha").await.unwrap();
    assert_eq!(unchanged.description, "test facility alpha", "a refused update changes nothing");
    assert_eq!(model.unwrap().resources.len(), facility("alpha", &shape).resources.len());

    // A bigger model keeps everything: accepted, and realizations see the new hosts.
    let bigger = facility("alpha", &Shape { racks: 3, ..shape.clone() });
    service.update_facility("alpha", None, Some("bigger".into()), Some(bigger)).await.unwrap();
    let (got, _) = service.facility("alpha").await.unwrap();
    assert_eq!((got.description.as_str(), got.ver), ("bigger", 3));
    let more = service
        .realize_network("p", "e", "more", "rev", &chain(2, 0), Duration::Never, "u", &[])
        .await
        .unwrap();
    assert!(common::hosts_of(&more).iter().all(|h| h.starts_with("r2")), "{:?}", more.node_hosts);

    // A model naming another facility is refused before anything happens.
    let text = violations(
        service.update_facility("alpha", None, None, Some(facility("other", &shape))).await.unwrap_err(),
    );
    assert!(text.contains("\"other\""), "{text}");

    // Once the realizations are gone, shrinking is fine.
    service.relinquish("p", "e", "all").await.unwrap();
    service.relinquish("p", "e", "more").await.unwrap();
    service.update_facility("alpha", None, None, Some(smaller)).await.unwrap();
    assert!(matches!(
        service.update_facility("omega", None, None, None).await.unwrap_err(),
        Error::NotFound { .. }
    ));
}
on_both_stores!(updates_must_keep_allocated_resources);

async fn deletion_waits_for_allocations(backend: Backend) {
    let service = backend.service();
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
    service
        .realize_network("p", "e", "r", "rev", &chain(2, common::GBPS), Duration::Never, "u", &[])
        .await
        .unwrap();
    let Error::FailedPrecondition(text) = service.delete_facility("alpha").await.unwrap_err() else {
        panic!("expected failed precondition")
    };
    assert!(text.contains("r.e.p"), "{text}");
    assert!(service.facility("alpha").await.is_ok());
    // The refused deletion left no change marker behind: realizing still works.
    service.realize_network("p", "e", "s", "rev", &chain(1, 0), Duration::Never, "u", &[]).await.unwrap();

    service.relinquish("p", "e", "r").await.unwrap();
    service.relinquish("p", "e", "s").await.unwrap();
    service.delete_facility("alpha").await.unwrap();
    assert!(matches!(service.facility("alpha").await.unwrap_err(), Error::NotFound { .. }));
    assert!(matches!(service.delete_facility("alpha").await.unwrap_err(), Error::NotFound { .. }));
    let none = service
        .realize_network("p", "e", "t", "rev", &chain(1, 0), Duration::Never, "u", &[])
        .await
        .unwrap_err();
    assert!(matches!(none, Error::FailedPrecondition(_)), "{none:?}");
    // The name is free again.
    service.register_facility(record("alpha"), facility("alpha", &Shape::default())).await.unwrap();
}
on_both_stores!(deletion_waits_for_allocations);

/// Every commissioned facility is part of one testbed: an experiment too big for one spans two.
async fn facilities_combine_into_one_testbed(backend: Backend) {
    let service = backend.service();
    let shape = Shape { racks: 1, ..Shape::default() };
    service.register_facility(record("alpha"), facility("alpha", &shape)).await.unwrap();
    service.register_facility(record("beta"), facility("beta", &shape)).await.unwrap();
    let network = common::network("x", &[common::NodeSpec::metal(); 6], &[]);
    let r = service.realize_network("p", "e", "r", "rev", &network, Duration::Never, "u", &[]).await.unwrap();
    let facilities: std::collections::BTreeSet<&str> = r.node_hosts.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(facilities.len(), 2, "6 hosts need both 4-host facilities: {:?}", r.node_hosts);
}
on_both_stores!(facilities_combine_into_one_testbed);
