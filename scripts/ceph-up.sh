#!/usr/bin/env bash
# Brings up a throwaway single-node Ceph (Pacific 16.2) cluster on loopback, entirely inside DIR:
# one mon, one mgr, one OSD (bluestore on a sparse 10 GiB file) and, unless --no-mds, one MDS with a
# CephFS volume named "cephfs". No cephadm, no systemd: every daemon runs in the foreground under
# setsid, and its PID goes to DIR/run/<name>.fgpid so scripts/ceph-down.sh can stop exactly those.
#
# Usage:  scripts/ceph-up.sh [--no-mds] DIR
#   Progress goes to stderr; the last line on stdout is the path of DIR/ceph.conf, so
#   `CONF=$(scripts/ceph-up.sh "$DIR")` works. Then use `ceph -c "$CONF" ...` or CEPH_CONF="$CONF".
#   The admin keyring is DIR/ceph.client.admin.keyring (found through the conf).
#   On failure the daemons started so far are stopped and DIR is kept for its logs (DIR/log).
#
# Debian 12 packages this needs (scripts/setup.sh installs them):
#   ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common uuid-runtime
# and, to build trellis-blobs with --features rados: librados-dev.
#
# Recipe and pitfalls: shared/reference/infra.md §1. The ones that shaped this script:
#   - the mgr's python modules need a valid stderr, hence -f + setsid + redirected output;
#   - [client] admin_socket carries $pid, or a second client process fails to bind its socket;
#   - mon_data_avail_warn is lowered, or a disk under 30 % free gives HEALTH_WARN;
#   - pg autoscale off keeps the PG count (and the time to active+clean) small;
#   - `ceph mds stat` (not `ceph fs status`, which has colour codes) tells when the MDS is active.
set -euo pipefail

WITH_MDS=1
if [ "${1:-}" = "--no-mds" ]; then WITH_MDS=0; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--no-mds] DIR" >&2
  exit 2
fi
for tool in ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool uuidgen; do
  command -v "$tool" >/dev/null || { echo "ceph-up: $tool not found; install: ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common uuid-runtime" >&2; exit 1; }
done
if [ "$WITH_MDS" = 1 ] && ! command -v ceph-mds >/dev/null; then
  echo "ceph-up: ceph-mds not found (install ceph-mds, or pass --no-mds)" >&2
  exit 1
fi

mkdir -p "$1"
DIR=$(cd "$1" && pwd)
CONF=$DIR/ceph.conf
IP=127.0.0.1
TIMEOUT=${CEPH_UP_TIMEOUT:-180}   # seconds for each wait below
START=$(date +%s.%N)

