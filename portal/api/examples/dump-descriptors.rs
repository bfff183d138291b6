//! Writes `trellis_api::FILE_DESCRIPTOR_SET` to the file given as argument.
//!
//! The wire-compatibility check (`tests/compat/wire/`) loads this file into
//! Python's `google.protobuf` to compare our protos with `mergetbapi`:
//! `cargo run -p trellis-api --example dump-descriptors -- /tmp/trellis.pb`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: dump-descriptors <output-file>");
        return ExitCode::from(2);
    };
    match std::fs::write(&path, trellis_api::FILE_DESCRIPTOR_SET) {
        Ok(()) => {
            println!("wrote {} bytes to {}", trellis_api::FILE_DESCRIPTOR_SET.len(), path.to_string_lossy());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("dump-descriptors: writing {}: {err}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
