//! The Realize, Commission and Alloc services through real gRPC clients: who may do what, the
//! realization's content and lifecycle, and the errors users see.

mod common;

use std::sync::Arc;

use common::*;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::alloc_client::AllocClient;
use trellis_api::portal::v1::commission_client::CommissionClient;
use trellis_api::portal::v1::model_client::ModelClient;
use trellis_api::portal::v1::realize_client::RealizeClient;
use trellis_api_server::PortalConfig;
use trellis_blobs::local::LocalBlobStore;
use trellis_compiler::{Compiler, CompilerConfig};
use trellis_embed::generate::{FacilitySpec, facility};
use trellis_model::ModelService;
use trellis_store::Store;
use trellis_store::embedded::EmbeddedStore;

const PAIR: &str = "from mergexp import *\nnet = Network('pair')\na, b = [net.node(n) for n in ['a', 'b']]\nnet.connect([a, b])\nexperiment(net)\n";
const HUGE: &str =
    "from mergexp import *\nnet = Network('huge')\nnet.node('giant', proc.cores >= 512)\nexperiment(net)\n";

struct Clients {
    ws: Ws,
    realize: RealizeClient<InterceptedService<Channel, Bearer>>,
    commission: CommissionClient<InterceptedService<Channel, Bearer>>,
    alloc: AllocClient<InterceptedService<Channel, Bearer>>,
    model: ModelClient<InterceptedService<Channel, Bearer>>,
}

async fn clients(portal: &TestPortal, token: String) -> Clients {
    let ch = Channel::from_shared(format!("http://{}", portal.addr)).unwrap().connect().await.unwrap();
    let bearer = Bearer(Some(token.clone()));
    let (ws, _) = portal.clients(Some(token)).await;
    Clients {
        ws,
        realize: RealizeClient::with_interceptor(ch.clone(), bearer.clone()),
        commission: CommissionClient::with_interceptor(ch.clone(), bearer.clone()),
        alloc: AllocClient::with_interceptor(ch.clone(), bearer.clone()),
        model: ModelClient::with_interceptor(ch, bearer),
    }
}

async fn portal(dir: &std::path::Path) -> TestPortal {
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.join("models.redb")).unwrap());
    let blobs = LocalBlobStore::open(&dir.join("blobs")).unwrap();
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    let compiler = Compiler::new(CompilerConfig::new(venv)).map_err(|e| e.to_string());
    let models = ModelService::new(store, Arc::new(blobs), compiler);
    TestPortal::start_with(PortalConfig { models: Some(models), ..Default::default() }).await
}

