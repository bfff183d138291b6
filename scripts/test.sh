#!/usr/bin/env bash
# The full test suite, exactly as CI runs it: set-up, formatting, lints, the Rust tests (real
# redb and etcd stores, real servers), the wire-compatibility check against mergetbapi, and the
# real `mergetb` Python client against a running trellisd.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A one-shot build gains nothing from incremental state, which would take gigabytes of disk.
if [[ "${CI:-}" == "true" ]]; then export CARGO_INCREMENTAL=0; fi

# Each step header also says how long the suite has run, so slow steps show in CI logs.
START=$SECONDS
step() { printf '\n=== %s (at %ds) ===\n' "$*" "$((SECONDS - START))"; }

step "set-up"
./scripts/setup.sh

step "format"
cargo fmt --all -- --check

# Clippy is the compiler of the workspace's own crates for the whole run (cargo applies
# RUSTC_WORKSPACE_WRAPPER to members only), so its lints, as errors, come out of the one build
# the tests use. A separate `cargo clippy` pass would check every dependency a second time:
# about four minutes of a CI run on two cores. Every later cargo command, including those in
# the Ceph and wire scripts, inherits the same compiler and so reuses this build.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" || {
  echo "test.sh: clippy-driver not found; install it with: rustup component add clippy" >&2
  exit 1
}
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "build, with clippy's lints as errors"
cargo build --workspace --all-targets --locked

step "rust tests"
cargo test --workspace --locked

step "blob store on a real single-node Ceph cluster"
services/blobs/tests/run-rados.sh

step "XDC volumes on a real single-node CephFS"
xdc/volumes/tests/run-cephfs.sh

step "wire compatibility with mergetbapi"
tests/compat/wire/run.sh .venv

step "mergetb Python client against trellisd"
.venv/bin/python -m pytest -q tests/compat/client

echo
echo "all tests passed in $((SECONDS - START))s"
