#!/usr/bin/env bash
# Wire-compatibility check of trellis-api against the PyPI package mergetbapi.
#
# Usage: tests/compat/wire/run.sh [VENV]   (default: <workspace>/.venv)
# VENV must have mergetbapi==1.6.0 (which brings betterproto) and protobuf.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="${1:-$root/.venv}"
python="$venv/bin/python"

if ! "$python" -c 'import mergetbapi, betterproto, google.protobuf' 2>/dev/null; then
    echo "run.sh: $python cannot import mergetbapi, betterproto and google.protobuf" >&2
    echo "run.sh: create it with: python3 -m venv $venv && $venv/bin/pip install mergetbapi==1.6.0 protobuf" >&2
    exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The checked-in protos must be what the derivation script produces today.
"$python" "$root/scripts/derive-protos.py" --check

# No `-p`: features resolve across the workspace, as in the full build, so nothing is rebuilt.
cargo run --quiet --manifest-path "$root/Cargo.toml" --example dump-descriptors -- "$tmp/trellis.pb"
"$python" "$here/check_wire.py" "$tmp/trellis.pb"
