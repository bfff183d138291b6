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

step "build"
cargo build --workspace --all-targets --locked

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p trellis-blobs --features rados --all-targets --locked -- -D warnings

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