log() { printf 'ceph-up: [%5.1fs] %s\n' "$(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }

if [ -e "$CONF" ]; then
  echo "ceph-up: $CONF already exists; run scripts/ceph-down.sh $DIR first" >&2
  exit 1
fi

# A port nobody listens on, so that several clusters (or a system Ceph) can coexist on one host.
# Below the Linux ephemeral range (32768+), and away from the OSDs' default 6800-7300.
port_free() { ! (exec 3<>"/dev/tcp/$IP/$1") 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if port_free "$p" && [ "$p" != "${1:-}" ]; then echo "$p"; return 0; fi
  done
  echo "ceph-up: no free port found" >&2
  return 1
}
V2_PORT=${CEPH_MON_V2_PORT:-$(pick_port)}
V1_PORT=${CEPH_MON_V1_PORT:-$(pick_port "$V2_PORT")}
MON_ADDR="[v2:$IP:$V2_PORT,v1:$IP:$V1_PORT]"

# Stops what this run started if a later step fails; ceph-down.sh knows how (PIDs in DIR/run).
on_error() {
  local rc=$?
  echo "ceph-up: FAILED (exit $rc); last lines of the logs in $DIR/log:" >&2
  for f in "$DIR"/log/ceph-{mon,mgr,osd,mds}.*.log "$DIR"/log/*.mkfs; do
    [ -f "$f" ] || continue
    echo "--- $f" >&2
    tail -n 10 "$f" >&2 || true
  done
  "$(dirname "$0")/ceph-down.sh" --keep "$DIR" >&2 || true
  exit "$rc"
}
trap on_error ERR

FSID=$(uuidgen)
mkdir -p "$DIR"/{run,log,crash,mon/ceph-a,mgr/ceph-x,osd,mds/ceph-a}
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon_host = $MON_ADDR
public_addr = $IP
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $DIR/\$cluster.\$name.keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
pid_file = $DIR/run/\$cluster-\$name.pid
log_file = $DIR/log/\$cluster-\$name.log
mon_cluster_log_file = $DIR/log/\$cluster.log
crash_dir = $DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
ms_bind_ipv6 = false
[client]
admin_socket = $DIR/run/\$cluster-\$name.\$pid.asok
# Without these a client of a dead or stuck cluster waits for ever (or 300 s to connect).
client_mount_timeout = 30
rados_mon_op_timeout = 30
rados_osd_op_timeout = 60
[mon]
mon_data = $DIR/mon/\$cluster-\$id
mon_data_avail_warn = 2
mon_data_avail_crit = 1
[mgr]
mgr_data = $DIR/mgr/\$cluster-\$id
keyring = $DIR/mgr/\$cluster-\$id/keyring
[osd]
osd_data = $DIR/osd/\$cluster-\$id
keyring = $DIR/osd/\$cluster-\$id/keyring
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = 10737418240
osd_memory_target = 1073741824
[mds]
mds_data = $DIR/mds/\$cluster-\$id
keyring = $DIR/mds/\$cluster-\$id/keyring
EOF

C=(-c "$CONF")
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
chmod 600 "$DIR"/*.keyring
monmaptool --create --addv a "$MON_ADDR" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"

# Foreground (-f) under setsid: the PID is the daemon's own, and its stderr stays valid.
# `-c CONF` on the command line also lets ceph-down.sh check a PID still belongs to this cluster.
start() {
  local name=$1
  shift
  setsid "$@" "${C[@]}" -f >"$DIR/log/$name.stdout" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.fgpid"
}
# wait_for DESCRIPTION COMMAND...: polls until COMMAND succeeds, or fails after $TIMEOUT s.
wait_for() {
  local what=$1 deadline=$(($(date +%s) + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "ceph-up: timed out after ${TIMEOUT}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
  log "$what"
}
cephj() { ceph "${C[@]}" --connect-timeout 10 -f json "$@"; }
osd_up() { cephj osd stat | grep -q '"num_up_osds":1[,}]'; }
mgr_up() { cephj mgr stat | grep -q '"available":true'; }
mds_active() { ceph "${C[@]}" --connect-timeout 10 mds stat | grep -q 'up:active'; }
# Every PG active+clean: the total equals the count in the "active+clean" state (no PGs yet: clean).
pgs_clean() {
  local j
  j=$(cephj pg stat)
  local total clean
  total=$(grep -o '"num_pgs":[0-9]*' <<<"$j" | head -n1 | cut -d: -f2)
  clean=$(grep -o '"name":"active+clean","num":[0-9]*' <<<"$j" | cut -d: -f3)
  [ -n "$total" ] && { [ "$total" = 0 ] || [ "${clean:-0}" = "$total" ]; }
}

start mon.a ceph-mon -i a
log "mon started (v2 port $V2_PORT, v1 port $V1_PORT)"
wait_for "mon answering" ceph "${C[@]}" --connect-timeout 5 -s
ceph "${C[@]}" mon enable-msgr2
ceph "${C[@]}" config set mon auth_allow_insecure_global_id_reclaim false

ceph "${C[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
  -o "$DIR/mgr/ceph-x/keyring"
start mgr.x ceph-mgr -i x
log "mgr started"

OSD_UUID=$(uuidgen)
OSD_ID=$(ceph "${C[@]}" osd new "$OSD_UUID")
mkdir -p "$DIR/osd/ceph-$OSD_ID"
ceph "${C[@]}" auth get-or-create "osd.$OSD_ID" mon 'allow profile osd' mgr 'allow profile osd' \
  osd 'allow *' -o "$DIR/osd/ceph-$OSD_ID/keyring"
ceph-osd "${C[@]}" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd.$OSD_ID.mkfs" 2>&1
log "osd.$OSD_ID mkfs done"
start "osd.$OSD_ID" ceph-osd -i "$OSD_ID"

if [ "$WITH_MDS" = 1 ]; then
  ceph "${C[@]}" auth get-or-create mds.a mon 'allow profile mds' osd 'allow rwx' mds 'allow *' \
    mgr 'allow profile mds' -o "$DIR/mds/ceph-a/keyring"
  start mds.a ceph-mds -i a
  log "mds started"
fi

wait_for "osd.$OSD_ID up" osd_up
wait_for "mgr available" mgr_up
if [ "$WITH_MDS" = 1 ]; then
  # The mgr volumes module creates the metadata and data pools and the filesystem.
  ceph "${C[@]}" fs volume create cephfs >/dev/null 2>&1
  wait_for "mds active (CephFS 'cephfs')" mds_active
fi
wait_for "all PGs active+clean" pgs_clean
trap - ERR
log "cluster ready: $(ceph "${C[@]}" health)"
echo "$CONF"
