//! Wire types and gRPC stubs for the MergeTB portal v1 API, as spoken by Trellis.
//!
//! Trellis must serve the unmodified `mergetb` Python client, so this crate
//! speaks exactly Merge's protocol: the same protobuf packages, services,
//! method paths, streaming kinds, field numbers and field types.
//! Merge's original `.proto` sources are not published; the files under
//! `proto/` are derived from the MIT-licensed PyPI package `mergetbapi` 1.6.0
//! by `scripts/derive-protos.py` and checked in as the source of truth.
//! `tests/compat/wire/` verifies them against `mergetbapi` byte for byte.
//!
//! This crate is types and generated code only: it does no I/O and holds no
//! handlers.
//! Servers implement the generated `*_server` traits elsewhere
//! (`trellis-api-server`); every RPC has a default body answering
//! `Unimplemented`, so a server overrides only what it supports.
//!
//! # Layout
//!
//! - `proto/`: the derived `.proto` files, one per package
//!   (`portal/v1/portal.proto`, `xir/xir.proto`, `reconcile/reconcile.proto`).
//! - `build.rs`: compiles them with `protox` (no `protoc` needed) and
//!   `tonic-prost-build`, and generates [`ALL_METHODS`] and
//!   [`FILE_DESCRIPTOR_SET`].
//! - [`portal::v1`]: the portal API: messages, plus for each service a
//!   `<service>_client` and a `<service>_server` module (for example
//!   [`portal::v1::workspace_server::Workspace`]).
//! - [`xir`]: Merge's experiment and testbed model (messages and enums only).
//! - [`reconcile`]: Merge's task and status records (messages and enums only).
//! - [`MethodInfo`], [`ALL_METHODS`], [`find_method`]: a table of every RPC,
//!   for code that must cover all of them (policy, coverage tests, routing).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded `google.protobuf.FileDescriptorSet`,
//!   for gRPC reflection and tests.
//!
//! # Naming
//!
//! betterproto flattened Merge's nested types; the derived protos re-nest an
//! enum only where proto scoping requires it.
//! So `portal::v1::member::Role` and `portal::v1::task_status::StatusType`
//! are nested, while `portal::v1::UserState` is top-level.
//! Field and enum value names follow the Python package's spelling.
//! `google.protobuf` well-known types map to `prost_types`.

/// Generated code for the `portal.v1` protobuf package.
pub mod portal {
    /// The MergeTB portal v1 API: messages, services, clients and servers.
    // Merge documented only some of its fields; generated items stay undocumented.
    #[allow(missing_docs)]
    pub mod v1 {
        tonic::include_proto!("portal.v1");
    }
}

/// Generated code for the `xir` protobuf package (Merge's model format).
// Merge documented only some of its fields; generated items stay undocumented.
#[allow(missing_docs)]
pub mod xir {
    tonic::include_proto!("xir");
}

/// Generated code for the `reconcile` protobuf package (task status records).
// Merge documented only some of its fields; generated items stay undocumented.
#[allow(missing_docs)]
pub mod reconcile {
    tonic::include_proto!("reconcile");
}

/// One RPC of the API, as described by the compiled descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MethodInfo {
    /// Fully-qualified service name, e.g. `portal.v1.Workspace`.
    pub service: &'static str,
    /// Method name, e.g. `CreateProject`.
    pub method: &'static str,
    /// The gRPC (HTTP/2) path, e.g. `/portal.v1.Workspace/CreateProject`.
    pub path: &'static str,
    /// Fully-qualified request message type, without a leading dot.
    pub input: &'static str,
    /// Fully-qualified response message type, without a leading dot.
    pub output: &'static str,
    /// Whether the client sends a stream of requests.
    pub client_streaming: bool,
    /// Whether the server sends a stream of responses.
    pub server_streaming: bool,
}

include!(concat!(env!("OUT_DIR"), "/trellis_api_methods.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of all compiled protos,
/// including the well-known types they import (source info stripped).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/trellis_api_descriptor.bin"));

/// Looks up an RPC by its gRPC path (`/portal.v1.Workspace/CreateProject`).
pub fn find_method(path: &str) -> Option<&'static MethodInfo> {
    ALL_METHODS.iter().find(|m| m.path == path)
}
