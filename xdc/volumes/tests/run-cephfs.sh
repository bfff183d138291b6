#!/usr/bin/env bash
# Runs trellis-volumes' CephFS tests against a throwaway Ceph cluster: brings one up in a
# temporary directory (scripts/ceph-up.sh, with an MDS and the CephFS "cephfs"), runs the
# `#[ignore]`d tests of tests/cephfs.rs with TRELLIS_TEST_CEPH_CONF set, and always tears the
# cluster down (scripts/ceph-down.sh also unmounts the ceph-fuse mounts the tests left below it).
# Extra arguments go to the test binary (e.g. `--nocapture`).
#
# Needs root (mounts, chown), /dev/fuse, and the Debian packages listed in scripts/ceph-up.sh
# plus ceph-fuse and fuse3 (scripts/setup.sh installs them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

for tool in ceph-fuse setpriv umount; do
  command -v "$tool" >/dev/null || { echo "run-cephfs: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done

# Build first, so the cluster is not kept waiting for the compiler.
cargo test --workspace --test cephfs --no-run

DIR=$(mktemp -d "${TMPDIR:-/tmp}/trellis-cephfs.XXXXXX")
# The tests mount below DIR and write there as unprivileged users, who must be able to reach
# the mounts (traverse only; the keyrings inside stay 0600).
chmod 0711 "$DIR"
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$DIR/log" ]; then
    echo "run-cephfs: failed (exit $rc); tail of the MDS and mgr logs:" >&2
    tail -n 20 "$DIR"/log/ceph-mds.*.log "$DIR"/log/ceph-mgr.*.log 2>/dev/null >&2 || true
  fi
  scripts/ceph-down.sh "$DIR" || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(now)
CONF=$(scripts/ceph-up.sh "$DIR")
t1=$(now)
echo "run-cephfs: cluster up in $(secs "$t0" "$t1") s ($CONF)" >&2

TRELLIS_TEST_CEPH_CONF=$CONF cargo test --workspace --test cephfs -- --include-ignored "$@"
t2=$(now)
echo "run-cephfs: tests took $(secs "$t1" "$t2") s" >&2
