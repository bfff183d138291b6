#!/usr/bin/env bash
# Installs everything Trellis needs on Debian 12, idempotently:
#   - Debian packages: etcd (tests, multi-node), protoc (etcd-client's build), OpenSSH client,
#     bubblewrap (the model compiler's sandbox), Ceph (the RADOS blob store and its tests:
#     mon/mgr/osd/mds daemons, librados for the `rados` build), Python venv, METIS (`gpmetis`, the
#     reference partitioner the realization benchmark compares against), and for the built-in
#     container facility (facility/agent): crun, openssh-server, iproute2 (ip, tc), iptables
#     (NFQUEUE rules of the link emulation), ping and iperf3 (its tests).
#   - crun refuses hybrid cgroups while any controller sits on cgroup v2; hugetlb is moved to
#     a v1 hierarchy when that is the case.
#   - A Python venv at .venv with the real MergeTB client libraries, for the compatibility tests.
# Safe to run again: each step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(etcd-server etcd-client protobuf-compiler libprotobuf-dev openssh-client openssl python3-venv curl
  ca-certificates bubblewrap util-linux ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common uuid-runtime librados-dev
  ceph-fuse fuse3
  metis crun openssh-server iproute2 iptables iputils-ping iperf3 nftables)
# nftables: `nft` for the ingress NAT (ingress/nat) and its network-namespace test.
# ceph-fuse, fuse3: CephFS volumes for XDCs mounted on this host (xdc/volumes); the kernel has no
# CephFS client. fuse3's fusermount3 also lets scripts/ceph-down.sh unmount them.
# Jupyter (notebook 6.4): the real backend of the XDC web proxy's tests (xdc/webproxy).
APT_PACKAGES+=(jupyter-notebook python3-notebook python3-ipykernel)
# The same packages run Jupyter inside local XDCs (xdc/runtime), on the host's read-only /usr.
# Headless Chromium driven over WebDriver: the web portal's browser tests (web/portal).
APT_PACKAGES+=(chromium chromium-driver)
# Pinned: the versions the compatibility tests are written against. protobuf 7 breaks
# mergexp 0.3.0 (`metal==True` raises "Expected an int, got a boolean").
PY_PACKAGES=(mergetbapi==1.6.0 mergetb==1.3.16 mergexp==0.3.0 "protobuf>=6,<7" pytest==8.3.4 websocket-client==1.8.0)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server and ceph packages may start system daemons on default ports; Trellis
# starts its own on free ports, so the system ones are not needed.
if command -v systemctl >/dev/null 2>&1; then
  for unit in etcd ceph.target; do
    if systemctl is-active --quiet "$unit" 2>/dev/null; then
      sudo_if_needed systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi

# crun 1.8 fails with "cgroups in hybrid mode not supported" while a controller (hugetlb on
# Debian's hybrid layout) is enabled on the v2 hierarchy; binding it to a v1 hierarchy empties
# the v2 controller list. Only when needed: on a pure v1 or pure v2 machine nothing is done.
UNIFIED=/sys/fs/cgroup/unified
if [ -r "$UNIFIED/cgroup.controllers" ] && grep -qw hugetlb "$UNIFIED/cgroup.controllers" \
  && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  echo "setup: binding the hugetlb cgroup controller to v1 so crun accepts the hybrid layout"
  sudo_if_needed mkdir -p /sys/fs/cgroup/hugetlb
  sudo_if_needed mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi

VENV=.venv
want="${PY_PACKAGES[*]}"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.trellis-packages" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating the Python venv $VENV with ${PY_PACKAGES[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "$want" > "$VENV/.trellis-packages"
fi
echo "setup: done"