fn realize_request(realization: &str) -> pb::RealizeRequest {
    pb::RealizeRequest {
        project: "ap".into(),
        experiment: "e".into(),
        realization: realization.into(),
        branch: "master".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realize_lifecycle_under_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let portal = portal(dir.path()).await;
    portal.user("alice", true).await;
    portal.user("bob", true).await;
    let mut admin = clients(&portal, portal.login("admin", ADMIN_PASSWORD).await).await;
    let mut alice = clients(&portal, portal.login("alice", PASSWORD).await).await;
    let mut bob = clients(&portal, portal.login("bob", PASSWORD).await).await;

    // Commissioning is for administrators.
    let mut spec = FacilitySpec::new("lab", 1, 4);
    spec.virtualized = true;
    let register = |name: &str| pb::RegisterFacilityRequest {
        facility: Some(pb::Facility {
            name: name.into(),
            address: "lab.example".into(),
            ..Default::default()
        }),
        model: Some(facility(&spec)),
    };
    let denied = bob.commission.register_facility(register("lab")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    admin.commission.register_facility(register("lab")).await.unwrap();
    let listed = bob.commission.get_facilities(pb::GetFacilitiesRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.facilities.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["lab"]);

    // A private experiment of alice's.
    alice
        .ws
        .create_project(pb::CreateProjectRequest {
            user: "alice".into(),
            project: Some(pb::Project {
                name: "ap".into(),
                access_mode: pb::AccessMode::Private as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    alice
        .ws
        .create_experiment(pb::CreateExperimentRequest {
            experiment: Some(pb::Experiment {
                name: "e".into(),
                project: "ap".into(),
                access_mode: pb::AccessMode::Private as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let push = |model: &str, tag: &str| pb::PushRequest {
        project: "ap".into(),
        experiment: "e".into(),
        model: model.into(),
        branch: "master".into(),
        tag: tag.into(),
    };
    alice.model.push(push(HUGE, "huge")).await.unwrap();
    alice.model.push(push(PAIR, "")).await.unwrap();

    // Bad requests name what is wrong.
    let mut both = realize_request("r0");
    both.tag = "huge".into();
    let err = alice.realize.realize(both).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut bad_duration = realize_request("r0");
    bad_duration.duration = Some(pb::Duration { when: 0, duration: "forever".into() });
    let err = alice.realize.realize(bad_duration).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // An outsider may not realize it; an unrealizable revision says which node and constraint.
    let err = bob.realize.realize(realize_request("r0")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let mut huge = realize_request("big");
    huge.branch.clear();
    huge.tag = "huge".into();
    let err = alice.realize.realize(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("giant") && err.message().contains("cores"), "{}", err.message());

    // Realize, then read it back.
    let made = alice.realize.realize(realize_request("r0")).await.unwrap().into_inner();
    let rz = made.realization.unwrap();
    assert_eq!((rz.id.as_str(), rz.eid.as_str(), rz.pid.as_str()), ("r0", "e", "ap"));
    assert_eq!(rz.nodes.len(), 2);
    assert!(
        rz.nodes
            .values()
            .all(|n| n.facility == "lab" && n.resource.as_ref().is_some_and(|r| !r.id.is_empty()))
    );
    assert!(rz.expires.is_some(), "a default duration applies");
    let got = alice
        .realize
        .get_realization(pb::GetRealizationRequest {
            project: "ap".into(),
            experiment: "e".into(),
            realization: "r0".into(),
            status_ms: -1,
        })
        .await
        .unwrap()
        .into_inner();
    let status = got.status.unwrap();
    assert_eq!(status.highest_status, pb::task_status::StatusType::Success as i32);
    assert_eq!(status.subtasks.len(), 3, "one task per node and link");
    let node_a = &got.result.unwrap().realization.unwrap().nodes["a"];
    assert_eq!(node_a.node.as_ref().unwrap().id, "a", "the node's model comes with it");

    // Listing follows the policy: bob sees nothing of alice's private experiment.
    let list = |filter: pb::FilterMode| pb::GetRealizationsRequest { filter: filter as i32, summary: true };
    let of = |r: pb::GetRealizationsResponse| -> Vec<String> {
        r.results.into_iter().map(|x| x.summary.unwrap().id).collect()
    };
    assert_eq!(
        of(alice.realize.get_realizations(list(pb::FilterMode::ByUser)).await.unwrap().into_inner()),
        ["r0"]
    );
    assert!(
        of(bob.realize.get_realizations(list(pb::FilterMode::ByAll)).await.unwrap().into_inner()).is_empty()
    );
    assert_eq!(
        of(admin.realize.get_realizations(list(pb::FilterMode::ByAll)).await.unwrap().into_inner()),
        ["r0"]
    );

    // Extend it; bob may not; the allocation table is for administrators.
    let update = |d: &str| pb::UpdateRealizationRequest {
        project: "ap".into(),
        experiment: "e".into(),
        realization: "r0".into(),
        duration: Some(pb::Duration { when: pb::DurationCode::Given as i32, duration: d.into() }),
    };
    let expires =
        alice.realize.update_realization(update("30d")).await.unwrap().into_inner().expires.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expires.seconds - (now + 30 * 86400)).abs() < 60, "{expires:?}");
    assert_eq!(
        bob.realize.update_realization(update("1d")).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let err = alice.alloc.fetch(pb::FetchAllocationTableRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let table =
        admin.alloc.fetch(pb::FetchAllocationTableRequest {}).await.unwrap().into_inner().table.unwrap();
    assert!(table.resource.values().flat_map(|l| &l.value).any(|a| a.mzid == "r0.e.ap"));

    // Relinquish: bob may not, alice may; then it is gone and the table is empty.
    let relinquish =
        || pb::RelinquishRequest { project: "ap".into(), experiment: "e".into(), realization: "r0".into() };
    assert_eq!(bob.realize.relinquish(relinquish()).await.unwrap_err().code(), Code::PermissionDenied);
    alice.realize.relinquish(relinquish()).await.unwrap();
    let err = alice.realize.relinquish(relinquish()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let table =
        admin.alloc.fetch(pb::FetchAllocationTableRequest {}).await.unwrap().into_inner().table.unwrap();
    assert!(table.resource.is_empty(), "{table:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_administered_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let portal = portal(dir.path()).await;
    portal.user("carol", true).await;
    let mut admin = clients(&portal, portal.login("admin", ADMIN_PASSWORD).await).await;
    let mut carol = clients(&portal, portal.login("carol", PASSWORD).await).await;
    admin
        .commission
        .register_facility(pb::RegisterFacilityRequest {
            facility: Some(pb::Facility { name: "lab".into(), ..Default::default() }),
            model: Some(facility(&FacilitySpec::new("lab", 1, 2))),
        })
        .await
        .unwrap();
    let create = pb::CreatePoolRequest {
        name: "research".into(),
        facilities: vec!["lab".into()],
        ..Default::default()
    };
    assert_eq!(carol.alloc.create_pool(create.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    admin.alloc.create_pool(create.clone()).await.unwrap();
    assert_eq!(admin.alloc.create_pool(create).await.unwrap_err().code(), Code::AlreadyExists);

    // Members must exist; removing what is not there says so.
    let err = admin
        .alloc
        .add_project(pb::AddProjectToPoolRequest { name: "research".into(), project: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    admin
        .alloc
        .add_project(pb::AddProjectToPoolRequest { name: "research".into(), project: "carol".into() })
        .await
        .unwrap();
    let err = admin
        .alloc
        .remove_organization(pb::RemoveOrganizationFromPoolRequest {
            name: "research".into(),
            organization: "none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let updated = admin
        .alloc
        .update_pool_resources(pb::UpdatePoolResourcesRequest {
            pool: "research".into(),
            facility: "lab".into(),
            resources: vec!["r0h0".into()],
            patchstrategy: Some(pb::PatchStrategy { strategy: pb::PatchStrategyStrategy::Expand as i32 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.resources, ["r0h0"]);
    let pool =
        carol.alloc.get_pool(pb::GetPoolRequest { name: "research".into() }).await.unwrap().into_inner();
    let pool = pool.pool.unwrap();
    assert_eq!(pool.projects, ["carol"]);
    assert_eq!(pool.facilities["lab"].resources, ["r0h0"]);
    admin.alloc.delete_pool(pb::DeletePoolRequest { name: "research".into() }).await.unwrap();
    let err = carol.alloc.get_pool(pb::GetPoolRequest { name: "research".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}
