#!/usr/bin/env bash
# Runs trellis-blobs' tests with the RADOS backend against a throwaway Ceph cluster:
# brings one up in a temporary directory (scripts/ceph-up.sh, no MDS: blobs need only RADOS),
# runs `cargo test -p trellis-blobs --features rados` against it, and always tears it down.
# Extra arguments go to cargo test (e.g. `-- --nocapture` to see the 300 MiB throughput lines).
#
# Needs the Debian packages listed in scripts/ceph-up.sh plus librados-dev (scripts/setup.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/trellis-ceph.XXXXXX")
cleanup() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -d "$DIR/log" ]; then
    echo "run-rados: failed (exit $rc); tail of the OSD and mon logs:" >&2
    tail -n 20 "$DIR"/log/ceph-osd.*.log "$DIR"/log/ceph-mon.*.log 2>/dev/null >&2 || true
  fi
  scripts/ceph-down.sh "$DIR" || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(now)
CONF=$(scripts/ceph-up.sh --no-mds "$DIR")
t1=$(now)
echo "run-rados: cluster up in $(secs "$t0" "$t1") s ($CONF)" >&2

TRELLIS_CEPH_CONF=$CONF cargo test -p trellis-blobs --features rados "$@"
t2=$(now)
echo "run-rados: tests took $(secs "$t1" "$t2") s" >&2
