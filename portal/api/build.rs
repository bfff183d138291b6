//! Build script for `trellis-api`.
//!
//! Compiles the derived MergeTB protos in `proto/` with `protox` (pure Rust,
//! so builds need no `protoc`), then writes three things into `OUT_DIR`:
//! prost messages plus tonic clients and servers (one `<package>.rs` each),
//! `trellis_api_methods.rs` (the `ALL_METHODS` table), and
//! `trellis_api_descriptor.bin` (the encoded `FileDescriptorSet`).

use std::env;
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use prost::Message as _;
use prost_types::FileDescriptorSet;

/// Include root for the derived protos (see `scripts/derive-protos.py`).
const PROTO_ROOT: &str = "proto";
/// Entry files; everything they import is compiled too.
const PROTOS: &[&str] = &["portal/v1/portal.proto", "reconcile/reconcile.proto", "xir/xir.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    // A directory makes cargo rerun when any file below it changes.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let fds = protox::Compiler::new([PROTO_ROOT])?
        .include_imports(true)
        // Source info carries the proto comments into the generated rustdoc.
        .include_source_info(true)
        .open_files(PROTOS)?
        .file_descriptor_set();

    // The embedded copy drops source info: reflection and the wire check do
    // not need comments, and it keeps the binary a lot smaller.
    let mut slim = fds.clone();
    for file in &mut slim.file {
        file.source_code_info = None;
    }
    fs::write(out_dir.join("trellis_api_descriptor.bin"), slim.encode_to_vec())?;
    fs::write(out_dir.join("trellis_api_methods.rs"), method_table(&fds)?)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Unimplemented RPCs answer `Unimplemented` instead of forcing every
        // server to spell out all 156 methods.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

/// Renders `ALL_METHODS` as Rust source, in descriptor order.
fn method_table(fds: &FileDescriptorSet) -> Result<String, Box<dyn Error>> {
    let mut out = String::from(
        "/// Every RPC of every service in the compiled protos, in descriptor order.\n\
         pub const ALL_METHODS: &[MethodInfo] = &[\n",
    );
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            let full_service = format!("{package}.{}", service.name());
            for method in &service.method {
                let path = format!("/{full_service}/{}", method.name());
                writeln!(
                    out,
                    "    MethodInfo {{ service: {:?}, method: {:?}, path: {:?}, input: {:?}, \
                     output: {:?}, client_streaming: {}, server_streaming: {} }},",
                    full_service,
                    method.name(),
                    path,
                    method.input_type().trim_start_matches('.'),
                    method.output_type().trim_start_matches('.'),
                    method.client_streaming(),
                    method.server_streaming(),
                )?;
            }
        }
    }
    out.push_str("];\n");
    Ok(out)
}
