//! Compiles `proto/` with `protox` (pure Rust; no `protoc`) into prost messages and tonic stubs.

use std::error::Error;

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let fds = protox::Compiler::new([PROTO_ROOT])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(["trellis/facility/v1/facility.proto"])?
        .file_descriptor_set();
    // Default stubs answer UNIMPLEMENTED, so servers written before an RPC was added (test
    // doubles, other facilities) keep compiling and tell the portal what they cannot do.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
