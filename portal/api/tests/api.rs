//! Checks on the generated API: method table, descriptor set, default stubs
//! and a few hand-encoded messages pinned to Merge's field numbers.
//! Full wire compatibility with `mergetbapi` is checked in `tests/compat/wire/`.

use std::collections::BTreeSet;

use prost::Message;
use prost_types::FileDescriptorSet;
use trellis_api::portal::v1 as pb;
use trellis_api::{ALL_METHODS, FILE_DESCRIPTOR_SET, find_method};

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap()
}

#[test]
fn method_table_matches_descriptors() {
    let fds = descriptors();
    let mut from_fds = BTreeSet::new();
    for file in &fds.file {
        for svc in &file.service {
            for m in &svc.method {
                from_fds.insert(format!("/{}.{}/{}", file.package(), svc.name(), m.name()));
            }
        }
    }
    let from_table: BTreeSet<String> = ALL_METHODS.iter().map(|m| m.path.to_owned()).collect();
    assert_eq!(from_table.len(), ALL_METHODS.len(), "duplicate paths");
    assert_eq!(from_fds, from_table);
    for m in ALL_METHODS {
        assert_eq!(m.path, format!("/{}/{}", m.service, m.method));
        assert!(!m.input.starts_with('.') && !m.output.starts_with('.'));
    }
}

#[test]
fn method_table_knows_merge_paths_and_streaming() {
    let create = find_method("/portal.v1.Workspace/CreateProject").unwrap();
    assert_eq!(create.input, "portal.v1.CreateProjectRequest");
    assert_eq!(create.output, "portal.v1.CreateProjectResponse");
    assert!(!create.client_streaming && !create.server_streaming);

    let put = find_method("/portal.v1.Artifact/ArtifactPut").unwrap();
    assert!(put.client_streaming && !put.server_streaming);
    let get = find_method("/portal.v1.Artifact/ArtifactGet").unwrap();
    assert!(!get.client_streaming && get.server_streaming);

    assert!(find_method("/portal.v1.Workspace/NoSuchMethod").is_none());
}

#[test]
fn every_generated_server_is_in_the_table() {
    let servers = [
        pb::alloc_server::SERVICE_NAME,
        pb::artifact_server::SERVICE_NAME,
        pb::commission_server::SERVICE_NAME,
        pb::communications_server::SERVICE_NAME,
        pb::cred_server::SERVICE_NAME,
        pb::deploy_server::SERVICE_NAME,
        pb::identity_server::SERVICE_NAME,
        pb::key_value_server::SERVICE_NAME,
        pb::materialize_server::SERVICE_NAME,
        pb::mergefs_server::SERVICE_NAME,
        pb::model_server::SERVICE_NAME,
        pb::realize_server::SERVICE_NAME,
        pb::wireguard_server::SERVICE_NAME,
        pb::workspace_server::SERVICE_NAME,
        pb::xdc_server::SERVICE_NAME,
    ];
    let in_table: BTreeSet<&str> = ALL_METHODS.iter().map(|m| m.service).collect();
    assert_eq!(in_table, servers.into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn descriptor_set_holds_packages_and_imports() {
    let names: BTreeSet<String> = descriptors().file.iter().map(|f| f.name().to_owned()).collect();
    for want in [
        "portal/v1/portal.proto",
        "xir/xir.proto",
        "reconcile/reconcile.proto",
        "google/protobuf/timestamp.proto",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
}

/// Hand-encoded bytes pin field numbers and wire types, independent of prost.
#[test]
fn messages_use_merge_field_numbers() {
    let member =
        pb::Member { role: pb::member::Role::Creator as i32, state: pb::member::State::Active as i32 };
    // field 2 varint 2, field 3 varint 1
    assert_eq!(member.encode_to_vec(), [0x10, 0x02, 0x18, 0x01]);

    // TaskTree.highest_status (1, enum) and num_child_tasks (3, int64 -1 as 10-byte varint)
    let mut bytes = vec![0x08, 0x06, 0x18];
    bytes.extend([0xff; 9]);
    bytes.push(0x01);
    let tree = pb::TaskTree::decode(bytes.as_slice()).unwrap();
    assert_eq!(tree.highest_status(), pb::task_status::StatusType::Error);
    assert_eq!(tree.num_child_tasks, -1);
}

#[test]
fn oneof_round_trips() {
    let ep = pb::Endpoint {
        interface: Some(pb::endpoint::Interface::Vlan(pb::VlanInterface::default())),
        ..Default::default()
    };
    let back = pb::Endpoint::decode(ep.encode_to_vec().as_slice()).unwrap();
    assert_eq!(back, ep);
    // Field 7 (vlan), length-delimited, empty.
    assert!(ep.encode_to_vec().windows(2).any(|w| w == [0x3a, 0x00]));
}

struct NothingImplemented;

impl pb::workspace_server::Workspace for NothingImplemented {}

#[tokio::test]
async fn default_stubs_answer_unimplemented() {
    use pb::workspace_server::Workspace;
    let err = NothingImplemented.health(tonic::Request::new(pb::HealthRequest {})).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}
