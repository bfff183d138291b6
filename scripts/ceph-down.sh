#!/usr/bin/env bash
# Stops a cluster that scripts/ceph-up.sh started in DIR and removes DIR (unless --keep).
# It kills only the PIDs recorded in DIR/run/*.fgpid, and only while that PID's command line still
# names DIR/ceph.conf (so a recycled PID is never hit). Order: mds, osd, mgr, mon; SIGTERM, up to
# 10 s grace, then SIGKILL. ceph-fuse mounts below DIR are unmounted first, since a mount of a dead
# MDS hangs whoever touches it.
#
# Usage:  scripts/ceph-down.sh [--keep] DIR
# Needs only coreutils (and fusermount, from fuse3, if something was mounted below DIR).
set -euo pipefail

KEEP=0
if [ "${1:-}" = "--keep" ]; then KEEP=1; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--keep] DIR" >&2
  exit 2
fi
if [ ! -d "$1" ]; then
  echo "ceph-down: $1 does not exist; nothing to do" >&2
  exit 0
fi
DIR=$(cd "$1" && pwd)
CONF=$DIR/ceph.conf

# ceph-fuse mounts below DIR (field 2 of /proc/mounts is the mount point, field 3 the type).
while read -r _ mnt fstype _; do
  case "$fstype:$mnt" in
    fuse.ceph-fuse:"$DIR"/*)
      echo "ceph-down: unmounting $mnt" >&2
      fusermount3 -u -z "$mnt" 2>/dev/null || fusermount -u -z "$mnt" 2>/dev/null || umount -l "$mnt" || true
      ;;
  esac
done </proc/mounts

# ours PID: true while PID is alive and is a daemon of this cluster.
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$CONF"; }

pids=()
for kind in mds osd mgr mon; do
  for f in "$DIR"/run/"$kind".*.fgpid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
done

deadline=$(($(date +%s) + 10))
for pid in "${pids[@]}"; do
  while ours "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if ours "$pid"; then
    echo "ceph-down: PID $pid did not stop after SIGTERM; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
echo "ceph-down: stopped ${#pids[@]} daemon(s)" >&2

if [ "$KEEP" = 0 ]; then
  rm -rf "$DIR"
fi
