//! Repository hygiene: every crate is on the architecture map, and dependencies point from the
//! edge inward (portal → services → store/types), never back.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (crate name, folder, names of workspace crates it depends on at runtime)
fn crates() -> Vec<(String, String, Vec<String>)> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members: Vec<String> = manifest
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    members
        .into_iter()
        .map(|folder| {
            let text = std::fs::read_to_string(root().join(&folder).join("Cargo.toml")).unwrap();
            let name =
                text.lines().find_map(|l| l.strip_prefix("name = ")).unwrap().trim_matches('"').to_owned();
            // Runtime dependencies only: the [dependencies] table, not dev- or build-.
            let deps = text
                .split("\n[dependencies]\n")
                .nth(1)
                .unwrap_or("")
                .split("\n[")
                .next()
                .unwrap()
                .lines()
                .filter_map(|l| l.split(['.', ' ', '=']).next())
                .filter(|d| d.starts_with("trellis") && !d.is_empty())
                .map(str::to_owned)
                .collect();
            (name, folder, deps)
        })
        .collect()
}

#[test]
fn every_crate_is_on_the_architecture_map() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for (name, folder, _) in crates() {
        assert!(map.contains(&format!("`{name}`")), "ARCHITECTURE.md does not mention crate {name}");
        assert!(map.contains(&format!("`{folder}`")), "ARCHITECTURE.md does not mention folder {folder}");
    }
}

#[test]
fn dependencies_point_inward() {
    // Layers from the inside out; a crate may depend only on crates of a lower layer.
    let layer = |name: &str| match name {
        "trellis-types"
        | "trellis-store"
        | "trellis-policy"
        | "trellis-api"
        | "trellis-testkit"
        | "trellis-blobs"
        | "trellis-facility-api"
        | "trellis-crun" => 0,
        "trellis-identity"
        | "trellis-compiler"
        | "trellis-embed"
        | "trellis-credentials"
        | "trellis-pki"
        | "trellis-facility"
        | "trellis-xdc-runtime"
        | "trellis-nat"
        | "trellis-jump"
        | "trellis-xdc-proxy"
        | "trellis-topology" => 1,
        "trellis-workspace" | "trellis-model" | "trellis-ingress" | "trellis-volumes" => 2,
        "trellis-realize" => 3,
        "trellis-materialize" => 4,
        "trellis-xdc" | "trellis-ingress-controller" => 5,
        "trellis-api-server" | "trellis-web" => 6,
        _ => 7, // binaries and benches at the edge
    };
    for (name, _, deps) in crates() {
        for dep in deps {
            assert!(layer(&dep) < layer(&name), "{name} depends on {dep}, which is not further inside");
        }
    }
    // The web portal reaches the portal only through the gRPC API (and so through its policy
    // gate): no service, store or server crate. The pure policy crate is allowed for checking
    // a pasted policy's syntax, which decides nothing.
    for (name, _, deps) in crates() {
        if name == "trellis-web" {
            let allowed = ["trellis-api", "trellis-topology", "trellis-policy"];
            let inner: Vec<_> = deps.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
            assert!(inner.is_empty(), "trellis-web must use only the API, not {inner:?}");
        }
    }
    // The policy stays pure: no wire, web or store crates.
    let policy = std::fs::read_to_string(root().join("policy/Cargo.toml")).unwrap();
    for forbidden in ["tonic", "axum", "trellis-store", "hyper"] {
        assert!(!policy.contains(forbidden), "policy must not depend on {forbidden}");
    }
}
